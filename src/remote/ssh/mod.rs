//! The ssh2 (libssh2) transport: connect with a timeout (over TCP, or through a ProxyJump or
//! ProxyCommand helper), check the host key, authenticate, run commands and reach the service's
//! port through a direct-tcpip channel.
//!
//! `session` makes the session (`auth` checks both sides) and tells a dead link from other
//! failures.

mod auth;
mod session;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ssh2::{Channel, Session};

use self::session::{COMMAND_TIMEOUT, Link, discard};
use super::destination::Destination;
use super::http::parse_http;
use super::{Answer, ExecOutput, Feed, HttpAnswer, Remote, Step, When, as_root, probe};
use crate::error::{Category, Tag, tagged};

#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// OpenSSH's StrictHostKeyChecking=accept-new: record an unknown key, refuse a changed one.
    pub accept_new_host_key: bool,
}

pub struct SshRemote {
    link: Link,
    user: String,
    /// sshd refused a direct-tcpip channel: GETs run on the host itself from then on.
    tunnel_refused: bool,
    notice: Option<String>,
    /// The host's shell that runs steps, once the first step has opened it.
    shell: Option<Shell>,
    round_trips: u32,
}

impl SshRemote {
    pub fn connect(destination: &Destination, options: &ConnectOptions) -> Result<SshRemote> {
        let link = Link::open(destination, options.accept_new_host_key).tag(Category::Connect)?;
        Ok(SshRemote {
            link,
            user: destination.user.clone(),
            tunnel_refused: false,
            notice: None,
            shell: None,
            round_trips: 0,
        })
    }

    /// The SSH session itself, for a command that needs a channel of its own: a terminal,
    /// stdin fed while stdout and stderr stream ([`super::channel`]).
    pub fn session(&self) -> &Session {
        &self.link.session
    }
}

impl Remote for SshRemote {
    fn label(&self) -> &str {
        &self.link.label
    }

    fn is_root(&self) -> bool {
        self.user == "root"
    }

    fn run(&mut self, steps: Vec<Step<'_>>) -> Result<Vec<Answer>> {
        self.link.still_connected()?;
        self.round_trips += 1;
        let mut shell = match self.shell.take() {
            Some(shell) => shell,
            None => {
                let opened = Shell::open(&self.link.session, self.user == "root");
                self.link.explain(opened)?
            }
        };
        let result = shell.run(
            &self.link.session,
            steps,
            &self.link.label,
            self.user == "root",
        );
        self.link
            .session
            .set_timeout(COMMAND_TIMEOUT.as_millis() as u32);
        match result {
            Ok(answers) => {
                if !shell.ended {
                    self.shell = Some(shell);
                }
                Ok(answers)
            }
            Err(e) => {
                // Whatever was half sent or half read, the shell is out of step: a later step
                // opens a new one.
                discard(&self.link.session, shell);
                self.link.explain(Err(e))
            }
        }
    }

    fn exec_streaming(&mut self, command: &str, sink: &mut dyn Write) -> Result<ExecOutput> {
        self.link.still_connected()?;
        self.round_trips += 1;
        self.link.session.set_timeout(0);
        let result = exec_streaming(&self.link.session, command, sink);
        self.link
            .session
            .set_timeout(COMMAND_TIMEOUT.as_millis() as u32);
        self.link.explain(result)
    }

