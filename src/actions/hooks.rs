//! `[hooks]`: commands around the switch. On a host (`before_switch`, `after_switch`) a hook runs
//! as the new release's service would ([`crate::service_run`]): its unit as this host gets it
//! (adapted here for the host's systemd, so no round trip reads it), in the release's
//! directory, with the release's own env file and `SHIPIT_*` variables; its output (stdout and
//! stderr together) streams with the host's name. Here (`local_before`, `local_after`) a hook
//! is a plain process with `SHIPIT_*` variables, its output on stderr (stdout carries results).

use std::collections::VecDeque;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;

use crate::config::{Argv, HookHosts};
use crate::error::{Category, tagged};
use crate::events::{Event, Events};
use crate::hosts::Layout;
use crate::hosts::check::HostUnit;
use crate::hosts::owner::LockOwner;
use crate::package::Package;
use crate::remote::{Kind, Remote, TimeLimit};
use crate::service_run::{self, ServiceRun};
use crate::shell::without_header;
use crate::ui::Ui;

/// Lines of a failed hook's output kept for its error.
const TAIL: usize = 20;
/// The longest line of a hook's output shown as one: a longer one is shown in pieces, so output
/// without a newline is never held without bound.
const MAX_LINE: usize = 16 << 10;

/// Which host hook, for its unit's name and its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnHost {
    BeforeSwitch,
    AfterSwitch,
}

impl OnHost {
    pub fn key(self) -> &'static str {
        match self {
            OnHost::BeforeSwitch => "before_switch",
            OnHost::AfterSwitch => "after_switch",
        }
    }

    fn purpose(self) -> &'static str {
        match self {
            OnHost::BeforeSwitch => "before-switch",
            OnHost::AfterSwitch => "after-switch",
        }
    }
}

/// The hosts that run `before_switch`, as indexes into `order` (the switching order): every
/// one still in the rollout, or only the first of them (the canary, when there is one).
pub fn before_switch_hosts(
    on: HookHosts,
    order: &[usize],
    in_rollout: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let mut hosts = order.iter().copied().filter(|&i| in_rollout(i));
    match on {
        HookHosts::Each => hosts.collect(),
        HookHosts::First => hosts.next().into_iter().collect(),
    }
}

/// What a host hook runs with besides its command.
pub struct Release<'a> {
    pub layout: &'a Layout,
    pub package: &'a Package,
    pub host_unit: &'a HostUnit,
    pub previous_version: Option<&'a str>,
}

impl Release<'_> {
    fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "SHIPIT_VERSION".into(),
                self.package.manifest.version.clone(),
            ),
            ("SHIPIT_RELEASE".into(), self.layout.release.to_string()),
            (
                "SHIPIT_PREVIOUS_VERSION".into(),
                self.previous_version.unwrap_or_default().to_string(),
            ),
        ]
    }

    /// The systemd-run script for `argv`, as root; the masked one for showing.
    pub fn prepare(&self, which: OnHost, argv: &Argv) -> Result<service_run::Prepared> {
        let unit = self.host_unit.service(self.package);
        let release_dir = self.layout.release_dir();
        let env_files = [self.layout.release_env_file()];
        let env = self.env();
        service_run::prepare(&ServiceRun {
            app: &self.layout.app,
            purpose: which.purpose(),
            unit,
            systemd: self.host_unit.systemd,
            working_directory: &release_dir,
            env_files: Some(&env_files),
            env: &env,
            argv: &argv.words,
            terminal: false,
        })
    }
}

