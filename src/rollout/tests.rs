//! The rollout's logic against fake hosts ([`crate::remote::fake`]): batches, canaries,
//! max-fail, rollback-all, a host failing in each phase, Ctrl-C at each safe point, and the
//! exit code a fleet deploy ends with. No root, no network: the deploy path itself is tested
//! against real hosts in tests/cli.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;

use super::fleet::{self, Context, HostReport, Outcome};
use super::report::outcome;
use super::request::{Amount, Canary, Options, Rollout};
use super::targets::Target;
use crate::actions::{ArmedPolicy, OnFailure};
use crate::cancel::Cancel;
use crate::config::{Argv, Health, HookHosts, Hooks};
use crate::error::{Category, category_of};
use crate::hosts::{Connect, Layout};
use crate::names::{HostName, ReleaseId};
use crate::package::Package;
use crate::remote::destination::Destination;
use crate::remote::fake::{Host, Hosts, Reply};
use crate::remote::{Exit, Kind, Remote};
use crate::ui::Ui;

struct Fakes(Hosts);

impl Connect for Fakes {
    fn connect(&self, destination: &Destination) -> Result<Box<dyn Remote + Send>> {
        Ok(Box::new(self.0.connect(&destination.label)?))
    }
}

/// Fake hosts, a package of version 2.0.0 and what a deploy is given.
struct World {
    hosts: Hosts,
    host: Vec<Arc<Mutex<Host>>>,
    names: Vec<String>,
    package: Package,
    _dir: tempfile::TempDir,
    rollout: Rollout,
    options: Options,
    health: Health,
    env_file: Option<Vec<u8>>,
    preflight: bool,
    hooks: Hooks,
    /// What a Ctrl-C sets, as the rollout sees it.
    cancel: Cancel,
}

fn world(hosts: Vec<(&str, Host)>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app-2.0.0-linux-amd64.tar.gz");
    std::fs::write(&path, vec![7u8; 3000]).unwrap();
    let fakes = Hosts::default();
    let mut host = Vec::new();
    let mut names = Vec::new();
    for (name, fake) in hosts {
        host.push(fakes.add(name, fake));
        names.push(name.to_string());
    }
    World {
        hosts: fakes,
        host,
        names,
        package: crate::package::fixture(
            &path,
            "2.0.0",
            3000,
            5000,
            "[Service]\nExecStart=/opt/app/current/app\n",
        ),
        _dir: dir,
        rollout: Rollout {
            parallel: 4,
            batch: Amount::Percent(100),
            canary: None,
            max_fail: Amount::Count(0),
            rollback_all_on_failure: false,
        },
        options: Options {
            dry_run: false,
            on_failure: OnFailure::RollBack,
            lock_wait: Duration::ZERO,
            confirm_timeout: None,
            armed: ArmedPolicy::Refuse,
        },
        health: Health {
            url: "http://127.0.0.1:8080/health".into(),
            expect_status: 200,
            interval: Duration::from_millis(5),
            timeout: Duration::from_millis(5),
            retries: 2,
            settle: Duration::ZERO,
            check_version: true,
        },
        env_file: None,
        preflight: false,
        hooks: Hooks::default(),
        cancel: Cancel::new(),
    }
}

fn healthy(names: &[&'static str]) -> Vec<(&'static str, Host)> {
    names.iter().map(|n| (*n, Host::healthy())).collect()
}

fn destination(name: &str, index: usize) -> Destination {
    Destination {
        label: name.to_string(),
        hostname: HostName::parse(&format!("10.0.0.{}", index + 1)).unwrap(),
        port: 22,
        user: "root".into(),
        identity_files: Vec::new(),
        known_hosts: Vec::new(),
        hash_known_hosts: false,
        host_key_alias: None,
        proxy: None,
        sandbox: false,
    }
}

impl World {
    fn layout(&self) -> Layout {
        Layout {
            app: "app".into(),
            user: "app".into(),
            release: ReleaseId::of("2.0.0", &self.package.sha256),
            sha256: self.package.sha256.clone(),
        }
    }

    fn deploy(&self) -> Vec<(HostReport, Option<anyhow::Error>)> {
        let layout = self.layout();
        let targets: Vec<Target> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| Target {
                destination: destination(name, i),
                env_file: self.env_file.clone(),
                health: Some(self.health.clone()),
            })
            .collect();
        let connector = Fakes(self.hosts.clone());
        let ui = Ui::new(true);
        let context = Context {
            package: &self.package,
            layout: &layout,
            options: &self.options,
            rollout: &self.rollout,
            keep_releases: 5,
            preflight: self.preflight,
            hooks: &self.hooks,
            connector: &connector,
            cancel: &self.cancel,
            ui: &ui,
        };
        fleet::deploy(&context, &targets)
    }

    fn outcomes(&self) -> Vec<Outcome> {
        self.deploy().iter().map(|(r, _)| r.outcome).collect()
    }

    fn steps(&self, host: usize) -> Vec<Kind> {
        let host = self.host[host].lock().unwrap();
        host.steps()
    }

    fn current(&self, host: usize) -> String {
        self.host[host].lock().unwrap().current.clone()
    }

    fn round_trips(&self, host: usize) -> u32 {
        self.host[host].lock().unwrap().round_trips
    }
}

/// One host, `web1`.
fn lone(host: Host) -> World {
    world(vec![("web1", host)])
}

/// One host whose `step` ends with `exit`, printing `stdout` (the facts its Rust side reads).
fn lone_failing_at(step: Kind, exit: Exit, stdout: &str) -> World {
    lone(Host::healthy().on(step, Reply::exit(exit.code(), "").with_stdout(stdout)))
}

