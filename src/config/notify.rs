//! `[notify]`: who hears how a deploy or a rollback ended: a command run here and a webhook.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use toml::Spanned;
use ureq::http::Uri;
use ureq::http::header::HeaderName;

use super::model::{Notify, Webhook, WebhookHeader};
use super::raw::RawNotify;
use super::source::{Source, parse_argv};
use crate::validate::{validate_env_key, validate_line};

/// How long a notifier may take when `[notify] timeout` is not written.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers shipit writes itself; a second one would contradict it.
const OWN_HEADERS: [&str; 5] = [
    "content-type",
    "content-length",
    "transfer-encoding",
    "host",
    "user-agent",
];

pub(super) fn parse_notify(src: &Source, raw: RawNotify) -> Result<Notify> {
    let command = raw
        .command
        .map(|argv| parse_argv(src, argv, "command"))
        .transpose()?;
    let header = parse_header(src, raw.webhook_header, raw.webhook_header_env)?;
    let webhook = match (raw.webhook, header) {
        (Some(url), header) => Some(parse_webhook(src, url, header)?),
        (None, Some((span, _))) => {
            return Err(src.error(
                &span,
                "webhook_header is sent with the webhook: it needs a webhook URL",
            ));
        }
        (None, None) => None,
    };
    let timeout = match raw.timeout {
        None => DEFAULT_TIMEOUT,
        Some(timeout) if command.is_none() && webhook.is_none() => {
            return Err(src.error(
                &timeout.span(),
                "timeout bounds the notifiers: it needs a command or a webhook",
            ));
        }
        Some(timeout) => parse_timeout(src, &timeout)?,
    };
    Ok(Notify {
        command,
        webhook,
        timeout,
    })
}

/// `webhook`: https, or http to this machine only (a token must not cross a network in clear);
/// no credentials in it, since messages name the webhook by its URL's scheme, host and port.
fn parse_webhook(
    src: &Source,
    raw: Spanned<String>,
    header: Option<(std::ops::Range<usize>, WebhookHeader)>,
) -> Result<Webhook> {
    let location = src.location(&raw.span());
    let origin = webhook_origin(raw.get_ref()).map_err(|why| src.error(&raw.span(), why))?;
    Ok(Webhook {
        url: raw.into_inner(),
        origin,
        location,
        header: header.map(|(_, header)| header),
    })
}

/// The URL's `scheme://host[:port]`, once it is known to be a webhook shipit may POST to.
fn webhook_origin(url: &str) -> Result<String, String> {
    validate_line(url, "webhook")?;
    let like = "like \"https://hooks.example.com/deploy\"";
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("webhook {url:?} is not a URL {like}: {e}"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!("webhook {url:?} is not a whole URL {like}"));
    };
    if authority.as_str().contains('@') {
        return Err(
            "webhook must not carry credentials in its URL: they would be shown in messages\n  \
             help: send them in a header: webhook_header = \"Authorization\" and \
             webhook_header_env = \"A_VARIABLE\" holding its value"
                .into(),
        );
    }
    let loopback = authority.host() == "localhost"
        || authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match scheme {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "webhook {url:?} is plain http to another machine, which anyone on the way could \
                 read or change\n  help: use https (http is only for this machine: localhost, \
                 127.0.0.1, [::1])"
            ));
        }
        other => return Err(format!("webhook {url:?}: {other:?} is not http or https")),
    }
    Ok(format!("{scheme}://{authority}"))
}

/// `webhook_header` and `webhook_header_env`: both or neither; the value is read when the
/// webhook is sent, so it is never in shipit.toml.
fn parse_header(
    src: &Source,
    name: Option<Spanned<String>>,
    env: Option<Spanned<String>>,
) -> Result<Option<(std::ops::Range<usize>, WebhookHeader)>> {
    let (name, env) = match (name, env) {
        (None, None) => return Ok(None),
        (Some(name), Some(env)) => (name, env),
        (Some(name), None) => {
            return Err(src.error(
                &name.span(),
                "webhook_header needs webhook_header_env: the variable of this machine holding \
                 its value (a token is never written in shipit.toml)",
            ));
        }
        (None, Some(env)) => {
            return Err(src.error(
                &env.span(),
                "webhook_header_env needs webhook_header: the header's name, like \
                 \"Authorization\"",
            ));
        }
    };
    src.check(&name, |name| {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("webhook_header {name:?} is not an HTTP header name"))?;
        if OWN_HEADERS.contains(&parsed.as_str()) {
            return Err(format!(
                "webhook_header {name:?} is a header shipit sets itself"
            ));
        }
        Ok(())
    })?;
    src.check(&env, |key| validate_env_key(key))?;
    Ok(Some((
        name.span(),
        WebhookHeader {
            name: name.into_inner(),
            env: env.into_inner(),
        },
    )))
}

