//! `shipit deploy`: lock → upload → stage release → prepare host → verify unit → switch →
//! health gate → (roll back) → prune → unlock. Nothing the running release depends on changes
//! before the switch, and the switch is one `mv -T` of a symlink.

mod deadman;
mod health;
pub mod inspect;
mod layout;
mod runner;
mod steps;

use std::time::Duration;

use anyhow::{Context, Result};

use crate::build::Target;
use crate::cli::{ConnectArgs, DeployArgs};
use crate::config::Config;
use crate::error::{Category, Tag, tagged};
use crate::interrupt;
use crate::package::Package;
use crate::remote::Remote;
use crate::remote::destination::{self, Destination};
use crate::remote::ssh::{ConnectOptions, SshRemote, check_identity_files};
use crate::ui::Ui;

pub use layout::Layout;
use runner::Runner;
use steps::Upload;

/// What a deploy did, printed as its result on stdout.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub host: String,
    pub app: String,
    pub version: String,
    pub release: String,
    pub uploaded: bool,
    /// Where an interrupted upload was continued from (0 for a fresh one).
    pub resumed_from: u64,
    /// Wall time of the upload (0 when skipped); `bench/upload` compares it with scp.
    pub upload_seconds: f64,
    pub reused_release: bool,
    pub previous: Option<String>,
    pub pruned: Vec<String>,
}

/// How a deploy behaves, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dry_run: bool,
    pub no_rollback: bool,
    pub lock_wait: Duration,
    pub confirm_timeout: Option<Duration>,
}

pub fn run(config: &Config, args: &DeployArgs, ui: &Ui) -> Result<()> {
    // Everything local is checked before the first packet goes out.
    let options = options(config, args)?;
    check_identity_files(&args.connect.identity)?;
    let destination = resolve(config, &args.host, &args.connect)?;
    let secrets = read_env_file(config)?;
    let package = match &args.package {
        Some(path) => Package::open(path, &config.app.name)?,
        None => {
            let archive = crate::package::build_and_package(config, &args.build, ui)?;
            Package::open(&archive, &config.app.name)?
        }
    };
    interrupt::install()?;
    let mut remote = connect(&destination, &args.connect, ui)?;
    if options.dry_run {
        let plan = plan(
            &mut remote,
            config,
            &package,
            secrets.as_deref(),
            &options,
            ui,
        )?;
        println!("{}", plan.join("\n\n"));
        return Ok(());
    }
    let report = deploy(
        &mut remote,
        config,
        &package,
        secrets.as_deref(),
        &options,
        ui,
    )?;
    if options.confirm_timeout.is_some() {
        // A fresh connection proves the deploying machine can still reach the host.
        let mut fresh = connect(&destination, &args.connect, ui)?;
        deadman::confirm(&mut fresh, &layout_for(config, &package)).context(
            "the release is healthy but could not be confirmed; the host will roll back by itself",
        )?;
        ui.status(
            "Confirmed",
            format_args!("{} on {}", report.version, report.host),
        );
    }
    print_report(&report, args.json)
}

fn options(config: &Config, args: &DeployArgs) -> Result<Options> {
    let parse = |flag: &str, text: &Option<String>| -> Result<Option<Duration>> {
        text.as_deref()
            .map(|t| {
                humantime::parse_duration(t)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "{flag} {t:?} is not a duration like \"30s\" or \"5m\": {e}"
                        )
                    })
                    .tag(Category::Usage)
            })
            .transpose()
    };
    let confirm_timeout = parse("--confirm-timeout", &args.confirm_timeout)?;
    let budget = health::budget(config.health.as_ref());
    if let Some(timeout) = confirm_timeout.filter(|t| *t <= budget + Duration::from_secs(10)) {
        crate::fail!(
            Usage,
            "--confirm-timeout {} is too short: the health gate may take up to {}; give it at least {}",
            humantime::format_duration(timeout),
            humantime::format_duration(budget),
            humantime::format_duration(budget + Duration::from_secs(30))
        );
    }
    Ok(Options {
        dry_run: args.dry_run,
        no_rollback: args.no_rollback,
        lock_wait: parse("--lock-wait", &args.lock_wait)?.unwrap_or_default(),
        confirm_timeout,
    })
}

pub fn resolve(config: &Config, host: &str, args: &ConnectArgs) -> Result<Destination> {
    destination::resolve(
        host,
        &config.hosts,
        &args.identity,
        args.ssh_config.as_deref(),
    )
}

pub fn connect(destination: &Destination, args: &ConnectArgs, ui: &Ui) -> Result<SshRemote> {
    let options = ConnectOptions {
        accept_new_host_key: args.accept_new_host_key,
    };
    let remote = SshRemote::connect(destination, &options)?;
    ui.status(
        "Connected",
        format_args!(
            "{}@{}:{} ({})",
            destination.user, destination.hostname, destination.port, destination.label
        ),
    );
    Ok(remote)
}

pub fn layout_for(config: &Config, package: &Package) -> Layout {
    Layout {
        app: config.app.name.clone(),
        user: config.service.user.clone(),
        release: format!("{}-{}", package.manifest.version, &package.sha256[..12]),
        sha256: package.sha256.clone(),
    }
}

