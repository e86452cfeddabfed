//! The first look at a host, before anything is written there (`check.sh`): it must run
//! systemd (239 or later) as PID 1 and match the package's architecture. It only reads: a host
//! that fails it is left exactly as it was, and a step batched after it does not run. What it
//! finds decides the unit this host gets ([`HostUnit`]).

use std::borrow::Cow;

use anyhow::Result;

use super::runner::{Runner, failed_with};
use super::script::Script;
use crate::build::Target;
use crate::error::{Category, tagged};
use crate::package::Package;
use crate::remote::{Exit, Kind};
use crate::ui::Ui;

/// The script, for the package's platform.
pub struct CheckHost {
    pub target: Target,
}

impl Script for CheckHost {
    fn kind(&self) -> Kind {
        Kind::Check
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![
            ("machine", machine(self.target).to_string()),
            ("oldest", crate::systemd::OLDEST.to_string()),
        ]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![include_str!("scripts/check.sh").into()]
    }
}

fn machine(target: Target) -> &'static str {
    match target {
        Target::LinuxAmd64 => "x86_64",
        Target::LinuxArm64 => "aarch64",
    }
}

/// What the first look at a host finds, before anything is written there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFacts {
    /// The systemd release: which directives its units may use and which verify flags exist.
    pub systemd: u32,
}

impl CheckHost {
    /// What the check found, or why the host cannot take the package.
    pub fn read(&self, answer: Result<String>, host: &str) -> Result<HostFacts> {
        let target = self.target;
        let out = match answer {
            Ok(out) => out,
            Err(e) => match failed_with(&e, Exit::Unsuitable) {
                Some(out) => out.to_string(),
                None => return Err(e),
            },
        };
        let fact = |key: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        if fact("booted") != "yes" {
            return Err(tagged(
                Category::Usage,
                anyhow::anyhow!(
                    "{host} does not run systemd (PID 1 is {}); nothing was changed there\n  \
                     help: shipit deploys services under systemd; for a host without it, `shipit \
                     generate supervisor` writes a supervisord config for the same service",
                    fact("pid1")
                ),
            ));
        }
        let systemd = crate::systemd::parse_version(&fact("systemd")).ok_or_else(|| {
            tagged(
                Category::Remote,
                anyhow::anyhow!(
                    "cannot tell which systemd {host} runs: `systemctl --version` printed {:?}",
                    fact("systemd")
                ),
            )
        })?;
        if systemd < crate::systemd::OLDEST {
            return Err(tagged(
                Category::Usage,
                anyhow::anyhow!(
                    "{host} runs systemd {systemd}; shipit needs {} or later",
                    crate::systemd::OLDEST
                ),
            ));
        }
        let found = fact("machine");
        if found != machine(target) {
            return Err(tagged(
                Category::Usage,
                anyhow::anyhow!(
                    "{host} is {found} but the package is for {target}\n  help: build with \
                     --target {}",
                    if found == "aarch64" {
                        "linux-arm64"
                    } else {
                        "linux-amd64"
                    }
                ),
            ));
        }
        Ok(HostFacts { systemd })
    }
}

/// The unit one host gets, for its systemd release.
#[derive(Debug, Clone)]
pub struct HostUnit {
    pub systemd: u32,
    /// The package's unit without the directives this systemd does not know; None when the
    /// package's unit is right as it is.
    pub adapted: Option<String>,
    /// The same for the package's socket unit (`[service] listen`).
    pub socket_adapted: Option<String>,
}

impl HostUnit {
    /// The package's units as this host's systemd takes them, saying what had to be left out.
    pub fn for_host(runner: &mut Runner, package: &Package, facts: HostFacts, ui: &Ui) -> HostUnit {
        let host = runner.label();
        let units = crate::unit::Units {
            service: package.unit.clone(),
            socket: package.socket.clone(),
        };
        let (adapted, left_out) = units.for_version(&package.manifest.app, facts.systemd);
        for (file, directive) in &left_out {
            ui.status("Note", format_args!("{host}: {file}{directive}"));
            runner.note(format!("# {host}: {file}{directive}"));
        }
        HostUnit {
            systemd: facts.systemd,
            adapted: (adapted.service != package.unit).then_some(adapted.service),
            socket_adapted: adapted
                .socket
                .filter(|s| Some(s) != package.socket.as_ref()),
        }
    }

    /// The service unit this host runs the package with: its adaptation, or the package's own.
    pub fn service<'a>(&'a self, package: &'a Package) -> &'a str {
        self.adapted.as_deref().unwrap_or(&package.unit)
    }
}
