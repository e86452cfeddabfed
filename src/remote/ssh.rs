//! The ssh2 (libssh2) transport: connect with a timeout, check the host key, authenticate,
//! run commands and reach the service's port through a direct-tcpip channel.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use ssh2::{MethodType, Session};

use super::destination::Destination;
use super::known_hosts::{self, Verdict};
use super::{ExecOutput, HttpAnswer, Remote, probe};
use crate::error::{Category, Tag, tagged};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Long enough for `systemctl restart` of a slow service; `logs -f` lifts it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
const KEEPALIVE_SECS: u32 = 15;
/// The channel is fed in large writes: libssh2 pipelines only within one write call.
const CHUNK: usize = 1 << 20;

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
}

impl SshRemote {
    pub fn connect(destination: &Destination, options: &ConnectOptions) -> Result<SshRemote> {
        connect(destination, options).tag(Category::Connect)
    }
}

fn connect(d: &Destination, options: &ConnectOptions) -> Result<SshRemote> {
    let where_ = format!("{}@{}:{}", d.user, d.hostname, d.port);
    let tcp = tcp_connect(&d.hostname, d.port)
        .with_context(|| format!("cannot reach {} ({where_})", d.label))?;
    // Without TCP_NODELAY, Nagle holds back the second small packet of every exchange (channel
    // open, exec request, EOF) until the server's delayed ACK: about 40 ms per remote command.
    tcp.set_nodelay(true)
        .context("setting TCP_NODELAY on the SSH connection")?;
    let mut session = Session::new().context("cannot start an SSH session")?;
    session.set_tcp_stream(tcp);
    session.set_timeout(CONNECT_TIMEOUT.as_millis() as u32);
    let algorithms = known_hosts::algorithms_on_record(&d.known_hosts, &d.hostname, d.port)?;
    if !algorithms.is_empty() {
        session
            .method_pref(MethodType::HostKey, &algorithms.join(","))
            .context("setting host key preferences")?;
    }
    // AES-CTR is the fastest cipher libssh2 offers for bulk uploads; the rest stay as fallbacks.
    let ciphers = "aes128-ctr,aes256-ctr,chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com";
    session.method_pref(MethodType::CryptCs, ciphers)?;
    session.method_pref(MethodType::CryptSc, ciphers)?;
    session
        .handshake()
        .with_context(|| format!("SSH handshake with {} ({where_}) failed", d.label))?;
    verify_host_key(&session, d, options)?;
    authenticate(&session, d)?;
    session.set_keepalive(true, KEEPALIVE_SECS);
    session.set_timeout(COMMAND_TIMEOUT.as_millis() as u32);
    Ok(SshRemote {
        label: d.label.clone(),
        user: d.user.clone(),
        session,
        tunnel_refused: false,
        notice: None,
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
    let form = known_hosts::host_form(&d.hostname, d.port);
    match known_hosts::check(&d.known_hosts, &d.hostname, d.port, blob)? {
        Verdict::Known => Ok(()),
        Verdict::Unknown if options.accept_new_host_key => {
            let file = d
                .known_hosts
                .first()
                .context("no known_hosts file is configured")?;
            known_hosts::append(
                file,
                &known_hosts::line_for(&d.hostname, d.port, blob, d.hash_known_hosts)?,
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
            d.known_hosts
                .first()
                .map_or_else(|| "~/.ssh/known_hosts".into(), |f| f.display().to_string())
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
        let context = || format!("running `{command}` on {}", self.label);
        let mut channel = self
            .session
            .channel_session()
            .with_context(context)
            .tag(Category::Connect)?;
        channel
            .exec(command)
            .with_context(context)
            .tag(Category::Connect)?;
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
                channel
                    .write_all(&buffer[..n])
                    .with_context(context)
                    .tag(Category::Connect)?;
                sent += n as u64;
                progress(sent);
            }
        }
        channel
            .send_eof()
            .with_context(context)
            .tag(Category::Connect)?;
        let mut stdout = String::new();
        channel
            .read_to_string(&mut stdout)
            .with_context(context)
            .tag(Category::Connect)?;
        let mut stderr = String::new();
        channel
            .stderr()
            .read_to_string(&mut stderr)
            .with_context(context)
            .tag(Category::Connect)?;
        finish(channel, stdout, stderr).with_context(context)
    }

    fn exec_streaming(&mut self, command: &str, sink: &mut dyn Write) -> Result<ExecOutput> {
        self.session.set_timeout(0);
        let mut channel = self.session.channel_session()?;
        channel.exec(command)?;
        channel.send_eof()?;
        let copied = std::io::copy(&mut channel, sink);
        self.session.set_timeout(COMMAND_TIMEOUT.as_millis() as u32);
        copied.context("reading the remote output")?;
        let mut stderr = String::new();
        channel.stderr().read_to_string(&mut stderr)?;
        finish(channel, String::new(), stderr)
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

fn finish(mut channel: ssh2::Channel, stdout: String, stderr: String) -> Result<ExecOutput> {
    // The exit status is only final after the close; it reads 0 when the server sent none.
    channel.wait_close()?;
    Ok(ExecOutput {
        status: channel.exit_status()?,
        signal: channel.exit_signal()?.exit_signal,
        stdout,
        stderr,
    })
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