/// The first host's error, with its causes.
fn error_of(result: &[(HostReport, Option<anyhow::Error>)]) -> String {
    format!("{:#}", result[0].1.as_ref().expect("an error"))
}

/// One host whose step of `kind` fails with `exit`, saying `stderr`: the world after the
/// deploy, and the error.
fn failing(kind: Kind, exit: Exit, stderr: &str) -> (World, String, Option<Category>) {
    let w = lone(Host::healthy().on(kind, Reply::exit(exit.code(), stderr)));
    let result = w.deploy();
    let error = error_of(&result);
    (w, error, self::exit(result))
}

fn count(steps: &[Kind], kind: Kind) -> usize {
    steps.iter().filter(|s| **s == kind).count()
}

fn exit(result: Vec<(HostReport, Option<anyhow::Error>)>) -> Option<Category> {
    outcome(result)
        .err()
        .map(|e| category_of(&e).unwrap_or(Category::Remote))
}

// --- One host -----------------------------------------------------------------------------

#[test]
fn a_lone_host_deploys_in_four_round_trips() {
    let w = world(healthy(&["web1"]));
    let result = w.deploy();
    assert_eq!(result[0].0.outcome, Outcome::Deployed, "{:?}", result[0].1);
    assert_eq!(result[0].0.round_trips, 4);
    assert_eq!(w.round_trips(0), 4);
    assert!(w.current(0).starts_with("2.0.0-"));
    assert_eq!(
        w.steps(0),
        [
            Kind::Check,
            Kind::Lock,
            Kind::Survey,
            Kind::Upload,
            Kind::Release,
            Kind::Switch,
            Kind::Finish,
            Kind::Log,
            Kind::Unlock,
        ]
    );
    assert!(outcome(result).is_ok());
}

#[test]
fn the_upload_carries_the_whole_package_and_the_report_says_so() {
    let w = world(healthy(&["web1"]));
    let result = w.deploy();
    let report = &result[0].0;
    assert_eq!(
        (report.upload, report.uploaded, report.resumed_from),
        ("sent", true, 0)
    );
    let host = w.host[0].lock().unwrap();
    let upload = host
        .log
        .iter()
        .find(|(n, _, _)| *n == Kind::Upload)
        .unwrap();
    assert_eq!(upload.2.len(), 3000);
    assert!(upload.1.contains("offset=0\n"), "{}", upload.1);
}

#[test]
fn a_partial_upload_is_continued_where_it_stopped() {
    let survey = "upload=1200\nnow=1000\ndevice=1\ndevice=1\nfree=10000000\nfree=10000000\n";
    let w = lone(Host::healthy().on(Kind::Survey, Reply::ok(survey)));
    let result = w.deploy();
    assert_eq!(
        (result[0].0.upload, result[0].0.resumed_from),
        ("resumed", 1200)
    );
    let host = w.host[0].lock().unwrap();
    let upload = host
        .log
        .iter()
        .find(|(n, _, _)| *n == Kind::Upload)
        .unwrap();
    assert_eq!(upload.2.len(), 1800);
}

#[test]
fn a_corrupt_partial_upload_is_sent_again_whole() {
    let survey = "upload=1200\nnow=1000\ndevice=1\ndevice=1\nfree=10000000\nfree=10000000\n";
    let w = lone(Host::healthy().on(Kind::Survey, Reply::ok(survey)).once(
        Kind::Upload,
        Reply::exit(Exit::Corrupt.code(), "sha256 differs"),
    ));
    let result = w.deploy();
    assert_eq!(result[0].0.outcome, Outcome::Deployed, "{:?}", result[0].1);
    assert_eq!((result[0].0.upload, result[0].0.resumed_from), ("sent", 0));
    assert_eq!(count(&w.steps(0), Kind::Upload), 2);
}

#[test]
fn an_unchanged_release_is_not_uploaded() {
    let survey = "upload=present\nunpacked=yes\nnow=1000\ndevice=1\ndevice=1\nfree=1\nfree=1\n";
    let w = lone(Host::healthy().on(Kind::Survey, Reply::ok(survey)));
    let result = w.deploy();
    assert_eq!(result[0].0.upload, "skipped");
    assert_eq!(count(&w.steps(0), Kind::Upload), 0);
    assert_eq!(result[0].0.round_trips, 4);
}

#[test]
fn a_host_without_systemd_is_left_alone_and_not_locked() {
    let facts = "booted=no\npid1=sshd\nsystemd=\nmachine=x86_64\n";
    let w = lone_failing_at(Kind::Check, Exit::Unsuitable, facts);
    let result = w.deploy();
    let error = error_of(&result);
    assert!(
        error.contains("does not run systemd (PID 1 is sshd)"),
        "{error}"
    );
    assert_eq!(w.steps(0), [Kind::Check]);
    assert_eq!(exit(result), Some(Category::Usage));
}

#[test]
fn a_host_of_another_architecture_is_refused() {
    let facts = "booted=yes\npid1=systemd\nsystemd=systemd 252\nmachine=aarch64\n";
    let w = lone_failing_at(Kind::Check, Exit::Unsuitable, facts);
    let result = w.deploy();
    let error = error_of(&result);
    assert!(error.contains("build with --target linux-arm64"), "{error}");
}

