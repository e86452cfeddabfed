//! Many hosts, one package: connect and prepare hosts in parallel, take their locks in one fixed
//! order (two fleet deploys can never hold each other's locks), then switch in batches — a canary
//! first if asked — each batch passing its health gates before the next starts.

use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use super::lock::{self, ArmedPolicy, Lease};
use super::phases::{self, Transfer};
use super::runner::Runner;
use super::steps::{self, HostUnit, Upload};
use super::{Layout, Options, connect, deadman};
use crate::cli::ConnectArgs;
use crate::config::{Config, Health};
use crate::error::Category;
use crate::interrupt;
use crate::package::Package;
use crate::remote::destination::Destination;
use crate::remote::ssh::SshRemote;
use crate::ui::Ui;

/// One host to deploy to, resolved and validated before anything connects.
#[derive(Debug, Clone)]
pub struct Target {
    pub destination: Destination,
    /// The env file for this host: shipit.toml's env_file plus the host's own env.
    pub env_file: Option<Vec<u8>>,
    pub health: Option<Health>,
}

/// How to roll out, from `--batch`, `--canary`, `--max-fail`, `--rollback-all-on-failure`.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub parallel: usize,
    pub batch: Amount,
    pub canary: Option<Canary>,
    pub max_fail: Amount,
    pub rollback_all_on_failure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Count(usize),
    Percent(u8),
}

impl Amount {
    pub fn parse(flag: &str, text: &str) -> Result<Amount> {
        let parsed = match text.strip_suffix('%') {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= 100)
                .map(Amount::Percent),
            None => text.parse::<usize>().ok().map(Amount::Count),
        };
        parsed.ok_or_else(|| {
            crate::error::tagged(
                Category::Usage,
                anyhow::anyhow!(
                    "{flag} {text:?}: use a number of hosts (like 2) or a percentage (like 25%)"
                ),
            )
        })
    }

    /// How many of `total` hosts, rounded up.
    pub fn of(self, total: usize) -> usize {
        match self {
            Amount::Count(n) => n,
            Amount::Percent(p) => (total * p as usize).div_ceil(100),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canary {
    First,
    Host(String),
}

/// What happened on one host; also the JSON for CI.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub outcome: Outcome,
    pub old_version: Option<String>,
    pub new_version: String,
    pub release: String,
    pub uploaded: bool,
    /// "sent", "resumed", "skipped" (the host had it) or "-" (never got that far).
    pub upload: &'static str,
    pub resumed_from: u64,
    pub upload_seconds: f64,
    pub reused_release: bool,
    pub previous: Option<String>,
    pub pruned: Vec<String>,
    pub seconds: f64,
    pub error: Option<String>,
    #[serde(skip)]
    pub category: Option<Category>,
    /// The lock could not be released (the connection died); the caller tries a new one.
    #[serde(skip)]
    pub still_locked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Running the new release, healthy.
    Deployed,
    /// Failed before the switch; still on the release it had.
    Failed,
    /// The new release failed its gate; the previous one runs again.
    RolledBack,
    /// Healthy on the new release, then switched back because the rollout stopped.
    SwitchedBack,
    /// Not switched because the rollout stopped first.
    Skipped,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled back",
            Outcome::SwitchedBack => "switched back",
            Outcome::Skipped => "skipped",
        }
    }
}

/// A host's progress through the rollout.
struct HostRun<'a> {
    target: &'a Target,
    remote: Option<SshRemote>,
    /// The unit this host gets, once its systemd is known.
    host_unit: Option<HostUnit>,
    locked: bool,
    /// Refreshes the lock while the deploy runs.
    lease: Option<Lease>,
    transfer: Option<Transfer>,
    outcome: Option<Outcome>,
    error: Option<anyhow::Error>,
    pruned: Vec<String>,
    started: Instant,
}

impl HostRun<'_> {
    fn label(&self) -> &str {
        &self.target.destination.label
    }

    fn alive(&self) -> bool {
        self.error.is_none() && self.outcome.is_none()
    }

    fn fail(&mut self, error: anyhow::Error, outcome: Outcome) {
        self.error = Some(error);
        self.outcome = Some(outcome);
    }

    fn runner(&mut self) -> Runner<'_> {
        Runner::apply(self.remote.as_mut().expect("connected"))
    }
}