/// Runs a hook on one host, streaming its output, and stops it there once it has run for
/// `timeout`; an error carries the output's last lines. A failed `before_switch` is a
/// [`Category::Hook`] error.
pub fn run_on_host(
    remote: &mut dyn Remote,
    release: &Release,
    which: OnHost,
    argv: &Argv,
    timeout: Option<Duration>,
    events: &Events,
    ui: &Ui,
) -> Result<()> {
    let host = remote.label().to_string();
    let prepared = release.prepare(which, argv)?;
    for note in &prepared.left_out {
        ui.diagnostic(format!("warning: {host}: {note}"));
    }
    if crate::ui::verbose() {
        ui.diagnostic(format!(
            "--- the {} hook on {host} ---\n{prepared}---",
            which.key()
        ));
    }
    ui.status(
        "Running",
        format_args!("{} on {host}: {}", which.key(), argv.words.join(" ")),
    );
    let script = hook_script(&prepared.script);
    let command = crate::remote::as_root(remote.is_root(), &script);
    let limit = timeout.map(|after| TimeLimit {
        after,
        stop: crate::remote::as_root(
            remote.is_root(),
            &service_run::stop_script(&prepared.unit_name),
        ),
    });
    let mut output = Lines::new(&host, ui);
    let ended = remote.exec_streaming(Kind::Hook, &command, limit.as_ref(), &mut output);
    output.flush_partial();
    events.emit(Event::HookRan {
        host: host.clone(),
        hook: which.key().to_string(),
        ok: ended.as_ref().is_ok_and(|e| e.success()),
        exit_status: ended.as_ref().ok().map(|e| i64::from(e.status)),
    });
    let category = match which {
        OnHost::BeforeSwitch => Category::Hook,
        OnHost::AfterSwitch => Category::Remote,
    };
    let how = match ended {
        Ok(ended) if ended.success() => {
            ui.status("Ran", format_args!("{} on {host}", which.key()));
            return Ok(());
        }
        Ok(ended) => match ended.signal {
            Some(signal) => format!("killed by signal {signal}"),
            None => format!("exit status {}", ended.status),
        },
        Err(e) => format!("{e:#}"),
    };
    let consequence = match which {
        OnHost::BeforeSwitch => "; no host was switched, the running release keeps serving",
        OnHost::AfterSwitch => " (the new release stays: it passed its health gate)",
    };
    Err(tagged(
        category,
        anyhow::anyhow!(
            "{} hook `{}` ({}) failed on {host} ({how}){consequence}\n{}\n  help: the hook runs \
             as the service would, in the new release's directory; try it with `shipit exec {host} \
             -- …` once that release runs, or see `-v` for the systemd-run command",
            which.key(),
            argv.words.join(" "),
            argv.location,
            output.tail()
        ),
    ))
}

/// A hook's output: whole lines on stderr, `host | line` (cut at [`MAX_LINE`]), the last
/// [`TAIL`] kept for errors.
struct Lines<'a> {
    host: &'a str,
    ui: &'a Ui,
    partial: Vec<u8>,
    tail: VecDeque<String>,
}

impl<'a> Lines<'a> {
    fn new(host: &'a str, ui: &'a Ui) -> Self {
        Lines {
            host,
            ui,
            partial: Vec::new(),
            tail: VecDeque::new(),
        }
    }

    fn line(&mut self, bytes: &[u8]) {
        let line = String::from_utf8_lossy(bytes).trim_end().to_string();
        self.ui.output(format!("{} | {line}", self.host));
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    fn flush_partial(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.line(&rest);
        }
    }

    fn tail(&self) -> String {
        if self.tail.is_empty() {
            return "  (it printed nothing)".into();
        }
        let lines: Vec<String> = self.tail.iter().map(|l| format!("  | {l}")).collect();
        format!("  its output (last lines):\n{}", lines.join("\n"))
    }
}

impl Write for Lines<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(data);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.line(&line);
        }
        while self.partial.len() >= MAX_LINE {
            let piece: Vec<u8> = self.partial.drain(..MAX_LINE).collect();
            self.line(&piece);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The script a hook runs on its host (`hook.sh`, then the command as the service runs it).
pub fn hook_script(command: &str) -> String {
    let joined = without_header(include_str!("scripts/hook.sh"));
    format!("{joined}{command}")
}

/// What a local hook is told: the deploy, and after it, how it ended.
pub struct Local<'a> {
    pub layout: &'a Layout,
    pub version: &'a str,
    pub hosts: &'a [String],
    /// After the deploy: the hosts that run the new release, and those that do not.
    pub ended: Option<(Vec<String>, Vec<String>)>,
}

