//! The container: systemd-nspawn booting the host's rootfs in its network namespace, detached so
//! it outlives shipit; ready once sshd greets; stopped by signals to its PID.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::host::{Host, Init};
use crate::error::{Category, Tag};
use crate::ui::Ui;

const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);

/// A container that has been started and may not answer yet.
pub(super) struct Booting {
    pub(super) host: Host,
    child: Child,
    started: Instant,
}

/// The cgroups shipit runs in, in the hierarchies systemd uses: the named `systemd` one of a
/// legacy or hybrid setup and the unified one.
///
/// With `--keep-unit`, systemd-nspawn puts the container into `payload/` below its own cgroup.
/// Containers started from one cgroup would share it, and each one's systemd would count the
/// other's processes as its services'. So every host gets a cgroup of its own below these.
pub(super) fn cgroup_parents() -> Result<Vec<PathBuf>> {
    let text = fs::read_to_string("/proc/self/cgroup").context("cannot read /proc/self/cgroup")?;
    let unified = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .find(|mount| Path::new(mount).join("cgroup.controllers").exists());
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let mount = match controllers {
                "name=systemd" => "/sys/fs/cgroup/systemd",
                "" => unified?,
                _ => return None,
            };
            Some(Path::new(mount).join(path.trim_start_matches('/')))
        })
        .collect())
}

/// Starts systemd-nspawn for `host` and records its PID.
pub(super) fn start(host: &mut Host) -> Result<Booting> {
    let procs = host
        .cgroups
        .iter()
        .map(|dir| open_cgroup(dir))
        .collect::<Result<Vec<File>>>()?;
    let console = File::create(host.console_log())
        .with_context(|| format!("cannot create {}", host.console_log().display()))?;
    let mut command = Command::new("systemd-nspawn");
    // --register=no --keep-unit: no system bus is needed, and none may exist.
    command.args(["--register=no", "--keep-unit", "-D"]);
    command
        .arg(host.rootfs())
        .arg(format!("--machine={}", host.name))
        .arg(format!(
            "--network-namespace-path=/run/netns/{}",
            host.netns
        ));
    match host.init {
        Init::Systemd => {
            command.arg("--boot");
        }
        // sshd as PID 1, as in a container: reachable, but no service manager. Its privilege
        // separation directory lives in /run, which nspawn gives a fresh tmpfs.
        Init::Sshd => {
            command.args([
                "/bin/sh",
                "-c",
                "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e",
            ]);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console);
    let fds: Vec<RawFd> = procs.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: the hook runs between fork and exec, where only async-signal-safe calls are
    // allowed; it makes only setsid and write calls and allocates nothing.
    unsafe {
        command.pre_exec(move || detach(&fds));
    }
    let child = command.spawn().context("cannot start systemd-nspawn")?;
    host.pid = Some(child.id());
    host.save()?;
    Ok(Booting {
        host: host.clone(),
        child,
        started: Instant::now(),
    })
}

fn open_cgroup(dir: &Path) -> Result<File> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the cgroup {}", dir.display()))?;
    let procs = dir.join("cgroup.procs");
    OpenOptions::new()
        .write(true)
        .open(&procs)
        .with_context(|| format!("cannot open {}", procs.display()))
}

