//! Host filesystems: a Debian tree per release (bullseye, bookworm, trixie) built once with
//! debootstrap and cached, then per host an overlayfs mount on top of it (a full copy where overlayfs is not available), given the
//! host's own SSH keys, name and authorized client key.
//!
//! The cache is the lower layer of every host's overlay, and overlayfs leaves changing a lower
//! layer under a mounted overlay undefined. So once its `.shipit-complete` marker exists the cache
//! is never written again; hosts write only to their own upper layer.

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::files::{lock_file, remove_dir};
use super::host::{Host, Release, Template};
use super::paths::dir_from_env;
use crate::process::run_tool;
use crate::ui::Ui;

const MIRROR: &str = "http://deb.debian.org/debian";
/// systemd as PID 1 with D-Bus for systemctl, sshd to deploy through, sudo and curl as a
/// deploy's usual helpers, iproute2 to look at the network.
const PACKAGES: &str = "systemd,systemd-sysv,dbus,openssh-server,iproute2,sudo,curl";
/// Written last: a cache without it is the leftover of an interrupted build. With it, the cache
/// is final: hosts use it as their overlay's lower layer, which must not change under them.
const COMPLETE: &str = ".shipit-complete";
/// How long `down` waits for a busy rootfs (a process still inside it) before detaching it.
const UNMOUNT_TIMEOUT: Duration = Duration::from_secs(3);

fn cache_dir() -> PathBuf {
    dir_from_env("SHIPIT_SANDBOX_CACHE", "/var/cache/shipit/sandbox")
}

