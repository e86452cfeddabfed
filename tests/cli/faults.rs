//! Never half-deployed: cut connections, concurrent deploys, Ctrl-C, dry runs, bad input and a
//! deploying machine that dies — each against a real sandbox host.

use std::path::Path;

use crate::support::app::*;
use crate::support::proxy::CuttingProxy;
use crate::support::sandbox::Sandbox;
use crate::support::*;

/// A copy of hello-go with a quick health pace and `mb` MiB of filler, plus a `[hosts.NAME]`.
fn app(mb: usize) -> tempfile::TempDir {
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    if mb > 0 {
        add_filler(project.path(), mb);
    }
    project
}

fn a_cut_upload_keeps_the_old_release_and_the_rerun_resumes() {
    let host = "t-cut";
    let sandbox = Sandbox::up(&[host]);
    let project = app(24);
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();
    let before = host_state(&sandbox, host);

    // The same host through a proxy that dies halfway through the package.
    let package = sandbox
        .project(project.path())
        .shipit(&["build", "--version-override", "2.0.0", "-q"])
        .run()
        .success()
        .stdout;
    let package = package.trim();
    let size = std::fs::metadata(package).unwrap().len();
    let proxy = CuttingProxy::start(format!("{}:22", sandbox.address(host)), size / 2);
    let dir = tempfile::tempdir().unwrap();
    let config = private_ssh_config(dir.path(), &sandbox.state_dir().join("id_ed25519"));
    let key = std::fs::read_to_string(sandbox.state_dir().join("known_hosts")).unwrap();
    let key = key
        .split_whitespace()
        .skip(1)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(
        dir.path().join("known_hosts"),
        format!("[127.0.0.1]:{} {key}\n", proxy.port),
    )
    .unwrap();
    let target = format!("root@127.0.0.1:{}", proxy.port);
    let args = |json: bool| {
        let mut a = vec![
            "-C",
            project.path().to_str().unwrap(),
            "deploy",
            &target,
            "--package",
            package,
            "-F",
            config.to_str().unwrap(),
        ];
        if json {
            a.push("--json");
        }
        a
    };
    let cut = sandbox.shipit(&args(false)).run();
    assert_ne!(
        cut.code, 0,
        "a deploy over a dead connection cannot succeed:\n{}",
        cut.stderr
    );
    assert!(
        proxy.cut.load(std::sync::atomic::Ordering::SeqCst),
        "the proxy never cut:\n{}",
        cut.stderr
    );

    // Nothing changed for the running release; the partial upload waits on the host.
    assert_eq!(health(&sandbox, host)["version"], "1.0.0");
    let partial = sandbox
        .ssh(host, "stat -c %s /opt/hello-go/.shipit/uploads/*.partial")
        .success()
        .stdout;
    let partial: u64 = partial.trim().parse().unwrap();
    assert!(partial > 0 && partial < size, "partial {partial} of {size}");
    let after = host_state(&sandbox, host);
    let without_uploads = |s: &str| {
        s.lines()
            .filter(|l| !l.contains(".shipit"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_uploads(&before), without_uploads(&after));
    // The cut deploy let go of its lock.
    sandbox
        .ssh(host, "test ! -e /opt/hello-go/.shipit/lock")
        .success();

    let rerun = sandbox.shipit(&args(true)).run().success();
    let report: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&rerun.stdout).unwrap()["hosts"][0].clone();
    assert_eq!(report["uploaded"], true);
    assert_eq!(
        report["resumed_from"].as_u64().unwrap(),
        partial,
        "{}",
        rerun.stderr
    );
    assert_eq!(health(&sandbox, host)["version"], "2.0.0");
}

fn concurrent_deploys_wait_for_the_lock_or_are_refused() {
    let host = "t-lock";
    let sandbox = Sandbox::up(&[host]);
    let project = app(0);
    let dir = project.path().to_str().unwrap();
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();
    // The first deploy settles for 10 s, so the others surely meet its lock.
    let slow = app(0);
    let config = std::fs::read_to_string(slow.path().join("shipit.toml")).unwrap();
    std::fs::write(
        slow.path().join("shipit.toml"),
        config.replace("settle = \"3s\"", "settle = \"10s\""),
    )
    .unwrap();
    let package = sandbox
        .project(project.path())
        .shipit(&["build", "-q", "--version-override", "3.0.0"])
        .run()
        .success()
        .stdout;
    let package = package.trim();

    let slow_dir = slow.path().to_str().unwrap();
    let mut first = Running::start(
        &sandbox,
        &[
            "-C",
            slow_dir,
            "deploy",
            host,
            "--version-override",
            "2.0.0",
        ],
    );
    first.wait_for_line("Starting");
    // While the first holds the lock: refused at once, naming the holder…
    sandbox
        .project(project.path())
        .shipit(&["deploy", host, "--package", package])
        .run()
        .failure(8)
        .stderr_has("holds the lock")
        .stderr_has("deploying 2.0.0-");
    // …or queued behind it.
    let second = sandbox.shipit(&queued(dir, host, package, "2m")).run();
    let (code, stderr) = first.finish();
    deploys_ran_one_after_another(&sandbox, host, &["1.0.0", "2.0.0", "3.0.0"]);
    assert_eq!(code, 0, "{stderr}");
    let second = second.success();
    assert!(second.stderr.contains("Waiting"), "{}", second.stderr);
    assert_eq!(health(&sandbox, host)["version"], "3.0.0");
}

/// Each deploy of `versions` (in order) ran alone: its release started (the service's journal)
/// only after the deploy before it had ended (its entry in the host's deploy log, written just
/// before it lets go of the lock), and before its own deploy ended.
fn deploys_ran_one_after_another(sandbox: &Sandbox, host: &str, versions: &[&str]) {
    let log = sandbox
        .ssh(host, "cat /opt/hello-go/.shipit/log")
        .success()
        .stdout;
    let ended: Vec<(String, f64)> = log
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            let time = humantime::parse_rfc3339(entry["time"].as_str().unwrap()).unwrap();
            let since = time.duration_since(std::time::UNIX_EPOCH).unwrap();
            (
                entry["version"].as_str().unwrap().into(),
                since.as_secs_f64(),
            )
        })
        .collect();
    let journal = sandbox
        .ssh(
            host,
            "journalctl -u hello-go.service -o short-unix --no-pager | grep 'listening on'",
        )
        .success()
        .stdout;
    let started: Vec<(String, f64)> = journal
        .lines()
        .map(|line| {
            let time = line.split_whitespace().next().unwrap().parse().unwrap();
            let (_, message) = line.split_once(": ").unwrap();
            (message.split_whitespace().nth(1).unwrap().into(), time)
        })
        .collect();
    let names = |list: &[(String, f64)]| list.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ended), versions, "{log}");
    assert_eq!(names(&started), versions, "{journal}");
    for (i, (version, start)) in started.iter().enumerate() {
        // The log's times are whole seconds, cut: a deploy ended within the second after.
        assert!(
            *start < ended[i].1 + 1.0,
            "{version} started after its deploy ended\n{log}\n{journal}"
        );
        if i > 0 {
            assert!(
                *start > ended[i - 1].1,
                "{version} started while the deploy of {} was still running\n{log}\n{journal}",
                ended[i - 1].0
            );
        }
    }
}

