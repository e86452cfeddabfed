//! The ssh2 (libssh2) transport: connect with a timeout (over TCP, or through a ProxyJump or
//! ProxyCommand helper), check the host key, authenticate, run commands and reach the service's
//! port through a direct-tcpip channel.
//!
//! `session` makes the session (`auth` checks both sides) and tells a dead link from other
//! failures; `shell` runs batches of steps in the host's shell; `streaming` runs a command on a
//! channel of its own; `tunnel` GETs over HTTP. [`SshRemote`] holds them together as a
//! [`Remote`].

mod auth;
mod session;
mod shell;
mod streaming;
mod tunnel;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use ssh2::Session;

use self::session::{COMMAND_TIMEOUT, Link, discard};
use self::shell::Shell;
use super::destination::Destination;
use super::{Answer, ExecOutput, HttpAnswer, Kind, Remote, Step, TimeLimit, probe};
use crate::error::{Category, Tag};

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

    fn exec_streaming(
        &mut self,
        _kind: Kind,
        command: &str,
        limit: Option<&TimeLimit>,
        sink: &mut dyn Write,
    ) -> Result<ExecOutput> {
        self.link.still_connected()?;
        self.round_trips += 1;
        let result = streaming::exec(&self.link.session, &self.link.label, command, limit, sink);
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
            match tunnel::get(&self.link.session, host, port, path, timeout) {
                Err(e) if probe::is_refused(&e) => self.tunnel_refused = true,
                answer => return self.link.explain(answer),
            }
        }
        let (notice, answer) = tunnel::get_from_host(self, host, port, path, timeout);
        // Once only: a notice already handed out stays as an empty one, not replaced.
        if self.notice.is_none() {
            self.notice = notice;
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

/// The libssh2 linked in, as it names itself at run time ("1.11.2_DEV"): which one that is
/// decides which of its security fixes shipit has.
pub fn libssh2_version() -> &'static str {
    unsafe extern "C" {
        /// libssh2's version string; null only when older than `required` (0: any version).
        fn libssh2_version(required: libc::c_int) -> *const libc::c_char;
    }
    // SAFETY: with 0, libssh2 returns its static NUL-terminated version string, never null.
    let version = unsafe { std::ffi::CStr::from_ptr(libssh2_version(0)) };
    version
        .to_str()
        .unwrap_or("(a version string that is not UTF-8)")
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
