//! The ssh2 (libssh2) transport: connect with a timeout (over TCP, or through a ProxyJump or
//! ProxyCommand helper), check the host key, authenticate, run commands and reach the service's
//! port through a direct-tcpip channel.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use ssh2::{Channel, MethodType, Session};

use super::destination::Destination;
use super::known_hosts::{self, Verdict};
use super::proxy::Helper;
use super::{ExecOutput, HttpAnswer, Remote, probe};
use crate::error::{Category, Tag, tagged};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Through a bastion, connecting and the handshake share one deadline: the helper logs in to
/// the bastion first, then opens the way on. Direct connections get the same in two halves.
const PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Long enough for `systemctl restart` of a slow service; `logs -f` lifts it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
const KEEPALIVE_SECS: u32 = 15;
/// The channel is fed in large writes: libssh2 pipelines only within one write call.
const CHUNK: usize = 1 << 20;
/// libssh2's LIBSSH2_ERROR_TIMEOUT.
const LIBSSH2_TIMEOUT: ssh2::ErrorCode = ssh2::ErrorCode::Session(-9);

#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// OpenSSH's StrictHostKeyChecking=accept-new: record an unknown key, refuse a changed one.
    pub accept_new_host_key: bool,
}

pub struct SshRemote {
    label: String,
    user: String,
    session: Session,
    /// sshd refused a direct-tcpip channel: GETs run on the host itself from then on.
    tunnel_refused: bool,
    notice: Option<String>,
    /// The ProxyJump/ProxyCommand process carrying the session. Declared after `session`, so it
    /// is dropped (hung up on and reaped) after the session is gone.
    helper: Option<Helper>,
    /// The connection was found dead after a failed command.
    lost: bool,
}

impl SshRemote {
    pub fn connect(destination: &Destination, options: &ConnectOptions) -> Result<SshRemote> {
        connect(destination, options).tag(Category::Connect)
    }

    /// The SSH session itself, for a command that needs a channel of its own: a terminal,
    /// stdin fed while stdout and stderr stream ([`super::channel`]).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Fails at once on a connection already found dead: libssh2 would spend the whole command
    /// timeout on it.
    fn still_connected(&mut self) -> Result<()> {
        if !self.lost {
            return Ok(());
        }
        let lost = anyhow::anyhow!("the connection to {} was lost", self.label);
        self.explain(Err(tagged(Category::Connect, lost)))
    }

    /// Notes a dead connection; an error on a session whose helper has died says why it died.
    fn explain<T>(&mut self, result: Result<T>) -> Result<T> {
        let Err(e) = result else { return result };
        self.lost = self.lost || link_down(&self.session);
        let Some(helper) = self.helper.as_mut() else {
            return Err(e);
        };
        if !helper.has_exited() {
            return Err(e);
        }
        let report = helper.report(Duration::ZERO);
        Err(e.context(format!(
            "the connection to {} through {} is gone: {report}",
            self.label,
            helper.label()
        )))
    }
}

fn connect(d: &Destination, options: &ConnectOptions) -> Result<SshRemote> {
    let where_ = d.address();
    // Read before connecting: a known_hosts line shipit cannot read stops it here.
    let algorithms = known_hosts::algorithms_on_record(&d.known_hosts, &d.known_hosts_name())
        .with_context(|| format!("checking the host key of {} ({where_})", d.label))?;
    let mut session = Session::new().context("cannot start an SSH session")?;
    let mut helper = match &d.proxy {
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
            None
        }
        Some(proxy) => {
            let (helper, stream) = Helper::spawn(proxy)
                .with_context(|| format!("cannot reach {} ({where_})", d.label))?;
            session.set_tcp_stream(stream);
            session.set_timeout(PROXY_CONNECT_TIMEOUT.as_millis() as u32);
            Some(helper)
        }
    };
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
    let mut remote = SshRemote {
        label: d.label.clone(),
        user: d.user.clone(),
        session,
        helper,
        lost: false,
        tunnel_refused: false,
        notice: None,
    };
    let checked = verify_host_key(&remote.session, d, options);
    remote.explain(checked)?;
    let authenticated = authenticate(&remote.session, d);
    remote.explain(authenticated)?;
    remote.session.set_keepalive(true, KEEPALIVE_SECS);
    remote
        .session
        .set_timeout(COMMAND_TIMEOUT.as_millis() as u32);
    Ok(remote)
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

