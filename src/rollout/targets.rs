//! The hosts a deploy goes to, each resolved and given its env file and health settings before
//! anything connects.

use anyhow::Result;

use crate::config::{Config, Health};
use crate::hosts::{self, Connection};
use crate::remote::destination::Destination;
use crate::ui::Ui;

/// One host to deploy to, resolved and validated before anything connects.
#[derive(Debug, Clone)]
pub struct Target {
    pub destination: Destination,
    /// The env file for this host: shipit.toml's env_file plus the host's own env.
    pub env_file: Option<Vec<u8>>,
    pub health: Option<Health>,
}

/// HOST arguments → the hosts, groups expanded in order, each resolved and given its env file
/// (commands for secrets run only once every host resolved) and health settings.
pub fn targets(
    config: &Config,
    names: &[String],
    connection: &Connection,
    ui: &Ui,
) -> Result<Vec<Target>> {
    let hosts = hosts::expand_groups(config, names);
    let destinations = hosts
        .iter()
        .map(|name| hosts::resolve(config, name, connection))
        .collect::<Result<Vec<_>>>()?;
    let env_files = crate::env_file::host_env_files(config, &hosts, ui)?;
    hosts
        .into_iter()
        .zip(destinations)
        .zip(env_files)
        .map(|((name, destination), env_file)| {
            Ok(Target {
                destination,
                env_file,
                health: hosts::health_for(config, name),
            })
        })
        .collect()
}
