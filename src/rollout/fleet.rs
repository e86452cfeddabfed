//! Many hosts, one package: connect and prepare hosts in parallel, take their locks in one fixed
//! order (two fleet deploys can never hold each other's locks), then switch in batches — a canary
//! first if asked — each batch passing its health gates before the next starts.

use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use super::phases::{self, Then, Transfer};
use super::request::{Canary, Options, Rollout};
use super::targets::Target;
use crate::actions::hooks::{self, OnHost};
use crate::actions::survey::Survey;
use crate::actions::upload::Upload;
use crate::actions::{deadman, health, preflight};
use crate::build::Target as Platform;
use crate::cancel::{Cancel, interrupted};
use crate::config::{Argv, Hooks};
use crate::error::Category;
use crate::events::{Event, Events};
use crate::hosts::check::{CheckHost, HostUnit};
use crate::hosts::log;
use crate::hosts::script::Script;
use crate::hosts::{Connect, Layout, Runner};
use crate::names::ReleaseId;
use crate::package::Package;
use crate::remote::Remote;
use crate::ui::Ui;

/// What happened on one host; also the JSON for CI.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub outcome: Outcome,
    pub old_version: Option<String>,
    pub new_version: String,
    pub release: ReleaseId,
    pub uploaded: bool,
    /// "sent", "resumed", "skipped" (the host had it) or "-" (never got that far).
    pub upload: &'static str,
    pub resumed_from: u64,
    pub upload_seconds: f64,
    pub reused_release: bool,
    pub previous: Option<ReleaseId>,
    pub pruned: Vec<String>,
    pub seconds: f64,
    /// How many times shipit waited for the host (see `Remote::round_trips`).
    pub round_trips: u32,
    /// "ok", "failed" (its health gate said so), or "-" (never got that far).
    pub health: &'static str,
    /// `[hooks]` on this host: "ok", "failed", or "-" (not run here).
    pub before_switch: &'static str,
    pub after_switch: &'static str,
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
    /// As `--json` and the host's deploy log say it.
    pub fn kebab(self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled-back",
            Outcome::SwitchedBack => "switched-back",
            Outcome::Skipped => "skipped",
        }
    }

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
    remote: Option<Box<dyn Remote + Send>>,
    /// The unit this host gets, once its systemd is known.
    host_unit: Option<HostUnit>,
    locked: bool,
    survey: Option<Survey>,
    transfer: Option<Transfer>,
    outcome: Option<Outcome>,
    /// Its health gate judged the new release (true: healthy).
    gate: Option<bool>,
    /// How its hooks went (true: ok), when they ran here.
    before_switch: Option<bool>,
    after_switch: Option<bool>,
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

    fn runner(&mut self, ctx: &Context) -> Runner<'_> {
        let remote = self.remote.as_mut().expect("connected");
        Runner::apply(remote.as_mut(), ctx.cancel)
    }

    /// Its switch went in the batch that prepared it.
    fn switched(&self) -> bool {
        self.transfer.as_ref().is_some_and(|t| t.started.is_some())
    }

    /// A failed activation: rolled back when the previous release runs again.
    fn failed_activation(&mut self, error: anyhow::Error) {
        let previous = self.transfer.as_ref().is_some_and(|t| t.previous.is_some());
        let outcome = match crate::error::category_of(&error) {
            Some(Category::RolledBack | Category::Interrupted) if previous => Outcome::RolledBack,
            _ => Outcome::Failed,
        };
        if health::judged_unhealthy(&error) {
            self.gate = Some(false);
        }
        self.fail(error, outcome);
    }
}

/// Everything a fleet deploy needs besides the hosts.
pub struct Context<'a> {
    pub package: &'a Package,
    pub layout: &'a Layout,
    pub options: &'a Options,
    pub rollout: &'a Rollout,
    pub keep_releases: usize,
    /// `[deploy] preflight`: the new release runs on a scratch socket before the switch.
    pub preflight: bool,
    pub hooks: &'a Hooks,
    pub connector: &'a dyn Connect,
    /// Set by Ctrl-C: the rollout stops at its next safe point.
    pub cancel: &'a Cancel,
    /// `--events`: each host's steps as they happen.
    pub events: &'a Events,
    pub ui: &'a Ui,
}