fn verify_host_key(session: &Session, d: &Destination, options: &ConnectOptions) -> Result<()> {
    let (blob, _) = session.host_key().context("the server sent no host key")?;
    let fingerprint = known_hosts::fingerprint(blob);
    let form = d.known_hosts_name();
    let first_file = || {
        d.known_hosts
            .first()
            .map_or_else(|| "~/.ssh/known_hosts".into(), |f| f.display().to_string())
    };
    match known_hosts::check(&d.known_hosts, &form, blob)
        .with_context(|| format!("checking the host key of {} ({form})", d.label))?
    {
        Verdict::Known => Ok(()),
        Verdict::Unknown if options.accept_new_host_key => {
            let file = d
                .known_hosts
                .first()
                .context("no known_hosts file is configured")?;
            known_hosts::append(
                file,
                &known_hosts::line_for(&form, blob, d.hash_known_hosts)?,
            )?;
            eprintln!(
                "    Accepted new host key for {form} ({fingerprint}), recorded in {}",
                file.display()
            );
            Ok(())
        }
        Verdict::Unknown => anyhow::bail!(
            "the host key of {} ({form}) is not known: {fingerprint}\n  \
             help: check the fingerprint with the host's owner (on the host: `ssh-keygen -lf \
             /etc/ssh/ssh_host_ed25519_key.pub`), then re-run with --accept-new-host-key to \
             record it in {}",
            d.label,
            first_file()
        ),
        Verdict::Changed { file, line } => anyhow::bail!(
            "REFUSED: the host key of {} ({form}) has CHANGED; it is now {fingerprint}. \
             Someone may be intercepting the connection, or the host was reinstalled.\n  \
             the recorded key is at {}:{line}\n  \
             help: if the change is expected, remove the old key with `ssh-keygen -R '{form}' -f {}` \
             and connect again with --accept-new-host-key",
            d.label,
            file.display(),
            file.display()
        ),
        Verdict::Revoked { file, line } => anyhow::bail!(
            "REFUSED: the host key of {} ({form}) is marked @revoked at {}:{line}",
            d.label,
            file.display()
        ),
        Verdict::CertificateOnly { file, line } => anyhow::bail!(
            "REFUSED: {} ({form}) is vouched for only by the @cert-authority line {}:{line}, and \
             shipit's SSH library (libssh2) cannot check host certificates; it offered the plain \
             key {fingerprint}\n  \
             help: after checking that fingerprint with the host's owner, add the host's own key \
             to {} (or re-run with --accept-new-host-key once the @cert-authority line no longer \
             names it)",
            d.label,
            file.display(),
            first_file()
        ),
    }
}

