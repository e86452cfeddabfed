//! `shipit deploy`'s entry point: everything local is checked before the first packet goes
//! out (the confirm timeout, identity files, the hosts, the package or the build), then the
//! fleet runs ([`super::fleet`]) and the summary and exit code follow ([`super::report`]).

use std::time::Duration;

use anyhow::Result;

use super::dry_run;
use super::fleet::{self, HostReport};
use super::report::{notice, outcome, print_summary};
use super::request::{Canary, Options, Request};
use super::targets::targets;
use crate::actions::{health, hooks, lock};
use crate::cancel::Cancel;
use crate::config::Config;
use crate::error::{Category, tagged};
use crate::events::{Event, Events};
use crate::hosts::{self, Layout, Runner, SshConnector};
use crate::package::Package;
use crate::remote::destination::Destination;
use crate::remote::ssh::{ConnectOptions, SshRemote, check_identity_files};
use crate::ui::Ui;

pub fn run(config: &Config, request: &Request, ui: &Ui) -> Result<()> {
    // Everything local is checked before the first packet goes out.
    let options = &request.options;
    check_confirm_timeout(config, options)?;
    let rollout = &request.rollout;
    check_identity_files(&request.connection.identity)?;
    // A given package is read while the hosts are resolved (`ssh -G` per host, ~20 ms each):
    // neither needs the other. A build starts only once the hosts are known to be good.
    let (targets, opened) = std::thread::scope(|scope| {
        let opening = request.package.as_ref().map(|path| {
            scope.spawn(|| {
                crate::timings::time("opening the package", || {
                    Package::open(path, &config.app.name)
                })
            })
        });
        let targets = targets(config, &request.hosts, &request.connection, ui);
        let opened = opening.map(|o| o.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (targets, opened)
    });
    let targets = targets?;
    if let Some(Canary::Host(name)) = &rollout.canary
        && !targets.iter().any(|t| t.destination.label == *name)
    {
        crate::fail!(
            Usage,
            "--canary {name}: not one of the hosts being deployed to"
        );
    }
    let package = match opened {
        Some(opened) => opened?,
        None => {
            let archive = crate::package::build_and_package(config, &request.build, ui)?;
            Package::open(&archive, &config.app.name)?
        }
    };
    let layout = Layout::for_package(config, &package);
    let labels: Vec<String> = targets
        .iter()
        .map(|t| t.destination.label.clone())
        .collect();
    if options.dry_run {
        let cancel = Cancel::on_signals()?;
        let first = fleet::batch_plan(rollout, &labels)
            .concat()
            .first()
            .copied();
        for (i, target) in targets.iter().enumerate() {
            let mut remote = hosts::connect(&target.destination, &request.connection, ui)?;
            let plan = dry_run::plan(
                Runner::dry_run(&mut remote, &cancel),
                config,
                &package,
                target,
                options,
                first == Some(i),
                ui,
            )?;
            println!("{}\n", plan.join("\n\n"));
        }
        return Ok(());
    }
    let mut local = hooks::Local {
        layout: &layout,
        version: &package.manifest.version,
        hosts: &labels,
        ended: None,
    };
    if let Some(argv) = &config.hooks.local_before {
        // Before the handler: Ctrl-C ends the hook and shipit together, before any connection.
        hooks::run_local("local_before", argv, &local, &config.root, ui).map_err(|e| {
            tagged(
                Category::Hook,
                anyhow::anyhow!("{e:#}; nothing was deployed"),
            )
        })?;
    }
    let cancel = Cancel::on_signals()?;
    request.events.emit(Event::RolloutStarted {
        app: layout.app.to_string(),
        environment: layout.environment.clone(),
        version: package.manifest.version.clone(),
        release: layout.release.to_string(),
        hosts: labels.clone(),
    });
    let connector = SshConnector {
        connection: &request.connection,
        ui,
    };
    let context = fleet::Context {
        package: &package,
        layout: &layout,
        options,
        rollout,
        keep_releases: config.deploy.keep_releases,
        preflight: config.deploy.preflight,
        hooks: &config.hooks,
        connector: &connector,
        cancel: &cancel,
        events: &request.events,
        ui,
    };
    let results = fleet::deploy(&context, &targets);
    for ((report, _), target) in results.iter().zip(&targets) {
        if report.still_locked {
            release_lost_lock(&target.destination, &layout, &request.events, ui);
        }
    }
    let reports: Vec<&HostReport> = results.iter().map(|(r, _)| r).collect();
    print_summary(&reports, &package, &layout, request.format, &request.events)?;
    if let Some(argv) = &config.hooks.local_after {
        let (deployed, failed): (Vec<&HostReport>, Vec<&HostReport>) = reports
            .iter()
            .partition(|r| r.outcome == fleet::Outcome::Deployed);
        let hosts = |list: Vec<&HostReport>| list.iter().map(|r| r.host.clone()).collect();
        local.ended = Some((hosts(deployed), hosts(failed)));
        if let Err(e) = hooks::run_local("local_after", argv, &local, &config.root, ui) {
            ui.diagnostic(format!("warning: {e:#}"));
        }
    }
    crate::notify::send(config, &notice(&reports, &package, &layout)?, ui);
    outcome(results)
}

/// A dead-man timer must outlast the health gate, or it fires into a healthy deploy.
fn check_confirm_timeout(config: &Config, options: &Options) -> Result<()> {
    let budget = health::budget(config.health.as_ref());
    if let Some(timeout) = options
        .confirm_timeout
        .filter(|t| *t <= budget + Duration::from_secs(10))
    {
        crate::fail!(
            Usage,
            "--confirm-timeout {} is too short: the health gate may take up to {}; give it at least {}",
            humantime::format_duration(timeout),
            humantime::format_duration(budget),
            humantime::format_duration(budget + Duration::from_secs(30))
        );
    }
    Ok(())
}

/// When the connection died mid-deploy, the lock is still ours on the host: a fresh connection
/// releases it, if it still names this process. Best effort; the next deploy would also see the
/// owner is dead (or its lock no longer refreshed) and take it over.
fn release_lost_lock(destination: &Destination, layout: &Layout, events: &Events, ui: &Ui) {
    // Never accept a new host key here: the first connection already proved this host.
    let Ok(mut remote) = SshRemote::connect(destination, &ConnectOptions::default()) else {
        return;
    };
    let mut runner = Runner::apply(&mut remote, &Cancel::new());
    runner.clean_up();
    if lock::unlock(&mut runner, layout).unwrap_or(false) {
        events.emit(Event::Unlocked {
            host: destination.label.clone(),
        });
        ui.status(
            "Unlocked",
            format_args!("{} over a new connection", destination.label),
        );
    }
}
