//! `[health]`: what the health gate asks on each host (a URL, a TCP address or a command), and
//! how patiently.

use std::ops::Range;
use std::time::Duration;

use anyhow::Result;
use toml::Spanned;

use super::checks::{validate_health_url, validate_tcp_address};
use super::model::{Check, Health};
use super::raw::RawHealth;
use super::source::{Source, parse_argv};

pub(super) fn parse_health(src: &Source, raw: Spanned<RawHealth>) -> Result<Health> {
    let table = raw.span();
    let mut raw = raw.into_inner();
    let duration = |value: Option<Spanned<String>>, default: Duration| -> Result<Duration> {
        match value {
            None => Ok(default),
            Some(v) => humantime::parse_duration(v.get_ref()).map_err(|e| {
                src.error(
                    &v.span(),
                    format!("{:?} is not a duration like \"2s\": {e}", v.get_ref()),
                )
            }),
        }
    };
    Ok(Health {
        check: parse_check(src, &table, raw.kind())?,
        interval: duration(raw.interval, Duration::from_secs(1))?,
        timeout: duration(raw.timeout, Duration::from_secs(2))?,
        retries: raw.retries.unwrap_or(30),
        settle: duration(raw.settle, Duration::from_secs(3))?,
        check_version: raw.check_version.unwrap_or(true),
    })
}

