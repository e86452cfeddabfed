//! `shipit rollback`: back to the previous good release, or the newest good one of a version,
//! health-checked, under the deploy lock.

use std::time::Duration;

use anyhow::{Context, Result};

use super::runner::Runner;
use super::targets::{Connection, connect, health_for, resolve};
use super::{Layout, OnFailure, app_layout, health, history, lock, phases, steps};
use crate::config::{Config, Health};
use crate::error::{Category, Tag};
use crate::interrupt;
use crate::ui::Ui;

/// `shipit rollback`: back to the previous good release, or the newest good one of a version.
pub fn rollback(
    config: &Config,
    host: &str,
    to: Option<&str>,
    connection: &Connection,
    ui: &Ui,
) -> Result<()> {
    let destination = resolve(config, host, connection)?;
    interrupt::install()?;
    let mut remote = connect(&destination, connection, ui)?;
    let layout = app_layout(config);
    let mut runner = Runner::apply(&mut remote);
    let armed = lock::lock(
        &mut runner,
        &layout,
        Duration::ZERO,
        lock::ArmedPolicy::Keep,
        ui,
    )?;
    for timer in armed {
        ui.status(
            "Note",
            format_args!(
                "the dead-man timer armed by {} stays armed on {}: it acts only while {} is \
                 current",
                timer.owner.who(),
                runner.label(),
                timer.release
            ),
        );
    }
    let health = health_for(config, host);
    let started = std::time::Instant::now();
    let mut chosen = Chosen::default();
    let result = rollback_locked(&mut runner, health.as_ref(), &layout, to, &mut chosen, ui);
    runner.clean_up();
    let entry = history::Entry::now(
        &Layout {
            release: chosen.target.clone().unwrap_or_default(),
            ..layout.clone()
        },
        "rollback",
        chosen.version.as_deref().or(to).unwrap_or_default(),
        chosen.from.as_deref(),
        if result.is_ok() {
            "rolled-back"
        } else {
            "failed"
        },
        started.elapsed().as_secs_f64(),
    );
    let unlocked = history::record_and_unlock(&mut runner, &layout, &entry);
    let release = result?;
    unlocked?;
    println!(
        "rolled back {} on {} to {release}",
        layout.app,
        runner.label()
    );
    Ok(())
}

/// What a rollback found, for the host's deploy log, however far it got.
#[derive(Default)]
struct Chosen {
    from: Option<String>,
    target: Option<String>,
    version: Option<String>,
}

fn rollback_locked(
    runner: &mut Runner,
    health: Option<&Health>,
    layout: &Layout,
    to: Option<&str>,
    chosen: &mut Chosen,
    ui: &Ui,
) -> Result<String> {
    let out = runner.one(steps::releases(layout))?;
    let (releases, since) = (steps::parse_releases(&out), steps::parse_now(&out)?);
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
    let listen = steps::Listen::default();
    let switched = runner
        .one(steps::switch_to(layout, &target.name, listen))
        .and_then(|out| {
            let state = phases::switched_state(runner, layout, &out, ui);
            health::gate(
                runner.remote,
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
            runner.one(steps::mark(layout, &target.name, true))?;
            Ok(target.name.clone())
        }
        Err(failure) => {
            let target_layout = Layout {
                release: target.name.clone(),
                ..layout.clone()
            };
            Err(phases::recover(
                runner,
                &target_layout,
                health,
                &phases::Transfer {
                    upload: steps::Upload::Skipped,
                    upload_seconds: 0.0,
                    reused_release: true,
                    previous: current,
                    previous_version: None,
                    since,
                    started: None,
                },
                failure,
                OnFailure::RollBack,
                ui,
            ))
        }
    }
}
