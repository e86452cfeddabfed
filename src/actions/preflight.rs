//! Pre-flight: before the switch, the new release runs once on a scratch socket of its own (a
//! socket-activated transient unit, `systemd-run --socket-property=ListenStream=127.0.0.1:PORT`,
//! with the release's unit's user, environment, limits and hardening, from
//! [`crate::service_run`]) and must pass its `[health]` check there (the URL's path, a connect
//! to the scratch socket, or its command with `SHIPIT_HEALTH_ADDR` set to it), with its version,
//! before it gets any traffic. A service without a socket whose check is a command (a worker)
//! has that command run once in the new release instead. A release that crashes, hangs or answers unhealthy is refused there: the
//! running release never stopped, nothing was switched, and the release is marked failed. It
//! goes in the batch before the switch, so it costs no round trip of its own.
//!
//! On with `[service] listen` (the package carries the socket unit) or a `[health] command`,
//! unless `[deploy] preflight = false`; it needs a `[health]` check to ask.

use std::borrow::Cow;
use std::time::Duration;

use anyhow::Result;

use super::check;
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
/// off, or there is nothing to ask (then it says so). With a socket unit in the package, any
/// kind of check is asked of the release on a scratch socket; without one, only a command
/// check can run (once, in the new release).
pub fn wanted<'h>(
    on: bool,
    package: &Package,
    health: Option<&'h Health>,
    host: &str,
    ui: &Ui,
) -> Option<&'h Health> {
    if !on {
        return None;
    }
    let Some(health) = health else {
        if package.socket.is_some() {
            ui.status(
                "Note",
                format_args!(
                    "{host}: no pre-flight: it asks the [health] check, and there is no [health]"
                ),
            );
        }
        return None;
    };
    let command = matches!(health.check, Check::Command { .. });
    (package.socket.is_some() || command).then_some(health)
}

/// The pre-flight script: the new release on a scratch socket, its health check asked until it
/// passes, or a command check run once in the new release (see `preflight.sh`). Reads the
/// release's own unit (this host's adaptation of it), with `current` replaced by the release's
/// directory, and the release's env file.
pub struct Preflight {
    /// `start_on_socket`, made by [`service_run::prepare_on_socket`] for this release; empty
    /// without a socket.
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
            check::function("tcp_check", check::TCP_SCRIPT).into(),
            check::function("command_check", check::COMMAND_SCRIPT).into(),
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
        let env_files = [layout.release_env_file()];
        let base = ServiceRun {
            app: &layout.app,
            purpose: "preflight",
            unit,
            systemd: host_unit.systemd,
            working_directory: &release,
            env_files: Some(&env_files),
            env: &[],
            argv: &[],
            terminal: false,
        };
        let socket = package.socket.is_some();
        let (start_on_socket, name) = if socket {
            let argv = release_argv(layout, unit)?;
            let prepared = service_run::prepare_on_socket(&ServiceRun {
                argv: &argv,
                ..base.clone()
            })?;
            (prepared.script, prepared.unit_name)
        } else {
            (String::new(), "none".to_string())
        };
        let mut values = vec![
            // `program`: shellcheck reads `kind=command` as a command's name.
            (
                "kind",
                match health.check {
                    Check::Command { .. } => "program",
                    _ => health.check.kind(),
                }
                .to_string(),
            ),
            ("socket", if socket { "yes" } else { "no" }.to_string()),
            ("port", String::new()),
            ("path", String::new()),
            ("expect_status", String::new()),
            ("send", String::new()),
            ("expect", String::new()),
            ("command", String::new()),
            ("check_unit", String::new()),
            ("wait", budget(health).as_secs().to_string()),
            ("t", probe::seconds(health.timeout)),
            ("cap", probe::MAX_ANSWER.to_string()),
            ("version", package.manifest.version.clone()),
            (
                "check_version",
                if health.check_version { "yes" } else { "no" }.to_string(),
            ),
            ("name", name),
        ];
        let mut set = |key: &str, value: String| {
            if let Some(slot) = values.iter_mut().find(|(k, _)| *k == key) {
                slot.1 = value;
            }
        };
        match &health.check {
            Check::Url { expect_status, .. } => {
                let (_, _, path) = health.endpoint().expect("a URL check");
                set("path", path);
                set("expect_status", expect_status.to_string());
            }
            Check::Tcp { send, expect, .. } => {
                set("send", send.clone().unwrap_or_default());
                set("expect", expect.clone().unwrap_or_default());
            }
            Check::Command { argv } => {
                // The command finds the scratch socket in SHIPIT_HEALTH_ADDR, so its port is
                // picked here rather than on the host.
                let mut env = vec![
                    ("SHIPIT_RELEASE".to_string(), layout.release.to_string()),
                    (
                        "SHIPIT_VERSION".to_string(),
                        package.manifest.version.clone(),
                    ),
                    ("SHIPIT_HEALTH".to_string(), "preflight".to_string()),
                ];
                if socket {
                    let port = scratch_port();
                    set("port", port.to_string());
                    env.push(("SHIPIT_HEALTH_ADDR".into(), format!("127.0.0.1:{port}")));
                }
                let prepared = service_run::prepare(&ServiceRun {
                    purpose: "health",
                    argv: &argv.words,
                    env: &env,
                    ..base.clone()
                })?;
                set("command", check::for_printf_b(&prepared.script));
                set("check_unit", prepared.unit_name);
            }
        }
        Ok(Preflight {
            start_on_socket,
            values,
        })
    }
}

/// The unit's ExecStart in the new release's directory.
fn release_argv(layout: &Layout, unit: &str) -> Result<Vec<String>> {
    let release = layout.release_dir();
    let current = layout.current();
    let in_release = |word: &str| match word.strip_prefix(&current) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{release}{rest}"),
        _ => word.to_string(),
    };
    let argv = service_run::exec_start_argv(unit).ok_or_else(|| {
        tagged(
            Category::Usage,
            anyhow::anyhow!(
                "pre-flight cannot run {}: its ExecStart= is missing or expands variables or \
                 specifiers\n  help: set [deploy] preflight = false",
                layout.unit_name()
            ),
        )
    })?;
    Ok(argv.iter().map(|word| in_release(word)).collect())
}

/// A port of loopback in 20000-29999 (below the ephemeral range), from the kernel's random
/// bytes; the pre-flight script refuses it if something listens there already.
fn scratch_port() -> u16 {
    use std::io::Read;
    let mut bytes = [0u8; 2];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    let seed = match random {
        Ok(()) => u16::from_be_bytes(bytes),
        Err(_) => std::process::id() as u16,
    };
    20000 + seed % 10000
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
