//! `--events`: deploy, rollback and exec as JSON lines on stdout, read while shipit runs, checked
//! with the real `jq` and against the documented schema; and progress without a terminal as
//! plain lines.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use crate::support::app::*;
use crate::support::sandbox::Sandbox;
use crate::support::*;

/// `jq -c FILTER` over `input`; jq refuses anything that is not JSON.
fn jq(filter: &str, input: &str) -> String {
    let mut child = Command::new("jq")
        .args(["-c", filter])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run jq (scripts/setup --tests installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "jq {filter}: {}\ninput:\n{input}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every line of `stdout` is one JSON object valid against the documented schema; they are
/// returned as jq reprinted them.
pub fn checked_lines(stdout: &str) -> Vec<serde_json::Value> {
    let reprinted = jq(".", stdout);
    assert_eq!(
        reprinted.lines().count(),
        stdout.lines().count(),
        "one JSON object per line:\n{stdout}"
    );
    let path = repo_root().join("docs/src/reference/events.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    reprinted
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&event)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{line}\ndoes not match the schema: {errors:?}"
            );
            event
        })
        .collect()
}

/// The events about `host`, by type, consecutive probes as one.
fn sequence(events: &str, host: &str) -> Vec<String> {
    let mut names: Vec<String> = jq(&format!("select(.host == \"{host}\") | .event"), events)
        .lines()
        .map(|l| l.trim_matches('"').to_string())
        .collect();
    names.dedup();
    names
}

fn last(events: &str) -> String {
    events.lines().last().expect("some events").to_string()
}

