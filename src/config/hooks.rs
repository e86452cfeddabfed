//! `[hooks]`: the commands run around the switch, here and on the hosts.

use std::time::Duration;

use anyhow::Result;
use toml::Spanned;

use super::model::{HookHosts, Hooks};
use super::raw::{RawArgv, RawHooks};
use super::source::{Source, choice, parse_argv};

pub(super) fn parse_hooks(src: &Source, raw: RawHooks) -> Result<Hooks> {
    let argv = |value: Option<RawArgv>, key| value.map(|v| parse_argv(src, v, key)).transpose();
    let before_switch_on = match &raw.before_switch_on {
        None => HookHosts::First,
        Some(on) if raw.before_switch.is_none() => {
            return Err(src.error(&on.span(), "before_switch_on needs a before_switch hook"));
        }
        Some(on) => choice(src, on, "before_switch_on", &HookHosts::NAMES)?,
    };
    let on_hosts = raw.before_switch.is_some() || raw.after_switch.is_some();
    let timeout = raw
        .timeout
        .map(|t| parse_timeout(src, t, on_hosts))
        .transpose()?;
    Ok(Hooks {
        before_switch: argv(raw.before_switch, "before_switch")?,
        before_switch_on,
        after_switch: argv(raw.after_switch, "after_switch")?,
        local_before: argv(raw.local_before, "local_before")?,
        local_after: argv(raw.local_after, "local_after")?,
        timeout,
    })
}

/// `timeout`: a duration longer than zero, for the hooks that run on hosts.
fn parse_timeout(src: &Source, raw: Spanned<String>, on_hosts: bool) -> Result<Duration> {
    if !on_hosts {
        return Err(src.error(
            &raw.span(),
            "timeout bounds the hooks on hosts: it needs a before_switch or after_switch hook",
        ));
    }
    let timeout = humantime::parse_duration(raw.get_ref()).map_err(|e| {
        src.error(
            &raw.span(),
            format!("{:?} is not a duration like \"10m\": {e}", raw.get_ref()),
        )
    })?;
    if timeout.is_zero() {
        return Err(src.error(
            &raw.span(),
            "timeout must be longer than 0s (leave it out for no limit)",
        ));
    }
    Ok(timeout)
}