/// Deploys to every target; each host's report comes with its error, if it had one. A lone
/// host is checked, locked and surveyed in one batch and switched in the batch that prepares
/// it: nothing waits for other hosts in between.
pub fn deploy(ctx: &Context, targets: &[Target]) -> Vec<(HostReport, Option<anyhow::Error>)> {
    let shape = if targets.len() == 1 {
        Shape::Lone
    } else {
        Shape::Fleet
    };
    let mut runs: Vec<HostRun> = targets
        .iter()
        .map(|target| HostRun {
            target,
            remote: None,
            host_unit: None,
            locked: false,
            survey: None,
            transfer: None,
            outcome: None,
            gate: None,
            before_switch: None,
            after_switch: None,
            error: None,
            pruned: Vec::new(),
            started: Instant::now(),
        })
        .collect();
    in_parallel(&mut runs, ctx.rollout.parallel, |run| {
        connect_and_check(ctx, run, shape)
    });
    lock_in_order(ctx, &mut runs, shape);
    in_parallel(&mut runs, ctx.rollout.parallel, |run| {
        prepare(ctx, run, shape)
    });
    before_switch(ctx, &mut runs);
    let stopped = activate_in_batches(ctx, &mut runs);
    if stopped && ctx.rollout.rollback_all_on_failure {
        in_parallel(&mut runs, ctx.rollout.parallel, |run| switch_back(ctx, run));
    }
    in_parallel(&mut runs, ctx.rollout.parallel, |run| finish(ctx, run));
    runs.into_iter().map(|run| report(ctx, run)).collect()
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

fn platform(ctx: &Context) -> Result<Platform> {
    Platform::parse(&ctx.package.manifest.target)
}

/// A lone host skips the round trips that only keep a fleet in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Lone,
    Fleet,
}

/// Connects; in a fleet, checks the host too (a lone host's check goes with its lock).
fn connect_and_check(ctx: &Context, run: &mut HostRun, shape: Shape) {
    if !run.alive() {
        return;
    }
    let result = ctx
        .connector
        .connect(&run.target.destination)
        .and_then(|remote| {
            run.remote = Some(remote);
            ctx.events.emit(Event::Connected {
                host: run.label().to_string(),
            });
            if shape == Shape::Lone {
                return Ok(());
            }
            let platform = platform(ctx)?;
            let check = CheckHost { target: platform };
            let answer = run.runner(ctx).one(check.step(ctx.layout));
            let facts = check.read(answer, run.label())?;
            run.host_unit = Some(HostUnit::for_host(
                &mut run.runner(ctx),
                ctx.package,
                facts,
                ctx.ui,
            ));
            Ok(())
        });
    if let Err(e) = result {
        run.fail(e, Outcome::Failed);
    }
}

/// Locks are taken one host at a time in the order of their addresses, so two fleet deploys
/// that share hosts queue up instead of each holding half the fleet. A lone host is checked in
/// the same batch.
fn lock_in_order(ctx: &Context, runs: &mut [HostRun], shape: Shape) {
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
        let check = match (shape == Shape::Lone).then(|| platform(ctx)).transpose() {
            Ok(check) => check,
            Err(e) => {
                run.fail(e, Outcome::Failed);
                continue;
            }
        };
        let begun = phases::begin(
            &mut run.runner(ctx),
            ctx.layout,
            check,
            ctx.options,
            ctx.events,
            ctx.ui,
        );
        match begun {
            Ok(begun) => {
                run.locked = true;
                if let Some(facts) = begun.facts {
                    run.host_unit = Some(HostUnit::for_host(
                        &mut run.runner(ctx),
                        ctx.package,
                        facts,
                        ctx.ui,
                    ));
                }
                for timer in begun.armed {
                    ctx.ui.status(
                        "Disarmed",
                        format_args!(
                            "the dead-man timer armed by {} for {} on {label} (--force-disarm)",
                            timer.owner.who(),
                            timer.release
                        ),
                    );
                }
                run.survey = Some(begun.survey);
            }
            Err(failure) => {
                run.locked = failure.locked;
                run.fail(failure.error, Outcome::Failed);
            }
        }
    }
}

