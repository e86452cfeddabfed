//! One try of a `[health]` check of each kind, made on the host itself: a GET of the URL
//! ([`crate::remote::probe`] or the SSH tunnel), a TCP connect with an optional send/expect
//! (`check-tcp.sh`), or the release's own command run as the service runs (`check-command.sh`,
//! through [`crate::service_run`], as `shipit exec` runs one).

use std::borrow::Cow;
use std::time::Duration;

use anyhow::Result;

use crate::config::Check;
use crate::hosts::Layout;
use crate::hosts::deployed::Deployed;
use crate::hosts::script::Script;
use crate::remote::probe::{MAX_ANSWER, NoProbeTool, seconds};
use crate::remote::{self, Answer, Exit, Kind, Remote};
use crate::service_run;

/// `check-tcp.sh`: a TCP connect, with what the host has.
pub const TCP_SCRIPT: &str = include_str!("scripts/check-tcp.sh");
/// `check-command.sh`: a prepared command within a deadline.
pub const COMMAND_SCRIPT: &str = include_str!("scripts/check-command.sh");

/// `script` as a shell function named `name`, for a script that checks with values of its own
/// (deploy's pre-flight).
pub fn function(name: &str, script: &str) -> String {
    format!("{name}() {{\n{script}}}\n")
}

/// What one try found, whatever the kind.
#[derive(Debug, Clone)]
pub struct Reply {
    pub healthy: bool,
    /// The HTTP status, for a URL check.
    pub status: Option<u16>,
    /// What answered, in one line: `HTTP 200`, `connected`, `+PONG`, `exit 0`.
    pub said: String,
    /// Why it is not healthy, in one line, when it is not.
    pub why: String,
    /// What the service said, for its version: the HTTP body or the command's output.
    pub body: String,
}

/// The answer to an HTTP GET, judged against `expect_status`.
pub fn http_reply(answer: remote::HttpAnswer, expect_status: u16) -> Reply {
    let healthy = answer.status == expect_status;
    Reply {
        healthy,
        status: Some(answer.status),
        said: format!("HTTP {}", answer.status),
        why: format!(
            "status {} (expected {expect_status}): {}",
            answer.status,
            snippet(&answer.body)
        ),
        body: answer.body,
    }
}

/// A TCP connect to `address`, with `send` written and `expect` looked for in the answer.
pub struct TcpCheck<'a> {
    pub host: &'a str,
    pub port: u16,
    pub send: Option<&'a str>,
    pub expect: Option<&'a str>,
    pub timeout: Duration,
}

impl Script for TcpCheck<'_> {
    fn kind(&self) -> Kind {
        Kind::Probe
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![
            ("host", self.host.to_string()),
            ("port", self.port.to_string()),
            ("send", self.send.unwrap_or_default().to_string()),
            ("expect", self.expect.unwrap_or_default().to_string()),
            ("t", seconds(self.timeout)),
            ("cap", MAX_ANSWER.to_string()),
        ]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![TCP_SCRIPT.into()]
    }
}

/// Runs a TCP check: healthy when it connected (and the answer held `expect`); an error when
/// nothing could be asked.
pub fn tcp(remote: &mut dyn Remote, layout: &Layout, check: &TcpCheck) -> Result<Reply> {
    let output = match remote.run(vec![check.step(layout)])?.pop() {
        Some(Answer::Ran { output, .. }) => output,
        _ => anyhow::bail!("the TCP check did not run"),
    };
    if Exit::of_status(output.status) == Exit::NoProbeTool {
        return Err(anyhow::Error::new(NoProbeTool {
            host: remote.label().to_string(),
            url: format!("tcp {}:{}", check.host, check.port),
        }));
    }
    let said = last_line(&output.stdout);
    if output.status == 0 {
        return Ok(Reply {
            healthy: true,
            status: None,
            why: String::new(),
            body: output.stdout.clone(),
            said,
        });
    }
    let why = last_line(&output.stderr);
    if output.status == 7 || output.status == 124 {
        anyhow::bail!("{why}");
    }
    Ok(Reply {
        healthy: false,
        status: None,
        said: why.clone(),
        why,
        body: String::new(),
    })
}

/// The release's command as the service runs it, in the current release, with
/// `SHIPIT_RELEASE` and `SHIPIT_VERSION` as `shipit exec` sets them, and `SHIPIT_HEALTH=gate`.
pub struct CommandCheck {
    prepared: service_run::Prepared,
    timeout: Duration,
}

impl CommandCheck {
    pub fn new(
        layout: &Layout,
        deployed: &Deployed,
        argv: &[String],
        timeout: Duration,
    ) -> Result<CommandCheck> {
        let prepared =
            deployed.command(layout, "health", &[("SHIPIT_HEALTH", "gate")], argv, false)?;
        Ok(CommandCheck { prepared, timeout })
    }
}

impl Script for CommandCheck {
    fn kind(&self) -> Kind {
        Kind::Probe
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![
            ("command", for_printf_b(&self.prepared.script)),
            ("check_unit", self.prepared.unit_name.clone()),
            ("t", seconds(self.timeout)),
            ("cap", MAX_ANSWER.to_string()),
        ]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![COMMAND_SCRIPT.into()]
    }
}

/// Runs a command check: healthy on exit 0.
pub fn command(remote: &mut dyn Remote, layout: &Layout, check: &CommandCheck) -> Result<Reply> {
    let out = remote::run_one(remote, check.step(layout))?;
    Ok(command_reply(&out))
}

fn command_reply(out: &str) -> Reply {
    let (first, output) = out.split_once('\n').unwrap_or((out, ""));
    let status = first.strip_prefix("exit=").unwrap_or("?");
    let healthy = status == "0";
    let said = format!("exit {status}");
    Reply {
        healthy,
        status: None,
        why: format!("{said}: {}", snippet(output)),
        said,
        body: output.to_string(),
    }
}

/// The kind's name and what it asks, e.g. `tcp 127.0.0.1:6379`.
pub fn describe(check: &Check) -> String {
    format!("{} {}", check.kind(), check.target())
}

/// `script` as `printf %b` gives it back, with no quote or backslash of its own: the host's
/// script writes it to a file and runs that, and it never sits in the preamble as a quoted
/// string holding quotes (which shellcheck misreads).
pub fn for_printf_b(script: &str) -> String {
    script.replace('\\', "\\0134").replace('\'', "\\047")
}

fn last_line(text: &str) -> String {
    snippet(text.trim().lines().last().unwrap_or_default())
}

/// A body in one line, cut to 200 characters.
pub fn snippet(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_comes_back_whole_from_printf_b() {
        let script = "exec sh -c 'echo \\'\\''x\\n'\n";
        let encoded = for_printf_b(script);
        assert!(!encoded.contains('\''), "{encoded}");
        let out = std::process::Command::new("sh")
            .args(["-c", "printf %b \"$1\"", "sh", &encoded])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), script);
    }

    #[test]
    fn a_command_is_judged_by_its_exit_status() {
        let ok = command_reply("exit=0\n{\"version\":\"1.0.0\"}\n");
        assert!(ok.healthy);
        assert_eq!(ok.said, "exit 0");
        assert_eq!(ok.body, "{\"version\":\"1.0.0\"}\n");
        let bad = command_reply("exit=3\nqueue unreachable\n");
        assert!(!bad.healthy);
        assert_eq!(bad.why, "exit 3: queue unreachable");
    }
}
