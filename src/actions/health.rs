//! The health gate: systemd says active and the restart count holds still for the settle period
//! (a crash loop shows up there), then the `[health]` check of its kind ([`super::check`])
//! passes, with the deployed version when the service reports one. A unit whose main process
//! exits or restarts fails it at once, whatever tries are left.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::check::{self, Reply};
use super::switch::ReadUnitState;
use crate::cancel::Cancel;
use crate::config::{Check, Health};
use crate::events::{Event, Events};
use crate::hosts::deployed::Deployed;
use crate::hosts::script::Script;
use crate::hosts::{Layout, Runner};
use crate::remote::probe::NoProbeTool;
use crate::remote::{self, Remote};
use crate::ui::Ui;

/// What a Ctrl-C does to a gate: stops a new release's, not a rollback's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    Stop,
    Continue,
}

/// The gate's verdict that the release is not healthy, as opposed to the gate failing to ask
/// (a lost connection): the fleet summary's HEALTH column reads this, not the message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotHealthy(pub String);

/// Whether `error` is the gate's verdict (the release is not healthy, or cannot be probed).
pub fn judged_unhealthy(error: &anyhow::Error) -> bool {
    crate::error::find::<NotHealthy>(error).is_some()
        || crate::error::find::<NoProbeTool>(error).is_some()
}

fn not_healthy(why: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(NotHealthy(why.into()))
}

/// The unit's state as `systemctl show` prints it.
pub type UnitState = BTreeMap<String, String>;

