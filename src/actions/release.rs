//! Everything between the upload and the switch, in one script (`release.sh`): unpack the
//! names `Package::open` checked and check the binary that came out, create the service user,
//! keep the env file and this host's unit with the release, verify the unit with the host's own
//! `systemd-analyze`. The env file travels on stdin, never in the script.

use std::borrow::Cow;

use anyhow::Result;

use crate::error::{Category, tagged};
use crate::hosts::Layout;
use crate::hosts::check::HostUnit;
use crate::hosts::script::{LIB, Script};
use crate::package::Package;
use crate::remote::{Exit, Input, Kind, Step, StepFailure};
use crate::ui::Ui;

/// The script: what to unpack, where the env file comes from, and this host's units and
/// verify flags.
pub struct UnpackRelease {
    /// The names the package was checked for, one a line: all the host unpacks of it.
    pub names: String,
    /// The binary's sha256 as the manifest gives it, which the unpacked binary must have.
    pub binary_sha256: String,
    /// The env file is on stdin (else the host keeps the one it has).
    pub env_on_stdin: bool,
    pub host_unit: HostUnit,
    /// The pattern that tells `systemd-analyze verify`'s lines about the layout's units from
    /// those about the host, as this machine's check tells them.
    pub unit_lines: String,
}

impl Script for UnpackRelease {
    fn kind(&self) -> Kind {
        Kind::Release
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        let unit = &self.host_unit;
        vec![
            ("names", self.names.clone()),
            ("binary_sha256", self.binary_sha256.clone()),
            (
                "env_from",
                if self.env_on_stdin { "stdin" } else { "host" }.to_string(),
            ),
            ("host_unit", unit.adapted.clone().unwrap_or_default()),
            (
                "host_socket",
                unit.socket_adapted.clone().unwrap_or_default(),
            ),
            (
                "verify_flags",
                crate::systemd::verify_flags(unit.systemd).join(" "),
            ),
            ("unit_lines", self.unit_lines.clone()),
        ]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![LIB.into(), include_str!("scripts/release.sh").into()]
    }
}

impl UnpackRelease {
    pub fn new(
        layout: &Layout,
        package: &Package,
        env_on_stdin: bool,
        host_unit: &HostUnit,
    ) -> UnpackRelease {
        let units = [layout.unit_name(), layout.socket_name()];
        UnpackRelease {
            names: package.names().join("\n"),
            binary_sha256: package
                .binary()
                .map(|b| b.sha256.clone())
                .unwrap_or_default(),
            env_on_stdin,
            host_unit: host_unit.clone(),
            unit_lines: crate::unit::verify_lines_about(&units),
        }
    }

    /// The step, with the env file (when there is one) on its stdin, described in plans by its
    /// size alone.
    pub fn with_env_file<'a>(
        layout: &Layout,
        package: &Package,
        env_file: Option<&'a [u8]>,
        host_unit: &HostUnit,
    ) -> Step<'a> {
        let step = UnpackRelease::new(layout, package, env_file.is_some(), host_unit).step(layout);
        match env_file {
            Some(secrets) => {
                let lines = String::from_utf8_lossy(secrets).lines().count();
                step.with_input(Input {
                    data: Box::new(secrets),
                    len: secrets.len() as u64,
                    what: format!("env file, {lines} lines, values hidden"),
                    progress: Box::new(|_| {}),
                })
            }
            None => step,
        }
    }

    /// Whether the release was unpacked already. What `systemd-analyze verify` said about the
    /// host rather than the units is shown as warnings.
    pub fn read(answer: Result<String>, host_unit: &HostUnit, host: &str, ui: &Ui) -> Result<bool> {
        let out = answer.map_err(|e| match Exit::of(&e) {
            Some(Exit::UnitRejected) => crate::remote::with_help(
                e,
                format!(
                    "the unit comes from shipit.toml and templates/service.hbs; `shipit unit \
                     generate --systemd-version {} --verify` checks it on this machine",
                    host_unit.systemd
                ),
            ),
            Some(Exit::Corrupt) => crate::remote::with_help(
                e,
                "deploy again, which sends the package anew; if the host unpacks it wrong again, \
                 its tar reads the archive unlike shipit does (`tar --version` there says which)",
            ),
            _ => e,
        })?;
        for said in out.lines().filter_map(|line| line.strip_prefix("warning ")) {
            ui.status(
                "Warning",
                format_args!(
                    "{host}: systemd-analyze verify passed the units; of the host it said: {said}"
                ),
            );
        }
        Ok(out.lines().any(|line| line == "reused"))
    }
}

/// A step that ran out of disk space, said in one line: what filled, what was removed.
pub fn out_of_space(error: anyhow::Error, host: &str, layout: &Layout) -> anyhow::Error {
    if Exit::of(&error) != Some(Exit::NoSpace) {
        return error;
    }
    let said = crate::error::find::<StepFailure>(&error)
        .and_then(|f| {
            f.output
                .stderr
                .lines()
                .rev()
                .find(|l| l.starts_with("no space left"))
        })
        .unwrap_or("no space left")
        .to_string();
    tagged(
        Category::Remote,
        anyhow::anyhow!(
            "{host}: {said}\n  help: free space for {} on {host} (`shipit releases {host}` lists \
             the releases kept there; [deploy] keep_releases keeps fewer), then deploy again",
            layout.base()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_verify_said_of_the_host_warns_beside_the_answer() {
        let host_unit = HostUnit {
            systemd: 247,
            adapted: None,
            socket_adapted: None,
        };
        let ui = Ui::new(true);
        let warning = "warning /etc/systemd/system/sockets.target.d/bad.conf:2: Unknown key name \
                       'Foo' in section 'Unit', ignoring.\n";
        let read = |out: String| UnpackRelease::read(Ok(out), &host_unit, "web1", &ui).unwrap();
        assert!(read(format!("reused\n{warning}")));
        assert!(!read(warning.to_string()));
    }

    #[test]
    fn the_host_gets_the_checked_names_and_the_binarys_sha256() {
        let package = crate::package::fixture("p.tar.gz".as_ref(), "1.0.0", 10, 5, "");
        let layout = Layout {
            app: crate::names::AppName::parse("app").unwrap(),
            user: "app".into(),
            release: crate::names::ReleaseId::from_host("1.0.0-0123456789ab"),
            sha256: "ab".repeat(32),
            environment: None,
        };
        let host_unit = HostUnit {
            systemd: 252,
            adapted: None,
            socket_adapted: None,
        };
        let values = UnpackRelease::new(&layout, &package, false, &host_unit).values();
        let value = |name| values.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        assert_eq!(value("names"), "manifest.json\napp");
        assert_eq!(value("binary_sha256"), "cd".repeat(32));
    }
}
