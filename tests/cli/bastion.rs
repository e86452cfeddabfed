//! Hosts behind a bastion, reached with ProxyJump and ProxyCommand as OpenSSH reaches them: on
//! sandbox hosts that only another sandbox host can reach (`shipit sandbox up --behind`). And
//! what a connection leaves behind: helpers here when shipit dies, the host shell's nonce there.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::app::*;
use crate::support::sandbox::Sandbox;
use crate::support::*;

/// A live or dead process of this machine, as /proc shows it.
struct Process {
    pid: u32,
    ppid: u32,
    cmdline: String,
    environ: Vec<u8>,
}

fn processes() -> Vec<Process> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        // /proc/PID/stat: "pid (comm) state ppid ..."
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        found.push(Process {
            pid,
            ppid,
            cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " "),
            environ: std::fs::read(entry.path().join("environ")).unwrap_or_default(),
        });
    }
    found
}

/// Live processes whose command line contains `needle`: (pid, parent pid, command line).
fn processes_with(needle: &str) -> Vec<(u32, u32, String)> {
    processes()
        .into_iter()
        .filter(|p| p.cmdline.contains(needle))
        .map(|p| (p.pid, p.ppid, p.cmdline))
        .collect()
}

/// Live processes (not zombies) whose environment holds `marker`, `NAME=value`: (pid, command
/// line).
fn processes_marked(marker: &str) -> Vec<(u32, String)> {
    processes()
        .into_iter()
        .filter(|p| p.environ.split(|&b| b == 0).any(|v| v == marker.as_bytes()))
        .filter(|p| !is_zombie(p.pid))
        .map(|p| (p.pid, p.cmdline))
        .collect()
}

/// Whether `pid` has ended and waits only to be reaped (or is gone).
fn is_zombie(pid: u32) -> bool {
    // /proc/PID/stat: "pid (comm) state ..."
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// shipit's ProxyJump helpers for hops named in `config` (OpenSSH's own hops lack BatchMode).
fn helpers_of(config: &Path) -> Vec<(u32, u32, String)> {
    processes_with(&format!("ssh -o BatchMode=yes -F {} -W", config.display()))
}

/// The host key the sandbox recorded for `name`: `type base64`.
fn host_key(sandbox: &Sandbox, name: &str) -> String {
    let address = sandbox.address(name);
    let known = std::fs::read_to_string(sandbox.state_dir().join("known_hosts")).unwrap();
    known
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{address} ")))
        .unwrap_or_else(|| panic!("no key for {name} in {known}"))
        .to_string()
}

/// Deploy, deploy again with the dead-man timer confirmed, status, logs and rollback: each over
/// a fresh connection to `host` through its proxy. `inner` is its sandbox name.
fn lifecycle_through(sandbox: &Sandbox, host: &str, inner: &str, connect: &[&str], via: &str) {
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    let dir = project.path().to_str().unwrap();
    let shipit = |args: &[&str]| {
        let all = [&["-C", dir], args, connect].concat();
        sandbox.shipit(&all).run()
    };
    shipit(&["deploy", host, "--version-override", "1.0.0"])
        .success()
        .stderr_has(via);
    assert_eq!(health(sandbox, inner)["version"], "1.0.0");
    shipit(&[
        "deploy",
        host,
        "--version-override",
        "1.1.0",
        "--confirm-timeout",
        "60s",
    ])
    .success()
    .stderr_has("Confirmed");
    let timer = sandbox.ssh(
        inner,
        "systemctl is-active shipit-deadman-hello-go.timer || true",
    );
    assert_eq!(timer.stdout.trim(), "inactive", "the confirm disarmed it");

    let status = shipit(&["status", host, "--json"]).success().stdout;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status[0]["version"], "1.1.0", "{status}");
    assert!(
        status[0]["health"].as_str().unwrap().starts_with("200"),
        "{status}"
    );
    let logs = shipit(&["logs", host, "-n", "30"]).success().stdout;
    assert!(logs.contains("1.1.0"), "{logs}");
    let rolled = shipit(&["rollback", host]).success().stdout;
    assert!(rolled.contains("to 1.0.0-"), "{rolled}");
    assert_eq!(health(sandbox, inner)["version"], "1.0.0");
}

