//! `shipit rollback`: back to the previous good release, or the newest good one of a version,
//! health-checked, under the deploy lock; any dead-man timer armed on the host is disarmed.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::actions::recover::{self, OnFailure};
use crate::actions::switch::{Listen, MarkRelease, switch_to};
use crate::actions::{ArmedPolicy, health, lock};
use crate::cancel::Cancel;
use crate::config::{Config, Health};
use crate::error::{Category, Tag};
use crate::hosts::log::{Entry, RecordLog};
use crate::hosts::releases::{ListReleases, parse_now, parse_releases};
use crate::hosts::script::Script;
use crate::hosts::{self, Connection, Layout, Runner};
use crate::names::ReleaseId;
use crate::notify::{self, Notice};
use crate::ui::Ui;

/// `shipit rollback`, as the command line asked for it.
#[derive(Debug, Clone)]
pub struct Request {
    pub host: String,
    /// A version to return to, instead of the previous good release.
    pub to: Option<String>,
    pub connection: Connection,
}

/// `shipit rollback`: back to the previous good release, or the newest good one of a version.
pub fn run(config: &Config, request: &Request, ui: &Ui) -> Result<()> {
    let (host, to, connection) = (&request.host, request.to.as_deref(), &request.connection);
    let destination = hosts::resolve(config, host, connection)?;
    let cancel = Cancel::on_signals()?;
    let mut remote = hosts::connect(&destination, connection, ui)?;
    let layout = Layout::of_app(config);
    let mut runner = Runner::apply(&mut remote, &cancel);
    // A timer left armed could switch the host away from the release chosen here and mark
    // that release failed.
    let armed = lock::lock(
        &mut runner,
        &layout,
        Duration::ZERO,
        ArmedPolicy::Disarm,
        ui,
    )?;
    for timer in armed {
        ui.status(
            "Disarmed",
            format_args!(
                "the dead-man timer armed by {} for {} on {}: the rollback decides what runs \
                 there",
                timer.owner.who(),
                timer.release,
                runner.label()
            ),
        );
    }
    let health = hosts::health_for(config, host);
    let started = std::time::Instant::now();
    let mut chosen = Chosen::default();
    let result = rollback_locked(&mut runner, health.as_ref(), &layout, to, &mut chosen, ui);
    runner.clean_up();
    let entry = Entry::now(
        &layout.with_release(&chosen.target.clone().unwrap_or_default()),
        "rollback",
        chosen.version.as_deref().or(to).unwrap_or_default(),
        chosen.from.as_ref(),
        if result.is_ok() {
            "rolled-back"
        } else {
            "failed"
        },
        started.elapsed().as_secs_f64(),
    );
    let unlocked = record_and_unlock(&mut runner, &layout, &entry);
    if chosen.target.is_some() {
        notify::send(config, &notice(&layout, &runner, &entry, &result)?, ui);
    }
    let release = result?;
    unlocked?;
    println!(
        "rolled back {} on {} to {release}",
        layout.app,
        runner.label()
    );
    Ok(())
}

/// What `[notify]` is told once a rollback has chosen a release: how it ended on the host.
fn notice(
    layout: &Layout,
    runner: &Runner,
    entry: &Entry,
    result: &Result<ReleaseId>,
) -> Result<Notice> {
    #[derive(serde::Serialize)]
    struct Report<'a> {
        app: &'a str,
        host: &'a str,
        version: &'a str,
        release: &'a ReleaseId,
        previous: Option<&'a ReleaseId>,
        ok: bool,
        error: Option<String>,
        seconds: f64,
    }
    let report = Report {
        app: &layout.app,
        host: &runner.label(),
        version: &entry.version,
        release: &entry.release,
        previous: entry.previous.as_ref(),
        ok: result.is_ok(),
        error: result.as_ref().err().map(|e| format!("{e:#}")),
        seconds: entry.seconds,
    };
    let outcome = if result.is_ok() {
        "rolled-back"
    } else {
        "failed"
    };
    Notice::new(
        "rollback",
        outcome,
        &layout.with_release(&entry.release),
        &report,
    )
}

/// Records `entry` and releases the lock, in one batch; the error is the unlock's (a log that
/// cannot be written loses one line, nothing more).
fn record_and_unlock(runner: &mut Runner, layout: &Layout, entry: &Entry) -> Result<()> {
    let answers = runner.run(vec![
        RecordLog::new(layout, entry).step(layout),
        lock::unlock_step(layout),
    ])?;
    answers
        .into_iter()
        .nth(1)
        .unwrap_or_else(|| Err(anyhow::anyhow!("the unlock step got no answer")))
        .map(|_| ())
}

/// What a rollback found, for the host's deploy log, however far it got.
#[derive(Default)]
struct Chosen {
    from: Option<ReleaseId>,
    target: Option<ReleaseId>,
    version: Option<String>,
}

fn rollback_locked(
    runner: &mut Runner,
    health: Option<&Health>,
    layout: &Layout,
    to: Option<&str>,
    chosen: &mut Chosen,
    ui: &Ui,
) -> Result<ReleaseId> {
    let out = runner.one(ListReleases.step(layout))?;
    let (releases, since) = (parse_releases(&out), parse_now(&out)?);
    let current = releases.iter().find(|r| r.current).map(|r| r.name.clone());
    chosen.from.clone_from(&current);
    let target = match to {
        Some(version) => releases
            .iter()
            .find(|r| r.version == version && !r.failed && !r.current)
            .with_context(|| {
                let mut versions: Vec<&str> = releases
                    .iter()
                    .filter(|r| !r.failed && !r.current)
                    .map(|r| r.version.as_str())
                    .collect();
                versions.sort_unstable();
                versions.dedup();
                format!(
                    "no good release of version {version:?} to return to (available: {})",
                    if versions.is_empty() {
                        "none".into()
                    } else {
                        versions.join(", ")
                    }
                )
            })
            .tag(Category::Usage)?,
        None => releases
            .iter()
            .find(|r| r.previous)
            .context("there is no previous good release to return to")
            .tag(Category::Usage)?,
    };
    chosen.target = Some(target.name.clone());
    chosen.version = Some(target.version.clone());
    ui.status(
        "Rolling back",
        format_args!("to {} on {}", target.name, runner.label()),
    );
    let switched = runner
        .one(switch_to(layout, &target.name, Listen::default()))
        .and_then(|out| {
            let state = recover::switched_state(runner, layout, &out, ui);
            health::gate(
                runner,
                layout,
                health,
                Some(&target.version),
                Some(state),
                health::OnInterrupt::Stop,
                ui,
            )
        });
    match switched {
        Ok(()) => {
            runner.one(
                MarkRelease {
                    release: target.name.clone(),
                    healthy: true,
                }
                .step(layout),
            )?;
            Ok(target.name.clone())
        }
        Err(failure) => Err(recover::recover(
            runner,
            &layout.with_release(&target.name),
            health,
            recover::Before {
                previous: current.as_ref(),
                since,
            },
            failure,
            OnFailure::RollBack,
            ui,
        )),
    }
}
