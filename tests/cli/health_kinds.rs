//! `[health]` by kind on real hosts: a worker with no port gated by its `command`, a TCP-only
//! service gated by `tcp`, and releases that crash under each kind, rolled back as soon as
//! systemd reports them dead rather than after their retries.

use std::time::{Duration, Instant};

use crate::support::app::health;
use crate::support::sandbox::Sandbox;
use crate::support::*;

/// A copy of hello-go run as `exec_args`, with `env` in [service.env] and `health` as its
/// [health] table (plus a short settle), and `deploy` as its [deploy] table.
fn project(exec_args: &str, env: &str, health: &str, deploy: &str) -> tempfile::TempDir {
    let project = project_copy("hello-go");
    let config = format!(
        "[app]\nname = \"hello-go\"\n\n[service]\nexec_args = {exec_args}\nfiles = [\"config.yaml\"]\n\n\
         [service.env]\n{env}\n\n[health]\nsettle = \"1s\"\n{health}\n[deploy]\n{deploy}\n"
    );
    std::fs::write(project.path().join("shipit.toml"), config).unwrap();
    project
}

/// The `--events` lines of `stdout`, each checked with jq and against the documented schema.
fn events(stdout: &str) -> Vec<serde_json::Value> {
    crate::events::checked_lines(stdout)
}

fn probes(events: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    events.iter().filter(|e| e["event"] == "probe").collect()
}

/// `shipit status HOST --json`'s one host.
fn status(sandbox: &Sandbox, project: &tempfile::TempDir, host: &str) -> serde_json::Value {
    let out = sandbox
        .project(project.path())
        .shipit(&["status", host, "--json"])
        .run()
        .success()
        .stdout;
    let all: serde_json::Value = serde_json::from_str(&out).unwrap();
    all[0].clone()
}

const WORKER: &str = "[\"--mode\", \"worker\"]";
const WORKER_CHECK: &str = "command = [\"./hello-go\", \"healthcheck\", \"--mode\", \"worker\"]\nretries = 3\ninterval = \"500ms\"\n";

fn a_worker_is_gated_by_its_command_in_preflight_and_after_the_switch() {
    let host = "t-hk-worker";
    let sandbox = Sandbox::up(&[host]);
    let good = project(WORKER, "", WORKER_CHECK, "");
    let run = sandbox
        .project(good.path())
        .deploy(host, Ship::Version("1.0.0"), &["--events"])
        .success()
        .stderr_has("passed its [health] check in its release before the switch");
    let events = events(&run.stdout);
    let last = *probes(&events).last().expect("a probe event");
    assert_eq!(last["kind"], "command", "{last}");
    assert_eq!(last["answer"], "exit 0", "{last}");
    assert_eq!(last["ok"], true, "{last}");
    let now = status(&sandbox, &good, host);
    assert_eq!(now["version"], "1.0.0", "{now}");
    assert_eq!(
        now["health_check"], "command ./hello-go healthcheck --mode worker",
        "{now}"
    );
    assert_eq!(now["health"], "exit 0 ok", "{now}");

    // Its health command fails: the pre-flight runs it in the new release before the switch.
    let down = project(WORKER, "HELLO_HEALTH_DOWN = \"1\"", WORKER_CHECK, "");
    sandbox
        .project(down.path())
        .deploy(host, Ship::Version("1.1.0"), &[])
        .failure(9)
        .stderr_has("failed pre-flight")
        .stderr_has("its [health] command failed: exit 1");
    assert_eq!(status(&sandbox, &good, host)["version"], "1.0.0");

    // Without the pre-flight, the gate after the switch fails and the old release comes back.
    let down = project(
        WORKER,
        "HELLO_HEALTH_DOWN = \"1\"",
        WORKER_CHECK,
        "preflight = false",
    );
    sandbox
        .project(down.path())
        .deploy(host, Ship::Version("1.2.0"), &[])
        .failure(6)
        .stderr_has("failed 3 probes; last: exit 1");
    let now = status(&sandbox, &good, host);
    assert_eq!(now["version"], "1.0.0", "{now}");
    assert_eq!(now["active_state"], "active", "{now}");
}

const TCP_CHECK: &str = "tcp = \"127.0.0.1:6379\"\nsend = \"PING\\r\\n\"\nexpect = \"PONG\"\n\
                         retries = 4\ninterval = \"1s\"\n";

