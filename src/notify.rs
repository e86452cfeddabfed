//! `[notify]`: after a deploy or a rollback that reached a host, whatever its outcome, the
//! report goes to a command run here (on its stdin, with `SHIPIT_*` variables) and is POSTed to
//! a webhook. A notifier that fails is a warning on stderr: it never changes what the deploy
//! or rollback returns, and nothing of a token or a webhook's path is shown.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use ureq::http::HeaderValue;
use ureq::tls::{RootCerts, TlsConfig};

use crate::config::{Argv, Config, Webhook};
use crate::hosts::Layout;
use crate::hosts::owner::LockOwner;
use crate::ui::Ui;

/// How a deploy or a rollback ended, as the notifiers get it.
#[derive(Debug)]
pub struct Notice {
    /// `deploy` or `rollback`.
    pub command: &'static str,
    /// `deployed`, `rolled-back` or `failed` (docs/src/guides/notifications.md).
    pub outcome: &'static str,
    pub app: String,
    pub version: String,
    pub release: String,
    /// `user@machine`, as the host's deploy log records it.
    pub user: String,
    /// The JSON report, one line.
    pub report: String,
}

impl Notice {
    /// The notice of `layout`'s release, with `report` as its JSON.
    pub fn new(
        command: &'static str,
        outcome: &'static str,
        layout: &Layout,
        report: &impl Serialize,
    ) -> anyhow::Result<Notice> {
        let me = LockOwner::me(layout);
        Ok(Notice {
            command,
            outcome,
            app: layout.app.to_string(),
            version: layout.release.version().to_string(),
            release: layout.release.to_string(),
            user: format!("{}@{}", me.user, me.from),
            report: serde_json::to_string(report)?,
        })
    }

    fn env<'a>(&'a self, environment: Option<&'a str>) -> [(&'static str, &'a str); 7] {
        [
            ("SHIPIT_APP", &self.app),
            ("SHIPIT_ENVIRONMENT", environment.unwrap_or_default()),
            ("SHIPIT_VERSION", &self.version),
            ("SHIPIT_RELEASE", &self.release),
            ("SHIPIT_OUTCOME", self.outcome),
            ("SHIPIT_COMMAND", self.command),
            ("SHIPIT_USER", &self.user),
        ]
    }
}

/// Tells `[notify]`'s command, then its webhook, how it ended; a failure is a warning.
pub fn send(config: &Config, notice: &Notice, ui: &Ui) {
    let notify = &config.notify;
    if let Some(argv) = &notify.command {
        ui.status("Notifying", format_args!("{}", argv.words.join(" ")));
        let env = notice.env(config.environment.as_deref());
        if let Err(why) = run_command(argv, &env, &notice.report, &config.root, notify.timeout) {
            ui.diagnostic(format!(
                "warning: [notify] command `{}` ({}) {why}",
                argv.words.join(" "),
                argv.location
            ));
        }
    }
    if let Some(webhook) = &notify.webhook {
        ui.status("Notifying", &webhook.origin);
        if let Err(why) = post(webhook, &notice.report, notify.timeout, ui) {
            ui.diagnostic(format!(
                "warning: [notify] webhook {} ({}) {why}",
                webhook.origin, webhook.location
            ));
        }
    }
}

/// Runs the command with the report on its stdin; after `timeout` it is killed, with whatever
/// it started.
fn run_command(
    argv: &Argv,
    env: &[(&str, &str)],
    report: &str,
    root: &Path,
    timeout: Duration,
) -> Result<(), String> {
    let mut child = Command::new(&argv.words[0])
        .args(&argv.words[1..])
        .current_dir(root)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        // stdout carries shipit's own result (`--json`): the command's output goes to stderr.
        .stdout(stderr_for_child().map_err(|e| format!("cannot start: {e}"))?)
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start: {e}; help: write the program's path relative to the project \
                 directory, or a program on PATH"
            )
        })?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let report = format!("{report}\n");
    // Written beside the wait: a command that never reads its stdin must not hold shipit.
    std::thread::spawn(move || stdin.write_all(report.as_bytes()));
    match wait_until(&mut child, Instant::now() + timeout) {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!(
            "failed ({status}); its output, if any, is above; help: run it by hand with the \
             report on its stdin"
        )),
        None => Err(format!(
            "was stopped after {}; help: make it quicker, or raise [notify] timeout",
            humantime::format_duration(timeout)
        )),
    }
}

/// The child's exit status, or `None` once it has run past `deadline` and is killed.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let group = i32::try_from(child.id()).expect("a pid fits an i32");
            // SAFETY: kill has no memory preconditions; the group is the child's own
            // (process_group(0)), which it has not been reaped from.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_for_child() -> std::io::Result<Stdio> {
    use std::os::fd::AsFd;
    Ok(Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?))
}