/// Exactly one of `url`, `tcp` or `command`, with only the options of that kind.
fn parse_check(src: &Source, table: &Range<usize>, raw: RawHealth) -> Result<Check> {
    let kinds = [
        raw.url.as_ref().map(|v| ("url", v.span())),
        raw.tcp.as_ref().map(|v| ("tcp", v.span())),
        raw.command.as_ref().map(|v| ("command", v.span())),
    ];
    let mut written = kinds.into_iter().flatten();
    let Some((kind, _)) = written.next() else {
        return Err(src.error(
            table,
            "[health] needs what to check: one of url = \"http://127.0.0.1:8080/health\", \
             tcp = \"127.0.0.1:6379\" or command = [\"./app\", \"healthcheck\"]\n  \
             help: without a [health] table, the gate is the unit staying active through 3s",
        ));
    };
    if let Some((second, span)) = written.next() {
        return Err(src.error(
            &span,
            format!(
                "[health] has both {kind} and {second}: a health check is of one kind\n  \
                 help: keep one of them"
            ),
        ));
    }
    let not_for = |key: &str, span: Option<Range<usize>>, owner: &str| match span {
        Some(span) => Err(src.error(
            &span,
            format!("[health] {key} goes with {owner}, and this check is a {kind} check"),
        )),
        None => Ok(()),
    };
    if kind != "url" {
        not_for(
            "expect_status",
            raw.expect_status.as_ref().map(Spanned::span),
            "url",
        )?;
    }
    if kind != "tcp" {
        not_for("send", raw.send.as_ref().map(Spanned::span), "tcp")?;
        not_for("expect", raw.expect.as_ref().map(Spanned::span), "tcp")?;
    }
    if let Some(url) = raw.url {
        src.check(&url, |u| validate_health_url(u))?;
        if let Some(status) = &raw.expect_status {
            src.check(status, |s| {
                if (100..600).contains(s) {
                    Ok(())
                } else {
                    Err("expect_status must be an HTTP status (100-599)".into())
                }
            })?;
        }
        return Ok(Check::Url {
            url: url.into_inner(),
            expect_status: raw.expect_status.map_or(200, Spanned::into_inner),
        });
    }
    if let Some(address) = raw.tcp {
        src.check(&address, |a| validate_tcp_address(a))?;
        for text in [&raw.send, &raw.expect].into_iter().flatten() {
            src.check(text, |t| {
                if t.is_empty() || t.contains('\0') {
                    Err("send and expect must be non-empty text without NUL bytes".into())
                } else {
                    Ok(())
                }
            })?;
        }
        if let (Some(expect), None) = (&raw.expect, &raw.send) {
            return Err(src.error(
                &expect.span(),
                "[health] expect needs a send: the answer to look for is the answer to it\n  \
                 help: add send = \"PING\\r\\n\" (what the service answers to)",
            ));
        }
        return Ok(Check::Tcp {
            address: address.into_inner(),
            send: raw.send.map(Spanned::into_inner),
            expect: raw.expect.map(Spanned::into_inner),
        });
    }
    let command = raw.command.expect("one kind was written");
    Ok(Check::Command {
        argv: parse_argv(src, command, "[health] command")?,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Check, Config, FILE_NAME, parse};

    fn load(text: &str, env: Option<&str>) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("go.mod"), "module example.com/demo\n").unwrap();
        parse(dir.path(), &dir.path().join(FILE_NAME), text, env).map_err(|e| format!("{e:#}"))
    }

    fn check(text: &str) -> Check {
        load(text, None).unwrap().health.unwrap().check
    }

    #[test]
    fn each_kind_is_read_with_its_own_options() {
        assert_eq!(
            check("[health]\nurl = \"http://127.0.0.1:8080/health\"\nexpect_status = 204\n"),
            Check::Url {
                url: "http://127.0.0.1:8080/health".into(),
                expect_status: 204
            }
        );
        assert_eq!(
            check("[health]\ntcp = \"127.0.0.1:6379\"\nsend = \"PING\\r\\n\"\nexpect = \"PONG\"\n"),
            Check::Tcp {
                address: "127.0.0.1:6379".into(),
                send: Some("PING\r\n".into()),
                expect: Some("PONG".into())
            }
        );
        let Check::Command { argv } = check("[health]\ncommand = [\"./app\", \"healthcheck\"]\n")
        else {
            panic!("not a command check");
        };
        assert_eq!(argv.words, ["./app", "healthcheck"]);
        let config = load("[health]\ntcp = \"127.0.0.1:6379\"\n", None).unwrap();
        assert_eq!(config.service.port, Some(6379));
    }

    #[test]
    fn one_kind_exactly_and_only_its_options() {
        for (text, place, says) in [
            (
                "[health]\nretries = 3\n",
                "shipit.toml:1:1",
                "needs what to check",
            ),
            (
                "[health]\nurl = \"http://h/\"\ntcp = \"h:1\"\n",
                "shipit.toml:3:7",
                "both url and tcp",
            ),
            (
                "[health]\ntcp = \"h:1\"\ncommand = [\"./app\"]\n",
                "shipit.toml:3:11",
                "both tcp and command",
            ),
            (
                "[health]\ncommand = [\"./app\"]\nexpect_status = 200\n",
                "shipit.toml:3:17",
                "expect_status goes with url",
            ),
            (
                "[health]\nurl = \"http://h/\"\nsend = \"x\"\n",
                "shipit.toml:3:8",
                "send goes with tcp",
            ),
            (
                "[health]\ntcp = \"h:1\"\nexpect = \"PONG\"\n",
                "shipit.toml:3:10",
                "expect needs a send",
            ),
            (
                "[health]\ntcp = \"h\"\n",
                "shipit.toml:2:7",
                "not an address",
            ),
            (
                "[health]\ncommand = []\n",
                "shipit.toml:2:11",
                "needs a program",
            ),
        ] {
            let err = load(text, None).unwrap_err();
            assert!(err.contains(place) && err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn an_environment_may_name_another_kind() {
        let text = "[health]\nurl = \"http://127.0.0.1:8080/health\"\nexpect_status = 204\n\
                    retries = 7\n\
                    [environments.worker.health]\ncommand = [\"./app\", \"healthcheck\"]\n\
                    [environments.slow.health]\nretries = 9\n";
        let worker = load(text, Some("worker")).unwrap().health.unwrap();
        assert_eq!(worker.check.kind(), "command");
        assert_eq!(worker.retries, 7);
        let slow = load(text, Some("slow")).unwrap().health.unwrap();
        assert_eq!(
            slow.check,
            Check::Url {
                url: "http://127.0.0.1:8080/health".into(),
                expect_status: 204
            }
        );
        assert_eq!(slow.retries, 9);
    }
}
