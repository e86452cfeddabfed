//! This machine's side of SSH: the client key every host authorizes, and the `ssh_config` and
//! `known_hosts` that let OpenSSH (and shipit) reach the hosts by name with strict key checking.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::files::write_atomic;
use super::host::Host;
use super::paths::{identity_path, known_hosts_path, ssh_config_path};
use super::rootfs;
use crate::process::run_tool;

/// The client's public key, generating the key pair on first use.
pub(super) fn ensure_key() -> Result<String> {
    let key = identity_path();
    if !key.exists() {
        let mut keygen = Command::new("ssh-keygen");
        keygen
            .args([
                "-t",
                "ed25519",
                "-N",
                "",
                "-q",
                "-C",
                "shipit-sandbox",
                "-f",
            ])
            .arg(&key);
        run_tool("generate the sandbox client key", &mut keygen)?;
    }
    let public = key.with_extension("pub");
    std::fs::read_to_string(&public).with_context(|| format!("cannot read {}", public.display()))
}

/// Rewrites `ssh_config` and `known_hosts` to describe exactly `hosts`.
pub(super) fn write_files(hosts: &[Host]) -> Result<()> {
    let identity = config_path(&identity_path())?;
    let known_hosts = config_path(&known_hosts_path())?;
    let mut config =
        String::from("# Written by `shipit sandbox`; rewritten by every up and down.\n");
    for host in hosts {
        config += &format!(
            "\nHost {}\n  HostName {}\n  User root\n  Port 22\n  IdentityFile {identity}\n  \
             IdentitiesOnly yes\n  UserKnownHostsFile {known_hosts}\n  StrictHostKeyChecking yes\n",
            host.name, host.address
        );
        if let Some(bastion) = &host.behind {
            config += &format!("  ProxyJump {}\n", bastion.name);
        }
    }
    let keys: String = hosts
        .iter()
        .filter_map(|host| Some(format!("{} {}\n", host.address, rootfs::host_key(host)?)))
        .collect();
    write_atomic(&ssh_config_path(), config.as_bytes())?;
    write_atomic(&known_hosts_path(), keys.as_bytes())
}

/// A path as an ssh_config argument: `%` starts a token there and whitespace splits arguments.
fn config_path(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .filter(|text| !text.contains('"'))
        .with_context(|| {
            format!(
                "the sandbox directory {} cannot be written into ssh_config: use a UTF-8 path \
                 without '\"'",
                path.display()
            )
        })?
        .replace('%', "%%");
    Ok(if text.contains(char::is_whitespace) {
        format!("\"{text}\"")
    } else {
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_escaped_for_ssh_config() {
        assert_eq!(config_path(Path::new("/var/lib/k")).unwrap(), "/var/lib/k");
        assert_eq!(
            config_path(Path::new("/a b/100%")).unwrap(),
            "\"/a b/100%%\""
        );
        assert!(config_path(Path::new("/a\"b")).is_err());
    }
}
