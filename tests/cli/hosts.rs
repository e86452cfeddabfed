//! Servers as they are: Debian 11, 12 and 13 (systemd 247, 252 and 257), a host without systemd,
//! an sshd that refuses TCP forwarding and a full disk, each on a real sandbox host.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shipit::systemd::Section;

use crate::support::app::*;
use crate::support::sandbox::Sandbox;
use crate::support::*;

/// hello-go with a quick health pace and a hardening directive systemd 247 does not know.
fn hardened(exec_args: &str) -> tempfile::TempDir {
    let project = variant("LOG_LEVEL = \"info\"", exec_args);
    let path = project.path().join("shipit.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{config}\n[service.hardening]\nPrivateIPC = \"yes\"\n"),
    )
    .unwrap();
    project
}

/// The packages every host of the matrix gets, built once.
struct Packages {
    first: PathBuf,
    second: PathBuf,
    crashing: PathBuf,
    abandoned: PathBuf,
    via_sudo: PathBuf,
}

/// Deploy, health, kill -9 → restart, a second release, a crashing release rolled back, the
/// dead-man timer and a non-root user with sudo: on bullseye, bookworm and trixie at once.
fn the_lifecycle_runs_on_every_debian_release() {
    let hosts = a_host_per_release("m");
    let good = hardened("[\"--port\", \"8080\"]");
    let crashing = hardened("[\"--port\", \"not-a-port\"]");
    let packages = std::thread::scope(|scope| {
        let build = |project: &Path, version: &'static str| {
            let project = project.to_path_buf();
            scope.spawn(move || build(&project, version))
        };
        let first = build(good.path(), "1.0.0");
        let second = build(good.path(), "1.1.0");
        let crashing = build(crashing.path(), "2.0.0");
        let abandoned = build(good.path(), "3.0.0");
        let via_sudo = build(good.path(), "1.2.0");
        Packages {
            first: first.join().unwrap(),
            second: second.join().unwrap(),
            crashing: crashing.join().unwrap(),
            abandoned: abandoned.join().unwrap(),
            via_sudo: via_sudo.join().unwrap(),
        }
    });
    std::thread::scope(|scope| {
        for (sandbox, host, systemd) in &hosts {
            let (packages, good, crashing) = (&packages, good.path(), crashing.path());
            scope.spawn(move || {
                lifecycle(sandbox, host, *systemd, packages, good, crashing);
            });
        }
    });
}

