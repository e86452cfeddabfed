//! A command on a channel of its own, for `exec`, `logs` and host hooks: stdout and stderr
//! handed over as they arrive (not collected to the end), this process's stdin fed to it
//! meanwhile, a terminal when asked for (`exec -t`), keepalives, a dead link noticed, and Ctrl-C
//! or a deadline turned into a command that stops it on the host.
//!
//! libssh2 runs one channel at a time per session lock, so a blocking read would keep stdin
//! from being written: the session is switched to non-blocking for the exchange and one loop
//! polls the socket and stdin together.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ssh2::{BlockDirections, Channel, Session};

use crate::cancel::Cancel;
use crate::error::{Category, Tag, tagged};

/// How long the loop sleeps at most between checks for Ctrl-C and a resized terminal.
const TICK: Duration = Duration::from_millis(200);
/// Unacknowledged data older than this ends the connection (TCP_USER_TIMEOUT): with keepalives
/// going out every 15 s, a host that vanished without a word is noticed within a minute instead
/// of the kernel's quarter of an hour.
const DEAD_LINK: Duration = Duration::from_secs(30);
const CHUNK: usize = 32 * 1024;
/// libssh2's LIBSSH2_ERROR_EAGAIN: a non-blocking call that has to be made again.
const EAGAIN: ssh2::ErrorCode = ssh2::ErrorCode::Session(-37);

/// A terminal on the host (`ssh -t`): its type and size in characters.
#[derive(Debug, Clone)]
pub struct Terminal {
    pub term: String,
    pub columns: u32,
    pub rows: u32,
}

impl Terminal {
    /// A terminal like the one this process runs in: `$TERM` and stdout's size (80×24 when it
    /// is not a terminal).
    pub fn like_this_one() -> Terminal {
        let term = std::env::var("TERM")
            .ok()
            .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_graphic()))
            .unwrap_or_else(|| "xterm".into());
        let (columns, rows) = window_size().unwrap_or((80, 24));
        Terminal {
            term,
            columns,
            rows,
        }
    }
}

/// What [`run`] connects the command to.
pub struct Wiring<'a> {
    /// Request a terminal; stderr then arrives mixed into stdout, as on a terminal.
    pub terminal: Option<Terminal>,
    /// Feed this process's stdin to the command; otherwise it reads end-of-file at once.
    pub stdin: bool,
    pub stdout: &'a mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    pub stderr: &'a mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    /// Set by Ctrl-C (see [`crate::cancel`]).
    pub cancel: Cancel,
    /// Run once on the same connection once `cancel` is set or `deadline` has passed, to stop
    /// the command on the host; its own output then ends and [`run`] returns.
    pub on_interrupt: Option<String>,
    /// When the command has run long enough: it is stopped as Ctrl-C would stop it.
    pub deadline: Option<Instant>,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub status: i32,
    /// Set when it was killed by a signal (the status then reads 0).
    pub signal: Option<String>,
    /// Ctrl-C was pressed and `on_interrupt` ran.
    pub interrupted: bool,
    /// The deadline passed and `on_interrupt` ran.
    pub overdue: bool,
}

/// Runs `command` over `session` (a blocking one, as [`super::ssh::SshRemote`] keeps it),
/// wired as `wiring` says, until it ends. A lost connection is a `Connect` error naming `label`.
pub fn run(session: &Session, label: &str, command: &str, wiring: Wiring) -> Result<Ended> {
    let lost = |e: anyhow::Error| {
        tagged(
            Category::Connect,
            e.context(format!("the connection to {label} was lost")),
        )
    };
    let mut channel = session
        .channel_session()
        .with_context(|| format!("cannot open a channel to {label}"))
        .tag(Category::Connect)?;
    if let Some(terminal) = &wiring.terminal {
        channel
            .request_pty(
                &terminal.term,
                None,
                Some((terminal.columns, terminal.rows, 0, 0)),
            )
            .with_context(|| format!("{label} refused a terminal"))
            .tag(Category::Remote)?;
    }
    channel
        .exec(command)
        .with_context(|| format!("{label} refused to run a command"))
        .tag(Category::Connect)?;
    if !wiring.stdin {
        channel.send_eof().map_err(|e| lost(e.into()))?;
    }
    notice_dead_links(session.as_raw_fd());
    session.set_blocking(false);
    let pumped = Pump::new(session, &mut channel, wiring).and_then(Pump::run);
    let stopped = match pumped {
        Ok(stopped) => stopped,
        Err(e) => {
            // Dropped while non-blocking: libssh2 cannot then wait for a dead peer to answer.
            drop(channel);
            session.set_blocking(true);
            // A failure on this side (a sink) comes tagged; anything else is the link.
            return Err(match crate::error::category_of(&e) {
                Some(_) => e,
                None => lost(e),
            });
        }
    };
    session.set_blocking(true);
    channel.wait_close().map_err(|e| lost(e.into()))?;
    Ok(Ended {
        status: channel.exit_status().map_err(|e| lost(e.into()))?,
        signal: channel
            .exit_signal()
            .map_err(|e| lost(e.into()))?
            .exit_signal,
        interrupted: stopped == Some(Stop::Interrupted),
        overdue: stopped == Some(Stop::Overdue),
    })
}

