//! `shipit diff [HOST...]`: what shipit.toml declares for each host — the units as the deploy
//! would install them for the host's systemd, the env file's keys, the `[service] files` —
//! against what is installed there, as one unified diff per file. Env values never leave the
//! host and are never shown: both sides show `KEY=<masked>`, compared by the sha256 of each
//! line. Hooks are left out: a deploy does not record the hooks it ran.

use std::borrow::Cow;
use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::PassThrough;
use crate::hosts::script::Script;
use crate::hosts::{self, Connection, Layout};
use crate::remote::{self, Kind, Remote};
use crate::ui::{Format, Ui};
use crate::unit::Units;

/// `shipit diff`, as the command line asked for it.
#[derive(Debug, Clone)]
pub struct Request {
    pub hosts: Vec<String>,
    pub format: Format,
    pub connection: Connection,
}

/// What shipit.toml declares for one host, built here before anything connects.
#[derive(Debug, Clone)]
pub struct Declared {
    /// Not yet adapted to the host's systemd, which only the host can tell.
    units: Units,
    /// (key, sha256 of its line) for each line of the env file a deploy would write.
    env: Option<Vec<(String, String)>>,
    /// (name, sha256) for each of `[service] files`.
    files: Vec<(String, String)>,
}

/// One host compared: the diff of each file, and the error that kept it from being compared.
#[derive(Debug, Serialize)]
pub struct HostDiff {
    pub host: String,
    pub identical: bool,
    pub files: Vec<FileDiff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One file compared: where it is installed, and the unified diff (empty when identical).
#[derive(Debug, Serialize)]
pub struct FileDiff {
    pub path: String,
    pub identical: bool,
    pub diff: String,
}

/// Exits 1 (as diff(1) does) when any host differs; an error keeps its own exit code.
pub fn run(config: &Config, request: &Request, ui: &Ui) -> Result<()> {
    let hosts = hosts::expand_groups(config, &request.hosts);
    let declared = declare(config, &hosts, ui)?;
    let mut diffs = Vec::new();
    let mut first_error = None;
    for (host, declared) in hosts.iter().zip(&declared) {
        let compared = hosts::open(config, host, &request.connection, ui)
            .and_then(|(mut remote, layout)| compare(declared, remote.as_mut(), &layout));
        match compared {
            Ok(diff) => diffs.push(diff),
            Err(e) => {
                diffs.push(HostDiff::failed(host, &e));
                first_error.get_or_insert(e);
            }
        }
    }
    if request.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&diffs)?);
    } else {
        print_text(&diffs, ui);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if diffs.iter().any(|d| !d.identical) {
        return Err(PassThrough(1).into());
    }
    Ok(())
}

fn print_text(diffs: &[HostDiff], ui: &Ui) {
    for diff in diffs {
        if let Some(error) = &diff.error {
            let first = error.lines().next().unwrap_or_default();
            ui.status(
                "Failed",
                format_args!("{}: not compared: {first}", diff.host),
            );
            continue;
        }
        for file in diff.files.iter().filter(|f| !f.identical) {
            print!("{}", file.diff);
        }
        let (verb, what) = match diff.identical {
            true => ("Identical", "as shipit.toml declares it"),
            false => ("Differs", "differs from what shipit.toml declares"),
        };
        ui.status(verb, format_args!("{}: {what}", diff.host));
    }
}