/// `deploy` arguments for `package`, waiting up to `wait` for the lock.
fn queued<'a>(dir: &'a str, host: &'a str, package: &'a str, wait: &'a str) -> [&'a str; 8] {
    [
        "-C",
        dir,
        "deploy",
        host,
        "--package",
        package,
        "--lock-wait",
        wait,
    ]
}

fn ctrl_c_releases_the_lock_and_keeps_the_old_release() {
    let host = "t-sigint";
    let sandbox = Sandbox::up(&[host]);
    let project = app(0);
    let dir = project.path().to_str().unwrap();
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();

    // Interrupted during the health gate, after the switch: back to 1.0.0.
    let mut running = Running::start(
        &sandbox,
        &["-C", dir, "deploy", host, "--version-override", "2.0.0"],
    );
    running.wait_for_line("Starting");
    std::thread::sleep(std::time::Duration::from_millis(500));
    running.signal(libc::SIGINT);
    let (code, stderr) = running.finish();
    assert_eq!(code, 130, "{stderr}");
    assert!(
        stderr.contains("interrupted") && stderr.contains("rolled back"),
        "{stderr}"
    );
    assert_eq!(health(&sandbox, host)["version"], "1.0.0");
    sandbox
        .ssh(host, "test ! -e /opt/hello-go/.shipit/lock")
        .success();
    let releases = sandbox
        .project(project.path())
        .shipit(&["releases", host, "--json"])
        .run()
        .success()
        .stdout;
    let releases: serde_json::Value = serde_json::from_str(&releases).unwrap();
    let failed: Vec<&str> = releases
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["failed"] == true)
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["2.0.0"]);

    // Interrupted before the switch: nothing the service uses was touched.
    let before = host_state(&sandbox, host);
    let mut running = Running::start(
        &sandbox,
        &["-C", dir, "deploy", host, "--version-override", "3.0.0"],
    );
    running.wait_for_line("Connected");
    running.signal(libc::SIGTERM);
    let (code, stderr) = running.finish();
    assert_eq!(code, 130, "{stderr}");
    assert!(stderr.contains("still runs the release it had"), "{stderr}");
    sandbox
        .ssh(host, "test ! -e /opt/hello-go/.shipit/lock")
        .success();
    let unchanged = |s: &str| {
        s.lines()
            .filter(|l| {
                !l.contains(".shipit")
                    && !l.contains("releases/2.0.0")
                    && !l.contains("releases/3.0.0")
            })
            .filter(|l| !l.starts_with("opt/hello-go/releases "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(unchanged(&before), unchanged(&host_state(&sandbox, host)));
    assert_eq!(health(&sandbox, host)["version"], "1.0.0");
}

fn dry_run_prints_the_plan_and_changes_nothing() {
    let host = "t-dry";
    let sandbox = Sandbox::up(&[host]);
    let project = app(0);
    std::fs::write(project.path().join(".env.prod"), "API_TOKEN=s3cr3t-value\n").unwrap();
    let config = std::fs::read_to_string(project.path().join("shipit.toml")).unwrap();
    let with_env = config.replace("[service]\n", "[service]\nenv_file = \".env.prod\"\n");
    std::fs::write(project.path().join("shipit.toml"), &with_env).unwrap();
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();
    let env = sandbox
        .ssh(
            host,
            "stat -c '%U %a' /etc/hello-go/hello-go.env && cat /etc/hello-go/hello-go.env",
        )
        .success()
        .stdout;
    assert_eq!(env, "root 600\nAPI_TOKEN=s3cr3t-value\n");

    std::fs::write(
        project.path().join("shipit.toml"),
        with_env.replace("[service]\n", "[service]\nlimit_nofile = 4096\n"),
    )
    .unwrap();
    std::fs::write(project.path().join(".env.prod"), "API_TOKEN=n3w-s3cr3t\n").unwrap();
    let before = host_state(&sandbox, host);
    let run = sandbox
        .project(project.path())
        .deploy(host, Ship::Version("2.0.0"), &["--dry-run"])
        .success();
    assert_eq!(
        before,
        host_state(&sandbox, host),
        "a dry run changed the host"
    );
    let plan = run.stdout;
    for expected in [
        "nothing below has run",
        "-LimitNOFILE=65536",
        "+LimitNOFILE=4096",
        "# uploading the package",
        "# switching and restarting the service",
        "values hidden",
        "binary sha256: ",
    ] {
        assert!(plan.contains(expected), "plan lacks {expected:?}:\n{plan}");
    }
    for secret in ["s3cr3t", "n3w-s3cr3t"] {
        assert!(
            !plan.contains(secret) && !run.stderr.contains(secret),
            "a secret leaked:\n{plan}"
        );
    }
}

fn releases_marks_failures_and_rollback_never_picks_one() {
    let host = "t-rollback";
    let sandbox = Sandbox::up(&[host]);
    let good = app(0);
    let unhealthy = variant("HELLO_HEALTH_DOWN = \"1\"", "[\"--port\", \"8080\"]");
    for version in ["1.0.0", "1.1.0"] {
        sandbox
            .project(good.path())
            .deploy(host, Ship::Version(version), &[])
            .success();
    }
    sandbox
        .project(unhealthy.path())
        .deploy(host, Ship::Version("1.2.0"), &[])
        .failure(6);
    let list = sandbox
        .project(good.path())
        .shipit(&["releases", host])
        .run()
        .success()
        .stdout;
    let marks: Vec<(String, String)> = list
        .lines()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (
                words.first().copied().unwrap_or("").to_string(),
                words.last().copied().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        marks,
        [
            ("failed".into(), "1.2.0".into()),
            ("current".into(), "1.1.0".into()),
            ("previous".into(), "1.0.0".into())
        ],
        "{list}"
    );
    sandbox
        .project(good.path())
        .shipit(&["rollback", host])
        .run()
        .success();
    assert_eq!(health(&sandbox, host)["version"], "1.0.0");
    sandbox
        .project(good.path())
        .shipit(&["rollback", host, "--to", "1.2.0"])
        .run()
        .failure(2)
        .stderr_has("no good release");
    sandbox
        .project(good.path())
        .shipit(&["rollback", host, "--to", "1.1.0"])
        .run()
        .success();
    assert_eq!(health(&sandbox, host)["version"], "1.1.0");
    // --no-rollback leaves a failing release where it is.
    sandbox
        .project(unhealthy.path())
        .deploy(host, Ship::Version("1.3.0"), &["--no-rollback"])
        .failure(5)
        .stderr_has("--no-rollback");
    assert_eq!(health(&sandbox, host)["status"], "DOWN");
}

fn the_host_heals_itself_when_shipit_dies_mid_deploy() {
    let host = "t-deadman";
    let sandbox = Sandbox::up(&[host]);
    let project = app(0);
    let dir = project.path().to_str().unwrap();
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();

    // Confirmed: the timer is gone afterwards.
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("1.1.0"), &["--confirm-timeout", "40s"])
        .success()
        .stderr_has("Confirmed");
    let timer = sandbox
        .ssh(host, "systemctl is-active shipit-deadman-hello-go.timer")
        .stdout;
    assert_eq!(timer.trim(), "inactive");

    // shipit is killed right after the restart: the host goes back to 1.1.0 by itself.
    let mut running = Running::start(
        &sandbox,
        &[
            "-C",
            dir,
            "deploy",
            host,
            "--version-override",
            "2.0.0",
            "--confirm-timeout",
            "30s",
        ],
    );
    running.wait_for_line("Starting");
    std::thread::sleep(std::time::Duration::from_secs(2));
    running.signal(libc::SIGKILL);
    running.finish();
    assert!(
        wait_for(5, || health_version(&sandbox, host) == "2.0.0"),
        "2.0.0 never started"
    );
    // Due 30 s after arming; its script then waits until the dead deploy's lock has not been
    // refreshed for the lease (45 s), which the refreshes before the kill may push back.
    assert!(
        wait_for(120, || health_version(&sandbox, host) == "1.1.0"),
        "the host did not roll back by itself"
    );
    let failed = sandbox
        .ssh(host, "ls /opt/hello-go/releases/2.0.0-*/.shipit-failed")
        .success();
    assert!(!failed.stdout.is_empty());
}

/// A fresh sandbox host `host` running `project` 1.0.0.
pub fn running_1_0_0(host: &str, project: &Path) -> Sandbox {
    let sandbox = Sandbox::up(&[host]);
    sandbox
        .project(project)
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();
    sandbox
}

/// --confirm-timeout for the tests below: their health gate takes at most 10 s.
const CONFIRM: &str = "25s";

/// hello-go with a health gate short enough for [`CONFIRM`].
fn quick_app() -> tempfile::TempDir {
    let project = app(0);
    edit_config(
        project.path(),
        "settle = \"3s\"",
        "settle = \"1s\"\ntimeout = \"500ms\"",
    );
    project
}

/// Packages of `project` built before a test arms a dead-man timer: its later deploys must start
/// within the timer's window, not wait for a build.
fn built_before_arming(project: &Path) {
    build_shared_packages(project, &["1.0.0", "2.0.0", "3.0.0"]);
}

pub fn edit_config(project: &Path, from: &str, to: &str) {
    let path = project.join("shipit.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    assert!(config.contains(from), "{from:?} not in\n{config}");
    std::fs::write(path, config.replacen(from, to, 1)).unwrap();
}

/// Deploys `version` through a proxy that refuses every connection after the first: the release
/// passes its health gate, but the confirmation cannot connect, so its dead-man timer stays armed.
fn deploy_unconfirmed(sandbox: &Sandbox, project: &Path, host: &str, version: &str) {
    let proxy = CuttingProxy::first_only(format!("{}:22", sandbox.address(host)));
    let dir = tempfile::tempdir().unwrap();
    let (config, target) = through_proxy(sandbox, host, proxy.port, dir.path());
    sandbox
        .shipit(&[
            "-C",
            project.to_str().unwrap(),
            "deploy",
            &target,
            "-F",
            config.to_str().unwrap(),
            "--version-override",
            version,
            "--confirm-timeout",
            CONFIRM,
        ])
        .run()
        .failure(4)
        .stderr_has("could not be confirmed");
    assert_eq!(health(sandbox, host)["version"], version);
}

/// Fires the dead-man timer now rather than waiting for it: the same unit runs the same script.
fn fire_dead_man(sandbox: &Sandbox, host: &str) {
    sandbox
        .ssh(host, "systemctl start shipit-deadman-hello-go.service")
        .success();
}

/// What the dead-man timer's script said it did, once it has said it (up to `seconds`).
fn dead_man_verdict(sandbox: &Sandbox, host: &str, seconds: u64) -> String {
    let mut verdict = String::new();
    wait_for(seconds, || {
        verdict = sandbox
            .ssh(
                host,
                "journalctl -u shipit-deadman-hello-go.service -o cat --no-pager | grep '^shipit dead-man timer' | tail -n 1",
            )
            .stdout;
        !verdict.is_empty()
    });
    assert!(!verdict.is_empty(), "the dead-man timer said nothing");
    verdict
}

/// Takes the app's lock on `host` as a deploy from another machine does: `from` and `pid` as
/// given, the lock just refreshed.
fn hold_lock(sandbox: &Sandbox, host: &str, token: &str, from: &str, pid: u32) {
    let owner = serde_json::json!({
        "user": "ops", "from": from, "pid": pid, "version": "9.9.9-0123456789ab",
        "since": "2026-01-01T00:00:00Z", "token": token,
        "machine": "0".repeat(32), "process": "boot/pid:[4026531836]/1",
    });
    sandbox
        .ssh(
            host,
            &format!(
                "mkdir -p /opt/hello-go/.shipit/lock && printf '%s\\n' '{owner}' > /opt/hello-go/.shipit/lock/owner.json"
            ),
        )
        .success();
}

fn lock_owner(sandbox: &Sandbox, host: &str) -> String {
    sandbox
        .ssh(host, "cat /opt/hello-go/.shipit/lock/owner.json")
        .stdout
}

/// Issue 13, 1a: deploy A's confirmation failed; B was deploying when A's timer fired, and the
/// timer deleted B's lock and restarted the service under B's health gate. Now B is refused
/// while A's timer is armed, and a timer that fires while another deploy holds the lock does
/// nothing but say so.
fn dead_man_timer_never_touches_a_host_another_deploy_holds() {
    let host = "t-dm-lock";
    let project = quick_app();
    built_before_arming(project.path());
    let sandbox = running_1_0_0(host, project.path());
    deploy_unconfirmed(&sandbox, project.path(), host, "2.0.0");

    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("3.0.0"), &[])
        .failure(8)
        .stderr_has("dead-man timer is armed")
        .stderr_has("switches back to 1.0.0-")
        .stderr_has("--force-disarm");
    assert_eq!(health(&sandbox, host)["version"], "2.0.0");
    sandbox
        .project(project.path())
        .shipit(&["lock", "status", host])
        .run()
        .success();

    hold_lock(&sandbox, host, "b0b0b0b0", "deployer-b", 4242);
    let pid = show(&sandbox, host, "hello-go.service", "MainPID");
    let verdict = dead_man_verdict(&sandbox, host, 60);
    assert!(
        verdict.contains("another deploy holds the lock") && verdict.contains("deployer-b"),
        "{verdict}"
    );
    assert_eq!(health(&sandbox, host)["version"], "2.0.0");
    assert_eq!(show(&sandbox, host, "hello-go.service", "MainPID"), pid);
    assert!(lock_owner(&sandbox, host).contains("b0b0b0b0"));
    sandbox
        .ssh(host, "! ls /opt/hello-go/releases/2.0.0-*/.shipit-failed")
        .success();

    // Once that deploy lets go, B deploys.
    let released = sandbox
        .project(project.path())
        .shipit(&["lock", "release", host])
        .run()
        .success()
        .stdout;
    assert!(released.contains("deployer-b"), "{released}");
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("3.0.0"), &[])
        .success();
    assert_eq!(health(&sandbox, host)["version"], "3.0.0");
}

