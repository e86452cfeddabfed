//! Where HOST points: a `[hosts.NAME]` entry in shipit.toml, an alias from ~/.ssh/config (or
//! `-F FILE`), a sandbox host, or `user@host:port`.
//!
//! ~/.ssh/config is evaluated by OpenSSH itself (`ssh -G`), so Match, Include, wildcards and
//! defaults behave exactly as they do for the user's own `ssh`; no parser crate gets them all.
//! That includes ProxyJump and ProxyCommand, which become a [`Proxy`] helper.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::known_hosts;
use super::proxy::{Proxy, Tokens};
use crate::error::{Category, Tag};
use crate::names::HostName;
use crate::validate::{Spec, parse_port, parse_spec};

/// A `[hosts.NAME]` entry's SSH settings, as shipit.toml gives them.
#[derive(Debug, Clone, Default)]
pub struct HostAddress {
    pub address: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub proxy_jump: Option<String>,
}

/// A fully resolved SSH destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// What the user typed; used in messages.
    pub label: String,
    pub hostname: HostName,
    pub port: u16,
    pub user: String,
    pub identity_files: Vec<PathBuf>,
    /// known_hosts files to check, the first one is where accepted keys are written.
    pub known_hosts: Vec<PathBuf>,
    /// OpenSSH's HashKnownHosts: accepted keys are recorded with hashed host names.
    pub hash_known_hosts: bool,
    /// OpenSSH's HostKeyAlias: the name the host's key is filed under instead of its address.
    pub host_key_alias: Option<String>,
    /// ProxyJump or ProxyCommand: the helper that carries the connection.
    pub proxy: Option<Proxy>,
    /// Resolved as a `shipit sandbox` host.
    pub sandbox: bool,
}

impl Destination {
    /// The name this host's key is looked up and recorded under in known_hosts.
    pub fn known_hosts_name(&self) -> String {
        known_hosts::lookup_name(&self.hostname, self.port, self.host_key_alias.as_deref())
    }

    /// `user@host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}@{}:{}", self.user, self.hostname, self.port)
    }
}

/// HOST, with its `[hosts]` entry if it has one. `ssh_config` replaces ~/.ssh/config, like
/// `ssh -F`; `sandbox_config` is the sandbox's ssh_config. A name is a sandbox host only when no
/// ssh alias has it: what the user configured for OpenSSH is never shadowed silently.
pub fn resolve(
    host: &str,
    entry: Option<&HostAddress>,
    extra_identities: &[PathBuf],
    ssh_config: Option<&Path>,
    sandbox_config: &Path,
) -> Result<Destination> {
    let mut destination = if let Some(entry) = entry {
        let spec = Spec {
            user: entry.user.clone(),
            host: entry.address.clone(),
            port: entry.port,
        };
        let mut d = from_ssh_config(host, &spec, ssh_config, entry.proxy_jump.as_deref())?.0;
        if let Some(identity) = &entry.identity_file {
            d.identity_files.insert(0, identity.clone());
        }
        d
    } else {
        let spec = parse_spec(host).tag(Category::Usage)?;
        let (d, alias) = from_ssh_config(host, &spec, ssh_config, None)?;
        if !alias && spec == Spec::named(host) && sandbox_defines(host, sandbox_config) {
            let mut d = from_ssh_config(host, &spec, Some(sandbox_config), None)?.0;
            d.sandbox = true;
            d
        } else {
            d
        }
    };
    for identity in extra_identities.iter().rev() {
        destination.identity_files.insert(0, identity.clone());
    }
    Ok(destination)
}

fn sandbox_defines(host: &str, sandbox_config: &Path) -> bool {
    std::fs::read_to_string(sandbox_config).is_ok_and(|text| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("Host "))
            .any(|names| names.split_whitespace().any(|n| n == host))
    })
}

/// Asks OpenSSH how it would connect (`ssh -G`); without an ssh binary, OpenSSH's defaults.
/// Also says whether the config has an alias for the host: a `Host` line other than `*`
/// applied to it, or its HostName changed.
fn from_ssh_config(
    label: &str,
    spec: &Spec,
    config_file: Option<&Path>,
    jump: Option<&str>,
) -> Result<(Destination, bool)> {
    let mut command = Command::new("ssh");
    // -v: OpenSSH names each Host pattern it applies (on stderr).
    command.args(["-G", "-v"]);
    if let Some(file) = config_file {
        command.arg("-F").arg(file);
    }
    if let Some(user) = &spec.user {
        command.args(["-l", user]);
    }
    if let Some(port) = spec.port {
        command.args(["-p", &port.to_string()]);
    }
    if let Some(jump) = jump {
        command.args(["-J", jump]);
    }
    command.arg("--").arg(&spec.host);
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((defaults(label, spec)?, false));
        }
        Err(e) => return Err(e).context("cannot run `ssh -G` to read the ssh configuration"),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let messages: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("debug") && !l.starts_with("OpenSSH_"))
            .collect();
        crate::fail!(
            Usage,
            "reading the ssh configuration for {label} failed (`ssh -G {}`):\n{}",
            spec.host,
            messages.join("\n").trim()
        );
    }
    let settings =
        parse_ssh_g(label, &String::from_utf8_lossy(&output.stdout)).tag(Category::Usage)?;
    let alias = stderr
        .lines()
        .filter_map(|l| {
            l.split_once(": Applying options for ")
                .map(|(_, p)| p.trim())
        })
        .any(|pattern| pattern != "*")
        || !settings
            .destination
            .hostname
            .eq_ignore_ascii_case(&spec.host);
    let destination = settings
        .with_proxy(spec, config_file)
        .tag(Category::Usage)?;
    Ok((destination, alias))
}

