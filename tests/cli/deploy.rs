//! `shipit deploy`, `status`, `logs`, `releases` against real sandbox hosts (systemd + OpenSSH in
//! systemd-nspawn), booted and removed by each test.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::app::*;
use crate::support::sandbox::Sandbox;
use crate::support::*;

/// The whole life of an app on one host: first deploy, crash recovery by systemd, a new
/// version, an unchanged redeploy, and the inspect commands.
fn lifecycle(example_name: &str, host: &str) {
    let sandbox = Sandbox::up(&[host]);
    let project = example(example_name);
    let unit = format!("{example_name}.service");

    // The first deploy builds the package itself; the later ones ship the shared one.
    let report = host_report(sandbox.project(&project).deploy(
        host,
        Ship::Built("1.0.0"),
        &["--json"],
    ));
    assert_eq!(report["uploaded"], true);
    assert_eq!(health(&sandbox, host)["version"], "1.0.0");
    assert_eq!(show(&sandbox, host, &unit, "LimitNOFILE"), "65536");
    assert_eq!(show(&sandbox, host, &unit, "Restart"), "on-failure");
    assert_eq!(show(&sandbox, host, &unit, "ProtectSystem"), "strict");
    assert_eq!(show(&sandbox, host, &unit, "NoNewPrivileges"), "yes");
    assert_eq!(show(&sandbox, host, &unit, "User"), example_name);
    let binary = format!("/opt/{example_name}/current/{example_name}");
    let owner = sandbox
        .ssh(host, &format!("stat -L -c '%U %a' {binary}"))
        .success()
        .stdout;
    assert_eq!(
        owner.trim(),
        "root 755",
        "the service user must not be able to replace its binary"
    );

    // systemd brings a killed service back.
    let pid = show(&sandbox, host, &unit, "MainPID");
    sandbox.ssh(host, &format!("kill -9 {pid}")).success();
    let restarted = wait_for(20, || {
        let now = show(&sandbox, host, &unit, "MainPID");
        now != pid && now != "0" && show(&sandbox, host, &unit, "ActiveState") == "active"
    });
    assert!(restarted, "systemd did not restart {unit} after kill -9");
    assert_eq!(show(&sandbox, host, &unit, "NRestarts"), "1");

    // A new version switches `current` and keeps the old release.
    let second = host_report(sandbox.project(&project).deploy(
        host,
        Ship::Version("1.1.0"),
        &["--json"],
    ));
    assert_eq!(health(&sandbox, host)["version"], "1.1.0");
    let link = sandbox
        .ssh(host, &format!("readlink /opt/{example_name}/current"))
        .success()
        .stdout;
    assert_eq!(
        link.trim(),
        format!("releases/{}", second["release"].as_str().unwrap())
    );
    assert_eq!(second["previous"], report["release"]);
    let releases = sandbox
        .shipit(&["-C", project.to_str().unwrap(), "releases", host])
        .run()
        .success()
        .stdout;
    assert!(
        releases
            .lines()
            .any(|l| l.starts_with("current") && l.contains(second["release"].as_str().unwrap())),
        "{releases}"
    );
    assert!(
        releases.contains(report["release"].as_str().unwrap()),
        "{releases}"
    );

    // The same package again: nothing is uploaded, and shipit says so.
    let again = host_report(sandbox.project(&project).deploy(
        host,
        Ship::Version("1.1.0"),
        &["--json"],
    ));
    assert_eq!(again["uploaded"], false, "{again}");
    assert_eq!(again["release"], second["release"]);

    let status = sandbox
        .shipit(&["-C", project.to_str().unwrap(), "status", host, "--json"])
        .run()
        .success()
        .stdout;
    let status: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&status).unwrap()[0].clone();
    assert_eq!(status["version"], "1.1.0");
    assert_eq!(status["active_state"], "active");
    assert_eq!(status["limit_nofile"], "65536");
    assert!(
        status["health"].as_str().unwrap().starts_with("200"),
        "{status}"
    );
    let logs = sandbox
        .shipit(&["-C", project.to_str().unwrap(), "logs", host, "-n", "20"])
        .run()
        .success()
        .stdout;
    assert!(logs.contains("1.1.0"), "{logs}");
}

fn go_service_lifecycle() {
    lifecycle("hello-go", "t-go-life");
}

fn rust_service_lifecycle() {
    lifecycle("hello-rust", "t-rust-life");
}