/// Everything a fleet deploy needs besides the hosts.
pub struct Plan<'a> {
    pub config: &'a Config,
    pub package: &'a Package,
    pub layout: &'a Layout,
    pub options: &'a Options,
    pub rollout: &'a Rollout,
    pub connect: &'a ConnectArgs,
    pub ui: &'a Ui,
}

/// Deploys to every target; each host's report comes with its error, if it had one.
pub fn deploy(plan: &Plan, targets: &[Target]) -> Vec<(HostReport, Option<anyhow::Error>)> {
    let mut runs: Vec<HostRun> = targets
        .iter()
        .map(|target| HostRun {
            target,
            remote: None,
            host_unit: None,
            locked: false,
            lease: None,
            transfer: None,
            outcome: None,
            error: None,
            pruned: Vec::new(),
            started: Instant::now(),
        })
        .collect();
    in_parallel(&mut runs, plan.rollout.parallel, |run| {
        connect_and_check(plan, run)
    });
    lock_in_order(plan, &mut runs);
    in_parallel(&mut runs, plan.rollout.parallel, |run| prepare(plan, run));
    let stopped = activate_in_batches(plan, &mut runs);
    if stopped && plan.rollout.rollback_all_on_failure {
        in_parallel(&mut runs, plan.rollout.parallel, |run| {
            switch_back(plan, run)
        });
    }
    in_parallel(&mut runs, plan.rollout.parallel, |run| finish(plan, run));
    runs.into_iter().map(|run| report(plan, run)).collect()
}

/// Runs `work` on every host still in the rollout, at most `limit` at a time.
fn in_parallel<'a>(runs: &mut [HostRun<'a>], limit: usize, work: impl Fn(&mut HostRun<'a>) + Sync) {
    let queue = Mutex::new(runs.iter_mut());
    std::thread::scope(|scope| {
        for _ in 0..limit.max(1) {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().expect("queue lock").next();
                    let Some(run) = next else { break };
                    work(run);
                }
            });
        }
    });
}

fn connect_and_check(plan: &Plan, run: &mut HostRun) {
    if !run.alive() {
        return;
    }
    let result = connect(&run.target.destination, plan.connect, plan.ui).and_then(|remote| {
        run.remote = Some(remote);
        let target = crate::build::Target::parse(&plan.package.manifest.target)?;
        let facts = steps::preflight(&mut run.runner(), plan.layout, target)?;
        run.host_unit = Some(phases::host_unit(
            &mut run.runner(),
            plan.package,
            facts,
            plan.ui,
        ));
        Ok(())
    });
    if let Err(e) = result {
        run.fail(e, Outcome::Failed);
    }
}

/// Locks are taken one host at a time in the order of their addresses, so two fleet deploys
/// that share hosts queue up instead of each holding half the fleet.
fn lock_in_order(plan: &Plan, runs: &mut [HostRun]) {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by_key(|&i| {
        let d = &runs[i].target.destination;
        (d.hostname.clone(), d.port, d.user.clone())
    });
    for i in order {
        let run = &mut runs[i];
        if !run.alive() {
            continue;
        }
        let label = run.label().to_string();
        let armed = if plan.options.force_disarm {
            ArmedPolicy::Disarm
        } else {
            ArmedPolicy::Refuse
        };
        match lock::lock(
            &mut run.runner(),
            plan.layout,
            plan.options.lock_wait,
            armed,
            plan.ui,
        ) {
            Ok(disarmed) => {
                run.locked = true;
                for timer in disarmed {
                    plan.ui.status(
                        "Disarmed",
                        format_args!(
                            "the dead-man timer armed by {} for {} on {label} (--force-disarm)",
                            timer.owner.who(),
                            timer.release
                        ),
                    );
                }
                let remote = run.remote.as_mut().expect("connected");
                match lock::lease(remote, plan.layout) {
                    Ok(lease) => run.lease = Some(lease),
                    Err(e) => plan.ui.diagnostic(format_args!(
                        "warning: the lock on {label} will not be refreshed ({e:#}); if this \
                         deploy takes longer than {}, another may take the lock over",
                        humantime::format_duration(lock::STALE_AFTER)
                    )),
                }
            }
            Err(e) => run.fail(
                phases::interrupted_or(e, &label, "locking"),
                Outcome::Failed,
            ),
        }
    }
}

