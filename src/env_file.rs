//! The env file each host gets, built here: `[service] env_file`, then `[service] env_command`'s
//! output, then the host's own `env_command` and `env` (a later key wins, as systemd keeps the
//! last assignment). Every source is read with one parser ([`parse`]); values are never shown,
//! not even in errors, and travel to the host only on the release step's stdin.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::config::{Argv, Config};
use crate::error::{Category, Tag};
use crate::ui::Ui;

/// `KEY=VALUE` pairs in the order read.
pub type Pairs = Vec<(String, String)>;

/// A value written in matching quotes, which stay part of the value: worth a warning, since
/// dotenv tools strip them and users often expect that. Names the line and key, never the value.
#[derive(Debug, PartialEq, Eq)]
pub struct QuotedValue {
    pub line: usize,
    pub key: String,
}

/// `KEY=VALUE` lines, as Docker's and kubectl's `--env-file` read them: a value is everything
/// after the first `=`, quotes and spaces included; blank lines and `#` comments are skipped.
/// A line that is not `KEY=VALUE` is an error naming its number only (it may hold a secret);
/// `at` says where line N is (`.env.production:N`).
pub fn parse(text: &str, at: &dyn Fn(usize) -> String) -> Result<(Pairs, Vec<QuotedValue>)> {
    let mut pairs = Vec::new();
    let mut quoted = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((key, value))
                if crate::validate::validate_env_key(key.trim_end()).is_ok()
                    && !value.contains('\0') =>
            {
                let key = key.trim_end().to_string();
                if is_quoted(value) {
                    quoted.push(QuotedValue {
                        line: index + 1,
                        key: key.clone(),
                    });
                }
                pairs.push((key, value.to_string()));
            }
            _ => crate::fail!(
                Usage,
                "{}: expected KEY=VALUE (the line is not shown because it may hold a secret)",
                at(index + 1)
            ),
        }
    }
    Ok((pairs, quoted))
}

fn is_quoted(value: &str) -> bool {
    let value = value.trim_end();
    value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')))
}

/// Each host's env file, in the order of `hosts`: `None` where no source sets anything.
/// Commands run once each (the shared one once for all hosts), before anything connects.
pub fn host_env_files(config: &Config, hosts: &[&str], ui: &Ui) -> Result<Vec<Option<Vec<u8>>>> {
    let mut shared = read_env_file(config, ui)?;
    if let Some(command) = &config.service.env_command {
        let pairs = run_env_command(config, command, None, ui)?;
        shared.get_or_insert_default().extend(pairs);
    }
    hosts
        .iter()
        .map(|host| {
            let entry = config.hosts.get(*host);
            let own_command = entry
                .and_then(|e| e.env_command.as_ref())
                .map(|command| run_env_command(config, command, Some(host), ui))
                .transpose()?;
            Ok(merge(
                shared.as_deref(),
                own_command.as_deref(),
                entry.map(|e| &e.env),
            ))
        })
        .collect()
}

