//! `[hosts.NAME]` and `[groups]`: the named hosts deploys go to, and names for several of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use toml::Spanned;

use super::checks::validate_health_url;
use super::model::HostEntry;
use super::raw::RawHost;
use super::source::{Source, parse_argv};
use crate::validate::{validate_app_name, validate_env_key, validate_line, validate_user_name};

pub(super) fn parse_hosts(
    src: &Source,
    root: &Path,
    raw: BTreeMap<Spanned<String>, RawHost>,
    has_health: bool,
) -> Result<BTreeMap<String, HostEntry>> {
    let mut hosts = BTreeMap::new();
    for (name, host) in raw {
        src.check(&name, |n| {
            validate_app_name(n).map_err(|_| {
                format!("invalid host name {n:?}: use lowercase letters, digits and '-'")
            })
        })?;
        src.check(&host.address, |a| {
            crate::validate::validate_host(a).map_err(|e| e.to_string())
        })?;
        if let Some(user) = &host.user {
            src.check(user, |u| validate_user_name(u))?;
        }
        if let Some(port) = &host.port {
            src.check(port, |p| {
                if *p > 0 {
                    Ok(())
                } else {
                    Err("port must be 1-65535".into())
                }
            })?;
        }
        let identity_file = host
            .identity_file
            .map(|f| {
                src.check(&f, |p| validate_line(p, "a path"))?;
                let path = match f.get_ref().strip_prefix("~/") {
                    Some(rest) => home_dir().join(rest),
                    None => PathBuf::from(f.get_ref()),
                };
                Ok::<_, anyhow::Error>(if path.is_absolute() {
                    path
                } else {
                    root.join(path)
                })
            })
            .transpose()?;
        let mut env = BTreeMap::new();
        for (key, value) in host.env {
            src.check(&key, |k| validate_env_key(k))?;
            src.check(&value, |v| validate_line(v, "an env value"))?;
            env.insert(key.into_inner(), value.into_inner());
        }
        let env_command = host
            .env_command
            .map(|c| parse_argv(src, c, "env_command"))
            .transpose()?;
        if let Some(jump) = &host.proxy_jump {
            src.check(jump, |j| {
                crate::validate::validate_jump(j).map_err(|e| format!("{e:#}"))
            })?;
        }
        if let Some(url) = &host.health_url {
            src.check(url, |u| {
                validate_health_url(u)?;
                if has_health {
                    Ok(())
                } else {
                    Err("health_url needs a [health] table for the other settings".into())
                }
            })?;
        }
        hosts.insert(
            name.into_inner(),
            HostEntry {
                address: host.address.into_inner(),
                user: host.user.map(Spanned::into_inner),
                port: host.port.map(Spanned::into_inner),
                identity_file,
                env,
                env_command,
                health_url: host.health_url.map(Spanned::into_inner),
                proxy_jump: host.proxy_jump.map(Spanned::into_inner),
            },
        );
    }
    Ok(hosts)
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

pub(super) fn parse_groups(
    src: &Source,
    raw: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    hosts: &BTreeMap<String, HostEntry>,
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut groups = BTreeMap::new();
    for (name, members) in raw {
        src.check(&name, |n| {
            validate_app_name(n).map_err(|_| {
                format!("invalid group name {n:?}: use lowercase letters, digits and '-'")
            })?;
            if hosts.contains_key(n) {
                return Err(format!("{n:?} is both a host and a group"));
            }
            Ok(())
        })?;
        if members.is_empty() {
            return Err(src.error(&name.span(), "a group needs at least one host"));
        }
        let mut list: Vec<String> = Vec::new();
        for member in members {
            src.check(&member, |m| {
                crate::validate::validate_host(m).map_err(|e| e.to_string())?;
                if list.contains(m) {
                    return Err(format!("{m:?} is listed twice"));
                }
                Ok(())
            })?;
            list.push(member.into_inner());
        }
        groups.insert(name.into_inner(), list);
    }
    Ok(groups)
}