/// The release's cached rootfs, built first if needed (debootstrap takes about a minute).
pub(super) fn ensure_cache(release: Release, ui: &Ui) -> Result<PathBuf> {
    let suite = release.suite();
    let cache = cache_dir();
    let rootfs = cache.join(format!("{suite}-rootfs"));
    if rootfs.join(COMPLETE).exists() {
        return Ok(rootfs);
    }
    fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    // Parallel shipits wait here for one debootstrap of a release instead of each running their
    // own; other releases build meanwhile.
    let _lock = lock_file(&cache.join(format!("{suite}-rootfs.lock")))?;
    if rootfs.join(COMPLETE).exists() {
        return Ok(rootfs);
    }
    let partial = cache.join(format!("{suite}-rootfs.partial"));
    remove_dir(&partial)?;
    // Without the marker no host was ever made from it, so no overlay has it as lower layer.
    remove_dir(&rootfs)?;
    ui.status(
        "Building",
        format_args!("a {suite} rootfs with debootstrap (once, about a minute)"),
    );
    let spinner = ui.spinner(format!("debootstrap {suite} into {}", partial.display()));
    let built = debootstrap(suite, &partial);
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

fn debootstrap(suite: &str, target: &Path) -> Result<()> {
    let mut command = Command::new("debootstrap");
    command
        .args(["--variant=minbase", &format!("--include={PACKAGES}"), suite])
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

/// Gives `host` its rootfs made from the cached one, and makes it that host.
pub(super) fn install(host: &mut Host, template: &Template, ui: &Ui) -> Result<()> {
    let rootfs = host.rootfs();
    if template.try_overlay.get() {
        match mount_overlay(host, &template.rootfs) {
            Ok(()) => {
                host.overlay = true;
                host.save()?;
            }
            Err(err) => {
                // Every later host would fail the same way: say it once, then just copy.
                template.try_overlay.set(false);
                ui.status(
                    "Warning",
                    format_args!(
                        "{err:#}; copying the {} rootfs for each host instead (slower; \
                         overlayfs needs the state directory on a filesystem such as ext4 or xfs)",
                        template.release.suite()
                    ),
                );
            }
        }
    }
    if !host.overlay {
        let mut copy = Command::new("cp");
        copy.args(["-a", "--reflink=auto"])
            .arg(&template.rootfs)
            .arg(&rootfs);
        run_tool("copy the sandbox rootfs", &mut copy)?;
    }
    let mut keygen = Command::new("chroot");
    keygen.arg(&rootfs).args(["ssh-keygen", "-A"]);
    run_tool("generate the host's SSH keys", &mut keygen)?;

    let ssh = rootfs.join("root/.ssh");
    fs::create_dir_all(&ssh).with_context(|| format!("cannot create {}", ssh.display()))?;
    set_mode(&ssh, 0o700)?;
    let authorized = ssh.join("authorized_keys");
    write(&authorized, &template.public_key)?;
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

/// Mounts the cache read-only below `overlay/upper` at the host's rootfs: instant, and the host
/// costs only what it changes. On failure nothing of it is left, so the rootfs can be copied.
fn mount_overlay(host: &Host, cache: &Path) -> Result<()> {
    let overlay = host.dir().join("overlay");
    let (upper, work, rootfs) = (overlay.join("upper"), overlay.join("work"), host.rootfs());
    let mounted = [&upper, &work, &rootfs]
        .into_iter()
        .try_for_each(|dir| {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
        })
        .and_then(|()| {
            let options = overlay_options(cache, &upper, &work)?;
            mount("overlay", &rootfs, "overlay", &options)
                .with_context(|| format!("cannot mount an overlayfs at {}", rootfs.display()))
        });
    if mounted.is_err() {
        remove_dir(&overlay)?;
        remove_dir(&rootfs)?;
    }
    mounted
}

/// `lowerdir=…,upperdir=…,workdir=…`. Overlayfs splits its options at commas and its lower
/// layers at colons, so paths containing either are refused rather than escaped.
fn overlay_options(lower: &Path, upper: &Path, work: &Path) -> Result<Vec<u8>> {
    let mut options = Vec::new();
    for (key, path) in [("lowerdir", lower), ("upperdir", upper), ("workdir", work)] {
        let bytes = path.as_os_str().as_bytes();
        if bytes.iter().any(|byte| b",:\\".contains(byte)) {
            anyhow::bail!(
                "cannot use {} in overlayfs options: it contains a comma, colon or backslash",
                path.display()
            );
        }
        if !options.is_empty() {
            options.push(b',');
        }
        options.extend_from_slice(format!("{key}=").as_bytes());
        options.extend_from_slice(bytes);
    }
    Ok(options)
}

fn mount(source: &str, target: &Path, fstype: &str, options: &[u8]) -> io::Result<()> {
    let source = c_string(source.as_bytes())?;
    let target = c_string(target.as_os_str().as_bytes())?;
    let fstype = c_string(fstype.as_bytes())?;
    let options = c_string(options)?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let mounted = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            options.as_ptr().cast(),
        )
    };
    if mounted == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Unmounts whatever is mounted on a host's `rootfs`: its overlay, or nothing for a copied
/// rootfs, or a host whose overlay went away with a reboot. Deleting a host's directory while
/// something is mounted in it would delete through the mount.
///
/// A busy mount (a shell still inside, a process exiting) gets a few seconds, then is detached:
/// it disappears from here at once and the kernel drops it once the last user leaves.
pub(super) fn unmount(rootfs: &Path, ui: &Ui) -> Result<()> {
    let path = c_string(rootfs.as_os_str().as_bytes())?;
    let deadline = Instant::now() + UNMOUNT_TIMEOUT;
    let mut flags = libc::UMOUNT_NOFOLLOW;
    loop {
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        if unsafe { libc::umount2(path.as_ptr(), flags) } == 0 {
            // Mounts can be stacked: go on until nothing is left.
            continue;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // Not (or no longer) a mount point, or not there at all.
            Some(libc::EINVAL | libc::ENOENT) => return Ok(()),
            Some(libc::EBUSY) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Some(libc::EBUSY) if flags & libc::MNT_DETACH == 0 => {
                ui.status(
                    "Warning",
                    format_args!(
                        "{} is busy; detaching it, the kernel unmounts it once unused",
                        rootfs.display()
                    ),
                );
                flags |= libc::MNT_DETACH;
            }
            _ => {
                return Err(err).with_context(|| format!("cannot unmount {}", rootfs.display()));
            }
        }
    }
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte"))
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