/// Issue 13, 1b: A's first release was never confirmed; B deployed and exited 0, then A's timer
/// stopped and disabled the service. Now B is refused, or disarms A's timer on purpose, and a
/// rollback disarms the timer of the release it leaves.
fn dead_man_timer_without_an_earlier_release_never_stops_a_later_deploy() {
    let host = "t-dm-first";
    let sandbox = Sandbox::up(&[host]);
    let project = quick_app();
    built_before_arming(project.path());
    let armed = std::time::Instant::now();
    deploy_unconfirmed(&sandbox, project.path(), host, "1.0.0");

    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("2.0.0"), &[])
        .failure(8)
        .stderr_has("stops the service");
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("2.0.0"), &["--force-disarm"])
        .success()
        .stderr_has("Disarmed");
    // Well past the moment A's timer was due: 2.0.0 still runs, enabled.
    let due = armed + std::time::Duration::from_secs(25 + 5);
    std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
    assert_eq!(
        show(&sandbox, host, "hello-go.service", "ActiveState"),
        "active"
    );
    assert_eq!(
        show(&sandbox, host, "hello-go.service", "UnitFileState"),
        "enabled"
    );
    assert_eq!(health(&sandbox, host)["version"], "2.0.0");

    // A timer armed for 3.0.0, then a rollback, which disarms it: the host keeps what the
    // rollback chose.
    deploy_unconfirmed(&sandbox, project.path(), host, "3.0.0");
    sandbox
        .project(project.path())
        .shipit(&["rollback", host])
        .run()
        .success()
        .stderr_has("Disarmed");
    let timer = sandbox
        .ssh(host, "systemctl is-active shipit-deadman-hello-go.timer")
        .stdout;
    assert_eq!(timer.trim(), "inactive");
    assert_eq!(health(&sandbox, host)["version"], "2.0.0");
    sandbox
        .ssh(host, "test ! -e /opt/hello-go/.shipit/lock")
        .success();
}