#[test]
fn a_lock_held_elsewhere_fails_with_the_locked_exit_code() {
    let held = "age=5\nowner={\"user\":\"ann\",\"from\":\"laptop\",\"pid\":7,\"version\":\"1.9\",\"since\":\"t\"}\n";
    let w = lone_failing_at(Kind::Lock, Exit::Locked, held);
    let result = w.deploy();
    let error = error_of(&result);
    assert!(
        error.contains("ann@laptop (pid 7) deploying 1.9"),
        "{error}"
    );
    assert_eq!(count(&w.steps(0), Kind::Upload), 0);
    assert_eq!(exit(result), Some(Category::Locked));
}

#[test]
fn a_full_disk_while_uploading_fails_before_the_switch() {
    let said = "no space left in /opt/app while uploading: the partial upload was removed";
    let (w, error, category) = failing(Kind::Upload, Exit::NoSpace, said);
    assert!(
        error.contains(said) && error.contains("help: free space"),
        "{error}"
    );
    assert_eq!(w.current(0), "old-aaaaaaaaaaaa");
    assert_eq!(count(&w.steps(0), Kind::Switch), 0);
    assert_eq!(w.steps(0).last(), Some(&Kind::Unlock));
    assert_eq!(category, Some(Category::Remote));
}

#[test]
fn a_unit_the_host_refuses_fails_with_a_fix() {
    let said = "app.service:6: bad\n(failed while verifying the unit)";
    let (w, error, category) = failing(Kind::Release, Exit::UnitRejected, said);
    assert!(
        error.starts_with("verifying the unit failed on web1 (exit status 78)")
            && error.contains("help: the unit comes from shipit.toml"),
        "{error}"
    );
    assert_eq!(w.current(0), "old-aaaaaaaaaaaa");
    assert_eq!(category, Some(Category::Remote));
}

#[test]
fn no_room_on_the_host_sends_nothing() {
    let survey = "upload=0\nnow=1000\ndevice=1\ndevice=1\nfree=1\nfree=1\n";
    let w = lone(Host::healthy().on(Kind::Survey, Reply::ok(survey)));
    let result = w.deploy();
    let error = error_of(&result);
    assert!(error.contains("nothing was sent"), "{error}");
    assert_eq!(count(&w.steps(0), Kind::Upload), 0);
    assert_eq!(w.steps(0).last(), Some(&Kind::Unlock));
}

#[test]
fn an_unhealthy_release_is_rolled_back_and_marked_failed() {
    let w = lone(Host::healthy().unhealthy("2.0.0"));
    let result = w.deploy();
    assert_eq!(result[0].0.outcome, Outcome::RolledBack);
    assert_eq!(result[0].0.health, "failed");
    assert_eq!(w.current(0), "old-aaaaaaaaaaaa");
    let steps = w.steps(0);
    assert_eq!(count(&steps, Kind::Switch), 2);
    assert_eq!(count(&steps, Kind::Mark), 1);
    assert_eq!(count(&steps, Kind::Finish), 0);
    assert_eq!(exit(result), Some(Category::RolledBack));
}

/// The entry a host's deploy log got in this deploy.
fn logged(w: &World, host: usize) -> Option<crate::hosts::log::Entry> {
    let host = w.host[host].lock().unwrap();
    let (_, script, _) = host.log.iter().find(|(n, _, _)| *n == Kind::Log)?;
    let line = script.lines().find_map(|l| l.strip_prefix("entry="))?;
    let json = line.trim_matches('\'').replace("'\\''", "'");
    Some(serde_json::from_str(&json).unwrap())
}

#[test]
fn every_locked_host_logs_how_its_deploy_ended_with_the_unlock() {
    let mut w = world(vec![
        ("a", Host::healthy()),
        ("b", Host::healthy().unhealthy("2.0.0")),
    ]);
    w.env_file = Some(b"TOKEN=s3cr3t\n".to_vec());
    let result = w.deploy();
    let outcomes: Vec<Outcome> = result.iter().map(|(r, _)| r.outcome).collect();
    assert_eq!(outcomes, [Outcome::Deployed, Outcome::RolledBack]);
    for (host, outcome) in [(0, "deployed"), (1, "rolled-back")] {
        let entry = logged(&w, host).expect("an entry");
        assert_eq!(
            (entry.action.as_str(), entry.outcome.as_str()),
            ("deploy", outcome)
        );
        assert_eq!(entry.version, "2.0.0");
        assert_eq!(entry.release, w.layout().release);
        assert_eq!(entry.previous.as_deref(), Some("old-aaaaaaaaaaaa"));
        assert!(entry.by.contains('@'), "{}", entry.by);
        let steps = w.steps(host);
        let at = |kind: Kind| steps.iter().position(|s| *s == kind).unwrap();
        assert_eq!(at(Kind::Log) + 1, at(Kind::Unlock));
        let host = w.host[host].lock().unwrap();
        assert!(
            host.log
                .iter()
                .all(|(_, script, _)| !script.contains("s3cr3t"))
        );
    }
    // Same number of round trips: the entry rides with the unlock.
    assert_eq!(result[0].0.round_trips, w.round_trips(0));
    // A host never locked is never written to.
    let w = lone(Host::healthy().on(Kind::Check, Reply::exit(Exit::Unsuitable.code(), "")));
    w.deploy();
    assert_eq!(logged(&w, 0), None);
}

#[test]
fn a_failed_switch_is_rolled_back_and_reported_as_the_step_that_failed() {
    let w = lone(Host::healthy().once(Kind::Switch, Reply::exit(1, "restart failed")));
    let result = w.deploy();
    // The step's own failure (a remote command) decides the exit code: the innermost tag wins.
    assert_eq!(result[0].0.outcome, Outcome::Failed);
    assert_eq!(result[0].0.health, "-");
    let error = error_of(&result);
    assert!(
        error.contains("rolled back: old-aaaaaaaaaaaa is running again"),
        "{error}"
    );
    assert_eq!(w.current(0), "old-aaaaaaaaaaaa");
    assert_eq!(exit(result), Some(Category::Remote));
}