pub fn parse_state(out: &str) -> UnitState {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const POLL: Duration = Duration::from_millis(500);
/// How often a health URL that refuses connections is tried during the first interval.
const EARLY_POLL: Duration = Duration::from_millis(20);
/// How long a unit may take to become active when no health table sets a pace.
const DEFAULT_START_WAIT: Duration = Duration::from_secs(30);

/// `systemctl show` for the app's unit, as a map.
pub fn unit_properties(remote: &mut dyn Remote, layout: &Layout) -> Result<UnitState> {
    let out = remote::run_one(remote, ReadUnitState.step(layout))?;
    Ok(parse_state(&out))
}

/// The longest the gate can take; a dead-man timer must outlast it.
pub fn budget(health: Option<&Health>) -> Duration {
    let start_wait = health.map_or(DEFAULT_START_WAIT, |h| {
        (h.interval * h.retries).max(Duration::from_secs(5))
    });
    let settle = health.map_or(Duration::from_secs(3), |h| h.settle);
    let probes = health.map_or(Duration::ZERO, |h| (h.interval + h.timeout) * h.retries);
    start_wait + settle + probes
}

/// How long the gate waits for the unit to become active; the switch step also waits up to
/// the first probe interval on the host for the service to listen.
pub fn start_wait(health: Option<&Health>) -> Duration {
    health.map_or(DEFAULT_START_WAIT, |h| {
        (h.interval * h.retries).max(Duration::from_secs(5))
    })
}

/// Passes, or fails with the reason in words ([`NotHealthy`] when the release is not).
/// `started`: the unit's state as the switch step found it, which saves asking again. Each try
/// of the health URL is an event.
#[allow(clippy::too_many_arguments)]
pub fn gate(
    runner: &mut Runner,
    layout: &Layout,
    health: Option<&Health>,
    expected_version: Option<&str>,
    started: Option<UnitState>,
    interruptible: OnInterrupt,
    events: &Events,
    ui: &Ui,
) -> Result<()> {
    // A gate that must finish (a rollback's) gets a token nothing sets.
    let cancel = match interruptible {
        OnInterrupt::Stop => runner.cancel.clone(),
        OnInterrupt::Continue => Cancel::new(),
    };
    let interruptible = &cancel;
    let host = runner.label();
    let remote = &mut *runner.remote;
    let start_wait = start_wait(health);
    let active = crate::timings::time("health: active", || {
        wait_active(remote, layout, start_wait, started, interruptible)
    })?;
    let settle = health.map_or(Duration::from_secs(3), |h| h.settle);
    let steady = crate::timings::time("health: settle", || {
        hold_still(remote, layout, active, settle, interruptible)
    })?;
    if let Some(health) = health {
        crate::timings::time("health: probe", || {
            let report = |attempt, answer: &Result<Reply>, ok| {
                events.emit(Event::Probe {
                    host: host.clone(),
                    attempt,
                    kind: health.check.kind().to_string(),
                    status: answer.as_ref().ok().and_then(|a| a.status),
                    answer: answer.as_ref().ok().map(|a| a.said.clone()),
                    error: answer.as_ref().err().map(|e| format!("{e:#}")),
                    ok,
                });
            };
            let mut ask = Asker::new(remote, layout, health, ui)?;
            ask.steady = Some(steady);
            probe(&mut ask, expected_version, interruptible, &report)
        })?;
    }
    Ok(())
}

fn wait_active(
    remote: &mut dyn Remote,
    layout: &Layout,
    limit: Duration,
    started: Option<UnitState>,
    interruptible: &Cancel,
) -> Result<UnitState> {
    let deadline = Instant::now() + limit;
    let mut known = started;
    loop {
        let props = match known.take() {
            Some(props) => props,
            None => unit_properties(remote, layout)?,
        };
        let state = prop(&props, "ActiveState");
        if state == "active" {
            return Ok(props);
        }
        // Its main process already exited: waiting for a restart proves nothing more.
        if state == "failed" || prop(&props, "SubState") == "auto-restart" {
            return Err(not_healthy(format!(
                "{} exited instead of starting (it is {}/{}, restarted {} times)",
                layout.unit_name(),
                state,
                prop(&props, "SubState"),
                prop(&props, "NRestarts")
            )));
        }
        if Instant::now() >= deadline {
            return Err(not_healthy(format!(
                "{} did not become active within {} (it is {}/{}, restarted {} times)",
                layout.unit_name(),
                humantime::format_duration(limit),
                state,
                prop(&props, "SubState"),
                prop(&props, "NRestarts")
            )));
        }
        nap(POLL, interruptible)?;
    }
}

/// Active is not enough: a service that exits after a second and is restarted looks active most
/// of the time. The restart count and main PID must not move for the whole settle period.
fn hold_still(
    remote: &mut dyn Remote,
    layout: &Layout,
    first: UnitState,
    settle: Duration,
    interruptible: &Cancel,
) -> Result<UnitState> {
    let deadline = Instant::now() + settle;
    while Instant::now() < deadline {
        nap(POLL.min(settle), interruptible)?;
        let now = unit_properties(remote, layout)?;
        if moved(&first, &now) {
            return Err(not_healthy(format!(
                "{} is not staying up: within {} of starting it went {}/{} and was restarted {} times (crash loop?)",
                layout.unit_name(),
                humantime::format_duration(settle),
                prop(&now, "ActiveState"),
                prop(&now, "SubState"),
                prop(&now, "NRestarts")
            )));
        }
    }
    Ok(first)
}

/// Whether the unit stopped, or its main process changed or was restarted, since `before`.
fn moved(before: &UnitState, now: &UnitState) -> bool {
    prop(now, "ActiveState") != "active"
        || ["NRestarts", "MainPID"]
            .iter()
            .any(|p| prop(now, p) != prop(before, p))
}

/// Tries the check until it passes, `retries` tries `interval` apart; a unit that stops or
/// restarts meanwhile fails the gate at once.
fn probe(
    ask: &mut Asker,
    expected_version: Option<&str>,
    interruptible: &Cancel,
    report: &dyn Fn(u32, &Result<Reply>, bool),
) -> Result<()> {
    let health = ask.health;
    let mut last;
    let started = Instant::now();
    let mut tries = 0;
    let mut attempt = 0;
    loop {
        let answer = ask.once();
        attempt += 1;
        let passed = match &answer {
            Ok(a) if a.healthy => expected_version
                .filter(|_| health.check_version)
                .is_none_or(|v| check_version(&a.body, v).is_ok()),
            _ => false,
        };
        report(attempt, &answer, passed);
        let unreachable = answer.is_err();
        match answer {
            Ok(answer) if answer.healthy => {
                if let Some(expected) = expected_version.filter(|_| health.check_version) {
                    check_version(&answer.body, expected).map_err(|e| {
                        not_healthy(format!(
                            "{} answered {}: {e}",
                            health.check.target(),
                            answer.said
                        ))
                    })?;
                }
                return Ok(());
            }
            Ok(answer) => last = answer.why,
            // No try can succeed: say so now rather than after every retry.
            Err(e) if crate::error::find::<NoProbeTool>(&e).is_some() => return Err(e),
            Err(e) => last = format!("{e:#}"),
        }
        // The first try lasts the first interval: while nothing answers yet, the check is tried
        // every EARLY_POLL, so a service that starts in milliseconds is not held back by a
        // whole interval. The number of tries and the longest the probes can take stay the same.
        if tries == 0 && unreachable && started.elapsed() + EARLY_POLL < health.interval {
            nap(EARLY_POLL, interruptible)?;
            continue;
        }
        ask.still_up()?;
        tries += 1;
        if tries >= health.retries.max(1) {
            break;
        }
        let pause = if tries == 1 {
            health.interval.saturating_sub(started.elapsed())
        } else {
            health.interval
        };
        nap(pause, interruptible)?;
    }
    Err(not_healthy(format!(
        "{} failed {} probes; last: {last}",
        health.check.target(),
        health.retries.max(1)
    )))
}

/// Asks the check once at a time, as its kind asks.
pub struct Asker<'a> {
    remote: &'a mut dyn Remote,
    layout: &'a Layout,
    health: &'a Health,
    ui: &'a Ui,
    /// For a command check: the release it runs in, and its unit.
    deployed: Option<Deployed>,
    /// The unit as it held still through the settle period: a try that fails also checks it
    /// has not moved since.
    steady: Option<UnitState>,
}

