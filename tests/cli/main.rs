//! shipit's integration tests: one binary, real toolchains, real systemd-analyze.

mod support;

mod build;
mod cli;
mod config_errors;
mod unit;
