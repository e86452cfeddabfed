//! Where HOST points: a `[hosts.NAME]` entry in shipit.toml, a sandbox host, an alias from
//! ~/.ssh/config, or `user@host:port`.
//!
//! ~/.ssh/config is evaluated by OpenSSH itself (`ssh -G`), so Match, Include, wildcards and
//! defaults behave exactly as they do for the user's own `ssh`; no parser crate gets them all.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::config::HostEntry;
use crate::error::{Category, Tag};

/// A fully resolved SSH destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// What the user typed; used in messages.
    pub label: String,
    pub hostname: String,
    pub port: u16,
    pub user: String,
    pub identity_files: Vec<PathBuf>,
    /// known_hosts files to check, the first one is where accepted keys are written.
    pub known_hosts: Vec<PathBuf>,
    /// OpenSSH's HashKnownHosts: accepted keys are recorded with hashed host names.
    pub hash_known_hosts: bool,
}

/// A `[user@]host[:port]` as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    user: Option<String>,
    host: String,
    port: Option<u16>,
}

/// `ssh_config` replaces ~/.ssh/config, like `ssh -F`.
pub fn resolve(
    host: &str,
    hosts: &std::collections::BTreeMap<String, HostEntry>,
    extra_identities: &[PathBuf],
    ssh_config: Option<&Path>,
) -> Result<Destination> {
    let mut destination = if let Some(entry) = hosts.get(host) {
        let spec = Spec {
            user: entry.user.clone(),
            host: entry.address.clone(),
            port: entry.port,
        };
        let mut d = from_ssh_config(host, &spec, ssh_config)?;
        if let Some(identity) = &entry.identity_file {
            d.identity_files.insert(0, identity.clone());
        }
        d
    } else if sandbox_defines(host) {
        let spec = Spec {
            user: None,
            host: host.to_string(),
            port: None,
        };
        from_ssh_config(host, &spec, Some(&crate::sandbox::ssh_config_path()))?
    } else {
        let spec = parse_spec(host).tag(Category::Usage)?;
        from_ssh_config(host, &spec, ssh_config)?
    };
    for identity in extra_identities.iter().rev() {
        destination.identity_files.insert(0, identity.clone());
    }
    Ok(destination)
}

fn sandbox_defines(host: &str) -> bool {
    std::fs::read_to_string(crate::sandbox::ssh_config_path()).is_ok_and(|text| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("Host "))
            .any(|names| names.split_whitespace().any(|n| n == host))
    })
}

fn parse_spec(text: &str) -> Result<Spec> {
    let (user, rest) = match text.rsplit_once('@') {
        Some((user, rest)) => {
            crate::config::validate_user_name(user)
                .or_else(|_| validate_login(user))
                .map_err(anyhow::Error::msg)?;
            (Some(user.to_string()), rest)
        }
        None => (None, text),
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        // [v6::addr]:port
        let (addr, after) = inner
            .split_once(']')
            .with_context(|| format!("{text:?}: missing ']' after an IPv6 address"))?;
        let port = after.strip_prefix(':').map(parse_port).transpose()?;
        (addr.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(parse_port(port)?)),
            None => (rest.to_string(), None),
        }
    };
    validate_host(&host)?;
    Ok(Spec { user, host, port })
}

fn validate_login(user: &str) -> Result<(), String> {
    let ok = !user.is_empty()
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid login name {user:?}"))
    }
}

fn parse_port(port: &str) -> Result<u16> {
    port.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("invalid port {port:?}: use 1-65535"))
}

/// Host names and addresses only: nothing that ssh or a shell could read as an option or syntax.
pub fn validate_host(host: &str) -> Result<()> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with('-')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c));
    anyhow::ensure!(
        ok,
        "invalid host {host:?}: use a name from shipit.toml [hosts], an ssh alias, or [user@]host[:port]"
    );
    Ok(())
}