impl<'a> Asker<'a> {
    pub fn new(
        remote: &'a mut dyn Remote,
        layout: &'a Layout,
        health: &'a Health,
        ui: &'a Ui,
    ) -> Result<Asker<'a>> {
        let deployed = match &health.check {
            Check::Command { .. } => Some(Deployed::read(remote, layout)?),
            _ => None,
        };
        Ok(Asker {
            remote,
            layout,
            health,
            ui,
            deployed,
            steady: None,
        })
    }

    /// One try; an error when nothing could be asked (no connection, nothing listening).
    pub fn once(&mut self) -> Result<Reply> {
        let timeout = self.health.timeout;
        match &self.health.check {
            Check::Url { expect_status, .. } => {
                let (host, port, path) = self.health.endpoint().expect("a URL check");
                let answer = get(self.remote, &host, port, &path, timeout, self.ui)?;
                Ok(check::http_reply(answer, *expect_status))
            }
            Check::Tcp { send, expect, .. } => {
                let (host, port) = self.health.address().expect("a TCP check");
                let tcp = check::TcpCheck {
                    host: &host,
                    port,
                    send: send.as_deref(),
                    expect: expect.as_deref(),
                    timeout,
                };
                check::tcp(self.remote, self.layout, &tcp)
            }
            Check::Command { argv } => {
                let deployed = self.deployed.as_ref().expect("read for a command check");
                let run = check::CommandCheck::new(self.layout, deployed, &argv.words, timeout)?;
                check::command(self.remote, self.layout, &run)
            }
        }
    }

    /// Fails as soon as the unit's main process exited or was restarted: no try can pass then,
    /// however many are left.
    fn still_up(&mut self) -> Result<()> {
        let Some(steady) = &self.steady else {
            return Ok(());
        };
        let now = unit_properties(self.remote, self.layout)?;
        if moved(steady, &now) {
            return Err(not_healthy(format!(
                "{} stopped while its health was checked: it went {}/{}, main PID {} (was {}), \
                 restarted {} times",
                self.layout.unit_name(),
                prop(&now, "ActiveState"),
                prop(&now, "SubState"),
                prop(&now, "MainPID"),
                prop(steady, "MainPID"),
                prop(&now, "NRestarts")
            )));
        }
        Ok(())
    }
}

/// GET through the remote, passing on (once) how it had to do it.
pub fn get(
    remote: &mut dyn Remote,
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
    ui: &Ui,
) -> Result<remote::HttpAnswer> {
    let answer = remote.http_get(host, port, path, timeout);
    if let Some(notice) = remote.take_notice() {
        ui.status("Note", notice);
    }
    answer
}

/// A JSON `version` that differs means the old binary is still answering, or the wrong one runs.
/// The body is JSON, or (a command's output) has a line that is.
fn check_version(body: &str, expected: &str) -> Result<()> {
    let json = std::iter::once(body)
        .chain(body.lines())
        .find_map(|text| serde_json::from_str::<serde_json::Value>(text).ok());
    let Some(json) = json else {
        return Ok(());
    };
    match json.get("version").and_then(|v| v.as_str()) {
        Some(reported) if reported != expected => {
            anyhow::bail!("the service reports version {reported:?}, but {expected:?} was deployed")
        }
        _ => Ok(()),
    }
}

/// Sleeps, unless a Ctrl-C asks the gate to stop.
fn nap(duration: Duration, cancel: &Cancel) -> Result<()> {
    cancel.check()?;
    std::thread::sleep(duration);
    cancel.check()
}

fn prop<'a>(props: &'a UnitState, key: &str) -> &'a str {
    props.get(key).map_or("?", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_check_reads_json_only() {
        assert!(check_version(r#"{"status":"UP","version":"1.2.3"}"#, "1.2.3").is_ok());
        let err = check_version(r#"{"version":"1.2.2"}"#, "1.2.3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"1.2.2\""), "{err}");
        assert!(check_version("plain OK", "1.2.3").is_ok());
        assert!(check_version(r#"{"status":"UP"}"#, "1.2.3").is_ok());
    }
}
