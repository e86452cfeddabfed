//! `[hooks]` on real hosts: a migration before the switch runs once per rollout (or on each
//! host), as the new release's service, and a failing one switches no host; after_switch and
//! the local hooks.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::app::*;
use crate::support::sandbox::Sandbox;
use crate::support::*;

/// Records what the hook saw in the state directory, then says so.
const MIGRATE: &str = r#"["sh", "-c", "echo \"$SHIPIT_VERSION|$SHIPIT_PREVIOUS_VERSION|$(id -un)|$(pwd)|$MARK\" >> /var/lib/hello-go/migrations && echo migrated $SHIPIT_VERSION"]"#;

const LOCAL: &str = r#"local_before = ["sh", "-c", "env | grep ^SHIPIT_ | sort > local-before.txt"]
local_after = ["sh", "-c", "env | grep ^SHIPIT_ | sort > local-after.txt"]
"#;

struct Fleet {
    sandbox: Sandbox,
    project: tempfile::TempDir,
    ssh_config: String,
    base: String,
}

impl Fleet {
    fn new(hosts: &[&str]) -> Fleet {
        let sandbox = Sandbox::up(hosts);
        let (project, ssh_config) = fleet_project(&sandbox, hosts, "");
        let base = std::fs::read_to_string(project.path().join("shipit.toml"))
            .unwrap()
            .replacen("[service]\n", "[service]\nenv_file = \".env.prod\"\n", 1);
        Fleet {
            sandbox,
            project,
            ssh_config,
            base,
        }
    }

    fn path(&self) -> &Path {
        self.project.path()
    }

    /// Writes shipit.toml with `hooks` as its [hooks] table, and MARK=`mark` in the env file.
    fn configure(&self, hooks: &str, mark: &str) {
        std::fs::write(
            self.path().join("shipit.toml"),
            format!("{}\n[hooks]\n{hooks}", self.base),
        )
        .unwrap();
        std::fs::write(self.path().join(".env.prod"), format!("MARK={mark}\n")).unwrap();
    }

    fn deploy(&self, version: &str, extra: &[&str]) -> (Run, serde_json::Value) {
        let args = [
            &[
                "deploy",
                "web",
                "-F",
                &self.ssh_config,
                "--json",
                "--version-override",
                version,
            ][..],
            extra,
        ]
        .concat();
        let run = self.sandbox.project(self.path()).shipit(&args).run();
        let summary = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
        (run, summary)
    }

    fn migrations(&self, host: &str) -> String {
        self.sandbox
            .ssh(host, "cat /var/lib/hello-go/migrations 2>/dev/null || true")
            .success()
            .stdout
    }

    fn versions(&self, hosts: &[&str]) -> Vec<String> {
        hosts
            .iter()
            .map(|h| health_version(&self.sandbox, h))
            .collect()
    }

    fn local(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }
}

