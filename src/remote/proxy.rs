//! Bastions: the SSH stream runs through a helper process instead of a TCP socket, as OpenSSH
//! does for ProxyCommand and ProxyJump. libssh2 gets one end of a socketpair; the helper's stdin
//! and stdout are the other end.
//!
//! The helper is reaped whenever its connection ends (capistrano#725 leaked hundreds of them):
//! our end is shut down, so it sees EOF and exits; one that lingers is killed with its whole
//! process group. It runs in a session of its own, so a Ctrl-C at the terminal reaches shipit
//! alone, which still needs the connection to roll back and unlock; and with no terminal to
//! prompt on, a helper that wants a password fails at once instead of hanging.
//!
//! When shipit dies without unwinding (SIGKILL, a second Ctrl-C, `logs`' own exit), no `Drop`
//! runs, and a helper that ignores EOF on its stdin (`nc`-style relays) would hold the host's
//! connection, and with it the deploy lock's refresher, for ever. So each helper has a reaper:
//! a `sh` in a session of its own, reading a socket whose other end only shipit holds. The
//! kernel closes that end however shipit ends; the reaper then kills the helper's process group.
//! `PR_SET_PDEATHSIG` would not do: it fires when the *thread* that spawned the child ends, and
//! fleets connect from worker threads.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The tokens OpenSSH 9 expands in ProxyCommand.
const PROXY_COMMAND_TOKENS: &str = "%%, %h, %k, %n, %p, %r";
/// What a helper may print before we keep only its end.
const STDERR_LIMIT: usize = 16 * 1024;
/// How long a helper gets to exit by itself after its connection ends.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// The reaper: waits for EOF on stdin (only shipit's end of the socket, closed however shipit
/// ends, gives one; nothing is ever written), then kills process group $1.
const REAPER: &str = "read -r _; kill -s KILL -- \"-$1\" 2>/dev/null";

/// How to start a host's helper process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// How the user configured it, for messages: "ProxyJump bastion".
    pub label: String,
    /// What to check when it fails.
    pub help: String,
    pub program: String,
    pub args: Vec<String>,
}

/// What OpenSSH's ProxyCommand tokens stand for, for one host.
pub struct Tokens<'a> {
    /// %h: the HostName.
    pub hostname: &'a str,
    /// %k: HostKeyAlias, else the host as typed.
    pub key_alias: &'a str,
    /// %n: the host as typed.
    pub original: &'a str,
    /// %p
    pub port: u16,
    /// %r
    pub user: &'a str,
}

