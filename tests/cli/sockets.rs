//! Socket activation: the package carries the socket unit; the examples take the sockets systemd
//! passes (run under the real `systemd-socket-activate`) and finish the requests in flight on
//! SIGTERM, so a socket held across a restart loses no request; `deploy` with `listen` under load
//! refuses nothing, against the baseline: a plain restart under load, on a real host; and the
//! socket unit comes and goes as releases with and without `listen` follow each other, by deploy
//! and by rollback.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::app::{health_version, listening_variant, wait_for};
use crate::support::load::{Load, Outcome, Settings};
use crate::support::sandbox::Sandbox;
use crate::support::*;

/// A copy of example `name` with `listen` in its shipit.toml, built at 1.0.0 and 2.0.0.
struct Built {
    name: &'static str,
    project: tempfile::TempDir,
    _out: tempfile::TempDir,
    /// The packages and the binaries unpacked from them, 1.0.0 then 2.0.0.
    packages: [PathBuf; 2],
    binaries: [PathBuf; 2],
}

fn build_with_listen(name: &'static str, listen: &str) -> Built {
    let project = project_with_listen(name, listen);
    let out = tempfile::tempdir().unwrap();
    let build = |version: &str| {
        let run = Project::at(project.path())
            .shipit(&[
                "build",
                "--version-override",
                version,
                "--out-dir",
                out.path().to_str().unwrap(),
            ])
            .run()
            .success();
        let package = PathBuf::from(run.stdout.trim());
        let binary = out.path().join(format!("{name}-{version}"));
        std::fs::write(&binary, &package_map(&package)[name].data).unwrap();
        std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        (package, binary)
    };
    let (p1, b1) = build("1.0.0");
    let (p2, b2) = build("2.0.0");
    Built {
        name,
        project,
        _out: out,
        packages: [p1, p2],
        binaries: [b1, b2],
    }
}

/// Each example, from `listen` in shipit.toml to a restart that loses nothing.
fn check_example(name: &'static str) {
    let built = build_with_listen(name, r#"["127.0.0.1:8080"]"#);
    the_package_carries_the_socket_unit(&built);
    systemd_socket_activate_hands_it_the_sockets(&built);
    a_held_socket_loses_nothing_across_a_restart(&built);
}

fn hello_go_takes_the_socket_and_drains() {
    check_example("hello-go");
}

fn hello_rust_takes_the_socket_and_drains() {
    check_example("hello-rust");
}

/// `<app>.socket` sits beside `<app>.service` in the package, listed in the manifest, exactly
/// as `unit generate` renders it.
fn the_package_carries_the_socket_unit(built: &Built) {
    let name = built.name;
    let entries = read_package(&built.packages[0]);
    let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    let (service, socket) = (format!("{name}.service"), format!("{name}.socket"));
    let mut files = vec!["config.yaml", name, &service, &socket];
    files.sort();
    let expected: Vec<&str> = std::iter::once("manifest.json").chain(files).collect();
    assert_eq!(paths, expected);
    let entries = package_map(&built.packages[0]);
    assert_eq!(entries[&socket].mode, 0o644);
    let manifest: serde_json::Value =
        serde_json::from_slice(&entries["manifest.json"].data).unwrap();
    let listed = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == socket.as_str())
        .unwrap_or_else(|| panic!("{socket} is not in the manifest: {manifest}"));
    assert_eq!(listed["sha256"], sha256_of(&entries[&socket].data));

    let units = tempfile::tempdir().unwrap();
    let dir = format!("{}/", units.path().display());
    Project::at(built.project.path())
        .shipit(&["unit", "generate", "-o", &dir])
        .run()
        .success();
    for unit in [&service, &socket] {
        assert_eq!(
            String::from_utf8_lossy(&entries[unit].data),
            std::fs::read_to_string(units.path().join(unit)).unwrap(),
            "{unit}"
        );
    }
    let socket_text = String::from_utf8_lossy(&entries[&socket].data).into_owned();
    assert!(
        socket_text
            .lines()
            .any(|l| l == "ListenStream=127.0.0.1:8080"),
        "{socket_text}"
    );
}