#[test]
fn a_rollback_that_fails_too_says_so_with_its_own_exit_code() {
    let w = lone(Host::healthy().unhealthy("2.0.0").unhealthy("old"));
    let result = w.deploy();
    let error = error_of(&result);
    assert!(
        error.contains("rolling back to old-aaaaaaaaaaaa failed too"),
        "{error}"
    );
    assert_eq!(exit(result), Some(Category::RollbackFailed));
}

#[test]
fn a_first_release_that_fails_is_stopped() {
    let survey = "upload=0\nnow=1000\ndevice=1\ndevice=1\nfree=10000000\nfree=10000000\n";
    let w = lone(
        Host::healthy()
            .unhealthy("2.0.0")
            .on(Kind::Survey, Reply::ok(survey)),
    );
    let result = w.deploy();
    let error = error_of(&result);
    assert!(error.contains("no earlier release to return to"), "{error}");
    assert_eq!(count(&w.steps(0), Kind::Stop), 1);
    assert_eq!(exit(result), Some(Category::Remote));
}

#[test]
fn no_rollback_leaves_the_failed_release_in_place() {
    let mut w = lone(Host::healthy().unhealthy("2.0.0"));
    w.options.on_failure = OnFailure::Stay;
    let result = w.deploy();
    let error = error_of(&result);
    assert!(error.contains("--no-rollback"), "{error}");
    assert!(w.current(0).starts_with("2.0.0-"));
    assert_eq!(count(&w.steps(0), Kind::Switch), 1);
    assert_eq!(exit(result), Some(Category::Remote));
}

#[test]
fn secrets_travel_on_stdin_never_in_a_script() {
    let mut w = world(healthy(&["web1"]));
    w.env_file = Some(b"TOKEN=s3cr3t\n".to_vec());
    w.deploy();
    let host = w.host[0].lock().unwrap();
    assert!(
        host.log
            .iter()
            .all(|(_, script, _)| !script.contains("s3cr3t"))
    );
    let release = host
        .log
        .iter()
        .find(|(n, _, _)| *n == Kind::Release)
        .unwrap();
    assert_eq!(release.2, b"TOKEN=s3cr3t\n");
    assert!(release.1.contains("env_from=stdin"));
}

#[test]
fn a_dead_man_timer_is_armed_before_the_switch_and_disarmed_when_rolling_back() {
    let mut w = lone(Host::healthy().unhealthy("2.0.0"));
    w.options.confirm_timeout = Some(Duration::from_secs(60));
    w.deploy();
    let steps = w.steps(0);
    let at = |kind: Kind| steps.iter().position(|s| *s == kind).unwrap();
    assert!(at(Kind::Arm) < at(Kind::Switch));
    assert!(at(Kind::Disarm) > at(Kind::Switch));
}

// --- Pre-flight (`[service] listen`) -------------------------------------------------------------

const PREFLIGHT: Kind = Kind::Preflight;

/// With a socket unit in the package and pre-flight on.
fn with_socket(mut w: World) -> World {
    w.package.socket = Some("[Socket]\nListenStream=8080\n".into());
    w.preflight = true;
    w
}

#[test]
fn the_preflight_runs_before_the_switch_in_the_same_round_trip() {
    let w = with_socket(world(healthy(&["web1"])));
    let result = w.deploy();
    assert_eq!(result[0].0.outcome, Outcome::Deployed, "{:?}", result[0].1);
    assert_eq!(result[0].0.round_trips, 4);
    let steps = w.steps(0);
    let at = |kind: Kind| steps.iter().position(|s| *s == kind).unwrap();
    assert!(at(Kind::Release) < at(PREFLIGHT) && at(PREFLIGHT) < at(Kind::Switch));
    let host = w.host[0].lock().unwrap();
    let (_, script, _) = host.log.iter().find(|(n, _, _)| *n == PREFLIGHT).unwrap();
    // The new release's binary, in its own directory, never `current`.
    assert!(
        script.contains("-- /opt/app/releases/2.0.0-abababababab/app\n"),
        "{script}"
    );
    assert!(script.contains("version=2.0.0\n"), "{script}");
}

#[test]
fn a_release_that_fails_preflight_is_never_switched_to() {
    let w = with_socket(lone(Host::healthy().on(
        PREFLIGHT,
        Reply::exit(Exit::PreflightFailed.code(), "it answered 503 on /health"),
    )));
    let result = w.deploy();
    let error = error_of(&result);
    assert!(error.contains("failed pre-flight on web1"), "{error}");
    assert!(error.contains("it answered 503 on /health"), "{error}");
    let steps = w.steps(0);
    assert_eq!(count(&steps, Kind::Switch), 0, "{steps:?}");
    assert_eq!(count(&steps, Kind::Finish), 0, "{steps:?}");
    assert_eq!(steps.last(), Some(&Kind::Unlock));
    assert!(!w.current(0).starts_with("2.0.0-"));
    assert_eq!(exit(result), Some(Category::Preflight));
}