/// In the child before exec: a session of its own, so no terminal hangup or Ctrl-C reaches the
/// container and it outlives shipit; and the host's own cgroups (writing 0 moves the writer).
fn detach(cgroup_procs: &[RawFd]) -> io::Result<()> {
    // SAFETY: setsid has no preconditions.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    for &fd in cgroup_procs {
        // SAFETY: `fd` is open (the parent keeps it open across spawn) and the buffer is static.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Booting {
    /// Waits until sshd greets on port 22.
    pub(super) fn wait_ready(&mut self, ui: &Ui) -> Result<Host> {
        let host = &self.host;
        let address = SocketAddr::from((host.address, 22));
        loop {
            let from = host.behind.as_ref().map(|bastion| bastion.netns.as_str());
            if greets_with_ssh(address, from) {
                let seconds = self.started.elapsed().as_secs_f32();
                ui.status("Ready", format_args!("{} in {seconds:.1}s", host.name));
                return Ok(self.host.clone());
            }
            if let Some(status) = self.child.try_wait()? {
                let console = console_tail(host);
                // Every container's systemd takes inotify instances from root's shared quota
                // (128 by default), so a dozen running containers exhaust it.
                let hint = if console.contains("Too many open files") {
                    "\n  help: the inotify instance limit is used up by running containers: \
                     raise it with `sysctl fs.inotify.max_user_instances=1024`, or stop some \
                     (`shipit sandbox down --all`)"
                } else {
                    ""
                };
                return Err(anyhow::anyhow!(
                    "systemd-nspawn for {} exited during boot ({status}); its console ended \
                     with:\n{console}{hint}",
                    host.name,
                ))
                .tag(Category::Connect);
            }
            if self.started.elapsed() > BOOT_TIMEOUT {
                return Err(anyhow::anyhow!(
                    "{} did not answer SSH on {address} within {} s; its console ended with:\n{}",
                    host.name,
                    BOOT_TIMEOUT.as_secs(),
                    console_tail(host)
                ))
                .tag(Category::Connect);
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Whether sshd greets at `address`, as seen from the network namespace `netns` (a bastion's,
/// the only one that reaches a host behind it) or from here.
fn greets_with_ssh(address: SocketAddr, netns: Option<&str>) -> bool {
    let Some(netns) = netns else {
        return greets(address);
    };
    let path = Path::new("/run/netns").join(netns);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let Ok(namespace) = File::open(&path) else {
                    return false;
                };
                // SAFETY: setns only reads the descriptor, which stays open; CLONE_NEWNET moves
                // just this thread, which ends after the probe.
                if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return false;
                }
                greets(address)
            })
            .join()
            .unwrap_or(false)
    })
}

fn greets(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
        return false;
    };
    let mut banner = [0; 8];
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .is_ok()
        && stream.read_exact(&mut banner).is_ok()
        && banner == *b"SSH-2.0-"
}

fn console_tail(host: &Host) -> String {
    let text = fs::read_to_string(host.console_log()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..]
        .iter()
        .map(|line| format!("  {}", line.replace('\r', "")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// SIGTERM makes systemd-nspawn shut the container down cleanly; SIGKILL ends it if that takes
/// longer than 15 s.
pub(super) fn stop(hosts: &[&Host]) -> Result<()> {
    signal(hosts, libc::SIGTERM);
    if wait_stopped(hosts, STOP_TIMEOUT) {
        return Ok(());
    }
    signal(hosts, libc::SIGKILL);
    if wait_stopped(hosts, KILL_TIMEOUT) {
        return Ok(());
    }
    let left: Vec<String> = hosts
        .iter()
        .filter(|host| host.is_running())
        .map(|host| format!("{} (PID {})", host.name, host.pid.unwrap_or_default()))
        .collect();
    anyhow::bail!(
        "systemd-nspawn still runs after SIGKILL for {}",
        left.join(", ")
    )
}

fn signal(hosts: &[&Host], signal: libc::c_int) {
    for host in hosts.iter().filter(|host| host.is_running()) {
        if let Some(pid) = host.pid {
            // SAFETY: kill has no memory-safety preconditions; the PID was just checked to be
            // this host's systemd-nspawn.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
    }
}

fn wait_stopped(hosts: &[&Host], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !hosts.iter().any(|host| host.is_running()) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Removes the host's cgroups, deepest first: a cgroup can only be removed once empty, and the
/// container's systemd may leave sub-cgroups behind.
pub(super) fn remove_cgroups(host: &Host) -> Result<()> {
    host.cgroups.iter().try_for_each(|dir| remove_cgroup(dir))
}

fn remove_cgroup(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_cgroup(&entry.path())?;
        }
    }
    fs::remove_dir(dir).with_context(|| format!("cannot remove the cgroup {}", dir.display()))
}
