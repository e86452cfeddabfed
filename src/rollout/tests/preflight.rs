//! The pre-flight (`[service] listen`).

use super::*;

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