#[test]
fn a_host_failing_preflight_counts_as_failed_in_a_fleet() {
    let mut w = with_socket(world(vec![
        ("a", Host::healthy()),
        (
            "b",
            Host::healthy().on(
                PREFLIGHT,
                Reply::exit(Exit::PreflightFailed.code(), "crashed"),
            ),
        ),
        ("c", Host::healthy()),
    ]));
    w.rollout.max_fail = Amount::Count(1);
    let result = w.deploy();
    let outcomes: Vec<Outcome> = result.iter().map(|(r, _)| r.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Deployed, Outcome::Failed, Outcome::Deployed]
    );
    assert_eq!(count(&w.steps(1), Kind::Switch), 0);
    assert_eq!(exit(result), Some(Category::Preflight));
}

// --- Ctrl-C at each safe point ---------------------------------------------------------------

/// A rule's effect that asks `cancel` to stop, as a first Ctrl-C does.
fn interrupt(cancel: &Cancel) -> impl Fn() + Send + Sync + 'static {
    let cancel = cancel.clone();
    move || cancel.request()
}

#[test]
fn ctrl_c_during_before_switch_lets_it_finish_and_switches_nothing() {
    let stop = Cancel::new();
    let mut w = world(vec![
        ("a", Host::healthy().when(HOOK, interrupt(&stop))),
        ("b", Host::healthy()),
    ]);
    w.cancel = stop;
    w.hooks.before_switch = hook(&["./app", "migrate"]);
    let result = w.deploy();
    assert_eq!(hook_reports(&result), [("ok", "-"), ("-", "-")]);
    for host in 0..2 {
        assert_eq!(w.current(host), "old-aaaaaaaaaaaa");
        assert_eq!(count(&w.steps(host), Kind::Switch), 0);
        assert_eq!(count(&w.steps(host), Kind::Unlock), 1);
    }
    assert_eq!(exit(result), Some(Category::Interrupted));
}

#[test]
fn ctrl_c_after_the_checks_leaves_a_fleet_unlocked() {
    let stop = Cancel::new();
    let mut w = world(vec![
        ("a", Host::healthy().when(Kind::Check, interrupt(&stop))),
        ("b", Host::healthy()),
    ]);
    w.cancel = stop;
    let result = w.deploy();
    for (report, error) in &result {
        let error = format!("{:#}", error.as_ref().unwrap());
        assert!(
            error.contains("interrupted before locking"),
            "{}: {error}",
            report.host
        );
    }
    for host in 0..2 {
        assert_eq!(w.steps(host), [Kind::Check]);
    }
    assert_eq!(exit(result), Some(Category::Interrupted));
}

#[test]
fn ctrl_c_after_locking_stops_before_the_upload() {
    let stop = Cancel::new();
    let mut w = lone(Host::healthy().when(Kind::Survey, interrupt(&stop)));
    w.cancel = stop;
    let result = w.deploy();
    let error = error_of(&result);
    assert!(
        error.contains("interrupted before switching: web1 still runs the release it had"),
        "{error}"
    );
    assert_eq!(count(&w.steps(0), Kind::Upload), 0);
    assert_eq!(w.steps(0).last(), Some(&Kind::Unlock));
    assert_eq!(exit(result), Some(Category::Interrupted));
}

#[test]
fn ctrl_c_during_the_upload_stops_before_the_switch() {
    let stop = Cancel::new();
    let mut w = lone(Host::healthy().when(Kind::Upload, interrupt(&stop)));
    w.cancel = stop;
    let result = w.deploy();
    let error = error_of(&result);
    assert!(error.contains("interrupted before switching"), "{error}");
    assert_eq!(w.current(0), "old-aaaaaaaaaaaa");
    assert_eq!(count(&w.steps(0), Kind::Switch), 0);
    assert_eq!(w.steps(0).last(), Some(&Kind::Unlock));
    assert_eq!(exit(result), Some(Category::Interrupted));
}

#[test]
fn ctrl_c_during_the_health_gate_rolls_back() {
    let stop = Cancel::new();
    let mut w = lone(Host::healthy().when(Kind::Switch, interrupt(&stop)));
    w.cancel = stop;
    w.health.settle = Duration::from_millis(20);
    let result = w.deploy();
    assert_eq!(result[0].0.outcome, Outcome::RolledBack);
    let error = error_of(&result);
    assert!(error.contains("interrupted while app"), "{error}");
    assert_eq!(w.current(0), "old-aaaaaaaaaaaa");
    assert_eq!(w.steps(0).last(), Some(&Kind::Unlock));
    assert_eq!(exit(result), Some(Category::Interrupted));
}

#[test]
fn ctrl_c_between_batches_skips_the_rest() {
    let stop = Cancel::new();
    let mut w = world(vec![
        ("a", Host::healthy().when(Kind::Switch, interrupt(&stop))),
        ("b", Host::healthy()),
        ("c", Host::healthy()),
    ]);
    w.cancel = stop;
    w.rollout.batch = Amount::Count(1);
    w.health.settle = Duration::ZERO;
    let outcomes = w.outcomes();
    assert_eq!(
        outcomes,
        [Outcome::Deployed, Outcome::Skipped, Outcome::Skipped]
    );
    assert_eq!(w.current(1), "old-aaaaaaaaaaaa");
}

// --- Fleets --------------------------------------------------------------------------------

#[test]
fn a_fleet_checks_hosts_before_locking_them_in_address_order() {
    let w = world(healthy(&["a", "b", "c"]));
    let result = w.deploy();
    assert!(result.iter().all(|(r, _)| r.outcome == Outcome::Deployed));
    for host in 0..3 {
        assert_eq!(w.steps(host)[0], Kind::Check);
        // check; lock + survey; transfer; switch; probe; finish + unlock
        assert_eq!(w.round_trips(host), 6);
    }
}