/// shipit with its stdout read line by line while it runs.
struct Streaming {
    child: std::process::Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Streaming {
    fn start(sandbox: &Sandbox, args: &[&str]) -> Streaming {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shipit"))
            .args(args)
            .env("SHIPIT_SANDBOX_DIR", sandbox.state_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        Streaming {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until `done` says so (up to 120 s).
    fn read_until(&mut self, done: impl Fn(&[String]) -> bool) {
        while !done(&self.seen) {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|e| panic!("{e}; saw:\n{}", self.seen.join("\n")));
            self.seen.push(line);
        }
    }

    fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status.code().unwrap_or(-1), self.seen.join("\n") + "\n")
    }
}

fn package(project: &Path, version: &str) -> String {
    builds::package(Path::new(env!("CARGO_BIN_EXE_shipit")), project, version)
        .expect("the package builds")
        .display()
        .to_string()
}

/// What naturally differs between two deploys of the same kind: versions, releases, times.
const SAME_KIND: &str = ".version = \"V\" | .release = \"R\" | .hosts |= map(.new_version = \"V\" \
     | .old_version = \"O\" | .release = \"R\" | .previous = \"P\" | .seconds = 0 \
     | .upload_seconds = 0 | .round_trips = 0 | .pruned = [])";

/// A fleet deploy with `--events`, queued behind another deploy's locks: its first lines come
/// while the other still holds the hosts (so before its own upload could even start), each
/// host's events come in the order of the deploy, every line is valid against the schema, and
/// the last carries the report `--json` prints for a deploy of the same kind. Without a
/// terminal, its progress on stderr is plain lines.
fn a_deploy_streams_events_in_order_and_ends_with_its_json_report() {
    let hosts = ["ev-1", "ev-2"];
    let sandbox = Sandbox::up(&hosts);
    let (slow, slow_ssh) = fleet_project(&sandbox, &hosts, "");
    let config = std::fs::read_to_string(slow.path().join("shipit.toml")).unwrap();
    std::fs::write(
        slow.path().join("shipit.toml"),
        config.replace("settle = \"3s\"", "settle = \"10s\""),
    )
    .unwrap();
    let (project, ssh) = fleet_project(&sandbox, &hosts, "");
    let dir = project.path().to_str().unwrap();
    let (first_package, second_package) = (
        package(slow.path(), "1.0.0"),
        package(project.path(), "2.0.0"),
    );

    let mut first = Running::start(
        &sandbox,
        &[
            "-C",
            slow.path().to_str().unwrap(),
            "deploy",
            "web",
            "-F",
            &slow_ssh,
            "--package",
            &first_package,
        ],
    );
    first.wait_for_line("Starting");
    let mut second = Streaming::start(
        &sandbox,
        &[
            "-C",
            dir,
            "deploy",
            "web",
            "-F",
            &ssh,
            "--package",
            &second_package,
            "--events",
            "--lock-wait",
            "2m",
        ],
    );
    second.read_until(|seen| seen.iter().filter(|l| l.contains("\"connected\"")).count() == 2);
    assert!(
        first.child.try_wait().unwrap().is_none(),
        "the connected events came only after the first deploy let go of the hosts:\n{}",
        second.seen.join("\n")
    );
    let (code, stderr) = first.finish();
    assert_eq!(code, 0, "{stderr}");
    let (code, events) = second.finish();
    assert_eq!(code, 0, "{events}");

    let lines = checked_lines(&events);
    assert_eq!(lines[0]["event"], "rollout_started");
    assert_eq!(lines[0]["version"], "2.0.0");
    assert_eq!(lines[0]["hosts"], serde_json::json!(hosts));
    for host in hosts {
        assert_eq!(
            sequence(&events, host),
            [
                "connected",
                "locked",
                "uploaded",
                "switched",
                "probe",
                "healthy",
                "unlocked"
            ],
            "{events}"
        );
    }
    let finished = last(&events);
    assert_eq!(jq(".event", &finished).trim(), "\"rollout_finished\"");
    // The report agrees with the events of the same run…
    for host in hosts {
        let sent = jq(
            &format!("select(.event == \"uploaded\" and .host == \"{host}\") | .seconds"),
            &events,
        );
        let reported = jq(
            &format!(".report.hosts[] | select(.host == \"{host}\") | .upload_seconds"),
            &finished,
        );
        assert_eq!(sent, reported, "{events}");
    }
    // …and is, key for key and in the same order, what --json prints for such a deploy.
    let json = sandbox
        .project(project.path())
        .shipit(&[
            "deploy",
            "web",
            "-F",
            &ssh,
            "--json",
            "--version-override",
            "3.0.0",
        ])
        .run()
        .success();
    assert_eq!(
        jq(&format!(".report | {SAME_KIND}"), &finished),
        jq(SAME_KIND, &json.stdout),
        "{finished}\n{}",
        json.stdout
    );

    // Without a terminal: the upload is a plain line, and nothing is redrawn.
    let plain = sandbox
        .project(project.path())
        .shipit(&["deploy", "web", "-F", &ssh, "--version-override", "4.0.0"])
        .run()
        .success();
    for host in hosts {
        let line = plain
            .stderr
            .lines()
            .find(|l| l.trim_start().starts_with("Uploaded") && l.contains(&format!(" to {host} ")))
            .unwrap_or_else(|| panic!("no upload line for {host}:\n{}", plain.stderr));
        assert!(line.contains("iB to "), "{line}");
    }
    assert!(!plain.stderr.contains(['\r', '\x1b']), "{:?}", plain.stderr);
}

/// A host whose new release fails its gate: its failed probes, the rollback and its failure
/// with its category; then `rollback --events` and `exec --events` on two hosts: valid lines in
/// order, the last one the report `rollback --json` (or `exec --json`) prints; exec's own
/// output goes to stderr.
fn failures_rollback_and_exec_stream_events_too() {
    let hosts = ["ev-r1", "ev-r2"];
    let sandbox = Sandbox::up(&hosts);
    let (project, ssh) = fleet_project(&sandbox, &hosts, "");
    let shipit = |args: &[&str]| sandbox.project(project.path()).shipit(args).run();
    for version in ["1.0.0", "2.0.0"] {
        shipit(&["deploy", "web", "-F", &ssh, "--version-override", version]).success();
    }
    // ev-r2 answers /health with 503 in this project's releases.
    let (bad, _) = fleet_project(
        &sandbox,
        &hosts,
        "\n[hosts.ev-r2.env]\nHELLO_HEALTH_DOWN = \"1\"\n",
    );
    let failed = sandbox
        .project(bad.path())
        .shipit(&[
            "deploy",
            "web",
            "-F",
            &ssh,
            "--version-override",
            "3.0.0",
            "--events",
        ])
        .run()
        .failure(6);
    checked_lines(&failed.stdout);
    assert_eq!(
        sequence(&failed.stdout, "ev-r2"),
        [
            "connected",
            "locked",
            "uploaded",
            "switched",
            "probe",
            "rolled_back",
            "unlocked",
            "failed"
        ],
        "{}",
        failed.stdout
    );
    let not_ok = jq(
        "select(.event == \"probe\" and .host == \"ev-r2\" and .ok == false) | .status",
        &failed.stdout,
    );
    assert!(not_ok.lines().all(|s| s == "503"), "{}", failed.stdout);
    let failure = jq("select(.event == \"failed\")", &failed.stdout);
    let failure: serde_json::Value = serde_json::from_str(&failure).unwrap();
    assert_eq!(failure["category"], "rolled-back");
    assert_eq!(failure["exit_code"], 6);
    assert_eq!(jq(".report.ok", &last(&failed.stdout)).trim(), "false");

    let events = shipit(&["rollback", "ev-r1", "-F", &ssh, "--events"])
        .success()
        .stdout;
    checked_lines(&events);
    assert_eq!(
        sequence(&events, "ev-r1"),
        [
            "rollback_started",
            "connected",
            "locked",
            "switched",
            "probe",
            "healthy",
            "unlocked"
        ],
        "{events}"
    );
    let report = jq(".report", &last(&events));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["ok"], true, "{events}");
    assert_eq!(report["version"], "2.0.0");
    assert_eq!(report["health"], "ok");
    assert_eq!(health(&sandbox, "ev-r1")["version"], "2.0.0");
    let json = shipit(&["rollback", "ev-r1", "-F", &ssh, "--to", "3.0.0", "--json"])
        .success()
        .stdout;
    assert_eq!(
        jq("keys_unsorted", &json),
        jq(".report | keys_unsorted", &last(&events))
    );
    assert_eq!(jq(".version", &json).trim(), "\"3.0.0\"");
    assert_eq!(jq(".from", &json), jq(".report.to", &last(&events)));
    // A rollback that cannot be done still ends with its report, after its failure.
    let refused =
        shipit(&["rollback", "ev-r1", "-F", &ssh, "--to", "9.9.9", "--events"]).failure(2);
    checked_lines(&refused.stdout);
    assert_eq!(
        sequence(&refused.stdout, "ev-r1"),
        [
            "rollback_started",
            "connected",
            "locked",
            "unlocked",
            "failed"
        ],
        "{}",
        refused.stdout
    );
    assert_eq!(jq(".report.ok", &last(&refused.stdout)).trim(), "false");

