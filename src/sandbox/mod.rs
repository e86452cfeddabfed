//! `shipit sandbox`: local hosts to rehearse deploys on. Each is a Debian container (bullseye,
//! bookworm or trixie: systemd 247, 252 or 257) booted by systemd-nspawn — systemd as PID 1,
//! OpenSSH listening — in a network namespace of its own, reachable from this machine at
//! 10.213.N.2. With `--init sshd`, sshd is PID 1 instead: a host shipit must refuse.
//!
//! Under [`state_dir`]: the client key `id_ed25519`, `ssh_config` and `known_hosts` (so
//! `ssh -F <state>/ssh_config NAME` works), and `hosts/<name>/` with the host's `rootfs/`,
//! `overlay/`, `console.log` and `host.json`. Each release's rootfs is built once by
//! debootstrap; each host's `rootfs/` is an overlayfs mount with it as the lower layer and
//! `overlay/upper` as the upper one, or a copy of it where overlayfs cannot be used.

mod client;
mod files;
mod host;
mod machine;
mod net;
mod paths;
mod rootfs;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

use crate::error::{Category, Tag};
use crate::ui::Ui;
use crate::validate::validate_app_name;
use files::{lock_file, remove_dir};
use host::{Bastion, Template};
use paths::{STATE_DIR_VAR, host_dir};

pub use host::{Host, Init, Release};
pub use paths::{identity_path, known_hosts_path, ssh_config_path, state_dir};

pub const DEFAULT_NAME: &str = "sandbox";

/// What a subcommand that changes hosts needs of this machine.
struct Needs {
    subcommand: &'static str,
    /// Why it needs root, for the error that says so.
    root_for: &'static str,
    /// Commands it runs, with the Debian package that provides each.
    tools: &'static [(&'static str, &'static str)],
}

const UP_NEEDS: Needs = Needs {
    subcommand: "up",
    root_for: "it creates network namespaces, mounts filesystems and runs systemd-nspawn",
    tools: &[
        ("debootstrap", "debootstrap"),
        ("systemd-nspawn", "systemd-container"),
        ("ip", "iproute2"),
        ("ssh-keygen", "openssh-client"),
    ],
};
const DOWN_NEEDS: Needs = Needs {
    subcommand: "down",
    root_for: "it stops containers, unmounts their filesystems and removes their network \
               namespaces",
    tools: &[("ip", "iproute2")],
};

/// What `up` is asked for beyond the names: a running host must match it.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub release: Option<Release>,
    pub init: Option<Init>,
    /// A running sandbox host the new hosts sit behind.
    pub behind: Option<String>,
}

/// `shipit sandbox …`, as the command line asked.
#[derive(Debug, Clone)]
pub enum Request {
    /// Host names (see [`expand_names`]).
    Up(Vec<String>, UpOptions),
    Down(Vec<String>),
    DownAll,
    List,
}

/// `shipit sandbox up|down|list`.
pub fn run(request: &Request, ui: &Ui) -> Result<()> {
    match request {
        Request::Up(names, options) => {
            for host in up(names, options, ui)? {
                println!("{} {}", host.name, host.address);
            }
            Ok(())
        }
        Request::DownAll => down_all(ui),
        Request::Down(names) => down(names, ui),
        Request::List => {
            print!("{}", table(&hosts()?));
            Ok(())
        }
    }
}

/// The host names a command line asks for: NAME (default `sandbox`), or NAME-1..NAME-N.
pub fn expand_names(names: &[String], count: u8) -> Vec<String> {
    let bases = if names.is_empty() {
        vec![DEFAULT_NAME.to_string()]
    } else {
        names.to_vec()
    };
    let mut names: Vec<String> = if count > 1 {
        bases
            .iter()
            .flat_map(|base| (1..=count).map(move |i| format!("{base}-{i}")))
            .collect()
    } else {
        bases
    };
    let mut seen = BTreeSet::new();
    names.retain(|name| seen.insert(name.clone()));
    names
}

fn validate_names(names: &[String]) -> Result<()> {
    for name in names {
        // The name becomes a directory name and the container's hostname.
        validate_app_name(name)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("invalid sandbox host name {name:?}"))
            .tag(Category::Usage)?;
    }
    Ok(())
}