#[test]
fn batches_switch_a_count_at_a_time() {
    let mut w = world(healthy(&["a", "b", "c", "d", "e"]));
    w.rollout.batch = Amount::Count(2);
    let ctx_batches = fleet::batch_plan(&w.rollout, &w.names);
    assert_eq!(ctx_batches, [vec![0, 1], vec![2, 3], vec![4]]);
    assert!(w.outcomes().iter().all(|o| *o == Outcome::Deployed));
}

#[test]
fn batches_by_percentage_round_up() {
    let mut rollout = world(vec![]).rollout;
    rollout.batch = Amount::Percent(30);
    let names: Vec<String> = (0..7).map(|i| format!("h{i}")).collect();
    assert_eq!(
        fleet::batch_plan(&rollout, &names),
        [vec![0, 1, 2], vec![3, 4, 5], vec![6]]
    );
}

#[test]
fn the_first_host_as_canary_goes_alone() {
    let mut rollout = world(vec![]).rollout;
    rollout.canary = Some(Canary::First);
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    assert_eq!(fleet::batch_plan(&rollout, &names), [vec![0], vec![1, 2]]);
}

#[test]
fn a_named_canary_goes_alone_then_the_batches() {
    let mut rollout = world(vec![]).rollout;
    rollout.canary = Some(Canary::Host("c".into()));
    rollout.batch = Amount::Count(1);
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        fleet::batch_plan(&rollout, &names),
        [vec![2], vec![0], vec![1]]
    );
}

#[test]
fn a_failing_canary_stops_the_rollout() {
    let mut w = world(vec![
        ("a", Host::healthy()),
        ("b", Host::healthy().unhealthy("2.0.0")),
        ("c", Host::healthy()),
    ]);
    w.rollout.canary = Some(Canary::Host("b".into()));
    assert_eq!(
        w.outcomes(),
        [Outcome::Skipped, Outcome::RolledBack, Outcome::Skipped]
    );
    assert_eq!(w.current(0), "old-aaaaaaaaaaaa");
}

#[test]
fn the_rollout_stops_at_the_first_unhealthy_batch() {
    let mut w = world(vec![
        ("a", Host::healthy()),
        ("b", Host::healthy().unhealthy("2.0.0")),
        ("c", Host::healthy()),
    ]);
    w.rollout.batch = Amount::Count(1);
    let result = w.deploy();
    let outcomes: Vec<Outcome> = result.iter().map(|(r, _)| r.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Deployed, Outcome::RolledBack, Outcome::Skipped]
    );
    assert!(w.current(0).starts_with("2.0.0-"));
    assert_eq!(exit(result), Some(Category::RolledBack));
}

#[test]
fn max_fail_as_a_count_lets_the_rollout_go_on() {
    let mut w = world(vec![
        ("a", Host::healthy().unhealthy("2.0.0")),
        ("b", Host::healthy()),
        ("c", Host::healthy()),
    ]);
    w.rollout.batch = Amount::Count(1);
    w.rollout.max_fail = Amount::Count(1);
    assert_eq!(
        w.outcomes(),
        [Outcome::RolledBack, Outcome::Deployed, Outcome::Deployed]
    );
}

#[test]
fn max_fail_as_a_percentage_counts_hosts_rounding_up() {
    let mut w = world(vec![
        ("a", Host::healthy().unhealthy("2.0.0")),
        ("b", Host::healthy().unhealthy("2.0.0")),
        ("c", Host::healthy()),
        ("d", Host::healthy()),
    ]);
    w.rollout.batch = Amount::Count(1);
    // 25% of 4 hosts: one failure is tolerated, the second stops the rollout.
    w.rollout.max_fail = Amount::Percent(25);
    assert_eq!(
        w.outcomes(),
        [
            Outcome::RolledBack,
            Outcome::RolledBack,
            Outcome::Skipped,
            Outcome::Skipped
        ]
    );
}

#[test]
fn rollback_all_switches_the_healthy_hosts_back() {
    let mut w = world(vec![
        ("a", Host::healthy()),
        ("b", Host::healthy().unhealthy("2.0.0")),
        ("c", Host::healthy()),
    ]);
    w.rollout.batch = Amount::Count(1);
    w.rollout.rollback_all_on_failure = true;
    let result = w.deploy();
    let outcomes: Vec<Outcome> = result.iter().map(|(r, _)| r.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::SwitchedBack, Outcome::RolledBack, Outcome::Skipped]
    );
    for host in 0..3 {
        assert_eq!(w.current(host), "old-aaaaaaaaaaaa", "host {host}");
    }
    // A host switched back is not recorded as good.
    assert_eq!(count(&w.steps(0), Kind::Finish), 0);
    assert_eq!(exit(result), Some(Category::RolledBack));
}

#[test]
fn a_host_failing_its_check_stops_a_fleet_before_anything_switches() {
    let facts = "booted=no\npid1=init\nsystemd=\nmachine=x86_64\n";
    let w = world(vec![
        ("a", Host::healthy()),
        (
            "b",
            Host::healthy().on(
                Kind::Check,
                Reply::exit(Exit::Unsuitable.code(), "").with_stdout(facts),
            ),
        ),
    ]);
    assert_eq!(w.outcomes(), [Outcome::Skipped, Outcome::Failed]);
    assert_eq!(w.current(0), "old-aaaaaaaaaaaa");
    // The healthy host was locked and prepared, and let go of.
    assert_eq!(w.steps(0).last(), Some(&Kind::Unlock));
}