impl Local<'_> {
    fn env(&self) -> Vec<(&'static str, String)> {
        let me = LockOwner::me(self.layout);
        let mut env = vec![
            ("SHIPIT_APP", self.layout.app.to_string()),
            ("SHIPIT_VERSION", self.version.to_string()),
            ("SHIPIT_RELEASE", self.layout.release.to_string()),
            ("SHIPIT_HOSTS", self.hosts.join(" ")),
            ("SHIPIT_DEPLOYER", format!("{}@{}", me.user, me.from)),
        ];
        if let Some((deployed, failed)) = &self.ended {
            let outcome = if failed.is_empty() { "ok" } else { "failed" };
            env.push(("SHIPIT_OUTCOME", outcome.into()));
            env.push(("SHIPIT_DEPLOYED", deployed.join(" ")));
            env.push(("SHIPIT_FAILED", failed.join(" ")));
        }
        env
    }
}

/// Runs a local hook in the project directory; its stdout goes to stderr. A failure is an error
/// naming the hook (the caller decides what it means).
pub fn run_local(
    key: &str,
    argv: &Argv,
    local: &Local,
    root: &std::path::Path,
    ui: &Ui,
) -> Result<()> {
    ui.status("Running", format_args!("{key}: {}", argv.words.join(" ")));
    let mut command = Command::new(&argv.words[0]);
    command
        .args(&argv.words[1..])
        .current_dir(root)
        .envs(local.env())
        .stdin(crate::process::stdin_for_child())
        .stdout(stderr_for_child()?)
        .stderr(Stdio::inherit());
    let status = command.status().map_err(|e| {
        anyhow::anyhow!(
            "{key} hook ({}): cannot run `{}`: {e}",
            argv.location,
            argv.words[0]
        )
    })?;
    if status.success() {
        return Ok(());
    }
    Err(anyhow::anyhow!(
        "{key} hook `{}` ({}) failed ({status})",
        argv.words.join(" "),
        argv.location
    ))
}

fn stderr_for_child() -> Result<Stdio> {
    use std::os::fd::AsFd;
    Ok(Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?))
}

/// `--dry-run`'s lines for the hooks: what would run, where, never run.
pub fn plan(hooks: &crate::config::Hooks, release: &Release, first: bool) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut local = |key: &str, argv: &Option<Argv>| {
        if let Some(argv) = argv {
            lines.push(format!(
                "# {key} hook (here, {}): {}",
                argv.location,
                argv.words.join(" ")
            ));
        }
    };
    local("local_before", &hooks.local_before);
    local("local_after", &hooks.local_after);
    for (which, argv) in [
        (OnHost::BeforeSwitch, &hooks.before_switch),
        (OnHost::AfterSwitch, &hooks.after_switch),
    ] {
        let Some(argv) = argv else { continue };
        let runs_here = match which {
            OnHost::BeforeSwitch if hooks.before_switch_on == HookHosts::First && !first => {
                "not on this host: once per rollout, on the first host"
            }
            OnHost::BeforeSwitch => "before the switch",
            OnHost::AfterSwitch => "after the health gate",
        };
        lines.push(format!(
            "# {} hook ({}; {runs_here}): {}\n{}",
            which.key(),
            argv.location,
            argv.words.join(" "),
            release.prepare(which, argv)?
        ));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_without_newlines_is_shown_in_pieces_not_held() {
        let ui = Ui::new(true);
        let mut lines = Lines::new("web1", &ui);
        for _ in 0..5 {
            lines.write_all(&[b'x'; MAX_LINE / 2]).unwrap();
        }
        lines.write_all(b"y\nz").unwrap();
        assert_eq!(lines.partial, b"z");
        let shown: Vec<usize> = lines.tail.iter().map(String::len).collect();
        assert_eq!(shown, [MAX_LINE, MAX_LINE, MAX_LINE / 2 + 1]);
    }

    #[test]
    fn before_switch_runs_on_the_first_host_still_in_the_rollout_or_on_each() {
        let order = [2, 0, 1, 3];
        let all = |_| true;
        assert_eq!(before_switch_hosts(HookHosts::First, &order, all), [2]);
        assert_eq!(
            before_switch_hosts(HookHosts::Each, &order, all),
            [2, 0, 1, 3]
        );
        let not_2 = |i| i != 2;
        assert_eq!(before_switch_hosts(HookHosts::First, &order, not_2), [0]);
        assert_eq!(
            before_switch_hosts(HookHosts::Each, &order, not_2),
            [0, 1, 3]
        );
        assert!(before_switch_hosts(HookHosts::First, &order, |_| false).is_empty());
    }
}
