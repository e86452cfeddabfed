//! Connecting to hosts over SSH: how (from the command line), saying so, and the [`Connect`]
//! seam a rollout opens its connections through (SSH for real, fakes in the unit tests).

use std::path::PathBuf;

use anyhow::Result;

use crate::remote::Remote;
use crate::remote::destination::Destination;
use crate::remote::ssh::{ConnectOptions, SshRemote};
use crate::ui::Ui;

/// How to reach hosts, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Record an unknown host key (OpenSSH's accept-new).
    pub accept_new_host_key: bool,
    /// Identity files to try first.
    pub identity: Vec<PathBuf>,
    /// An ssh config file instead of ~/.ssh/config (`-F`).
    pub ssh_config: Option<PathBuf>,
}

/// Opens connections to hosts: SSH for real, a fake in the rollout's unit tests.
pub trait Connect: Sync {
    fn connect(&self, destination: &Destination) -> Result<Box<dyn Remote + Send>>;
}

/// Connects over SSH, saying so.
pub struct SshConnector<'a> {
    pub connection: &'a Connection,
    pub ui: &'a Ui,
}

impl Connect for SshConnector<'_> {
    fn connect(&self, destination: &Destination) -> Result<Box<dyn Remote + Send>> {
        Ok(Box::new(connect(destination, self.connection, self.ui)?))
    }
}

pub fn connect(destination: &Destination, connection: &Connection, ui: &Ui) -> Result<SshRemote> {
    let options = ConnectOptions {
        accept_new_host_key: connection.accept_new_host_key,
    };
    let remote = crate::timings::time("connecting", || SshRemote::connect(destination, &options))?;
    ui.status(
        "Connected",
        format_args!(
            "{}@{}:{} ({}{}){}",
            destination.user,
            destination.hostname,
            destination.port,
            destination.label,
            if destination.sandbox {
                ", a sandbox host"
            } else {
                ""
            },
            destination
                .proxy
                .as_ref()
                .map_or_else(String::new, |p| format!(" via {}", p.label))
        ),
    );
    Ok(remote)
}