/// Why the command was stopped on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Interrupted,
    Overdue,
}

struct Pump<'a, 's> {
    session: &'s Session,
    channel: &'s mut Channel,
    wiring: Wiring<'a>,
    /// Read from stdin, not yet taken by the channel.
    pending: Vec<u8>,
    stdin_open: bool,
    /// stdin ended; the channel has still to be told.
    eof_to_send: bool,
    resized: Arc<AtomicBool>,
    stopped: Option<Stop>,
}

impl<'a, 's> Pump<'a, 's> {
    fn new(session: &'s Session, channel: &'s mut Channel, wiring: Wiring<'a>) -> Result<Self> {
        let resized = Arc::new(AtomicBool::new(false));
        if wiring.terminal.is_some() {
            signal_hook::flag::register(signal_hook::consts::SIGWINCH, Arc::clone(&resized))
                .context("watching the terminal's size")?;
        }
        Ok(Pump {
            session,
            channel,
            stdin_open: wiring.stdin,
            wiring,
            pending: Vec::new(),
            eof_to_send: false,
            resized,
            stopped: None,
        })
    }

    /// Moves data until the command's output ends; says why when it was stopped.
    fn run(mut self) -> Result<Option<Stop>> {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let read_out = self.drain(0, &mut buffer)?;
            let read_err = self.drain(1, &mut buffer)?;
            if self.channel.eof() {
                return Ok(self.stopped);
            }
            self.feed()?;
            self.follow_the_terminal();
            if self.stopped.is_none() {
                self.stopped = self.why_stop();
                if self.stopped.is_some()
                    && let Some(stop) = self.wiring.on_interrupt.take()
                {
                    self.run_aside(&stop).tag(Category::Remote)?;
                }
            }
            // A keepalive that cannot go out now goes with the next round.
            let _ = self.session.keepalive_send();
            if !(read_out || read_err) {
                self.wait()?;
            }
        }
    }

    /// Whether the command is to be stopped now, and why.
    fn why_stop(&self) -> Option<Stop> {
        if self.wiring.cancel.requested() {
            Some(Stop::Interrupted)
        } else if self.wiring.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(Stop::Overdue)
        } else {
            None
        }
    }

    /// Hands over what stream `id` (0 stdout, 1 stderr) has; true when anything came.
    fn drain(&mut self, id: i32, buffer: &mut [u8]) -> Result<bool> {
        let mut stream = self.channel.stream(id);
        let mut any = false;
        loop {
            match stream.read(buffer) {
                Ok(0) => return Ok(any),
                Ok(n) => {
                    let sink = if id == 0 {
                        &mut self.wiring.stdout
                    } else {
                        &mut self.wiring.stderr
                    };
                    sink(&buffer[..n])
                        .context("writing the command's output here")
                        .tag(Category::Remote)?;
                    any = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(any),
                Err(e) => return Err(anyhow::Error::new(e).context("reading the command's output")),
            }
        }
    }

    /// Passes what stdin has on to the channel, as far as the channel takes it.
    fn feed(&mut self) -> Result<()> {
        while !self.pending.is_empty() {
            match self.channel.write(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(anyhow::Error::new(e).context("sending stdin")),
            }
        }
        if self.eof_to_send {
            match self.channel.send_eof() {
                Ok(()) => self.eof_to_send = false,
                Err(e) if e.code() == EAGAIN => {}
                Err(e) => return Err(anyhow::Error::new(e).context("closing stdin")),
            }
        }
        Ok(())
    }

    /// Tells the host's terminal this one's new size after a SIGWINCH.
    fn follow_the_terminal(&mut self) {
        if self.wiring.terminal.is_none() || !self.resized.load(Ordering::Relaxed) {
            return;
        }
        let Some((columns, rows)) = window_size() else {
            self.resized.store(false, Ordering::Relaxed);
            return;
        };
        // Asked again next round when the channel is busy.
        if self
            .channel
            .request_pty_size(columns, rows, None, None)
            .is_ok()
        {
            self.resized.store(false, Ordering::Relaxed);
        }
    }

    /// Runs `command` on a second channel of the same session and waits for it.
    fn run_aside(&mut self, command: &str) -> Result<()> {
        self.session.set_blocking(true);
        let ran = (|| -> Result<()> {
            let mut aside = self.session.channel_session()?;
            aside.exec(command)?;
            aside.send_eof()?;
            std::io::copy(&mut aside, &mut std::io::sink())?;
            aside.wait_close()?;
            Ok(())
        })();
        self.session.set_blocking(false);
        ran.context("stopping the command on the host")
    }

    /// Sleeps until the socket or stdin has something, or a tick passes.
    fn wait(&mut self) -> Result<()> {
        // Only what libssh2 waits for: stdin it could not send yet waits for the window to
        // open (inbound), and a writable socket would wake the loop for nothing.
        let mut socket_events = libc::POLLIN;
        if matches!(
            self.session.block_directions(),
            BlockDirections::Outbound | BlockDirections::Both
        ) {
            socket_events |= libc::POLLOUT;
        }
        let mut fds = vec![libc::pollfd {
            fd: self.session.as_raw_fd(),
            events: socket_events,
            revents: 0,
        }];
        let watch_stdin = self.stdin_open && self.pending.is_empty();
        if watch_stdin {
            fds.push(libc::pollfd {
                fd: libc::STDIN_FILENO,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        let ready = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                TICK.as_millis() as i32,
            )
        };
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(anyhow::Error::new(error).context("waiting for the connection"));
        }
        if watch_stdin && fds[1].revents != 0 {
            self.read_stdin()?;
        }
        Ok(())
    }

    fn read_stdin(&mut self) -> Result<()> {
        let mut buffer = vec![0u8; CHUNK];
        // SAFETY: reads at most `buffer.len()` bytes into `buffer`, which outlives the call.
        let n = unsafe { libc::read(libc::STDIN_FILENO, buffer.as_mut_ptr().cast(), buffer.len()) };
        match n {
            0 => {
                self.stdin_open = false;
                self.eof_to_send = true;
            }
            n if n > 0 => self.pending.extend_from_slice(&buffer[..n as usize]),
            _ => {
                let error = std::io::Error::last_os_error();
                if !matches!(error.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) {
                    // An unreadable stdin is an empty one.
                    self.stdin_open = false;
                    self.eof_to_send = true;
                }
            }
        }
        Ok(())
    }
}

