//! One host's deploy in three phases, so a fleet can run them host by host or batch by batch:
//! [`transfer`] (everything before the switch; the running release is untouched), [`activate`]
//! (switch, health gate, rollback on failure) and [`finalize`] (record, prune).

use std::time::Instant;

use anyhow::Result;

use super::deadman::{self, Disarm};
use super::runner::Runner;
use super::steps::{self, HostFacts, HostUnit, Upload};
use super::{Layout, Options, health};
use crate::config::Health;
use crate::error::{Category, tagged};
use crate::interrupt;
use crate::package::Package;
use crate::ui::Ui;

/// What the transfer phase found and did on one host.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub upload: Upload,
    pub upload_seconds: f64,
    pub reused_release: bool,
    /// The healthy release running before this deploy, to return to on failure.
    pub previous: Option<String>,
    pub previous_version: Option<String>,
    /// The host's clock before the switch, to show the journal from there.
    pub since: u64,
}

/// Upload, unpack, prepare the user and env file, verify the unit. Nothing the running release
/// uses changes here.
pub fn transfer(
    runner: &mut Runner,
    layout: &Layout,
    package: &Package,
    secrets: Option<&[u8]>,
    host_unit: &HostUnit,
    ui: &Ui,
) -> Result<Transfer> {
    let host = runner.label();
    let before = |e| interrupted_or(steps::out_of_space(e, &host, layout), &host, "switching");
    let survey = steps::survey(runner, layout).map_err(before)?;
    steps::check_room(&survey, package, layout, &host)?;
    let started = Instant::now();
    let upload =
        steps::upload(runner, layout, package, survey.earlier_upload, ui).map_err(before)?;
    let upload_seconds = started.elapsed().as_secs_f64();
    report_upload(runner, upload, upload_seconds, package, ui);
    let reused_release =
        steps::prepare_release(runner, layout, package, secrets, host_unit).map_err(before)?;
    let since = survey.now;
    let running = survey
        .releases
        .into_iter()
        .find(|r| r.current && r.name != layout.release && !r.failed);
    Ok(Transfer {
        upload,
        upload_seconds: if upload == Upload::Skipped {
            0.0
        } else {
            upload_seconds
        },
        reused_release,
        previous: running.as_ref().map(|r| r.name.clone()),
        previous_version: running.map(|r| r.version),
        since,
    })
}

/// The package's unit as this host's systemd takes it, saying what had to be left out.
pub fn host_unit(runner: &mut Runner, package: &Package, facts: HostFacts, ui: &Ui) -> HostUnit {
    let host = runner.label();
    let (adapted, left_out) = crate::systemd::unit_for(&package.unit, facts.systemd);
    for directive in &left_out {
        ui.status("Note", format_args!("{host}: {directive}"));
        runner.note(format!("# {host}: {directive}"));
    }
    HostUnit {
        systemd: facts.systemd,
        adapted: (!left_out.is_empty()).then_some(adapted),
    }
}

fn report_upload(runner: &Runner, upload: Upload, seconds: f64, package: &Package, ui: &Ui) {
    let host = runner.label();
    match upload {
        Upload::Skipped => ui.status(
            "Skipped",
            format_args!("upload: {host} already has {}", &package.sha256[..12]),
        ),
        Upload::Sent { sent, resumed_from } if !runner.is_dry_run() => ui.status(
            "Uploaded",
            format_args!(
                "{sent} bytes to {host} in {seconds:.1}s{}",
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

/// Switch to the new release and prove it healthy; on failure, roll back (unless told not to)
/// and return the outcome as the error.
pub fn activate(
    runner: &mut Runner,
    layout: &Layout,
    package: &Package,
    health: Option<&Health>,
    transfer: &Transfer,
    options: &Options,
    ui: &Ui,
) -> Result<()> {
    let host = runner.label();
    interrupt::check().map_err(|e| interrupted_or(e, &host, "switching"))?;
    if let Some(timeout) = options.confirm_timeout {
        deadman::arm(runner, layout, transfer.previous.as_deref(), timeout)
            .map_err(|e| interrupted_or(e, &host, "switching"))?;
    }
    ui.status(
        "Starting",
        format_args!("{} {} on {host}", layout.app, package.manifest.version),
    );
    let healthy = steps::switch_to(runner, layout, &layout.release).and_then(|()| {
        if runner.is_dry_run() {
            runner.note(
                "# then: the health gate; on failure, roll back to the previous release".into(),
            );
            return Ok(());
        }
        health::gate(
            runner.remote,
            layout,
            health,
            Some(&package.manifest.version),
            true,
            ui,
        )
    });
    if let Err(failure) = healthy {
        return Err(recover(
            runner,
            layout,
            health,
            transfer,
            failure,
            options.no_rollback,
            ui,
        ));
    }
    if !runner.is_dry_run() {
        ui.status(
            "Healthy",
            format_args!("{} {} on {host}", layout.app, package.manifest.version),
        );
    }
    Ok(())
}

/// Record the release as good and prune; returns the pruned releases.
pub fn finalize(runner: &mut Runner, layout: &Layout, keep: usize) -> Result<Vec<String>> {
    steps::mark_good_and_prune(runner, layout, &layout.release, keep)
}

/// Switches a healthy host back to `previous` because the rollout elsewhere failed; its
/// dead-man timer (`armed`) is disarmed first.
pub fn switch_back(
    runner: &mut Runner,
    layout: &Layout,
    previous: &str,
    health: Option<&Health>,
    armed: bool,
    ui: &Ui,
) -> Result<()> {
    runner.clean_up();
    if armed && let Disarm::Fired(verdict) = deadman::disarm(runner, layout)? {
        anyhow::bail!("its dead-man timer fired first: {verdict}");
    }
    steps::switch_to(runner, layout, previous)?;
    health::gate(runner.remote, layout, health, None, false, ui)
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

/// After a failed start: show the journal, then return to the previous release (or stop the
/// service when there is none) and check it; say which of those happened.
pub fn recover(
    runner: &mut Runner,
    layout: &Layout,
    health: Option<&Health>,
    transfer: &Transfer,
    failure: anyhow::Error,
    no_rollback: bool,
    ui: &Ui,
) -> anyhow::Error {
    runner.clean_up();
    let host = runner.label();
    // The timer must not fire into the rollback; if it fired already, it does the rollback.
    if let Ok(Disarm::Fired(verdict)) = deadman::disarm(runner, layout) {
        return tagged(
            Category::RollbackFailed,
            failure.context(format!(
                "{} {} failed on {host}, and its dead-man timer fired before shipit could roll \
                 back: {verdict}\n  help: inspect with `shipit status {host}`",
                layout.app, layout.release
            )),
        );
    }
    let interrupted = crate::error::category_of(&failure) == Some(Category::Interrupted);
    if let Ok(journal) = steps::journal_since(runner, layout, transfer.since) {
        ui.diagnostic(format_args!(
            "--- journal of {} on {host} since the restart ---\n{}\n---",
            layout.unit_name(),
            journal.trim_end()
        ));
    }
    let _ = steps::mark(runner, layout, &layout.release, false);
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
    if no_rollback && !interrupted {
        return tagged(
            Category::Remote,
            failure.context(format!(
                "--no-rollback: {} stays on {host} as it is",
                layout.release
            )),
        );
    }
    let Some(previous) = transfer.previous.as_deref() else {
        return match steps::stop(runner, layout) {
            Ok(()) => tagged(
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
    let restored = steps::switch_to(runner, layout, previous)
        .and_then(|()| health::gate(runner.remote, layout, health, None, false, ui));
    match restored {
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
