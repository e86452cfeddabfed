//! Host filesystems: a Debian bookworm tree built once with debootstrap and cached, then copied
//! per host and given the host's own SSH keys, name and authorized client key.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::{Host, dir_from_env, lock_file, remove_dir};
use crate::build::run_tool;
use crate::ui::Ui;

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// systemd as PID 1 with D-Bus for systemctl, sshd to deploy through, sudo and curl as a
/// deploy's usual helpers, iproute2 to look at the network.
const PACKAGES: &str = "systemd,systemd-sysv,dbus,openssh-server,iproute2,sudo,curl";
/// Written last: a cache without it is the leftover of an interrupted build.
const COMPLETE: &str = ".shipit-complete";

fn cache_dir() -> PathBuf {
    dir_from_env("SHIPIT_SANDBOX_CACHE", "/var/cache/shipit/sandbox")
}

/// The cached rootfs, built first if needed (debootstrap takes about a minute).
pub(super) fn ensure_cache(ui: &Ui) -> Result<PathBuf> {
    let cache = cache_dir();
    let rootfs = cache.join(format!("{SUITE}-rootfs"));
    if rootfs.join(COMPLETE).exists() {
        return Ok(rootfs);
    }
    fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    // Parallel shipits wait here for one debootstrap instead of each running their own.
    let _lock = lock_file(&cache.join("lock"))?;
    if rootfs.join(COMPLETE).exists() {
        return Ok(rootfs);
    }
    let partial = cache.join(format!("{SUITE}-rootfs.partial"));
    remove_dir(&partial)?;
    remove_dir(&rootfs)?;
    ui.status(
        "Building",
        format_args!("a {SUITE} rootfs with debootstrap (once, about a minute)"),
    );
    let spinner = ui.spinner(format!("debootstrap {SUITE} into {}", partial.display()));
    let built = debootstrap(&partial);
    spinner.finish_and_clear();
    built?;
    prepare(&partial)?;
    fs::rename(&partial, &rootfs).with_context(|| {
        format!(
            "cannot rename {} to {}",
            partial.display(),
            rootfs.display()
        )
    })?;
    File::create(rootfs.join(COMPLETE))
        .with_context(|| format!("cannot create {}", rootfs.join(COMPLETE).display()))?;
    Ok(rootfs)
}

fn debootstrap(target: &Path) -> Result<()> {
    let mut command = Command::new("debootstrap");
    command
        .args(["--variant=minbase", &format!("--include={PACKAGES}"), SUITE])
        .arg(target)
        .arg(MIRROR);
    run_tool(
        "debootstrap (it needs to reach deb.debian.org)",
        &mut command,
    )
    .map(drop)
}

/// Turns the debootstrapped tree into a template every host can boot from as a machine of its
/// own: no shared SSH host keys and no shared machine ID.
fn prepare(rootfs: &Path) -> Result<()> {
    let ssh = rootfs.join("etc/ssh");
    for entry in fs::read_dir(&ssh).with_context(|| format!("cannot read {}", ssh.display()))? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("ssh_host_"))
        {
            fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    // Empty, systemd generates a machine ID at each host's first boot.
    let machine_id = rootfs.join("etc/machine-id");
    fs::write(&machine_id, "").with_context(|| format!("cannot empty {}", machine_id.display()))?;
    // D-Bus keeps a copy that would otherwise be the same on every host.
    let dbus_id = rootfs.join("var/lib/dbus/machine-id");
    fs::remove_file(&dbus_id)
        .and_then(|()| std::os::unix::fs::symlink("/etc/machine-id", &dbus_id))
        .with_context(|| format!("cannot link {} to /etc/machine-id", dbus_id.display()))
}

/// Copies the cached rootfs for `host` and makes it that host.
pub(super) fn install(host: &Host, cache: &Path, public_key: &str) -> Result<()> {
    let rootfs = host.rootfs();
    let mut copy = Command::new("cp");
    copy.args(["-a", "--reflink=auto"]).arg(cache).arg(&rootfs);
    run_tool("copy the sandbox rootfs", &mut copy)?;
    let mut keygen = Command::new("chroot");
    keygen.arg(&rootfs).args(["ssh-keygen", "-A"]);
    run_tool("generate the host's SSH keys", &mut keygen)?;

    let ssh = rootfs.join("root/.ssh");
    fs::create_dir_all(&ssh).with_context(|| format!("cannot create {}", ssh.display()))?;
    set_mode(&ssh, 0o700)?;
    let authorized = ssh.join("authorized_keys");
    write(&authorized, public_key)?;
    set_mode(&authorized, 0o600)?;

    let name = &host.name;
    write(&rootfs.join("etc/hostname"), &format!("{name}\n"))?;
    write(
        &rootfs.join("etc/hosts"),
        &format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        ),
    )
}

/// The host's ed25519 key as `ssh-ed25519 AAAA…`, for known_hosts; None before it exists.
pub(super) fn host_key(host: &Host) -> Option<String> {
    let text = fs::read_to_string(host.rootfs().join("etc/ssh/ssh_host_ed25519_key.pub")).ok()?;
    let mut fields = text.split_whitespace();
    Some(format!("{} {}", fields.next()?, fields.next()?))
}

fn write(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", path.display()))
}
