//! HTTP GET of a port as the host sees it, for health probes: through a direct-tcpip channel,
//! or, once sshd has refused one, from the host itself ([`probe`]).

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::Result;
use ssh2::Session;

use super::session::COMMAND_TIMEOUT;
use crate::remote::http::parse_http;
use crate::remote::{HttpAnswer, Remote, probe};

/// GET through a direct-tcpip channel, waiting `timeout` at most.
pub(super) fn get(
    session: &Session,
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
) -> Result<HttpAnswer> {
    session.set_timeout(timeout.as_millis().max(1) as u32);
    let answer = http_get(session, host, port, path);
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

fn http_get(session: &Session, host: &str, port: u16, path: &str) -> Result<HttpAnswer> {
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
    write!(
        channel,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: shipit\r\nConnection: close\r\n\r\n"
    )?;
    channel.send_eof()?;
    let mut response = Vec::new();
    channel.read_to_end(&mut response)?;
    let _ = channel.close();
    parse_http(&response)
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