fn a_host_only_a_bastion_reaches_is_deployed_through_proxy_jump() {
    let sandbox = Sandbox::up(&["bj-bastion"]);
    sandbox.up_behind("bj-bastion", &["bj-inner"]);

    // This machine has no way to it (an unreachable route: nothing leaves by the default one);
    // OpenSSH gets there through the sandbox's ssh_config, which says `ProxyJump bj-bastion`.
    let direct: SocketAddr = format!("{}:22", sandbox.address("bj-inner"))
        .parse()
        .unwrap();
    assert!(TcpStream::connect_timeout(&direct, Duration::from_secs(2)).is_err());
    let hostname = sandbox.ssh("bj-inner", "hostname").success().stdout;
    assert_eq!(hostname, "bj-inner\n");
    let list = sandbox.shipit(&["sandbox", "list"]).run().success().stdout;
    assert!(
        list.contains("running  bookworm behind bj-bastion"),
        "{list}"
    );

    lifecycle_through(
        &sandbox,
        "bj-inner",
        "bj-inner",
        &[],
        "(bj-inner, a sandbox host) via ProxyJump bj-bastion",
    );
    assert_eq!(helpers_of(&sandbox.ssh_config()), []);
}

/// `%h %p %r %n %k %%` reach the ProxyCommand exactly as OpenSSH's own `ssh` passes them, and
/// the host key is looked up under HostKeyAlias (in any case) as OpenSSH looks it up.
fn a_proxy_command_gets_openssh_tokens_and_carries_every_command() {
    let sandbox = Sandbox::up(&["bc-bastion"]);
    sandbox.up_behind("bc-bastion", &["bc-inner"]);
    let dir = tempfile::tempdir().unwrap();
    let (config, known_hosts, log) = (
        dir.path().join("ssh_config"),
        dir.path().join("known_hosts"),
        dir.path().join("tokens.log"),
    );
    std::fs::write(
        &known_hosts,
        format!(
            "{} {}\nBC-Inner-KEY {}\n",
            sandbox.address("bc-bastion"),
            host_key(&sandbox, "bc-bastion"),
            host_key(&sandbox, "bc-inner")
        ),
    )
    .unwrap();
    let common = format!(
        "  User root\n  IdentityFile {}\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
         StrictHostKeyChecking yes\n",
        sandbox.state_dir().join("id_ed25519").display(),
        known_hosts.display()
    );
    // OpenSSH runs `exec COMMAND`, so a compound command needs its own shell.
    std::fs::write(
        &config,
        format!(
            "Host bastion\n  HostName {}\n{common}\
             Host Inner-PC\n  HostName {}\n{common}  HostKeyAlias BC-Inner-Key\n  \
             ProxyCommand sh -c 'printf \"%%s|\" \"$@\" >> {}; echo >> {}; exec ssh -F {} -W \"$1:$2\" bastion' proxy %h %p %r %n %k %%\n",
            sandbox.address("bc-bastion"),
            sandbox.address("bc-inner"),
            log.display(),
            log.display(),
            config.display()
        ),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();

    let openssh = Command::new("ssh")
        .args(["-F", config_arg, "-o", "BatchMode=yes", "Inner-PC", "true"])
        .output()
        .unwrap();
    assert!(
        openssh.status.success(),
        "{}",
        String::from_utf8_lossy(&openssh.stderr)
    );
    sandbox
        .shipit(&["status", "Inner-PC", "-F", config_arg])
        .run()
        .success();
    let tokens = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = tokens.lines().collect();
    assert_eq!(lines.len(), 2, "{tokens}");
    assert_eq!(lines[1], lines[0], "shipit's expansion differs from ssh's");
    assert_eq!(
        lines[0],
        format!(
            "{}|22|root|Inner-PC|bc-inner-key|%|",
            sandbox.address("bc-inner")
        )
    );

    lifecycle_through(
        &sandbox,
        "Inner-PC",
        "bc-inner",
        &["-F", config_arg],
        "(Inner-PC) via ProxyCommand `sh -c",
    );
    assert_eq!(processes_with(&format!("-F {config_arg} -W")), []);
}

fn a_fleet_behind_one_bastion_deploys_in_parallel_and_leaves_no_helper() {
    let hosts = ["bf-1", "bf-2", "bf-3"];
    let sandbox = Sandbox::up(&["bf-bastion"]);
    sandbox.up_behind("bf-bastion", &hosts);
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    // Hosts by address, each with `proxy_jump` naming an alias from the -F config.
    let mut toml = std::fs::read_to_string(project.path().join("shipit.toml")).unwrap();
    for host in hosts {
        toml.push_str(&format!(
            "\n[hosts.{host}]\naddress = \"{}\"\nuser = \"root\"\nproxy_jump = \"jump-bf\"\n",
            sandbox.address(host)
        ));
    }
    toml.push_str("\n[groups]\nweb = [\"bf-1\", \"bf-2\", \"bf-3\"]\n");
    std::fs::write(project.path().join("shipit.toml"), toml).unwrap();
    let config = private_ssh_config(project.path(), &sandbox.state_dir().join("id_ed25519"));
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "Host jump-bf\n  HostName {}\n  User root\n",
        sandbox.address("bf-bastion")
    ));
    std::fs::write(&config, text).unwrap();
    std::fs::copy(
        sandbox.state_dir().join("known_hosts"),
        project.path().join("known_hosts"),
    )
    .unwrap();

    let before = helpers_of(&config).len();
    let dir = project.path().to_str().unwrap();
    let config_arg = config.to_str().unwrap();
    let mut running = Running::start(
        &sandbox,
        &[
            "-C",
            dir,
            "deploy",
            "web",
            "-F",
            config_arg,
            "--version-override",
            "1.0.0",
            "--confirm-timeout",
            "60s",
        ],
    );
    // Every host is connected before the first upload: one helper each, all shipit's own.
    running.wait_for_line("Uploaded");
    let shipit_pid = running.child.id();
    let during: Vec<_> = helpers_of(&config)
        .into_iter()
        .filter(|(_, parent, _)| *parent == shipit_pid)
        .collect();
    assert_eq!(during.len(), 3, "{during:#?}");
    let (code, stderr) = running.finish();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.matches("via ProxyJump jump-bf").count(),
        6,
        "{stderr}"
    );
    assert_eq!(stderr.matches("Confirmed").count(), 3, "{stderr}");
    for host in hosts {
        assert_eq!(health(&sandbox, host)["version"], "1.0.0");
    }
    assert_eq!(helpers_of(&config).len(), before);
}