    fn http_get(
        &mut self,
        host: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<HttpAnswer> {
        self.link.still_connected()?;
        if !self.tunnel_refused {
            self.round_trips += 1;
            self.link
                .session
                .set_timeout(timeout.as_millis().max(1) as u32);
            let answer = http_get(&self.link.session, host, port, path);
            self.link
                .session
                .set_timeout(COMMAND_TIMEOUT.as_millis() as u32);
            match answer {
                Err(e) if probe::is_refused(&e) => self.tunnel_refused = true,
                answer => return self.link.explain(answer),
            }
        }
        let first = self.notice.is_none();
        let (tool, answer) = probe::get(self, host, port, path, timeout);
        if let Some(tool) = tool.filter(|_| first) {
            self.notice = Some(format!(
                "sshd on {} refuses TCP forwarding (AllowTcpForwarding no): probing from the host \
                 itself with {tool}",
                self.link.label
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

    fn round_trips(&self) -> u32 {
        self.round_trips
    }
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

/// The channel is fed in large writes: libssh2 pipelines only within one write call.
const CHUNK: usize = 1 << 20;

/// The host's shell (`shell.sh`, as root): steps go in framed on its stdin, answers come back
/// framed on its stdout. One per connection, so a deploy pays for one sshd session, one PAM
/// login and one `sudo`, however many steps it runs.
struct Shell {
    channel: Channel,
    /// Marks the shell's answers: random, so no step's output can pass for one.
    nonce: String,
    /// Its first line, `<nonce> ready`, is still to come: it is read with the first answers,
    /// so opening the shell costs no round trip of its own.
    unready: bool,
    /// Bytes read past the last answer taken.
    buffer: Vec<u8>,
    /// What the shell itself wrote on stderr while steps were sent (steps' own stderr comes
    /// with their answers): `sudo` refusing, say.
    said: Vec<u8>,
    /// It ended after a direct step failed: a new one takes the next batch.
    ended: bool,
}

impl Shell {
    fn open(session: &Session, is_root: bool) -> Result<Shell> {
        let nonce = nonce();
        let driver = format!("nonce={nonce}\n{}", include_str!("../shell.sh"));
        let mut channel = session
            .channel_session()
            .context("cannot open a channel for the host's shell")
            .tag(Category::Connect)?;
        channel
            .exec(&as_root(is_root, &driver))
            .context("cannot start the host's shell")
            .tag(Category::Connect)?;
        Ok(Shell {
            channel,
            nonce,
            unready: true,
            buffer: Vec::new(),
            said: Vec::new(),
            ended: false,
        })
    }

    /// Sends every step, then reads every answer.
    fn run(
        &mut self,
        session: &Session,
        steps: Vec<Step<'_>>,
        label: &str,
        is_root: bool,
    ) -> Result<Vec<Answer>> {
        let started = Instant::now();
        let feeds: Vec<Feed> = steps.iter().map(|s| s.feed).collect();
        // Sent without blocking, so what the shell answers meanwhile is read as it comes: a
        // direct step that fails ends the shell with its answer while its input is still on
        // the way (a full disk during the upload), and a blocking write would wait for a window
        // sshd no longer opens. A shell that ended gets nothing more; its answers are read.
        session.set_blocking(false);
        let sent = (|| {
            for (index, step) in steps.into_iter().enumerate() {
                // A batch's first step runs whatever the last batch's last step did.
                if !self.send(session, step, index == 0)? {
                    break;
                }
            }
            Ok::<_, anyhow::Error>(())
        })();
        session.set_blocking(true);
        sent?;
        // No `flush()`: libssh2's channel flush discards what has arrived to be read (the
        // shell's `ready` line, say), and every write above has handed its bytes to libssh2.
        if self.unready {
            self.ready(label, is_root)?;
        }
        let mut answers = Vec::new();
        for feed in feeds {
            if self.ended {
                answers.push(Answer::Skipped);
                continue;
            }
            let answer = self.answer(started)?;
            if let (Feed::Direct, Answer::Ran { output, .. }) = (feed, &answer) {
                self.ended = !output.success();
            }
            answers.push(answer);
        }
        Ok(answers)
    }

    /// Sends one step; false when the shell ended before taking all of it.
    fn send(&mut self, session: &Session, step: Step<'_>, first: bool) -> Result<bool> {
        let when = match step.when {
            When::AfterSuccess if !first => "if-ok",
            _ => "always",
        };
        let len = step.input.as_ref().map_or(0, |i| i.len);
        let how = match step.feed {
            Feed::Relay => "relay",
            Feed::Direct => "direct",
        };
        let header = format!("{} {} {len} {when} {how}\n", self.nonce, step.script.len());
        if !self.write(session, header.as_bytes())?
            || !self.write(session, step.script.as_bytes())?
        {
            return Ok(false);
        }
        let Some(mut input) = step.input else {
            return Ok(true);
        };
        let mut buffer = vec![0; CHUNK];
        let mut sent = 0u64;
        while sent < input.len {
            let want = (input.len - sent).min(CHUNK as u64) as usize;
            let n = input.data.read(&mut buffer[..want]).map_err(|e| {
                if crate::interrupt::requested() {
                    crate::interrupt::interrupted()
                } else {
                    anyhow::Error::new(e).context("reading local data to send")
                }
            })?;
            anyhow::ensure!(
                n > 0,
                "the data for {} ended after {sent} of {} bytes",
                step.name,
                input.len
            );
            if !self.write(session, &buffer[..n])? {
                return Ok(false);
            }
            sent += n as u64;
            (input.progress)(sent);
        }
        Ok(true)
    }

    /// Writes all of `data` on the non-blocking session, unless the shell ends first (false).
    /// While the channel takes nothing, what the shell says is read: unread, it would keep
    /// the shell's end from being seen.
    fn write(&mut self, session: &Session, mut data: &[u8]) -> Result<bool> {
        let mut deadline = Instant::now() + COMMAND_TIMEOUT;
        while !data.is_empty() {
            match self.channel.write(data) {
                Ok(n) => {
                    data = &data[n..];
                    deadline = Instant::now() + COMMAND_TIMEOUT;
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e).context("sending steps to the host's shell"))
                        .tag(Category::Connect);
                }
            }
            self.take_output()?;
            if self.channel.eof() {
                return Ok(false);
            }
            if Instant::now() >= deadline {
                return Err(tagged(
                    Category::Connect,
                    anyhow::anyhow!(
                        "the host's shell took nothing for {} s",
                        COMMAND_TIMEOUT.as_secs()
                    ),
                ));
            }
            wait_for_socket(session, deadline)?;
        }
        Ok(true)
    }

    /// Moves what has arrived on the non-blocking channel into `buffer` (stdout) and `said`
    /// (stderr).
    fn take_output(&mut self) -> Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        for id in [0, 1] {
            loop {
                match self.channel.stream(id).read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) if id == 0 => self.buffer.extend_from_slice(&chunk[..n]),
                    Ok(n) => self.said.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        return Err(anyhow::Error::new(e).context("reading the host's shell"))
                            .tag(Category::Connect);
                    }
                }
            }
        }
        Ok(())
    }

