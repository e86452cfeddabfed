//! Fleets: order, batches, canaries, the failure budget.

use super::*;

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