/// The sources in order, each line written so systemd reads the value back exactly; `None`
/// when there is nothing to write (the host keeps no env file of shipit's).
fn merge(
    shared: Option<&[(String, String)]>,
    own_command: Option<&[(String, String)]>,
    own: Option<&BTreeMap<String, String>>,
) -> Option<Vec<u8>> {
    let own = own.filter(|e| !e.is_empty());
    if shared.is_none() && own_command.is_none() && own.is_none() {
        return None;
    }
    let lines = shared
        .into_iter()
        .flatten()
        .chain(own_command.into_iter().flatten())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(
            own.into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
    Some(
        lines
            .map(|(key, value)| crate::unit::env_file_line(key, value))
            .collect::<String>()
            .into_bytes(),
    )
}

fn read_env_file(config: &Config, ui: &Ui) -> Result<Option<Pairs>> {
    let Some(path) = &config.service.env_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the env file {}", path.display()))
        .tag(Category::Usage)?;
    let at = |line| format!("{}:{line}", path.display());
    let (pairs, quoted) = parse(&text, &at)?;
    warn_quoted(&at, &quoted, ui);
    Ok(Some(pairs))
}

fn warn_quoted(at: &dyn Fn(usize) -> String, quoted: &[QuotedValue], ui: &Ui) {
    for q in quoted {
        ui.diagnostic(format!(
            "warning: {}: the value of {} is in quotes, which stay part of it (as with \
             docker --env-file)\n  help: remove the quotes unless the service expects them",
            at(q.line),
            q.key
        ));
    }
}

/// Runs `env_command` here, in the project directory, and parses its stdout. Its stdout is
/// never shown; its stderr goes to the terminal as it comes (sign-in prompts and errors of
/// `op`, `vault` or `pass` are what a user needs, and they do not print the secret there).
/// `SHIPIT_HOST` names the host for a `[hosts.X] env_command`.
fn run_env_command(config: &Config, command: &Argv, host: Option<&str>, ui: &Ui) -> Result<Pairs> {
    let origin = match host {
        Some(host) => format!("env_command of {host} ({})", command.location),
        None => format!("env_command ({})", command.location),
    };
    ui.status(
        "Reading",
        format_args!("secrets: {}", command.words.join(" ")),
    );
    let mut process = Command::new(&command.words[0]);
    process
        .args(&command.words[1..])
        .current_dir(&config.root)
        .stdin(crate::process::stdin_for_child())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(host) = host {
        process.env("SHIPIT_HOST", host);
    }
    let mut child = process
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!(
                    "{origin}: `{}` is not installed or not on PATH",
                    command.words[0]
                )
            } else {
                anyhow::anyhow!("{origin}: cannot run `{}`: {e}", command.words[0])
            }
        })
        .tag(Category::Usage)?;
    let mut stdout = Vec::new();
    let read = child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_end(&mut stdout);
    let status = child
        .wait()
        .with_context(|| format!("{origin}: waiting for `{}`", command.words[0]))?;
    read.with_context(|| format!("{origin}: reading the output of `{}`", command.words[0]))?;
    if !status.success() {
        crate::fail!(
            Usage,
            "{origin}: `{}` failed ({status}); nothing was uploaded (its output is not shown \
             because it may hold a secret; what it printed on stderr is above)\n  help: run \
             the command yourself to see why, e.g. whether you are signed in",
            command.words.join(" ")
        );
    }
    let text = String::from_utf8(stdout)
        .map_err(|_| {
            anyhow::anyhow!("{origin}: the output is not UTF-8 text; nothing was uploaded")
        })
        .tag(Category::Usage)?;
    let at = |line| format!("{origin}: output line {line}");
    let (pairs, quoted) = parse(&text, &at)?;
    warn_quoted(&at, &quoted, ui);
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<(Pairs, Vec<QuotedValue>), String> {
        parse(text, &|line| format!("x.env:{line}")).map_err(|e| e.to_string())
    }

    #[test]
    fn values_are_everything_after_the_first_equals() {
        let (pairs, quoted) =
            parsed("A=1\n\n# c\n  B = x=y \r\nC=\nD=\"q\"\nE='s'\nF=\"open\n").unwrap();
        let got: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("A", "1"),
                ("B", " x=y "),
                ("C", ""),
                ("D", "\"q\""),
                ("E", "'s'"),
                ("F", "\"open"),
            ]
        );
        let quoted: Vec<(usize, &str)> = quoted.iter().map(|q| (q.line, q.key.as_str())).collect();
        assert_eq!(quoted, [(6, "D"), (7, "E")]);
    }

    #[test]
    fn a_bad_line_is_named_by_number_without_its_text() {
        for bad in [
            "hunter2",
            "1KEY=hunter2",
            "A B=hunter2",
            "=hunter2",
            "K=hunter2\0",
        ] {
            let err = parsed(&format!("OK=1\n{bad}\n")).unwrap_err();
            assert!(err.starts_with("x.env:2: expected KEY=VALUE"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn later_sources_win_and_nothing_means_no_file() {
        let pairs = |p: &[(&str, &str)]| -> Pairs {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(merge(None, None, Some(&BTreeMap::new())), None);
        let shared = pairs(&[("A", "file"), ("B", "command")]);
        let command = pairs(&[("B", "host command")]);
        let own = BTreeMap::from([("B".to_string(), "host env".to_string())]);
        let file = merge(Some(&shared), Some(&command), Some(&own)).unwrap();
        assert_eq!(
            String::from_utf8(file).unwrap(),
            "A=file\nB=command\nB=\"host command\"\nB=\"host env\"\n"
        );
    }
}