    let run = shipit(&[
        "exec",
        "web",
        "-F",
        &ssh,
        "--events",
        "--",
        "echo",
        "from-exec",
    ])
    .success();
    let lines = checked_lines(&run.stdout);
    assert_eq!(lines[0]["event"], "exec_started");
    for host in hosts {
        assert_eq!(sequence(&run.stdout, host), ["exited"], "{}", run.stdout);
        assert!(
            run.stderr.contains(&format!("{host} | from-exec")),
            "{}",
            run.stderr
        );
    }
    let finished = last(&run.stdout);
    assert_eq!(jq(".report.ok", &finished).trim(), "true");
    let json = shipit(&[
        "exec",
        "web",
        "-F",
        &ssh,
        "--json",
        "--",
        "echo",
        "from-exec",
    ])
    .success();
    assert_eq!(
        jq(".report | del(.hosts)", &finished),
        jq("del(.hosts)", &json.stdout)
    );
    assert_eq!(
        jq(".report.hosts | sort_by(.host)", &finished),
        jq(".hosts | sort_by(.host)", &json.stdout)
    );
}

/// A build without a terminal: each spinner's step is one plain line once done, never a redraw.
fn a_build_without_a_terminal_prints_plain_lines() {
    let project = project_copy("hello-go");
    let run = Project::at(project.path())
        .shipit(&["build", "--version-override", "1.0.0"])
        .run()
        .success();
    assert!(
        run.stderr.contains("Done building hello-go with go in "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Done packaging in "), "{}", run.stderr);
    assert!(!run.stderr.contains(['\r', '\x1b']), "{:?}", run.stderr);
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(
            Hosts,
            70,
            a_deploy_streams_events_in_order_and_ends_with_its_json_report
        ),
        crate::test!(Hosts, 60, failures_rollback_and_exec_stream_events_too),
        crate::test!(Nothing, 15, a_build_without_a_terminal_prints_plain_lines),
    ]
}
