//! `shipit deploy`: lock → upload → stage release → prepare host → verify unit → switch →
//! health gate → (roll back) → prune → unlock. Nothing the running release depends on changes
//! before the switch, and the switch is one `mv -T` of a symlink.

mod health;
pub mod inspect;
mod layout;
mod steps;

use anyhow::{Context, Result};

use crate::build::Target;
use crate::cli::{ConnectArgs, DeployArgs};
use crate::config::Config;
use crate::error::{Category, Tag, tagged};
use crate::package::Package;
use crate::remote::Remote;
use crate::remote::destination;
use crate::remote::ssh::{ConnectOptions, SshRemote, check_identity_files};
use crate::ui::Ui;

pub use layout::Layout;

/// What a deploy did, printed as its result on stdout.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub host: String,
    pub app: String,
    pub version: String,
    pub release: String,
    pub uploaded: bool,
    /// Wall time of the upload (0 when skipped); `bench/upload` compares it with scp.
    pub upload_seconds: f64,
    pub reused_release: bool,
    pub previous: Option<String>,
    pub pruned: Vec<String>,
}

pub fn run(config: &Config, args: &DeployArgs, ui: &Ui) -> Result<()> {
    // Everything local is checked before the first packet goes out.
    check_identity_files(&args.connect.identity)?;
    let destination = destination::resolve(
        &args.host,
        &config.hosts,
        &args.connect.identity,
        args.connect.ssh_config.as_deref(),
    )?;
    let secrets = read_env_file(config)?;
    let package = match &args.package {
        Some(path) => Package::open(path, &config.app.name)?,
        None => {
            let archive = crate::package::build_and_package(config, &args.build, ui)?;
            Package::open(&archive, &config.app.name)?
        }
    };
    let mut remote = connect(&destination, &args.connect, ui)?;
    let report = deploy(&mut remote, config, &package, secrets.as_deref(), ui)?;
    print_report(&report, args.json)
}

pub fn connect(
    destination: &destination::Destination,
    args: &ConnectArgs,
    ui: &Ui,
) -> Result<SshRemote> {
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
    ui: &Ui,
) -> Result<Report> {
    let layout = layout_for(config, package);
    let target = Target::parse(&package.manifest.target)?;
    steps::preflight(remote, &layout, target)?;
    steps::lock(remote, &layout)?;
    let result = deploy_locked(remote, config, package, secrets, &layout, ui);
    // The lock goes even when the deploy failed; a failure to unlock must not hide the real error.
    let unlocked = steps::unlock(remote, &layout);
    let report = result?;
    unlocked?;
    Ok(report)
}

fn deploy_locked(
    remote: &mut dyn Remote,
    config: &Config,
    package: &Package,
    secrets: Option<&[u8]>,
    layout: &Layout,
    ui: &Ui,
) -> Result<Report> {
    let host = remote.label().to_string();
    let started = std::time::Instant::now();
    let uploaded = steps::upload(remote, layout, package, ui)?;
    let upload_seconds = if uploaded {
        started.elapsed().as_secs_f64()
    } else {
        0.0
    };
    if uploaded {
        ui.status(
            "Uploaded",
            format_args!(
                "{} ({} bytes) to {host}",
                package.path.display(),
                package.size
            ),
        );
    } else {
        ui.status(
            "Skipped",
            format_args!("upload: {host} already has {}", &package.sha256[..12]),
        );
    }
    let reused_release = steps::stage_release(remote, layout, package)?;
    steps::prepare_host(remote, layout, secrets)?;
    steps::verify_unit(remote, layout)?;
    let previous = steps::current_release(remote, layout)?;
    let since = steps::remote_now(remote, layout)?;
    ui.status(
        "Starting",
        format_args!("{} {} on {host}", layout.app, package.manifest.version),
    );
    let switched = steps::switch_to(remote, layout, &layout.release);
    let healthy = switched.and_then(|()| {
        health::gate(
            remote,
            layout,
            config.health.as_ref(),
            Some(&package.manifest.version),
        )
    });
    if let Err(failure) = healthy {
        return Err(recover(
            remote,
            config,
            layout,
            previous.as_deref(),
            since,
            failure,
            ui,
        ));
    }
    ui.status(
        "Healthy",
        format_args!("{} {} on {host}", layout.app, package.manifest.version),
    );
    let pruned = steps::prune(
        remote,
        layout,
        config.deploy.keep_releases,
        previous.as_deref(),
    )?;
    Ok(Report {
        host,
        app: layout.app.clone(),
        version: package.manifest.version.clone(),
        release: layout.release.clone(),
        uploaded,
        upload_seconds,
        reused_release,
        previous: previous.filter(|p| *p != layout.release),
        pruned,
    })
}

/// After a failed start: show the journal, then return to the previous release (or stop the
/// service when there is none) and say which of those happened.
fn recover(
    remote: &mut dyn Remote,
    config: &Config,
    layout: &Layout,
    previous: Option<&str>,
    since: u64,
    failure: anyhow::Error,
    ui: &Ui,
) -> anyhow::Error {
    let host = remote.label().to_string();
    if let Ok(journal) = steps::journal_since(remote, layout, since) {
        eprintln!(
            "--- journal of {} on {host} since the restart ---\n{}\n---",
            layout.unit_name(),
            journal.trim_end()
        );
    }
    let failure = failure.context(format!(
        "{} {} failed its health check on {host}",
        layout.app, layout.release
    ));
    let Some(previous) = previous.filter(|p| *p != layout.release) else {
        return match steps::stop(remote, layout) {
            Ok(()) => tagged(
                Category::Remote,
                failure.context(
                    "there is no earlier release to return to, so the service was stopped",
                ),
            ),
            Err(e) => tagged(Category::RollbackFailed, e.context(format!("{failure:#}"))),
        };
    };
    ui.status("Rolling back", format_args!("to {previous} on {host}"));
    let restored = steps::switch_to(remote, layout, previous)
        .and_then(|()| health::gate(remote, layout, config.health.as_ref(), None));
    match restored {
        Ok(()) => tagged(
            Category::RolledBack,
            failure.context(format!(
                "rolled back: {previous} is running again on {host}"
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

/// Used by inspect commands: the layout of whatever is deployed, without a package.
pub fn app_layout(config: &Config) -> Layout {
    Layout {
        app: config.app.name.clone(),
        user: config.service.user.clone(),
        release: String::new(),
        sha256: String::new(),
    }
}