impl Proxy {
    /// ProxyCommand, as OpenSSH runs it: tokens expanded, `exec COMMAND` by `$SHELL -c`.
    pub fn command(command: &str, tokens: &Tokens) -> Result<Proxy> {
        let expanded = expand(command, tokens).with_context(|| {
            format!("ProxyCommand {command:?}: OpenSSH expands only {PROXY_COMMAND_TOKENS}")
        })?;
        let shell = std::env::var("SHELL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into());
        Ok(Proxy {
            label: format!("ProxyCommand `{expanded}`"),
            help: "the ProxyCommand must carry the SSH connection on its stdin and stdout; \
                   `ssh -v` with the same configuration shows it at work"
                .into(),
            program: shell,
            args: vec!["-c".into(), format!("exec {expanded}")],
        })
    }

    /// ProxyJump `[user@]host[:port]` hops, comma-separated, as OpenSSH turns them into a
    /// command: `ssh [-l user] [-p port] [-J earlier,hops] [-F config] -W '[%h]:%p' last-hop`.
    /// BatchMode: nothing can answer a prompt; the bastion's own refusal is shown instead.
    pub fn jump(
        hops: &str,
        ssh_config: Option<&std::path::Path>,
        hostname: &str,
        port: u16,
    ) -> Result<Proxy> {
        let (earlier, last) = match hops.rsplit_once(',') {
            Some((earlier, last)) => (Some(earlier), last),
            None => (None, hops),
        };
        let hop =
            crate::validate::parse_hop(last).with_context(|| format!("ProxyJump {hops:?}"))?;
        if let Some(earlier) = earlier {
            for hop in earlier.split(',') {
                crate::validate::parse_hop(hop).with_context(|| format!("ProxyJump {hops:?}"))?;
            }
        }
        let mut args: Vec<String> = vec!["-o".into(), "BatchMode=yes".into()];
        if let Some(user) = hop.user {
            args.extend(["-l".into(), user]);
        }
        if let Some(port) = hop.port {
            args.extend(["-p".into(), port.to_string()]);
        }
        if let Some(earlier) = earlier {
            args.extend(["-J".into(), earlier.to_string()]);
        }
        if let Some(config) = ssh_config {
            let config = config.to_str().with_context(|| {
                format!("the ssh config path {} is not UTF-8", config.display())
            })?;
            args.extend(["-F".into(), config.to_string()]);
        }
        args.extend([
            "-W".into(),
            format!("[{hostname}]:{port}"),
            "--".into(),
            hop.host,
        ]);
        Ok(Proxy {
            label: format!("ProxyJump {hops}"),
            help: format!(
                "`ssh -o BatchMode=yes {}{} true` must work on its own: nothing can answer a \
                 prompt, so load the bastion's key into ssh-agent and record its host key by \
                 connecting once with ssh",
                ssh_config.map_or_else(String::new, |c| format!("-F {} ", c.display())),
                earlier.map_or_else(|| last.to_string(), |e| format!("-J {e} {last}"))
            ),
            program: "ssh".into(),
            args,
        })
    }

    /// The command line, for messages.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(crate::shell::quote)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// OpenSSH's percent_expand for ProxyCommand: an unknown token is an error, as there.
fn expand(command: &str, tokens: &Tokens) -> Result<String> {
    let mut out = String::with_capacity(command.len());
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('h') => out.push_str(tokens.hostname),
            Some('k') => out.push_str(tokens.key_alias),
            Some('n') => out.push_str(tokens.original),
            Some('p') => out.push_str(&tokens.port.to_string()),
            Some('r') => out.push_str(tokens.user),
            Some(other) => anyhow::bail!("unknown token %{other}"),
            None => anyhow::bail!("a lone % at the end"),
        }
    }
    Ok(out)
}

/// A running helper: the child, what it printed on stderr, a handle on our end of the
/// socketpair to hang up with, and its reaper.
pub struct Helper {
    label: String,
    help: String,
    command_line: String,
    child: Child,
    socket: UnixStream,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Read without reaping the child (see [`Helper::exit_status`]).
    exited: Option<ExitStatus>,
    reaper: Reaper,
}

