//! A sandbox host's record (`hosts/<name>/host.json`), the Debian release and init it runs, and
//! the template new hosts are made from.

use std::cell::Cell;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::files::write_atomic;
use super::paths::host_dir;

/// A sandbox host, as recorded in `hosts/<name>/host.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub address: Ipv4Addr,
    pub(super) netns: String,
    pub(super) veth: String,
    /// The systemd-nspawn process, once started.
    pub(super) pid: Option<u32>,
    /// N of the subnet 10.213.N.0/30.
    pub(super) index: u8,
    /// The cgroups the container was started in, one per cgroup hierarchy.
    pub(super) cgroups: Vec<PathBuf>,
    /// Whether `rootfs/` is an overlayfs mount over the cache rather than a copy of it. Absent
    /// in records from before overlays, whose rootfs is always a copy.
    #[serde(default)]
    pub(super) overlay: bool,
    /// Absent in records from before releases, which were all bookworm.
    #[serde(default = "default_release")]
    pub release: Release,
    #[serde(default = "default_init")]
    pub init: Init,
    /// The host whose network this one hangs off (`up --behind`); only it reaches this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) behind: Option<Bastion>,
}

/// A host's bastion, as `net` and `machine` need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Bastion {
    pub(super) name: String,
    pub(super) netns: String,
}

impl Host {
    pub(super) fn new(name: &str, index: u8, template: &Template, behind: Option<&Host>) -> Host {
        let netns = format!("shipit-sbx-{index}");
        Host {
            name: name.to_string(),
            address: Ipv4Addr::new(10, 213, index, 2),
            cgroups: template
                .cgroup_parents
                .iter()
                .map(|parent| parent.join(&netns))
                .collect(),
            netns,
            veth: format!("shsb-{index}"),
            pid: None,
            index,
            overlay: false,
            release: template.release,
            init: template.init,
            behind: behind.map(|bastion| Bastion {
                name: bastion.name.clone(),
                netns: bastion.netns.clone(),
            }),
        }
    }

    pub fn dir(&self) -> PathBuf {
        host_dir(&self.name)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir().join("rootfs")
    }

    /// What systemd-nspawn and the container's console printed.
    pub fn console_log(&self) -> PathBuf {
        self.dir().join("console.log")
    }

    /// Whether its systemd-nspawn is alive. Its command line must match, so a PID reused after
    /// a reboot, or a reaped or zombie process (empty command line), is not taken for it.
    pub fn is_running(&self) -> bool {
        let Some(cmdline) = self
            .pid
            .and_then(|pid| fs::read(format!("/proc/{pid}/cmdline")).ok())
        else {
            return false;
        };
        let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
        let machine = format!("--machine={}", self.name);
        let rootfs = self.rootfs();
        args.first()
            .is_some_and(|arg0| arg0.ends_with(b"systemd-nspawn"))
            && args.contains(&machine.as_bytes())
            && args
                .windows(2)
                .any(|pair| pair[0] == b"-D" && pair[1] == rootfs.as_os_str().as_bytes())
    }

    pub(super) fn save(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        write_atomic(&self.dir().join("host.json"), &json)
    }
}

/// What every new host is made from.
pub(super) struct Template {
    pub(super) release: Release,
    pub(super) init: Init,
    /// The release's cached rootfs.
    pub(super) rootfs: PathBuf,
    /// The client key root accepts.
    pub(super) public_key: String,
    /// Where each host's own cgroups go, one per cgroup hierarchy.
    pub(super) cgroup_parents: Vec<PathBuf>,
    /// Whether to try an overlay for the next host; cleared once one fails.
    pub(super) try_overlay: Cell<bool>,
}

/// The Debian releases `shipit sandbox` boots, with the systemd each ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    /// Debian 11, systemd 247
    Bullseye,
    /// Debian 12, systemd 252
    Bookworm,
    /// Debian 13, systemd 257
    Trixie,
}

impl Release {
    pub const ALL: [Release; 3] = [Release::Bullseye, Release::Bookworm, Release::Trixie];

    /// The Debian suite name, as debootstrap takes it.
    pub fn suite(self) -> &'static str {
        match self {
            Release::Bullseye => "bullseye",
            Release::Bookworm => "bookworm",
            Release::Trixie => "trixie",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Release::Bullseye => "Debian 11, systemd 247",
            Release::Bookworm => "Debian 12, systemd 252",
            Release::Trixie => "Debian 13, systemd 257",
        }
    }
}

/// What runs as PID 1 in a sandbox host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// systemd boots the host, as on a server
    Systemd,
    /// sshd is PID 1: reachable, but nothing shipit can deploy to
    Sshd,
}

impl Init {
    pub const ALL: [Init; 2] = [Init::Systemd, Init::Sshd];

    pub fn name(self) -> &'static str {
        match self {
            Init::Systemd => "systemd",
            Init::Sshd => "sshd",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Init::Systemd => "systemd boots the host, as on a server",
            Init::Sshd => "sshd is PID 1: reachable, but nothing shipit can deploy to",
        }
    }
}

fn default_release() -> Release {
    Release::Bookworm
}

fn default_init() -> Init {
    Init::Systemd
}