/// What shipit.toml declares for each of `hosts`: the units, each host's env file (its
/// `env_command`s run here, once each) and the sha256 of each of `[service] files`.
pub fn declare(config: &Config, hosts: &[&str], ui: &Ui) -> Result<Vec<Declared>> {
    let units = crate::unit::render(config)?;
    let files = config
        .service
        .files
        .iter()
        .map(|name| {
            Ok((
                name.clone(),
                crate::package::sha256_file(&config.root.join(name))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let env_files = crate::env_file::host_env_files(config, hosts, ui)?;
    Ok(env_files
        .into_iter()
        .map(|env| Declared {
            units: units.clone(),
            env: env.map(|bytes| env_lines(&String::from_utf8_lossy(&bytes))),
            files: files.clone(),
        })
        .collect())
}

/// Each line of an env file shipit writes as (key, sha256 of the line with its newline), as
/// `diff.sh` reads the installed one.
fn env_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|line| {
            let key = line.split_once('=').map_or(line, |(k, _)| k);
            let sum = hex::encode(Sha256::digest(format!("{line}\n")));
            (key.to_string(), sum)
        })
        .collect()
}

/// Reads what one host has installed (one step) and compares it with `declared`.
pub fn compare(declared: &Declared, remote: &mut dyn Remote, layout: &Layout) -> Result<HostDiff> {
    let host = remote.label().to_string();
    let script = ReadDrift {
        files: declared.files.iter().map(|(n, _)| n.clone()).collect(),
    };
    let out = remote::run_one(remote, script.step(layout))?;
    let installed = Installed::parse(&out)
        .with_context(|| format!("{host} answered `shipit diff` with something it cannot read"))?;
    let app = layout.app.to_string();
    let (units, _) = declared.units.for_version(&app, installed.systemd);
    let at = |path: String| format!("{host}:{path}");
    let mut files = vec![FileDiff::of(
        Some(&units.service),
        installed.unit.as_deref(),
        &at(layout.unit_path()),
    )];
    if units.socket.is_some() || installed.socket.is_some() {
        files.push(FileDiff::of(
            units.socket.as_deref(),
            installed.socket.as_deref(),
            &at(layout.socket_path()),
        ));
    }
    if declared.env.is_some() || installed.env.is_some() {
        let (ours, theirs) = masked(declared.env.as_deref(), installed.env.as_deref());
        files.push(FileDiff::of(
            ours.as_deref(),
            theirs.as_deref(),
            &at(layout.env_file()),
        ));
    }
    if !declared.files.is_empty() {
        let listing = |files: &[(String, String)]| {
            files
                .iter()
                .map(|(name, sum)| format!("{sum}  {name}\n"))
                .collect::<String>()
        };
        files.push(FileDiff::of(
            Some(&listing(&declared.files)),
            Some(&listing(&installed.files)),
            &at(format!("{} ([service] files, by sha256)", layout.current())),
        ));
    }
    Ok(HostDiff {
        host,
        identical: files.iter().all(|f| f.identical),
        files,
        error: None,
    })
}

/// Both env files as `KEY=<masked>` lines; an installed line whose key shipit.toml sets to
/// another value says so.
fn masked(
    declared: Option<&[(String, String)]>,
    installed: Option<&[(String, String)]>,
) -> (Option<String>, Option<String>) {
    let mut sums: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, sum) in declared.into_iter().flatten() {
        sums.entry(key).or_default().push(sum);
    }
    let ours = declared.map(|lines| {
        lines
            .iter()
            .map(|(key, _)| format!("{key}=<masked>\n"))
            .collect()
    });
    let theirs = installed.map(|lines| {
        lines
            .iter()
            .map(
                |(key, sum)| match (key.strip_prefix(':'), sums.get(key.as_str())) {
                    (Some(line), _) => format!("<line {line} is not KEY=VALUE>\n"),
                    (None, Some(ours)) if !ours.contains(&sum.as_str()) => {
                        format!("{key}=<masked> (value differs)\n")
                    }
                    (None, _) => format!("{key}=<masked>\n"),
                },
            )
            .collect()
    });
    (ours, theirs)
}

impl FileDiff {
    /// `declared` against `installed` at `path`; None is a file that is not there.
    fn of(declared: Option<&str>, installed: Option<&str>, path: &str) -> FileDiff {
        let identical = declared == installed;
        let diff = if identical {
            String::new()
        } else {
            let (ours, theirs) = (declared.unwrap_or_default(), installed.unwrap_or_default());
            let absent = |side: Option<&str>| if side.is_none() { " (none)" } else { "" };
            similar::TextDiff::from_lines(ours, theirs)
                .unified_diff()
                .context_radius(3)
                .header(
                    &format!("declared{}", absent(declared)),
                    &format!("installed {path}{}", absent(installed)),
                )
                .missing_newline_hint(false)
                .to_string()
        };
        FileDiff {
            path: path.to_string(),
            identical,
            diff,
        }
    }
}

impl HostDiff {
    fn failed(host: &str, error: &anyhow::Error) -> HostDiff {
        HostDiff {
            host: host.to_string(),
            identical: false,
            files: Vec::new(),
            error: Some(format!("{error:#}")),
        }
    }
}

/// The script (`diff.sh`): it reads the installed units, the env file's line hashes and the
/// sha256 of each of `files` in the current release.
pub struct ReadDrift {
    pub files: Vec<String>,
}

impl Script for ReadDrift {
    fn kind(&self) -> Kind {
        Kind::Drift
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![("files", self.files.join("\n"))]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![include_str!("scripts/diff.sh").into()]
    }
}

/// What [`ReadDrift`] found.
#[derive(Debug, PartialEq, Eq)]
struct Installed {
    systemd: u32,
    unit: Option<String>,
    socket: Option<String>,
    env: Option<Vec<(String, String)>>,
    /// (name, sha256 or `-` when missing), in the order asked.
    files: Vec<(String, String)>,
}

impl Installed {
    fn parse(out: &str) -> Option<Installed> {
        let (head, units) = out.split_at(out.find("\nsize=").map_or(out.len(), |i| i + 1));
        let mut installed = Installed {
            systemd: 0,
            unit: None,
            socket: None,
            env: None,
            files: Vec::new(),
        };
        for line in head.lines() {
            let (name, value) = line.split_once('=')?;
            let pair = || {
                value
                    .split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            };
            match name {
                "systemd" => installed.systemd = crate::systemd::parse_version(value)?,
                "env" if value.is_empty() => installed.env = Some(Vec::new()),
                "env" => installed.env.get_or_insert_default().push(pair()?),
                "file" => installed.files.push(pair().map(|(sum, name)| (name, sum))?),
                _ => return None,
            }
        }
        let (unit, rest) = sized(units)?;
        let (socket, _) = sized(rest)?;
        installed.unit = unit;
        installed.socket = socket;
        (installed.systemd > 0).then_some(installed)
    }
}

/// A `size=BYTES` line and that many bytes (None for `size=-`), and what follows.
fn sized(out: &str) -> Option<(Option<String>, &str)> {
    let (size, rest) = out.strip_prefix("size=")?.split_once('\n')?;
    if size == "-" {
        return Some((None, rest));
    }
    let size: usize = size.trim().parse().ok()?;
    let text = rest.get(..size)?;
    Some((Some(text.to_string()), &rest[size..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_read_with_units_of_any_text() {
        let unit = "[Service]\nsize=3\nenv=X\n";
        let out = format!(
            "systemd=systemd 252 (252.30-1~deb12u2)\nenv=\nenv=A {a}\nenv=:3 {b}\n\
             file=- conf/app.toml\nsize={}\n{unit}size=-\n",
            unit.len(),
            a = "a".repeat(64),
            b = "b".repeat(64),
        );
        let installed = Installed::parse(&out).unwrap();
        assert_eq!(installed.systemd, 252);
        assert_eq!(installed.unit.as_deref(), Some(unit));
        assert_eq!(installed.socket, None);
        assert_eq!(
            installed.env.unwrap(),
            [("A".into(), "a".repeat(64)), (":3".into(), "b".repeat(64))]
        );
        assert_eq!(installed.files, [("conf/app.toml".into(), "-".into())]);
        assert_eq!(Installed::parse("systemd=\nsize=-\nsize=-\n"), None);
    }

    #[test]
    fn env_values_are_masked_and_a_changed_one_is_marked() {
        let ours = env_lines("A=1\nB=secret\n");
        let theirs = env_lines("A=1\nB=other-secret\nEXTRA=secret-value\n");
        let (ours, theirs) = masked(Some(&ours), Some(&theirs));
        assert_eq!(ours.as_deref(), Some("A=<masked>\nB=<masked>\n"));
        assert_eq!(
            theirs.as_deref(),
            Some("A=<masked>\nB=<masked> (value differs)\nEXTRA=<masked>\n")
        );
        let diff = FileDiff::of(ours.as_deref(), theirs.as_deref(), "web1:/etc/app/app.env");
        assert!(!diff.identical);
        assert!(
            diff.diff
                .starts_with("--- declared\n+++ installed web1:/etc/app/app.env\n")
        );
        assert!(!diff.diff.contains("secret"), "{}", diff.diff);
        assert_eq!(masked(None, None), (None, None));
    }

    #[test]
    fn a_file_the_host_lacks_is_named_so() {
        let diff = FileDiff::of(
            Some("[Socket]\n"),
            None,
            "web1:/etc/systemd/system/app.socket",
        );
        assert!(
            diff.diff.starts_with(
                "--- declared\n+++ installed web1:/etc/systemd/system/app.socket (none)\n"
            ),
            "{}",
            diff.diff
        );
        assert!(FileDiff::of(Some("x\n"), Some("x\n"), "p").identical);
    }
}
