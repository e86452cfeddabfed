//! What is deployed on a host, read in one step (`scripts/deployed.sh`): the host's systemd
//! release, the current release and its version, and the installed unit as systemd reads it.
//! `shipit exec` runs its command from this.

use std::borrow::Cow;

use anyhow::{Context, Result};

use super::layout::Layout;
use super::script::Script;
use crate::error::{Category, tagged};
use crate::remote::{self, Kind, Remote};
use crate::service_run::{self, Prepared, ServiceRun};

/// The script; it needs only the layout.
pub struct ReadDeployed;

impl Script for ReadDeployed {
    fn kind(&self) -> Kind {
        Kind::Deployed
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![include_str!("scripts/deployed.sh").into()]
    }
}

/// The deployed release, as [`ReadDeployed`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub systemd: u32,
    pub release: String,
    pub version: String,
    pub unit: String,
}

impl Deployed {
    /// `argv` in the current release as its service runs it (`shipit exec`, a command health
    /// check), with `SHIPIT_RELEASE` and `SHIPIT_VERSION` set, then `extra`.
    pub fn command(
        &self,
        layout: &Layout,
        purpose: &str,
        extra: &[(&str, &str)],
        argv: &[String],
        terminal: bool,
    ) -> Result<Prepared> {
        let release = [
            ("SHIPIT_RELEASE", self.release.as_str()),
            ("SHIPIT_VERSION", self.version.as_str()),
        ];
        let env: Vec<(String, String)> = release
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        service_run::prepare(&ServiceRun {
            app: &layout.app,
            purpose,
            unit: &self.unit,
            systemd: self.systemd,
            working_directory: &layout.current(),
            env_files: None,
            env: &env,
            argv,
            terminal,
        })
    }

    /// Reads what is deployed; a host with no release, or a release without its unit, is an
    /// error that says how to get one.
    pub fn read(remote: &mut dyn Remote, layout: &Layout) -> Result<Deployed> {
        let out = remote::run_one(remote, ReadDeployed.step(layout))?;
        Deployed::parse(&out, remote.label(), layout)
    }

    fn parse(out: &str, host: &str, layout: &Layout) -> Result<Deployed> {
        let (head, unit) = out.split_once("--- unit\n").unwrap_or((out, ""));
        let field = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(str::trim)
                .unwrap_or_default()
                .to_string()
        };
        let release = field("release");
        if release.is_empty() {
            return Err(tagged(
                Category::Remote,
                anyhow::anyhow!(
                    "{} has no deployed release on {host} ({} does not exist)\n  \
                     help: deploy it first: `shipit deploy {host}`",
                    layout.app,
                    layout.current()
                ),
            ));
        }
        if unit.trim().is_empty() {
            return Err(tagged(
                Category::Remote,
                anyhow::anyhow!(
                    "{host} has release {release} of {} but no unit {}\n  \
                     help: deploy again to install it: `shipit deploy {host}`",
                    layout.app,
                    layout.unit_name()
                ),
            ));
        }
        let systemd = crate::systemd::parse_version(&field("systemd"))
            .with_context(|| format!("{host} did not say which systemd it runs"))
            .map_err(|e| tagged(Category::Remote, e))?;
        Ok(Deployed {
            systemd,
            version: field("version"),
            release,
            unit: unit.to_string(),
        })
    }
}