#[test]
fn a_host_failing_its_upload_in_a_fleet_keeps_its_release() {
    let mut w = world(vec![
        ("a", Host::healthy()),
        (
            "b",
            Host::healthy().on(
                Kind::Upload,
                Reply::exit(Exit::Short.code(), "the upload stopped"),
            ),
        ),
    ]);
    w.rollout.max_fail = Amount::Count(1);
    assert_eq!(w.outcomes(), [Outcome::Deployed, Outcome::Failed]);
    assert_eq!(w.current(1), "old-aaaaaaaaaaaa");
}

// --- Hooks ---------------------------------------------------------------------------------

fn hook(words: &[&str]) -> Option<Argv> {
    Some(Argv {
        words: words.iter().map(|w| w.to_string()).collect(),
        location: "shipit.toml:2:17".into(),
    })
}

const HOOK: Kind = Kind::Hook;

fn hook_reports(result: &[(HostReport, Option<anyhow::Error>)]) -> Vec<(&str, &str)> {
    result
        .iter()
        .map(|(r, _)| (r.before_switch, r.after_switch))
        .collect()
}

#[test]
fn before_switch_runs_once_per_rollout_on_the_first_host_before_any_switch() {
    let mut w = world(healthy(&["a", "b", "c"]));
    w.hooks.before_switch = hook(&["./app", "migrate"]);
    let result = w.deploy();
    assert!(result.iter().all(|(r, _)| r.outcome == Outcome::Deployed));
    assert_eq!(hook_reports(&result), [("ok", "-"), ("-", "-"), ("-", "-")]);
    assert_eq!(count(&w.steps(1), HOOK) + count(&w.steps(2), HOOK), 0);
    // On a: after its release is ready, before its switch, as the new release would run.
    let steps = w.steps(0);
    let at = |kind: Kind| steps.iter().position(|s| *s == kind).unwrap();
    assert!(
        at(Kind::Release) < at(HOOK) && at(HOOK) < at(Kind::Switch),
        "{steps:?}"
    );
    let host = w.host[0].lock().unwrap();
    let (_, command, _) = host.log.iter().find(|(n, _, _)| *n == HOOK).unwrap();
    let release = format!("/opt/app/releases/{}", w.layout().release);
    for expected in [
        format!("WorkingDirectory={release}"),
        format!("EnvironmentFile=-{release}/.env"),
        "--setenv=SHIPIT_VERSION=2.0.0".into(),
        "--setenv=SHIPIT_PREVIOUS_VERSION=old".into(),
        "shipit-before-switch-app-".into(),
        "./app migrate".into(),
    ] {
        assert!(command.contains(&expected), "{expected} in\n{command}");
    }
}

#[test]
fn before_switch_runs_on_the_canary_or_on_each_host() {
    let mut w = world(healthy(&["a", "b", "c"]));
    w.hooks.before_switch = hook(&["./app", "migrate"]);
    w.rollout.canary = Some(Canary::Host("b".into()));
    assert_eq!(
        hook_reports(&w.deploy()),
        [("-", "-"), ("ok", "-"), ("-", "-")]
    );
    let mut w = world(healthy(&["a", "b", "c"]));
    w.hooks.before_switch = hook(&["./app", "migrate"]);
    w.hooks.before_switch_on = HookHosts::Each;
    assert_eq!(
        hook_reports(&w.deploy()),
        [("ok", "-"), ("ok", "-"), ("ok", "-")]
    );
    for host in 0..3 {
        assert_eq!(count(&w.steps(host), HOOK), 1);
    }
}

#[test]
fn a_failing_before_switch_switches_no_host_and_unlocks_all() {
    let mut w = world(vec![
        (
            "a",
            Host::healthy().on(HOOK, Reply::exit(3, "").with_stdout("relation exists\n")),
        ),
        ("b", Host::healthy()),
    ]);
    w.hooks.before_switch = hook(&["./app", "migrate"]);
    let result = w.deploy();
    let error = error_of(&result);
    assert!(
        error.contains(
            "before_switch hook `./app migrate` (shipit.toml:2:17) failed on a (exit status 3)"
        ) && error.contains("| relation exists"),
        "{error}"
    );
    let outcomes: Vec<Outcome> = result.iter().map(|(r, _)| r.outcome).collect();
    assert_eq!(outcomes, [Outcome::Failed, Outcome::Skipped]);
    for host in 0..2 {
        assert_eq!(w.current(host), "old-aaaaaaaaaaaa");
        let steps = w.steps(host);
        assert_eq!(count(&steps, Kind::Switch), 0, "{steps:?}");
        assert_eq!(count(&steps, Kind::Unlock), 1, "{steps:?}");
    }
    assert_eq!(exit(result), Some(Category::Hook));
}

#[test]
fn before_switch_skips_a_host_that_dropped_out_and_a_rollout_that_will_stop() {
    let broken = || Host::healthy().on(Kind::Upload, Reply::exit(1, "connection reset"));
    let mut w = world(vec![("a", broken()), ("b", Host::healthy())]);
    w.hooks.before_switch = hook(&["./app", "migrate"]);
    w.rollout.max_fail = Amount::Count(1);
    let result = w.deploy();
    assert_eq!(hook_reports(&result), [("-", "-"), ("ok", "-")]);
    assert_eq!(result[1].0.outcome, Outcome::Deployed);
    // With no failure allowed, nothing would switch: the hook does not run at all.
    let mut w = world(vec![("a", broken()), ("b", Host::healthy())]);
    w.hooks.before_switch = hook(&["./app", "migrate"]);
    let result = w.deploy();
    assert_eq!(hook_reports(&result), [("-", "-"), ("-", "-")]);
    assert_eq!(count(&w.steps(1), HOOK), 0);
    assert_eq!(w.current(1), "old-aaaaaaaaaaaa");
}

