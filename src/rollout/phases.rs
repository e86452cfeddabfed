//! One host's deploy in phases, so a fleet can run them host by host or batch by batch:
//! [`begin`] (check the host, lock, survey), [`transfer`] (everything before the switch; the
//! running release is untouched — for a lone host, the switch goes in the same batch),
//! [`activate`] (switch, health gate, rollback on failure) and [`finish`] (record, prune,
//! unlock). Each is one round trip on a healthy path.

use anyhow::Result;

use super::request::Options;
use crate::actions::deadman::{self, ArmTimer, ArmedTimer, Disarm};
use crate::actions::health::{self, OnInterrupt, UnitState};
use crate::actions::recover::{Before, listen, recover, restore, switched_state};
use crate::actions::release::{UnpackRelease, out_of_space};
use crate::actions::survey::{Survey, SurveyHost, check_room};
use crate::actions::switch::{FinishRelease, switch_to};
use crate::actions::upload::{SendPackage, Upload};
use crate::actions::{lock, preflight};
use crate::build::Target;
use crate::config::Health;
use crate::error::{Category, tagged};
use crate::events::{Event, Events};
use crate::hosts::check::{CheckHost, HostFacts, HostUnit};
use crate::hosts::log::{Entry, RecordLog};
use crate::hosts::runner::{failed_with, next};
use crate::hosts::script::Script;
use crate::hosts::{Layout, Runner};
use crate::names::ReleaseId;
use crate::package::Package;
use crate::remote::{Exit, Step, with_help};
use crate::ui::Ui;

/// What [`begin`] found: the host's facts (when it checked the host too), other deploys'
/// dead-man timers and what the host has.
pub struct Begun {
    pub facts: Option<HostFacts>,
    pub armed: Vec<ArmedTimer>,
    pub survey: Survey,
}

/// Why [`begin`] failed, and whether the lock was taken before it did (then the caller still
/// has to let go of it).
pub struct BeginFailure {
    pub error: anyhow::Error,
    pub locked: bool,
}

/// Checks the host (when `check` names the package's platform), takes the lock and surveys the
/// host, in one batch. A host that fails the check is not locked; a lock held elsewhere is
/// waited for as the options say.
pub fn begin(
    runner: &mut Runner,
    layout: &Layout,
    check: Option<Target>,
    options: &Options,
    events: &Events,
    ui: &Ui,
) -> Result<Begun, BeginFailure> {
    let host = runner.label();
    let unlocked = |error| BeginFailure {
        error,
        locked: false,
    };
    let check = check.map(|target| CheckHost { target });
    let mut batch: Vec<Step> = Vec::new();
    batch.extend(check.as_ref().map(|check| check.step(layout)));
    batch.push(lock::TakeLock::first(layout, options.armed).step(layout));
    batch.push(SurveyHost.step(layout));
    let mut answers = runner
        .run(batch)
        .map_err(|e| unlocked(interrupted_or(e, &host, "locking")))?
        .into_iter();
    let facts = match &check {
        Some(check) => Some(check.read(next(&mut answers), &host).map_err(unlocked)?),
        None => None,
    };
    let first = next(&mut answers);
    let taken = lock::settle(runner, layout, first, options.lock_wait, options.armed, ui)
        .map_err(|e| unlocked(interrupted_or(e, &host, "locking")))?;
    events.emit(Event::Locked { host: host.clone() });
    let survey = match taken.retried {
        false => next(&mut answers),
        true => runner.one(SurveyHost.step(layout)),
    }
    .and_then(|out| Survey::parse(&out))
    .map_err(|error| BeginFailure {
        error: interrupted_or(error, &host, "switching"),
        locked: true,
    })?;
    Ok(Begun {
        facts,
        armed: taken.armed,
        survey,
    })
}