/// Issue 13, 1c: with keep_releases = 2, B pruned the release A's timer returned to; the timer
/// pointed `current` at the deleted directory and deleted the env file. Now B is refused, and a
/// timer whose release to return to is gone leaves the host as it is.
fn dead_man_timer_never_returns_to_a_pruned_release() {
    let host = "t-dm-prune";
    let project = quick_app();
    std::fs::write(project.path().join(".env.prod"), "API_TOKEN=s3cr3t\n").unwrap();
    edit_config(
        project.path(),
        "[service]\n",
        "[deploy]\nkeep_releases = 2\n\n[service]\nenv_file = \".env.prod\"\n",
    );
    built_before_arming(project.path());
    let sandbox = running_1_0_0(host, project.path());
    deploy_unconfirmed(&sandbox, project.path(), host, "2.0.0");

    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("3.0.0"), &[])
        .failure(8)
        .stderr_has("dead-man timer is armed");
    // What B's prune did: keep_releases = 2 kept only B's release and 2.0.0.
    sandbox
        .ssh(host, "rm -rf /opt/hello-go/releases/1.0.0-*")
        .success();
    let pid = show(&sandbox, host, "hello-go.service", "MainPID");
    fire_dead_man(&sandbox, host);
    let verdict = dead_man_verdict(&sandbox, host, 30);
    assert!(
        verdict.contains("1.0.0-") && verdict.contains("is gone"),
        "{verdict}"
    );
    let current = sandbox
        .ssh(host, "readlink /opt/hello-go/current")
        .success()
        .stdout;
    assert!(current.starts_with("releases/2.0.0-"), "{current}");
    let env = sandbox
        .ssh(host, "cat /etc/hello-go/hello-go.env")
        .success()
        .stdout;
    assert_eq!(env, "API_TOKEN=s3cr3t\n");
    assert_eq!(show(&sandbox, host, "hello-go.service", "MainPID"), pid);
    assert_eq!(health(&sandbox, host)["version"], "2.0.0");

    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("3.0.0"), &[])
        .success();
    assert_eq!(health(&sandbox, host)["version"], "3.0.0");
}

