//! How a step ended: the exit statuses host scripts use to say which outcome they met
//! ([`Exit`]), and a failed step shown short ([`StepFailure`]).

use anyhow::Result;

use super::step::{Answer, ExecOutput, Kind};
use crate::error::{Category, tagged};

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

/// A step's answer as its stdout, or the failure it met.
pub fn answer_to_result(
    host: &str,
    kind: Kind,
    script: &str,
    answer: Option<Answer>,
) -> Result<String> {
    match answer {
        Some(Answer::Ran { output, .. }) => {
            check(host, kind, script, &output)?;
            Ok(output.stdout)
        }
        Some(Answer::Skipped) | None => Err(tagged(
            Category::Remote,
            anyhow::anyhow!("{kind} on {host} did not run: a step before it failed"),
        )),
    }
}

/// A remote command that ran and failed; callers that expect a particular failure (the lock's
/// "held" status, a full disk) match on its exit status.
#[derive(Debug)]
pub struct StepFailure {
    pub host: String,
    pub kind: Kind,
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
            part.unwrap_or(self.kind.describe()),
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

fn check(host: &str, kind: Kind, script: &str, output: &ExecOutput) -> Result<()> {
    if output.success() {
        return Ok(());
    }
    let exit = Exit::of_status(output.status);
    // A held lock is how a step says "not now" (asked again every second while waiting): an
    // answer, not a failure whose script needs showing.
    if crate::ui::verbose() && exit != Exit::Locked {
        eprintln!(
            "--- {kind} on {host}: the script ---\n{}\n--- its stderr ---\n{}\n---",
            script.trim_end(),
            output.stderr.trim_end()
        );
    }
    Err(tagged(
        Category::Remote,
        anyhow::Error::new(StepFailure {
            host: host.to_string(),
            kind,
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
            kind: Kind::Release,
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
            "unpacking the release, creating the service user and verifying the unit failed on \
             web1 (exit status 78)\n  \
             … 12 earlier lines (-v shows them)\n  line 13\n"
        ));
        assert!(said.ends_with("line 20"), "{said}");
        assert_eq!(said.lines().count(), 10);
    }
}
