//! Making the SSH session and keeping watch on it: the transport (TCP with a connect timeout, or
//! a ProxyJump/ProxyCommand helper's socketpair), the handshake with cipher and host-key
//! preferences, the checks of `auth`, keepalives; then, once it is in use, telling
//! a link that is down or a helper that died from any other failure.

use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{Context, Result};
use ssh2::{MethodType, Session};

use super::auth;
use crate::error::{Category, tagged};
use crate::remote::destination::Destination;
use crate::remote::known_hosts;
use crate::remote::proxy::Helper;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Through a bastion, connecting and the handshake share one deadline: the helper logs in to
/// the bastion first, then opens the way on. Direct connections get the same in two halves.
const PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Long enough for `systemctl restart` of a slow service; `logs -f` lifts it.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
const KEEPALIVE_SECS: u32 = 15;
/// How long a helper whose end of the link has closed may take to finish exiting.
const HELPER_EXIT_PATIENCE: Duration = Duration::from_secs(2);
/// libssh2's LIBSSH2_ERROR_TIMEOUT.
pub(super) const LIBSSH2_TIMEOUT: ssh2::ErrorCode = ssh2::ErrorCode::Session(-9);

/// An authenticated session to one host, and what carries it.
pub(super) struct Link {
    /// How the host is named in messages (what the user typed).
    pub(super) label: String,
    pub(super) session: Session,
    /// The ProxyJump/ProxyCommand process carrying the session. Declared after `session`, so it
    /// is dropped (hung up on and reaped) after the session is gone.
    helper: Option<Helper>,
    /// The connection was found dead after a failed command.
    lost: bool,
}

impl Link {
    /// Connects, checks the host key (recording an unknown one when `accept_new_host_key`, as
    /// OpenSSH's StrictHostKeyChecking=accept-new does) and logs in.
    pub(super) fn open(d: &Destination, accept_new_host_key: bool) -> Result<Link> {
        let where_ = d.address();
        // Read before connecting: a known_hosts line shipit cannot read stops it here.
        let algorithms =
            known_hosts::algorithms_on_record(&d.known_hosts, &d.known_hosts_name())
                .with_context(|| format!("checking the host key of {} ({where_})", d.label))?;
        let mut session = Session::new().context("cannot start an SSH session")?;
        let mut helper = transport(&mut session, d)?;
        if let Err(e) = handshake(&mut session, d, &algorithms) {
            let e = match helper.as_mut() {
                // A helper that failed has exited or is about to: wait a moment for its last words.
                Some(helper) => {
                    let report = helper.report(Duration::from_secs(1));
                    e.context(format!(
                        "cannot connect to {} ({where_}) through {}: {report}\n  help: {}",
                        d.label,
                        helper.label(),
                        helper.help()
                    ))
                }
                None => e,
            };
            return Err(e);
        }
        let mut link = Link {
            label: d.label.clone(),
            session,
            helper,
            lost: false,
        };
        let checked = auth::verify_host_key(&link.session, d, accept_new_host_key);
        link.explain(checked)?;
        let authenticated = auth::authenticate(&link.session, d);
        link.explain(authenticated)?;
        link.session.set_keepalive(true, KEEPALIVE_SECS);
        link.session.set_timeout(COMMAND_TIMEOUT.as_millis() as u32);
        Ok(link)
    }

    /// Fails at once on a connection already found dead: libssh2 would spend the whole command
    /// timeout on it.
    pub(super) fn still_connected(&mut self) -> Result<()> {
        if !self.lost {
            return Ok(());
        }
        let lost = anyhow::anyhow!("the connection to {} was lost", self.label);
        self.explain(Err(tagged(Category::Connect, lost)))
    }