fn hook_column(summary: &serde_json::Value, key: &str) -> Vec<String> {
    summary["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[key].as_str().unwrap().to_string())
        .collect()
}

fn a_migration_runs_once_per_rollout_with_the_new_release_and_a_failing_one_switches_nothing() {
    let hosts = ["hk-1", "hk-2"];
    let fleet = Fleet::new(&hosts);
    let release = |version: &str| {
        let dir = fleet
            .sandbox
            .ssh("hk-1", "readlink -f /opt/hello-go/current")
            .success()
            .stdout;
        assert!(dir.contains(&format!("/{version}-")), "{dir}");
        dir.trim().to_string()
    };
    fleet.configure(
        &format!("before_switch = {MIGRATE}\nafter_switch = [\"sh\", \"-c\", \"echo warm >> /var/lib/hello-go/after\"]\n{LOCAL}"),
        "one",
    );

    // The plan names the hooks and runs none of them.
    let plan = fleet
        .sandbox
        .project(fleet.path())
        .shipit(&[
            "deploy",
            "web",
            "-F",
            &fleet.ssh_config,
            "--dry-run",
            "--version-override",
            "1.0.0",
        ])
        .run()
        .success();
    assert_eq!(
        plan.stdout.matches("# before_switch hook").count(),
        2,
        "{}",
        plan.stdout
    );
    assert_eq!(
        plan.stdout
            .matches("not on this host: once per rollout")
            .count(),
        1,
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("# local_before hook (here"),
        "{}",
        plan.stdout
    );
    assert_eq!(fleet.local("local-before.txt"), "");

    let (run, summary) = fleet.deploy("1.0.0", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(hook_column(&summary, "before_switch"), ["ok", "-"]);
    assert_eq!(hook_column(&summary, "after_switch"), ["ok", "ok"]);
    // Streamed with the host's name, on stderr (stdout is the JSON).
    assert!(
        run.stderr.contains("hk-1 | migrated 1.0.0"),
        "{}",
        run.stderr
    );
    let first = release("1.0.0");
    assert_eq!(
        fleet.migrations("hk-1"),
        format!("1.0.0||hello-go|{first}|one\n")
    );
    assert_eq!(fleet.migrations("hk-2"), "");
    for host in hosts {
        let after = fleet
            .sandbox
            .ssh(host, "cat /var/lib/hello-go/after")
            .success();
        assert_eq!(after.stdout, "warm\n");
    }
    let has_lines = |text: &str, lines: &[&str]| {
        for line in lines {
            assert!(text.lines().any(|l| l == *line), "{line} in\n{text}");
        }
    };
    let before = fleet.local("local-before.txt");
    let variables = [
        "SHIPIT_APP=hello-go",
        "SHIPIT_HOSTS=hk-1 hk-2",
        "SHIPIT_VERSION=1.0.0",
    ];
    has_lines(&before, &variables);
    assert!(before.contains("SHIPIT_DEPLOYER=") && !before.contains("SHIPIT_OUTCOME"));
    let after = fleet.local("local-after.txt");
    has_lines(
        &after,
        &[
            "SHIPIT_OUTCOME=ok",
            "SHIPIT_DEPLOYED=hk-1 hk-2",
            "SHIPIT_FAILED=",
        ],
    );

    // The next release's hook sees the next env file and the version it replaces.
    fleet.configure(&format!("before_switch = {MIGRATE}\n{LOCAL}"), "two");
    let (run, _) = fleet.deploy("2.0.0", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let second = release("2.0.0");
    assert_eq!(
        fleet.migrations("hk-1"),
        format!("1.0.0||hello-go|{first}|one\n2.0.0|1.0.0|hello-go|{second}|two\n")
    );

    // A failing hook: its output in the error, its own exit code, no host switched.
    fleet.configure(
        &format!("before_switch = [\"sh\", \"-c\", \"echo boom; exit 3\"]\n{LOCAL}"),
        "three",
    );
    let (run, summary) = fleet.deploy("3.0.0", &[]);
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(run.stderr.contains("hk-1 | boom"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("before_switch hook `sh -c echo boom; exit 3`")
            && run.stderr.contains("failed on hk-1 (exit status 3)")
            && run.stderr.contains("  | boom"),
        "{}",
        run.stderr
    );
    let outcomes: Vec<&str> = summary["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "skipped"]);
    assert_eq!(fleet.versions(&hosts), ["2.0.0", "2.0.0"]);
    let after = fleet.local("local-after.txt");
    assert!(after.contains("SHIPIT_OUTCOME=failed\n"), "{after}");
    assert!(after.contains("SHIPIT_FAILED=hk-1 hk-2\n"), "{after}");

    // On each host; and a failing after_switch leaves the new release in place.
    fleet.configure(
        &format!(
            "before_switch = {MIGRATE}\nbefore_switch_on = \"each\"\n\
             after_switch = [\"sh\", \"-c\", \"echo cold; exit 4\"]\n"
        ),
        "four",
    );
    let (run, summary) = fleet.deploy("4.0.0", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(hook_column(&summary, "before_switch"), ["ok", "ok"]);
    assert_eq!(hook_column(&summary, "after_switch"), ["failed", "failed"]);
    assert!(
        run.stderr.contains("warning: after_switch hook")
            && run
                .stderr
                .contains("(exit status 4) (the new release stays"),
        "{}",
        run.stderr
    );
    assert_eq!(fleet.versions(&hosts), ["4.0.0", "4.0.0"]);
    assert!(fleet.migrations("hk-1").ends_with("|four\n"));
    let on_2 = fleet.migrations("hk-2");
    assert_eq!(on_2.lines().count(), 1, "{on_2}");
    assert!(
        on_2.starts_with("4.0.0|2.0.0|hello-go|/opt/hello-go/releases/4.0.0-"),
        "{on_2}"
    );

    // A failing local_before stops the deploy before any host is touched.
    fleet.configure("local_before = [\"false\"]\n", "five");
    let (run, _) = fleet.deploy("5.0.0", &[]);
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(
        run.stderr.contains("local_before hook `false`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("nothing was deployed"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("Connected"), "{}", run.stderr);
    assert_eq!(fleet.versions(&hosts), ["4.0.0", "4.0.0"]);
}

/// A host hook that works quietly for longer than a keepalive's 15 s goes on to the switch; one
/// that never returns is stopped on its host once `[hooks] timeout` has passed; and without a
/// timeout, one whose link dies is noticed within a minute, as `exec` notices it. Neither of
/// those switches anything: 1.0.0 keeps serving.
fn host_hooks_outlast_quiet_spells_and_end_at_their_deadline_or_a_dead_link() {
    let host = "t-hookwait";
    let sandbox = Sandbox::up(&[host]);
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    let config = project.path().join("shipit.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    let dir = project.path().to_str().unwrap();
    // The hooks as written, and the package of `version` with them.
    let with_hooks = |hooks: &str, version: &str| {
        std::fs::write(&config, format!("{base}\n[hooks]\n{hooks}")).unwrap();
        build(project.path(), version).to_str().unwrap().to_string()
    };
    // A deploy of `package` once its hook has started, and how long it took from there.
    let hook_running = |package: &str| {
        let mut running =
            Running::start(&sandbox, &["-C", dir, "deploy", host, "--package", package]);
        running.wait_for_line("Running before_switch on t-hookwait");
        (running, Instant::now())
    };

    let package = with_hooks(
        r#"before_switch = ["sh", "-c", "sleep 20; echo rested"]"#,
        "1.0.0",
    );
    sandbox
        .project(project.path())
        .deploy(host, Ship::Package(Path::new(&package)), &[])
        .success()
        .stderr_has("t-hookwait | rested");
    assert_eq!(health_version(&sandbox, host), "1.0.0");

    let package = with_hooks(
        "before_switch = [\"sleep\", \"600\"]\ntimeout = \"3s\"\n",
        "2.0.0",
    );
    let (running, started) = hook_running(&package);
    let (code, stderr) = ended_within(running, Duration::from_secs(60));
    let took = started.elapsed();
    assert_eq!(code, 10, "{stderr}");
    assert!(
        stderr.contains("before_switch hook `sleep 600`")
            && stderr.contains(
                "failed on t-hookwait (it did not finish within 3s, so shipit stopped it)"
            )
            && stderr.contains("no host was switched"),
        "{stderr}"
    );
    assert!(
        took < Duration::from_secs(30),
        "the hook ended {took:?} after it started"
    );
    let hooks_left = || {
        sandbox
            .ssh(
                host,
                "systemctl list-units --all --no-legend 'shipit-before-switch-*'",
            )
            .success()
            .stdout
    };
    assert!(
        wait_for(15, || hooks_left().trim().is_empty()),
        "{}",
        hooks_left()
    );
    assert_eq!(health_version(&sandbox, host), "1.0.0");

    // The host's network cut under the hook: only keepalives going unanswered can tell.
    let package = with_hooks("before_switch = [\"sleep\", \"600\"]\n", "3.0.0");
    let (running, started) = hook_running(&package);
    let veth = sandbox.record(host)["veth"].as_str().unwrap().to_string();
    let link = |state: &str| {
        let status = std::process::Command::new("ip")
            .args(["link", "set", &veth, state])
            .status()
            .unwrap();
        assert!(status.success(), "ip link set {veth} {state}");
    };
    link("down");
    let (code, stderr) = ended_within(running, Duration::from_secs(120));
    let took = started.elapsed();
    link("up");
    println!("a hook on a link that died: noticed {took:?} after it started");
    assert_eq!(code, 10, "{stderr}");
    assert!(
        stderr.contains("failed on t-hookwait (the connection to t-hookwait was lost"),
        "{stderr}"
    );
    assert!(
        took < Duration::from_secs(75),
        "the dead link was noticed after {took:?}"
    );
    assert!(wait_for(30, || health_version(&sandbox, host) == "1.0.0"));
}

/// The exit code and stderr of a shipit that must end within `limit`; killed and failed if not.
fn ended_within(mut running: Running, limit: Duration) -> (i32, String) {
    let deadline = Instant::now() + limit;
    while running.child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = running.child.kill();
            let (_, stderr) = running.finish();
            panic!("shipit was still running after {limit:?}:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    running.finish()
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(
            Hosts,
            25,
            a_migration_runs_once_per_rollout_with_the_new_release_and_a_failing_one_switches_nothing
        ),
        crate::test!(
            Hosts,
            90,
            host_hooks_outlast_quiet_spells_and_end_at_their_deadline_or_a_dead_link
        ),
    ]
}