/// OpenSSH checks the bastion and says why it refuses; shipit checks the final host.
fn host_keys_are_checked_on_both_sides_of_the_bastion() {
    let sandbox = Sandbox::up(&["bk-bastion"]);
    sandbox.up_behind("bk-bastion", &["bk-inner"]);
    let dir = tempfile::tempdir().unwrap();
    let write_config = |name: &str, bastion_known: &str, inner_known: &str| -> PathBuf {
        let (bastion_file, inner_file) = (
            dir.path().join(format!("{name}-bastion")),
            dir.path().join(format!("{name}-inner")),
        );
        std::fs::write(&bastion_file, bastion_known).unwrap();
        std::fs::write(&inner_file, inner_known).unwrap();
        let config = dir.path().join(name);
        std::fs::write(
            &config,
            format!(
                "Host bastion\n  HostName {}\n  UserKnownHostsFile {}\n\
                 Host inner\n  HostName {}\n  ProxyJump bastion\n  UserKnownHostsFile {}\n\
                 Host *\n  User root\n  IdentityFile {}\n  GlobalKnownHostsFile /dev/null\n  \
                 StrictHostKeyChecking yes\n",
                sandbox.address("bk-bastion"),
                bastion_file.display(),
                sandbox.address("bk-inner"),
                inner_file.display(),
                sandbox.state_dir().join("id_ed25519").display()
            ),
        )
        .unwrap();
        config
    };
    let bastion_line = format!(
        "{} {}\n",
        sandbox.address("bk-bastion"),
        host_key(&sandbox, "bk-bastion")
    );
    let inner_line = format!(
        "{} {}\n",
        sandbox.address("bk-inner"),
        host_key(&sandbox, "bk-inner")
    );
    // OpenSSH's own answer for the same config.
    let openssh_refuses = |config: &Path, words: &str| {
        let output = Command::new("ssh")
            .arg("-F")
            .arg(config)
            .args(["-o", "BatchMode=yes", "inner", "true"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(words),
            "{stderr}"
        );
    };
    let status = |config: &Path, extra: &[&str]| {
        let args = [&["status", "inner", "-F", config.to_str().unwrap()], extra].concat();
        sandbox.shipit(&args).run()
    };

    // The bastion's key is unknown: OpenSSH refuses the hop, and shipit shows its words.
    let unknown_bastion = write_config("unknown-bastion", "", &inner_line);
    openssh_refuses(&unknown_bastion, "Host key verification failed.");
    status(&unknown_bastion, &["--accept-new-host-key"])
        .failure(4)
        .stderr_has("through ProxyJump bastion")
        .stderr_has("exited with status 255")
        .stderr_has("Host key verification failed.");

    // A wrong key on record for the host behind it: refused, as OpenSSH refuses it.
    let wrong = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkQ2UGPUk2fEuqZsP4Og9NRQ5ETlwNZUdXoyCV4ZvWw";
    let wrong_inner = write_config(
        "wrong-inner",
        &bastion_line,
        &format!("{} {wrong}\n", sandbox.address("bk-inner")),
    );
    openssh_refuses(&wrong_inner, "REMOTE HOST IDENTIFICATION HAS CHANGED");
    status(&wrong_inner, &["--accept-new-host-key"])
        .failure(4)
        .stderr_has("has CHANGED");

    let fine = write_config("fine", &bastion_line, &inner_line);
    status(&fine, &[]).success();
    for config in [&unknown_bastion, &wrong_inner, &fine] {
        assert_eq!(helpers_of(config), []);
    }
}

/// Runs shipit and fails the test, instead of hanging it, if shipit does not finish in time.
fn run_within(limit: Duration, args: &[&str]) -> (i32, String, Duration) {
    let sandbox = Sandbox::empty();
    let started = Instant::now();
    let mut running = Running::start(&sandbox, args);
    while running.child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = running.child.kill();
            panic!("shipit {args:?} still runs after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, stderr) = running.finish();
    (code, stderr, started.elapsed())
}

fn a_proxy_command_that_fails_or_stalls_is_reported_and_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ssh_config");
    std::fs::write(
        &config,
        "Host dies-at-once\n  HostName 10.213.0.2\n  \
         ProxyCommand sh -c 'echo refused by the bastion policy >&2; exit 3'\n\
         Host never-answers\n  HostName 10.213.0.2\n  ProxyCommand sleep 613\n\
         Host *\n  User root\n  UserKnownHostsFile /dev/null\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let project = example("hello-go");
    let project = project.to_str().unwrap();

    let (code, stderr, _) = run_within(
        Duration::from_secs(60),
        &["-C", project, "status", "dies-at-once", "-F", config],
    );
    assert_eq!(code, 4, "{stderr}");
    for needle in [
        "cannot connect to dies-at-once (root@10.213.0.2:22) through ProxyCommand",
        "exited with status 3",
        "refused by the bastion policy",
        "help:",
    ] {
        assert!(stderr.contains(needle), "no {needle:?} in:\n{stderr}");
    }

    // A helper that never speaks: the connect timeout applies through it, and it is killed.
    let (code, stderr, _) = run_within(
        Duration::from_secs(90),
        &["-C", project, "status", "never-answers", "-F", config],
    );
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains("no SSH handshake from never-answers within 20 s"),
        "{stderr}"
    );
    assert_eq!(processes_with("sleep 613"), []);
}

fn a_dead_bastion_connection_or_ctrl_c_leaves_no_helper_and_no_lock() {
    let sandbox = Sandbox::up(&["bd-bastion"]);
    sandbox.up_behind("bd-bastion", &["bd-inner"]);
    let small = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    // Only the release whose upload is cut carries filler: packaging it is the slow part.
    let large = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    add_filler(large.path(), 16);
    fn deploy<'a>(project: &'a tempfile::TempDir, version: &'a str) -> [&'a str; 6] {
        let dir = project.path().to_str().unwrap();
        [
            "-C",
            dir,
            "deploy",
            "bd-inner",
            "--version-override",
            version,
        ]
    }
    sandbox.shipit(&deploy(&small, "1.0.0")).run().success();
    let no_lock = || {
        sandbox
            .ssh("bd-inner", "test ! -e /opt/hello-go/.shipit/lock")
            .success();
    };

    // The helper dies mid-upload: shipit says so, and unlocks over a new connection through a
    // new helper.
    let mut running = Running::start(&sandbox, &deploy(&large, "2.0.0"));
    running.wait_for_line("Connected");
    let helper = helpers_of(&sandbox.ssh_config())
        .into_iter()
        .find(|(_, parent, _)| *parent == running.child.id())
        .expect("shipit's helper")
        .0;
    let carried = || {
        std::fs::read_to_string(format!("/proc/{helper}/io"))
            .ok()
            .and_then(|io| {
                io.lines()
                    .find_map(|l| l.strip_prefix("rchar: ")?.parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    // Polled closely: the whole upload may take a fraction of a second.
    let deadline = Instant::now() + Duration::from_secs(60);
    while carried() < 2 << 20 {
        assert!(Instant::now() < deadline, "the upload never got going");
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: kill has no memory-safety preconditions; `helper` is a live child of shipit.
    assert_eq!(unsafe { libc::kill(helper as i32, libc::SIGKILL) }, 0);
    let (code, stderr) = running.finish();
    assert_eq!(code, 4, "{stderr}");
    for needle in [
        "the connection to bd-inner through ProxyJump bd-bastion is gone",
        "was killed by signal 9",
        "Unlocked bd-inner over a new connection",
    ] {
        assert!(stderr.contains(needle), "no {needle:?} in:\n{stderr}");
    }
    no_lock();
    assert_eq!(health(&sandbox, "bd-inner")["version"], "1.0.0");

    // Ctrl-C at a terminal signals the whole job: the helper, in a session of its own, keeps
    // the connection up while shipit rolls back and unlocks.
    let mut running = Running::start_as_job(&sandbox, &deploy(&small, "3.0.0"));
    running.wait_for_line("Starting");
    std::thread::sleep(Duration::from_millis(500));
    running.interrupt_job();
    let (code, stderr) = running.finish();
    assert_eq!(code, 130, "{stderr}");
    assert!(stderr.contains("rolled back"), "{stderr}");
    no_lock();
    assert_eq!(health(&sandbox, "bd-inner")["version"], "1.0.0");
    assert_eq!(helpers_of(&sandbox.ssh_config()), []);
}

/// A ProxyCommand relay (bash, `relay HOST PORT`) that ignores EOF on its stdin, as some do:
/// when shipit's end closes, it keeps the connection to the host open, half of it unused.
const DEAF_RELAY: &str = "exec 3<>\"/dev/tcp/$1/$2\"\ncat <&3 &\ncat >&3\nexec sleep 600\n";

/// `project` as a copy of hello-go whose gate settles for `settle`, and an ssh config (for `-F`)
/// that reaches sandbox host `host` as `relayed`, through [`DEAF_RELAY`] run with `marker` in
/// its environment.
fn through_a_deaf_relay(
    sandbox: &Sandbox,
    host: &str,
    settle: &str,
    marker: &str,
) -> (tempfile::TempDir, PathBuf) {
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    let toml = project.path().join("shipit.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        text.replace("settle = \"3s\"", &format!("settle = \"{settle}\"")),
    )
    .unwrap();
    let relay = project.path().join("relay");
    std::fs::write(&relay, DEAF_RELAY).unwrap();
    let config = sandbox_ssh_config(sandbox, project.path());
    let rest = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "Host relayed\n  HostName {}\n  User root\n  ProxyCommand env {marker} bash {} %h %p\n{rest}",
            sandbox.address(host),
            relay.display()
        ),
    )
    .unwrap();
    (project, config)
}

/// `kill -9` of shipit during the health gate, connected through a relay that ignores EOF on
/// its stdin: within 3 s nothing shipit started is left here, the relay included, so the host's
/// session ends; the lock's refresher stops with it, and the lock goes stale.
fn a_killed_deploy_leaves_no_helper_and_its_lock_is_no_longer_refreshed() {
    let host = "bz-host";
    let sandbox = Sandbox::up(&[host]);
    let marker = format!("SHIPIT_TEST_RELAY={}", sandbox.state_dir().display());
    // A gate long enough to see the lock refreshed (every 15 s) before shipit is killed in it.
    let (project, config) = through_a_deaf_relay(&sandbox, host, "90s", &marker);
    let package = build(project.path(), "1.0.0");
    let mut running = Running::start(
        &sandbox,
        &[
            "-C",
            project.path().to_str().unwrap(),
            "deploy",
            "relayed",
            "-F",
            config.to_str().unwrap(),
            "--package",
            package.to_str().unwrap(),
        ],
    );
    running.wait_for_line("Starting");
    let lock_mtime = || {
        let stat = sandbox.ssh(host, "stat -c %Y /opt/hello-go/.shipit/lock");
        stat.success().stdout.trim().parse::<u64>().unwrap()
    };
    let taken = lock_mtime();
    assert!(
        wait_for(30, || lock_mtime() > taken),
        "the lock was never refreshed"
    );
    let shipit_pid = running.child.id();
    let started: Vec<u32> = processes_with("")
        .into_iter()
        .filter(|(_, parent, _)| *parent == shipit_pid)
        .map(|(pid, _, _)| pid)
        .collect();
    assert!(!processes_marked(&marker).is_empty(), "no relay running");

    running.signal(libc::SIGKILL);
    let (code, _) = running.finish();
    assert_eq!(code, -libc::SIGKILL);
    std::thread::sleep(Duration::from_secs(3));
    let mut left: Vec<(u32, String)> = started
        .into_iter()
        .filter(|pid| !is_zombie(*pid))
        .map(|pid| (pid, "started by shipit".to_string()))
        .collect();
    left.extend(processes_marked(&marker));
    for (pid, _) in &left {
        // Not left running for the rest of the suite. SAFETY: kill has no memory-safety
        // preconditions.
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
    assert_eq!(left, [], "still running 3 s after shipit died");

    // The refresher runs while the host's shell does; the shell ended with the connection.
    let stopped = lock_mtime();
    std::thread::sleep(Duration::from_secs(2 * 15 + 3));
    assert_eq!(lock_mtime(), stopped, "the lock is still being refreshed");
}

/// The host's shell gets its nonce on stdin: in its argv, any user on the host could read it in
/// /proc/*/cmdline, and a service could forge the shell's answers with it (in a health body).
fn the_host_shell_keeps_its_nonce_off_argv() {
    let host = "bn-host";
    let sandbox = Sandbox::up(&[host]);
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    let package = build(project.path(), "1.0.0");
    let mut running = Running::start(
        &sandbox,
        &[
            "-C",
            project.path().to_str().unwrap(),
            "deploy",
            host,
            "--package",
            package.to_str().unwrap(),
        ],
    );
    running.wait_for_line("Starting");
    // One line per process: the shell's script, in its argv, has lines of its own.
    let processes = sandbox
        .ssh(
            host,
            "for f in /proc/[0-9]*/cmdline; do tr '\\0\\n' '  ' < \"$f\"; echo; done 2>/dev/null",
        )
        .success()
        .stdout;
    let (code, stderr) = running.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        processes.contains("shipit's shell on a host"),
        "no host shell among:\n{processes}"
    );
    // The nonce: 128 random bits in hex.
    let nonce = regex::Regex::new(r"\b[0-9a-f]{32}\b").unwrap();
    let holding: Vec<String> = processes
        .lines()
        .filter_map(|l| {
            let found = nonce.find(l)?;
            Some(format!("{} in `{:.60}…`", found.as_str(), l))
        })
        .collect();
    assert!(holding.is_empty(), "a nonce in argv: {holding:#?}");
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(
            Hosts,
            33,
            a_host_only_a_bastion_reaches_is_deployed_through_proxy_jump
        ),
        crate::test!(
            Hosts,
            55,
            a_proxy_command_gets_openssh_tokens_and_carries_every_command
        ),
        crate::test!(
            Hosts,
            29,
            a_fleet_behind_one_bastion_deploys_in_parallel_and_leaves_no_helper
        ),
        crate::test!(
            Hosts,
            18,
            host_keys_are_checked_on_both_sides_of_the_bastion
        ),
        crate::test!(
            Nothing,
            15,
            a_proxy_command_that_fails_or_stalls_is_reported_and_reaped
        ),
        crate::test!(
            Hosts,
            67,
            a_dead_bastion_connection_or_ctrl_c_leaves_no_helper_and_no_lock
        ),
        crate::test!(
            Hosts,
            56,
            a_killed_deploy_leaves_no_helper_and_its_lock_is_no_longer_refreshed
        ),
        crate::test!(Hosts, 8, the_host_shell_keeps_its_nonce_off_argv),
    ]
}
