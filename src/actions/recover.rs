//! Putting a host back: after a switch, the unit's state as the switch step answered it; a
//! release switched back to and proved healthy ([`restore`]); and after a failed start, the
//! journal shown, the failed release marked, and the previous release restored or the service
//! stopped ([`recover`]). A deploy and `shipit rollback` both end this way when a release fails.

use std::time::Duration;

use super::deadman::{Disarm, DisarmTimer};
use super::health::{self, OnInterrupt, UnitState};
use super::switch::{Listen, MarkRelease, ReadJournal, StopService, switch_to};
use crate::config::Health;
use crate::error::{Category, tagged};
use crate::events::{Event, Events};
use crate::hosts::runner::next;
use crate::hosts::script::Script;
use crate::hosts::{Layout, Runner};
use crate::names::ReleaseId;
use crate::ui::Ui;

/// Whether a failed release stays in place (`--no-rollback`) or the previous one comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    RollBack,
    Stay,
}

/// How long the switch step waits on the host for the health URL's port to listen: the first
/// probe interval, when the URL is on the host itself.
pub fn listen(health: Option<&Health>) -> Listen {
    let Some((health, (host, port))) = health.and_then(|h| Some((h, h.address()?))) else {
        return Listen::default();
    };
    let local = matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1" | "0.0.0.0");
    Listen {
        port: local.then_some(port),
        wait: health.interval.min(Duration::from_secs(5)),
    }
}

/// The unit's state after a switch, saying so when the switch had to stop the service before
/// its socket unit could take the port (see `switch.sh`).
pub fn switched_state(runner: &Runner, layout: &Layout, out: &str, ui: &Ui) -> UnitState {
    if out.lines().any(|l| l == "socket=first") {
        ui.status(
            "Note",
            format_args!(
                "{}: {} bound its port itself, so it stopped before {} could take the port: \
                 connections were refused for this one restart; from now on they wait in the \
                 socket's queue",
                runner.label(),
                layout.unit_name(),
                layout.socket_name()
            ),
        );
    }
    health::parse_state(out)
}

/// Switches to `previous` and proves it healthy, whatever Ctrl-C says.
pub fn restore(
    runner: &mut Runner,
    layout: &Layout,
    previous: &ReleaseId,
    health: Option<&Health>,
    events: &Events,
    ui: &Ui,
) -> anyhow::Result<()> {
    let state = runner.one(switch_to(layout, previous, listen(health)))?;
    let state = switched_state(runner, layout, &state, ui);
    health::gate(
        runner,
        layout,
        health,
        None,
        Some(state),
        OnInterrupt::Continue,
        events,
        ui,
    )?;
    events.emit(Event::RolledBack {
        host: runner.label(),
        release: previous.to_string(),
    });
    Ok(())
}

/// What the host ran before the switch: the release to return to, and the host's clock then
/// (the journal is shown from there).
pub struct Before<'a> {
    pub previous: Option<&'a ReleaseId>,
    pub since: u64,
}

/// After a failed start: show the journal, then return to the previous release (or stop the
/// service when there is none) and check it; say which of those happened.
#[allow(clippy::too_many_arguments)]
pub fn recover(
    runner: &mut Runner,
    layout: &Layout,
    health: Option<&Health>,
    before: Before,
    failure: anyhow::Error,
    on_failure: OnFailure,
    events: &Events,
    ui: &Ui,
) -> anyhow::Error {
    runner.clean_up();
    let host = runner.label();
    let interrupted = crate::error::category_of(&failure) == Some(Category::Interrupted);
    // The timer must not fire into the rollback; if it fired already, it does the rollback.
    // Disarming, the journal and marking the release failed go in one batch.
    let mut answers = runner
        .run(vec![
            DisarmTimer::new(layout).step(layout),
            ReadJournal {
                since: before.since,
            }
            .step(layout)
            .always(),
            MarkRelease {
                release: layout.release.clone(),
                healthy: false,
            }
            .step(layout)
            .always(),
        ])
        .map(Vec::into_iter);
    let mut take = || match &mut answers {
        Ok(answers) => next(answers),
        Err(e) => Err(anyhow::anyhow!("{e:#}")),
    };
    let disarmed = DisarmTimer::read(take(), runner.is_dry_run());
    if let Ok(Disarm::Fired(verdict)) = disarmed {
        return tagged(
            Category::RollbackFailed,
            failure.context(format!(
                "{} {} failed on {host}, and its dead-man timer fired before shipit could roll \
                 back: {verdict}\n  help: inspect with `shipit status {host}`",
                layout.app, layout.release
            )),
        );
    }
    if let Ok(journal) = take() {
        ui.diagnostic(format_args!(
            "--- journal of {} on {host} since the restart ---\n{}\n---",
            layout.unit_name(),
            journal.trim_end()
        ));
    }
    let _ = take();
    let failure = if interrupted {
        anyhow::anyhow!(
            "interrupted while {} {} was starting on {host}",
            layout.app,
            layout.release
        )
    } else {
        failure.context(format!(
            "{} {} failed its health check on {host}",
            layout.app, layout.release
        ))
    };
    if on_failure == OnFailure::Stay && !interrupted {
        return tagged(
            Category::Remote,
            failure.context(format!(
                "--no-rollback: {} stays on {host} as it is",
                layout.release
            )),
        );
    }
    let Some(previous) = before.previous else {
        return match runner.one(StopService.step(layout)) {
            Ok(_) => tagged(
                if interrupted {
                    Category::Interrupted
                } else {
                    Category::Remote
                },
                failure.context(
                    "there is no earlier release to return to, so the service was stopped",
                ),
            ),
            Err(e) => tagged(Category::RollbackFailed, e.context(format!("{failure:#}"))),
        };
    };
    ui.status("Rolling back", format_args!("to {previous} on {host}"));
    match restore(runner, layout, previous, health, events, ui) {
        Ok(()) => tagged(
            if interrupted {
                Category::Interrupted
            } else {
                Category::RolledBack
            },
            failure.context(format!(
                "rolled back: {previous} is running again on {host} and passed its health check"
            )),
        ),
        Err(e) => tagged(
            Category::RollbackFailed,
            anyhow::anyhow!(
                "{failure:#}\nand rolling back to {previous} failed too: {e:#}\n  \
                 help: inspect with `shipit status {host}` and `shipit logs {host}`"
            ),
        ),
    }
}