/// The examples with C code, built static for amd64, run under systemd like the others: the C
/// code answers in /health on the host.
fn services_with_c_code_deploy_and_answer_health() {
    let apps = [("hello-cgo", "t-cgo"), ("hello-rust-c", "t-rust-c")];
    let sandbox = Sandbox::up(&apps.map(|(_, host)| host));
    for (name, host) in apps {
        let report = host_report(sandbox.project(&example(name)).deploy(
            host,
            Ship::Version("1.0.0"),
            &["--json"],
        ));
        assert_eq!(report["uploaded"], true, "{name}");
        let health = health(&sandbox, host);
        assert_eq!(health["version"], "1.0.0", "{name}");
        assert_eq!(health["checks"]["native"], "UP (C on x86_64)", "{name}");
        assert_eq!(
            show(&sandbox, host, &format!("{name}.service"), "ActiveState"),
            "active"
        );
    }
}

fn failing_releases_roll_back_or_stop() {
    let host = "t-fail";
    let sandbox = Sandbox::up(&[host]);
    let good = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    let unhealthy = variant("HELLO_HEALTH_DOWN = \"1\"", "[\"--port\", \"8080\"]");
    let crashing = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"not-a-port\"]");
    let deploy = |project: &Path, version: &str| {
        sandbox
            .project(project)
            .deploy(host, Ship::Version(version), &[])
    };

    // A first release that is unhealthy has nothing to return to: it is stopped, exit 5.
    deploy(unhealthy.path(), "0.9.0")
        .failure(5)
        .stderr_has("failed its health check")
        .stderr_has("no earlier release");
    assert_eq!(
        show(&sandbox, host, "hello-go.service", "ActiveState"),
        "inactive"
    );

    deploy(good.path(), "1.0.0").success();
    for (project, version) in [(&unhealthy, "2.0.0"), (&crashing, "3.0.0")] {
        deploy(project.path(), version)
            .failure(6)
            .stderr_has("rolled back")
            .stderr_has("journal of hello-go.service");
        assert_eq!(
            health(&sandbox, host)["version"],
            "1.0.0",
            "after {version}"
        );
    }
}

/// hello-go with `env` and a quick pace (`timeout = "2s"`, `retries = 3`), with or without
/// `listen` (and so pre-flight).
fn paced(env: &str, listen: bool) -> tempfile::TempDir {
    let args = "[\"--port\", \"8080\"]";
    let project = if listen {
        listening_variant(env, args)
    } else {
        variant(env, args)
    };
    let config = project.path().join("shipit.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("retries = 4\n", "retries = 3\ntimeout = \"2s\"\n");
    std::fs::write(&config, text).unwrap();
    project
}

/// A deploy with `SHIPIT_TIMINGS`: how it ended, how long it took, and the longest of each
/// phase or step it timed.
fn timed_deploy(
    sandbox: &Sandbox,
    project: &Path,
    host: &str,
    version: &str,
) -> (Run, Duration, BTreeMap<String, f64>) {
    let timings = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    let run = sandbox
        .project(project)
        .shipit(&["deploy", host, "--version-override", version])
        .env("SHIPIT_TIMINGS", timings.path().to_str().unwrap())
        .run();
    let took = started.elapsed();
    let mut longest = BTreeMap::new();
    for line in std::fs::read_to_string(timings.path()).unwrap().lines() {
        let timing: serde_json::Value = serde_json::from_str(line).unwrap();
        let seconds = timing["seconds"].as_f64().unwrap();
        let phase = longest
            .entry(timing["phase"].as_str().unwrap().to_string())
            .or_insert(0.0);
        *phase = seconds.max(*phase);
    }
    (run, took, longest)
}