fn lifecycle(
    sandbox: &Sandbox,
    host: &str,
    systemd: u32,
    packages: &Packages,
    good: &Path,
    crashing: &Path,
) {
    let unit = "hello-go.service";
    let run = sandbox
        .project(good)
        .deploy(host, Ship::Package(&packages.first), &["--json"])
        .success();
    let first: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let first = &first["hosts"][0];
    assert_eq!(first["uploaded"], true, "{host}");
    assert_eq!(health_version(sandbox, host), "1.0.0", "{host}");
    for (property, value) in [
        ("LimitNOFILE", "65536"),
        ("Restart", "on-failure"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("User", "hello-go"),
    ] {
        assert_eq!(show(sandbox, host, unit, property), value, "{host}");
    }
    let owner = sandbox
        .ssh(host, "stat -L -c '%U %a' /opt/hello-go/current/hello-go")
        .success()
        .stdout;
    assert_eq!(owner.trim(), "root 755", "{host}");

    // PrivateIPC= came with systemd 248: bullseye gets the unit without it, and says so.
    let notice =
        format!("{host}: PrivateIPC= needs systemd 248, this host has {systemd}: left out");
    let installed = sandbox
        .ssh(host, "cat /etc/systemd/system/hello-go.service")
        .success()
        .stdout;
    if systemd < 248 {
        assert!(run.stderr.contains(&notice), "{host}:\n{}", run.stderr);
        assert!(
            installed.contains("\n# left out (needs systemd 248): PrivateIPC=yes\n"),
            "{host}:\n{installed}"
        );
    } else {
        assert!(!run.stderr.contains("left out"), "{host}:\n{}", run.stderr);
        assert!(installed.contains("\nPrivateIPC=yes\n"), "{installed}");
        assert_eq!(show(sandbox, host, unit, "PrivateIPC"), "yes", "{host}");
    }
    // The installed unit passes the host's own systemd-analyze, with the flags it has.
    let flags = shipit::systemd::verify_flags(systemd).join(" ");
    let verified = sandbox
        .ssh(
            host,
            &format!("systemd-analyze verify {flags} /etc/systemd/system/hello-go.service 2>&1"),
        )
        .success();
    assert_eq!(verified.stdout, "", "{host}");

    // A dry run says the same, in the plan too, and shows the unit this host would get.
    let plan = sandbox
        .project(good)
        .deploy(host, Ship::Package(&packages.second), &["--dry-run"])
        .success();
    assert!(
        plan.stdout.contains(&format!(
            "on {host} (systemd {systemd}): nothing below has run"
        )),
        "{}",
        plan.stdout
    );
    assert_eq!(
        plan.stderr.contains(&notice),
        systemd < 248,
        "{}",
        plan.stderr
    );
    assert_eq!(
        plan.stdout.contains(&format!("# {notice}")),
        systemd < 248,
        "{}",
        plan.stdout
    );

    // systemd brings a killed service back.
    let pid = show(sandbox, host, unit, "MainPID");
    sandbox.ssh(host, &format!("kill -9 {pid}")).success();
    let restarted = wait_for(20, || {
        let now = show(sandbox, host, unit, "MainPID");
        now != pid && now != "0" && show(sandbox, host, unit, "ActiveState") == "active"
    });
    assert!(
        restarted,
        "systemd did not restart {unit} on {host} after kill -9"
    );
    assert_eq!(show(sandbox, host, unit, "NRestarts"), "1", "{host}");

    // A second release switches `current` and keeps the first as previous.
    let run = sandbox
        .project(good)
        .deploy(host, Ship::Package(&packages.second), &["--json"])
        .success();
    let second: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let second = &second["hosts"][0];
    assert_eq!(health_version(sandbox, host), "1.1.0", "{host}");
    assert_eq!(second["previous"], first["release"], "{host}");
    let link = sandbox
        .ssh(host, "readlink /opt/hello-go/current")
        .success()
        .stdout;
    assert_eq!(
        link.trim(),
        format!("releases/{}", second["release"].as_str().unwrap())
    );

    // A release that crashes is rolled back.
    sandbox
        .project(crashing)
        .deploy(host, Ship::Package(&packages.crashing), &[])
        .failure(6)
        .stderr_has("rolled back")
        .stderr_has("journal of hello-go.service");
    assert_eq!(health_version(sandbox, host), "1.1.0", "{host}");

    // shipit dies right after the restart: the dead-man timer puts 1.1.0 back by itself.
    let dir = good.to_str().unwrap();
    let abandoned = packages.abandoned.to_str().unwrap();
    let mut running = Running::start(
        sandbox,
        &[
            "-C",
            dir,
            "deploy",
            host,
            "--package",
            abandoned,
            "--confirm-timeout",
            "30s",
        ],
    );
    running.wait_for_line("Starting");
    std::thread::sleep(Duration::from_secs(2));
    running.signal(libc::SIGKILL);
    running.finish();
    assert!(
        wait_for(10, || health_version(sandbox, host) == "3.0.0"),
        "3.0.0 never started on {host}"
    );
    assert!(
        // The timer waits until the killed deploy's lock has gone 45 s without a refresh.
        wait_for(120, || health_version(sandbox, host) == "1.1.0"),
        "{host} did not roll back by itself"
    );
    sandbox
        .ssh(host, "ls /opt/hello-go/releases/3.0.0-*/.shipit-failed")
        .success();

    // A non-root user deploys through sudo.
    let ssh_config = add_sudo_user(sandbox, host, "deploy");
    let as_deploy = format!("deploy@{}", sandbox.address(host));
    sandbox
        .project(good)
        .deploy(
            &as_deploy,
            Ship::Package(&packages.via_sudo),
            &["-F", ssh_config.to_str().unwrap()],
        )
        .success();
    assert_eq!(health_version(sandbox, host), "1.2.0", "{host}");
}

/// Every directive in shipit's table is known, in its section, to exactly the releases the table
/// says: the real systemd-analyze of each release reports the others as unknown.
fn the_directive_table_matches_each_systemd_release() {
    let script = || {
        let mut script = String::from("set -e\nmkdir -p /tmp/units\ncd /tmp/units\n");
        for d in shipit::systemd::DIRECTIVES {
            let name = d.name;
            let (file, body) = match d.section {
                Section::Socket => (
                    format!("d-{name}.socket"),
                    format!("[Socket]\\nListenStream=127.0.0.1:9\\n{name}=\\n"),
                ),
                section => (
                    format!("d-{name}.service"),
                    format!(
                        "[{}]\\n{name}=\\n[Service]\\nExecStart=/bin/true\\n",
                        section.name()
                    ),
                ),
            };
            script.push_str(&format!("printf '{body}' > {file}\n"));
        }
        script.push_str("SYSTEMD_COLORS=0 systemd-analyze verify d-*.service d-*.socket 2>&1 | grep -E 'Unknown (key|lvalue)' || true\n");
        script
    };
    let names: Vec<&str> = shipit::systemd::DIRECTIVES.iter().map(|d| d.name).collect();
    for (sandbox, host, systemd) in a_host_per_release("d") {
        // Each host runs the release it was asked for, and keeps it.
        let list = sandbox.shipit(&["sandbox", "list"]).run().success().stdout;
        let release = host.trim_start_matches("d-");
        assert!(list.contains(&format!("running  {release}\n")), "{list}");
        let other = if release == "trixie" {
            "bullseye"
        } else {
            "trixie"
        };
        sandbox
            .shipit(&["sandbox", "up", &host, "--release", other])
            .run()
            .failure(2)
            .stderr_has(&format!("{host} is running {release}, not {other}"));
        let out = sandbox.ssh(&host, &script()).success().stdout;
        let mut unknown: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| out.contains(&format!("'{name}'")))
            .collect();
        unknown.sort_unstable();
        let newer = directives_newer_than(systemd);
        assert_eq!(unknown, newer, "systemd {systemd} on {host}:\n{out}");
    }
}