/// The size of the terminal on stdout (or stdin), in characters.
fn window_size() -> Option<(u32, u32)> {
    for fd in [libc::STDOUT_FILENO, libc::STDIN_FILENO] {
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one winsize into `size`.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0 && size.ws_col > 0 {
            return Some((u32::from(size.ws_col), u32::from(size.ws_row)));
        }
    }
    None
}

/// Lets the kernel give up on a connection whose data goes unacknowledged for [`DEAD_LINK`].
/// Only TCP sockets take the option; a bastion helper's socketpair keeps its own watch.
fn notice_dead_links(fd: RawFd) {
    let millis = DEAD_LINK.as_millis() as libc::c_uint;
    // SAFETY: passes a pointer to a c_uint of the size given; failure (not TCP) is ignored.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&millis as *const libc::c_uint).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        );
    }
}

/// This process's terminal in raw mode (no echo, no line editing, Ctrl-C passed on as a byte)
/// while a remote terminal is in use; restored when dropped. Nothing happens when stdin is not
/// a terminal.
pub struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    pub fn enter() -> RawMode {
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr fills `saved`; it fails (and we do nothing) when stdin is no terminal.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
            return RawMode { saved: None };
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw only changes the struct it is given.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: sets the attributes from a valid termios.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            return RawMode { saved: None };
        }
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = std::io::stdout().flush();
            // SAFETY: restores the attributes read in `enter`.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved) };
        }
    }
}