/// A /health that sends its headers at once, then its body a byte a second (about 100 s for
/// the whole): each probe gives up when its 2 s are up, where an idle timeout would wait for
/// ever, so the gate's 3 probes fail within their 6 s and their pauses, the deploy rolls back
/// and 1.0.0 serves. With `listen`, pre-flight refuses the release as fast, saying why, and
/// nothing is switched.
fn a_health_answer_that_trickles_fails_within_its_timeout() {
    let host = "t-trickle";
    let sandbox = Sandbox::up(&[host]);
    let good = paced("LOG_LEVEL = \"info\"", false);
    let slow = paced("HELLO_HEALTH_SLOW = \"1\"", false);
    let slow_listening = paced("HELLO_HEALTH_SLOW = \"1\"", true);
    build_shared_packages(slow.path(), &["2.0.0"]);
    build_shared_packages(slow_listening.path(), &["3.0.0"]);
    sandbox
        .project(good.path())
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();

    let (run, took, timings) = timed_deploy(&sandbox, slow.path(), host, "2.0.0");
    let run = run
        .failure(6)
        .stderr_has("failed 3 probes; last: no whole answer within 2s")
        .stderr_has("rolled back: 1.0.0-");
    let probes = timings["health: probe"];
    // 3 × 2 s and two pauses of 500 ms, with room for a busy machine.
    assert!(probes < 15.0, "the probes took {probes} s: {}", run.stderr);
    assert!(took < Duration::from_secs(60), "the deploy took {took:?}");
    assert_eq!(health_version(&sandbox, host), "1.0.0");

    let (run, took, timings) = timed_deploy(&sandbox, slow_listening.path(), host, "3.0.0");
    let run = run
        .failure(9)
        .stderr_has("failed pre-flight on t-trickle: it never took traffic, nothing was switched")
        .stderr_has("it did not answer 200 on /health within 5s (last: no whole answer within 2s)");
    let preflight = timings["running the new release on a scratch socket (pre-flight)"];
    // Its 5 s, and a last GET of 2 s begun just before they ran out.
    assert!(
        preflight < 15.0,
        "pre-flight took {preflight} s: {}",
        run.stderr
    );
    assert!(took < Duration::from_secs(60), "the deploy took {took:?}");
    assert_eq!(health_version(&sandbox, host), "1.0.0");
}

