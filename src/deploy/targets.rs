//! Which hosts a deploy (or `status`, `logs`, …) talks to, and how: HOST arguments and
//! `[groups]` expanded, each resolved to a [`Destination`] with its env file and health URL,
//! and the SSH connections to them.

use std::path::PathBuf;

use anyhow::Result;

use super::Layout;
use super::fleet;
use super::lock;
use super::runner::Runner;
use crate::config::{Config, Health};
use crate::remote::Remote;
use crate::remote::destination::{self, Destination};
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

/// Connects over SSH, saying so.
pub struct SshConnector<'a> {
    pub connection: &'a Connection,
    pub ui: &'a Ui,
}

impl fleet::Connect for SshConnector<'_> {
    fn connect(&self, destination: &Destination) -> Result<Box<dyn Remote + Send>> {
        Ok(Box::new(connect(destination, self.connection, self.ui)?))
    }
}

/// shipit.toml's `[health]` with the host's own `health_url`, if it has one.
pub fn health_for(config: &Config, host: &str) -> Option<Health> {
    let mut health = config.health.clone();
    if let (Some(health), Some(url)) = (
        health.as_mut(),
        config.hosts.get(host).and_then(|e| e.health_url.clone()),
    ) {
        health.url = url;
    }
    health
}

/// HOST arguments → the hosts, groups expanded in order, each resolved and given its env file
/// (commands for secrets run only once every host resolved) and health settings.
pub fn targets(
    config: &Config,
    names: &[String],
    connection: &Connection,
    ui: &Ui,
) -> Result<Vec<fleet::Target>> {
    let hosts = expand_groups(config, names);
    let destinations = hosts
        .iter()
        .map(|name| resolve(config, name, connection))
        .collect::<Result<Vec<_>>>()?;
    let env_files = super::env::host_env_files(config, &hosts, ui)?;
    hosts
        .into_iter()
        .zip(destinations)
        .zip(env_files)
        .map(|((name, destination), env_file)| {
            Ok(fleet::Target {
                destination,
                env_file,
                health: health_for(config, name),
            })
        })
        .collect()
}

/// Host names with `[groups]` expanded, in order, each once.
pub fn expand_groups<'a>(config: &'a Config, names: &'a [String]) -> Vec<&'a str> {
    let mut hosts: Vec<&str> = Vec::new();
    for name in names {
        let members = config.groups.get(name).map_or_else(
            || vec![name.as_str()],
            |g| g.iter().map(String::as_str).collect(),
        );
        for member in members {
            if !hosts.contains(&member) {
                hosts.push(member);
            }
        }
    }
    hosts
}

/// When the connection died mid-deploy, the lock is still ours on the host: a fresh connection
/// releases it, if it still names this process. Best effort; the next deploy would also see the
/// owner is dead (or its lock no longer refreshed) and take it over.
pub fn release_lost_lock(destination: &Destination, layout: &Layout, ui: &Ui) {
    // Never accept a new host key here: the first connection already proved this host.
    let Ok(mut remote) = SshRemote::connect(destination, &ConnectOptions::default()) else {
        return;
    };
    let mut runner = Runner::apply(&mut remote);
    runner.clean_up();
    if lock::unlock(&mut runner, layout).unwrap_or(false) {
        ui.status(
            "Unlocked",
            format_args!("{} over a new connection", destination.label),
        );
    }
}

pub fn resolve(config: &Config, host: &str, connection: &Connection) -> Result<Destination> {
    let entry = config.hosts.get(host).map(|e| destination::HostAddress {
        address: e.address.clone(),
        user: e.user.clone(),
        port: e.port,
        identity_file: e.identity_file.clone(),
        proxy_jump: e.proxy_jump.clone(),
    });
    destination::resolve(
        host,
        entry.as_ref(),
        &connection.identity,
        connection.ssh_config.as_deref(),
        &crate::sandbox::ssh_config_path(),
    )
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