/// A host whose PID 1 is not systemd is refused at the first look, and nothing is written.
fn a_host_without_systemd_is_refused_and_untouched() {
    let host = "t-nosd";
    let sandbox = Sandbox::up_with(&[host], &["--init", "sshd"]);
    let list = sandbox.shipit(&["sandbox", "list"]).run().success().stdout;
    assert!(list.contains("bookworm without systemd"), "{list}");
    let listing = || {
        sandbox
            .ssh(
                host,
                "find /opt /etc /var/lib /srv /usr/local /tmp -xdev -printf '%p %s %T@\\n' 2>/dev/null | sort",
            )
            .success()
            .stdout
    };
    let before = listing();
    let project = example("hello-go");
    sandbox
        .shipit(&["-C", project.to_str().unwrap(), "deploy", host])
        .run()
        .failure(2)
        .stderr_has("t-nosd does not run systemd (PID 1 is sshd)")
        .stderr_has("shipit generate supervisor");
    assert_eq!(before, listing(), "the refused deploy wrote on the host");
    // Asking for the same host with systemd is refused, not quietly ignored.
    sandbox
        .shipit(&["sandbox", "up", host, "--init", "systemd"])
        .run()
        .failure(2)
        .stderr_has("t-nosd is running bookworm without systemd, not bookworm");
}

/// With `AllowTcpForwarding no` the health probe cannot tunnel: shipit says so once per
/// connection and probes from the host, so deploys, rollbacks and status tell the truth, and a
/// /health that trickles fails each probe when its timeout is up, as through a tunnel.
fn health_probes_run_on_the_host_when_sshd_refuses_tunnels() {
    let host = "t-notcp";
    let sandbox = Sandbox::up(&[host]);
    sandbox
        .ssh(
            host,
            "echo 'AllowTcpForwarding no' >> /etc/ssh/sshd_config && systemctl reload ssh",
        )
        .success();
    // OpenSSH itself is refused a tunnel now (once sshd is back from reloading).
    let refused = wait_for(10, || {
        let tunnel = std::process::Command::new("ssh")
            .arg("-F")
            .arg(sandbox.ssh_config())
            .args(["-o", "BatchMode=yes", "-W", "127.0.0.1:22", host])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&tunnel.stderr).contains("administratively prohibited")
    });
    assert!(refused, "sshd on {host} still forwards TCP");

    let notice = "sshd on t-notcp refuses TCP forwarding (AllowTcpForwarding no): probing from \
                  the host itself with curl";
    let good = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    let unhealthy = variant("HELLO_HEALTH_DOWN = \"1\"", "[\"--port\", \"8080\"]");
    let run = sandbox
        .project(good.path())
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();
    assert_eq!(run.stderr.matches(notice).count(), 1, "{}", run.stderr);
    assert_eq!(health_version(&sandbox, host), "1.0.0");

    // The bad release fails its probes and the good one passes them again: exit 6, not 7.
    let run = sandbox
        .project(unhealthy.path())
        .deploy(host, Ship::Version("2.0.0"), &[])
        .failure(6)
        .stderr_has("status 503")
        .stderr_has("rolled back: 1.0.0-");
    assert_eq!(run.stderr.matches(notice).count(), 1, "{}", run.stderr);
    assert_eq!(health_version(&sandbox, host), "1.0.0");

    // Headers at once, then a byte a second: the host's tool is stopped when the probe's 2 s
    // are up, and the probe says so in shipit's words, whichever tool it was.
    let slow = variant("HELLO_HEALTH_SLOW = \"1\"", "[\"--port\", \"8080\"]");
    build_shared_packages(slow.path(), &["3.0.0"]);
    let started = Instant::now();
    sandbox
        .project(slow.path())
        .deploy(host, Ship::Version("3.0.0"), &[])
        .failure(6)
        .stderr_has("failed 4 probes; last: no whole answer within 2s")
        .stderr_has("rolled back: 1.0.0-");
    // The settle, 4 probes of 2 s 500 ms apart and the rollback, on a busy machine; the whole
    // answer would have taken 100 s a probe.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "the deploy took {took:?}");
    assert_eq!(health_version(&sandbox, host), "1.0.0");

    let status = sandbox
        .project(good.path())
        .shipit(&["status", host, "--json"])
        .run()
        .success();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status[0]["version"], "1.0.0");
    assert_eq!(status[0]["health"], "200 ok", "{status}");
}