fn prepare(plan: &Plan, run: &mut HostRun) {
    if !run.alive() {
        return;
    }
    let env_file = run.target.env_file.clone();
    let host_unit = run.host_unit.clone().expect("checked before preparing");
    match phases::transfer(
        &mut run.runner(),
        plan.layout,
        plan.package,
        env_file.as_deref(),
        &host_unit,
        plan.ui,
    ) {
        Ok(transfer) => run.transfer = Some(transfer),
        Err(e) => run.fail(e, Outcome::Failed),
    }
}

/// The hosts in switching order, split into batches: the canary alone, then `--batch` at a time.
fn batches(plan: &Plan, runs: &[HostRun]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    let mut batches = Vec::new();
    if let Some(canary) = &plan.rollout.canary {
        let position = match canary {
            Canary::First => Some(0),
            Canary::Host(name) => runs.iter().position(|r| r.label() == name),
        };
        if let Some(p) = position.filter(|p| *p < order.len()) {
            batches.push(vec![order.remove(p)]);
        }
    }
    let size = plan.rollout.batch.of(runs.len()).max(1);
    batches.extend(order.chunks(size).map(<[usize]>::to_vec));
    batches
}

/// Returns whether the rollout stopped early.
fn activate_in_batches(plan: &Plan, runs: &mut [HostRun]) -> bool {
    let allowed = plan.rollout.max_fail.of(runs.len());
    let failures = |runs: &[HostRun]| runs.iter().filter(|r| r.error.is_some()).count();
    let mut stopped = false;
    for batch in batches(plan, runs) {
        if failures(runs) > allowed || interrupt::requested() {
            stopped = true;
            for &i in &batch {
                if runs[i].alive() {
                    runs[i].outcome = Some(Outcome::Skipped);
                }
            }
            continue;
        }
        let mut members: Vec<&mut HostRun> = Vec::new();
        for (i, run) in runs.iter_mut().enumerate() {
            if batch.contains(&i) {
                members.push(run);
            }
        }
        let queue = Mutex::new(members.into_iter());
        std::thread::scope(|scope| {
            for _ in 0..batch.len() {
                scope.spawn(|| {
                    let next = queue.lock().expect("queue lock").next();
                    if let Some(run) = next {
                        activate(plan, run);
                    }
                });
            }
        });
    }
    if failures(runs) > allowed && !stopped {
        // The last batch failed: nothing left to stop, but the others may still go back.
        stopped = true;
    }
    stopped
}

fn activate(plan: &Plan, run: &mut HostRun) {
    if !run.alive() {
        return;
    }
    let transfer = run.transfer.clone().expect("prepared");
    let health = run.target.health.clone();
    let result = phases::activate(
        &mut run.runner(),
        plan.layout,
        plan.package,
        health.as_ref(),
        &transfer,
        plan.options,
        plan.ui,
    );
    match result {
        Ok(()) => run.outcome = Some(Outcome::Deployed),
        Err(e) => {
            let outcome = match crate::error::category_of(&e) {
                Some(Category::RolledBack | Category::Interrupted)
                    if transfer.previous.is_some() =>
                {
                    Outcome::RolledBack
                }
                _ => Outcome::Failed,
            };
            run.error = Some(e);
            run.outcome = Some(outcome);
        }
    }
}

