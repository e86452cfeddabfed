//! `shipit exec`: commands run as the service runs (its user, release, env file, hardening) on
//! real sandbox hosts, on every Debian release the sandbox boots; and what `systemd-run -p`
//! accepts there.

use std::path::Path;

use crate::support::app::*;
use crate::support::sandbox::Sandbox;
use crate::support::*;

/// hello-go with an environment that is hard to pass on exactly, an env file holding a
/// "secret", and a hardening directive systemd 247 does not know.
pub fn exec_project() -> tempfile::TempDir {
    let project = variant(
        "LOG_LEVEL = \"info\"\nGREETING = \"hello 100% $HOME 'q' \\\"dq\\\" a\\\\b\"",
        "[\"--port\", \"8080\"]",
    );
    let path = project.path().join("shipit.toml");
    let config = std::fs::read_to_string(&path).unwrap().replacen(
        "[service]\n",
        "[service]\nenv_file = \".env.prod\"\n",
        1,
    );
    std::fs::write(
        &path,
        format!("{config}\n[service.hardening]\nPrivateIPC = \"yes\"\n"),
    )
    .unwrap();
    std::fs::write(project.path().join(".env.prod"), "API_TOKEN=s3cret-token\n").unwrap();
    project
}

fn exec(sandbox: &Sandbox, project: &Path, args: &[&str]) -> Run {
    sandbox
        .project(project)
        .shipit(&[&["exec"], args].concat())
        .run()
}

/// A command runs as the service: its user, the current release as working directory, the
/// unit's environment (exactly) and env file, its hardening; exit statuses pass through; a
/// directive the host's systemd lacks, or a specifier, is reported. On 247, 252 and 257.
fn exec_runs_as_the_service_runs_on_every_release() {
    let hosts = a_host_per_release("x");
    let project = exec_project();
    let package = build(project.path(), "1.4.0");
    std::thread::scope(|scope| {
        for (sandbox, host, systemd) in &hosts {
            let (project, package) = (project.path(), &package);
            scope.spawn(move || exec_on(sandbox, host, *systemd, project, package));
        }
    });
}

