//! `[environments.NAME]`: one file for staging and production. The selected environment's
//! tables are laid over the base ones before any section is checked, so every value keeps the
//! place it was written at, and the rest of shipit sees one plain configuration.

use std::collections::BTreeMap;

use anyhow::Result;
use toml::Spanned;

use super::model::{Config, Sources};
use super::raw::{RawConfig, RawDeploy, RawEnvironment, RawHealth, RawHooks};
use super::source::Source;
use crate::validate::validate_app_name;

/// The environments' names, each checked as a host name is.
pub(super) fn names(src: &Source, raw: &RawConfig) -> Result<Vec<String>> {
    raw.environments
        .keys()
        .map(|name| {
            src.check(name, |n| {
                validate_app_name(n).map_err(|_| {
                    format!("invalid environment name {n:?}: use lowercase letters, digits and '-'")
                })
            })?;
            Ok(name.get_ref().clone())
        })
        .collect()
}

/// `-e NAME` checked against the file: a name it defines, and none when it defines none.
pub(super) fn check_selected(src: &Source, names: &[String], selected: Option<&str>) -> Result<()> {
    let Some(name) = selected else {
        return Ok(());
    };
    if names.is_empty() {
        crate::fail!(
            Usage,
            "-e {name}: {} defines no environments\n  help: leave out -e, or add an \
             [environments.{name}] table",
            src.path.display()
        );
    }
    if !names.iter().any(|n| n == name) {
        crate::fail!(
            Usage,
            "unknown environment {name:?}: {} defines {}\n  help: {}",
            src.path.display(),
            names.join(", "),
            pick_one(names)
        );
    }
    Ok(())
}

/// `add -e staging or -e production`
pub(super) fn pick_one(names: &[String]) -> String {
    let flags: Vec<String> = names.iter().map(|n| format!("-e {n}")).collect();
    match flags.split_last() {
        Some((last, [])) => format!("add {last}"),
        Some((last, rest)) => format!("add {} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Lays environment `name` over the base: its hosts (and then its groups) replace the base's,
/// its `[service]` env keys join each host's env (over the base's), its env_file and
/// env_command replace the base's, and so does each key of its `[health]`, `[deploy]` and
/// `[hooks]`.
pub(super) fn apply(raw: &mut RawConfig, name: &str) -> Result<()> {
    let key = raw
        .environments
        .keys()
        .find(|k| k.get_ref() == name)
        .cloned()
        .expect("a checked environment name");
    let env = raw.environments.remove(&key).expect("found above");
    let RawEnvironment {
        hosts,
        groups,
        service,
        health,
        deploy,
        hooks,
    } = env;
    if !hosts.is_empty() {
        raw.hosts = hosts;
        raw.groups = groups;
    } else if !groups.is_empty() {
        raw.groups = groups;
    }
    // The environment's env reaches each host through its env file, which overrides the
    // unit's Environment= lines: the unit, and so the package, stays the same in every
    // environment, and one build ships to all of them. A host's own env still wins.
    for host in raw.hosts.values_mut() {
        for (k, v) in &service.env {
            if !host.env.contains_key(k) {
                host.env.insert(k.clone(), v.clone());
            }
        }
    }
    raw.service.env_file = service.env_file.or(raw.service.env_file.take());
    raw.service.env_command = service.env_command.or(raw.service.env_command.take());
    if let Some(health) = health {
        raw.health = Some(lay_health(raw.health.take(), health));
    }
    lay_deploy(&mut raw.deploy, deploy);
    lay_hooks(&mut raw.hooks, hooks);
    Ok(())
}

/// Each key the environment writes replaces the base's; one that names a kind of check (`url`,
/// `tcp`, `command`) replaces the base's kind, with the keys that belong to it.
fn lay_health(base: Option<Spanned<RawHealth>>, over: Spanned<RawHealth>) -> Spanned<RawHealth> {
    let Some(base) = base else {
        return over;
    };
    let span = base.span();
    let (mut base, over) = (base.into_inner(), over.into_inner());
    // A kind the environment names comes with its own options (send, expect, expect_status).
    let kind_written = over.url.is_some() || over.tcp.is_some() || over.command.is_some();
    let kind = if kind_written {
        RawHealth::default()
    } else {
        base.kind()
    };
    let layed = RawHealth {
        url: over.url.or(kind.url),
        expect_status: over.expect_status.or(kind.expect_status),
        tcp: over.tcp.or(kind.tcp),
        send: over.send.or(kind.send),
        expect: over.expect.or(kind.expect),
        command: over.command.or(kind.command),
        interval: over.interval.or(base.interval),
        timeout: over.timeout.or(base.timeout),
        retries: over.retries.or(base.retries),
        settle: over.settle.or(base.settle),
        check_version: over.check_version.or(base.check_version),
    };
    Spanned::new(span, layed)
}

fn lay_deploy(base: &mut RawDeploy, over: RawDeploy) {
    let RawDeploy {
        keep_releases,
        preflight,
        batch,
        canary,
        max_fail,
        parallel,
        confirm_timeout,
        lock_wait,
    } = over;
    lay(&mut base.keep_releases, keep_releases);
    lay(&mut base.preflight, preflight);
    lay(&mut base.batch, batch);
    lay(&mut base.canary, canary);
    lay(&mut base.max_fail, max_fail);
    lay(&mut base.parallel, parallel);
    lay(&mut base.confirm_timeout, confirm_timeout);
    lay(&mut base.lock_wait, lock_wait);
}

fn lay_hooks(base: &mut RawHooks, over: RawHooks) {
    let RawHooks {
        before_switch,
        before_switch_on,
        after_switch,
        local_before,
        local_after,
        timeout,
    } = over;
    lay(&mut base.before_switch, before_switch);
    lay(&mut base.before_switch_on, before_switch_on);
    lay(&mut base.after_switch, after_switch);
    lay(&mut base.local_before, local_before);
    lay(&mut base.local_after, local_after);
    lay(&mut base.timeout, timeout);
}

fn lay<T>(base: &mut Option<T>, over: Option<T>) {
    if over.is_some() {
        *base = over;
    }
}

/// Where each env value of the (laid over) configuration is written.
pub(super) fn sources(src: &Source, raw: &RawConfig) -> Sources {
    let places = |env: &BTreeMap<Spanned<String>, Spanned<String>>| {
        env.iter()
            .map(|(k, v)| (k.get_ref().clone(), src.location(&v.span())))
            .collect()
    };
    Sources {
        service_env: places(&raw.service.env),
        host_env: raw
            .hosts
            .iter()
            .map(|(name, host)| (name.get_ref().clone(), places(&host.env)))
            .collect(),
    }
}

impl Config {
    /// For the commands that talk to hosts: with environments defined, one must be selected,
    /// so nobody deploys to production by leaving out a flag.
    pub fn require_environment(&self) -> Result<()> {
        if self.environment.is_none() && !self.environments.is_empty() {
            crate::fail!(
                Usage,
                "shipit.toml defines environments ({}), and this command talks to hosts: name the \
                 one it is for\n  help: {}",
                self.environments.join(", "),
                pick_one(&self.environments)
            );
        }
        Ok(())
    }
}