/// A lock whose owner has this machine's host name but another machine id is another machine's,
/// however its PID looks here; it is taken over only once it has not been refreshed for 10 min.
fn a_lock_of_another_machine_with_our_host_name_is_not_taken_over() {
    let host = "t-lock-twin";
    let project = app(0);
    let sandbox = running_1_0_0(host, project.path());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    // A PID that no process here has: that of a child already reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    hold_lock(&sandbox, host, "7e1a", hostname.trim(), gone);

    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("2.0.0"), &[])
        .failure(8)
        .stderr_has("holds the lock")
        .stderr_has("machine 00000000");
    assert_eq!(health(&sandbox, host)["version"], "1.0.0");
    assert!(lock_owner(&sandbox, host).contains("7e1a"));

    sandbox
        .ssh(host, "touch -d '11 minutes ago' /opt/hello-go/.shipit/lock")
        .success();
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("2.0.0"), &[])
        .success()
        .stderr_has("Unlocking");
    assert_eq!(health(&sandbox, host)["version"], "2.0.0");
}

/// Three deploys find the same stale lock at once: one takes it over, the others wait for it
/// in turn, and every deploy runs alone.
fn waiters_for_one_stale_lock_take_it_one_after_the_other() {
    let host = "t-lock-race";
    let project = app(0);
    let dir = project.path().to_str().unwrap();
    let sandbox = running_1_0_0(host, project.path());
    let package = sandbox
        .project(project.path())
        .shipit(&["build", "-q", "--version-override", "2.0.0"])
        .run()
        .success()
        .stdout;
    let package = package.trim();
    hold_lock(&sandbox, host, "5a1e", "gone-machine", 4242);
    // Many files make deleting the old lock slow, which widens any race between the waiters.
    sandbox
        .ssh(
            host,
            "cd /opt/hello-go/.shipit/lock && mkdir junk && cd junk && seq 1 5000 | xargs touch && touch -d '2 hours ago' /opt/hello-go/.shipit/lock",
        )
        .success();

    let args = queued(dir, host, package, "3m");
    let waiters: Vec<Running> = (0..3).map(|_| Running::start(&sandbox, &args)).collect();
    let results: Vec<(i32, String)> = waiters.into_iter().map(Running::finish).collect();
    for (code, stderr) in &results {
        assert_eq!(*code, 0, "{stderr}");
    }
    let took_over = results
        .iter()
        .filter(|(_, stderr)| stderr.contains("Unlocking"))
        .count();
    let waited = results
        .iter()
        .filter(|(_, stderr)| stderr.contains("Waiting"))
        .count();
    let all = results
        .iter()
        .map(|(_, e)| e.as_str())
        .collect::<Vec<_>>()
        .join("\n----\n");
    assert_eq!((took_over, waited), (1, 2), "{all}");
    sandbox
        .ssh(host, "test ! -e /opt/hello-go/.shipit/lock")
        .success();
    assert_eq!(health(&sandbox, host)["version"], "2.0.0");
}