fn prepare(ctx: &Context, run: &mut HostRun, shape: Shape) {
    if !run.alive() {
        return;
    }
    let env_file = run.target.env_file.clone();
    let health = run.target.health.clone();
    let host_unit = run.host_unit.clone().expect("checked before preparing");
    let survey = run.survey.take().expect("surveyed before preparing");
    // A before_switch hook needs the release ready and the switch not yet made.
    let then = if shape == Shape::Lone && ctx.hooks.before_switch.is_none() {
        Then::Switch {
            options: ctx.options,
            health: health.as_ref(),
        }
    } else {
        Then::Wait
    };
    let preflight = preflight::wanted(
        ctx.preflight,
        ctx.package,
        health.as_ref(),
        run.label(),
        ctx.ui,
    );
    match phases::transfer(
        &mut run.runner(ctx),
        ctx.layout,
        ctx.package,
        env_file.as_deref(),
        &host_unit,
        &survey,
        preflight,
        then,
        ctx.events,
        ctx.ui,
    ) {
        Ok(transfer) => run.transfer = Some(transfer),
        Err(e) => run.fail(e, Outcome::Failed),
    }
}

/// `[hooks] before_switch` on the hosts that run it (in parallel, before any host switches); a
/// failure anywhere stops the rollout: every other host still in it is skipped.
fn before_switch(ctx: &Context, runs: &mut [HostRun]) {
    let Some(argv) = &ctx.hooks.before_switch else {
        return;
    };
    // A rollout that stops at its first batch anyway gets no migration.
    let failed = runs.iter().filter(|r| r.error.is_some()).count();
    if failed > ctx.rollout.max_fail.of(runs.len()) {
        return;
    }
    let labels: Vec<String> = runs.iter().map(|r| r.label().to_string()).collect();
    let order = batch_plan(ctx.rollout, &labels).concat();
    let due = hooks::before_switch_hosts(ctx.hooks.before_switch_on, &order, |i| runs[i].alive());
    for &i in &due {
        runs[i].before_switch = Some(false);
    }
    in_parallel(runs, ctx.rollout.parallel, |run| {
        if run.before_switch.is_none() {
            return;
        }
        let result = ctx
            .cancel
            .check()
            .and_then(|()| run_hook(ctx, run, OnHost::BeforeSwitch, argv));
        match result {
            Ok(()) => run.before_switch = Some(true),
            Err(e) => run.fail(e, Outcome::Failed),
        }
    });
    // A Ctrl-C while a hook ran let it finish; nothing switches after it.
    let stopped = ctx.cancel.requested();
    if stopped || runs.iter().any(|r| r.before_switch == Some(false)) {
        for run in runs.iter_mut().filter(|r| r.alive()) {
            run.outcome = Some(Outcome::Skipped);
            if stopped {
                run.error = Some(interrupted());
            }
        }
    }
}

/// A hook on a prepared host, with its new release.
fn run_hook(ctx: &Context, run: &mut HostRun, which: OnHost, argv: &Argv) -> Result<()> {
    let transfer = run.transfer.as_ref().expect("prepared");
    let release = hooks::Release {
        layout: ctx.layout,
        package: ctx.package,
        host_unit: run.host_unit.as_ref().expect("checked before preparing"),
        previous_version: transfer.previous_version.as_deref(),
    };
    let remote = run.remote.as_mut().expect("connected").as_mut();
    hooks::run_on_host(
        remote,
        &release,
        which,
        argv,
        ctx.hooks.timeout,
        ctx.events,
        ctx.ui,
    )
}

