//! Dead-man timers scoped to what they protect (issue 24): confirmed as soon as each host's gate
//! passes, however long the rollout; never claiming the lock of the live deploy that armed them;
//! disarmed by a manual rollback — each against real sandbox hosts.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::faults::{edit_config, running_1_0_0};
use crate::support::app::*;
use crate::support::proxy::CuttingProxy;
use crate::support::sandbox::Sandbox;
use crate::support::*;

const TIMER: &str = "shipit-deadman-hello-go";

/// The releases `shipit releases HOST --json` lists: (version, current, failed).
fn releases(
    sandbox: &Sandbox,
    project: &Path,
    host: &str,
    extra: &[&str],
) -> Vec<(String, bool, bool)> {
    let args = [&["releases", host, "--json"][..], extra].concat();
    let run = sandbox.project(project).shipit(&args).run().success();
    let list: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    list.iter()
        .map(|r| {
            (
                r["version"].as_str().unwrap().to_string(),
                r["current"] == true,
                r["failed"] == true,
            )
        })
        .collect()
}

/// What the timer's script wrote to its journal: nothing when it never ran.
fn timer_journal(sandbox: &Sandbox, host: &str) -> String {
    sandbox
        .ssh(
            host,
            &format!("journalctl -u {TIMER}.service -o cat --no-pager | grep '^shipit dead-man timer' || true"),
        )
        .success()
        .stdout
}

fn timer_state(sandbox: &Sandbox, host: &str) -> String {
    let run = sandbox.ssh(host, &format!("systemctl is-active {TIMER}.timer"));
    run.stdout.trim().to_string()
}

/// Sleeps until `instant`.
fn sleep_until(instant: Instant) {
    std::thread::sleep(instant.saturating_duration_since(Instant::now()));
}

/// Issue 24, 1: three hosts switched one at a time, each gate 25 s long, so the rollout outlasts
/// `--confirm-timeout 70s`. Each host's timer is confirmed once its own gate has passed: none
/// fires, and 45 s after the rollout every host still serves the new release, none failed.
fn a_batched_rollout_longer_than_its_timeout_keeps_every_host() {
    let hosts = ["dm-batch-1", "dm-batch-2", "dm-batch-3"];
    let sandbox = Sandbox::up(&hosts);
    let (project, ssh_config) = fleet_project(&sandbox, &hosts, "");
    let deploy = |version: &str, extra: &[&str]| {
        let args = [
            &[
                "deploy",
                "web",
                "-F",
                &ssh_config,
                "--version-override",
                version,
            ][..],
            extra,
        ]
        .concat();
        sandbox.project(project.path()).shipit(&args).run()
    };
    deploy("1.0.0", &[]).success();
    edit_config(project.path(), "settle = \"3s\"", "settle = \"25s\"");
    build_shared_packages(project.path(), &["2.0.0"]);

    let started = Instant::now();
    let run = deploy("2.0.0", &["--batch", "1", "--confirm-timeout", "70s"]).success();
    let took = started.elapsed();
    assert!(
        took > Duration::from_secs(70),
        "the rollout took {took:?}: it must outlast the timeout to prove anything\n{}",
        run.stderr
    );
    assert_eq!(run.stderr.matches("Confirmed").count(), 3, "{}", run.stderr);

    std::thread::sleep(Duration::from_secs(45));
    for host in hosts {
        assert_eq!(health(&sandbox, host)["version"], "2.0.0", "{host}");
        let list = releases(&sandbox, project.path(), host, &["-F", &ssh_config]);
        assert!(
            list.contains(&("2.0.0".into(), true, false)) && list.iter().all(|r| !r.2),
            "{host}: {list:?}"
        );
        assert_eq!(timer_journal(&sandbox, host), "", "{host}");
    }
}

/// hello-go whose health gate lasts a few seconds (settle 5 s): long enough to kill a deploy
/// during it, short enough for [`CONFIRM`].
fn gated_app() -> tempfile::TempDir {
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    edit_config(
        project.path(),
        "settle = \"3s\"",
        "settle = \"5s\"\ntimeout = \"500ms\"",
    );
    project
}

/// --confirm-timeout for [`gated_app`], whose gate takes at most 14 s.
const CONFIRM: u64 = 40;

/// `host` runs 1.0.0; a deploy of 2.0.0 arms its timer, switches, and is killed (SIGKILL) during
/// its gate. Returns a moment safely past the timer's deadline.
fn killed_after_arming(sandbox: &Sandbox, project: &Path, host: &str) -> Instant {
    let package = build(project, "2.0.0");
    let mut running = Running::start(
        sandbox,
        &[
            "-C",
            project.to_str().unwrap(),
            "deploy",
            host,
            "--package",
            package.to_str().unwrap(),
            "--confirm-timeout",
            &format!("{CONFIRM}s"),
        ],
    );
    running.wait_for_line("Starting");
    // The timer is armed in the batch that follows "Starting": due no earlier than this.
    let past_due = Instant::now() + Duration::from_secs(CONFIRM + 15);
    assert!(
        wait_for(20, || timer_state(sandbox, host) == "active"
            && health_version(sandbox, host) == "2.0.0"),
        "2.0.0 never started with its timer armed"
    );
    running.signal(libc::SIGKILL);
    running.finish();
    past_due
}

