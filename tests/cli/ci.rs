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

/// Where a signal goes: to shipit alone, or to its whole process group, as a GitLab runner
/// sends its SIGTERM.
#[derive(Clone, Copy)]
enum To {
    Shipit,
    Group,
}

/// A deploy of `version` interrupted during its health gate by `signals`, half a second apart.
/// Its exit code and its error.
fn interrupted_in_gate(
    sandbox: &Sandbox,
    project: &Path,
    host: &str,
    version: &str,
    signals: &[(i32, To)],
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
    for &(signal, to) in signals {
        let target = match to {
            To::Shipit => pid,
            To::Group => -pid,
        };
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(target, signal) }, 0);
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, stderr) = running.finish();
    (code, verdict(&stderr, version))
}

/// A CI runner cancels a job with SIGTERM to its whole process group (GitLab), or with SIGINT
/// and then SIGTERM (GitHub, 7.5 s apart). During the health gate either does exactly what
/// Ctrl-C does: the same exit code and error, the host back on the release it had, its lock
/// released, and the host's deploy log saying so.
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

    let interrupted = |version: &str, signals: &[(i32, To)]| {
        interrupted_in_gate(&sandbox, project_dir, host, version, signals)
    };
    let ctrl_c = interrupted("2.0.0", &[(libc::SIGINT, To::Shipit)]);
    assert_eq!(ctrl_c.0, 130, "{}", ctrl_c.1);
    assert!(ctrl_c.1.contains("rolled back"), "{}", ctrl_c.1);
    let gitlab = interrupted("3.0.0", &[(libc::SIGTERM, To::Group)]);
    assert_eq!(gitlab, ctrl_c);
    let github = interrupted(
        "4.0.0",
        &[(libc::SIGINT, To::Shipit), (libc::SIGTERM, To::Shipit)],
    );
    assert_eq!(github, ctrl_c);

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
        .take(3)
        .map(|e| {
            (
                e["version"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        last,
        [
            ("4.0.0", "rolled-back"),
            ("3.0.0", "rolled-back"),
            ("2.0.0", "rolled-back")
        ],
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
    let open_stdin = child.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            // setsid made shipit its session's leader: this ends whatever it started too, which
            // would otherwise hold its stderr open.
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            drop(open_stdin);
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

/// One CI job: its name and the shell commands it runs, in order.
type Job = (String, Vec<String>);

fn ci_file(name: &str) -> serde_yaml_ng::Value {
    let path = repo_root().join("examples/ci").join(name);
    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(value: &serde_yaml_ng::Value) -> String {
    value.as_str().expect("a string").to_string()
}

/// The commands a GitHub Actions workflow runs, job by job in file order: each `run:` step,
/// leaving out the steps that only prepare the runner (`uses:`, and those named "setup: …").
fn github_jobs(workflow: &serde_yaml_ng::Value) -> Vec<Job> {
    let jobs = workflow["jobs"].as_mapping().expect("jobs");
    jobs.iter()
        .map(|(name, job)| {
            let steps = job["steps"].as_sequence().expect("steps");
            let commands = steps
                .iter()
                .filter(|step| {
                    let name = step.get("name").and_then(|n| n.as_str()).unwrap_or("");
                    !name.starts_with("setup:")
                })
                .filter_map(|step| step.get("run").map(text))
                .collect();
            (text(name), commands)
        })
        .collect()
}

/// The commands a GitLab CI file runs, job by job in the order of its stages: each `script:`
/// line (`before_script:` only prepares the runner; hidden `.jobs` run nothing of their own).
fn gitlab_jobs(pipeline: &serde_yaml_ng::Value) -> Vec<Job> {
    let stages: Vec<String> = pipeline["stages"]
        .as_sequence()
        .expect("stages")
        .iter()
        .map(text)
        .collect();
    let mut jobs: Vec<(usize, Job)> = pipeline
        .as_mapping()
        .expect("a mapping")
        .iter()
        .filter_map(|(name, job)| {
            let script = job.get("script")?.as_sequence()?;
            let stage = stages.iter().position(|s| *s == text(&job["stage"]))?;
            let lines: Vec<String> = script.iter().map(text).collect();
            Some((stage, (text(name), lines)))
        })
        .collect();
    jobs.sort_by_key(|(stage, _)| *stage);
    jobs.into_iter().map(|(_, job)| job).collect()
}

/// The shipit command lines of some jobs, each on one line.
fn shipit_lines(jobs: &[Job]) -> Vec<String> {
    jobs.iter()
        .flat_map(|(_, commands)| commands)
        .flat_map(|command| {
            command
                .replace("\\\n", " ")
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .map(|line| line.strip_prefix("exec ").unwrap_or(&line).to_string())
        .filter(|line| line.starts_with("shipit "))
        .collect()
}

/// Both CI files build once, then deploy staging, then production with a canary, running the
/// same shipit commands; what prepares the runner is left out of what the recipe test runs.
fn the_ci_files_run_the_same_shipit_commands() {
    let github = github_jobs(&ci_file("github-actions.yml"));
    let gitlab = gitlab_jobs(&ci_file("gitlab-ci.yml"));
    let names = |jobs: &[Job]| jobs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&github), ["build", "staging", "production"]);
    assert_eq!(names(&gitlab), names(&github));
    let expected = [
        "shipit build --out-dir dist",
        "shipit deploy -e staging --package dist/*.tar.gz --lock-wait 10m --events > \
         events-staging.jsonl",
        "shipit deploy -e production --package dist/*.tar.gz --canary 1 --batch 50% --lock-wait \
         10m --events > events-production.jsonl",
    ];
    assert_eq!(shipit_lines(&github), expected);
    assert_eq!(shipit_lines(&gitlab), expected);
    for (name, commands) in github.iter().chain(&gitlab) {
        let all = commands.join("\n");
        assert!(
            !all.contains("cargo install") && !all.contains("apt-get"),
            "{name} installs something the recipe test would run: {all}"
        );
    }
}

/// How a runner runs a job's steps.
#[derive(Clone, Copy, PartialEq)]
enum Runner {
    /// Each step in a bash of its own; what a step appends to `$GITHUB_ENV` is set for the
    /// steps after it.
    GitHub,
    /// The whole script in one bash.
    GitLab,
}

/// Runs the jobs of a CI file with bash in `project`, as `runner` would, in `env`, stopping at
/// the first failing command. The ssh-agent a job starts is stopped when the job ends.
fn run_jobs(runner: Runner, project: &Path, env: &[(&str, String)], jobs: &[Job]) {
    for (name, steps) in jobs {
        let github_env = project.join(format!("github-env-{name}"));
        std::fs::write(&github_env, "").unwrap();
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        env.push(("GITHUB_ENV".into(), github_env.display().to_string()));
        let script = match runner {
            Runner::GitHub => steps.clone(),
            Runner::GitLab => vec![format!(
                "trap 'if [ -n \"${{SSH_AGENT_PID:-}}\" ]; then ssh-agent -k >/dev/null; fi' EXIT\n{}",
                steps.join("\n")
            )],
        };
        let mut failed = None;
        for step in &script {
            let output = Command::new("bash")
                .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", step])
                .current_dir(project)
                .env_remove("SSH_AUTH_SOCK")
                .env_remove("SSH_AGENT_PID")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .output()
                .unwrap();
            if !output.status.success() {
                failed = Some(format!(
                    "job {name} failed ({}) at:\n{step}\nstderr:\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ));
                break;
            }
            let set = std::fs::read_to_string(&github_env).unwrap();
            env.extend(set.lines().filter_map(|line| {
                let (key, value) = line.split_once('=')?;
                Some((key.to_string(), value.to_string()))
            }));
        }
        let agent = env.iter().rev().find(|(k, _)| k == "SSH_AGENT_PID");
        if let Some(pid) = agent.and_then(|(_, pid)| pid.parse::<i32>().ok()) {
            // SAFETY: kill has no memory-safety preconditions; the pid is the job's own agent.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if let Some(failed) = failed {
            panic!("{failed}");
        }
    }
}

/// The environment a CI runner gives the jobs: a HOME of their own, `shipit` on PATH, the
/// secrets as variables (the sandbox's client key and known_hosts), and ssh that knows the
/// example's host names as sandbox hosts. OpenSSH finds ~/.ssh through the passwd entry's
/// home, not $HOME, so an `ssh` first on PATH names a config that points where the runner's
/// HOME would.
fn runner_env(
    sandbox: &Sandbox,
    names: &[(&str, &str)],
    home: &Path,
) -> Vec<(&'static str, String)> {
    let bin = home.join("bin");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_shipit"), bin.join("shipit")).unwrap();
    let config = home.join("ssh_config");
    let hosts: String = names
        .iter()
        .map(|(name, host)| format!("Host {name}\n  HostName {}\n", sandbox.address(host)))
        .collect();
    let known_hosts = format!(
        "Host *\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n",
        home.join(".ssh/known_hosts").display()
    );
    std::fs::write(&config, hosts + &known_hosts).unwrap();
    let ssh = bin.join("ssh");
    std::fs::write(
        &ssh,
        format!(
            "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
            config.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let read = |file: &str| std::fs::read_to_string(sandbox.state_dir().join(file)).unwrap();
    vec![
        ("HOME", home.display().to_string()),
        (
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        ),
        ("SHIPIT_SSH_KEY", read("id_ed25519")),
        ("SHIPIT_KNOWN_HOSTS", read("known_hosts")),
        ("SOURCE_DATE_EPOCH", "1700000000".into()),
    ]
}

/// The project the CI files deploy: hello-go with examples/ci/shipit.toml, committed and
/// tagged `version` (as a checkout would be: the build asks `git describe`).
fn ci_project(version: &str) -> tempfile::TempDir {
    let project = project_copy("hello-go");
    std::fs::copy(
        repo_root().join("examples/ci/shipit.toml"),
        project.path().join("shipit.toml"),
    )
    .unwrap();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(["-c", "user.name=ci", "-c", "user.email=ci@example.com"])
            .args(args)
            .current_dir(project.path())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "the CI example"]);
    git(&["tag", version]);
    project
}

/// The commands of examples/ci/github-actions.yml, then of gitlab-ci.yml, run against sandbox
/// hosts standing in for the example's staging and production hosts: each pipeline builds once
/// and ships its version everywhere, staging first, with events written to files.
fn the_ci_files_deploy_staging_then_production() {
    let hosts = ["ci-stage", "ci-web1", "ci-web2"];
    let sandbox = Sandbox::up(&hosts);
    let names = [
        ("staging1.example.com", hosts[0]),
        ("web1.example.com", hosts[1]),
        ("web2.example.com", hosts[2]),
    ];
    for (file, version) in [("github-actions.yml", "1.0.0"), ("gitlab-ci.yml", "2.0.0")] {
        let project = ci_project(version);
        let home = tempfile::tempdir().unwrap();
        let env = runner_env(&sandbox, &names, home.path());
        let yaml = ci_file(file);
        let (runner, jobs) = if file.starts_with("github") {
            (Runner::GitHub, github_jobs(&yaml))
        } else {
            (Runner::GitLab, gitlab_jobs(&yaml))
        };
        let _turn = crate::support::builds::turn();
        run_jobs(runner, project.path(), &env, &jobs);
        for host in hosts {
            assert_eq!(health_version(&sandbox, host), version, "{file}: {host}");
        }
        for events in ["events-staging.jsonl", "events-production.jsonl"] {
            let lines = std::fs::read_to_string(project.path().join(events)).unwrap();
            let last: serde_json::Value =
                serde_json::from_str(lines.lines().last().expect("an event")).unwrap();
            assert!(
                last.to_string().contains(version),
                "{file}: {events}: {last}"
            );
        }
    }
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(Hosts, 105, sigterm_during_the_gate_does_what_ctrl_c_does),
        crate::test!(Hosts, 40, without_a_terminal_nothing_waits_for_a_human),
        crate::test!(Nothing, 1, the_ci_files_run_the_same_shipit_commands),
        crate::test!(Hosts, 120, the_ci_files_deploy_staging_then_production),
    ]
}
