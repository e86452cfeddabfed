//! Hooks around the switch.

use super::*;

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
