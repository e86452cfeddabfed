//! The remote half: where a host is ([`destination`]), proving it is the host we know
//! ([`known_hosts`]) and talking to it ([`ssh`]), directly or through a bastion ([`proxy`]).
//! Deploy speaks to hosts only through [`Remote`], so the transport can be swapped and logic
//! tested without a network.

pub mod channel;
pub mod destination;
pub mod known_hosts;
pub mod probe;
pub mod proxy;
pub mod ssh;

use std::io::Read;
use std::time::Duration;

use anyhow::Result;

use crate::error::{Category, tagged};

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
    /// Runs `command` through the login shell, feeding `stdin` and reporting bytes sent.
    fn exec(
        &mut self,
        command: &str,
        stdin: Option<&mut dyn Read>,
        progress: &dyn Fn(u64),
    ) -> Result<ExecOutput>;
    /// Streams a command's output lines to `sink` until it ends (for `logs -f`).
    fn exec_streaming(
        &mut self,
        command: &str,
        sink: &mut dyn std::io::Write,
    ) -> Result<ExecOutput>;
    /// Starts `command` and returns its stdin: the command reads what is written, until the
    /// writer is dropped or the connection dies. Other commands may run meanwhile.
    fn open_stdin(&mut self, command: &str) -> Result<Box<dyn std::io::Write + Send>>;
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
}

/// Quotes one word for a POSIX shell: safe words stay readable, the rest go in single quotes.
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Builds a shell command from words, each quoted.
pub fn command(words: &[&str]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// Wraps a shell script so it runs as root: directly for root, through `sudo -n` otherwise (never
/// prompting, so a password requirement is an error we can explain instead of a hang).
pub fn as_root(remote: &dyn Remote, script: &str) -> String {
    if remote.is_root() {
        format!("sh -c {}", quote(script))
    } else {
        format!("sudo -n sh -c {}", quote(script))
    }
}

/// Runs a privileged script and returns its stdout; a failure names the host, the step and the
/// command with its stderr.
pub fn run_root(remote: &mut dyn Remote, step: &str, script: &str) -> Result<String> {
    let command = as_root(remote, script);
    let output = remote.exec(&command, None, &|_| {})?;
    check(remote, step, script, &output)?;
    Ok(output.stdout)
}

/// Like [`run_root`] with data on stdin (kept out of the command line, e.g. secrets).
pub fn run_root_with_input(
    remote: &mut dyn Remote,
    step: &str,
    script: &str,
    input: &mut dyn Read,
    progress: &dyn Fn(u64),
) -> Result<String> {
    let command = as_root(remote, script);
    let output = remote.exec(&command, Some(input), progress)?;
    check(remote, step, script, &output)?;
    Ok(output.stdout)
}

/// Runs a command as the login user.
pub fn run_user(remote: &mut dyn Remote, step: &str, command: &str) -> Result<String> {
    let output = remote.exec(command, None, &|_| {})?;
    check(remote, step, command, &output)?;
    Ok(output.stdout)
}

/// A remote command that ran and failed; callers that expect a particular failure (the lock's
/// "held" status, a full disk) match on its exit status.
#[derive(Debug)]
pub struct StepFailure {
    pub host: String,
    pub step: String,
    pub output: ExecOutput,
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

/// The exit status of a step that ran and failed; None for any other error.
pub fn exit_status(error: &anyhow::Error) -> Option<i32> {
    crate::error::find::<StepFailure>(error)
        .filter(|f| f.output.signal.is_none())
        .map(|f| f.output.status)
}

fn check(remote: &dyn Remote, step: &str, script: &str, output: &ExecOutput) -> Result<()> {
    if output.success() {
        return Ok(());
    }
    let host = remote.label();
    if output.stderr.contains("sudo: a password is required")
        || output.stderr.contains("sudo: a terminal is required")
    {
        return Err(tagged(
            Category::Remote,
            anyhow::anyhow!(
                "{step} on {host}: the login user needs passwordless sudo\n  \
                 help: on {host}, add a file /etc/sudoers.d/shipit with `USER ALL=(root) NOPASSWD: ALL` \
                 (USER = the login user), or deploy as root"
            ),
        ));
    }
    // 75 (EX_TEMPFAIL) is how a step says "not now" (a lock held elsewhere, asked again every
    // second while waiting): an answer, not a failure whose script needs showing.
    if crate::ui::verbose() && output.status != 75 {
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
            help: None,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_hostile_words() {
        assert_eq!(quote("/opt/app/current"), "/opt/app/current");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(command(&["echo", "a;b", "c"]), "echo 'a;b' c");
    }

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

    #[test]
    fn quoted_words_round_trip_through_sh() {
        for word in ["a b", "it's", "$(id)", "`id`", "a\nb", "\\", "*", "-n"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(word)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), word);
        }
    }
}
