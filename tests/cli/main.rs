//! shipit's integration tests: one binary, real toolchains, real systemd-analyze, real hosts
//! (systemd-nspawn containers from `shipit sandbox`).

// The test binary is a crate of its own, never a library: `pub` in its modules is for each
// other, which is all unreachable_pub (on for the library, in Cargo.toml) would say.
#![allow(unreachable_pub)]

mod support;

mod bastion;
mod build;
mod cli;
mod config_errors;
mod deploy;
mod docs;
mod exec;
mod faults;
mod fleet;
mod generate;
mod history;
mod hooks;
mod host_keys;
mod hosts;
mod logs;
mod sandbox;
mod secrets;
mod sockets;
mod unit;