/// A bad-input case: (shipit.toml edit, extra args, exit code, message).
type Case<'a> = ((&'a str, &'a str), Vec<&'a str>, i32, &'a str);

/// Every kind of bad input is refused with its reason, and the host is exactly as it was.
fn bad_input_is_refused_and_the_host_is_untouched() {
    let host = "t-bad";
    let project = app(0);
    let sandbox = running_1_0_0(host, project.path());
    let before = host_state(&sandbox, host);
    let good_config = std::fs::read_to_string(project.path().join("shipit.toml")).unwrap();
    let dir = project.path().to_str().unwrap().to_string();
    let address = sandbox.address(host);
    let wrong_key_dir = tempfile::tempdir().unwrap();
    let wrong_key = wrong_key_dir.path().join("id_ed25519");
    assert!(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&wrong_key)
            .status()
            .unwrap()
            .success()
    );
    let wrong_key_config = private_ssh_config(wrong_key_dir.path(), &wrong_key);
    std::fs::copy(
        sandbox.state_dir().join("known_hosts"),
        wrong_key_dir.path().join("known_hosts"),
    )
    .unwrap();
    let not_a_package = project.path().join("config.yaml");
    let other_app = sandbox
        .shipit(&[
            "-C",
            example("hello-rust").to_str().unwrap(),
            "build",
            "--version-override",
            "1",
            "--out-dir",
            wrong_key_dir.path().to_str().unwrap(),
        ])
        .run()
        .success()
        .stdout;

    // (shipit.toml edit: replace `from` with `to`, or append `to` when `from` is empty;
    //  extra args; exit code; message)
    let root_at = format!("root@{address}:2222");
    let wrong_key_target = format!("root@{address}");
    let name = "name = \"hello-go\"";
    let service = "[service]\n";
    let cases: Vec<Case> = vec![
        (
            (name, "name = \"a;rm -rf /\""),
            vec![],
            2,
            "invalid app name",
        ),
        ((name, "name = \"../x\""), vec![], 2, "invalid app name"),
        (
            ("files = [\"config.yaml\"]", "files = [\"../secret\"]"),
            vec![],
            2,
            "must not contain '..'",
        ),
        (
            ("files = [\"config.yaml\"]", "files = [\"/etc/passwd\"]"),
            vec![],
            2,
            "relative path",
        ),
        (
            ("[service.env]\n", "[service.env]\n\"A B\" = \"x\"\n"),
            vec![],
            2,
            "invalid environment variable name",
        ),
        (
            (
                "exec_args = [\"--port\", \"8080\"]",
                "exec_args = [\"a\\nb\"]",
            ),
            vec![],
            2,
            "newline",
        ),
        (
            (service, "[service]\nuser = \"Root User\"\n"),
            vec![],
            2,
            "invalid user name",
        ),
        (
            (service, "[service]\nrestart = \"sometimes\"\n"),
            vec![],
            2,
            "restart must be one of",
        ),
        (
            (
                "url = \"http://127.0.0.1:8080/health\"",
                "url = \"http://$(id)/\"",
            ),
            vec![],
            2,
            "is not a URL",
        ),
        (
            (service, "[service]\nenv_file = \"missing.env\"\n"),
            vec![],
            2,
            "cannot read the env file",
        ),
        (
            (service, "[service]\nenv_file = \"config.yaml\"\n"),
            vec![],
            2,
            "expected KEY=VALUE",
        ),
        (
            ("", "[deploy]\nkeep_releases = 1\n"),
            vec![],
            2,
            "keep_releases must be between",
        ),
        (
            ("", "[hosts.web]\naddress = \"x;reboot\"\n"),
            vec![],
            2,
            "invalid host",
        ),
        (
            ("", ""),
            vec!["--package", "/nonexistent.tar.gz"],
            2,
            "cannot read /nonexistent.tar.gz",
        ),
        (
            ("", ""),
            vec!["--package", not_a_package.to_str().unwrap()],
            2,
            "is not a shipit package",
        ),
        (
            ("", ""),
            vec!["--package", other_app.trim()],
            2,
            "is a package of \"hello-rust\"",
        ),
        (
            ("", ""),
            vec!["--", "-oProxyCommand=touch /tmp/pwned"],
            2,
            "invalid host",
        ),
        (
            ("", ""),
            vec!["--", "root@host;rm -rf /"],
            2,
            "invalid host",
        ),
        (("", ""), vec!["--", "h:99999"], 2, "invalid port"),
        (
            ("", ""),
            vec!["--lock-wait", "soon"],
            2,
            "is not a duration",
        ),
        (("", ""), vec!["--confirm-timeout", "1s"], 2, "too short"),
        (
            ("", ""),
            vec!["--target", "windows-amd64"],
            2,
            "valid targets are",
        ),
        (
            ("", ""),
            vec!["--version-override", "1.0;rm"],
            2,
            "invalid version",
        ),
        (
            ("", ""),
            vec!["-i", "/nonexistent/key"],
            2,
            "identity file /nonexistent/key does not exist",
        ),
        (
            ("", ""),
            vec!["-F", "/dev/null", "--", "127.0.0.1:1"],
            4,
            "cannot reach 127.0.0.1:1",
        ),
        (
            ("", ""),
            vec!["-F", "/dev/null", "--", root_at.as_str()],
            4,
            "cannot reach",
        ),
        (
            ("", ""),
            vec![
                "-F",
                wrong_key_config.to_str().unwrap(),
                "--",
                wrong_key_target.as_str(),
            ],
            4,
            "refused authentication as root",
        ),
    ];
    assert!(cases.len() >= 20);
    for ((from, to), extra, code, message) in &cases {
        let text = if from.is_empty() {
            format!("{good_config}\n{to}")
        } else {
            assert!(good_config.contains(from), "{from:?} not in\n{good_config}");
            good_config.replacen(from, to, 1)
        };
        std::fs::write(project.path().join("shipit.toml"), &text).unwrap();
        let mut args = vec!["-C", dir.as_str(), "deploy"];
        if !extra.contains(&"--package") && !extra.contains(&"--version-override") {
            args.extend(["--version-override", "9.9.9"]);
        }
        args.extend(extra.iter().copied());
        if !extra.contains(&"--") {
            args.push(host);
        }
        // Each case has a config of its own, most refused before any build: the deploy builds
        // itself, as a user's would, rather than each case waiting for a shared package.
        let run = sandbox.shipit(&args).building().run();
        assert_eq!(run.code, *code, "{to:?} {extra:?}:\n{}", run.stderr);
        assert!(
            run.stderr.contains(message),
            "{to:?} {extra:?}: expected {message:?} in\n{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("greeting"),
            "the env file's content leaked:\n{}",
            run.stderr
        );
    }
    std::fs::write(project.path().join("shipit.toml"), good_config).unwrap();
    assert_eq!(
        before,
        host_state(&sandbox, host),
        "bad input changed the host"
    );
    assert!(!Path::new("/tmp/pwned").exists());
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(
            Hosts,
            126,
            a_cut_upload_keeps_the_old_release_and_the_rerun_resumes
        ),
        crate::test!(
            Hosts,
            30,
            concurrent_deploys_wait_for_the_lock_or_are_refused
        ),
        crate::test!(
            Hosts,
            18,
            ctrl_c_releases_the_lock_and_keeps_the_old_release
        ),
        crate::test!(Hosts, 31, dry_run_prints_the_plan_and_changes_nothing),
        crate::test!(
            Hosts,
            28,
            releases_marks_failures_and_rollback_never_picks_one
        ),
        crate::test!(Hosts, 85, the_host_heals_itself_when_shipit_dies_mid_deploy),
        crate::test!(
            Hosts,
            32,
            dead_man_timer_never_touches_a_host_another_deploy_holds
        ),
        crate::test!(
            Hosts,
            25,
            dead_man_timer_without_an_earlier_release_never_stops_a_later_deploy
        ),
        crate::test!(Hosts, 51, dead_man_timer_never_returns_to_a_pruned_release),
        crate::test!(
            Hosts,
            54,
            a_lock_of_another_machine_with_our_host_name_is_not_taken_over
        ),
        crate::test!(
            Hosts,
            16,
            waiters_for_one_stale_lock_take_it_one_after_the_other
        ),
        crate::test!(Hosts, 84, bad_input_is_refused_and_the_host_is_untouched),
    ]
}