impl Helper {
    /// Starts the helper; the returned stream is the SSH connection.
    pub fn spawn(proxy: &Proxy) -> Result<(Helper, UnixStream)> {
        let (ours, theirs) = UnixStream::pair().context("cannot create a socketpair")?;
        let mut command = Command::new(&proxy.program);
        command
            .args(&proxy.args)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs.try_clone()?)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stderr(Stdio::piped());
        in_session_of_its_own(&mut command);
        let mut child = command.spawn().with_context(|| {
            format!(
                "cannot start the {} helper `{}`",
                proxy.label,
                proxy.command_line()
            )
        })?;
        let reaper = match Reaper::spawn(child.id()) {
            Ok(reaper) => reaper,
            Err(e) => {
                // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet,
                // so its PID (its process group's ID, by setsid) is still its own.
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
                let _ = child.wait();
                return Err(e.context(format!("cannot start the {} helper", proxy.label)));
            }
        };
        // Drained all along, so a chatty helper never blocks on a full pipe.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    let mut kept = sink.lock().unwrap_or_else(|e| e.into_inner());
                    kept.extend_from_slice(&buffer[..n]);
                    if kept.len() > STDERR_LIMIT {
                        let cut = kept.len() - STDERR_LIMIT;
                        kept.drain(..cut);
                    }
                }
            });
        }
        let helper = Helper {
            label: proxy.label.clone(),
            help: proxy.help.clone(),
            command_line: proxy.command_line(),
            child,
            socket: ours.try_clone()?,
            stderr,
            exited: None,
            reaper,
        };
        Ok((helper, ours))
    }

    /// The exit status, once the helper has ended, waiting up to `patience` for it. The child
    /// is left unreaped, a zombie holding its PID: that is its process group's ID, which the
    /// reaper may still signal, so it must not pass to another process before the reaper is
    /// gone ([`Drop`] reaps it last).
    fn exit_status(&mut self, patience: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + patience;
        while self.exited.is_none() {
            match peek_exit(self.child.id()) {
                Ok(Some(status)) => self.exited = Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => break,
            }
        }
        self.exited
    }

    /// What the helper says about a failed or lost connection: whether and how it ended, and
    /// its stderr. `patience`: how long it may take to finish exiting.
    pub fn report(&mut self, patience: Duration) -> String {
        let how = match self.exit_status(patience) {
            Some(status) => match (status.code(), status.signal()) {
                (Some(code), _) => format!("exited with status {code}"),
                (None, Some(signal)) => format!("was killed by signal {signal}"),
                _ => "ended".into(),
            },
            None => "is still running".into(),
        };
        // Give the stderr reader a moment to take the helper's last words.
        std::thread::sleep(Duration::from_millis(50));
        let stderr = self.stderr();
        let mut report = format!("the helper `{}` {how}", self.command_line);
        if stderr.is_empty() {
            report.push_str(" (it printed nothing on stderr)");
        } else {
            report.push_str(&format!(
                "; its stderr:\n{}",
                crate::error::indent(&stderr, "  ")
            ));
        }
        report
    }

    /// How the user configured it: "ProxyJump bastion".
    pub fn label(&self) -> &str {
        &self.label
    }

    /// What to check when it failed.
    pub fn help(&self) -> &str {
        &self.help
    }

    /// Whether the helper has ended, without waiting.
    pub fn has_exited(&mut self) -> bool {
        self.exit_status(Duration::ZERO).is_some()
    }

    fn stderr(&self) -> String {
        let kept = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&kept).trim().to_string()
    }

    fn signal_group(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions. Only called before the child is
        // reaped, so its PID (which setsid made its process group's ID) is still its own.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), signal) };
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        if self.exit_status(EXIT_GRACE).is_none() {
            self.signal_group(libc::SIGTERM);
            if self.exit_status(EXIT_GRACE).is_none() {
                self.signal_group(libc::SIGKILL);
            }
        }
        // The reaper kills whatever the helper left running in its group; only then may the
        // group's ID, the helper's PID, be freed by reaping the helper.
        self.reaper.finish();
        let _ = self.child.wait();
    }
}

/// The helper's watchman, in case shipit dies without dropping the [`Helper`].
struct Reaper {
    child: Child,
    /// Shipit's end of the reaper's stdin: closed, by [`Reaper::finish`] or by the kernel when
    /// shipit dies, it sets the reaper off. Close-on-exec, so no other child holds it open.
    lifeline: Option<UnixStream>,
}

impl Reaper {
    /// Watches process group `group`.
    fn spawn(group: u32) -> Result<Reaper> {
        let (lifeline, theirs) = UnixStream::pair().context("cannot create a socketpair")?;
        let mut command = Command::new("/bin/sh");
        command
            .args(["-c", REAPER, "shipit-reaper", &group.to_string()])
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Out of shipit's process group and session: a Ctrl-C, or a SIGKILL to the whole job,
        // must not take the reaper along with shipit.
        in_session_of_its_own(&mut command);
        let child = command
            .spawn()
            .context("cannot start its reaper (/bin/sh)")?;
        Ok(Reaper {
            child,
            lifeline: Some(lifeline),
        })
    }

    /// Sets the reaper off and waits for it to finish.
    fn finish(&mut self) {
        self.lifeline = None;
        let _ = self.child.wait();
    }
}

