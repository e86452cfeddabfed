//! HTTP GET of a port as the host sees it, for health probes: through a direct-tcpip channel,
//! or, once sshd has refused one, from the host itself ([`probe`]). Either way the whole answer
//! arrives within the probe's timeout, and is at most [`probe::MAX_ANSWER`] bytes.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use ssh2::{Channel, Session};

use super::session::{COMMAND_TIMEOUT, LIBSSH2_TIMEOUT};
use crate::remote::{HttpAnswer, Remote, probe};

/// How long closing the channel may take once the answer is in or its time is up: sshd answers
/// a close at once, and a link that does not is noticed by the next step.
const CLOSE_PATIENCE: Duration = Duration::from_secs(1);

/// GET through a direct-tcpip channel: the whole answer within `timeout`, or an error.
pub(super) fn get(
    session: &Session,
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
) -> Result<HttpAnswer> {
    let deadline = Instant::now() + timeout;
    let answer = http_get(session, host, port, path, deadline).map_err(|e| {
        if is_timeout(&e) {
            probe::late(timeout)
        } else {
            e
        }
    });
    session.set_timeout(COMMAND_TIMEOUT.as_millis() as u32);
    answer
}

/// GET with the host's own tools, for an sshd that refuses tunnels; with the notice telling the
/// user so when a tool was found.
pub(super) fn get_from_host(
    remote: &mut dyn Remote,
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
) -> (Option<String>, Result<HttpAnswer>) {
    let (tool, answer) = probe::get(remote, host, port, path, timeout);
    let notice = tool.map(|tool| {
        format!(
            "sshd on {} refuses TCP forwarding (AllowTcpForwarding no): probing from the host \
             itself with {tool}",
            remote.label()
        )
    });
    (notice, answer)
}

fn http_get(
    session: &Session,
    host: &str,
    port: u16,
    path: &str,
    deadline: Instant,
) -> Result<HttpAnswer> {
    until(session, deadline)?;
    let mut channel = session
        .channel_direct_tcpip(host, port, None)
        .map_err(|e| {
            let refused = refuses_tunnels(&e);
            let e = anyhow::Error::new(e).context(format!(
                "cannot open a tunnel to {host}:{port} (does sshd allow TCP forwarding?)"
            ));
            if refused {
                e.context(probe::TunnelRefused)
            } else {
                e
            }
        })?;
    let response = exchange(session, &mut channel, host, path, deadline);
    session.set_timeout(CLOSE_PATIENCE.as_millis() as u32);
    let _ = channel.close();
    probe::parse(&response?)
}

/// Sends the request and reads the answer to its end, each call waiting only as long as is
/// left until `deadline`: libssh2's timeout is per call, and a server that sends a byte a
/// second would never let one expire.
fn exchange(
    session: &Session,
    channel: &mut Channel,
    host: &str,
    path: &str,
    deadline: Instant,
) -> Result<Vec<u8>> {
    until(session, deadline)?;
    write!(
        channel,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: shipit\r\nConnection: close\r\n\r\n"
    )?;
    channel.send_eof()?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        until(session, deadline)?;
        match channel.read(&mut chunk) {
            Ok(0) => return Ok(response),
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            // libssh2 also gives up when a keepalive falls due; the deadline decides.
            Err(e) if e.kind() == ErrorKind::TimedOut => {}
            Err(e) => return Err(e.into()),
        }
        if response.len() > probe::MAX_ANSWER {
            return Err(probe::too_large());
        }
    }
}

/// Sets the session's timeout to what is left until `deadline`; fails once nothing is.
fn until(session: &Session, deadline: Instant) -> Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(std::io::Error::from(ErrorKind::TimedOut).into());
    }
    session.set_timeout(left.as_millis().max(1) as u32);
    Ok(())
}

/// Whether the GET failed for want of time, whichever call noticed.
fn is_timeout(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == ErrorKind::TimedOut)
            || cause
                .downcast_ref::<ssh2::Error>()
                .is_some_and(|e| e.code() == LIBSSH2_TIMEOUT)
    })
}

/// Whether sshd refused a direct-tcpip channel by policy (SSH reason 1, "administratively
/// prohibited") rather than failing to reach the port (reason 2, a service not listening yet).
/// libssh2 hands the reason code over only inside its message: this is the one place that reads
/// it, and turns it into [`probe::TunnelRefused`].
fn refuses_tunnels(error: &ssh2::Error) -> bool {
    const LIBSSH2_ERROR_CHANNEL_FAILURE: ssh2::ErrorCode = ssh2::ErrorCode::Session(-21);
    error.code() == LIBSSH2_ERROR_CHANNEL_FAILURE
        && error.message().contains("administratively prohibited")
}
