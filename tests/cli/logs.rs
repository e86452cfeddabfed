//! `shipit logs` of several hosts: merged in time order with host names, `--since` with `-f`,
//! `-g`, and a host that drops while followed, on real sandbox hosts. (-g on every release is
//! in exec.rs's release matrix.)

use std::io::BufRead;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::app::*;
use crate::support::proxy::CuttingProxy;
use crate::support::sandbox::Sandbox;
use crate::support::*;

/// hello-go deployed to `hosts`, named in shipit.toml (`[hosts]`, group `web`, `extra`), plus
/// an ssh config for `-F` that knows their keys.
fn deployed(sandbox: &Sandbox, hosts: &[&str], extra: &str) -> (tempfile::TempDir, String) {
    let (project, ssh_config) = fleet_project(sandbox, hosts, extra);
    let package = build(project.path(), "3.0.0");
    for host in hosts {
        sandbox
            .project(project.path())
            .deploy(host, Ship::Package(&package), &["-F", &ssh_config])
            .success();
    }
    (project, ssh_config)
}

fn logs(sandbox: &Sandbox, project: &Path, args: &[&str]) -> Run {
    sandbox
        .project(project)
        .shipit(&[&["logs"], args].concat())
        .run()
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Restarts hello-go on `host`; its new process logs "listening on" as it starts.
fn restart(sandbox: &Sandbox, host: &str) {
    sandbox
        .ssh(host, "systemctl restart hello-go && sleep 0.3")
        .success();
}

/// Restarts on two hosts, one after the other, come out merged in that order, each line with
/// its host, timestamps never going back; one host keeps journalctl's own look.
fn logs_of_two_hosts_merge_in_time_order_with_host_names() {
    let hosts = ["lg-1", "lg-2"];
    let sandbox = Sandbox::up(&hosts);
    let (project, ssh_config) = deployed(&sandbox, &hosts, "");
    let since = format!("@{}", epoch_seconds());
    std::thread::sleep(Duration::from_millis(1100));
    for host in ["lg-1", "lg-2", "lg-1", "lg-2", "lg-2", "lg-1"] {
        restart(&sandbox, host);
    }
    let run = logs(
        &sandbox,
        project.path(),
        &[
            "web",
            "-F",
            &ssh_config,
            "--since",
            &since,
            "-g",
            "listening",
        ],
    )
    .success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    let order: Vec<&str> = lines.iter().map(|l| &l[..4]).collect();
    assert_eq!(
        order,
        ["lg-1", "lg-2", "lg-1", "lg-2", "lg-2", "lg-1"],
        "{}",
        run.stdout
    );
    assert!(
        lines.iter().all(|l| l.contains(" | 20")
            && l.contains("hello-go[")
            && l.contains("listening on [::]:8080")),
        "{}",
        run.stdout
    );
    let stamps: Vec<&str> = lines.iter().map(|l| &l[7..34]).collect();
    let mut in_order = stamps.clone();
    in_order.sort_unstable();
    assert_eq!(stamps, in_order, "{}", run.stdout);

    // -f with --until follows to that time (by the hosts' clocks) and ends by itself, with
    // the same lines first.
    let mut until = Running::start(
        &sandbox,
        &[
            "-C",
            project.path().to_str().unwrap(),
            "logs",
            "web",
            "-F",
            &ssh_config,
            "-f",
            "--since",
            &since,
            "--until",
            "+3s",
            "-g",
            "listening",
        ],
    );
    let started = Instant::now();
    let ended = loop {
        if let Some(status) = until.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "logs -f --until +3s still follows"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(ended.success(), "{ended:?}");
    let mut followed = String::new();
    std::io::Read::read_to_string(&mut until.child.stdout.take().unwrap(), &mut followed).unwrap();
    assert_eq!(followed, run.stdout);

    // Without -g, the systemd lines come too; -n keeps the last N of the merged lines.
    let run = logs(
        &sandbox,
        project.path(),
        &["web", "-F", &ssh_config, "-n", "4"],
    )
    .success();
    assert_eq!(run.stdout.lines().count(), 4, "{}", run.stdout);
    assert!(
        run.stdout.lines().last().unwrap().starts_with("lg-1 | "),
        "{}",
        run.stdout
    );

    // One host: journalctl's short lines, no host column, unless asked for.
    let one = logs(
        &sandbox,
        project.path(),
        &["lg-2", "-F", &ssh_config, "-n", "1"],
    )
    .success();
    let line = one.stdout.trim_end();
    assert!(
        !line.starts_with("lg-2 |")
            && line.contains(" lg-2 hello-go[")
            && line.contains("listening on"),
        "{line}"
    );
    let named = logs(
        &sandbox,
        project.path(),
        &["lg-2", "-F", &ssh_config, "-n", "1", "--host-names"],
    )
    .success();
    assert!(named.stdout.starts_with("lg-2 | 20"), "{}", named.stdout);

    // Bad times stop shipit before any host is asked; the hosts' own journalctl has the last
    // word on forms its release does not read.
    logs(&sandbox, project.path(), &["web", "--since", "1 huor ago"])
        .failure(2)
        .stderr_has("--since \"1 huor ago\" is not a time journalctl reads");
    logs(
        &sandbox,
        project.path(),
        &["web", "-f", "--until", "10:00 Europe/Berlin"],
    )
    .failure(2)
    .stderr_has("cannot place a named time zone");
}

/// `-f` with `--since` and `-g` over two hosts, one of them behind a proxy that cuts the
/// connection: the lines since then come first, new ones follow, the cut host is reconnected
/// to (stderr says so) and lines logged while it was away arrive once.
fn logs_follow_resumes_a_host_that_dropped() {
    let hosts = ["lf-1", "lf-2"];
    let sandbox = Sandbox::up(&hosts);
    let proxy = CuttingProxy::passing(format!("{}:22", sandbox.address("lf-2")));
    // "far" is lf-2 through the proxy.
    let far = format!(
        "watched = [\"lf-1\", \"far\"]\n\n[hosts.far]\naddress = \"127.0.0.1\"\nport = {}\n\
         user = \"root\"\n",
        proxy.port
    );
    let (project, ssh_config) = deployed(&sandbox, &hosts, &far);
    // Its key is recorded for [127.0.0.1]:PORT too.
    let known = std::fs::read_to_string(project.path().join("known_hosts")).unwrap();
    let key = known
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{} ", sandbox.address("lf-2"))))
        .unwrap()
        .to_string();
    std::fs::write(
        project.path().join("known_hosts"),
        format!("{known}[127.0.0.1]:{} {key}\n", proxy.port),
    )
    .unwrap();

    let since = format!("@{}", epoch_seconds());
    std::thread::sleep(Duration::from_millis(1100));
    restart(&sandbox, "lf-1");
    restart(&sandbox, "lf-2");
    let mut running = Running::start(
        &sandbox,
        &[
            "-C",
            project.path().to_str().unwrap(),
            "logs",
            "watched",
            "-F",
            &ssh_config,
            "-f",
            "--since",
            &since,
            "-g",
            "listening",
        ],
    );
    let stdout = lines_of(&mut running);
    let first = take_lines(&stdout, 2, "the lines since then");
    assert_eq!(heads(&first), ["lf-1", "far "], "{first:?}");

    restart(&sandbox, "lf-1");
    let new = take_lines(&stdout, 1, "a new line");
    assert_eq!(heads(&new), ["lf-1"], "{new:?}");

    proxy.cut_now();
    running.wait_for_line("reconnecting");
    // Logged while the connection was down (or being made again): it must come, once.
    restart(&sandbox, "lf-2");
    running.wait_for_line("reconnected to far; resuming after its last line");
    let resumed = take_lines(&stdout, 1, "the line logged while far was away");
    assert_eq!(heads(&resumed), ["far "], "{resumed:?}");
    restart(&sandbox, "lf-2");
    let after = take_lines(&stdout, 1, "a line after the reconnect");
    assert_eq!(heads(&after), ["far "], "{after:?}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(stdout.try_recv().is_err(), "a line came twice");
    let all: Vec<&String> = first
        .iter()
        .chain(&new)
        .chain(&resumed)
        .chain(&after)
        .collect();
    assert!(
        all.iter().all(|l| l.contains("listening on [::]:8080")),
        "-g lets only matching lines through: {all:?}"
    );
    let _ = running.child.kill();
    let (_, stderr) = running.finish();
    assert!(
        stderr.contains("warning: the connection to far was lost"),
        "{stderr}"
    );
}

/// stdout of a running shipit, line by line.
fn lines_of(running: &mut Running) -> Receiver<String> {
    let stdout = running.child.stdout.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = send.send(line);
        }
    });
    receive
}

/// The next `n` lines (waiting up to 60 s).
fn take_lines(lines: &Receiver<String>, n: usize, what: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => got.push(line),
            Err(_) => panic!("waiting for {what}: got only {got:?}"),
        }
    }
    got
}

fn heads(lines: &[String]) -> Vec<&str> {
    lines.iter().map(|l| &l[..4]).collect()
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(
            Hosts,
            17,
            logs_of_two_hosts_merge_in_time_order_with_host_names
        ),
        crate::test!(Hosts, 30, logs_follow_resumes_a_host_that_dropped),
    ]
}
