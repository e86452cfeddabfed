//! shipit's integration tests: one binary, real toolchains, real systemd-analyze, real hosts
//! (systemd-nspawn containers from `shipit sandbox`). [`harness`] runs them: `cargo test --test
//! cli deploy::` runs the deploy tests, and a test this machine cannot run is reported as ignored.

// The test binary is a crate of its own, never a library: `pub` in its modules is for each
// other, which is all unreachable_pub (on for the library, in Cargo.toml) would say.
#![allow(unreachable_pub)]

mod harness;
mod support;

mod bastion;
mod build;
mod ci;
mod cli;
mod config_errors;
mod deadman;
mod deploy;
mod diff;
mod docs;
mod environments;
mod events;
mod exec;
mod faults;
mod fleet;
mod generate;
mod health_kinds;
mod history;
mod hooks;
mod host_keys;
mod hosts;
mod load;
mod logs;
mod notify;
mod prometheus;
mod sandbox;
mod scripts;
mod secrets;
mod sockets;
mod unit;

fn main() -> std::process::ExitCode {
    harness::run(
        [
            harness::tests(),
            bastion::tests(),
            build::tests(),
            ci::tests(),
            cli::tests(),
            config_errors::tests(),
            deadman::tests(),
            deploy::tests(),
            diff::tests(),
            docs::tests(),
            environments::tests(),
            events::tests(),
            exec::tests(),
            faults::tests(),
            fleet::tests(),
            generate::tests(),
            health_kinds::tests(),
            history::tests(),
            hooks::tests(),
            host_keys::tests(),
            hosts::tests(),
            load::tests(),
            logs::tests(),
            notify::tests(),
            prometheus::tests(),
            sandbox::tests(),
            scripts::tests(),
            secrets::tests(),
            sockets::tests(),
            unit::tests(),
        ]
        .into_iter()
        .flatten()
        .collect(),
    )
}
