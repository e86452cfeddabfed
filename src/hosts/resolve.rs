//! Which hosts a command talks to: HOST arguments with `[groups]` expanded, each resolved to a
//! [`Destination`] (a `[hosts]` entry, `ssh -G`, or a sandbox host), and its health settings;
//! and one host opened, as the commands that look at a deployed app start.

use anyhow::Result;

use super::connection::{Connection, connect};
use super::layout::Layout;
use crate::config::{Config, Health};
use crate::remote::Remote;
use crate::remote::destination::{self, Destination};
use crate::remote::ssh::check_identity_files;
use crate::ui::Ui;

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

/// One host named on the command line, connected, with the app's layout: what the commands
/// that look at a deployed app start from.
pub fn open(
    config: &Config,
    host: &str,
    connection: &Connection,
    ui: &Ui,
) -> Result<(Box<dyn Remote>, Layout)> {
    check_identity_files(&connection.identity)?;
    let destination = resolve(config, host, connection)?;
    let remote = connect(&destination, connection, ui)?;
    Ok((Box::new(remote), Layout::of_app(config)))
}
