//! The batched shell protocol, shipit's side of [`shell.sh`](../shell.sh): steps framed with a
//! nonce and sent without blocking while the shell's answers are read, each step's input relayed
//! or read by the step directly, reads retried past libssh2's keepalive timeouts, and what the
//! shell sends bounded.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ssh2::{Channel, Session};

use super::session::COMMAND_TIMEOUT;
use crate::error::{Category, Tag, tagged};
use crate::remote::{Answer, ExecOutput, Feed, Step, When, as_root};

/// The channel is fed in large writes: libssh2 pipelines only within one write call.
const CHUNK: usize = 1 << 20;
/// The most the host's shell may send without ending an answer: every step answers with a few
/// lines or a listing, and a host that sends without end must not fill this machine's memory.
const MAX_ANSWER: usize = 16 << 20;
/// What is kept of the shell's own stderr (`sudo` refusing, say): its first lines say why.
const MAX_SAID: usize = 64 << 10;

/// The host's shell (`shell.sh`, as root): steps go in framed on its stdin, answers come back
/// framed on its stdout. One per connection, so a deploy pays for one sshd session, one PAM
/// login and one `sudo`, however many steps it runs.
pub(super) struct Shell {
    channel: Channel,
    /// Marks the shell's answers: random, so no step's output can pass for one.
    nonce: String,
    /// It is still to be sent the nonce, and its first line, `<nonce> ready`, is still to
    /// come: both go with the first batch, so opening the shell costs no round trip of its own.
    unready: bool,
    /// Bytes read past the last answer taken.
    buffer: Vec<u8>,
    /// What the shell itself wrote on stderr while steps were sent (steps' own stderr comes
    /// with their answers): `sudo` refusing, say.
    said: Vec<u8>,
    /// It ended after a direct step failed: a new one takes the next batch.
    pub(super) ended: bool,
}

impl Shell {
    pub(super) fn open(session: &Session, is_root: bool) -> Result<Shell> {
        let nonce = nonce();
        let mut channel = session
            .channel_session()
            .context("cannot open a channel for the host's shell")
            .tag(Category::Connect)?;
        channel
            .exec(&as_root(is_root, include_str!("../shell.sh")))
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
    pub(super) fn run(
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
            // The nonce goes first, on stdin: in the shell's command, any user on the host
            // could read it.
            if self.unready && !self.write(session, format!("{}\n", self.nonce).as_bytes())? {
                return Ok(());
            }
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
            let n =
                input.data.read(&mut buffer[..want]).map_err(
                    |e| match crate::cancel::read_error(e) {
                        e if crate::error::category_of(&e).is_some() => e,
                        e => e.context("reading local data to send"),
                    },
                )?;
            anyhow::ensure!(
                n > 0,
                "the data for {} ended after {sent} of {} bytes",
                step.kind,
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
                    Ok(n) => {
                        let room = MAX_SAID.saturating_sub(self.said.len());
                        self.said.extend_from_slice(&chunk[..n.min(room)]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        return Err(anyhow::Error::new(e).context("reading the host's shell"))
                            .tag(Category::Connect);
                    }
                }
            }
        }
        if self.buffer.len() > MAX_ANSWER {
            return Err(overflowing());
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
        let room = MAX_SAID.saturating_sub(self.said.len()) as u64;
        let _ = self.channel.stderr().take(room).read_to_end(&mut self.said);
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
            if self.buffer.len() > MAX_ANSWER {
                return Err(overflowing());
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

/// The host's shell sent more than [`MAX_ANSWER`] without ending an answer.
fn overflowing() -> anyhow::Error {
    tagged(
        Category::Remote,
        anyhow::anyhow!(
            "the host's shell sent more than {} MiB without ending its answer; shipit stopped \
             reading it",
            MAX_ANSWER >> 20
        ),
    )
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