fn check_usable(needs: &Needs) -> Result<()> {
    if !cfg!(target_os = "linux") {
        crate::fail!(
            Usage,
            "shipit sandbox runs only on Linux: it boots hosts with systemd-nspawn in network \
             namespaces"
        );
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        crate::fail!(
            Usage,
            "shipit sandbox {} needs root: {}\n  help: run it with sudo: `{}`",
            needs.subcommand,
            needs.root_for,
            under_sudo()
        );
    }
    let missing: Vec<_> = needs
        .tools
        .iter()
        .filter(|(cmd, _)| !on_path(cmd))
        .collect();
    if !missing.is_empty() {
        let commands: Vec<_> = missing.iter().map(|(cmd, _)| *cmd).collect();
        let packages: Vec<_> = missing.iter().map(|(_, package)| *package).collect();
        crate::fail!(
            Usage,
            "shipit sandbox runs {}, not found on PATH\n  \
             help: install the Debian packages: apt-get install {}",
            commands.join(", "),
            packages.join(" ")
        );
    }
    Ok(())
}

/// This command line again, as root: `sudo` drops the environment, so a state directory given
/// in it goes on sudo's command line.
fn under_sudo() -> String {
    let mut words = vec!["sudo".to_string()];
    if std::env::var_os(STATE_DIR_VAR).is_some_and(|dir| !dir.is_empty()) {
        words.push(format!("{STATE_DIR_VAR}={}", state_dir().display()));
    }
    words.extend(std::env::args_os().map(|arg| arg.to_string_lossy().into_owned()));
    crate::shell::command(&words)
}

fn on_path(command: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(command))
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Boots the named hosts that are not running (replacing stopped ones) and returns them all, in
/// the order asked. A running host is kept unless it runs another release or init than one
/// asked for explicitly: that is refused, not silently kept. When booting fails, the hosts this
/// call created are removed again.
pub fn up(names: &[String], args: &UpOptions, ui: &Ui) -> Result<Vec<Host>> {
    validate_names(names)?;
    check_usable(&UP_NEEDS)?;
    let _lock = lock_state()?;
    let bastion = args
        .behind
        .as_deref()
        .map(|name| bastion(name, names))
        .transpose()?;
    let mut ready = Vec::new();
    let mut to_boot = Vec::new();
    for name in names {
        match host(name)? {
            Some(host) if host.is_running() => {
                check_kept(&host, args)?;
                ui.status(
                    "Running",
                    format_args!("{name} at {} ({})", host.address, describe(&host)),
                );
                ready.push(host);
            }
            _ => to_boot.push(name.clone()),
        }
    }
    let release = args.release.unwrap_or(Release::Bookworm);
    let init = args.init.unwrap_or(Init::Systemd);
    let booted = if to_boot.is_empty() {
        Ok(Vec::new())
    } else {
        template(release, init, ui)
            .and_then(|template| boot_all(&to_boot, &template, bastion.as_ref(), ui))
    };
    let written = hosts().and_then(|all| client::write_files(&all));
    ready.extend(booted?);
    written?;
    ready.sort_by_key(|host| names.iter().position(|name| *name == host.name));
    Ok(ready)
}

/// A running host asked for with `--release`, `--init` or `--behind` must be that already.
fn check_kept(host: &Host, args: &UpOptions) -> Result<()> {
    let other_release = args.release.filter(|r| *r != host.release);
    let other_init = args.init.filter(|i| *i != host.init);
    let behind = host.behind.as_ref().map(|b| b.name.as_str());
    if other_release.is_some() || other_init.is_some() || behind != args.behind.as_deref() {
        let asked = Host {
            release: other_release.unwrap_or(host.release),
            init: other_init.unwrap_or(host.init),
            behind: args.behind.as_ref().map(|name| Bastion {
                name: name.clone(),
                netns: String::new(),
            }),
            ..host.clone()
        };
        crate::fail!(
            Usage,
            "{} is running {}, not {}\n  help: take it down first (`shipit sandbox down {}`), \
             then `up` boots it as asked",
            host.name,
            describe(host),
            describe(&asked),
            host.name
        );
    }
    Ok(())
}

/// "bookworm", "bookworm without systemd", "bookworm behind web-1".
fn describe(host: &Host) -> String {
    let mut text = host.release.suite().to_string();
    if host.init == Init::Sshd {
        text.push_str(" without systemd");
    }
    if let Some(bastion) = &host.behind {
        text.push_str(&format!(" behind {}", bastion.name));
    }
    text
}

/// The running host that `up --behind` hangs new hosts off.
fn bastion(name: &str, names: &[String]) -> Result<Host> {
    validate_names(&[name.to_string()])?;
    if names.iter().any(|n| n == name) {
        crate::fail!(Usage, "--behind {name}: a host cannot be behind itself");
    }
    match host(name)? {
        Some(bastion) if bastion.is_running() => Ok(bastion),
        _ => crate::fail!(
            Usage,
            "--behind {name}: no running sandbox host of that name\n  \
             help: boot it first: shipit sandbox up {name}"
        ),
    }
}

