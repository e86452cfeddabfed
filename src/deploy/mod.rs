//! `shipit deploy`: for each host, lock → upload → stage release → prepare host → verify unit →
//! switch → health gate → (roll back) → prune → unlock; for several hosts, in parallel and in
//! batches ([`fleet`]). Nothing the running release depends on changes before the switch, and
//! the switch is one `mv -T` of a symlink.

mod deadman;
mod fleet;
mod health;
pub mod inspect;
mod layout;
mod lock;
mod phases;
#[cfg(test)]
mod rollout_tests;
mod runner;
mod scripts;
mod steps;

use std::collections::BTreeMap;
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

use fleet::{Amount, Canary, HostReport, Outcome, Rollout};
pub use layout::Layout;
use lock::ArmedPolicy;
use phases::OnFailure;
use runner::Runner;

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

/// Connects over SSH, saying so.
struct SshConnector<'a> {
    args: &'a ConnectArgs,
    ui: &'a Ui,
}

impl fleet::Connect for SshConnector<'_> {
    fn connect(&self, destination: &Destination) -> Result<Box<dyn Remote + Send>> {
        Ok(Box::new(connect(destination, self.args, self.ui)?))
    }
}

/// The JSON result of `deploy --json`: the same for one host or many.
#[derive(Debug, serde::Serialize)]
struct Summary<'a> {
    app: &'a str,
    version: &'a str,
    release: &'a str,
    ok: bool,
    hosts: Vec<&'a HostReport>,
}