/// `[hooks] after_switch` on a host that deployed; a failure is a warning, never a rollback.
fn after_switch(ctx: &Context, run: &mut HostRun) {
    let Some(argv) = &ctx.hooks.after_switch else {
        return;
    };
    let result = run_hook(ctx, run, OnHost::AfterSwitch, argv);
    if let Err(e) = &result {
        ctx.ui.diagnostic(format!("warning: {e:#}"));
    }
    run.after_switch = Some(result.is_ok());
}

/// The hosts (by index) in switching order, split into batches: the canary alone, then
/// `--batch` at a time.
pub fn batch_plan(rollout: &Rollout, hosts: &[String]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..hosts.len()).collect();
    let mut batches = Vec::new();
    if let Some(canary) = &rollout.canary {
        let position = match canary {
            Canary::First => Some(0),
            Canary::Host(name) => hosts.iter().position(|h| h == name),
        };
        if let Some(p) = position.filter(|p| *p < order.len()) {
            batches.push(vec![order.remove(p)]);
        }
    }
    let size = rollout.batch.of(hosts.len()).max(1);
    batches.extend(order.chunks(size).map(<[usize]>::to_vec));
    batches
}

/// Returns whether the rollout stopped early.
fn activate_in_batches(ctx: &Context, runs: &mut [HostRun]) -> bool {
    let allowed = ctx.rollout.max_fail.of(runs.len());
    let failures = |runs: &[HostRun]| runs.iter().filter(|r| r.error.is_some()).count();
    let mut stopped = false;
    let hosts: Vec<String> = runs.iter().map(|r| r.label().to_string()).collect();
    for batch in batch_plan(ctx.rollout, &hosts) {
        if failures(runs) > allowed || ctx.cancel.requested() {
            stopped = true;
            for &i in &batch {
                // A host whose switch went with its transfer is past skipping: its gate (or
                // rollback) still runs.
                if runs[i].alive() && !runs[i].switched() {
                    runs[i].outcome = Some(Outcome::Skipped);
                }
            }
            if !batch.iter().any(|&i| runs[i].alive()) {
                continue;
            }
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
                        activate(ctx, run);
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

fn activate(ctx: &Context, run: &mut HostRun) {
    if !run.alive() {
        return;
    }
    let mut transfer = run.transfer.take().expect("prepared");
    let health = run.target.health.clone();
    let result = phases::activate(
        &mut run.runner(ctx),
        ctx.layout,
        ctx.package,
        health.as_ref(),
        &mut transfer,
        ctx.options,
        ctx.events,
        ctx.ui,
    );
    run.transfer = Some(transfer);
    match result {
        Ok(()) => {
            run.outcome = Some(Outcome::Deployed);
            run.gate = Some(true);
            confirm(ctx, run);
        }
        Err(e) => run.failed_activation(e),
    }
}

/// Disarms the dead-man timer of a host whose gate has just passed: the timeout covers one
/// host's gate, not the batches still to come. A fresh connection proves this machine still
/// reaches the host. A host not confirmed counts as failed; its timer puts it back.
fn confirm(ctx: &Context, run: &mut HostRun) {
    if ctx.options.confirm_timeout.is_none() {
        return;
    }
    let confirmed = match ctx.connector.connect(&run.target.destination) {
        Ok(mut fresh) => deadman::confirm(fresh.as_mut(), ctx.layout),
        Err(e) => Err(e.context(
            "the release is healthy but could not be confirmed over a new connection; the \
             host's dead-man timer will switch it back by itself",
        )),
    };
    match confirmed {
        Ok(()) => ctx.ui.status(
            "Confirmed",
            format_args!("{} on {}", ctx.package.manifest.version, run.label()),
        ),
        Err(e) => run.error = Some(e),
    }
}

fn switch_back(ctx: &Context, run: &mut HostRun) {
    if run.outcome != Some(Outcome::Deployed) {
        return;
    }
    let Some(previous) = run.transfer.as_ref().and_then(|t| t.previous.clone()) else {
        return;
    };
    let health = run.target.health.clone();
    let label = run.label().to_string();
    ctx.ui.status(
        "Switching",
        format_args!("{label} back to {previous}: the rollout stopped"),
    );
    match phases::switch_back(
        &mut run.runner(ctx),
        ctx.layout,
        &previous,
        health.as_ref(),
        ctx.options,
        ctx.events,
        ctx.ui,
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

/// Healthy hosts run their after_switch hook, then are recorded and pruned, and every locked
/// host is logged and unlocked, in one batch. A host whose dead-man timer could not be
/// confirmed (see [`confirm`], which came first: a timer must never be armed on a host no deploy
/// holds) is left to that timer, never recorded as good.
fn finish(ctx: &Context, run: &mut HostRun) {
    if run.remote.is_none() {
        return;
    }
    let deployed = run.outcome == Some(Outcome::Deployed);
    if deployed {
        after_switch(ctx, run);
    }
    // Deployed with an error: its confirmation failed.
    let record = deployed && run.error.is_none();
    let lock = if run.locked {
        phases::Lock::Held
    } else {
        phases::Lock::NotHeld
    };
    let keep = record.then_some(ctx.keep_releases);
    let outcome = run.outcome.unwrap_or(Outcome::Failed);
    let entry = log::Entry::now(
        ctx.layout,
        "deploy",
        &ctx.package.manifest.version,
        run.transfer.as_ref().and_then(|t| t.previous.as_ref()),
        outcome.kebab(),
        run.started.elapsed().as_secs_f64(),
    );
    let log = run.locked.then_some(&entry);
    let (finished, error) = phases::finish(&mut run.runner(ctx), ctx.layout, keep, log, lock);
    if record {
        run.pruned = finished.pruned;
    }
    if let Some(e) = error {
        run.error.get_or_insert(e);
    }
    if run.locked && !finished.still_locked {
        ctx.events.emit(Event::Unlocked {
            host: run.label().to_string(),
        });
    }
    run.locked = finished.still_locked;
}

fn report(ctx: &Context, run: HostRun) -> (HostReport, Option<anyhow::Error>) {
    let transfer = run.transfer.as_ref();
    let (uploaded, resumed_from) = match transfer.map(|t| t.upload) {
        Some(Upload::Sent { resumed_from, .. }) => (true, resumed_from),
        _ => (false, 0),
    };
    let report = HostReport {
        host: run.label().to_string(),
        outcome: run.outcome.unwrap_or(Outcome::Failed),
        old_version: transfer.and_then(|t| t.previous_version.clone()),
        new_version: ctx.package.manifest.version.clone(),
        release: ctx.layout.release.clone(),
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
        round_trips: run.remote.as_ref().map_or(0, |r| r.round_trips()),
        health: match run.gate {
            Some(true) => "ok",
            Some(false) => "failed",
            None => "-",
        },
        before_switch: hook_label(run.before_switch),
        after_switch: hook_label(run.after_switch),
        error: run.error.as_ref().map(|e| format!("{e:#}")),
        category: run
            .error
            .as_ref()
            .map(|e| crate::error::category_of(e).unwrap_or(Category::Remote)),
        still_locked: run.locked,
    };
    if let Some(error) = &run.error {
        ctx.events.emit(Event::failed(&report.host, error));
    }
    (report, run.error)
}

fn hook_label(ran: Option<bool>) -> &'static str {
    match ran {
        Some(true) => "ok",
        Some(false) => "failed",
        None => "-",
    }
}

/// The hosts' errors, most severe first, for the exit code and message.
pub fn severity(category: Category) -> u8 {
    match category {
        Category::RollbackFailed => 0,
        Category::Interrupted => 1,
        Category::RolledBack => 2,
        Category::Preflight => 3,
        Category::Locked => 4,
        Category::Hook => 5,
        Category::Remote => 6,
        Category::Connect => 7,
        Category::Build => 8,
        Category::Usage => 9,
    }
}
