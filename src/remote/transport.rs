//! What shipit asks of a connection to a host ([`Remote`]): batches of steps in the host's
//! shell, a command streamed as it runs, and HTTP from the host's side.

use std::time::Duration;

use anyhow::Result;

use super::failure::answer_to_result;
use super::step::{Answer, ExecOutput, Kind, Step};
use crate::shell::quote;

/// An HTTP answer from a service, fetched from the host's point of view.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

/// How long a streamed command may run, and what ends it on the host once it has run that long.
#[derive(Debug, Clone)]
pub struct TimeLimit {
    pub after: Duration,
    /// A command for the same connection that stops the streamed one on the host (as root).
    pub stop: String,
}

pub trait Remote {
    /// How the host is named in messages (what the user typed).
    fn label(&self) -> &str;
    /// Whether commands run as root already; otherwise privileged ones go through `sudo -n`.
    fn is_root(&self) -> bool;
    /// Runs `steps` in order, as root, in the host's shell, and answers each: all of them are
    /// sent before the first answer is read, so a batch costs one round trip. A step that runs
    /// [`When::AfterSuccess`](super::When) is skipped once the step before it failed or was
    /// skipped.
    fn run(&mut self, steps: Vec<Step<'_>>) -> Result<Vec<Answer>>;
    /// Streams a command's output to `sink` until it ends (a `[hooks]` command: `kind` says
    /// which script it is, as a step's kind does), or until `limit` stops it, which is an
    /// error. A link that dies meanwhile is noticed within a minute.
    fn exec_streaming(
        &mut self,
        kind: Kind,
        command: &str,
        limit: Option<&TimeLimit>,
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

/// Wraps a shell script so it runs as root: directly for root, through `sudo -n` otherwise (never
/// prompting, so a password requirement is an error we can explain instead of a hang).
pub fn as_root(is_root: bool, script: &str) -> String {
    if is_root {
        format!("sh -c {}", quote(script))
    } else {
        format!("sudo -n sh -c {}", quote(script))
    }
}

/// Runs one step and returns its stdout; a failure is a [`StepFailure`](super::StepFailure).
pub fn run_one(remote: &mut dyn Remote, step: Step<'_>) -> Result<String> {
    let (kind, script) = (step.kind, step.script.clone());
    let answer = remote.run(vec![step])?.pop();
    answer_to_result(remote.label(), kind, &script, answer)
}
