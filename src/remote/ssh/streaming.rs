//! A command on a channel of its own, its stdout streamed as it comes (`logs -f`).

use std::io::{Read, Write};

use anyhow::{Context, Result};
use ssh2::{Channel, Session};

use super::session::discard;
use crate::remote::ExecOutput;

pub(super) fn exec(session: &Session, command: &str, sink: &mut dyn Write) -> Result<ExecOutput> {
    let mut channel = session.channel_session()?;
    let done = stream(&mut channel, command, sink)
        .and_then(|stderr| finish(&mut channel, String::new(), stderr));
    if done.is_err() {
        discard(session, channel);
    }
    done
}

/// Starts `command` and copies its stdout to `sink` until it ends; returns its stderr.
fn stream(channel: &mut Channel, command: &str, sink: &mut dyn Write) -> Result<String> {
    channel.exec(command)?;
    channel.send_eof()?;
    std::io::copy(channel, sink).context("reading the remote output")?;
    let mut stderr = String::new();
    channel.stderr().read_to_string(&mut stderr)?;
    Ok(stderr)
}

fn finish(channel: &mut Channel, stdout: String, stderr: String) -> Result<ExecOutput> {
    // The exit status is only final after the close; it reads 0 when the server sent none.
    channel.wait_close()?;
    Ok(ExecOutput {
        status: channel.exit_status()?,
        signal: channel.exit_signal()?.exit_signal,
        stdout,
        stderr,
    })
}
