//! The remote half: where a host is ([`destination`]), proving it is the host we know
//! ([`known_hosts`]) and talking to it ([`ssh`]), directly or through a bastion ([`proxy`]).
//! Deploy speaks to hosts only through [`Remote`], so the transport can be swapped and logic
//! tested without a network.

pub mod channel;
pub mod destination;
#[cfg(test)]
pub mod fake;
mod http;
pub mod known_hosts;
pub mod probe;
pub mod proxy;
pub mod ssh;

use std::io::Read;
use std::time::Duration;

use anyhow::Result;

use crate::error::{Category, tagged};
use crate::shell::quote;

/// What a finished remote command left behind.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub status: i32,
    /// Set when the command was killed by a signal (its status then reads 0).
    pub signal: Option<String>,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == 0 && self.signal.is_none()
    }
}

/// An HTTP answer from a service, fetched from the host's point of view.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

pub trait Remote {
    /// How the host is named in messages (what the user typed).
    fn label(&self) -> &str;
    /// Whether commands run as root already; otherwise privileged ones go through `sudo -n`.
    fn is_root(&self) -> bool;
    /// Runs `steps` in order, as root, in the host's shell, and answers each: all of them are
    /// sent before the first answer is read, so a batch costs one round trip. A step that runs
    /// [`When::AfterSuccess`] is skipped once the step before it failed or was skipped.
    fn run(&mut self, steps: Vec<Step<'_>>) -> Result<Vec<Answer>>;
    /// Streams a command's output lines to `sink` until it ends (for `logs -f`).
    fn exec_streaming(
        &mut self,
        command: &str,
        sink: &mut dyn std::io::Write,
    ) -> Result<ExecOutput>;
    /// GET `path` from `host:port` as seen from the remote host.
    fn http_get(
        &mut self,
        host: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<HttpAnswer>;
    /// Something the transport had to do differently and the user should hear once (probing
    /// from the host because sshd refuses tunnels); taken by whoever reports progress.
    fn take_notice(&mut self) -> Option<String> {
        None
    }
    /// How many times shipit has waited for this host's answer since connecting: a batch of
    /// steps (the first one also opens the host's shell, as every step's exec used to), a GET.
    fn round_trips(&self) -> u32;
}

/// Whether a step depends on the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Only when the step before it succeeded (the first step of a batch always runs).
    AfterSuccess,
    /// Whatever happened before (releasing a lock).
    Always,
}

/// Whether a step only reads the host; a dry run runs those and records the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Reads,
    Changes,
}

/// Data a step reads on stdin, kept out of its script: secrets, the package.
pub struct Input<'a> {
    pub data: Box<dyn Read + 'a>,
    pub len: u64,
    /// What the data is, for a dry run's plan: never the data itself.
    pub what: String,
    /// Told how many bytes have been sent so far.
    pub progress: Box<dyn Fn(u64) + 'a>,
}

/// How a step's input reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Through a pipe holding exactly its input: the step may read it or not.
    Relay,
    /// The step reads exactly `$input` bytes from the shell's own stdin (bulk data: one copy
    /// fewer on the host). If it fails, the shell cannot tell where the next step starts, so it
    /// ends after answering, and the steps after it in the batch count as skipped.
    Direct,
}

/// One script for the host's shell, with its preamble of values.
pub struct Step<'a> {
    /// What it does, in words: progress, plans and errors name it.
    pub name: String,
    pub script: String,
    pub input: Option<Input<'a>>,
    pub feed: Feed,
    pub when: When,
    pub effect: Effect,
}

impl<'a> Step<'a> {
    pub fn reads(name: impl Into<String>, script: String) -> Step<'a> {
        Step {
            name: name.into(),
            script,
            input: None,
            feed: Feed::Relay,
            when: When::AfterSuccess,
            effect: Effect::Reads,
        }
    }

    pub fn changes(name: impl Into<String>, script: String) -> Step<'a> {
        Step {
            effect: Effect::Changes,
            ..Step::reads(name, script)
        }
    }

    pub fn with_input(mut self, input: Input<'a>) -> Step<'a> {
        self.input = Some(input);
        self
    }

    /// Bulk input, read by the step itself (see [`Feed::Direct`]).
    pub fn with_direct_input(mut self, input: Input<'a>) -> Step<'a> {
        self.input = Some(input);
        self.feed = Feed::Direct;
        self
    }

    pub fn always(mut self) -> Step<'a> {
        self.when = When::Always;
        self
    }
}