pub fn run(config: &Config, args: &DeployArgs, ui: &Ui) -> Result<()> {
    // Everything local is checked before the first packet goes out.
    let options = options(config, args)?;
    let rollout = rollout(args)?;
    check_identity_files(&args.connect.identity)?;
    let targets = targets(config, &args.hosts, &args.connect)?;
    if let Some(Canary::Host(name)) = &rollout.canary
        && !targets.iter().any(|t| t.destination.label == *name)
    {
        crate::fail!(
            Usage,
            "--canary {name}: not one of the hosts being deployed to"
        );
    }
    let package = match &args.package {
        Some(path) => crate::timings::time("opening the package", || {
            Package::open(path, &config.app.name)
        })?,
        None => {
            let archive = crate::package::build_and_package(config, &args.build, ui)?;
            Package::open(&archive, &config.app.name)?
        }
    };
    interrupt::install()?;
    let layout = layout_for(config, &package);
    if options.dry_run {
        for target in &targets {
            let mut remote = connect(&target.destination, &args.connect, ui)?;
            let plan = plan(&mut remote, config, &package, target, &options, ui)?;
            println!("{}\n", plan.join("\n\n"));
        }
        return Ok(());
    }
    let connector = SshConnector {
        args: &args.connect,
        ui,
    };
    let context = fleet::Context {
        package: &package,
        layout: &layout,
        options: &options,
        rollout: &rollout,
        keep_releases: config.deploy.keep_releases,
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
    print_summary(&reports, &package, &layout, args.json)?;
    outcome(results)
}

/// The exit: success when every host deployed; one host's own error when there is one host;
/// otherwise a summary with the most severe host's category.
fn outcome(results: Vec<(HostReport, Option<anyhow::Error>)>) -> Result<()> {
    let total = results.len();
    let mut failed: Vec<(HostReport, anyhow::Error)> = results
        .into_iter()
        .filter_map(|(report, error)| match (report.outcome, error) {
            (_, Some(e)) => Some((report, e)),
            (Outcome::Skipped | Outcome::SwitchedBack, None) => {
                let e = anyhow::anyhow!("{}", report.outcome.label());
                Some((report, tagged(Category::Remote, e)))
            }
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    if total == 1 {
        return Err(failed.remove(0).1);
    }
    failed.sort_by_key(|(r, _)| fleet::severity(r.category.unwrap_or(Category::Remote)));
    let category = failed[0].0.category.unwrap_or(Category::Remote);
    let lines: Vec<String> = failed
        .iter()
        .map(|(r, e)| format!("  {}: {}", r.host, format!("{e:#}").replace('\n', "\n    ")))
        .collect();
    Err(tagged(
        category,
        anyhow::anyhow!(
            "{} of {total} hosts did not deploy:\n{}",
            failed.len(),
            lines.join("\n")
        ),
    ))
}

fn print_summary(
    reports: &[&HostReport],
    package: &Package,
    layout: &Layout,
    json: bool,
) -> Result<()> {
    if json {
        let summary = Summary {
            app: &layout.app,
            version: &package.manifest.version,
            release: &layout.release,
            ok: reports.iter().all(|r| r.outcome == Outcome::Deployed),
            hosts: reports.to_vec(),
        };
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    if let [only] = reports {
        if only.outcome == Outcome::Deployed {
            println!(
                "deployed {} {} to {} (release {}{})",
                layout.app,
                only.new_version,
                only.host,
                only.release,
                if only.uploaded {
                    ""
                } else {
                    ", upload skipped"
                }
            );
        }
        return Ok(());
    }
    println!(
        "{:<20} {:<14} {:<22} {:<9} {:>7}  HEALTH",
        "HOST", "OUTCOME", "VERSION", "UPLOAD", "TIME"
    );
    for r in reports {
        let versions = format!(
            "{} -> {}",
            r.old_version.as_deref().unwrap_or("none"),
            r.new_version
        );
        println!(
            "{:<20} {:<14} {:<22} {:<9} {:>6.1}s  {}",
            r.host,
            r.outcome.label(),
            versions,
            r.upload,
            r.seconds,
            r.health
        );
    }
    Ok(())
}

fn rollout(args: &DeployArgs) -> Result<Rollout> {
    let batch = Amount::parse("--batch", &args.batch)?;
    if batch.of(100) == 0 {
        crate::fail!(Usage, "--batch {}: at least one host per batch", args.batch);
    }
    Ok(Rollout {
        parallel: usize::from(args.parallel),
        batch,
        canary: args.canary.as_deref().map(|c| {
            if c == "1" {
                Canary::First
            } else {
                Canary::Host(c.to_string())
            }
        }),
        max_fail: Amount::parse("--max-fail", &args.max_fail)?,
        rollback_all_on_failure: args.rollback_all_on_failure,
    })
}

/// HOST arguments → the hosts, groups expanded in order, each resolved and given its env file
/// and health settings.
fn targets(config: &Config, names: &[String], connect: &ConnectArgs) -> Result<Vec<fleet::Target>> {
    let hosts = expand_groups(config, names);
    let shared_env = read_env_file(config)?;
    hosts
        .into_iter()
        .map(|name| {
            let destination = resolve(config, name, connect)?;
            let entry = config.hosts.get(name);
            let env_file = host_env_file(shared_env.as_deref(), entry.map(|e| &e.env));
            let mut health = config.health.clone();
            if let (Some(health), Some(url)) =
                (health.as_mut(), entry.and_then(|e| e.health_url.clone()))
            {
                health.url = url;
            }
            Ok(fleet::Target {
                destination,
                env_file,
                health,
            })
        })
        .collect()
}

/// Host names with `[groups]` expanded, in order, each once.
pub fn expand_groups<'a>(config: &'a Config, names: &'a [String]) -> Vec<&'a str> {
    let mut hosts: Vec<&str> = Vec::new();
    for name in names {
        let members = config.groups.get(name).map_or_else(
            || vec![name.as_str()],
            |g| g.iter().map(String::as_str).collect(),
        );
        for member in members {
            if !hosts.contains(&member) {
                hosts.push(member);
            }
        }
    }
    hosts
}

/// shipit.toml's env file plus a host's own `env`, which wins where both set a key (systemd
/// keeps the last assignment). Every value is written so systemd reads it back as written.
fn host_env_file(
    shared: Option<&[(String, String)]>,
    own: Option<&BTreeMap<String, String>>,
) -> Option<Vec<u8>> {
    let own = own.filter(|e| !e.is_empty());
    if shared.is_none() && own.is_none() {
        return None;
    }
    let lines = shared
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(
            own.into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
    Some(
        lines
            .map(|(key, value)| crate::unit::env_file_line(key, value))
            .collect::<String>()
            .into_bytes(),
    )
}

/// When the connection died mid-deploy, the lock is still ours on the host: a fresh connection
/// releases it, if it still names this process. Best effort; the next deploy would also see the
/// owner is dead (or its lock no longer refreshed) and take it over.
fn release_lost_lock(destination: &Destination, layout: &Layout, ui: &Ui) {
    // Never accept a new host key here: the first connection already proved this host.
    let Ok(mut remote) = SshRemote::connect(destination, &ConnectOptions::default()) else {
        return;
    };
    let mut runner = Runner::apply(&mut remote);
    runner.clean_up();
    if lock::unlock(&mut runner, layout).unwrap_or(false) {
        ui.status(
            "Unlocked",
            format_args!("{} over a new connection", destination.label),
        );
    }
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
        on_failure: if args.no_rollback {
            OnFailure::Stay
        } else {
            OnFailure::RollBack
        },
        lock_wait: parse("--lock-wait", &args.lock_wait)?.unwrap_or_default(),
        confirm_timeout,
        armed: if args.force_disarm {
            ArmedPolicy::Disarm
        } else {
            ArmedPolicy::Refuse
        },
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
    let remote = crate::timings::time("connecting", || SshRemote::connect(destination, &options))?;
    ui.status(
        "Connected",
        format_args!(
            "{}@{}:{} ({}){}{}",
            destination.user,
            destination.hostname,
            destination.port,
            destination.label,
            if destination.sandbox {
                " (sandbox)"
            } else {
                ""
            },
            destination
                .proxy
                .as_ref()
                .map_or_else(String::new, |p| format!(" via {}", p.label))
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

/// `--dry-run`: the steps' scripts, the unit diff and the binary change, with the host untouched.
pub fn plan(
    remote: &mut dyn Remote,
    config: &Config,
    package: &Package,
    target: &fleet::Target,
    options: &Options,
    ui: &Ui,
) -> Result<Vec<String>> {
    let layout = layout_for(config, package);
    let mut runner = Runner::dry_run(remote);
    let platform = Target::parse(&package.manifest.target)?;
    let host = runner.label();
    let mut answers = runner
        .run(vec![
            steps::check(&layout, platform),
            steps::installed(&layout),
        ])?
        .into_iter();
    let facts = steps::host_facts(answers.next().expect("answered"), &host, platform)?;
    let (installed_unit, installed_sha) =
        steps::parse_installed(&answers.next().expect("answered")?);
    let new_sha = package
        .manifest
        .files
        .iter()
        .find(|f| f.path == layout.app)
        .map(|f| f.sha256.clone())
        .unwrap_or_default();
    runner.note(format!(
        "# plan for {} {} on {} (systemd {}): nothing below has run\n# binary sha256: {} -> {new_sha}\n# paths:\n{}",
        layout.app,
        package.manifest.version,
        host,
        facts.systemd,
        installed_sha.as_deref().unwrap_or("(none installed)"),
        layout.shell_vars().trim_end()
    ));
    let host_unit = phases::host_unit(&mut runner, package, facts, ui);
    let new_unit = host_unit.adapted.as_deref().unwrap_or(&package.unit);
    runner.note(unit_diff(&installed_unit, new_unit, &layout.unit_path()));
    let begun = phases::begin(&mut runner, &layout, None, options, ui).map_err(|f| f.error)?;
    let mut transfer = phases::transfer(
        &mut runner,
        &layout,
        package,
        target.env_file.as_deref(),
        &host_unit,
        &begun.survey,
        phases::Then::Wait,
        ui,
    )?;
    phases::activate(
        &mut runner,
        &layout,
        package,
        target.health.as_ref(),
        &mut transfer,
        options,
        ui,
    )?;
    let (_, error) = phases::finish(
        &mut runner,
        &layout,
        config.deploy.keep_releases,
        true,
        true,
    );
    if let Some(e) = error {
        return Err(e);
    }
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
    let result = rollback_locked(&mut runner, config, &layout, to, ui);
    runner.clean_up();
    let unlocked = lock::unlock(&mut runner, &layout);
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
    let out = runner.one(steps::releases(layout))?;
    let (releases, since) = (steps::parse_releases(&out), steps::parse_now(&out)?);
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
    ui.status(
        "Rolling back",
        format_args!("to {} on {}", target.name, runner.label()),
    );
    let listen = steps::Listen::default();
    let switched = runner
        .one(steps::switch_to(layout, &target.name, listen))
        .and_then(|state| {
            health::gate(
                runner.remote,
                layout,
                config.health.as_ref(),
                Some(&target.version),
                Some(health::parse_state(&state)),
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
                config.health.as_ref(),
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

/// The env file's `KEY=VALUE` lines, checked locally; values are never shown, even in errors.
/// A value is everything after the first `=`, quotes and spaces included, as Docker's and
/// kubectl's `--env-file` read it; blank lines and `#` comments are skipped.
fn read_env_file(config: &Config) -> Result<Option<Vec<(String, String)>>> {
    let Some(path) = &config.service.env_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the env file {}", path.display()))
        .tag(Category::Usage)?;
    let mut pairs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((key, value))
                if crate::config::validate_env_key(key.trim_end()).is_ok()
                    && !value.contains('\0') =>
            {
                pairs.push((key.trim_end().to_string(), value.to_string()));
            }
            _ => crate::fail!(
                Usage,
                "{}:{}: expected KEY=VALUE (the value is not shown because it may be a secret)",
                path.display(),
                index + 1
            ),
        }
    }
    Ok(Some(pairs))
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