/// The remote part of a deploy, on any [`Remote`].
pub fn deploy(
    remote: &mut dyn Remote,
    config: &Config,
    package: &Package,
    secrets: Option<&[u8]>,
    options: &Options,
    ui: &Ui,
) -> Result<Report> {
    let layout = layout_for(config, package);
    let mut runner = Runner::apply(remote);
    steps::preflight(
        &mut runner,
        &layout,
        Target::parse(&package.manifest.target)?,
    )?;
    steps::lock(&mut runner, &layout, options.lock_wait, ui)
        .map_err(|e| interrupted_or(e, &runner.label(), "locking"))?;
    let result = deploy_locked(&mut runner, config, package, secrets, &layout, options, ui);
    // The lock goes even when the deploy failed or was interrupted; a failure to unlock must not
    // hide the real error.
    let unlocked = steps::unlock(&mut runner, &layout);
    let report = result?;
    unlocked?;
    Ok(report)
}

/// `--dry-run`: the steps' scripts, the unit diff and the binary change, with the host untouched.
pub fn plan(
    remote: &mut dyn Remote,
    config: &Config,
    package: &Package,
    secrets: Option<&[u8]>,
    options: &Options,
    ui: &Ui,
) -> Result<Vec<String>> {
    let layout = layout_for(config, package);
    let mut runner = Runner::dry_run(remote);
    steps::preflight(
        &mut runner,
        &layout,
        Target::parse(&package.manifest.target)?,
    )?;
    let (installed_unit, installed_sha) = steps::installed(&mut runner, &layout)?;
    let new_unit = crate::package::read_entry(&package.path, &layout.unit_name())?;
    let new_sha = package
        .manifest
        .files
        .iter()
        .find(|f| f.path == layout.app)
        .map(|f| f.sha256.clone())
        .unwrap_or_default();
    runner.note(format!(
        "# plan for {} {} on {}: nothing below has run\n# binary sha256: {} -> {new_sha}\n# paths:\n{}",
        layout.app,
        package.manifest.version,
        runner.label(),
        installed_sha.as_deref().unwrap_or("(none installed)"),
        layout.shell_vars().trim_end()
    ));
    runner.note(unit_diff(&installed_unit, &new_unit, &layout.unit_path()));
    steps::lock(&mut runner, &layout, options.lock_wait, ui)?;
    deploy_locked(&mut runner, config, package, secrets, &layout, options, ui)?;
    steps::unlock(&mut runner, &layout)?;
    Ok(runner.into_plan())
}

fn unit_diff(old: &str, new: &str, path: &str) -> String {
    if old == new {
        return format!("# {path}: unchanged");
    }
    let diff = similar::TextDiff::from_lines(old, new);
    let old_name = if old.is_empty() {
        "/dev/null".to_string()
    } else {
        format!("{path} (installed)")
    };
    format!(
        "# unit diff\n{}",
        diff.unified_diff()
            .context_radius(3)
            .header(&old_name, &format!("{path} (new)"))
            .to_string()
            .trim_end()
    )
}

fn deploy_locked(
    runner: &mut Runner,
    config: &Config,
    package: &Package,
    secrets: Option<&[u8]>,
    layout: &Layout,
    options: &Options,
    ui: &Ui,
) -> Result<Report> {
    let host = runner.label();
    let started = std::time::Instant::now();
    let upload = steps::upload(runner, layout, package, ui)
        .map_err(|e| interrupted_or(e, &host, "upload"))?;
    let upload_seconds = started.elapsed().as_secs_f64();
    match upload {
        Upload::Skipped => ui.status(
            "Skipped",
            format_args!("upload: {host} already has {}", &package.sha256[..12]),
        ),
        Upload::Sent { sent, resumed_from } if !runner.is_dry_run() => ui.status(
            "Uploaded",
            format_args!(
                "{sent} bytes to {host} in {upload_seconds:.1}s{}",
                if resumed_from > 0 {
                    format!(", resuming at byte {resumed_from}")
                } else {
                    String::new()
                }
            ),
        ),
        Upload::Sent { .. } => {}
    }
    let before_switch = |e| interrupted_or(e, &host, "switching");
    let reused_release = steps::stage_release(runner, layout, package).map_err(before_switch)?;
    steps::prepare_host(runner, layout, secrets).map_err(before_switch)?;
    steps::verify_unit(runner, layout).map_err(before_switch)?;
    let previous = steps::releases(runner, layout)
        .map_err(before_switch)?
        .into_iter()
        .find(|r| r.current && r.name != layout.release && !r.failed)
        .map(|r| r.name);
    let since = steps::remote_now(runner, layout)?;
    if let Some(timeout) = options.confirm_timeout {
        deadman::arm(runner, layout, previous.as_deref(), timeout)?;
    }
    interrupt::check().map_err(before_switch)?;
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
            config.health.as_ref(),
            Some(&package.manifest.version),
            true,
        )
    });
    if let Err(failure) = healthy {
        return Err(recover(
            runner,
            config,
            layout,
            previous.as_deref(),
            since,
            failure,
            options,
            ui,
        ));
    }
    steps::mark(runner, layout, &layout.release, true)?;
    if !runner.is_dry_run() {
        ui.status(
            "Healthy",
            format_args!("{} {} on {host}", layout.app, package.manifest.version),
        );
    }
    let pruned = steps::prune(runner, layout, config.deploy.keep_releases)?;
    let (uploaded, resumed_from) = match upload {
        Upload::Skipped => (false, 0),
        Upload::Sent { resumed_from, .. } => (true, resumed_from),
    };
    Ok(Report {
        host,
        app: layout.app.clone(),
        version: package.manifest.version.clone(),
        release: layout.release.clone(),
        uploaded,
        resumed_from,
        upload_seconds: if uploaded { upload_seconds } else { 0.0 },
        reused_release,
        previous,
        pruned,
    })
}