fn template(release: Release, init: Init, ui: &Ui) -> Result<Template> {
    Ok(Template {
        release,
        init,
        public_key: client::ensure_key()?,
        cgroup_parents: machine::cgroup_parents()?,
        rootfs: rootfs::ensure_cache(release, ui)?,
        try_overlay: Cell::new(true),
    })
}

/// Starts every host before waiting for any, so they boot in parallel.
fn boot_all(
    names: &[String],
    template: &Template,
    behind: Option<&Host>,
    ui: &Ui,
) -> Result<Vec<Host>> {
    let mut booting = Vec::new();
    let result = names
        .iter()
        .try_for_each(|name| {
            booting.push(launch(name, template, behind, ui)?);
            Ok(())
        })
        .and_then(|()| booting.iter_mut().map(|b| b.wait_ready(ui)).collect());
    if result.is_err() {
        let hosts: Vec<Host> = booting.into_iter().map(|b| b.host).collect();
        clean_up_after_failure(&hosts, ui);
    }
    result
}

/// Creates a host and starts its container; on failure, removes what it created.
fn launch(
    name: &str,
    template: &Template,
    behind: Option<&Host>,
    ui: &Ui,
) -> Result<machine::Booting> {
    if host_dir(name).exists() {
        ui.status("Replacing", format_args!("{name}, which is not running"));
        remove(&[name.to_string()], ui)?;
    }
    let mut host = Host::new(name, net::claim(name)?, template, behind);
    ui.status(
        "Booting",
        format_args!("{name} at {} ({})", host.address, describe(&host)),
    );
    let started = set_up(&mut host, template, ui);
    if started.is_err() {
        clean_up_after_failure(&[host], ui);
    }
    started
}

fn set_up(host: &mut Host, template: &Template, ui: &Ui) -> Result<machine::Booting> {
    fs::create_dir_all(host.dir())
        .with_context(|| format!("cannot create {}", host.dir().display()))?;
    // Recorded before anything else exists, so `down` can undo whatever follows.
    host.save()?;
    rootfs::install(host, template, ui)?;
    net::set_up(host)?;
    machine::start(host)
}

/// Failing `up` should leave nothing behind; the boot error matters more than a cleanup error.
fn clean_up_after_failure(hosts: &[Host], ui: &Ui) {
    if let Err(err) = destroy(hosts, ui) {
        ui.status("Warning", format_args!("cleaning up failed: {err:#}"));
    }
}

/// Stops and deletes the named hosts; a name without a host is reported, not an error.
pub fn down(names: &[String], ui: &Ui) -> Result<()> {
    validate_names(names)?;
    check_usable(&DOWN_NEEDS)?;
    take_down(names, ui)
}

/// Stops and deletes every host in the state directory, half-created ones included.
pub fn down_all(ui: &Ui) -> Result<()> {
    check_usable(&DOWN_NEEDS)?;
    take_down(&host_names()?, ui)
}

fn take_down(names: &[String], ui: &Ui) -> Result<()> {
    let _lock = lock_state()?;
    let (present, absent): (Vec<String>, Vec<String>) = names
        .iter()
        .cloned()
        .partition(|name| host_dir(name).exists());
    for name in absent {
        ui.status("Skipping", format_args!("{name}: no such sandbox host"));
    }
    let removed = remove(&present, ui);
    client::write_files(&hosts()?)?;
    removed
}

/// Removes hosts by name, including half-created ones whose record was never written.
fn remove(names: &[String], ui: &Ui) -> Result<()> {
    let mut hosts = Vec::new();
    for name in names {
        match host(name)? {
            Some(host) => hosts.push(host),
            None => remove_host_dir(&host_dir(name), ui)?,
        }
    }
    destroy(&hosts, ui)
}

/// Stops hosts, then deletes everything they hold: network, cgroups, rootfs mount, files and
/// their claim. The container must be gone before its rootfs can be unmounted.
fn destroy(hosts: &[Host], ui: &Ui) -> Result<()> {
    let running: Vec<&Host> = hosts.iter().filter(|host| host.is_running()).collect();
    if !running.is_empty() {
        let names: Vec<&str> = running.iter().map(|host| host.name.as_str()).collect();
        ui.status("Stopping", names.join(", "));
        machine::stop(&running)?;
    }
    for host in hosts {
        // After a reboot the subnet may have been claimed by another sandbox: then the network
        // and cgroups of that name are its, not ours.
        let owned = net::owns_claim(host);
        if owned {
            net::tear_down(host)?;
            machine::remove_cgroups(host)?;
        }
        remove_host_dir(&host.dir(), ui)?;
        if owned {
            net::release(host)?;
        }
        ui.status("Removed", &host.name);
    }
    Ok(())
}