/// Asks OpenSSH how it would connect (`ssh -G`); without an ssh binary, OpenSSH's defaults.
fn from_ssh_config(label: &str, spec: &Spec, config_file: Option<&Path>) -> Result<Destination> {
    let mut command = Command::new("ssh");
    command.arg("-G");
    if let Some(file) = config_file {
        command.arg("-F").arg(file);
    }
    if let Some(user) = &spec.user {
        command.args(["-l", user]);
    }
    if let Some(port) = spec.port {
        command.args(["-p", &port.to_string()]);
    }
    command.arg(&spec.host);
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(defaults(label, spec)),
        Err(e) => return Err(e).context("cannot run `ssh -G` to read the ssh configuration"),
    };
    if !output.status.success() {
        crate::fail!(
            Usage,
            "reading the ssh configuration for {label} failed (`ssh -G {}`):\n{}",
            spec.host,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let resolved = parse_ssh_g(label, &String::from_utf8_lossy(&output.stdout))?;
    validate_host(&resolved.hostname).tag(Category::Usage)?;
    Ok(resolved)
}

fn parse_ssh_g(label: &str, text: &str) -> Result<Destination> {
    let mut destination = Destination {
        label: label.to_string(),
        hostname: String::new(),
        port: 22,
        user: String::new(),
        identity_files: Vec::new(),
        known_hosts: Vec::new(),
        hash_known_hosts: false,
    };
    let mut global_known_hosts = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        match key {
            "hostname" => destination.hostname = value.to_string(),
            "port" => destination.port = parse_port(value)?,
            "user" => destination.user = value.to_string(),
            "identityfile" => destination.identity_files.push(expand_home(value)),
            "userknownhostsfile" => destination
                .known_hosts
                .extend(value.split_whitespace().map(expand_home)),
            "globalknownhostsfile" => {
                global_known_hosts.extend(value.split_whitespace().map(expand_home))
            }
            "hashknownhosts" => destination.hash_known_hosts = value == "yes",
            "proxyjump" | "proxycommand" if value != "none" => crate::fail!(
                Usage,
                "{label} is reached through {key} {value}, which shipit does not support yet\n  \
                 help: deploy from a machine that reaches the host directly"
            ),
            _ => {}
        }
    }
    destination.known_hosts.extend(global_known_hosts);
    Ok(destination)
}

fn defaults(label: &str, spec: &Spec) -> Destination {
    let ssh_dir = home().join(".ssh");
    Destination {
        label: label.to_string(),
        hostname: spec.host.clone(),
        port: spec.port.unwrap_or(22),
        user: spec
            .user
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".into()),
        identity_files: ["id_ed25519", "id_ecdsa", "id_rsa"]
            .iter()
            .map(|k| ssh_dir.join(k))
            .collect(),
        known_hosts: vec![
            ssh_dir.join("known_hosts"),
            ssh_dir.join("known_hosts2"),
            PathBuf::from("/etc/ssh/ssh_known_hosts"),
        ],
        hash_known_hosts: false,
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home().join(rest),
        None => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_hostile_ones_are_refused() {
        let spec = parse_spec("deploy@web1.example.com:2222").unwrap();
        assert_eq!(spec.user.as_deref(), Some("deploy"));
        assert_eq!(
            (spec.host.as_str(), spec.port),
            ("web1.example.com", Some(2222))
        );
        assert_eq!(parse_spec("[::1]:22").unwrap().host, "::1");
        for bad in [
            "-oProxyCommand=x",
            "a;b",
            "h:0",
            "h:99999",
            "u$(id)@h",
            "",
            "a b",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ssh_g_output_is_read() {
        let text = "host web\nhostname 10.0.0.5\nport 2222\nuser deploy\nidentityfile ~/.ssh/id_ed25519\n\
                    identityfile /keys/a\nuserknownhostsfile ~/.ssh/known_hosts ~/.ssh/known_hosts2\nproxyjump none\n\
                    globalknownhostsfile /etc/ssh/ssh_known_hosts\nhashknownhosts yes\n";
        let d = parse_ssh_g("web", text).unwrap();
        assert_eq!(
            (d.hostname.as_str(), d.port, d.user.as_str()),
            ("10.0.0.5", 2222, "deploy")
        );
        assert_eq!(d.identity_files.len(), 2);
        assert_eq!(d.known_hosts.len(), 3);
        assert_eq!(d.known_hosts[2], PathBuf::from("/etc/ssh/ssh_known_hosts"));
        assert!(d.hash_known_hosts);
        assert!(parse_ssh_g("web", "proxyjump bastion\n").is_err());
    }
}