/// What the transfer phase found and did on one host.
#[derive(Debug)]
pub struct Transfer {
    pub upload: Upload,
    pub upload_seconds: f64,
    pub reused_release: bool,
    /// The healthy release running before this deploy, to return to on failure.
    pub previous: Option<ReleaseId>,
    pub previous_version: Option<String>,
    /// The host's clock before the switch, to show the journal from there.
    pub since: u64,
    /// Set when the switch went in the same batch: the unit's state after the restart, or
    /// how the switch failed. [`activate`] takes it.
    pub started: Option<Result<UnitState>>,
}

/// Whether the transfer also switches (a lone host: nothing waits for other hosts between).
pub enum Then<'o> {
    Wait,
    Switch {
        options: &'o Options,
        health: Option<&'o Health>,
    },
}

/// Upload, unpack, prepare the user and env file, verify the unit, in one batch; nothing the
/// running release uses changes, unless `then` switches too. A partial upload found corrupt is
/// sent again whole.
#[allow(clippy::too_many_arguments)]
pub fn transfer(
    runner: &mut Runner,
    layout: &Layout,
    package: &Package,
    secrets: Option<&[u8]>,
    host_unit: &HostUnit,
    survey: &Survey,
    preflight: Option<&Health>,
    then: Then,
    events: &Events,
    ui: &Ui,
) -> Result<Transfer> {
    let host = runner.label();
    let before = |e| interrupted_or(out_of_space(e, &host, layout), &host, "switching");
    check_room(survey, package, layout, &host)?;
    let running = survey
        .releases
        .iter()
        .find(|r| r.current && r.name != layout.release && !r.failed);
    let previous = running.map(|r| r.name.clone());
    let mut offset = Upload::plan(survey.earlier_upload, package);
    loop {
        let send = offset.map(|offset| SendPackage {
            size: package.size,
            offset,
        });
        let mut batch = Vec::new();
        if let Some(send) = &send {
            batch.push(send.with_package(layout, package, &host, &runner.cancel, ui)?);
        }
        batch.push(UnpackRelease::with_env_file(
            layout, package, secrets, host_unit,
        ));
        if let Some(health) = preflight {
            batch.push(preflight::Preflight::new(layout, package, host_unit, health)?.step(layout));
        }
        let switching = match &then {
            Then::Wait => false,
            Then::Switch { options, health } => {
                runner.cancel.check().map_err(before)?;
                if let Some(timeout) = options.confirm_timeout {
                    batch.push(ArmTimer::new(layout, previous.as_ref(), timeout).step(layout));
                }
                starting(runner, layout, package, ui);
                batch.push(switch_to(layout, &layout.release, listen(*health)));
                true
            }
        };
        let mut answers = runner.run(batch).map_err(before)?.into_iter();
        let mut upload_seconds = 0.0;
        let upload = match &send {
            None => Upload::Skipped,
            Some(send) => {
                let answer = next(&mut answers);
                upload_seconds = runner.answered_after(0).as_secs_f64();
                match answer {
                    Err(e) if send.offset > 0 && Exit::of(&e) == Some(Exit::Corrupt) => {
                        ui.status(
                            "Restarting",
                            "the upload: the partial upload on the host was corrupt",
                        );
                        offset = Some(0);
                        continue;
                    }
                    answer => send.read(answer).map_err(before)?,
                }
            }
        };
        report_upload(runner, upload, upload_seconds, package, events, ui);
        let reused_release =
            UnpackRelease::read(next(&mut answers), host_unit, &host, ui).map_err(before)?;
        if preflight.is_some() {
            preflight::passed(next(&mut answers), layout, &host).map_err(before)?;
            if !runner.is_dry_run() {
                let place = match package.socket {
                    Some(_) => "on a scratch socket",
                    None => "in its release before the switch",
                };
                ui.status(
                    "Pre-flight",
                    format_args!(
                        "{} {} passed its [health] check {place} on {host}",
                        layout.app, package.manifest.version
                    ),
                );
            }
        }
        let mut transfer = Transfer {
            upload,
            upload_seconds,
            reused_release,
            previous: previous.clone(),
            previous_version: running.map(|r| r.version.clone()),
            since: survey.now,
            started: None,
        };
        if let (true, Then::Switch { options, .. }) = (switching, &then) {
            let armed = match options.confirm_timeout {
                Some(_) => next(&mut answers).map(|_| ()),
                None => Ok(()),
            };
            let switched = armed.and_then(|()| next(&mut answers));
            transfer.started = Some(switched.map(|out| {
                report_switch(runner, layout, events);
                switched_state(runner, layout, &out, ui)
            }));
        }
        return Ok(transfer);
    }
}

