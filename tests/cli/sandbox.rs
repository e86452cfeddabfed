//! `shipit sandbox`: real systemd-nspawn containers (needs root, as CI has). The first run on a
//! machine builds the rootfs cache with debootstrap, about a minute.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::sandbox::{Sandbox, mount_type};

fn cached_rootfs() -> PathBuf {
    let cache = std::env::var_os("SHIPIT_SANDBOX_CACHE")
        .filter(|dir| !dir.is_empty())
        .unwrap_or_else(|| "/var/cache/shipit/sandbox".into());
    PathBuf::from(cache).join("bookworm-rootfs")
}

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
        assert_eq!(sandbox.record(name)["overlay"], true);
        assert_eq!(
            mount_type(&sandbox.rootfs(name)).as_deref(),
            Some("overlay")
        );
    }

    for name in names {
        let run = sandbox
            .ssh(name, "systemctl is-system-running --wait; hostname")
            .success();
        assert_eq!(run.stdout, format!("running\n{name}\n"), "{}", run.stderr);
    }
    // What hosts write lands in their upper layer, never in the cache below.
    let cache = cached_rootfs();
    assert_ne!(
        std::fs::read_to_string(cache.join("etc/hostname")).unwrap(),
        "node-1\n"
    );
    assert!(!cache.join("etc/ssh/ssh_host_ed25519_key").exists());
    assert!(!cache.join("root/.ssh/authorized_keys").exists());
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
    assert_eq!(mount_type(&sandbox.rootfs("node-1")), None);
    assert!(!sandbox.state_dir().join("hosts/node-1").exists());
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

fn sandbox_copies_the_rootfs_where_overlayfs_cannot_be_used() {
    let sandbox = Sandbox::on_overlayfs();
    let up = sandbox
        .shipit(&["sandbox", "up", "copy", "--count", "2"])
        .run()
        .success();
    assert_eq!(
        up.stderr.matches("copying the bookworm rootfs").count(),
        1,
        "{}",
        up.stderr
    );
    for name in ["copy-1", "copy-2"] {
        assert_eq!(sandbox.record(name)["overlay"], false);
        assert_eq!(mount_type(&sandbox.rootfs(name)), None);
        assert!(
            !sandbox
                .state_dir()
                .join("hosts")
                .join(name)
                .join("overlay")
                .exists()
        );
    }
    let run = sandbox
        .ssh("copy-1", "systemctl is-system-running --wait; hostname")
        .success();
    assert_eq!(run.stdout, "running\ncopy-1\n", "{}", run.stderr);
    sandbox
        .shipit(&["sandbox", "down", "--all"])
        .run()
        .success();
    assert!(!sandbox.state_dir().join("hosts/copy-1").exists());
}

fn sandbox_down_unmounts_busy_and_half_set_up_hosts() {
    let sandbox = Sandbox::up(&["busy"]);
    let rootfs = sandbox.rootfs("busy");
    // A process outside the container with its working directory in the rootfs keeps it busy.
    let mut holder = Command::new("sleep")
        .arg("60")
        .current_dir(rootfs.join("etc"))
        .spawn()
        .unwrap();
    let down = sandbox.shipit(&["sandbox", "down", "busy"]).run();
    holder.kill().unwrap();
    holder.wait().unwrap();
    down.success().stderr_has("is busy; detaching it");
    assert_eq!(mount_type(&rootfs), None);
    assert!(!sandbox.state_dir().join("hosts/busy").exists());

    // As if `up` died right after mounting: no record, a mount in the host's directory.
    let rootfs = sandbox.rootfs("half");
    std::fs::create_dir_all(&rootfs).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(mounted.success());
    std::fs::write(rootfs.join("file"), "x").unwrap();
    sandbox.shipit(&["sandbox", "down", "half"]).run().success();
    assert_eq!(mount_type(&rootfs), None);
    assert!(!sandbox.state_dir().join("hosts/half").exists());
}

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

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(Hosts, 11, sandbox_hosts_boot_systemd_and_ssh_and_go_away),
        crate::test!(
            Hosts,
            4,
            sandbox_copies_the_rootfs_where_overlayfs_cannot_be_used
        ),
        crate::test!(Hosts, 10, sandbox_down_unmounts_busy_and_half_set_up_hosts),
        crate::test!(Hosts, 0, sandbox_rejects_bad_host_names),
    ]
}
