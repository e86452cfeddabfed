//! A lone host: each step, and how each can fail.

use super::*;

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