fn exec_on(sandbox: &Sandbox, host: &str, systemd: u32, project: &Path, package: &Path) {
    let run = sandbox
        .project(project)
        .deploy(host, Ship::Package(package), &["--json"])
        .success();
    let deployed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let release = deployed["hosts"][0]["release"]
        .as_str()
        .unwrap()
        .to_string();

    let out = exec(sandbox, project, &[host, "--", "id", "-un"]).success();
    assert_eq!(out.stdout, "hello-go\n", "{host}: {}", out.stderr);

    let script = "pwd; printf '%s\\n' \"$GREETING\" \"$API_TOKEN\" \"$SHIPIT_VERSION\" \
                  \"$SHIPIT_RELEASE\" \"$LOG_LEVEL\"";
    let out = exec(sandbox, project, &[host, "--", "sh", "-c", script]).success();
    assert_eq!(
        out.stdout,
        format!(
            "/opt/hello-go/releases/{release}\nhello 100% $HOME 'q' \"dq\" a\\b\ns3cret-token\n\
             1.4.0\n{release}\ninfo\n"
        ),
        "{host}: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cret"), "{host}: {}", out.stderr);

    // The arguments arrive as written: no shell, no systemd $-expansion.
    let out = exec(
        sandbox,
        project,
        &[
            host, "--", "printf", "[%s]", "a b", "$HOME", "*", "it's", "${X}",
        ],
    )
    .success();
    assert_eq!(out.stdout, "[a b][$HOME][*][it's][${X}]", "{host}");

    // The unit's hardening holds: a read-only system but for the state directory, no new
    // privileges.
    let out = exec(
        sandbox,
        project,
        &[
            host,
            "--",
            "sh",
            "-c",
            "touch /usr/x 2>&1; grep NoNewPrivs /proc/self/status; \
             touch \"$STATE_DIRECTORY/ok\" && echo state writable",
        ],
    )
    .success();
    assert!(
        out.stdout.contains("Read-only file system")
            && out.stdout.contains("NoNewPrivs:\t1")
            && out.stdout.contains("state writable"),
        "{host}:\n{}",
        out.stdout
    );

    // Exit statuses pass through; a missing command is 127, as in a shell; a signal 255.
    exec(
        sandbox,
        project,
        &[host, "--", "sh", "-c", "echo bye >&2; exit 3"],
    )
    .failure(3)
    .stderr_has("bye");
    exec(sandbox, project, &[host, "--", "sh", "-c", "kill -KILL $$"]).failure(255);
    exec(sandbox, project, &[host, "--", "./no-such-tool", "--flag"])
        .failure(127)
        .stderr_has("./no-such-tool: command not found (in /opt/hello-go/current)");

    // PrivateIPC= is in the unit only where systemd knows it (248 on): there the command gets
    // its own IPC namespace too. A drop-in putting it back on 247, and a specifier, are
    // reported, not dropped silently.
    let own_ipc = exec(
        sandbox,
        project,
        &[host, "--", "readlink", "/proc/self/ns/ipc"],
    )
    .success()
    .stdout;
    let host_ipc = sandbox
        .ssh(host, "readlink /proc/1/ns/ipc")
        .success()
        .stdout;
    assert_eq!(
        own_ipc != host_ipc,
        systemd >= 248,
        "{host}: {own_ipc} {host_ipc}"
    );
    sandbox
        .ssh(
            host,
            "mkdir -p /etc/systemd/system/hello-go.service.d && printf '[Service]\\n\
             PrivateIPC=yes\\nEnvironment=UNIT=%%n\\n' > /etc/systemd/system/hello-go.service.d/extra.conf \
             && systemctl daemon-reload",
        )
        .success();
    let out = exec(
        sandbox,
        project,
        &[host, "--", "sh", "-c", "echo \"[$UNIT]\""],
    )
    .success();
    assert_eq!(out.stdout, "[]\n", "{host}");
    assert!(
        out.stderr.contains(&format!(
            "warning: {host}: Environment= uses the specifier %n, which only unit files expand"
        )),
        "{host}:\n{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.contains(&format!(
            "warning: {host}: PrivateIPC= needs systemd 248, this host has {systemd}"
        )),
        systemd < 248,
        "{host}:\n{}",
        out.stderr
    );

    // -v shows the systemd-run invocation, with the command's arguments masked.
    let out = exec(sandbox, project, &["-v", host, "--", "echo", "s3cret-arg"]).success();
    assert!(
        out.stderr
            .contains("systemd-run --quiet --collect --wait --pipe")
            && out.stderr.contains("-p User=hello-go")
            && out.stderr.contains("echo '‹1 arguments›'")
            && !out.stderr.contains("s3cret"),
        "{host}:\n{}",
        out.stderr
    );

    // Logs on every release: -g searches (journalctl has PCRE2 on all three), lower case
    // matches any case, and a host's journalctl without it is explained.
    let logs = |args: &[&str]| {
        sandbox
            .project(project)
            .shipit(&[&["logs", host], args].concat())
            .run()
    };
    let found = logs(&["-g", "LISTENING ON", "-n", "5"]).success().stdout;
    assert!(found.is_empty(), "{host}: capitals match case: {found}");
    let found = logs(&["-g", "listening on", "--since", "-1h"])
        .success()
        .stdout;
    assert!(
        !found.is_empty()
            && found
                .lines()
                .all(|l| l.contains("hello-go 1.4.0") && l.contains("listening on [::]:8080")),
        "{host}: {found}"
    );
    sandbox
        .ssh(
            host,
            "printf '#!/bin/sh\\ncase \"$*\" in *--grep*) echo \"Compiled without pattern matching \
             support\" >&2; exit 1;; esac\\nexec /usr/bin/journalctl \"$@\"\\n' > /usr/local/bin/journalctl \
             && chmod +x /usr/local/bin/journalctl",
        )
        .success();
    logs(&["-g", "listening"])
        .failure(5)
        .stderr_has(&format!(
            "journalctl failed on {host}: Compiled without pattern matching support"
        ))
        .stderr_has("help: this host's journalctl was built without PCRE2");
    sandbox.ssh(host, "rm /usr/local/bin/journalctl").success();
}