fn switch_back(plan: &Plan, run: &mut HostRun) {
    if run.outcome != Some(Outcome::Deployed) {
        return;
    }
    let Some(previous) = run.transfer.as_ref().and_then(|t| t.previous.clone()) else {
        return;
    };
    let health = run.target.health.clone();
    let label = run.label().to_string();
    plan.ui.status(
        "Switching",
        format_args!("{label} back to {previous}: the rollout stopped"),
    );
    let armed = plan.options.confirm_timeout.is_some();
    match phases::switch_back(
        &mut run.runner(),
        plan.layout,
        &previous,
        health.as_ref(),
        armed,
        plan.ui,
    ) {
        Ok(()) => run.outcome = Some(Outcome::SwitchedBack),
        Err(e) => {
            run.error = Some(crate::error::tagged(
                Category::RollbackFailed,
                e.context(format!("switching {label} back to {previous}")),
            ));
            run.outcome = Some(Outcome::Failed);
        }
    }
}

/// Healthy hosts are recorded, pruned and confirmed; then every locked host is unlocked. The
/// confirmation comes first: a dead-man timer must never be armed on a host no deploy holds.
fn finish(plan: &Plan, run: &mut HostRun) {
    let Some(remote) = run.remote.as_mut() else {
        return;
    };
    let mut runner = Runner::apply(remote);
    runner.clean_up();
    let deployed = run.outcome == Some(Outcome::Deployed);
    if deployed {
        match phases::finalize(&mut runner, plan.layout, plan.config.deploy.keep_releases) {
            Ok(pruned) => run.pruned = pruned,
            Err(e) => run.error = Some(e),
        }
    }
    if deployed && plan.options.confirm_timeout.is_some() {
        // A fresh connection proves this machine can still reach the host.
        let confirmed = match connect(&run.target.destination, plan.connect, plan.ui) {
            Ok(mut fresh) => deadman::confirm(&mut fresh, plan.layout),
            Err(e) => Err(e.context(
                "the release is healthy but could not be confirmed over a new connection; the \
                 host's dead-man timer will switch it back by itself",
            )),
        };
        match confirmed {
            Ok(()) => plan.ui.status(
                "Confirmed",
                format_args!(
                    "{} on {}",
                    plan.package.manifest.version, run.target.destination.label
                ),
            ),
            Err(e) => run.error = Some(e),
        }
    }
    run.lease = None;
    if run.locked && lock::unlock(&mut runner, plan.layout).is_ok() {
        run.locked = false;
    }
}

fn report(plan: &Plan, run: HostRun) -> (HostReport, Option<anyhow::Error>) {
    let transfer = run.transfer.as_ref();
    let (uploaded, resumed_from) = match transfer.map(|t| t.upload) {
        Some(Upload::Sent { resumed_from, .. }) => (true, resumed_from),
        _ => (false, 0),
    };
    let report = HostReport {
        host: run.label().to_string(),
        outcome: run.outcome.unwrap_or(Outcome::Failed),
        old_version: transfer.and_then(|t| t.previous_version.clone()),
        new_version: plan.package.manifest.version.clone(),
        release: plan.layout.release.clone(),
        uploaded,
        upload: match transfer.map(|t| t.upload) {
            Some(Upload::Sent {
                resumed_from: 0, ..
            }) => "sent",
            Some(Upload::Sent { .. }) => "resumed",
            Some(Upload::Skipped) => "skipped",
            None => "-",
        },
        resumed_from,
        upload_seconds: transfer.map_or(0.0, |t| t.upload_seconds),
        reused_release: transfer.is_some_and(|t| t.reused_release),
        previous: transfer.and_then(|t| t.previous.clone()),
        pruned: run.pruned.clone(),
        seconds: run.started.elapsed().as_secs_f64(),
        error: run.error.as_ref().map(|e| format!("{e:#}")),
        category: run
            .error
            .as_ref()
            .map(|e| crate::error::category_of(e).unwrap_or(Category::Remote)),
        still_locked: run.locked,
    };
    (report, run.error)
}

/// The hosts' errors, most severe first, for the exit code and message.
pub fn severity(category: Category) -> u8 {
    match category {
        Category::RollbackFailed => 0,
        Category::Interrupted => 1,
        Category::RolledBack => 2,
        Category::Locked => 3,
        Category::Remote => 4,
        Category::Connect => 5,
        Category::Build => 6,
        Category::Usage => 7,
    }
}
