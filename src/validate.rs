//! The rules every user-supplied name and value must pass before anything is built or sent: app
//! and user names, versions, environment keys, relative paths, hosts and ProxyJump hops.
//! Checked where shipit.toml is read (with file:line:col), on the command line and in packages.
//! Depends on nothing else in the crate.

use std::path::{Component, Path};

use anyhow::{Context, Result};

pub fn validate_app_name(name: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid app name {name:?}: it becomes the unit, user and directory name, so use 1-32 \
             lowercase letters, digits and '-', starting with a letter"
        ))
    }
}

pub fn validate_user_name(name: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid user name {name:?}: use 1-32 lowercase letters, digits, '_' and '-', starting \
             with a letter or '_'"
        ))
    }
}

pub fn validate_version(version: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&version.len())
        && version.starts_with(|c: char| c.is_ascii_alphanumeric())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+~-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid version {version:?}: use up to 64 letters, digits and . _ + ~ -, starting \
             with a letter or digit"
        ))
    }
}

pub fn validate_env_key(key: &str) -> Result<(), String> {
    let ok = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid environment variable name {key:?}: use letters, digits and '_', not starting \
             with a digit"
        ))
    }
}

/// Paths in shipit.toml are relative to the project and may not leave it.
pub fn validate_relative_path(path: &str) -> Result<(), String> {
    validate_line(path, "a path")?;
    let p = Path::new(path);
    if path.is_empty() || p.is_absolute() {
        return Err(format!(
            "{path:?} must be a relative path inside the project"
        ));
    }
    if p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(format!("{path:?} must not contain '..' or '.' components"));
    }
    Ok(())
}

/// A value that ends up on one line of a unit or env file.
pub fn validate_line(value: &str, what: &str) -> Result<(), String> {
    if value.chars().any(|c| c == '\n' || c == '\r' || c == '\0') {
        Err(format!("{what} must not contain a newline or NUL"))
    } else {
        Ok(())
    }
}

/// A `[user@]host[:port]` as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Spec {
    pub fn named(host: &str) -> Spec {
        Spec {
            user: None,
            host: host.to_string(),
            port: None,
        }
    }
}

/// One ProxyJump hop: `[user@]host[:port]` or `ssh://[user@]host[:port]`, checked so that it
/// cannot be read as an ssh option.
pub fn parse_hop(text: &str) -> Result<Hop> {
    let bare = text
        .strip_prefix("ssh://")
        .map_or(text, |rest| rest.strip_suffix('/').unwrap_or(rest));
    let spec = parse_spec(bare).with_context(|| format!("invalid jump host {text:?}"))?;
    Ok(Hop {
        user: spec.user,
        host: spec.host,
        port: spec.port,
    })
}

/// A ProxyJump hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Every hop of a ProxyJump value (comma-separated), or `none`.
pub fn validate_jump(hops: &str) -> Result<()> {
    if hops == "none" {
        return Ok(());
    }
    hops.split(',').try_for_each(|hop| parse_hop(hop).map(drop))
}

pub fn parse_spec(text: &str) -> Result<Spec> {
    let (user, rest) = match text.rsplit_once('@') {
        Some((user, rest)) => {
            validate_user_name(user)
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

pub fn parse_port(port: &str) -> Result<u16> {
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