fn report_upload(
    runner: &Runner,
    upload: Upload,
    seconds: f64,
    package: &Package,
    events: &Events,
    ui: &Ui,
) {
    let host = runner.label();
    if !runner.is_dry_run() {
        let (bytes, resumed_from) = match upload {
            Upload::Sent { sent, resumed_from } => (sent, resumed_from),
            Upload::Skipped => (0, 0),
        };
        events.emit(Event::Uploaded {
            host: host.clone(),
            bytes,
            seconds,
            resumed_from,
            skipped: upload == Upload::Skipped,
        });
    }
    match upload {
        Upload::Skipped => ui.status(
            "Skipped",
            format_args!("upload: {host} already has {}", &package.sha256[..12]),
        ),
        Upload::Sent { sent, resumed_from } if !runner.is_dry_run() => ui.status(
            "Uploaded",
            format_args!(
                "{} to {host} in {seconds:.2}s{}",
                crate::ui::bytes_text(sent),
                if resumed_from > 0 {
                    format!(", resuming at byte {resumed_from}")
                } else {
                    String::new()
                }
            ),
        ),
        Upload::Sent { .. } => {}
    }
}

fn report_switch(runner: &Runner, layout: &Layout, events: &Events) {
    events.emit(Event::Switched {
        host: runner.label(),
        release: layout.release.to_string(),
    });
}

fn starting(runner: &Runner, layout: &Layout, package: &Package, ui: &Ui) {
    ui.status(
        "Starting",
        format_args!(
            "{} {} on {}",
            layout.app,
            package.manifest.version,
            runner.label()
        ),
    );
}

/// Switch to the new release (unless [`transfer`] did) and prove it healthy; on failure, roll
/// back (unless told not to) and return the outcome as the error.
#[allow(clippy::too_many_arguments)]
pub fn activate(
    runner: &mut Runner,
    layout: &Layout,
    package: &Package,
    health: Option<&Health>,
    transfer: &mut Transfer,
    options: &Options,
    events: &Events,
    ui: &Ui,
) -> Result<()> {
    let host = runner.label();
    let started = match transfer.started.take() {
        Some(state) => state.map(Some),
        None => {
            runner
                .cancel
                .check()
                .map_err(|e| interrupted_or(e, &host, "switching"))?;
            let mut batch = Vec::new();
            if let Some(timeout) = options.confirm_timeout {
                let arm = ArmTimer::new(layout, transfer.previous.as_ref(), timeout);
                batch.push(arm.step(layout));
            }
            starting(runner, layout, package, ui);
            batch.push(switch_to(layout, &layout.release, listen(health)));
            let armed = options.confirm_timeout.is_some();
            let mut answers = runner
                .run(batch)
                .map_err(|e| interrupted_or(e, &host, "switching"))?
                .into_iter();
            if armed {
                next(&mut answers).map_err(|e| interrupted_or(e, &host, "switching"))?;
            }
            next(&mut answers).map(|out| {
                report_switch(runner, layout, events);
                Some(switched_state(runner, layout, &out, ui))
            })
        }
    };
    let healthy = started.and_then(|state| {
        if runner.is_dry_run() {
            runner.note(
                "# then: the health gate; on failure, roll back to the previous release".into(),
            );
            return Ok(());
        }
        health::gate(
            runner,
            layout,
            health,
            Some(&package.manifest.version),
            state,
            OnInterrupt::Stop,
            events,
            ui,
        )
    });
    if let Err(failure) = healthy {
        return Err(recover(
            runner,
            layout,
            health,
            Before {
                previous: transfer.previous.as_ref(),
                since: transfer.since,
            },
            failure,
            options.on_failure,
            events,
            ui,
        ));
    }
    if !runner.is_dry_run() {
        events.emit(Event::Healthy {
            host: host.clone(),
            release: layout.release.to_string(),
        });
        ui.status(
            "Healthy",
            format_args!("{} {} on {host}", layout.app, package.manifest.version),
        );
    }
    Ok(())
}

