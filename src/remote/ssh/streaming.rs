//! A command on a channel of its own, its stdout streamed as it comes (host hooks), on
//! [`channel::run`]: keepalives go out while it works quietly, a link that dies is noticed
//! within a minute, and a [`TimeLimit`] stops it on the host.

use std::io::Write;
use std::time::Instant;

use anyhow::Result;
use ssh2::Session;

use crate::cancel::Cancel;
use crate::remote::channel::{self, Wiring};
use crate::remote::{ExecOutput, TimeLimit};

/// What is kept of the command's stderr (it streams its output on stdout): its first lines.
const MAX_STDERR: usize = 64 << 10;

/// Runs `command` on `session` (blocking, as [`super::SshRemote`] keeps it) until it ends, or
/// until `limit` stops it, which is an error. `label` names the host when the link is lost.
pub(super) fn exec(
    session: &Session,
    label: &str,
    command: &str,
    limit: Option<&TimeLimit>,
    sink: &mut dyn Write,
) -> Result<ExecOutput> {
    let mut stderr = Vec::new();
    let ended = channel::run(
        session,
        label,
        command,
        Wiring {
            terminal: None,
            stdin: false,
            stdout: &mut |data| sink.write_all(data),
            stderr: &mut |data| {
                let room = MAX_STDERR.saturating_sub(stderr.len());
                stderr.extend_from_slice(&data[..data.len().min(room)]);
                Ok(())
            },
            // What a Ctrl-C does to a hook is the rollout's to say, once it ends.
            cancel: Cancel::new(),
            on_interrupt: limit.map(|l| l.stop.clone()),
            deadline: limit.map(|l| Instant::now() + l.after),
        },
    )?;
    if ended.overdue
        && let Some(limit) = limit
    {
        anyhow::bail!(
            "it did not finish within {}, so shipit stopped it",
            humantime::format_duration(limit.after)
        );
    }
    Ok(ExecOutput {
        status: ended.status,
        signal: ended.signal,
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}