/// POSTs the report; any answer but 2xx is a failure, and a redirect is not followed (it could
/// lead the token elsewhere).
fn post(webhook: &Webhook, report: &str, timeout: Duration, ui: &Ui) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(format!("shipit/{}", env!("CARGO_PKG_VERSION")))
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::PlatformVerifier)
                .build(),
        )
        .build()
        .into();
    let mut request = agent
        .post(&webhook.url)
        .header("Content-Type", "application/json");
    if let Some(header) = &webhook.header {
        match std::env::var(&header.env).map(|v| HeaderValue::from_str(&v)) {
            Ok(Ok(value)) if !value.is_empty() => request = request.header(&header.name, value),
            Ok(Ok(_)) | Err(_) => ui.diagnostic(format!(
                "warning: [notify] webhook {}: ${} is not set here, so it is sent without its \
                 {} header; help: set {} in shipit's environment",
                webhook.origin, header.env, header.name, header.env
            )),
            Ok(Err(_)) => ui.diagnostic(format!(
                "warning: [notify] webhook {}: ${} holds a character a header cannot carry (a \
                 newline?), so it is sent without its {} header; help: set {} to the header's \
                 value alone",
                webhook.origin, header.env, header.name, header.env
            )),
        }
    }
    match request.send(report) {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!(
            "answered {}; help: check the webhook's URL and what its service expects",
            response.status()
        )),
        Err(e) => Err(failed(&e, timeout)),
    }
}

/// Why a POST got no answer, and what to do about it.
fn failed(error: &ureq::Error, timeout: Duration) -> String {
    if let Some(tls) = tls_error(error) {
        return format!(
            "refused: TLS failed ({tls}); help: a certificate from a private CA is trusted once \
             SSL_CERT_FILE names a PEM bundle holding that CA"
        );
    }
    match error {
        ureq::Error::Timeout(_) => format!(
            "gave no answer within {}; help: raise [notify] timeout if it is slow",
            humantime::format_duration(timeout)
        ),
        ureq::Error::Io(e) => format!(
            "could not be reached ({e}); help: check the URL's host and port, and that it is \
             reachable from here"
        ),
        other => format!("failed: {other}"),
    }
}

/// What stopped the TLS handshake (a certificate shipit does not trust, most often), if it was.
fn tls_error(error: &ureq::Error) -> Option<&rustls::Error> {
    match error {
        ureq::Error::Rustls(e) => Some(e),
        ureq::Error::Io(e) => e.get_ref()?.downcast_ref(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{post, run_command};
    use crate::config::{Argv, Webhook};
    use crate::ui::Ui;

    fn argv(script: &str) -> Argv {
        Argv {
            words: vec!["sh".into(), "-c".into(), script.into()],
            location: "shipit.toml:2:11".into(),
        }
    }

    #[test]
    fn the_command_reads_the_report_and_its_variables() {
        let dir = tempfile::tempdir().unwrap();
        let env = [("SHIPIT_OUTCOME", "deployed"), ("SHIPIT_COMMAND", "deploy")];
        let script = "cat > report && echo \"$SHIPIT_COMMAND $SHIPIT_OUTCOME\" > env";
        run_command(
            &argv(script),
            &env,
            "{\"ok\":true}",
            dir.path(),
            Duration::from_secs(10),
        )
        .unwrap();
        let read = |name| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("report"), "{\"ok\":true}\n");
        assert_eq!(read("env"), "deploy deployed\n");
    }

    #[test]
    fn a_failing_or_missing_command_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let run = |argv: &Argv| run_command(argv, &[], "{}", dir.path(), Duration::from_secs(10));
        let err = run(&argv("exit 3")).unwrap_err();
        assert!(err.contains("failed (exit status: 3)"), "{err}");
        let missing = Argv {
            words: vec!["./no-such-notifier".into()],
            location: "shipit.toml:2:11".into(),
        };
        let err = run(&missing).unwrap_err();
        assert!(
            err.starts_with("cannot start") && err.contains("help:"),
            "{err}"
        );
    }

    #[test]
    fn a_command_past_its_timeout_is_stopped_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        // The background sleep holds nothing shipit waits for, but it must not outlive the kill.
        let script = "sleep 60 & echo $! > pid; sleep 60";
        let err = run_command(
            &argv(script),
            &[],
            "{}",
            dir.path(),
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(err.contains("was stopped after 500ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(30));
        let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
        // A zombie is gone too: it waits only for whoever reaps orphans here.
        let alive = || {
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .is_ok_and(|stat| !stat.contains(") Z "))
        };
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            !alive()
        });
        assert!(gone, "the command's child outlived it");
    }

    fn webhook(url: String) -> Webhook {
        Webhook {
            url,
            origin: "http://127.0.0.1".into(),
            location: "shipit.toml:3:11".into(),
            header: None,
        }
    }

    #[test]
    fn a_webhook_that_is_down_or_silent_says_which() {
        let ui = Ui::new(true);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", closed.local_addr().unwrap());
        drop(closed);
        let err = post(&webhook(url), "{}", Duration::from_secs(5), &ui).unwrap_err();
        assert!(err.contains("could not be reached"), "{err}");

        // Accepts, reads, never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", silent.local_addr().unwrap());
        let err = post(&webhook(url), "{}", Duration::from_millis(300), &ui).unwrap_err();
        assert!(err.contains("gave no answer within 300ms"), "{err}");
    }
}
