//! `shipit deploy`: for each host, check → lock → upload → unpack, check and verify → switch →
//! health gate → (roll back) → record and prune → unlock; for several hosts, in parallel and in
//! batches ([`fleet`]). Nothing the running release depends on changes before the switch, and
//! the switch is one `mv -T` of a symlink. This module owns the deploy's request and its entry
//! point; `targets` resolves hosts, `phases` and `fleet` run them, `report` sums them up.

mod deadman;
mod dry_run;
mod env;
mod fleet;
mod health;
pub mod history;
mod hooks;
pub mod inspect;
mod layout;
mod lock;
mod phases;
mod preflight;
mod report;
mod rollback;
#[cfg(test)]
mod rollout_tests;
mod runner;
mod scripts;
mod steps;
mod targets;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::config::Config;
use crate::error::{Category, tagged};
use crate::interrupt;
use crate::package::{BuildOptions, Package};
use crate::remote::ssh::check_identity_files;
use crate::ui::Ui;

pub use fleet::{Amount, Canary, Rollout};
pub use layout::Layout;
pub use lock::ArmedPolicy;
pub use phases::OnFailure;
pub use rollback::rollback;
pub use targets::{Connection, connect, expand_groups, resolve};

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

use fleet::HostReport;
use report::{outcome, print_summary};
use targets::{SshConnector, release_lost_lock};

/// How a deploy behaves, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub dry_run: bool,
    /// What a release that fails its gate gets: rolled back, or left (`--no-rollback`).
    pub on_failure: OnFailure,
    pub lock_wait: Duration,
    pub confirm_timeout: Option<Duration>,
    /// What to do about another deploy's armed dead-man timer (`--force-disarm` disarms it).
    pub armed: ArmedPolicy,
}

/// `shipit deploy`, as the command line asked for it.
#[derive(Debug, Clone)]
pub struct Request {
    pub hosts: Vec<String>,
    /// Deploy this package instead of building one.
    pub package: Option<PathBuf>,
    pub build: BuildOptions,
    pub format: Format,
    pub options: Options,
    pub rollout: Rollout,
    pub connection: Connection,
}

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
        let targets = targets::targets(config, &request.hosts, &request.connection, ui);
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
    let layout = layout_for(config, &package);
    let labels: Vec<String> = targets
        .iter()
        .map(|t| t.destination.label.clone())
        .collect();
    if options.dry_run {
        interrupt::install()?;
        let first = fleet::batch_plan(rollout, &labels)
            .concat()
            .first()
            .copied();
        for (i, target) in targets.iter().enumerate() {
            let mut remote = connect(&target.destination, &request.connection, ui)?;
            let plan = dry_run::plan(
                &mut remote,
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
    interrupt::install()?;
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
        ui,
    };
    let results = fleet::deploy(&context, &targets);
    for ((report, _), target) in results.iter().zip(&targets) {
        if report.still_locked {
            release_lost_lock(&target.destination, &layout, ui);
        }
    }
    let reports: Vec<&HostReport> = results.iter().map(|(r, _)| r).collect();
    print_summary(&reports, &package, &layout, request.format)?;
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

pub fn layout_for(config: &Config, package: &Package) -> Layout {
    Layout {
        app: config.app.name.clone(),
        user: config.service.user.clone(),
        release: format!("{}-{}", package.manifest.version, &package.sha256[..12]),
        sha256: package.sha256.clone(),
    }
}

/// The layout of whatever is deployed, for commands that have no package.
pub fn app_layout(config: &Config) -> Layout {
    Layout {
        app: config.app.name.clone(),
        user: config.service.user.clone(),
        release: String::new(),
        sha256: String::new(),
    }
}

/// The script that reads what `shipit exec` needs from a host (`scripts/deployed.sh`).
pub fn deployed_script(layout: &Layout) -> String {
    scripts::assemble(layout, &[], &[scripts::DEPLOYED])
}
