//! The remote half: where a host is ([`destination`]), proving it is the host we know
//! ([`known_hosts`]) and talking to it ([`ssh`]), directly or through a bastion ([`proxy`]).
//! Deploy speaks to hosts only through [`Remote`], so the transport can be swapped and logic
//! tested without a network.

pub mod destination;
pub mod known_hosts;
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
    /// GET `path` from `host:port` as seen from the remote host.
    fn http_get(
        &mut self,
        host: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<HttpAnswer>;
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
/// "held" status) downcast to it.
#[derive(Debug)]
pub struct StepFailure {
    pub host: String,
    pub step: String,
    pub command: String,
    pub output: ExecOutput,
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match &self.output.signal {
            Some(signal) => format!("killed by signal {signal}"),
            None => format!("exit status {}", self.output.status),
        };
        write!(
            f,
            "{} failed on {} ({how})\n  command: {}",
            self.step, self.host, self.command
        )?;
        let stderr = self.output.stderr.trim();
        if !stderr.is_empty() {
            write!(f, "\n  stderr:\n{}", crate::error::indent(stderr, "    "))?;
        }
        Ok(())
    }
}

impl std::error::Error for StepFailure {}

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
    Err(tagged(
        Category::Remote,
        anyhow::Error::new(StepFailure {
            host: host.to_string(),
            step: step.to_string(),
            command: script.to_string(),
            output: output.clone(),
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
