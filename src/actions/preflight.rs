//! Pre-flight: before the switch, the new release runs once on a scratch socket of its own (a
//! socket-activated transient unit, `systemd-run --socket-property=ListenStream=127.0.0.1:PORT`,
//! with the release's unit's user, environment, limits and hardening, from
//! [`crate::service_run`]) and must answer its health URL's path, with its version, before it
//! gets any traffic. A release that crashes, hangs or answers unhealthy is refused there: the
//! running release never stopped, nothing was switched, and the release is marked failed. It
//! goes in the batch before the switch, so it costs no round trip of its own.
//!
//! On with `[service] listen` (the package carries the socket unit), unless `[deploy] preflight
//! = false`; it needs a health URL to ask.

use std::borrow::Cow;
use std::time::Duration;

use anyhow::Result;

use crate::config::{Check, Health};
use crate::error::{Category, tagged};
use crate::hosts::Layout;
use crate::hosts::check::HostUnit;
use crate::hosts::script::Script;
use crate::package::Package;
use crate::remote::{Exit, Kind, probe};
use crate::service_run::{self, ServiceRun};
use crate::ui::Ui;

/// systemd-run's `--socket-property` came with transient socket units in systemd 237 (NEWS), so
/// every systemd shipit deploys to has it.
const SOCKET_PROPERTY_SINCE: u32 = 237;
const _: () = assert!(crate::systemd::OLDEST >= SOCKET_PROPERTY_SINCE);

/// How long the release may take to answer: as long as the health gate waits for a start.
fn budget(health: &Health) -> Duration {
    (health.interval * health.retries).max(Duration::from_secs(5))
}

/// The health settings pre-flight checks with, when it runs for this package: None when it is
/// off, the package has no socket unit, or there is no health URL (then it says so).
pub fn wanted<'h>(
    on: bool,
    package: &Package,
    health: Option<&'h Health>,
    host: &str,
    ui: &Ui,
) -> Option<&'h Health> {
    if !on || package.socket.is_none() {
        return None;
    }
    let Some(health) = health else {
        ui.status(
            "Note",
            format_args!(
                "{host}: no pre-flight: it asks the [health] url's path, and there is no [health]"
            ),
        );
        return None;
    };
    if !matches!(health.check, Check::Url { .. }) {
        ui.status(
            "Note",
            format_args!(
                "{host}: no pre-flight: it asks a [health] url, and this check is a {} check",
                health.check.kind()
            ),
        );
        return None;
    }
    Some(health)
}

/// The pre-flight script: the new release on a scratch socket, its health path asked until it
/// answers (see `preflight.sh`). Reads the release's own unit (this host's adaptation of it),
/// with `current` replaced by the release's directory, and the release's env file.
pub struct Preflight {
    /// `start_on_socket`, made by [`service_run::prepare_on_socket`] for this release.
    start_on_socket: String,
    values: Vec<(&'static str, String)>,
}

impl Script for Preflight {
    fn kind(&self) -> Kind {
        Kind::Preflight
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        self.values.clone()
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![
            self.start_on_socket.clone().into(),
            probe::function("get").into(),
            include_str!("scripts/preflight.sh").into(),
        ]
    }
}

impl Preflight {
    pub fn new(
        layout: &Layout,
        package: &Package,
        host_unit: &HostUnit,
        health: &Health,
    ) -> Result<Preflight> {
        let unit = host_unit.service(package);
        let release = layout.release_dir();
        let current = layout.current();
        let in_release = |word: &str| match word.strip_prefix(&current) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{release}{rest}"),
            _ => word.to_string(),
        };
        let argv: Vec<String> = service_run::exec_start_argv(unit)
            .ok_or_else(|| {
                tagged(
                    Category::Usage,
                    anyhow::anyhow!(
                        "pre-flight cannot run {}: its ExecStart= is missing or expands variables \
                         or specifiers\n  help: set [deploy] preflight = false",
                        layout.unit_name()
                    ),
                )
            })?
            .iter()
            .map(|word| in_release(word))
            .collect();
        let env_files = [layout.release_env_file()];
        let prepared = service_run::prepare_on_socket(&ServiceRun {
            app: &layout.app,
            purpose: "preflight",
            unit,
            systemd: host_unit.systemd,
            working_directory: &release,
            env_files: Some(&env_files),
            env: &[],
            argv: &argv,
            terminal: false,
        })?;
        let (Some((_, _, path)), Check::Url { expect_status, .. }) =
            (health.endpoint(), &health.check)
        else {
            anyhow::bail!("pre-flight asks a [health] url only");
        };
        let values = vec![
            ("path", path),
            ("expect", expect_status.to_string()),
            ("wait", budget(health).as_secs().to_string()),
            ("t", probe::seconds(health.timeout)),
            ("cap", probe::MAX_ANSWER.to_string()),
            ("version", package.manifest.version.clone()),
            (
                "check_version",
                if health.check_version { "yes" } else { "no" }.to_string(),
            ),
            ("name", prepared.unit_name.clone()),
        ];
        Ok(Preflight {
            start_on_socket: prepared.script,
            values,
        })
    }
}

/// What the pre-flight answered: Ok when the release passed; a refusal is tagged
/// [`Category::Preflight`] (a fresh error: the step's own tag would win) and says nothing was
/// switched.
pub fn passed(answer: Result<String>, layout: &Layout, host: &str) -> Result<()> {
    match answer {
        Ok(_) => Ok(()),
        Err(e) if Exit::of(&e) == Some(Exit::PreflightFailed) => Err(tagged(
            Category::Preflight,
            anyhow::anyhow!(
                "{} {} failed pre-flight on {host}: it never took traffic, nothing was \
                 switched and the running release was never stopped; it is marked failed\n{e:#}\n  \
                 help: the journal lines above are the new release's own; `[deploy] preflight = \
                 false` turns the pre-flight off for a service that cannot run twice",
                layout.app,
                layout.release
            ),
        )),
        Err(e) => Err(e),
    }
}