fn in_session_of_its_own(command: &mut Command) {
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// How child `pid` ended, if it has, without reaping it (waitid's WNOWAIT).
fn peek_exit(pid: u32) -> std::io::Result<Option<ExitStatus>> {
    // SAFETY: siginfo_t is plain data, for which all zeroes is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: one valid siginfo_t for the duration of the call.
    let waited = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if waited < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: waitid filled in a SIGCHLD siginfo (or left it zeroed: still running), whose
    // si_pid and si_status are the fields these read.
    let (ended, status) = unsafe { (info.si_pid(), info.si_status()) };
    if ended == 0 {
        return Ok(None);
    }
    // Back into a wait status, as waitpid gives it: the code in the second byte, or the signal
    // in the low seven bits (with 0x80 when it dumped core).
    let raw = match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => status | 0x80,
        _ => status,
    };
    Ok(Some(ExitStatus::from_raw(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes of group `group` that have not ended.
    fn live_members(group: u32) -> usize {
        let mut live = 0;
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // "pid (comm) state ppid pgrp ..."
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.get(2) == Some(&group.to_string().as_str()) && fields[0] != "Z" {
                live += 1;
            }
        }
        live
    }

    /// Waits (10 s at most, for a loaded machine) until `group` has `count` live members.
    fn until_members(group: u32, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while live_members(group) != count {
            assert!(
                Instant::now() < deadline,
                "group {group} has {} live members, not {count}",
                live_members(group)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn the_reaper_kills_the_whole_group_once_its_lifeline_closes() {
        // A helper that ignores EOF, with a child of its own.
        let mut command = Command::new("sh");
        command
            .args(["-c", "sleep 30 & exec sleep 31"])
            .stdin(Stdio::null());
        in_session_of_its_own(&mut command);
        let mut helper = command.spawn().unwrap();
        let group = helper.id();
        let mut reaper = Reaper::spawn(group).unwrap();
        until_members(group, 2);
        // As the kernel closes it when shipit dies.
        drop(reaper.lifeline.take());
        assert_eq!(helper.wait().unwrap().signal(), Some(libc::SIGKILL));
        let _ = reaper.child.wait();
        until_members(group, 0);
    }

    #[test]
    fn an_exit_is_read_without_reaping_the_child() {
        let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = peek_exit(child.id()).unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "sh never exited");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.code(), Some(3));
        // Still there to be reaped: its PID stayed its own until now.
        assert_eq!(child.wait().unwrap().code(), Some(3));

        let mut killed = Command::new("sleep").arg("30").spawn().unwrap();
        killed.kill().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while peek_exit(killed.id()).unwrap().is_none() {
            assert!(Instant::now() < deadline, "sleep outlived SIGKILL");
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = peek_exit(killed.id()).unwrap().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(killed.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    fn tokens() -> Tokens<'static> {
        Tokens {
            hostname: "10.0.0.5",
            key_alias: "inner",
            original: "Inner",
            port: 2222,
            user: "deploy",
        }
    }

    #[test]
    fn proxy_command_tokens_expand_as_in_openssh() {
        assert_eq!(
            expand("nc %h %p # %r %n %k 100%%", &tokens()).unwrap(),
            "nc 10.0.0.5 2222 # deploy Inner inner 100%"
        );
        assert!(expand("nc %C", &tokens()).is_err());
        assert!(expand("nc %", &tokens()).is_err());
    }

    #[test]
    fn proxy_jump_becomes_the_command_openssh_would_run() {
        let proxy = Proxy::jump("a@b1:2200,b2,ops@last:2022", None, "10.0.0.5", 22).unwrap();
        assert_eq!(
            proxy.command_line(),
            "ssh -o BatchMode=yes -l ops -p 2022 -J a@b1:2200,b2 -W '[10.0.0.5]:22' -- last"
        );
        let with_config =
            Proxy::jump("bastion", Some(std::path::Path::new("/c/f")), "h", 2200).unwrap();
        assert_eq!(
            with_config.command_line(),
            "ssh -o BatchMode=yes -F /c/f -W '[h]:2200' -- bastion"
        );
        assert!(Proxy::jump("-oProxyCommand=x", None, "h", 22).is_err());
        assert!(Proxy::jump("ok,b;ad", None, "h", 22).is_err());
    }
}
