//! The exit code and the report.

use super::*;

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

/// What `deploy --json` says in `ok`, beside the exit code's verdict.
fn verdicts(result: Vec<(HostReport, Option<anyhow::Error>)>) -> (bool, bool) {
    let ok = result.iter().all(|(r, _)| passed(r));
    (ok, outcome(result).is_ok())
}

#[test]
fn a_failure_tolerated_by_max_fail_still_fails_the_command() {
    let mut w = world(vec![
        ("a", Host::healthy().unhealthy("2.0.0")),
        ("b", Host::healthy()),
    ]);
    w.rollout.batch = Amount::Count(1);
    w.rollout.max_fail = Amount::Count(1);
    let result = w.deploy();
    assert_eq!(result[1].0.outcome, Outcome::Deployed);
    assert_eq!(verdicts(result), (false, false));
}

#[test]
fn a_host_healthy_but_not_confirmed_is_not_a_success() {
    let mut w = lone(Host::healthy().on(Kind::Disarm, Reply::exit(1, "no such timer")));
    w.options.confirm_timeout = Some(Duration::from_secs(60));
    let result = w.deploy();
    assert_eq!(result[0].0.outcome, Outcome::Deployed);
    assert_eq!(verdicts(result), (false, false));
}

#[test]
fn no_rollback_with_a_failed_gate_is_not_a_success() {
    let mut w = lone(Host::healthy().unhealthy("2.0.0"));
    w.options.on_failure = OnFailure::Stay;
    assert_eq!(verdicts(w.deploy()), (false, false));
}

#[test]
fn hosts_skipped_because_the_rollout_stopped_are_not_a_success() {
    let mut w = world(vec![
        ("a", Host::healthy().unhealthy("2.0.0")),
        ("b", Host::healthy()),
    ]);
    w.rollout.batch = Amount::Count(1);
    let result = w.deploy();
    assert_eq!(result[1].0.outcome, Outcome::Skipped);
    assert_eq!(verdicts(result), (false, false));
}

#[test]
fn a_host_that_failed_without_an_error_still_fails_the_command() {
    let result = vec![
        (report("a", Outcome::Deployed, None), None),
        (report("b", Outcome::Failed, None), None),
    ];
    let error = outcome(result).unwrap_err();
    assert!(format!("{error:#}").contains("b: failed"), "{error:#}");
}

#[test]
fn every_host_deployed_and_confirmed_is_ok_in_both() {
    let mut w = world(healthy(&["a", "b"]));
    w.options.confirm_timeout = Some(Duration::from_secs(60));
    assert_eq!(verdicts(w.deploy()), (true, true));
}