/// What became of one step of a batch.
#[derive(Debug, Clone)]
pub enum Answer {
    /// It ran; `after` is how long after the batch was sent its answer came.
    Ran { output: ExecOutput, after: Duration },
    /// A step before it failed.
    Skipped,
}

/// The exit statuses host scripts end with to say which outcome they met: shipit branches on
/// these, never on what a script printed. Each script's header lists the ones it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// The package or a file unpacked from it is not what was sent; it was deleted (EX_DATAERR).
    Corrupt,
    /// The upload ended before all of it arrived; the partial file waits to be continued
    /// (EX_NOINPUT).
    Short,
    /// The host cannot take this deploy: no systemd, too old, another architecture, a tool
    /// missing (EX_UNAVAILABLE).
    Unsuitable,
    /// A GET from the host itself found none of curl, wget or bash there (EX_OSFILE).
    NoProbeTool,
    /// A write met a full filesystem; what the step wrote was removed (EX_IOERR).
    NoSpace,
    /// Another deploy holds the lock (EX_TEMPFAIL).
    Locked,
    /// Another deploy's dead-man timer is armed.
    TimerArmed,
    /// This deploy's dead-man timer fired before it could be disarmed.
    TimerFired,
    /// `systemd-analyze verify` refused the unit (EX_CONFIG).
    UnitRejected,
    /// The new release failed its pre-flight on a scratch socket; it was marked failed.
    PreflightFailed,
    /// Any other failure: the script's stderr says what.
    Failed(i32),
}

impl Exit {
    const CODES: [(Exit, i32); 11] = [
        (Exit::Success, 0),
        (Exit::Corrupt, 65),
        (Exit::Short, 66),
        (Exit::Unsuitable, 69),
        (Exit::NoProbeTool, 72),
        (Exit::NoSpace, 74),
        (Exit::Locked, 75),
        (Exit::TimerArmed, 76),
        (Exit::TimerFired, 77),
        (Exit::UnitRejected, 78),
        (Exit::PreflightFailed, 80),
    ];

    pub fn of_status(status: i32) -> Exit {
        Exit::CODES
            .iter()
            .find(|(_, code)| *code == status)
            .map_or(Exit::Failed(status), |(exit, _)| *exit)
    }

    pub fn code(self) -> i32 {
        match self {
            Exit::Failed(status) => status,
            known => Exit::CODES
                .iter()
                .find(|(exit, _)| *exit == known)
                .map_or(1, |(_, code)| *code),
        }
    }

    /// The outcome a step that failed met; None for any other error (a lost connection).
    pub fn of(error: &anyhow::Error) -> Option<Exit> {
        crate::error::find::<StepFailure>(error).map(|f| f.exit)
    }

    /// `name=code` lines, the preamble of every host script: scripts exit with `$locked`, …
    pub fn shell_vars() -> String {
        Exit::CODES
            .iter()
            .skip(1)
            .map(|(exit, code)| format!("{}={code}\n", exit.var()))
            .collect()
    }

    fn var(self) -> &'static str {
        match self {
            Exit::Success => "ok",
            Exit::Corrupt => "corrupt",
            Exit::Short => "short",
            Exit::Unsuitable => "unsuitable",
            Exit::NoProbeTool => "no_probe_tool",
            Exit::NoSpace => "no_space",
            Exit::Locked => "locked",
            Exit::TimerArmed => "timer_armed",
            Exit::TimerFired => "timer_fired",
            Exit::UnitRejected => "unit_rejected",
            Exit::PreflightFailed => "preflight_failed",
            Exit::Failed(_) => "failed",
        }
    }
}

/// Wraps a shell script so it runs as root: directly for root, through `sudo -n` otherwise (never
/// prompting, so a password requirement is an error we can explain instead of a hang).
pub fn as_root(is_root: bool, script: &str) -> String {
    if is_root {
        format!("sh -c {}", quote(script))
    } else {
        format!("sudo -n sh -c {}", quote(script))
    }
}

/// Runs one step and returns its stdout; a failure is a [`StepFailure`].
pub fn run_one(remote: &mut dyn Remote, step: Step<'_>) -> Result<String> {
    let (name, script) = (step.name.clone(), step.script.clone());
    let answer = remote.run(vec![step])?.pop();
    answer_to_result(remote.label(), &name, &script, answer)
}

