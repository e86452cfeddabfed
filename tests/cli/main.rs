//! shipit's integration tests: one binary, real toolchains, real systemd-analyze, real hosts
//! (systemd-nspawn containers from `shipit sandbox`).

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