#[test]
fn a_lone_host_runs_before_switch_between_its_release_and_its_switch() {
    let mut w = lone(Host::healthy());
    w.hooks.before_switch = hook(&["./app", "migrate"]);
    let result = w.deploy();
    assert_eq!(result[0].0.outcome, Outcome::Deployed);
    let steps = w.steps(0);
    let from = steps.iter().position(|s| *s == Kind::Release).unwrap();
    assert_eq!(steps[from + 1..from + 3], [HOOK, Kind::Switch]);
    // The hook costs its own round trip, and the switch one more.
    assert_eq!(w.round_trips(0), 6);
}

#[test]
fn a_failing_after_switch_is_reported_without_a_rollback() {
    let mut w = world(vec![
        ("a", Host::healthy().on(HOOK, Reply::exit(1, ""))),
        ("b", Host::healthy()),
    ]);
    w.hooks.after_switch = hook(&["./app", "warm-cache"]);
    let result = w.deploy();
    assert_eq!(hook_reports(&result), [("-", "failed"), ("-", "ok")]);
    assert!(result.iter().all(|(r, _)| r.outcome == Outcome::Deployed));
    assert!(w.current(0).starts_with("2.0.0-"));
    let steps = w.steps(0);
    let at = |kind: Kind| steps.iter().position(|s| *s == kind).unwrap();
    assert!(
        at(Kind::Switch) < at(HOOK) && at(HOOK) < at(Kind::Finish),
        "{steps:?}"
    );
    assert!(outcome(result).is_ok());
}

// --- The exit code ---------------------------------------------------------------------------

fn report(host: &str, outcome: Outcome, category: Option<Category>) -> HostReport {
    HostReport {
        host: host.into(),
        outcome,
        old_version: None,
        new_version: "2".into(),
        release: "2-x".into(),
        uploaded: false,
        upload: "-",
        resumed_from: 0,
        upload_seconds: 0.0,
        reused_release: false,
        previous: None,
        pruned: Vec::new(),
        seconds: 0.0,
        round_trips: 0,
        health: "-",
        before_switch: "-",
        after_switch: "-",
        error: None,
        category,
        still_locked: false,
    }
}

fn failed(category: Category, message: &str) -> Option<anyhow::Error> {
    Some(crate::error::tagged(category, anyhow::anyhow!("{message}")))
}

#[test]
fn one_host_ends_with_its_own_error() {
    let result = vec![(
        report("a", Outcome::Failed, Some(Category::Locked)),
        failed(Category::Locked, "held"),
    )];
    let error = outcome(result).unwrap_err();
    assert_eq!(category_of(&error), Some(Category::Locked));
    assert_eq!(error.to_string(), "held");
}

#[test]
fn several_hosts_end_with_the_most_severe_category_and_every_reason() {
    let result = vec![
        (report("a", Outcome::Deployed, None), None),
        (
            report("b", Outcome::RolledBack, Some(Category::RolledBack)),
            failed(Category::RolledBack, "rolled back"),
        ),
        (
            report("c", Outcome::Failed, Some(Category::RollbackFailed)),
            failed(Category::RollbackFailed, "both failed"),
        ),
    ];
    let error = outcome(result).unwrap_err();
    assert_eq!(category_of(&error), Some(Category::RollbackFailed));
    let text = format!("{error:#}");
    assert!(text.starts_with("2 of 3 hosts did not deploy"), "{text}");
    assert!(
        text.contains("  b: rolled back") && text.contains("  c: both failed"),
        "{text}"
    );
}

#[test]
fn skipped_and_switched_back_hosts_count_as_not_deployed() {
    let result = vec![
        (report("a", Outcome::SwitchedBack, None), None),
        (report("b", Outcome::Skipped, None), None),
    ];
    let error = outcome(result).unwrap_err();
    assert_eq!(category_of(&error), Some(Category::Remote));
    assert!(format!("{error:#}").contains("a: switched back"));
}

#[test]
fn every_host_deployed_is_success() {
    let result = vec![
        (report("a", Outcome::Deployed, None), None),
        (report("b", Outcome::Deployed, None), None),
    ];
    assert!(outcome(result).is_ok());
}

#[test]
fn exit_statuses_map_to_outcomes_and_back() {
    for code in [0, 1, 2, 65, 66, 69, 72, 74, 75, 76, 77, 78, 127] {
        assert_eq!(Exit::of_status(code).code(), code);
    }
    assert_eq!(Exit::of_status(75), Exit::Locked);
    assert_eq!(Exit::of_status(3), Exit::Failed(3));
    assert!(Exit::shell_vars().contains("locked=75\n"));
}

#[test]
fn amounts_parse_as_counts_or_percentages() {
    assert_eq!("3".parse(), Ok(Amount::Count(3)));
    assert_eq!("25%".parse(), Ok(Amount::Percent(25)));
    for bad in ["101%", "x", "-1", "%"] {
        assert!(bad.parse::<Amount>().is_err(), "{bad}");
    }
    assert_eq!(Amount::Percent(25).of(5), 2);
    assert_eq!(Amount::Count(3).of(100), 3);
}

#[test]
fn the_layout_names_the_release_by_version_and_package() {
    let w = world(vec![]);
    assert_eq!(w.layout().release, "2.0.0-abababababab");
}
