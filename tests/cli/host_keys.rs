//! Which host shipit talks to, and whether it trusts it, decided as OpenSSH decides: known_hosts
//! forms against `ssh -o StrictHostKeyChecking=accept-new`, and ssh aliases against sandbox
//! hosts of the same name.

use std::path::Path;
use std::process::Command;

use crate::support::sandbox::Sandbox;
use crate::support::*;

const WRONG: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkQ2UGPUk2fEuqZsP4Og9NRQ5ETlwNZUdXoyCV4ZvWw";

/// Each known_hosts form gets the same answer from shipit with --accept-new-host-key as from
/// OpenSSH with StrictHostKeyChecking=accept-new: a changed key is refused however its line is
/// spaced, cased or hashed, and a new key is recorded under the same name.
fn known_hosts_forms_get_openssh_s_answer() {
    let host = "t-khforms";
    let sandbox = Sandbox::up(&[host]);
    let address = sandbox.address(host);
    let known = std::fs::read_to_string(sandbox.state_dir().join("known_hosts")).unwrap();
    let right = known
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{address} ")))
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let config = dir.path().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host aliased\n  HostKeyAlias Aliased-Key\n\
             Host plain aliased\n  HostName {address}\n  User root\n  IdentityFile {}\n  \
             IdentitiesOnly yes\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
             HashKnownHosts no\n",
            sandbox.state_dir().join("id_ed25519").display(),
            known_hosts.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let project = example("hello-go");
    let project = project.to_str().unwrap();
    // Each tool from the same known_hosts: whether it connected, and the file afterwards.
    let openssh = |target: &str, lines: &str| {
        std::fs::write(&known_hosts, lines).unwrap();
        let output = Command::new("ssh")
            .args(["-F", config, "-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=accept-new", target, "true"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), read(&known_hosts), stderr)
    };
    let shipit = |target: &str, lines: &str| {
        std::fs::write(&known_hosts, lines).unwrap();
        let run = sandbox
            .shipit(&[
                "-C",
                project,
                "status",
                target,
                "-F",
                config,
                "--accept-new-host-key",
            ])
            .run();
        (run.code == 0, read(&known_hosts), run.stderr)
    };
    let hashed = {
        std::fs::write(&known_hosts, format!("{address} {WRONG}\n")).unwrap();
        let hashing = Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&known_hosts)
            .output()
            .unwrap();
        assert!(hashing.status.success());
        read(&known_hosts)
    };

    for (target, lines, connects) in [
        ("plain", format!("{address}\t{WRONG}\n"), false),
        (
            "plain",
            format!("  {address}  \t  {WRONG} old key\n"),
            false,
        ),
        ("plain", hashed.clone(), false),
        ("plain", format!("{address}\t\t{right}\n"), true),
        ("aliased", format!("ALIASED-key {WRONG}\n"), false),
        (
            "aliased",
            format!("{address} {WRONG}\naliased-KEY {right}\n"),
            true,
        ),
    ] {
        let (theirs, _, their_stderr) = openssh(target, &lines);
        assert_eq!(
            theirs, connects,
            "ssh, {target}, {lines:?}:\n{their_stderr}"
        );
        let (ours, after, our_stderr) = shipit(target, &lines);
        assert_eq!(ours, connects, "shipit, {target}, {lines:?}:\n{our_stderr}");
        if !connects {
            assert!(our_stderr.contains("has CHANGED"), "{our_stderr}");
            assert_eq!(after, lines, "a refused key is never recorded");
        }
    }

    // Nothing on record under the alias (the address does not count): both record the key
    // under the alias.
    let unrelated = format!("{address} {WRONG}\n");
    let (theirs, their_file, _) = openssh("aliased", &unrelated);
    let (ours, our_file, our_stderr) = shipit("aliased", &unrelated);
    assert!(theirs && ours, "{our_stderr}");
    let added_name = |file: &str| {
        file.lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_string)
    };
    assert_eq!(added_name(&our_file), added_name(&their_file));
    assert_eq!(added_name(&our_file).as_deref(), Some("aliased-key"));

    // A line for the host that cannot be read fails the check; it is never "unknown".
    let (ours, after, stderr) = shipit("plain", &format!("{address} ssh-ed25519 AAAAbroken\n"));
    assert!(!ours);
    assert!(stderr.contains("cannot read line 1 of"), "{stderr}");
    assert_eq!(after, format!("{address} ssh-ed25519 AAAAbroken\n"));
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A name an ssh config has (given with -F here; ~/.ssh/config works the same) is that alias,
/// even when a sandbox host has the name too; the sandbox host is used, and said to be, only
/// when no alias has it.
fn an_ssh_alias_wins_over_a_sandbox_host_of_the_same_name() {
    let host = "t-shadow";
    let sandbox = Sandbox::up(&[host]);
    let dir = tempfile::tempdir().unwrap();
    let project = example("hello-go");
    let status = |config: Option<&str>| {
        let mut args = vec!["-C", project.to_str().unwrap(), "status", host];
        let file = dir.path().join("ssh_config");
        if let Some(text) = config {
            std::fs::write(&file, text).unwrap();
            args.extend(["-F", file.to_str().unwrap()]);
        }
        sandbox.shipit(&args).run()
    };
    status(None)
        .success()
        .stderr_has("(t-shadow, a sandbox host)");
    status(Some("Host *\n  ConnectTimeout 5\n"))
        .success()
        .stderr_has("(t-shadow, a sandbox host)");
    for alias in [
        "Host t-shadow\n  HostName 127.0.0.1\n  Port 1\n  User root\n",
        "Host t-shad*\n  Port 1\n  User root\nHost *\n  HostName 127.0.0.1\n",
    ] {
        status(Some(alias))
            .failure(4)
            .stderr_has("cannot reach t-shadow (root@127.0.0.1:1)");
    }
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(Hosts, 8, known_hosts_forms_get_openssh_s_answer),
        crate::test!(
            Hosts,
            1,
            an_ssh_alias_wins_over_a_sandbox_host_of_the_same_name
        ),
    ]
}
