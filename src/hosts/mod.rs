//! The hosts shipit talks to, and what every command that talks to them stands on: which hosts
//! (HOST arguments and `[groups]`, resolved through `[hosts]`, `ssh -G` or the sandbox), how to
//! connect ([`connection`]), where an app lives on a host ([`layout`]), the host's scripts as
//! types ([`script`]), running them in batches or as a dry run's plan ([`runner`]); and what a
//! host is and has: its systemd and architecture and the unit it gets ([`check`]), its releases
//! ([`releases`]), its deploy log ([`log`]), what is deployed ([`deployed`]), and who is acting
//! on it ([`owner`]).

pub mod check;
pub mod connection;
pub mod deployed;
pub mod layout;
pub mod log;
pub mod owner;
pub mod releases;
pub mod resolve;
pub mod runner;
pub mod script;

pub use connection::{Connect, Connection, SshConnector, connect};
pub use layout::Layout;
pub use resolve::{choose, choose_one, expand_groups, health_for, open, resolve};
pub use runner::Runner;
pub use script::Script;
