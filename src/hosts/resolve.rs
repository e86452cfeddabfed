//! Which hosts a command talks to: HOST arguments with `[groups]` expanded, each resolved to a
//! [`Destination`] (a `[hosts]` entry, `ssh -G`, or a sandbox host), and its health settings;
//! and one host opened, as the commands that look at a deployed app start.

use std::net::ToSocketAddrs;
use std::path::Path;

use anyhow::Result;

use super::connection::{Connection, connect};
use super::layout::Layout;
use crate::config::{Config, Health};
use crate::remote::Remote;
use crate::remote::destination::{self, Destination};
use crate::remote::ssh::check_identity_files;
use crate::sandbox;
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

/// The HOST arguments a command talks to. With an environment selected (and one must be when
/// shipit.toml defines any), only its hosts, groups and their addresses, and all its hosts when
/// none is named; without environments, `sandbox` when none is named.
pub fn choose(config: &Config, names: &[String]) -> Result<Vec<String>> {
    config.require_environment()?;
    let Some(environment) = &config.environment else {
        return Ok(if names.is_empty() {
            vec![sandbox::DEFAULT_NAME.to_string()]
        } else {
            names.to_vec()
        });
    };
    if config.hosts.is_empty() {
        crate::fail!(
            Usage,
            "environment {environment} has no hosts\n  help: add \
             [environments.{environment}.hosts.NAME] tables (or [hosts.NAME] ones it inherits)"
        );
    }
    if names.is_empty() {
        return Ok(config.hosts.keys().cloned().collect());
    }
    // An address stands for its host, so the host's env and health settings apply.
    let ours = |name: &String| {
        if config.hosts.contains_key(name) || config.groups.contains_key(name) {
            return Some(name.clone());
        }
        config
            .hosts
            .iter()
            .find(|(_, h)| h.address == *name)
            .map(|(host, _)| host.clone())
    };
    let chosen: Vec<Option<String>> = names.iter().map(ours).collect();
    if let Some((stranger, _)) = names.iter().zip(&chosen).find(|(_, c)| c.is_none()) {
        let groups = if config.groups.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = config.groups.keys().map(String::as_str).collect();
            format!(" (groups: {})", names.join(", "))
        };
        crate::fail!(
            Usage,
            "{stranger:?} is not a host of environment {environment}, whose hosts are {}{groups}\n  \
             help: name one of them, or select the environment {stranger:?} belongs to with -e",
            config.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(chosen.into_iter().flatten().collect())
}

/// The one HOST a single-host command talks to: as [`choose`] takes it, and when none is
/// named, the environment's host if it has only one.
pub fn choose_one(config: &Config, name: Option<&str>) -> Result<String> {
    let names: Vec<String> = name.map(str::to_string).into_iter().collect();
    let mut chosen = choose(config, &names)?;
    if chosen.len() > 1 {
        crate::fail!(
            Usage,
            "this command takes one host, and environment {} has {}: {}\n  help: name one of \
             them",
            config.environment.as_deref().unwrap_or_default(),
            chosen.len(),
            chosen.join(", ")
        );
    }
    Ok(chosen.remove(0))
}

pub fn resolve(config: &Config, host: &str, connection: &Connection) -> Result<Destination> {
    let entry = config.hosts.get(host).map(|e| destination::HostAddress {
        address: e.address.clone(),
        user: e.user.clone(),
        port: e.port,
        identity_file: e.identity_file.clone(),
        proxy_jump: e.proxy_jump.clone(),
    });
    let sandbox_config = sandbox::ssh_config_path();
    let destination = destination::resolve(
        host,
        entry.as_ref(),
        &connection.identity,
        connection.ssh_config.as_deref(),
        &sandbox_config,
    )?;
    // The name every command defaults to, with no sandbox host of that name and no alias or
    // address behind it: say so now, before a build, rather than "cannot resolve" later.
    let unknown = entry.is_none()
        && !destination.sandbox
        && destination.hostname == host
        && (host, destination.port).to_socket_addrs().is_err();
    if host == sandbox::DEFAULT_NAME && unknown {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let sudo = if unsafe { libc::geteuid() } == 0 {
            ""
        } else {
            "sudo "
        };
        crate::fail!(
            Usage,
            "there is no sandbox host here: {}\n  help: name a host (user@server, a [hosts] name \
             or an ssh alias), or boot a local one with `{sudo}shipit sandbox up`",
            why_no_sandbox(&sandbox_config)
        );
    }
    Ok(destination)
}

/// Why the sandbox's ssh_config names no host called `sandbox`.
fn why_no_sandbox(sandbox_config: &Path) -> String {
    match std::fs::read_to_string(sandbox_config) {
        Ok(_) => format!(
            "the sandbox has no host named {} (`sudo shipit sandbox list` shows its hosts)",
            sandbox::DEFAULT_NAME
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => format!(
            "{} is root's, and shipit runs as {} (run it with sudo, as the sandbox's hosts are \
             root's)",
            sandbox_config.display(),
            std::env::var("USER").unwrap_or_else(|_| "another user".into())
        ),
        Err(_) => format!(
            "none was booted ({} does not exist)",
            sandbox_config.display()
        ),
    }
}

/// shipit.toml's `[health]` with the host's own `health_url`, if it has one.
pub fn health_for(config: &Config, host: &str) -> Option<Health> {
    let mut health = config.health.clone();
    if let (Some(health), Some(url)) = (
        health.as_mut(),
        config.hosts.get(host).and_then(|e| e.health_url.clone()),
    ) {
        let expect_status = match &health.check {
            crate::config::Check::Url { expect_status, .. } => *expect_status,
            _ => 200,
        };
        health.check = crate::config::Check::Url { url, expect_status };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str, environment: Option<&str>) -> Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("go.mod"), "module example.com/demo\n").unwrap();
        let path = dir.path().join(crate::config::FILE_NAME);
        crate::config::parse(dir.path(), &path, text, environment).unwrap()
    }

    const TWO: &str = "[environments.staging.hosts.s1]\naddress = \"10.0.0.1\"\n\
        [environments.production.hosts.p1]\naddress = \"10.0.0.2\"\n\
        [environments.production.hosts.p2]\naddress = \"10.0.0.3\"\n\
        [environments.production.groups]\nweb = [\"p1\", \"p2\"]\n";

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn an_environment_is_required_and_limits_the_hosts_to_its_own() {
        let plain = config("", None);
        assert_eq!(choose(&plain, &[]).unwrap(), [sandbox::DEFAULT_NAME]);
        assert_eq!(choose(&plain, &names(&["any"])).unwrap(), ["any"]);
        let err = choose(&config(TWO, None), &names(&["p1"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("help: add -e production or -e staging"),
            "{err}"
        );
        let production = config(TWO, Some("production"));
        assert_eq!(choose(&production, &[]).unwrap(), ["p1", "p2"]);
        assert_eq!(
            choose(&production, &names(&["web", "10.0.0.3"])).unwrap(),
            ["web", "p2"]
        );
        let err = choose(&production, &names(&["s1"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"s1\" is not a host of environment production, whose hosts are p1, p2 (groups: web)"),
            "{err}"
        );
        assert!(choose_one(&production, None).is_err());
        assert_eq!(choose_one(&production, Some("p2")).unwrap(), "p2");
        let staging = config(TWO, Some("staging"));
        assert_eq!(choose_one(&staging, None).unwrap(), "s1");
    }
}
