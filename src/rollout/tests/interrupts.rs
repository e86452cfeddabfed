//! Ctrl-C at each safe point.

use super::*;

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