/// An interruption before the switch leaves the host as it was; say so.
fn interrupted_or(error: anyhow::Error, host: &str, before: &str) -> anyhow::Error {
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
#[allow(clippy::too_many_arguments)]
fn recover(
    runner: &mut Runner,
    config: &Config,
    layout: &Layout,
    previous: Option<&str>,
    since: u64,
    failure: anyhow::Error,
    options: &Options,
    ui: &Ui,
) -> anyhow::Error {
    let host = runner.label();
    let interrupted = crate::error::category_of(&failure) == Some(Category::Interrupted);
    if let Ok(journal) = steps::journal_since(runner, layout, since) {
        eprintln!(
            "--- journal of {} on {host} since the restart ---\n{}\n---",
            layout.unit_name(),
            journal.trim_end()
        );
    }
    let _ = steps::mark(runner, layout, &layout.release, false);
    let _ = deadman::disarm(runner, layout);
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
    if options.no_rollback && !interrupted {
        return tagged(
            Category::Remote,
            failure.context(format!(
                "--no-rollback: {} stays on {host} as it is",
                layout.release
            )),
        );
    }
    let Some(previous) = previous else {
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
        .and_then(|()| health::gate(runner.remote, layout, config.health.as_ref(), None, false));
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

/// `shipit rollback`: back to the previous good release, or the newest good one of a version.
pub fn rollback(
    config: &Config,
    host: &str,
    to: Option<&str>,
    args: &ConnectArgs,
    ui: &Ui,
) -> Result<()> {
    let destination = resolve(config, host, args)?;
    interrupt::install()?;
    let mut remote = connect(&destination, args, ui)?;
    let layout = app_layout(config);
    let mut runner = Runner::apply(&mut remote);
    steps::lock(&mut runner, &layout, Duration::ZERO, ui)?;
    let result = rollback_locked(&mut runner, config, &layout, to, ui);
    let unlocked = steps::unlock(&mut runner, &layout);
    let release = result?;
    unlocked?;
    println!(
        "rolled back {} on {} to {release}",
        layout.app,
        runner.label()
    );
    Ok(())
}

fn rollback_locked(
    runner: &mut Runner,
    config: &Config,
    layout: &Layout,
    to: Option<&str>,
    ui: &Ui,
) -> Result<String> {
    let releases = steps::releases(runner, layout)?;
    let current = releases.iter().find(|r| r.current).map(|r| r.name.clone());
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
    let since = steps::remote_now(runner, layout)?;
    ui.status(
        "Rolling back",
        format_args!("to {} on {}", target.name, runner.label()),
    );
    let switched = steps::switch_to(runner, layout, &target.name).and_then(|()| {
        health::gate(
            runner.remote,
            layout,
            config.health.as_ref(),
            Some(&target.version),
            true,
        )
    });
    match switched {
        Ok(()) => {
            steps::mark(runner, layout, &target.name, true)?;
            Ok(target.name.clone())
        }
        Err(failure) => {
            let options = Options::default();
            let target_layout = Layout {
                release: target.name.clone(),
                ..layout.clone()
            };
            Err(recover(
                runner,
                config,
                &target_layout,
                current.as_deref(),
                since,
                failure,
                &options,
                ui,
            ))
        }
    }
}

/// The env file's KEY=VALUE lines are checked locally; values are never shown, even in errors.
fn read_env_file(config: &Config) -> Result<Option<Vec<u8>>> {
    let Some(path) = &config.service.env_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the env file {}", path.display()))
        .tag(Category::Usage)?;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split_once('=').map(|(k, _)| k.trim());
        if key.is_none_or(|k| crate::config::validate_env_key(k).is_err()) {
            crate::fail!(
                Usage,
                "{}:{}: expected KEY=VALUE (the value is not shown because it may be a secret)",
                path.display(),
                index + 1
            );
        }
    }
    Ok(Some(text.into_bytes()))
}

fn print_report(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!(
            "deployed {} {} to {} (release {}{})",
            report.app,
            report.version,
            report.host,
            report.release,
            if report.uploaded {
                ""
            } else {
                ", upload skipped"
            }
        );
    }
    Ok(())
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