/// /opt/hello-go on a small tmpfs: a package that cannot fit is refused before a byte is sent;
/// a disk that fills mid-upload or mid-unpack loses only what the deploy wrote.
fn a_full_disk_is_refused_up_front_and_enospc_leaves_the_host_as_it_was() {
    let host = "t-disk";
    let sandbox = Sandbox::up(&[host]);
    sandbox
        .ssh(
            host,
            "mkdir -p /opt/hello-go && mount -t tmpfs -o size=56M tmpfs /opt/hello-go",
        )
        .success();
    let project = variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();
    let kept = || {
        sandbox
            .ssh(
                host,
                "ls -A /opt/hello-go /opt/hello-go/releases /opt/hello-go/.shipit/uploads; \
                 systemctl show hello-go -p MainPID",
            )
            .success()
            .stdout
    };
    let before = kept();
    add_filler(project.path(), 16);
    let package = build(project.path(), "2.0.0");
    let deploy_it = || {
        sandbox
            .project(project.path())
            .deploy(host, Ship::Package(&package), &[])
    };

    // 20 MB left for a package that needs about twice that, unpacked beside its upload.
    sandbox
        .ssh(
            host,
            "free=$(df -Pm /opt/hello-go | awk 'NR == 2 { print $4 }') && \
             dd if=/dev/zero of=/opt/hello-go/filler bs=1M count=$((free - 20)) 2>/dev/null",
        )
        .success();
    let run = deploy_it().failure(5);
    let refusal = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error: t-disk: /opt/hello-go has "))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    let numbers: Vec<u64> = refusal
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        refusal.contains(" MB free, this release needs ")
            && refusal.ends_with(" MB; nothing was sent")
            && numbers.len() == 2
            && (19..=21).contains(&numbers[0])
            && numbers[1] > 36,
        "{refusal}"
    );
    assert!(!run.stderr.contains("Uploaded"), "{}", run.stderr);
    sandbox.ssh(host, "rm /opt/hello-go/filler").success();
    assert_eq!(kept(), before);

    // The disk fills while the package streams in.
    sandbox
        .ssh(
            host,
            "systemd-run --quiet --unit=filler sh -c 'until ls /opt/hello-go/.shipit/uploads/*.partial \
             >/dev/null 2>&1; do sleep 0.005; done; dd if=/dev/zero of=/opt/hello-go/filler bs=1M \
             2>/dev/null; true'",
        )
        .success();
    let run = deploy_it().failure(5);
    let said = "error: t-disk: no space left in /opt/hello-go while uploading: the partial upload \
                was removed, the host is as it was";
    assert!(run.stderr.lines().any(|l| l == said), "{}", run.stderr);
    assert!(run.stderr.lines().count() <= 15, "{}", run.stderr);
    sandbox.ssh(host, "rm /opt/hello-go/filler").success();
    assert_eq!(kept(), before);

    // Out of inodes while unpacking: only as many left as the lock, the upload and one more.
    sandbox
        .ssh(
            host,
            "used=$(df -Pi /opt/hello-go | awk 'NR == 2 { print $3 }') && \
             mount -o remount,nr_inodes=$((used + 4)) /opt/hello-go",
        )
        .success();
    let run = deploy_it().failure(5);
    let said = "error: t-disk: no space left in /opt/hello-go while unpacking: the half-unpacked \
                release and its upload were removed, the host is as it was";
    assert!(run.stderr.lines().any(|l| l == said), "{}", run.stderr);
    sandbox
        .ssh(host, "mount -o remount,nr_inodes=100000 /opt/hello-go")
        .success();
    assert_eq!(kept(), before);
    assert_eq!(health_version(&sandbox, host), "1.0.0");
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(Hosts, 131, the_lifecycle_runs_on_every_debian_release),
        crate::test!(Hosts, 7, the_directive_table_matches_each_systemd_release),
        crate::test!(Hosts, 15, a_host_without_systemd_is_refused_and_untouched),
        crate::test!(
            Hosts,
            35,
            health_probes_run_on_the_host_when_sshd_refuses_tunnels
        ),
        crate::test!(
            Hosts,
            18,
            a_full_disk_is_refused_up_front_and_enospc_leaves_the_host_as_it_was
        ),
    ]
}
