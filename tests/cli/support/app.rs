//! Helpers for tests that deploy hello-go to sandbox hosts.

use std::path::{Path, PathBuf};

use super::sandbox::Sandbox;
use super::*;
use std::io::Read;
use std::process::{Command, Stdio};

pub fn health(sandbox: &Sandbox, host: &str) -> serde_json::Value {
    let run = sandbox
        .ssh(host, "curl -s --max-time 5 http://127.0.0.1:8080/health")
        .success();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// The version /health reports, or "" while nothing answers (a restart, a rollback).
pub fn health_version(sandbox: &Sandbox, host: &str) -> String {
    let run = sandbox.ssh(host, "curl -s --max-time 2 http://127.0.0.1:8080/health");
    serde_json::from_str::<serde_json::Value>(&run.stdout)
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The service's environment as its process has it, a `KEY=value` line each.
pub fn service_environ(sandbox: &Sandbox, host: &str) -> String {
    sandbox
        .ssh(
            host,
            "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value hello-go.service)/environ",
        )
        .success()
        .stdout
}

pub fn show(sandbox: &Sandbox, host: &str, unit: &str, property: &str) -> String {
    sandbox
        .ssh(
            host,
            &format!("systemctl show {unit} -p {property} --value"),
        )
        .success()
        .stdout
        .trim()
        .to_string()
}

pub fn wait_for(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    false
}

/// A copy of hello-go whose shipit.toml gets `extra` lines appended to [service.env] and a quick
/// health pace, so failing releases fail fast.
pub fn variant(env_lines: &str, exec_args: &str) -> tempfile::TempDir {
    let project = project_copy("hello-go");
    let config = format!(
        "[app]\nname = \"hello-go\"\n\n[service]\nexec_args = {exec_args}\nfiles = [\"config.yaml\"]\n\n\
         [service.env]\n{env_lines}\n\n[health]\nurl = \"http://127.0.0.1:8080/health\"\nretries = 4\ninterval = \"500ms\"\nsettle = \"3s\"\n"
    );
    std::fs::write(project.path().join("shipit.toml"), config).unwrap();
    project
}

/// An ssh config (for `-F`) that keeps known_hosts in `dir` instead of ~/.ssh.
/// [`variant`] with `[service] listen = ["8080"]`: socket activation and pre-flight.
pub fn listening_variant(env_lines: &str, exec_args: &str) -> tempfile::TempDir {
    let project = variant(env_lines, exec_args);
    let path = project.path().join("shipit.toml");
    let files = "files = [\"config.yaml\"]\n";
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        config.replace(files, &format!("{files}listen = [\"8080\"]\n")),
    )
    .unwrap();
    project
}

pub fn private_ssh_config(dir: &Path, identity: &Path) -> PathBuf {
    let config = dir.join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host *\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  HashKnownHosts no\n  IdentityFile {}\n",
            dir.join("known_hosts").display(),
            identity.display()
        ),
    )
    .unwrap();
    config
}

/// An ssh config (for `-F`) in `dir` that knows the sandbox's hosts by their addresses: the
/// sandbox's client key and a copy of its known_hosts.
pub fn sandbox_ssh_config(sandbox: &Sandbox, dir: &Path) -> PathBuf {
    let config = private_ssh_config(dir, &sandbox.state_dir().join("id_ed25519"));
    std::fs::copy(
        sandbox.state_dir().join("known_hosts"),
        dir.join("known_hosts"),
    )
    .unwrap();
    config
}

/// `-F CONFIG` and `root@127.0.0.1:PORT` for reaching `host` through a proxy listening on `port`:
/// the config keeps known_hosts in `dir`, where the host's real key is recorded for that address.
pub fn through_proxy(sandbox: &Sandbox, host: &str, port: u16, dir: &Path) -> (PathBuf, String) {
    let config = private_ssh_config(dir, &sandbox.state_dir().join("id_ed25519"));
    let address = sandbox.address(host);
    let known = std::fs::read_to_string(sandbox.state_dir().join("known_hosts")).unwrap();
    let key = known
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{address} ")))
        .unwrap_or_else(|| panic!("no key for {address} in\n{known}"));
    std::fs::write(
        dir.join("known_hosts"),
        format!("[127.0.0.1]:{port} {key}\n"),
    )
    .unwrap();
    (config, format!("root@127.0.0.1:{port}"))
}