fn parse_timeout(src: &Source, raw: &Spanned<String>) -> Result<Duration> {
    let timeout = humantime::parse_duration(raw.get_ref()).map_err(|e| {
        src.error(
            &raw.span(),
            format!("{:?} is not a duration like \"10s\": {e}", raw.get_ref()),
        )
    })?;
    if timeout.is_zero() {
        return Err(src.error(&raw.span(), "timeout must be longer than 0s"));
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{FILE_NAME, Notify, parse};

    fn notify(text: &str) -> Result<Notify, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("go.mod"), "module example.com/demo\n").unwrap();
        parse(dir.path(), &dir.path().join(FILE_NAME), text, None)
            .map(|c| c.notify)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn nothing_is_notified_unless_written() {
        let none = notify("").unwrap();
        assert!(none.command.is_none() && none.webhook.is_none());
        assert_eq!(none.timeout, Duration::from_secs(10));
    }

    #[test]
    fn a_command_and_a_webhook_with_a_header_from_the_environment() {
        let all = notify(
            "[notify]\ncommand = [\"./notify\", \"--to\", \"ops\"]\n\
             webhook = \"https://hooks.example.com:8443/services/T0/SECRET\"\n\
             webhook_header = \"Authorization\"\nwebhook_header_env = \"DEPLOY_TOKEN\"\n\
             timeout = \"3s\"\n",
        )
        .unwrap();
        let command = all.command.unwrap();
        assert_eq!(command.words, ["./notify", "--to", "ops"]);
        assert!(
            command.location.ends_with("shipit.toml:2:11"),
            "{command:?}"
        );
        let webhook = all.webhook.unwrap();
        assert_eq!(webhook.origin, "https://hooks.example.com:8443");
        assert!(webhook.location.ends_with("shipit.toml:3:11"));
        let header = webhook.header.unwrap();
        assert_eq!(
            (&*header.name, &*header.env),
            ("Authorization", "DEPLOY_TOKEN")
        );
        assert_eq!(all.timeout, Duration::from_secs(3));
    }

    #[test]
    fn plain_http_only_reaches_this_machine() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://[::1]:9000/",
        ] {
            let webhook = notify(&format!("[notify]\nwebhook = \"{url}\"\n"))
                .unwrap()
                .webhook;
            assert_eq!(webhook.unwrap().url, url);
        }
        let err = notify("[notify]\nwebhook = \"http://hooks.example.com/x\"\n").unwrap_err();
        assert!(
            err.contains("shipit.toml:2:11") && err.contains("help: use https"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_notify_table_names_its_place() {
        for (text, place, says) in [
            ("webhook = \"hooks.example.com\"", "2:11", "not a whole URL"),
            (
                "webhook = \"ftp://example.com/\"",
                "2:11",
                "not http or https",
            ),
            (
                "webhook = \"https://me:pw@example.com/\"",
                "2:11",
                "must not carry credentials",
            ),
            ("command = []", "2:11", "needs a program"),
            (
                "command = [\"true\"]\ntimeout = \"0s\"",
                "3:11",
                "longer than 0s",
            ),
            (
                "command = [\"true\"]\ntimeout = \"soon\"",
                "3:11",
                "not a duration",
            ),
            ("timeout = \"5s\"", "2:11", "needs a command or a webhook"),
            (
                "webhook_header = \"X-Token\"\nwebhook_header_env = \"T\"",
                "2:18",
                "needs a webhook URL",
            ),
            (
                "webhook = \"https://x.example\"\nwebhook_header = \"X-Token\"",
                "3:18",
                "needs webhook_header_env",
            ),
            (
                "webhook = \"https://x.example\"\nwebhook_header_env = \"T\"",
                "3:22",
                "needs webhook_header",
            ),
            (
                "webhook = \"https://x.example\"\nwebhook_header = \"Bad Name\"\n\
                 webhook_header_env = \"T\"",
                "3:18",
                "not an HTTP header name",
            ),
            (
                "webhook = \"https://x.example\"\nwebhook_header = \"Content-Type\"\n\
                 webhook_header_env = \"T\"",
                "3:18",
                "shipit sets itself",
            ),
            (
                "webhook = \"https://x.example\"\nwebhook_header = \"X-Token\"\n\
                 webhook_header_env = \"1TOKEN\"",
                "4:22",
                "invalid environment variable name",
            ),
            ("hook = \"https://x.example\"", "2:1", "unknown field"),
        ] {
            let err = notify(&format!("[notify]\n{text}\n")).unwrap_err();
            assert!(
                err.contains(&format!("shipit.toml:{place}")) && err.contains(says),
                "{text}: {err}"
            );
        }
    }
}
