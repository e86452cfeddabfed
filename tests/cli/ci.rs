//! shipit in CI (issue 25, 4): a runner's SIGTERM does what Ctrl-C does, and without a terminal
//! nothing waits for a human — each against real sandbox hosts, run as a runner runs a job.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::faults::edit_config;
use crate::support::app::*;
use crate::support::sandbox::Sandbox;
use crate::support::*;

/// The error a deploy ended with, its release names made alike (`NEW` for the interrupted one).
fn verdict(stderr: &str, version: &str) -> String {
    let release = regex::Regex::new(&format!(r"{}-[0-9a-f]+", regex::escape(version))).unwrap();
    let from = stderr.find("error:").unwrap_or(stderr.len());
    release.replace_all(&stderr[from..], "NEW").into_owned()
}

/// A deploy of `version` interrupted by `signal` during its health gate, sent as a runner sends
/// it when `to_group`: to every process of the job. Its exit code and its error.
fn interrupted_in_gate(
    sandbox: &Sandbox,
    project: &Path,
    host: &str,
    version: &str,
    signal: i32,
    to_group: bool,
) -> (i32, String) {
    let package = build(project, version);
    let mut running = Running::start_as_job(
        sandbox,
        &[
            "-C",
            project.to_str().unwrap(),
            "deploy",
            host,
            "--package",
            package.to_str().unwrap(),
        ],
    );
    running.wait_for_line("Starting");
    assert!(
        wait_for(30, || health_version(sandbox, host) == version),
        "{version} never started"
    );
    let pid = running.child.id() as i32;
    let target = if to_group { -pid } else { pid };
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(target, signal) }, 0);
    let (code, stderr) = running.finish();
    (code, verdict(&stderr, version))
}

/// A CI runner cancels a job with SIGTERM to its whole process group. During the health gate
/// that does exactly what Ctrl-C does: the same exit code and error, the host back on the
/// release it had, its lock released, and the host's deploy log saying so.
fn sigterm_during_the_gate_does_what_ctrl_c_does() {
    let host = "ci-sigterm";
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    edit_config(project.path(), "settle = \"3s\"", "settle = \"20s\"");
    let sandbox = Sandbox::up(&[host]);
    let project_dir = project.path();
    sandbox
        .project(project_dir)
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();

    let ctrl_c = interrupted_in_gate(&sandbox, project_dir, host, "2.0.0", libc::SIGINT, false);
    let cancel = interrupted_in_gate(&sandbox, project_dir, host, "3.0.0", libc::SIGTERM, true);
    assert_eq!(ctrl_c.0, 130, "{}", ctrl_c.1);
    assert!(ctrl_c.1.contains("rolled back"), "{}", ctrl_c.1);
    assert_eq!(cancel, ctrl_c);

    assert_eq!(health_version(&sandbox, host), "1.0.0");
    let shipit = |args: &[&str]| sandbox.project(project_dir).shipit(args).run().success();
    shipit(&["lock", "status", host])
        .stdout
        .contains("hello-go is not locked")
        .then_some(())
        .expect("the lock is still held");
    let history = shipit(&["history", host, "--json"]).stdout;
    let entries: Vec<serde_json::Value> = serde_json::from_str(&history).unwrap();
    let last: Vec<(&str, &str)> = entries
        .iter()
        .rev()
        .take(2)
        .map(|e| {
            (
                e["version"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        last,
        [("3.0.0", "rolled-back"), ("2.0.0", "rolled-back")],
        "{history}"
    );
}

/// `shipit ARGS` as a CI job runs it: in a session of its own (no controlling terminal, so no
/// /dev/tty to prompt on), its stdin a pipe nobody writes to or closes. Ends within `seconds`
/// or the test fails: a hang is what this guards against.
fn without_a_terminal(dir: &Path, args: &[&str], env: &[(&str, &str)], seconds: u64) -> Run {
    let mut command = Command::new("setsid");
    command
        .arg("--wait")
        .arg(env!("CARGO_BIN_EXE_shipit"))
        .args(["-C", dir.to_str().unwrap()])
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let _open_stdin = child.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "shipit {args:?} still waited after {seconds} s:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Without a terminal: an unknown host key is refused, naming the flag that accepts it; a key
/// locked by a passphrase, with no ssh-agent, is refused saying how to use it; a secrets
/// command that reads stdin gets end-of-file instead of a runner's pipe that never closes.
fn without_a_terminal_nothing_waits_for_a_human() {
    let host = "ci-prompts";
    let sandbox = Sandbox::up(&[host]);
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    let package = build(project.path(), "1.0.0");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_locked");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "a passphrase", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let config = private_ssh_config(dir.path(), &key);
    let target = format!("root@{}", sandbox.address(host));
    let deploy = [
        "deploy",
        &target,
        "-F",
        config.to_str().unwrap(),
        "--package",
        package.to_str().unwrap(),
    ];

    without_a_terminal(project.path(), &deploy, &[], 120)
        .failure(4)
        .stderr_has("is not known")
        .stderr_has("--accept-new-host-key");

    std::fs::copy(
        sandbox.state_dir().join("known_hosts"),
        dir.path().join("known_hosts"),
    )
    .unwrap();
    without_a_terminal(project.path(), &deploy, &[], 120)
        .failure(4)
        .stderr_has("protected by a passphrase, which shipit never asks for")
        .stderr_has(&format!(
            "help: add it to ssh-agent (`ssh-add {}`",
            key.display()
        ));

    edit_config(
        project.path(),
        "[service]\n",
        "[service]\nenv_command = [\"sh\", \"-c\", \"cat >/dev/null; echo TOKEN=t\"]\n",
    );
    std::fs::copy(sandbox.state_dir().join("id_ed25519"), &key).unwrap();
    without_a_terminal(project.path(), &deploy, &[], 120)
        .success()
        .stderr_has("Reading");
    assert_eq!(health_version(&sandbox, host), "1.0.0");
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(Hosts, 90, sigterm_during_the_gate_does_what_ctrl_c_does),
        crate::test!(Hosts, 40, without_a_terminal_nothing_waits_for_a_human),
    ]
}