    /// The shell's first line. Without it the shell never started: for a login user other
    /// than root, that is `sudo -n` refusing.
    fn ready(&mut self, label: &str, is_root: bool) -> Result<()> {
        let line = format!("{} ready\n", self.nonce);
        if self.read_until(line.as_bytes()).is_ok() {
            self.unready = false;
            return Ok(());
        }
        let _ = self.channel.stderr().read_to_end(&mut self.said);
        let _ = self.channel.wait_close();
        let status = self.channel.exit_status().unwrap_or(-1);
        let said = String::from_utf8_lossy(&self.said);
        let said = said.trim();
        if is_root {
            crate::fail!(
                Remote,
                "the shell on {label} did not start (exit status {status}): {said}"
            );
        }
        crate::fail!(
            Remote,
            "{label}: the login user needs passwordless sudo (`sudo -n sh` exited {status}: \
             {said})\n  \
             help: on {label}, add a file /etc/sudoers.d/shipit with `USER ALL=(root) NOPASSWD: \
             ALL` (USER = the login user), or deploy as root"
        )
    }

    fn answer(&mut self, started: Instant) -> Result<Answer> {
        let mark = format!("\n{} ", self.nonce);
        let stdout = self.read_until(mark.as_bytes())?;
        let after = started.elapsed();
        let status = String::from_utf8_lossy(&self.read_until(b"\n")?).into_owned();
        if status == "skipped" {
            return Ok(Answer::Skipped);
        }
        let status: i32 = status.parse().map_err(|_| {
            tagged(
                Category::Connect,
                anyhow::anyhow!("the host's shell lost track of the steps ({status:?})"),
            )
        })?;
        let stderr = if status == 0 {
            Vec::new()
        } else {
            let end = format!("\n{} end\n", self.nonce);
            self.read_until(end.as_bytes())?
        };
        Ok(Answer::Ran {
            output: ExecOutput {
                status,
                signal: None,
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            },
            after,
        })
    }

    /// What comes before the next `marker` (which is taken too).
    fn read_until(&mut self, marker: &[u8]) -> Result<Vec<u8>> {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut searched = 0;
        loop {
            if let Some(at) = self.buffer[searched..]
                .windows(marker.len())
                .position(|w| w == marker)
            {
                let at = searched + at;
                let before = self.buffer[..at].to_vec();
                self.buffer.drain(..at + marker.len());
                return Ok(before);
            }
            searched = self.buffer.len().saturating_sub(marker.len() - 1);
            let mut chunk = [0u8; 16 * 1024];
            let n = patiently(deadline, || self.channel.read(&mut chunk)).tag(Category::Connect)?;
            if n == 0 {
                return Err(tagged(
                    Category::Connect,
                    anyhow::anyhow!("the host's shell ended in the middle of an answer"),
                ));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        // The shell ends when its input does; nothing waits for that.
        let _ = self.channel.send_eof();
        let _ = self.channel.close();
    }
}

/// Retries `io` until `deadline` while libssh2 says it timed out. A blocking libssh2 call waits
/// only until the next keepalive is due (15 s) and then fails with "Timed out waiting on
/// socket" instead of sending it; a step that works quietly for longer (`systemd-analyze` on a
/// busy host) would fail with it. The retry sends the keepalive and waits on.
fn patiently<T>(
    deadline: Instant,
    mut io: impl FnMut() -> std::io::Result<T>,
) -> std::io::Result<T> {
    loop {
        match io() {
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut && Instant::now() < deadline => {}
            done => return done,
        }
    }
}

/// Sleeps until the non-blocking session's socket is ready for what libssh2 waits for, a
/// keepalive is due, or `deadline`; sends the keepalive a blocking call would have sent.
fn wait_for_socket(session: &Session, deadline: Instant) -> Result<()> {
    // A keepalive that cannot go out now goes with the next round.
    let next_keepalive = session.keepalive_send().unwrap_or(1).max(1);
    let mut events = libc::POLLIN;
    if matches!(
        session.block_directions(),
        ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
    ) {
        events |= libc::POLLOUT;
    }
    let mut socket = libc::pollfd {
        fd: session.as_raw_fd(),
        events,
        revents: 0,
    };
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .min(Duration::from_secs(u64::from(next_keepalive)));
    // SAFETY: one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut socket, 1, wait.as_millis() as i32) };
    if ready < 0 {
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(anyhow::Error::new(error).context("waiting for the connection"))
                .tag(Category::Connect);
        }
    }
    Ok(())
}

/// 128 random bits in hex, for markers no host output can guess.
fn nonce() -> String {
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        use sha2::Digest;
        let seed = format!("{:?} {}", std::time::SystemTime::now(), std::process::id());
        bytes.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes())[..16]);
    }
    hex::encode(bytes)
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