/// Every recorded host, sorted by name.
pub fn hosts() -> Result<Vec<Host>> {
    let mut hosts = Vec::new();
    for name in host_names()? {
        hosts.extend(host(&name)?);
    }
    Ok(hosts)
}

/// The recorded host of this name, if any.
pub fn host(name: &str) -> Result<Option<Host>> {
    let path = host_dir(name).join("host.json");
    match fs::read(&path) {
        Ok(json) => serde_json::from_slice(&json)
            .with_context(|| format!("{} is not a sandbox host record", path.display()))
            .map(Some),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(cannot_read(&path, err)),
    }
}

/// Names of the host directories, recorded or not, sorted.
fn host_names() -> Result<Vec<String>> {
    let dir = state_dir().join("hosts");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(cannot_read(&dir, err)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        if entry.file_type()?.is_dir() {
            names.extend(entry.file_name().to_str().map(str::to_string));
        }
    }
    names.sort();
    Ok(names)
}

/// A read in the state directory that failed. `up` makes that directory root's alone, so
/// without root the answer is how to get on, not the bare "Permission denied".
fn cannot_read(path: &Path, err: std::io::Error) -> anyhow::Error {
    if err.kind() != std::io::ErrorKind::PermissionDenied {
        return anyhow::Error::new(err).context(format!("cannot read {}", path.display()));
    }
    crate::error::tagged(
        Category::Usage,
        anyhow::anyhow!(
            "cannot read {}: permission denied; the sandbox lives under {}, which is root's\n  \
             help: run it with sudo (`{}`), or set {STATE_DIR_VAR} to a sandbox directory you \
             can read",
            path.display(),
            state_dir().display(),
            under_sudo()
        ),
    )
}

fn table(hosts: &[Host]) -> String {
    let width = hosts
        .iter()
        .map(|host| host.name.len())
        .chain([4])
        .max()
        .unwrap_or(4);
    let mut table = format!("{:width$}  {:15}  STATE    RELEASE\n", "NAME", "ADDRESS");
    for host in hosts {
        let state = if host.is_running() {
            "running"
        } else {
            "stopped"
        };
        let address = host.address.to_string();
        table += &format!(
            "{:width$}  {address:15}  {state:7}  {}\n",
            host.name,
            describe(host)
        );
    }
    table
}

/// Serializes `up` and `down` on one state directory: both rewrite the shared ssh files.
fn lock_state() -> Result<File> {
    let dir = state_dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.join("hosts"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    lock_file(&dir.join("lock"))
}

/// Deletes a host's directory, unmounting its rootfs first whatever the record says: a host may
/// be half set up, or its record be from before overlays.
fn remove_host_dir(dir: &Path, ui: &Ui) -> Result<()> {
    rootfs::unmount(&dir.join("rootfs"), ui)?;
    remove_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_expand_with_count_and_are_validated() {
        assert_eq!(expand_names(&[], 1), ["sandbox"]);
        assert_eq!(
            expand_names(&["web".into()], 3),
            ["web-1", "web-2", "web-3"]
        );
        assert_eq!(
            expand_names(&["a".into(), "b".into(), "a".into()], 1),
            ["a", "b"]
        );
        let err = validate_names(&["../etc".into()]).unwrap_err();
        assert_eq!(crate::error::category_of(&err), Some(Category::Usage));
    }

    #[test]
    fn an_unreadable_state_dir_says_whose_it_is_and_how_to_get_on() {
        let hosts = state_dir().join("hosts");
        let denied = cannot_read(&hosts, std::io::ErrorKind::PermissionDenied.into());
        let text = denied.to_string();
        assert_eq!(crate::error::category_of(&denied), Some(Category::Usage));
        assert!(
            text.starts_with(&format!(
                "cannot read {}: permission denied",
                hosts.display()
            )) && text.contains(&format!("under {}, which is root's", state_dir().display()))
                && text.contains("help: run it with sudo (`sudo ")
                && text.contains("or set SHIPIT_SANDBOX_DIR"),
            "{text}"
        );
        let other = cannot_read(&hosts, std::io::ErrorKind::InvalidData.into());
        assert_eq!(
            other.to_string(),
            format!("cannot read {}", hosts.display())
        );
    }
}