fn a_tcp_service_is_gated_by_tcp_and_one_that_never_listens_is_rolled_back() {
    let host = "t-hk-tcp";
    let sandbox = Sandbox::up(&[host]);
    let tcp = project(
        "[\"--mode\", \"tcp\", \"--port\", \"6379\"]",
        "",
        TCP_CHECK,
        "",
    );
    let run = sandbox
        .project(tcp.path())
        .deploy(host, Ship::Version("1.0.0"), &["--events"])
        .success();
    let events = events(&run.stdout);
    let last = *probes(&events).last().expect("a probe event");
    assert_eq!(
        (&last["kind"], &last["answer"], &last["ok"]),
        (&"tcp".into(), &"PONG".into(), &true.into()),
        "{last}"
    );
    assert_eq!(status(&sandbox, &tcp, host)["health"], "PONG ok");

    // A worker under the same check never listens: 4 tries a second apart, then it is rolled back.
    let silent = project(WORKER, "", TCP_CHECK, "");
    let started = Instant::now();
    sandbox
        .project(silent.path())
        .deploy(host, Ship::Version("1.1.0"), &[])
        .failure(6)
        .stderr_has("127.0.0.1:6379 failed 4 probes; last: nothing accepts connections");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let now = status(&sandbox, &tcp, host);
    assert_eq!(
        (&now["version"], &now["health"]),
        (&"1.0.0".into(), &"PONG ok".into()),
        "{now}"
    );

    // With a socket unit, the pre-flight asks the same of the new release on a scratch socket.
    let listening = project(
        "[\"--mode\", \"tcp\", \"--port\", \"6379\"]\nlisten = [\"6379\"]",
        "",
        TCP_CHECK,
        "",
    );
    sandbox
        .project(listening.path())
        .deploy(host, Ship::Version("1.2.0"), &[])
        .success()
        .stderr_has("passed its [health] check on a scratch socket");
    assert_eq!(status(&sandbox, &tcp, host)["health"], "PONG ok");
}

/// A pace that would take a minute to fail by its retries.
const PATIENT: &str = "retries = 60\ninterval = \"1s\"\n";

fn a_crashing_release_is_rolled_back_as_soon_as_systemd_reports_it_dead() {
    let host = "t-hk-crash";
    let sandbox = Sandbox::up(&[host]);
    // A slow restart: waiting for the unit to come back up would take the gate past the test's
    // bound, as would the retries.
    let http = "[\"--port\", \"8080\"]\nrestart_sec = 30";
    let url = format!("url = \"http://127.0.0.1:8080/health\"\n{PATIENT}");
    let good = project(http, "", &url, "");
    sandbox
        .project(good.path())
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();
    // Each kind, with a release that dies at once or after 4 s (past the settle, serving
    // nothing meanwhile); each check also passes on the good release the rollback restores.
    let tcp = format!("tcp = \"127.0.0.1:8080\"\n{PATIENT}");
    let command = format!("command = [\"./hello-go\", \"healthcheck\"]\n{PATIENT}");
    for (check, crash) in [(&url, "now"), (&url, "4s"), (&tcp, "4s"), (&command, "4s")] {
        let crashing = project(http, &format!("HELLO_CRASH = \"{crash}\""), check, "");
        let started = Instant::now();
        let run = sandbox
            .project(crashing.path())
            .deploy(host, Ship::Version("1.1.0"), &["--events"])
            .failure(6);
        let took = started.elapsed();
        // The first interval's tries (every 20 ms while nothing answers) are many and cheap:
        // the time tells a gate that waited out its retries.
        let probes = probes(&events(&run.stdout)).len();
        assert!(
            took < Duration::from_secs(30),
            "{check} crashing {crash}: {probes} probes in {took:?}\n{}",
            run.stderr
        );
        assert_eq!(health(&sandbox, host)["version"], "1.0.0", "{check}");
    }

    // A command's pre-flight on a scratch socket: it asks SHIPIT_HEALTH_ADDR, the new release,
    // not the old one on 8080 (whose version would refuse it).
    let listening = project(&format!("{http}\nlisten = [\"8080\"]"), "", &command, "");
    sandbox
        .project(listening.path())
        .deploy(host, Ship::Version("1.2.0"), &[])
        .success()
        .stderr_has("passed its [health] check on a scratch socket");
    assert_eq!(health(&sandbox, host)["version"], "1.2.0");
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(
            Hosts,
            60,
            a_worker_is_gated_by_its_command_in_preflight_and_after_the_switch
        ),
        crate::test!(
            Hosts,
            45,
            a_tcp_service_is_gated_by_tcp_and_one_that_never_listens_is_rolled_back
        ),
        crate::test!(
            Hosts,
            90,
            a_crashing_release_is_rolled_back_as_soon_as_systemd_reports_it_dead
        ),
    ]
}