/// A step's answer as its stdout, or the failure it met.
pub fn answer_to_result(
    host: &str,
    name: &str,
    script: &str,
    answer: Option<Answer>,
) -> Result<String> {
    match answer {
        Some(Answer::Ran { output, .. }) => {
            check(host, name, script, &output)?;
            Ok(output.stdout)
        }
        Some(Answer::Skipped) | None => Err(tagged(
            Category::Remote,
            anyhow::anyhow!("{name} on {host} did not run: a step before it failed"),
        )),
    }
}

/// A remote command that ran and failed; callers that expect a particular failure (the lock's
/// "held" status, a full disk) match on its exit status.
#[derive(Debug)]
pub struct StepFailure {
    pub host: String,
    pub step: String,
    pub output: ExecOutput,
    /// The outcome its exit status names.
    pub exit: Exit,
    /// How to fix it, when the step knows.
    pub help: Option<String>,
}

/// How many lines of a failing command's stderr an error shows; `-v` shows them all.
const REASON_LINES: usize = 8;

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match &self.output.signal {
            Some(signal) => format!("killed by signal {signal}"),
            None => format!("exit status {}", self.output.status),
        };
        let (part, reason) = reason(&self.output.stderr);
        write!(
            f,
            "{} failed on {} ({how})",
            part.unwrap_or(&self.step),
            self.host
        )?;
        let hidden = reason.len().saturating_sub(REASON_LINES);
        if hidden > 0 {
            write!(f, "\n  … {hidden} earlier lines (-v shows them)")?;
        }
        for line in &reason[hidden..] {
            write!(f, "\n  {}", shorten(line))?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StepFailure {}

/// The part of a step a script says failed (its last line `(failed while PART)`), and the
/// stderr lines that say why.
fn reason(stderr: &str) -> (Option<&str>, Vec<&str>) {
    let mut lines: Vec<&str> = stderr
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let part = lines
        .last()
        .and_then(|l| l.strip_prefix("(failed while ")?.strip_suffix(')'));
    if part.is_some() {
        lines.pop();
    }
    (part, lines)
}

fn shorten(line: &str) -> String {
    const MAX: usize = 300;
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// Adds a `help:` line to a step's failure, when `error` is one.
pub fn with_help(mut error: anyhow::Error, help: impl Into<String>) -> anyhow::Error {
    if let Some(failure) = crate::error::find_mut::<StepFailure>(&mut error) {
        failure.help = Some(help.into());
    }
    error
}

fn check(host: &str, step: &str, script: &str, output: &ExecOutput) -> Result<()> {
    if output.success() {
        return Ok(());
    }
    let exit = Exit::of_status(output.status);
    // A held lock is how a step says "not now" (asked again every second while waiting): an
    // answer, not a failure whose script needs showing.
    if crate::ui::verbose() && exit != Exit::Locked {
        eprintln!(
            "--- {step} on {host}: the script ---\n{}\n--- its stderr ---\n{}\n---",
            script.trim_end(),
            output.stderr.trim_end()
        );
    }
    Err(tagged(
        Category::Remote,
        anyhow::Error::new(StepFailure {
            host: host.to_string(),
            step: step.to_string(),
            output: output.clone(),
            exit,
            help: None,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(stderr: &str, help: Option<&str>) -> StepFailure {
        StepFailure {
            host: "web1".into(),
            step: "unpacking the release and verifying the unit".into(),
            output: ExecOutput {
                status: 78,
                signal: None,
                stdout: String::new(),
                stderr: stderr.into(),
            },
            exit: Exit::UnitRejected,
            help: help.map(str::to_string),
        }
    }

    #[test]
    fn a_failed_step_says_where_and_why_in_a_few_lines() {
        let said = failure(
            "app.service:6: Failed to parse resource value, ignoring: lots\n\n(failed while verifying the unit)\n",
            Some("fix the unit"),
        );
        assert_eq!(
            said.to_string(),
            "verifying the unit failed on web1 (exit status 78)\n  \
             app.service:6: Failed to parse resource value, ignoring: lots\n  help: fix the unit"
        );
        let noisy: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let said = failure(&noisy, None).to_string();
        assert!(said.starts_with(
            "unpacking the release and verifying the unit failed on web1 (exit status 78)\n  \
             … 12 earlier lines (-v shows them)\n  line 13\n"
        ));
        assert!(said.ends_with("line 20"), "{said}");
        assert_eq!(said.lines().count(), 10);
    }
}