/// What [`finish`] did.
#[derive(Debug, Default)]
pub struct Finished {
    pub pruned: Vec<String>,
    /// The lock is still held (releasing it failed, e.g. the connection died).
    pub still_locked: bool,
}

/// Whether this deploy holds a host's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    Held,
    NotHeld,
}

/// Ends a host's deploy in one batch: with `keep`, records the release as good and prunes to
/// that many releases (refused when this deploy's dead-man timer undid the release); appends
/// `log` to the host's deploy log; then lets go of the lock, whatever happened before. Returns
/// the first error beside what was done.
pub fn finish(
    runner: &mut Runner,
    layout: &Layout,
    keep: Option<usize>,
    log: Option<&Entry>,
    lock: Lock,
) -> (Finished, Option<anyhow::Error>) {
    runner.clean_up();
    let (deployed, locked) = (keep.is_some(), lock == Lock::Held);
    let mut batch = Vec::new();
    if let Some(keep) = keep {
        let finish = FinishRelease {
            release: layout.release.clone(),
            keep,
        };
        batch.push(finish.step(layout));
    }
    let logged = log.is_some();
    batch.extend(log.map(|entry| RecordLog::new(layout, entry).step(layout)));
    if locked {
        batch.push(lock::unlock_step(layout));
    }
    let mut finished = Finished {
        still_locked: locked,
        ..Finished::default()
    };
    if batch.is_empty() {
        return (finished, None);
    }
    let mut answers = match runner.run(batch) {
        Ok(answers) => answers.into_iter(),
        Err(e) => return (finished, Some(e)),
    };
    let mut error = None;
    if deployed {
        match next(&mut answers) {
            Ok(out) => finished.pruned = FinishRelease::pruned(&out),
            Err(e) if failed_with(&e, Exit::TimerFired).is_some() => {
                let host = runner.label();
                error = Some(with_help(
                    e,
                    format!("inspect with `shipit status {host}` and `shipit releases {host}`"),
                ));
            }
            Err(e) => error = Some(e),
        }
    }
    // A log that could not be written loses one line of history, not the deploy.
    if logged {
        let _ = next(&mut answers);
    }
    if locked && next(&mut answers).is_ok() {
        finished.still_locked = false;
    }
    (finished, error)
}

/// Switches a healthy host back to `previous` because the rollout elsewhere failed; its
/// dead-man timer (armed with `--confirm-timeout`) is disarmed first.
pub fn switch_back(
    runner: &mut Runner,
    layout: &Layout,
    previous: &ReleaseId,
    health: Option<&Health>,
    options: &Options,
    events: &Events,
    ui: &Ui,
) -> Result<()> {
    runner.clean_up();
    if options.confirm_timeout.is_some()
        && let Disarm::Fired(verdict) = deadman::disarm(runner, layout)?
    {
        anyhow::bail!("its dead-man timer fired first: {verdict}");
    }
    restore(runner, layout, previous, health, events, ui)
}

/// An interruption before the switch leaves the host as it was; say so.
pub fn interrupted_or(error: anyhow::Error, host: &str, before: &str) -> anyhow::Error {
    if crate::error::category_of(&error) == Some(Category::Interrupted) {
        tagged(
            Category::Interrupted,
            anyhow::anyhow!("interrupted before {before}: {host} still runs the release it had"),
        )
    } else {
        error
    }
}
