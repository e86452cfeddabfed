//! `shipit generate supervisor`: the unit's settings as a supervisord `[program:<app>]`, for
//! hosts that run supervisord instead of (or under) systemd.
//!
//! supervisord reads its files with Python's configparser (`;` or `#` after whitespace starts a
//! comment, even inside quotes), expands `%(name)s` in every value, splits `command` like a POSIX
//! shell and `environment` with a non-POSIX shlex (quotes kept, then stripped; no escapes).
//! Values are escaped for all of that, and what cannot be written is refused.

use anyhow::Result;
use serde::Serialize;

use super::output::Output;
use crate::config::Config;
use crate::shell::quote;
use crate::template::Template;

const SUPERVISOR: Template = Template {
    path: "templates/supervisor.hbs",
    builtin: include_str!("../../templates/supervisor.hbs"),
};

#[derive(Debug, Serialize)]
struct SupervisorData {
    app: String,
    command: String,
    directory: String,
    user: String,
    /// `KEY="value",…`; empty without `[service.env]`.
    environment: String,
    /// The unit's EnvironmentFile, which supervisord cannot read, when there is one.
    env_file: Option<String>,
    restart: String,
    autorestart: &'static str,
    /// Where supervisord cannot say what the unit's Restart= does.
    restart_caveat: Option<&'static str>,
    start_limit_interval_sec: u64,
    start_limit_burst: u64,
    startsecs: u64,
    startretries: u64,
    stopwaitsecs: u64,
    minfds: u64,
}

pub(super) fn render(config: &Config) -> Result<Output> {
    let text = crate::template::render(config, &SUPERVISOR, &data(config)?)?;
    Ok(Output {
        name: format!("{}.conf", config.app.name),
        text,
    })
}

fn data(config: &Config) -> Result<SupervisorData> {
    let app = &config.app.name;
    let service = &config.service;
    let binary = format!("{}/{app}", crate::paths::current_dir(app));
    let command = std::iter::once(&binary)
        .chain(&service.exec_args)
        .map(|word| quote(word))
        .collect::<Vec<_>>()
        .join(" ");
    let environment = service
        .env
        .iter()
        .map(|(key, value)| Ok(format!("{key}={}", env_value(key, value)?)))
        .collect::<Result<Vec<_>>>()?
        .join(",");
    let (autorestart, restart_caveat) = autorestart(&service.restart);
    // supervisord gives up after startretries starts that each die within startsecs; systemd
    // after StartLimitBurst starts within StartLimitIntervalSec. Spreading the interval over
    // the burst makes a crash loop trip both.
    let startsecs = service
        .start_limit_interval_sec
        .div_ceil(service.start_limit_burst.max(1))
        .max(1);
    Ok(SupervisorData {
        app: app.to_string(),
        command: ini_value(&expandable(&command), "[service] exec_args")?,
        directory: crate::paths::current_dir(app),
        user: service.user.clone(),
        environment: ini_value(&environment, "[service.env]")?,
        env_file: service
            .env_file
            .as_ref()
            .map(|_| crate::paths::env_file(app)),
        restart: service.restart.clone(),
        autorestart,
        restart_caveat,
        start_limit_interval_sec: service.start_limit_interval_sec,
        start_limit_burst: service.start_limit_burst,
        startsecs,
        startretries: service.start_limit_burst,
        stopwaitsecs: service.timeout_stop_sec,
        minfds: service.limit_nofile,
    })
}

/// systemd's Restart= as supervisord's autorestart (with exitcodes=0, "unexpected" means any
/// other exit, the nearest thing to on-failure).
fn autorestart(restart: &str) -> (&'static str, Option<&'static str>) {
    match restart {
        "no" => ("false", None),
        "always" => ("true", None),
        "on-success" => (
            "true",
            Some("supervisord cannot restart only after a clean exit, so it restarts after any"),
        ),
        "on-failure" => ("unexpected", None),
        _ => (
            "unexpected",
            Some(
                "supervisord cannot tell signals and timeouts from exit codes, so it restarts after any exit but 0",
            ),
        ),
    }
}

/// One `environment=` value, quoted so that a comma or space stays inside it. supervisord keeps
/// the quotes, then strips every quote character from both ends, and knows no escapes: a value
/// with both kinds of quote, or one at either end, cannot be written.
fn env_value(key: &str, value: &str) -> Result<String> {
    let quote_char = if !value.contains('"') {
        '"'
    } else if !value.contains('\'') {
        '\''
    } else {
        crate::fail!(
            Usage,
            "[service.env] {key}: supervisord cannot read a value with both ' and \" in it"
        );
    };
    if value.starts_with(['"', '\'']) || value.ends_with(['"', '\'']) {
        crate::fail!(
            Usage,
            "[service.env] {key}: supervisord strips quotes from both ends of a value, so it \
             cannot start or end with one"
        );
    }
    Ok(format!("{quote_char}{}{quote_char}", expandable(value)))
}

/// supervisord expands `%(name)s` in values; `%%` is a literal `%`.
fn expandable(value: &str) -> String {
    value.replace('%', "%%")
}

/// configparser ends a value at `;` or `#` after whitespace, quotes or not: refuse such a value
/// rather than write one supervisord would cut short.
fn ini_value(value: &str, key: &str) -> Result<String> {
    let chars: Vec<char> = value.chars().collect();
    let cut = chars
        .windows(2)
        .any(|pair| pair[0].is_whitespace() && (pair[1] == ';' || pair[1] == '#'));
    if cut {
        crate::fail!(
            Usage,
            "{key}: supervisord would read the \" ;\" or \" #\" in {value:?} as the start of a \
             comment"
        );
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_values_are_quoted_for_supervisord() {
        assert_eq!(env_value("K", "a,b c").unwrap(), "\"a,b c\"");
        assert_eq!(
            env_value("K", "say \"hi\" now").unwrap(),
            "'say \"hi\" now'"
        );
        assert_eq!(env_value("K", "100%").unwrap(), "\"100%%\"");
        assert!(env_value("K", "it's \"both\" kinds").is_err());
        assert!(env_value("K", "\"edge").is_err());
    }

    #[test]
    fn comment_markers_after_whitespace_are_refused() {
        assert!(ini_value("a;b", "k").is_ok());
        assert!(ini_value("a ;b", "k").is_err());
        assert!(ini_value("a\t#b", "k").is_err());
    }

    #[test]
    fn restart_maps_to_autorestart() {
        assert_eq!(autorestart("no").0, "false");
        assert_eq!(autorestart("always"), ("true", None));
        assert_eq!(autorestart("on-failure"), ("unexpected", None));
        assert!(autorestart("on-abnormal").1.is_some());
    }
}