/// Adds `mb` MiB of incompressible filler to a project's package, so uploads take a while.
pub fn add_filler(project: &Path, mb: usize) {
    let mut filler = vec![0u8; mb << 20];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut filler)
        .unwrap();
    std::fs::write(project.join("filler.bin"), filler).unwrap();
    let config = std::fs::read_to_string(project.join("shipit.toml")).unwrap();
    let config = config.replace(
        "files = [\"config.yaml\"]",
        "files = [\"config.yaml\", \"filler.bin\"]",
    );
    assert!(config.contains("filler.bin"), "{config}");
    std::fs::write(project.join("shipit.toml"), config).unwrap();
}

/// What a deploy may change on a host, in a form two snapshots can be compared by: every path
/// with type, size, mode and mtime, every file's checksum, and the running process.
pub fn host_state(sandbox: &Sandbox, host: &str) -> String {
    let script = "cd / && find opt/hello-go etc/systemd/system etc/hello-go -printf '%p %y %s %m %T@ %l\\n' 2>/dev/null | sort; \
                  find opt/hello-go etc/hello-go etc/systemd/system/hello-go.service -type f -exec sha256sum {} + 2>/dev/null | sort; \
                  systemctl show hello-go.service -p MainPID -p NRestarts -p ActiveState";
    sandbox.ssh(host, script).success().stdout
}

/// A running shipit whose stderr is read line by line, for tests that act mid-deploy.
pub struct Running {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn start(sandbox: &Sandbox, args: &[&str]) -> Running {
        Running::spawn(sandbox, args, false)
    }

    /// Started in a process group of its own, as a shell starts a job, so that
    /// [`Running::interrupt_job`] reaches it the way Ctrl-C at a terminal does: every process
    /// of the group at once.
    pub fn start_as_job(sandbox: &Sandbox, args: &[&str]) -> Running {
        Running::spawn(sandbox, args, true)
    }

    fn spawn(sandbox: &Sandbox, args: &[&str], own_group: bool) -> Running {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shipit"));
        command
            .args(args)
            .env("SHIPIT_SANDBOX_DIR", sandbox.state_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if own_group {
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in
                std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok)
            {
                let _ = send.send(line);
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (up to 120 s) for a stderr line containing `needle`.
    pub fn wait_for_line(&mut self, needle: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            if let Ok(line) = self
                .lines
                .recv_timeout(std::time::Duration::from_millis(100))
            {
                let hit = line.contains(needle);
                self.seen.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!(
            "no stderr line with {needle:?}; saw:\n{}",
            self.seen.join("\n")
        );
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// SIGINT to the whole process group of a job (see [`Running::start_as_job`]).
    pub fn interrupt_job(&self) {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGINT) },
            0
        );
    }

    /// Exit code (or -signal) and all stderr.
    pub fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(2)) {
            self.seen.push(line);
        }
        let code = status.code().unwrap_or_else(|| {
            -std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        });
        (code, self.seen.join("\n"))
    }
}

/// The releases `shipit sandbox up --release` boots, with the systemd each ships.
pub const RELEASES: [(&str, u32); 3] = [("bullseye", 247), ("bookworm", 252), ("trixie", 257)];

/// The names of shipit's directives a systemd release lacks, sorted.
pub fn directives_newer_than(systemd: u32) -> Vec<&'static str> {
    let mut newer: Vec<&str> = shipit::systemd::DIRECTIVES
        .iter()
        .filter(|d| d.since > systemd)
        .map(|d| d.name)
        .collect();
    newer.sort_unstable();
    newer
}