/// The host runs `systemd-analyze verify` on a unit it does not have yet, refusing a bad one
/// before anything switches, and skips it for the unit it already runs (checked back then).
fn the_host_verifies_each_new_unit_once() {
    let host = "t-verify";
    let sandbox = Sandbox::up(&[host]);
    // A wrapper that logs each call, so the test sees when the host verifies.
    sandbox
        .ssh(
            host,
            "mv /usr/bin/systemd-analyze /usr/bin/systemd-analyze.real && \
             printf '#!/bin/sh\\necho \"$*\" >> /run/analyze.log\\nexec /usr/bin/systemd-analyze.real \"$@\"\\n' > /usr/bin/systemd-analyze && \
             chmod 0755 /usr/bin/systemd-analyze",
        )
        .success();
    let calls = || {
        sandbox
            .ssh(
                host,
                "cat /run/analyze.log 2>/dev/null | grep -c '^verify' || true",
            )
            .success()
            .stdout
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    host_report(
        sandbox
            .project(project.path())
            .deploy(host, Ship::Version("1.0.0"), &["--json"]),
    );
    assert_eq!(calls(), 1, "a new unit is verified");
    host_report(
        sandbox
            .project(project.path())
            .deploy(host, Ship::Version("1.0.1"), &["--json"]),
    );
    assert_eq!(calls(), 1, "the installed unit is not verified again");

    // systemd-analyze exits 0 on this bad value; the host still refuses it, and 1.0.1 serves on.
    std::fs::create_dir(project.path().join("templates")).unwrap();
    std::fs::write(
        project.path().join("templates/service.hbs"),
        "[Unit]\nDescription={{description}}\n\n[Service]\nExecStart={{exec_start}}\nLimitNOFILE=lots\n",
    )
    .unwrap();
    let before = host_state(&sandbox, host);
    let deploy_bad = |verbose: &[&str]| {
        let dir = project.path().to_str().unwrap();
        let args = [
            &["-C", dir][..],
            verbose,
            &["deploy", host, "--version-override", "1.0.2"],
        ]
        .concat();
        sandbox.shipit(&args).run().failure(5)
    };
    // A short error: the host, the part of the step that failed, systemd's reason, a fix.
    let run = deploy_bad(&[])
        .stderr_has("Failed to parse resource value, ignoring: lots")
        .stderr_has("verifying the unit failed on t-verify")
        .stderr_has("help: ");
    assert!(run.stderr.lines().count() <= 15, "{}", run.stderr);
    assert!(!run.stderr.contains("set -eu"), "{}", run.stderr);
    assert_eq!(calls(), 2);
    // -v adds the script that failed.
    deploy_bad(&["-v"])
        .stderr_has("set -eu")
        .stderr_has("systemd-analyze verify $verify_flags")
        .stderr_has("verify_flags='--man=no --generators=no --recursive-errors=no'");
    assert_eq!(calls(), 3);
    assert_eq!(health(&sandbox, host)["version"], "1.0.1");
    let after = host_state(&sandbox, host);
    let unchanged = |state: &str| {
        state
            .lines()
            // The refused release and its upload come and go, touching their directories; the
            // deploy log gains the failed deploy's line.
            .filter(|l| {
                !l.contains("releases/1.0.2")
                    && !l.contains(".shipit/log")
                    && !l.contains(".shipit/uploads")
                    && !l.starts_with("opt/hello-go/releases d ")
                    && !l.starts_with("opt/hello-go/.shipit d ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(unchanged(&before), unchanged(&after));
}

/// A built package changed afterwards — a second `./hello-go` appended, a device node, a file
/// its manifest does not list — is refused before anything is sent: the host keeps exactly
/// what it had (no release unpacked, nothing switched), and the running release serves on.
fn altered_packages_are_refused_before_anything_reaches_the_host() {
    let host = "t-altered";
    let sandbox = Sandbox::up(&[host]);
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();
    let built = build(project.path(), "2.0.0");
    let before = host_state(&sandbox, host);
    let dir = tempfile::tempdir().unwrap();
    let script: &[u8] = b"#!/bin/sh\nexec sleep 1000\n";
    let cases = [
        (
            ("./hello-go", tar::EntryType::Regular, script),
            "entry \"./hello-go\" is another name for hello-go",
        ),
        (
            ("disk", tar::EntryType::Block, b""),
            "entry \"disk\" is a device node",
        ),
        (
            ("extra.txt", tar::EntryType::Regular, b"x"),
            "entry \"extra.txt\" is not listed in manifest.json",
        ),
    ];
    for ((name, kind, data), why) in cases {
        let package = dir.path().join("altered.tar.gz");
        with_entry(&built, &package, name, kind, data);
        sandbox
            .project(project.path())
            .deploy(host, Ship::Package(&package), &[])
            .failure(2)
            .stderr_has(why)
            .stderr_has("help: build the package again");
        assert_eq!(
            before,
            host_state(&sandbox, host),
            "{name}: the host changed"
        );
        assert_eq!(health(&sandbox, host)["version"], "1.0.0");
    }
}

/// A copy of the package `from` at `to` with one more entry after those shipit wrote, named
/// exactly `name` (as a tool appending to the archive writes it).
fn with_entry(from: &Path, to: &Path, name: &str, kind: tar::EntryType, data: &[u8]) {
    let file = std::fs::File::open(from).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let gzip = flate2::write::GzEncoder::new(
        std::fs::File::create(to).unwrap(),
        flate2::Compression::default(),
    );
    let mut appended = tar::Builder::new(gzip);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        appended.append(&header, &mut entry).unwrap();
    }
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o755);
    header.set_size(data.len() as u64);
    header.set_cksum();
    appended.append(&header, data).unwrap();
    appended.into_inner().unwrap().finish().unwrap();
}

/// The host unpacks only the names shipit checked, with no owner from the archive and no file
/// over another, and checks the binary that came out before anything else: a tar there that
/// unpacks another binary is caught, the release and its upload are deleted, and the running
/// release serves on.
fn the_host_unpacks_only_what_shipit_checked() {
    let host = "t-unpack";
    let sandbox = Sandbox::up(&[host]);
    // A tar that logs its arguments and, once /run/tar.swap exists, swaps the binary.
    sandbox
        .ssh(
            host,
            r#"mv /usr/bin/tar /usr/bin/tar.real && cat > /usr/bin/tar <<'EOF' && chmod 0755 /usr/bin/tar
#!/bin/sh
echo "$*" >> /run/tar.log
/usr/bin/tar.real "$@" || exit
[ -e /run/tar.swap ] || exit 0
while [ $# -gt 0 ]; do
    [ "$1" != -C ] || dir=$2
    shift
done
echo swapped > "$dir/hello-go"
EOF"#,
        )
        .success();
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();
    let log = sandbox.ssh(host, "cat /run/tar.log").success().stdout;
    assert!(log.starts_with("-x -k -z -f "), "{log}");
    assert!(
        log.ends_with(" --no-same-owner -- manifest.json config.yaml hello-go hello-go.service\n"),
        "{log}"
    );

    sandbox.ssh(host, "touch /run/tar.swap").success();
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("2.0.0"), &[])
        .failure(5)
        .stderr_has("unpacking the release failed on t-unpack (exit status 65)")
        .stderr_has("the hello-go binary unpacked here has sha256 ")
        .stderr_has("the release and its upload were deleted")
        .stderr_has("help: deploy again");
    assert_eq!(health(&sandbox, host)["version"], "1.0.0");
    let releases = sandbox
        .ssh(host, "ls -A /opt/hello-go/releases")
        .success()
        .stdout;
    assert!(
        releases.lines().all(|r| r.starts_with("1.0.0-")),
        "{releases}"
    );
}

fn host_keys_are_checked_like_openssh() {
    let host = "t-keys";
    let sandbox = Sandbox::up(&[host]);
    let dir = tempfile::tempdir().unwrap();
    let config = private_ssh_config(dir.path(), &sandbox.state_dir().join("id_ed25519"));
    let address = sandbox.address(host);
    let target = format!("root@{address}");
    let project = example("hello-go");
    let status = |extra: &[&str]| {
        let mut args = vec![
            "-C",
            project.to_str().unwrap(),
            "status",
            &target,
            "-F",
            config.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        sandbox.shipit(&args).run()
    };

    // Unknown: refused with the fingerprint; nothing is written.
    let known_hosts = dir.path().join("known_hosts");
    status(&[])
        .failure(4)
        .stderr_has("is not known: SHA256:")
        .stderr_has("--accept-new-host-key");
    assert!(!known_hosts.exists());

    // accept-new records it, and from then on it is simply known.
    status(&["--accept-new-host-key"]).success();
    let recorded = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(
        recorded.starts_with(&format!("{address} ssh-ed25519 ")),
        "{recorded}"
    );
    status(&[]).success();

    // Changed: refused, even when accepting new keys.
    let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkQ2UGPUk2fEuqZsP4Og9NRQ5ETlwNZUdXoyCV4ZvWw";
    std::fs::write(&known_hosts, format!("{address} {other}\n")).unwrap();
    status(&["--accept-new-host-key"])
        .failure(4)
        .stderr_has("has CHANGED")
        .stderr_has("known_hosts:1");
}

fn non_root_users_deploy_through_sudo() {
    let host = "t-sudo";
    let sandbox = Sandbox::up(&[host]);
    let pubkey = std::fs::read_to_string(sandbox.state_dir().join("id_ed25519.pub")).unwrap();
    let setup = format!(
        "set -e\n\
         for u in deploy pwuser; do\n\
           useradd --create-home --shell /bin/sh $u\n\
           install -d -m 700 -o $u -g $u /home/$u/.ssh\n\
           echo '{}' > /home/$u/.ssh/authorized_keys\n\
           chown $u:$u /home/$u/.ssh/authorized_keys; chmod 600 /home/$u/.ssh/authorized_keys\n\
         done\n\
         echo 'deploy ALL=(root) NOPASSWD: ALL' > /etc/sudoers.d/deploy\n\
         echo 'pwuser ALL=(root) ALL' > /etc/sudoers.d/pwuser\n\
         chmod 440 /etc/sudoers.d/deploy /etc/sudoers.d/pwuser\n",
        pubkey.trim()
    );
    sandbox.ssh(host, &setup).success();

    let project = project_copy("hello-go");
    let address = sandbox.address(host);
    let mut config = std::fs::read_to_string(project.path().join("shipit.toml")).unwrap();
    for user in ["deploy", "pwuser"] {
        config.push_str(&format!(
            "\n[hosts.as-{user}]\naddress = \"{address}\"\nuser = \"{user}\"\n"
        ));
    }
    std::fs::write(project.path().join("shipit.toml"), config).unwrap();
    let ssh_config = sandbox_ssh_config(&sandbox, project.path());

    let ssh_config = ssh_config.to_str().unwrap();
    sandbox
        .project(project.path())
        .shipit(&[
            "deploy",
            "as-deploy",
            "-F",
            ssh_config,
            "--version-override",
            "1.0.0",
        ])
        .run()
        .success();
    assert_eq!(health(&sandbox, host)["version"], "1.0.0");
    sandbox
        .project(project.path())
        .shipit(&[
            "deploy",
            "as-pwuser",
            "-F",
            ssh_config,
            "--version-override",
            "1.0.1",
        ])
        .run()
        .failure(5)
        .stderr_has("passwordless sudo");
    assert_eq!(health(&sandbox, host)["version"], "1.0.0");
}

fn bad_destinations_fail_before_connecting() {
    let project = example("hello-go");
    let dir = project.to_str().unwrap();
    for (host, message) in [
        ("-oProxyCommand=touch /tmp/pwned", "invalid host"),
        ("root@host;rm -rf /", "invalid host"),
        ("h:99999", "invalid port"),
    ] {
        shipit(&[
            "-C",
            dir,
            "deploy",
            "--package",
            "/nonexistent.tar.gz",
            "--",
            host,
        ])
        .run()
        .failure(2)
        .stderr_has(message);
    }
    // Nothing listens on port 1 of loopback.
    shipit(&["-C", dir, "status", "-F", "/dev/null", "127.0.0.1:1"])
        .run()
        .failure(4)
        .stderr_has("cannot reach 127.0.0.1:1");
}

/// With no HOST, every command talks to the sandbox host; where none was booted it says so, and
/// how to go on, before building anything.
fn no_host_and_no_sandbox_says_so_before_building() {
    let project = example("hello-go");
    let dir = project.to_str().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let state = empty.path().join("sandbox");
    let state = state.to_str().unwrap();
    // status reports each host it could not reach, and exits as for a connection.
    for (command, code) in [
        (&["deploy", "--version-override", "1.0.0"][..], 2),
        (&["status"], 4),
    ] {
        let run = shipit(&[&["-C", dir][..], command].concat())
            .env("SHIPIT_SANDBOX_DIR", state)
            .run()
            .failure(code)
            .stderr_has("there is no sandbox host here: none was booted (")
            .stderr_has("help: name a host (user@server, a [hosts] name or an ssh alias), or boot a local one with `");
        assert!(!run.stderr.contains("Building"), "{}", run.stderr);
        assert!(!run.stderr.contains("cannot resolve"), "{}", run.stderr);
    }
}

/// libssh2 offers only the agent's first key unless asked for each: shipit tries them all.
fn every_agent_identity_is_tried() {
    let host = "t-agent";
    let sandbox = Sandbox::up(&[host]);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(10, || socket.exists()), "ssh-agent did not start");
    let stranger = dir.path().join("stranger");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(made.success());
    // The key the host does not know goes in first.
    for key in [stranger.clone(), sandbox.state_dir().join("id_ed25519")] {
        let added = std::process::Command::new("ssh-add")
            .arg("-q")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &socket)
            .status()
            .unwrap();
        assert!(added.success());
    }
    // No IdentityFile reaches shipit: only the agent can get it in.
    let config = dir.path().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host *\n  UserKnownHostsFile {}\n",
            sandbox.state_dir().join("known_hosts").display()
        ),
    )
    .unwrap();
    let target = format!("root@{}", sandbox.address(host));
    let project = example("hello-go");
    let status = |sock: Option<&Path>| {
        let mut run = sandbox.shipit(&[
            "-C",
            project.to_str().unwrap(),
            "status",
            &target,
            "-F",
            config.to_str().unwrap(),
        ]);
        run = match sock {
            Some(s) => run.env("SSH_AUTH_SOCK", s.to_str().unwrap()),
            None => run.env_remove("SSH_AUTH_SOCK"),
        };
        run.run()
    };
    status(Some(&socket)).success();
    status(None)
        .failure(4)
        .stderr_has("refused authentication as root; tried:");
    let _ = agent.kill();
    let _ = agent.wait();
}

