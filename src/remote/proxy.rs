//! Bastions: the SSH stream runs through a helper process instead of a TCP socket, as OpenSSH
//! does for ProxyCommand and ProxyJump. libssh2 gets one end of a socketpair; the helper's stdin
//! and stdout are the other end.
//!
//! The helper is reaped whenever its connection ends (capistrano#725 leaked hundreds of them):
//! our end is shut down, so it sees EOF and exits; one that lingers is killed with its whole
//! process group. It runs in a session of its own, so a Ctrl-C at the terminal reaches shipit
//! alone, which still needs the connection to roll back and unlock; and with no terminal to
//! prompt on, a helper that wants a password fails at once instead of hanging.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
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

/// A running helper: the child, what it printed on stderr, and a handle on our end of the
/// socketpair to hang up with.
pub struct Helper {
    label: String,
    help: String,
    command_line: String,
    child: Child,
    socket: UnixStream,
    stderr: Arc<Mutex<Vec<u8>>>,
    exited: Option<ExitStatus>,
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
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().with_context(|| {
            format!(
                "cannot start the {} helper `{}`",
                proxy.label,
                proxy.command_line()
            )
        })?;
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
        };
        Ok((helper, ours))
    }

    /// The exit status, once the helper has ended, waiting up to `patience` for it.
    fn exit_status(&mut self, patience: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + patience;
        while self.exited.is_none() {
            match self.child.try_wait() {
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
            Some(status) => match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
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
        if self.exited.is_none() {
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
