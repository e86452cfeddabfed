//! `shipit sandbox`: real systemd-nspawn containers (needs root, as CI has). The first run on a
//! machine builds the rootfs cache with debootstrap, about a minute.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::sandbox::Sandbox;

#[test]
fn sandbox_hosts_boot_systemd_and_ssh_and_go_away() {
    let sandbox = Sandbox::empty();
    let up = sandbox
        .shipit(&["sandbox", "up", "node", "--count", "2"])
        .run()
        .success();
    let names = ["node-1", "node-2"];
    let expected: String = names
        .iter()
        .map(|name| format!("{name} {}\n", sandbox.address(name)))
        .collect();
    assert_eq!(up.stdout, expected);
    assert_ne!(sandbox.address("node-1"), sandbox.address("node-2"));

    for name in names {
        let run = sandbox
            .ssh(name, "systemctl is-system-running --wait; hostname")
            .success();
        assert_eq!(run.stdout, format!("running\n{name}\n"), "{}", run.stderr);
    }
    let list = sandbox.shipit(&["sandbox", "list"]).run().success().stdout;
    for name in names {
        let row = format!("{name}  {:15}  running", sandbox.address(name));
        assert!(list.contains(&row), "{list}");
    }

    let started = Instant::now();
    let again = sandbox
        .shipit(&["sandbox", "up", "node", "--count", "2"])
        .run()
        .success();
    assert_eq!(again.stdout, expected, "up again keeps hosts and addresses");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "up again rebooted"
    );

    let netns = sandbox.record("node-1")["netns"]
        .as_str()
        .unwrap()
        .to_string();
    sandbox
        .shipit(&["sandbox", "down", "node-1", "ghost"])
        .run()
        .success()
        .stderr_has("ghost: no such sandbox host");
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let namespaces = String::from_utf8_lossy(&namespaces.stdout);
    assert!(
        !namespaces.split_whitespace().any(|word| word == netns),
        "{netns} is left: {namespaces}"
    );
    let list = sandbox.shipit(&["sandbox", "list"]).run().success().stdout;
    assert!(
        !list.contains("node-1") && list.contains("node-2"),
        "{list}"
    );
    let config = std::fs::read_to_string(sandbox.ssh_config()).unwrap();
    assert!(
        !config.contains("node-1") && config.contains("Host node-2"),
        "{config}"
    );
    // Dropping the guard removes node-2.
}

#[test]
fn sandbox_rejects_bad_host_names() {
    let sandbox = Sandbox::empty();
    sandbox
        .shipit(&["sandbox", "up", "Web_1"])
        .run()
        .failure(2)
        .stderr_has("invalid sandbox host name \"Web_1\"");
    sandbox
        .shipit(&["sandbox", "down", "../etc"])
        .run()
        .failure(2);
    sandbox
        .shipit(&["sandbox", "up", "--count", "0"])
        .run()
        .failure(2);
}