/// Descriptions and environment values reach the service exactly as written, whatever they hold:
/// systemd itself reads the installed unit and env file back on the host.
fn values_reach_the_service_exactly_as_written() {
    let host = "t-escape";
    let sandbox = Sandbox::up(&[host]);
    let project = variant("", "[\"--port\", \"8080\"]");
    let description = "Svc \"quoted\" 100% ends in a backslash \\";
    let unit_env = [
        ("TRAILING", "ends in a backslash \\"),
        ("SINGLE", "'single quoted'"),
        ("DOUBLE", "\"double\""),
        ("SHELLISH", "$HOME ${USER} `id` $(id)"),
        ("PERCENT", "100% %n %%"),
        ("HASH", "a #b ;c"),
        ("SPACES", "  padded  "),
    ];
    let host_env = [
        ("H_TRAILING", "host value\\"),
        ("H_NEXT", "must survive"),
        ("H_SINGLE", "'kept'"),
        ("H_MIX", "a\\b $x `y` 'z' \"w\""),
        ("H_SPACES", " x "),
    ];
    let file_env = [
        ("F_TRAILING", "file value\\"),
        ("F_NEXT", "after it"),
        ("F_SINGLE", "'kept too'"),
        ("F_DOUBLE", "\"and these\""),
        ("F_SPACES", "  lead and trail  "),
        ("F_EQUALS", "a=b"),
    ];
    let env_file: String = file_env
        .iter()
        .map(|(k, v)| format!("{k}={v}\n# a comment\n\n"))
        .collect();
    std::fs::write(project.path().join(".env.prod"), env_file).unwrap();
    let toml_string = |s: &str| serde_json::to_string(s).unwrap();
    let lines = |pairs: &[(&str, &str)]| -> String {
        pairs
            .iter()
            .map(|(k, v)| format!("{k} = {}\n", toml_string(v)))
            .collect()
    };
    let config = std::fs::read_to_string(project.path().join("shipit.toml"))
        .unwrap()
        .replacen(
            "[service]\n",
            &format!(
                "[service]\ndescription = {}\nenv_file = \".env.prod\"\n",
                toml_string(description)
            ),
            1,
        )
        .replacen(
            "[service.env]\n",
            &format!("[service.env]\n{}", lines(&unit_env)),
            1,
        );
    let config = format!(
        "{config}\n[hosts.box]\naddress = \"{}\"\nuser = \"root\"\n\n[hosts.box.env]\n{}",
        sandbox.address(host),
        lines(&host_env)
    );
    std::fs::write(project.path().join("shipit.toml"), config).unwrap();
    let ssh_config = sandbox_ssh_config(&sandbox, project.path());
    sandbox
        .project(project.path())
        .shipit(&[
            "deploy",
            "box",
            "-F",
            ssh_config.to_str().unwrap(),
            "--version-override",
            "1.0.0",
        ])
        .run()
        .success();

    // What the service got, from systemd's reading of Environment= and the EnvironmentFile.
    let environ = service_environ(&sandbox, host);
    let got: std::collections::BTreeMap<&str, &str> =
        environ.lines().filter_map(|l| l.split_once('=')).collect();
    for (key, value) in unit_env.iter().chain(&host_env).chain(&file_env) {
        assert_eq!(got.get(key), Some(value), "{key} in\n{environ}");
    }
    let unit_level = show(&sandbox, host, "hello-go.service", "Environment");
    for (key, _) in &unit_env {
        assert!(unit_level.contains(&format!("{key}=")), "{unit_level}");
    }
    assert_eq!(
        show(&sandbox, host, "hello-go.service", "Description"),
        description
    );
    let after = show(&sandbox, host, "hello-go.service", "After");
    assert!(after.contains("network-online.target"), "{after}");
    let verify = sandbox
        .ssh(
            host,
            "systemd-analyze verify --man=no /etc/systemd/system/hello-go.service 2>&1",
        )
        .success()
        .stdout;
    assert_eq!(verify, "", "systemd-analyze verify complained");
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(Hosts, 52, go_service_lifecycle),
        crate::test!(Hosts, 61, rust_service_lifecycle),
        crate::test!(Hosts, 49, services_with_c_code_deploy_and_answer_health),
        crate::test!(Hosts, 68, failing_releases_roll_back_or_stop),
        crate::test!(
            Hosts,
            45,
            a_health_answer_that_trickles_fails_within_its_timeout
        ),
        crate::test!(Hosts, 42, the_host_verifies_each_new_unit_once),
        crate::test!(
            Hosts,
            30,
            altered_packages_are_refused_before_anything_reaches_the_host
        ),
        crate::test!(Hosts, 30, the_host_unpacks_only_what_shipit_checked),
        crate::test!(Hosts, 3, host_keys_are_checked_like_openssh),
        crate::test!(Hosts, 35, non_root_users_deploy_through_sudo),
        crate::test!(Nothing, 0, bad_destinations_fail_before_connecting),
        crate::test!(Nothing, 0, no_host_and_no_sandbox_says_so_before_building),
        crate::test!(Hosts, 3, every_agent_identity_is_tried),
        crate::test!(Hosts, 21, values_reach_the_service_exactly_as_written),
    ]
}