fn sha256_of(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Under `systemd-socket-activate` (systemd's own tool, passing sockets as systemd does), the
/// binary answers on both sockets it is handed and never binds the port of its `--port`.
fn systemd_socket_activate_hands_it_the_sockets(built: &Built) {
    let (first, second, own) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut activate = Command::new("systemd-socket-activate");
    activate
        .args(["-l", &format!("127.0.0.1:{first}")])
        .args(["-l", &format!("127.0.0.1:{second}")])
        .arg(&built.binaries[0])
        .args(["--port", &own.to_string()]);
    let mut service = Service(spawn_logged(activate, built, dir.path(), &log));
    let (status, body) = http_get(first, "/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["version"], "1.0.0");
    let (status, body) = http_get(second, "/");
    assert_eq!(
        (status, body.trim()),
        (200, format!("hello from {} 1.0.0", built.name).as_str())
    );
    assert_eq!(
        TcpStream::connect(("127.0.0.1", own))
            .map_err(|e| e.kind())
            .err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "it listens on --port {own} too"
    );
    // systemd-socket-activate execs the service, so the signal reaches it directly.
    let status = terminate(&mut service);
    assert!(status.success(), "{status}: {}", read(&log));
    assert!(
        read(&log).contains(&format!(
            "listening on 127.0.0.1:{first}, 127.0.0.1:{second} (sockets from systemd)"
        )),
        "{}",
        read(&log)
    );
}

/// What a socket unit does across `systemctl restart`, by hand: the test holds the listening
/// socket, runs 1.0.0 on it, sends SIGTERM while a slow request is in flight and a load runs,
/// starts 2.0.0 on the same socket once 1.0.0 has exited. The slow request is answered by 1.0.0
/// before it exits, and no request of the load fails: those that came during the restart
/// waited in the socket's queue.
fn a_held_socket_loses_nothing_across_a_restart(built: &Built) {
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let logs = [dir.path().join("v1.log"), dir.path().join("v2.log")];
    let mut v1 = Service(spawn_logged(
        with_socket(&built.binaries[0], &socket),
        built,
        dir.path(),
        &logs[0],
    ));
    let (status, _) = http_get(address.port(), "/health");
    assert_eq!(status, 200, "{}", read(&logs[0]));

    // Sent before the thread that waits for its answer starts, and asked once: an answer from
    // 1.0.0 on this connection is one it gave before it exited, whoever wakes first after.
    let slow = send_get(address.port(), "/?delay=1500ms").unwrap();
    let slow = std::thread::spawn(move || read_answer(slow));
    let load = Load::start(
        address,
        Settings {
            rate: 400,
            ..Load::DEFAULT
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let status = terminate(&mut v1);
    let v2 = Service(spawn_logged(
        with_socket(&built.binaries[1], &socket),
        built,
        dir.path(),
        &logs[1],
    ));
    std::thread::sleep(Duration::from_millis(700));
    let report = load.stop();
    drop(v2);
    println!(
        "{}: restart on a held socket with a 1.5 s request in flight: {report}",
        built.name
    );

    assert!(
        status.success(),
        "1.0.0 exited with {status}: {}",
        read(&logs[0])
    );
    let (status, body) = slow
        .join()
        .unwrap()
        .expect("1.0.0 exited before answering its request in flight");
    assert_eq!(
        (status, body.trim()),
        (200, format!("hello from {} 1.0.0", built.name).as_str())
    );
    report.assert_none_failed();
    report.assert_versions_in_order("1.0.0", "2.0.0");
}

/// The service's command as systemd runs it with a socket: the socket as fd 3, `LISTEN_FDS=1`
/// and `LISTEN_PID` its own PID (set by the shell that then execs it, keeping the PID).
fn with_socket(binary: &Path, socket: &TcpListener) -> Command {
    let fd = socket.as_raw_fd();
    let mut command = Command::new("sh");
    command
        .args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""])
        .arg(binary)
        .args(["--port", &free_port().to_string()])
        .env("LISTEN_FDS", "1");
    // SAFETY: between fork and exec only dup2 and fcntl run, both async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            let moved = if fd == 3 {
                // dup2 onto itself would keep close-on-exec.
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if moved < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// Spawns `command` in the example's project (its config.yaml) with a state directory and its
/// output in `log`.
fn spawn_logged(mut command: Command, built: &Built, state: &Path, log: &Path) -> Child {
    let log = File::create(log).unwrap();
    command
        .current_dir(built.project.path())
        .env("STATE_DIRECTORY", state)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("run the service")
}

/// SIGTERM, and the exit status once the process has finished.
fn terminate(service: &mut Service) -> std::process::ExitStatus {
    let pid = libc::pid_t::try_from(service.0.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    service.0.wait().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The baseline socket activation is measured against: hello-go as it deploys today, binding its
/// own port, redeployed from 1.0.0 to 2.0.0 under a steady load of new connections. Between the
/// old process closing its socket and the new one opening its own, connections are refused;
/// the test prints how many (`--nocapture`; about a hundred, over a tenth of a second, here).
/// How many depends on timing, so what it asserts is what always holds: some were refused (else
/// the deploys with `listen` that refuse none would show nothing), 1.0.0 answered, then 2.0.0,
/// and every failure is a connection refused or reset, never a bad answer.
fn a_plain_restart_under_load_drops_connections() {
    let host = "t-plain";
    let sandbox = Sandbox::up(&[host]);
    let project = project_without_listen("hello-go");
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("1.0.0"), &[])
        .success();
    let address: SocketAddr = format!("{}:8080", sandbox.address(host)).parse().unwrap();
    let load = Load::start(address, Load::DEFAULT);
    std::thread::sleep(Duration::from_millis(500));
    sandbox
        .project(project.path())
        .deploy(host, Ship::Version("2.0.0"), &[])
        .success();
    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();
    let settings = Load::DEFAULT;
    println!(
        "a plain restart (hello-go without listen) under {} clients at up to {} requests/s, \
         redeployed 1.0.0 → 2.0.0: {report}",
        settings.clients, settings.rate
    );
    report.assert_versions_in_order("1.0.0", "2.0.0");
    let failures = report.failures();
    assert!(
        !failures.is_empty(),
        "a plain restart refused no connection, so socket activation has nothing to be \
         compared with: {report}"
    );
    for failure in failures {
        assert!(
            matches!(failure.outcome, Outcome::Refused | Outcome::Reset),
            "{failure:?}: {report}"
        );
    }
}

/// The rendered units on a real systemd, installed by hand: the socket unit listens with the kernel's whole queue, hello-go gets its socket
/// under the hardened service unit, and `systemctl restart` under the baseline's load refuses
/// nothing: 1.0.0 answers, then 2.0.0, and no request fails.
fn the_units_hold_the_socket_across_systemctl_restart() {
    let built = build_with_listen("hello-go", r#"["8080"]"#);
    let host = "t-socket";
    let sandbox = Sandbox::up(&[host]);
    let root = sandbox.rootfs(host);
    let entries = package_map(&built.packages[0]);
    for unit in ["hello-go.service", "hello-go.socket"] {
        std::fs::write(
            root.join("etc/systemd/system").join(unit),
            &entries[unit].data,
        )
        .unwrap();
    }
    for (version, binary) in ["1.0.0", "2.0.0"].iter().zip(&built.binaries) {
        let release = root.join("opt/hello-go/releases").join(version);
        std::fs::create_dir_all(&release).unwrap();
        std::fs::copy(binary, release.join("hello-go")).unwrap();
        std::fs::copy(
            built.project.path().join("config.yaml"),
            release.join("config.yaml"),
        )
        .unwrap();
    }
    sandbox
        .ssh(
            host,
            "set -e\n\
             useradd --system --user-group --no-create-home --shell /usr/sbin/nologin hello-go\n\
             install -d -m 0750 -o hello-go -g hello-go /var/lib/hello-go\n\
             ln -sfn releases/1.0.0 /opt/hello-go/current\n\
             systemctl daemon-reload\n\
             systemctl enable --now --quiet hello-go.socket\n\
             systemctl enable --now --quiet hello-go.service\n",
        )
        .success();
    assert!(
        wait_for(10, || health_version(&sandbox, host) == "1.0.0"),
        "{}",
        sandbox
            .ssh(
                host,
                "journalctl -u hello-go.service -u hello-go.socket -o cat --no-pager"
            )
            .stdout
    );
    // The queue is as long as the kernel allows: net.core.somaxconn, not systemd's default.
    let queue = sandbox
        .ssh(
            host,
            "ss -ltnH 'sport = :8080' | awk '{print $3}'; cat /proc/sys/net/core/somaxconn",
        )
        .success()
        .stdout;
    let lines: Vec<&str> = queue.lines().collect();
    assert_eq!(lines.len(), 2, "{queue}");
    assert_eq!(
        lines[0], lines[1],
        "the listening socket's queue, then somaxconn: {queue}"
    );

    let address: SocketAddr = format!("{}:8080", sandbox.address(host)).parse().unwrap();
    let load = Load::start(address, Load::DEFAULT);
    std::thread::sleep(Duration::from_millis(500));
    sandbox
        .ssh(
            host,
            "ln -sfn releases/2.0.0 /opt/hello-go/.current.new && \
             mv -T /opt/hello-go/.current.new /opt/hello-go/current && \
             systemctl restart hello-go.service",
        )
        .success();
    std::thread::sleep(Duration::from_millis(1000));
    let report = load.stop();
    println!("systemctl restart of hello-go with its socket unit, under the same load: {report}");
    report.assert_none_failed();
    report.assert_versions_in_order("1.0.0", "2.0.0");
    let journal = sandbox
        .ssh(host, "journalctl -u hello-go.service -o cat --no-pager")
        .success()
        .stdout;
    let starts: Vec<&str> = journal
        .lines()
        .filter(|l| l.contains(" listening on "))
        .collect();
    assert_eq!(starts.len(), 2, "{journal}");
    assert!(
        starts
            .iter()
            .all(|l| l.ends_with("listening on [::]:8080 (sockets from systemd)")),
        "{journal}"
    );
}

/// hello-go as the example ships it (with `listen`), redeployed 1.0.0 → 2.0.0 by `shipit deploy`
/// under the baseline's load: not one request fails, 1.0.0 answers, then 2.0.0. The test prints
/// the load's summary with the slowest answer (`--nocapture`); how slow depends on the machine,
/// so only what always holds is asserted.
fn a_deploy_with_listen_under_load_refuses_nothing() {
    let host = "t-zero";
    let sandbox = Sandbox::up(&[host]);
    let project = project_copy("hello-go");
    let deploy = |version| {
        sandbox
            .project(project.path())
            .deploy(host, Ship::Version(version), &[])
            .success()
    };
    deploy("1.0.0");
    let address: SocketAddr = format!("{}:8080", sandbox.address(host)).parse().unwrap();
    let load = Load::start(address, Load::DEFAULT);
    std::thread::sleep(Duration::from_millis(500));
    deploy("2.0.0");
    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();
    let settings = Load::DEFAULT;
    println!(
        "shipit deploy of hello-go with listen under {} clients at up to {} requests/s, \
         1.0.0 → 2.0.0: {report}",
        settings.clients, settings.rate
    );
    report.assert_none_failed();
    report.assert_versions_in_order("1.0.0", "2.0.0");
    let status = sandbox
        .project(project.path())
        .shipit(&["status", host])
        .run()
        .success()
        .stdout;
    assert!(status.contains("socket:      active/running"), "{status}");
    assert!(status.contains("listen:      [::]:8080: "), "{status}");
}

/// Releases with and without `listen` follow each other, by deploy and by rollback: the socket
/// unit is installed, removed and installed again, and whichever release runs answers on the
/// port, from the socket or binding it itself. The dry run shows the socket unit's diff, and the
/// first switch to the socket says it cost one restart's refusals.
fn the_socket_comes_and_goes_with_the_release() {
    let host = "t-ways";
    let sandbox = Sandbox::up(&[host]);
    let with = project_copy("hello-go");
    let without = project_without_listen("hello-go");
    let deploy = |project: &tempfile::TempDir, version, extra: &[&str]| {
        sandbox
            .project(project.path())
            .deploy(host, Ship::Version(version), extra)
            .success()
    };
    let rollback = || {
        sandbox
            .project(with.path())
            .shipit(&["rollback", host])
            .run()
            .success()
    };
    let socket = "/etc/systemd/system/hello-go.socket";
    let check = |version: &str, socket_unit: bool| {
        assert_eq!(health_version(&sandbox, host), version);
        let state = sandbox
            .ssh(
                host,
                &format!(
                    "test -f {socket} && echo file; systemctl is-active hello-go.socket; \
                     systemctl is-enabled hello-go.socket 2>/dev/null; \
                     ss -ltnpH 'sport = :8080'"
                ),
            )
            .stdout;
        if socket_unit {
            assert!(state.starts_with("file\nactive\nenabled\n"), "{state}");
            assert!(state.contains("(\"systemd\",pid=1,"), "{state}");
        } else {
            assert!(state.starts_with("inactive\n"), "{state}");
            assert!(!state.contains("systemd"), "{state}");
        }
        assert!(state.contains("(\"hello-go\","), "{state}");
    };
    deploy(&with, "1.0.0", &[]);
    check("1.0.0", true);

    let plan = deploy(&without, "2.0.0", &["--dry-run"]).stdout;
    assert!(
        plan.contains(&format!("--- {socket} (installed)\n+++ /dev/null")),
        "{plan}"
    );
    deploy(&without, "2.0.0", &[]);
    check("2.0.0", false);

    let plan = deploy(&with, "3.0.0", &["--dry-run"]).stdout;
    assert!(
        plan.contains(&format!("--- /dev/null\n+++ {socket} (new)")),
        "{plan}"
    );
    let first = "hello-go.service bound its port itself, so it stopped before hello-go.socket";
    deploy(&with, "3.0.0", &[]).stderr_has(first);
    check("3.0.0", true);

    rollback();
    check("2.0.0", false);
    rollback().stderr_has(first);
    check("3.0.0", true);
}

/// A crashing release and a release whose /health says 503, each deployed with `listen` over a
/// healthy 1.0.0 under the baseline's load: pre-flight refuses both before the switch (exit 9,
/// "failed pre-flight", with why), not one request fails, and every answer comes from 1.0.0,
/// which stays current while the bad releases are marked failed.
fn preflight_refuses_bad_releases_before_they_take_traffic() {
    let host = "t-preflight";
    let sandbox = Sandbox::up(&[host]);
    let args = r#"["--port", "8080"]"#;
    let good = listening_variant(r#"LOG_LEVEL = "info""#, args);
    let crashing = listening_variant(r#"LOG_LEVEL = "info""#, r#"["--port", "not-a-port"]"#);
    let unhealthy = listening_variant(r#"HELLO_HEALTH_DOWN = "1""#, args);
    let deploy = |project: &tempfile::TempDir, version| {
        sandbox
            .project(project.path())
            .deploy(host, Ship::Version(version), &[])
    };
    deploy(&good, "1.0.0").success();
    let address: SocketAddr = format!("{}:8080", sandbox.address(host)).parse().unwrap();
    let load = Load::start(address, Load::DEFAULT);
    std::thread::sleep(Duration::from_millis(500));
    let refused =
        format!("failed pre-flight on {host}: it never took traffic, nothing was switched");
    deploy(&crashing, "2.0.0")
        .failure(9)
        .stderr_has(&refused)
        .stderr_has(r#"invalid --port "not-a-port""#)
        .stderr_has("it exited before answering 200 on /health");
    deploy(&unhealthy, "3.0.0")
        .failure(9)
        .stderr_has(&refused)
        .stderr_has("it did not answer 200 on /health within 5s (last: HTTP 503)");
    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();
    println!("a crashing and an unhealthy release refused by pre-flight, under load: {report}");
    report.assert_none_failed();
    let versions: Vec<String> = report.versions().into_iter().map(|(v, _)| v).collect();
    assert_eq!(versions, ["1.0.0"], "{report}");
    assert_eq!(health_version(&sandbox, host), "1.0.0");
    let releases = sandbox
        .project(good.path())
        .shipit(&["releases", host])
        .run()
        .success()
        .stdout;
    let marks: Vec<(&str, &str)> = releases
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (mark, name) = (words.next()?, words.next()?);
            Some((mark, name.split('-').next()?))
        })
        .collect();
    assert_eq!(
        marks,
        [
            ("failed", "3.0.0"),
            ("failed", "2.0.0"),
            ("current", "1.0.0")
        ],
        "{releases}"
    );
    // Nothing of the pre-flights is left behind.
    let units = sandbox
        .ssh(
            host,
            "systemctl list-units --all --no-legend 'shipit-preflight-*'",
        )
        .success()
        .stdout;
    assert_eq!(units.trim(), "", "{units}");
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(Nothing, 38, hello_go_takes_the_socket_and_drains),
        crate::test!(Nothing, 16, hello_rust_takes_the_socket_and_drains),
        crate::test!(Hosts, 20, a_plain_restart_under_load_drops_connections),
        crate::test!(
            Hosts,
            11,
            the_units_hold_the_socket_across_systemctl_restart
        ),
        crate::test!(Hosts, 25, a_deploy_with_listen_under_load_refuses_nothing),
        crate::test!(Hosts, 102, the_socket_comes_and_goes_with_the_release),
        crate::test!(
            Hosts,
            25,
            preflight_refuses_bad_releases_before_they_take_traffic
        ),
    ]
}