/// ssh-agent (every identity, not just the first), then identity files; the error lists all tried.
fn authenticate(session: &Session, d: &Destination) -> Result<()> {
    let mut tried = Vec::new();
    match agent_auth(session, &d.user, &mut tried) {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(e) => tried.push(format!("ssh-agent: {e}")),
    }
    for identity in &d.identity_files {
        if !identity.is_file() {
            continue;
        }
        match session.userauth_pubkey_file(&d.user, None, identity, None) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => tried.push(format!("{}: not accepted", identity.display())),
            Err(e) => tried.push(format!("{}: {}", identity.display(), e.message())),
        }
    }
    if tried.is_empty() {
        tried.push("no ssh-agent and none of the identity files exist".into());
    }
    Err(tagged(
        Category::Connect,
        anyhow::anyhow!(
            "{} refused authentication as {}; tried:\n{}\n  \
             help: load a key into ssh-agent, pass -i KEY, or set IdentityFile in ~/.ssh/config",
            d.label,
            d.user,
            tried
                .iter()
                .map(|t| format!("  - {t}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    ))
}

fn agent_auth(session: &Session, user: &str, tried: &mut Vec<String>) -> Result<bool> {
    if std::env::var_os("SSH_AUTH_SOCK").is_none() {
        return Ok(false);
    }
    let mut agent = session.agent()?;
    agent.connect()?;
    agent.list_identities()?;
    for identity in agent.identities()? {
        if agent.userauth(user, &identity).is_ok() && session.authenticated() {
            return Ok(true);
        }
        tried.push(format!(
            "ssh-agent key {}: not accepted",
            identity.comment()
        ));
    }
    Ok(false)
}

impl Remote for SshRemote {
    fn label(&self) -> &str {
        &self.label
    }

    fn is_root(&self) -> bool {
        self.user == "root"
    }

    fn exec(
        &mut self,
        command: &str,
        stdin: Option<&mut dyn Read>,
        progress: &dyn Fn(u64),
    ) -> Result<ExecOutput> {
        self.still_connected()?;
        let result = exec(&self.session, &self.label, command, stdin, progress);
        self.session.set_timeout(COMMAND_TIMEOUT.as_millis() as u32);
        self.explain(result)
    }

    fn exec_streaming(&mut self, command: &str, sink: &mut dyn Write) -> Result<ExecOutput> {
        self.still_connected()?;
        self.session.set_timeout(0);
        let result = exec_streaming(&self.session, command, sink);
        self.session.set_timeout(COMMAND_TIMEOUT.as_millis() as u32);
        self.explain(result)
    }

    fn open_stdin(&mut self, command: &str) -> Result<Box<dyn Write + Send>> {
        let mut channel = self.session.channel_session()?;
        channel
            .exec(command)
            .with_context(|| format!("running `{command}` on {}", self.label))?;
        Ok(Box::new(Stdin(channel)))
    }

    fn http_get(
        &mut self,
        host: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<HttpAnswer> {
        self.still_connected()?;
        if !self.tunnel_refused {
            self.session.set_timeout(timeout.as_millis().max(1) as u32);
            let answer = http_get(&self.session, host, port, path);
            self.session.set_timeout(COMMAND_TIMEOUT.as_millis() as u32);
            match answer {
                Err(e) if probe::is_refused(&e) => self.tunnel_refused = true,
                answer => return answer,
            }
        }
        let first = self.notice.is_none();
        let (tool, answer) = probe::get(self, host, port, path, timeout);
        if let Some(tool) = tool.filter(|_| first) {
            self.notice = Some(format!(
                "sshd on {} refuses TCP forwarding (AllowTcpForwarding no): probing from the host \
                 itself with {tool}",
                self.label
            ));
        }
        answer
    }

    fn take_notice(&mut self) -> Option<String> {
        // Handed out once; an empty notice marks it as given.
        self.notice
            .as_mut()
            .filter(|n| !n.is_empty())
            .map(std::mem::take)
    }
}

/// A running command's stdin; dropping it sends EOF and closes the channel without waiting.
struct Stdin(ssh2::Channel);

impl Write for Stdin {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.write(data)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Drop for Stdin {
    fn drop(&mut self) {
        let _ = self.0.send_eof();
        let _ = self.0.close();
    }
}

fn exec(
    session: &Session,
    label: &str,
    command: &str,
    stdin: Option<&mut dyn Read>,
    progress: &dyn Fn(u64),
) -> Result<ExecOutput> {
    let context = || format!("running `{command}` on {label}");
    let mut channel = session
        .channel_session()
        .with_context(context)
        .tag(Category::Connect)?;
    let done = talk(&mut channel, command, stdin, progress)
        .and_then(|(stdout, stderr)| finish(&mut channel, stdout, stderr))
        .with_context(context);
    if done.is_err() {
        discard(session, channel);
    }
    done
}

/// Starts `command`, feeds it `stdin` and reads its stdout and stderr.
fn talk(
    channel: &mut Channel,
    command: &str,
    stdin: Option<&mut dyn Read>,
    progress: &dyn Fn(u64),
) -> Result<(String, String)> {
    channel.exec(command).tag(Category::Connect)?;
    if let Some(input) = stdin {
        let mut buffer = vec![0; CHUNK];
        let mut sent = 0;
        loop {
            let n = input
                .read(&mut buffer)
                .context("reading local data to send")?;
            if n == 0 {
                break;
            }
            channel.write_all(&buffer[..n]).tag(Category::Connect)?;
            sent += n as u64;
            progress(sent);
        }
    }
    channel.send_eof().tag(Category::Connect)?;
    let mut stdout = String::new();
    channel.read_to_string(&mut stdout).tag(Category::Connect)?;
    let mut stderr = String::new();
    channel
        .stderr()
        .read_to_string(&mut stderr)
        .tag(Category::Connect)?;
    Ok((stdout, stderr))
}

fn exec_streaming(session: &Session, command: &str, sink: &mut dyn Write) -> Result<ExecOutput> {
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

/// Frees a channel whose command failed. libssh2 frees a channel by sending its close; when the
/// connection died with a packet half sent, it retries that in a busy loop until the session's
/// timeout (for ever with none). On a dead connection it gets no time for that at all; the
/// caller sets the session's timeout again.
fn discard(session: &Session, channel: Channel) {
    if link_down(session) {
        session.set_timeout(1);
    }
    drop(channel);
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

fn http_get(session: &Session, host: &str, port: u16, path: &str) -> Result<HttpAnswer> {
    let mut channel = session
        .channel_direct_tcpip(host, port, None)
        .with_context(|| {
            format!("cannot open a tunnel to {host}:{port} (does sshd allow TCP forwarding?)")
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

pub fn parse_http(response: &[u8]) -> Result<HttpAnswer> {
    let text = String::from_utf8_lossy(response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| {
            let start: String = text.chars().take(80).collect();
            format!("not an HTTP response: {start:?}")
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok(HttpAnswer { status, body })
}

/// Identity files given with `-i`, checked before anything connects.
pub fn check_identity_files(files: &[PathBuf]) -> Result<()> {
    for file in files {
        if !file.is_file() {
            crate::fail!(Usage, "identity file {} does not exist", file.display());
        }
    }
    Ok(())
}