/// Every directive of shipit's table for a service (not its socket unit's) is accepted by
/// `systemd-run -p` from the release that brought it, and refused before: the table says what
/// transient units take, too.
fn systemd_run_takes_each_directive_from_its_release_on() {
    let names: Vec<&str> = shipit::systemd::DIRECTIVES
        .iter()
        .filter(|d| d.section != shipit::systemd::Section::Socket)
        .map(|d| d.name)
        .collect();
    for name in &names {
        assert!(
            SAMPLES.iter().any(|(n, _)| n == name),
            "no sample value for {name}"
        );
    }
    let mut script = String::from("cd /\n");
    for (name, value) in SAMPLES {
        script.push_str(&format!(
            "out=$(SYSTEMD_LOG_COLOR=0 systemd-run --quiet --wait --collect -p '{name}={value}' \
             /bin/true 2>&1 </dev/null)\n\
             case \"$out\" in *'Unknown assignment'*|*'Cannot set'*|*'Unknown property'*) \
             echo 'refused {name}';; esac\n"
        ));
    }
    for (sandbox, host, systemd) in a_host_per_release("p") {
        let out = sandbox.ssh(&host, &script).success().stdout;
        let mut refused: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| out.lines().any(|l| l == format!("refused {name}")))
            .collect();
        refused.sort_unstable();
        let newer = directives_newer_than(systemd);
        assert_eq!(refused, newer, "systemd {systemd} on {host}:\n{out}");
    }
}

