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
use crate::events::{Event, Events};
use crate::hosts::log::{Entry, RecordLog};
use crate::hosts::releases::{ListReleases, parse_now, parse_releases};
use crate::hosts::script::Script;
use crate::hosts::{self, Connection, Layout, Runner};
use crate::names::ReleaseId;
use crate::notify::{self, Notice};
use crate::remote::destination::Destination;
use crate::ui::{Format, Ui};

/// `shipit rollback`, as the command line asked for it.
#[derive(Debug, Clone)]
pub struct Request {
    pub host: String,
    /// A version to return to, instead of the previous good release.
    pub to: Option<String>,
    pub format: Format,
    /// `--events`: the steps as JSON lines on stdout; the report is the last of them.
    pub events: Events,
    pub connection: Connection,
}

/// The JSON result of `rollback --json` (and the `rollback_finished` event's report).
#[derive(Debug, serde::Serialize)]
pub struct Report<'a> {
    pub app: &'a str,
    pub environment: Option<&'a str>,
    pub host: &'a str,
    /// The release that ran before.
    pub from: Option<&'a str>,
    /// The release rolled back to, once chosen.
    pub to: Option<&'a str>,
    pub version: Option<&'a str>,
    /// "ok", "failed" (its health gate said so), or "-" (never got that far).
    pub health: &'static str,
    pub ok: bool,
    pub error: Option<String>,
}

/// `shipit rollback`: back to the previous good release, or the newest good one of a version.
pub fn run(config: &Config, request: &Request, ui: &Ui) -> Result<()> {
    let destination = hosts::resolve(config, &request.host, &request.connection)?;
    let layout = Layout::of_app(config);
    request.events.emit(Event::RollbackStarted {
        app: layout.app.to_string(),
        environment: layout.environment.clone(),
        host: destination.label.clone(),
    });
    let mut chosen = Chosen::default();
    let result = roll_back(config, request, &destination, &layout, &mut chosen, ui);
    let host = &destination.label;
    let error = result.as_ref().err();
    let report = Report::new(host, &layout, &chosen, error);
    print_report(request, &report, error)?;
    if let Some(target) = &chosen.target {
        let outcome = if error.is_none() {
            "rolled-back"
        } else {
            "failed"
        };
        let notice = Notice::new("rollback", outcome, &layout.with_release(target), &report)?;
        notify::send(config, &notice, ui);
    }
    let release = result?;
    if request.format == Format::Text && !request.events.on() {
        println!("rolled back {} on {host} to {release}", layout.app);
    }
    Ok(())
}

/// Connects, takes the lock, rolls back, records it and lets go of the lock; `chosen` says how
/// far it got, whatever happened.
fn roll_back(
    config: &Config,
    request: &Request,
    destination: &Destination,
    layout: &Layout,
    chosen: &mut Chosen,
    ui: &Ui,
) -> Result<ReleaseId> {
    let (to, events) = (request.to.as_deref(), &request.events);
    let cancel = Cancel::on_signals()?;
    let mut remote = hosts::connect(destination, &request.connection, ui)?;
    events.emit(Event::Connected {
        host: destination.label.clone(),
    });
    let mut runner = Runner::apply(&mut remote, &cancel);
    // A timer left armed could switch the host away from the release chosen here and mark
    // that release failed.
    let armed = lock::lock(&mut runner, layout, Duration::ZERO, ArmedPolicy::Disarm, ui)?;
    events.emit(Event::Locked {
        host: runner.label(),
    });
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
    let health = hosts::health_for(config, &request.host);
    let started = std::time::Instant::now();
    let result = rollback_locked(&mut runner, health.as_ref(), layout, to, chosen, events, ui);
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
    let unlocked = record_and_unlock(&mut runner, layout, &entry);
    if unlocked.is_ok() {
        events.emit(Event::Unlocked {
            host: runner.label(),
        });
    }
    let release = result?;
    unlocked?;
    Ok(release)
}

impl<'a> Report<'a> {
    fn new(
        host: &'a str,
        layout: &'a Layout,
        chosen: &'a Chosen,
        error: Option<&anyhow::Error>,
    ) -> Self {
        Report {
            app: &layout.app,
            environment: layout.environment.as_deref(),
            host,
            from: chosen.from.as_deref(),
            to: chosen.target.as_deref(),
            version: chosen.version.as_deref(),
            health: match chosen.healthy {
                Some(true) => "ok",
                Some(false) => "failed",
                None => "-",
            },
            ok: error.is_none(),
            error: error.map(|e| format!("{e:#}")),
        }
    }
}

/// `--json`'s report on stdout, or with `--events` the last events: the failure, then the
/// report.
fn print_report(request: &Request, report: &Report, error: Option<&anyhow::Error>) -> Result<()> {
    let events = &request.events;
    if events.on() {
        if let Some(e) = error {
            events.emit(Event::failed(report.host, e));
        }
        events.emit(Event::RollbackFinished {
            report: crate::events::report(report),
        });
    } else if request.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    Ok(())
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
    /// What its health gate said, once it ran.
    healthy: Option<bool>,
}

fn rollback_locked(
    runner: &mut Runner,
    health: Option<&Health>,
    layout: &Layout,
    to: Option<&str>,
    chosen: &mut Chosen,
    events: &Events,
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
            events.emit(Event::Switched {
                host: runner.label(),
                release: target.name.to_string(),
            });
            let state = recover::switched_state(runner, layout, &out, ui);
            health::gate(
                runner,
                layout,
                health,
                Some(&target.version),
                Some(state),
                health::OnInterrupt::Stop,
                events,
                ui,
            )
        });
    chosen.healthy = match &switched {
        Ok(()) => Some(true),
        Err(e) if health::judged_unhealthy(e) => Some(false),
        Err(_) => None,
    };
    match switched {
        Ok(()) => {
            events.emit(Event::Healthy {
                host: runner.label(),
                release: target.name.to_string(),
            });
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
            events,
            ui,
        )),
    }
}