    /// Notes a dead connection; an error on a session whose helper has died, or whose link
    /// the helper no longer holds, says so and how the helper ended. Whatever libssh2 calls
    /// the failure ("Failure while draining incoming flow", "Unable to send channel data", …),
    /// the socket tells.
    pub(super) fn explain<T>(&mut self, result: Result<T>) -> Result<T> {
        let Err(e) = result else { return result };
        let known = self.lost;
        self.lost = self.lost || link_down(&self.session);
        let Some(helper) = self.helper.as_mut() else {
            return Err(e);
        };
        if !self.lost && !helper.has_exited() {
            return Err(e);
        }
        // A dying helper's end of the socket closes a moment before its exit status can be
        // read (longer on a busy machine): it gets that moment, once.
        let patience = if known {
            Duration::ZERO
        } else {
            HELPER_EXIT_PATIENCE
        };
        let report = helper.report(patience);
        Err(tagged(
            Category::Connect,
            e.context(format!(
                "the connection to {} through {} is gone: {report}",
                self.label,
                helper.label()
            )),
        ))
    }
}

/// Puts the session on its way to the host: over TCP, or through the helper's socketpair.
fn transport(session: &mut Session, d: &Destination) -> Result<Option<Helper>> {
    let where_ = d.address();
    match &d.proxy {
        None => {
            let tcp = tcp_connect(&d.hostname, d.port)
                .with_context(|| format!("cannot reach {} ({where_})", d.label))?;
            // Without TCP_NODELAY, Nagle holds back the second small packet of every exchange
            // (channel open, exec request, EOF) until the server's delayed ACK: about 40 ms per
            // remote command.
            tcp.set_nodelay(true)
                .context("setting TCP_NODELAY on the SSH connection")?;
            session.set_tcp_stream(tcp);
            session.set_timeout(CONNECT_TIMEOUT.as_millis() as u32);
            Ok(None)
        }
        Some(proxy) => {
            let (helper, stream) = Helper::spawn(proxy)
                .with_context(|| format!("cannot reach {} ({where_})", d.label))?;
            session.set_tcp_stream(stream);
            session.set_timeout(PROXY_CONNECT_TIMEOUT.as_millis() as u32);
            Ok(Some(helper))
        }
    }
}

fn handshake(session: &mut Session, d: &Destination, algorithms: &[&str]) -> Result<()> {
    if !algorithms.is_empty() {
        session
            .method_pref(MethodType::HostKey, &algorithms.join(","))
            .context("setting host key preferences")?;
    }
    // AES-CTR is the fastest cipher libssh2 offers for bulk uploads; the rest stay as fallbacks.
    let ciphers = "aes128-ctr,aes256-ctr,chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com";
    session.method_pref(MethodType::CryptCs, ciphers)?;
    session.method_pref(MethodType::CryptSc, ciphers)?;
    session.handshake().map_err(|e| {
        let what = if e.code() == LIBSSH2_TIMEOUT {
            let limit = match d.proxy {
                Some(_) => PROXY_CONNECT_TIMEOUT,
                None => CONNECT_TIMEOUT,
            };
            format!(
                "no SSH handshake from {} within {} s",
                d.label,
                limit.as_secs()
            )
        } else {
            format!("SSH handshake with {} ({}) failed", d.label, d.address())
        };
        anyhow::Error::new(e).context(what)
    })
}

fn tcp_connect(host: &str, port: u16) -> Result<TcpStream> {
    let addresses = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?;
    let mut last = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                last = Some(anyhow::Error::new(e).context(format!("connecting to {address}")))
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("{host} has no address")))
}

/// Frees a channel whose command failed. libssh2 frees a channel by sending its close; when the
/// connection died with a packet half sent, it retries that in a busy loop until the session's
/// timeout (for ever with none). On a dead connection it gets no time for that at all; the
/// caller sets the session's timeout again.
pub(super) fn discard<T>(session: &Session, doomed: T) {
    if link_down(session) {
        session.set_timeout(1);
    }
    drop(doomed);
}

/// Whether the connection under the session is gone: the peer hung up, or the socket failed.
fn link_down(session: &Session) -> bool {
    let mut link = libc::pollfd {
        fd: session.as_raw_fd(),
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call, which does not block.
    let ready = unsafe { libc::poll(&mut link, 1, 0) };
    ready > 0 && link.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLRDHUP) != 0
}