/// A value for each directive of the table that systemd-run parses (whether the unit then
/// starts does not matter here).
const SAMPLES: &[(&str, &str)] = &[
    ("Description", "x"),
    ("After", "network.target"),
    ("Wants", "network.target"),
    ("Requires", "network.target"),
    ("StartLimitIntervalSec", "60"),
    ("StartLimitBurst", "5"),
    ("Type", "simple"),
    ("User", "root"),
    ("Group", "root"),
    ("WorkingDirectory", "/"),
    ("ExecStart", "/bin/true"),
    ("Restart", "no"),
    ("RestartSec", "5"),
    ("TimeoutStopSec", "30"),
    ("LimitNOFILE", "65536"),
    ("Environment", "A=b"),
    ("EnvironmentFile", "-/nonexistent"),
    ("StateDirectory", "shipit-probe"),
    ("WantedBy", "multi-user.target"),
    ("DynamicUser", "no"),
    ("CapabilityBoundingSet", ""),
    ("AmbientCapabilities", ""),
    ("NoNewPrivileges", "yes"),
    ("SecureBits", "keep-caps"),
    ("UMask", "0077"),
    ("KeyringMode", "private"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("RuntimeDirectory", "shipit-probe"),
    ("CacheDirectory", "shipit-probe"),
    ("LogsDirectory", "shipit-probe"),
    ("ConfigurationDirectory", "shipit-probe"),
    ("ReadWritePaths", "-/var/lib"),
    ("ReadOnlyPaths", "/usr"),
    ("InaccessiblePaths", "-/nonexistent"),
    ("ExecPaths", "/usr"),
    ("NoExecPaths", "/tmp"),
    ("TemporaryFileSystem", "/mnt"),
    ("BindPaths", "/tmp:/mnt"),
    ("BindReadOnlyPaths", "/usr:/mnt"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("PrivateNetwork", "no"),
    ("NetworkNamespacePath", "/proc/1/ns/net"),
    ("PrivateIPC", "yes"),
    ("IPCNamespacePath", "/proc/1/ns/ipc"),
    ("PrivatePIDs", "yes"),
    ("PrivateUsers", "no"),
    ("PrivateMounts", "yes"),
    ("ProtectHostname", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectProc", "invisible"),
    ("ProcSubset", "pid"),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("RestrictFileSystems", "ext4 tmpfs proc"),
    ("RestrictNamespaces", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("RemoveIPC", "yes"),
    ("SystemCallFilter", "@system-service"),
    ("SystemCallErrorNumber", "EPERM"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallLog", "@clock"),
    ("LoadCredential", "host:/etc/hostname"),
    ("SetCredential", "name:value"),
    ("LoadCredentialEncrypted", "name:/nonexistent"),
    ("SetCredentialEncrypted", "name:aGVsbG8="),
    ("ImportCredential", "name*"),
    ("OOMScoreAdjust", "100"),
    ("Nice", "5"),
    ("MemoryKSM", "no"),
    ("MemoryMin", "1M"),
    ("MemoryLow", "1M"),
    ("MemoryHigh", "1G"),
    ("MemoryMax", "1G"),
    ("MemorySwapMax", "1G"),
    ("TasksMax", "100"),
    ("CPUWeight", "100"),
    ("CPUQuota", "50%"),
    ("IOWeight", "100"),
    ("IPAddressAllow", "any"),
    ("IPAddressDeny", ""),
    ("SocketBindAllow", "tcp:8080"),
    ("SocketBindDeny", "any"),
    ("RestrictNetworkInterfaces", "lo"),
    ("DevicePolicy", "closed"),
    ("DeviceAllow", "/dev/null rw"),
    ("OOMPolicy", "stop"),
];

/// Several hosts (a group): each output line prefixed with its host, a summary of exit
/// statuses, and a failing exit when any host failed; a host without a release says so; -t
/// gives one host a terminal; Ctrl-C stops the command on the host.
fn exec_on_a_group_prefixes_lines_and_sums_up() {
    let hosts = ["ex-1", "ex-2", "ex-3"];
    let sandbox = Sandbox::up(&hosts);
    let (project, ssh_config) = fleet_project(&sandbox, &hosts, "two = [\"ex-1\", \"ex-2\"]\n");
    let ssh_config = ssh_config.as_str();
    let package = build(project.path(), "2.0.0");
    for host in ["ex-1", "ex-2"] {
        sandbox
            .project(project.path())
            .deploy(host, Ship::Package(&package), &["-F", ssh_config])
            .success();
    }
    let script = "echo \"out of $(hostname)\"; echo \"err of $(hostname)\" >&2; \
                  [ \"$(hostname)\" != ex-2 ] || exit 3";
    let run = exec(
        &sandbox,
        project.path(),
        &["two", "-F", ssh_config, "--", "sh", "-c", script],
    )
    .failure(5);
    assert_eq!(
        sorted(&run.stdout),
        ["ex-1 | out of ex-1", "ex-2 | out of ex-2"],
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("ex-1 | err of ex-1\n") && run.stderr.contains("ex-2 | err of ex-2\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("HOST  EXIT\nex-1  0\nex-2  3\n")
            && run
                .stderr
                .contains("the command failed on 1 of 2 hosts: ex-2 (exit status 3)"),
        "{}",
        run.stderr
    );
    exec(
        &sandbox,
        project.path(),
        &["two", "-F", ssh_config, "--", "true"],
    )
    .success()
    .stderr_has("ex-1  0\nex-2  0\n");

    // A host without a release: a clear error, alone or in a group.
    exec(
        &sandbox,
        project.path(),
        &["ex-3", "-F", ssh_config, "--", "true"],
    )
    .failure(5)
    .stderr_has("hello-go has no deployed release on ex-3 (/opt/hello-go/current does not exist)")
    .stderr_has("help: deploy it first: `shipit deploy ex-3`");
    exec(
        &sandbox,
        project.path(),
        &["web", "-F", ssh_config, "--", "true"],
    )
    .failure(5)
    .stderr_has("ex-3  not run: hello-go has no deployed release on ex-3");

    // -t: a terminal on the host (requested over SSH and passed on by systemd-run --pty).
    let run = exec(
        &sandbox,
        project.path(),
        &[
            "-t",
            "ex-1",
            "-F",
            ssh_config,
            "--",
            "sh",
            "-c",
            "tty; test -t 0 && echo interactive",
        ],
    )
    .success();
    assert!(
        run.stdout.contains("/dev/pts/") && run.stdout.contains("interactive"),
        "{}",
        run.stdout
    );
    exec(
        &sandbox,
        project.path(),
        &["-t", "two", "-F", ssh_config, "--", "true"],
    )
    .failure(2)
    .stderr_has("-t gives one host a terminal; 2 hosts were named");

    // stdin goes to the command on one host, all of it (more than an SSH window).
    let data = project.path().join("data.bin");
    let mut bytes = vec![0u8; 5 << 20];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").unwrap(),
        &mut bytes,
    )
    .unwrap();
    std::fs::write(&data, &bytes).unwrap();
    let run = sandbox
        .project(project.path())
        .shipit(&["exec", "ex-1", "-F", ssh_config, "--", "sha256sum"])
        .stdin(std::fs::File::open(&data).unwrap())
        .run()
        .success();
    assert_eq!(
        run.stdout,
        format!("{}  -\n", sha256(&data)),
        "{}",
        run.stderr
    );

    // A login user that is not root goes through sudo, with a terminal too.
    let as_deploy = format!("deploy@{}", sandbox.address("ex-1"));
    let deploy_config = add_sudo_user(&sandbox, "ex-1", "deploy");
    let deploy_config = deploy_config.to_str().unwrap();
    for extra in [&[][..], &["-t"]] {
        let mut args = extra.to_vec();
        args.extend([
            as_deploy.as_str(),
            "-F",
            deploy_config,
            "--",
            "sh",
            "-c",
            "id -un; pwd",
        ]);
        let run = exec(&sandbox, project.path(), &args).success();
        // A terminal ends lines with \r\n.
        let out = run.stdout.replace('\r', "");
        assert!(
            out.starts_with("hello-go\n/opt/hello-go/releases/2.0.0-"),
            "{extra:?}: {out}\n{}",
            run.stderr
        );
    }

    // Ctrl-C stops the command on the host, not just here.
    let mut running = Running::start_as_job(
        &sandbox,
        &[
            "-C",
            project.path().to_str().unwrap(),
            "exec",
            "ex-1",
            "-F",
            ssh_config,
            "--",
            "sleep",
            "600",
        ],
    );
    running.wait_for_line("Connected");
    let started = wait_for(20, || {
        sandbox
            .ssh(
                "ex-1",
                "systemctl list-units --no-legend 'shipit-exec-*' | grep -q running",
            )
            .code
            == 0
    });
    assert!(started, "the command never started");
    running.interrupt_job();
    let (code, stderr) = running.finish();
    assert_eq!(code, 130, "{stderr}");
    let gone = wait_for(20, || {
        sandbox
            .ssh(
                "ex-1",
                "systemctl list-units --no-legend 'shipit-exec-*'; pgrep -x sleep",
            )
            .stdout
            .trim()
            .is_empty()
    });
    assert!(gone, "the command still runs on ex-1");
}

fn sorted(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(Hosts, 31, exec_runs_as_the_service_runs_on_every_release),
        crate::test!(
            Hosts,
            23,
            systemd_run_takes_each_directive_from_its_release_on
        ),
        crate::test!(Hosts, 36, exec_on_a_group_prefixes_lines_and_sums_up),
    ]
}
