//! `[hooks]`: the commands run around the switch, here and on the hosts.

use anyhow::Result;

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
    Ok(Hooks {
        before_switch: argv(raw.before_switch, "before_switch")?,
        before_switch_on,
        after_switch: argv(raw.after_switch, "after_switch")?,
        local_before: argv(raw.local_before, "local_before")?,
        local_after: argv(raw.local_after, "local_after")?,
    })
}