/// One host per release, all booting at once: a sandbox each, so no `up` waits for another.
pub fn a_host_per_release(prefix: &str) -> Vec<(Sandbox, String, u32)> {
    std::thread::scope(|scope| {
        let booting: Vec<_> = RELEASES
            .iter()
            .map(|&(release, systemd)| {
                scope.spawn(move || {
                    let host = format!("{prefix}-{release}");
                    let sandbox = Sandbox::up_with(&[&host], &["--release", release]);
                    (sandbox, host, systemd)
                })
            })
            .collect();
        booting.into_iter().map(|b| b.join().unwrap()).collect()
    })
}

/// The package of a project at a version, for tests that deploy it: the shared one
/// ([`super::builds::package`]), built once and ahead of builds that tests are about.
pub fn build(project: &Path, version: &str) -> PathBuf {
    let shipit = Path::new(env!("CARGO_BIN_EXE_shipit"));
    super::builds::package(shipit, project, version).unwrap_or_else(|| {
        let out = tempfile::tempdir().unwrap();
        let run = super::shipit(&[
            "-C",
            project.to_str().unwrap(),
            "build",
            "--version-override",
            version,
            "--out-dir",
            out.path().to_str().unwrap(),
        ])
        .run()
        .success();
        panic!(
            "the shared build failed where this one did not:\n{}",
            run.stderr
        )
    })
}

/// A hello-go copy whose shipit.toml names `hosts` (by their sandbox addresses) in the group
/// `web`, with `extra` appended; plus an ssh config for `-F` that knows their keys.
pub fn fleet_project(
    sandbox: &Sandbox,
    hosts: &[&str],
    extra: &str,
) -> (tempfile::TempDir, String) {
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    let mut config = std::fs::read_to_string(project.path().join("shipit.toml")).unwrap();
    for host in hosts {
        config.push_str(&format!(
            "\n[hosts.{host}]\naddress = \"{}\"\nuser = \"root\"\n",
            sandbox.address(host)
        ));
    }
    let members: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    config.push_str(&format!(
        "\n[groups]\nweb = [{}]\n{extra}",
        members.join(", ")
    ));
    std::fs::write(project.path().join("shipit.toml"), config).unwrap();
    let ssh_config = sandbox_ssh_config(sandbox, project.path());
    let ssh_config = ssh_config.to_str().unwrap().to_string();
    (project, ssh_config)
}

/// A login user `name` on `host` with the sandbox's key and passwordless sudo, as on servers
/// where root does not log in; the ssh config (for `-F`) that reaches it. The config's
/// directory lives as long as the sandbox's state directory.
pub fn add_sudo_user(sandbox: &Sandbox, host: &str, name: &str) -> PathBuf {
    let pubkey = std::fs::read_to_string(sandbox.state_dir().join("id_ed25519.pub")).unwrap();
    sandbox
        .ssh(
            host,
            &format!(
                "set -e\nuseradd --create-home --shell /bin/sh {name}\n\
                 install -d -m 700 -o {name} -g {name} /home/{name}/.ssh\n\
                 echo '{}' > /home/{name}/.ssh/authorized_keys\n\
                 chown {name}:{name} /home/{name}/.ssh/authorized_keys\n\
                 echo '{name} ALL=(root) NOPASSWD: ALL' > /etc/sudoers.d/{name}\n\
                 chmod 440 /etc/sudoers.d/{name}\n",
                pubkey.trim()
            ),
        )
        .success();
    let keys = sandbox.state_dir().join(format!("keys-{name}-{host}"));
    std::fs::create_dir_all(&keys).unwrap();
    let ssh_config = private_ssh_config(&keys, &sandbox.state_dir().join("id_ed25519"));
    std::fs::copy(
        sandbox.state_dir().join("known_hosts"),
        keys.join("known_hosts"),
    )
    .unwrap();
    ssh_config
}