/// What `ssh -G` says, before the proxy is put together.
struct Settings {
    destination: Destination,
    proxy_jump: Option<String>,
    proxy_command: Option<String>,
    proxy_use_fdpass: bool,
}

impl Settings {
    fn with_proxy(mut self, spec: &Spec, config_file: Option<&Path>) -> Result<Destination> {
        let d = &mut self.destination;
        let label = &d.label;
        d.proxy = match (self.proxy_jump, self.proxy_command) {
            (Some(hops), _) => Some(Proxy::jump(&hops, config_file, &d.hostname, d.port)?),
            (None, Some(_)) if self.proxy_use_fdpass => anyhow::bail!(
                "{label} uses ProxyUseFdpass, which shipit does not support: its ProxyCommand \
                 must carry the connection on stdin and stdout\n  \
                 help: set `ProxyUseFdpass no` for this host, or use ProxyJump"
            ),
            (None, Some(command)) => {
                let tokens = Tokens {
                    hostname: &d.hostname,
                    key_alias: d.host_key_alias.as_deref().unwrap_or(&spec.host),
                    original: &spec.host,
                    port: d.port,
                    user: &d.user,
                };
                Some(Proxy::command(&command, &tokens)?)
            }
            (None, None) => None,
        };
        Ok(self.destination)
    }
}

/// `ssh -G`'s answer, which always has a `hostname` line: the name it connects to, checked here
/// because an ssh alias can name anything.
fn parse_ssh_g(label: &str, text: &str) -> Result<Settings> {
    let hostname = text
        .lines()
        .find_map(|line| line.strip_prefix("hostname "))
        .with_context(|| format!("`ssh -G` printed no hostname for {label}"))?;
    let mut destination = Destination {
        label: label.to_string(),
        hostname: HostName::parse(hostname)?,
        port: 22,
        user: String::new(),
        identity_files: Vec::new(),
        known_hosts: Vec::new(),
        hash_known_hosts: false,
        host_key_alias: None,
        proxy: None,
        sandbox: false,
    };
    let (mut proxy_jump, mut proxy_command, mut proxy_use_fdpass) = (None, None, false);
    let mut global_known_hosts = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        match key {
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
            "hostkeyalias" => destination.host_key_alias = Some(value.to_string()),
            "proxyjump" if value != "none" => proxy_jump = Some(value.to_string()),
            "proxycommand" if value != "none" => proxy_command = Some(value.to_string()),
            "proxyusefdpass" => proxy_use_fdpass = value == "yes",
            _ => {}
        }
    }
    destination.known_hosts.extend(global_known_hosts);
    Ok(Settings {
        destination,
        proxy_jump,
        proxy_command,
        proxy_use_fdpass,
    })
}

fn defaults(label: &str, spec: &Spec) -> Result<Destination> {
    let ssh_dir = home().join(".ssh");
    Ok(Destination {
        label: label.to_string(),
        hostname: HostName::parse(&spec.host).tag(Category::Usage)?,
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
        host_key_alias: None,
        proxy: None,
        sandbox: false,
    })
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
        let d = parse_ssh_g("web", text)
            .unwrap()
            .with_proxy(&Spec::named("web"), None)
            .unwrap();
        assert!(d.proxy.is_none());
        assert_eq!(
            (d.hostname.as_str(), d.port, d.user.as_str()),
            ("10.0.0.5", 2222, "deploy")
        );
        assert_eq!(d.identity_files.len(), 2);
        assert_eq!(d.known_hosts.len(), 3);
        assert_eq!(d.known_hosts[2], PathBuf::from("/etc/ssh/ssh_known_hosts"));
        assert!(d.hash_known_hosts);
    }

    #[test]
    fn proxies_and_host_key_aliases_are_read() {
        let read = |text: &str| {
            parse_ssh_g("inner", text)
                .unwrap()
                .with_proxy(&Spec::named("Inner"), Some(Path::new("/cfg")))
        };
        let jump = read("hostname 10.0.0.5\nport 22\nuser root\nproxyjump ops@bastion:2022\nproxycommand none\nhostkeyalias inner-key\n").unwrap();
        assert_eq!(
            jump.proxy.as_ref().unwrap().command_line(),
            "ssh -o BatchMode=yes -l ops -p 2022 -F /cfg -W '[10.0.0.5]:22' -- bastion"
        );
        assert_eq!(jump.known_hosts_name(), "inner-key");
        assert_eq!(
            jump.proxy.as_ref().unwrap().label,
            "ProxyJump ops@bastion:2022"
        );
        let command = read("hostname 10.0.0.5\nport 2222\nuser root\nproxyjump none\nproxycommand nc %h %p %n %k\nproxyusefdpass no\n").unwrap();
        assert_eq!(
            command.proxy.as_ref().unwrap().args,
            ["-c", "exec nc 10.0.0.5 2222 Inner Inner"]
        );
        assert_eq!(command.known_hosts_name(), "[10.0.0.5]:2222");
        for refused in [
            "hostname h\nproxycommand nc %h %p\nproxyusefdpass yes\n",
            "hostname h\nproxycommand nc %C\n",
            "hostname h\nproxyjump -oProxyCommand=x\n",
        ] {
            assert!(read(refused).is_err(), "{refused}");
        }
    }
}