/// Issue 24, 2: a deploy killed during its gate left its timer armed; `shipit rollback` disarms
/// it (saying so), so past its deadline the host still runs what the rollback put there.
fn a_rollback_disarms_the_timer_of_a_killed_deploy() {
    let host = "dm-rollback";
    let project = gated_app();
    let sandbox = running_1_0_0(host, project.path());
    let past_due = killed_after_arming(&sandbox, project.path(), host);

    sandbox
        .project(project.path())
        .shipit(&["rollback", host])
        .run()
        .success()
        .stderr_has("Disarmed")
        .stderr_has("the rollback decides what runs there");
    assert_eq!(timer_state(&sandbox, host), "inactive");
    sleep_until(past_due);
    assert_eq!(health(&sandbox, host)["version"], "1.0.0");
    assert_eq!(timer_journal(&sandbox, host), "");
    let list = releases(&sandbox, project.path(), host, &[]);
    assert!(list.contains(&("1.0.0".into(), true, false)), "{list:?}");
}

/// Issue 24, 2: after a killed deploy, the user rolls back, then `rollback --to` the release the
/// timer was armed for. Past the timer's deadline that release still runs and is not marked
/// failed: no timer switched the host away from what the user chose.
fn a_rollback_to_the_armed_release_stays_past_its_deadline() {
    let host = "dm-rollback-to";
    let project = gated_app();
    let sandbox = running_1_0_0(host, project.path());
    let past_due = killed_after_arming(&sandbox, project.path(), host);

    let shipit = |args: &[&str]| sandbox.project(project.path()).shipit(args).run();
    shipit(&["rollback", host]).success();
    shipit(&["rollback", host, "--to", "2.0.0"]).success();
    assert_eq!(health(&sandbox, host)["version"], "2.0.0");
    assert!(
        Instant::now() + Duration::from_secs(15) < past_due,
        "the rollbacks took too long to come before the timer's deadline"
    );
    sleep_until(past_due);
    assert_eq!(health(&sandbox, host)["version"], "2.0.0");
    assert_eq!(timer_journal(&sandbox, host), "");
    let list = releases(&sandbox, project.path(), host, &[]);
    assert!(
        list.contains(&("2.0.0".into(), true, false)) && list.iter().all(|r| !r.2),
        "{list:?}"
    );
}

/// Issue 24, 1: the timer fires while the deploy that armed it is alive (its confirmation could
/// not connect, and a minute-long after_switch hook keeps it running). The timer's script must not take
/// that deploy's fresh lock: it waits, and heals the host only once the deploy has let go.
fn the_timer_waits_for_the_live_deploy_that_armed_it() {
    let host = "dm-alive";
    let project = gated_app();
    let sandbox = running_1_0_0(host, project.path());
    edit_config(
        project.path(),
        "[service]\n",
        "[hooks]\nafter_switch = [\"/bin/sleep\", \"60\"]\n\n[service]\n",
    );
    let package = build(project.path(), "2.0.0");
    let proxy = CuttingProxy::first_only(format!("{}:22", sandbox.address(host)));
    let dir = tempfile::tempdir().unwrap();
    let (config, target) = through_proxy(&sandbox, host, proxy.port, dir.path());
    let mut running = Running::start(
        &sandbox,
        &[
            "-C",
            project.path().to_str().unwrap(),
            "deploy",
            &target,
            "-F",
            config.to_str().unwrap(),
            "--package",
            package.to_str().unwrap(),
            "--confirm-timeout",
            &format!("{CONFIRM}s"),
        ],
    );
    running.wait_for_line("Healthy");
    let pid = show(&sandbox, host, "hello-go.service", "MainPID");

    // Past the timer's deadline, the deploy still runs its hook: the host is as it left it.
    let waiting = wait_for(CONFIRM + 15, || {
        timer_journal(&sandbox, host).contains("waiting")
    });
    assert!(
        waiting,
        "the timer never fired: {}",
        timer_journal(&sandbox, host)
    );
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "the deploy ended too soon"
    );
    assert_eq!(health(&sandbox, host)["version"], "2.0.0");
    assert_eq!(show(&sandbox, host, "hello-go.service", "MainPID"), pid);
    let owner = sandbox
        .ssh(host, "cat /opt/hello-go/.shipit/lock/owner.json")
        .success()
        .stdout;
    assert!(
        owner.contains("2.0.0-") && !owner.contains("dead-man"),
        "the deploy's lock changed hands: {owner}"
    );

    // Once the deploy lets go, the timer puts the unconfirmed release back.
    let (code, stderr) = running.finish();
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("could not be confirmed"), "{stderr}");
    let healed = wait_for(30, || {
        timer_journal(&sandbox, host).contains("switched back to 1.0.0-")
    });
    assert!(healed, "{}", timer_journal(&sandbox, host));
    assert!(
        wait_for(10, || health_version(&sandbox, host) == "1.0.0"),
        "the host did not go back to 1.0.0"
    );
    let list = releases(&sandbox, project.path(), host, &[]);
    assert!(list.contains(&("2.0.0".into(), false, true)), "{list:?}");
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(
            Hosts,
            142,
            a_batched_rollout_longer_than_its_timeout_keeps_every_host
        ),
        crate::test!(Hosts, 70, a_rollback_disarms_the_timer_of_a_killed_deploy),
        crate::test!(
            Hosts,
            70,
            a_rollback_to_the_armed_release_stays_past_its_deadline
        ),
        crate::test!(Hosts, 82, the_timer_waits_for_the_live_deploy_that_armed_it),
    ]
}
