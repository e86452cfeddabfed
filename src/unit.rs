//! The systemd unit: rendered from a handlebars template (built in, or the project's own
//! templates/service.hbs) and optionally checked with `systemd-analyze verify`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::Config;
use crate::error::{Category, Tag};
use crate::paths::{current_dir, env_file, state_dir};
use crate::template::Template;
use crate::ui::Ui;

const SERVICE: Template = Template {
    path: PROJECT_TEMPLATE,
    builtin: include_str!("../templates/service.hbs"),
};
/// A project's own template, relative to its root, replaces the built-in one.
pub const PROJECT_TEMPLATE: &str = "templates/service.hbs";

/// Everything a template can use. Rendering from this struct (not a loose map) means a
/// template typo is a strict-mode error, not a silently empty line.
#[derive(Debug, Serialize)]
struct UnitData {
    app: String,
    description: String,
    user: String,
    working_directory: String,
    exec_start: String,
    restart: String,
    restart_sec: u64,
    timeout_stop_sec: u64,
    limit_nofile: u64,
    start_limit_interval_sec: u64,
    start_limit_burst: u64,
    environment: Vec<String>,
    environment_file: String,
    state_path: String,
    hardening: Vec<Directive>,
    capabilities: String,
}

#[derive(Debug, Serialize)]
struct Directive {
    key: String,
    value: String,
}

/// `shipit unit generate`, from the command line.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    /// Write here instead of stdout.
    pub output: Option<PathBuf>,
    /// Check with this machine's `systemd-analyze verify`; any warning is an error.
    pub verify: bool,
    /// Render for hosts with this systemd release.
    pub systemd_version: Option<u32>,
}

pub fn generate(config: &Config, options: &GenerateOptions, ui: &Ui) -> Result<()> {
    let mut unit = render(config)?;
    if let Some(version) = options.systemd_version {
        let (adapted, left_out) = crate::systemd::unit_for(&unit, version);
        for l in left_out {
            ui.status(
                "Note",
                format_args!(
                    "{}= needs systemd {}, the unit is for {version}: left out",
                    l.directive, l.since
                ),
            );
        }
        unit = adapted;
    }
    if options.verify {
        verify(&config.app.name, &unit, ui)?;
        ui.status(
            "Verified",
            format_args!("{}.service with systemd-analyze", config.app.name),
        );
    }
    match &options.output {
        Some(path) => {
            std::fs::write(path, &unit)
                .with_context(|| format!("cannot write {}", path.display()))
                .tag(Category::Usage)?;
            ui.status("Wrote", path.display());
        }
        None => print!("{unit}"),
    }
    Ok(())
}

pub fn render(config: &Config) -> Result<String> {
    crate::template::render(config, &SERVICE, &unit_data(config))
}

fn unit_data(config: &Config) -> UnitData {
    let app = &config.app.name;
    let service = &config.service;
    let binary = format!("{}/{app}", current_dir(app));
    let exec_start = std::iter::once(binary.as_str())
        .chain(service.exec_args.iter().map(String::as_str))
        .map(exec_word)
        .collect::<Vec<_>>()
        .join(" ");
    UnitData {
        app: app.clone(),
        description: line_end(escape_specifiers(&service.description)),
        user: service.user.clone(),
        working_directory: current_dir(app),
        exec_start,
        restart: service.restart.clone(),
        restart_sec: service.restart_sec,
        timeout_stop_sec: service.timeout_stop_sec,
        limit_nofile: service.limit_nofile,
        start_limit_interval_sec: service.start_limit_interval_sec,
        start_limit_burst: service.start_limit_burst,
        environment: service
            .env
            .iter()
            .map(|(k, v)| quoted(&format!("{k}={v}")))
            .collect(),
        environment_file: env_file(app),
        state_path: state_dir(app),
        hardening: service
            .hardening
            .iter()
            .map(|(key, value)| Directive {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        capabilities: service.capabilities.join(" "),
    }
}

/// `%` starts a specifier in almost every unit setting.
fn escape_specifiers(value: &str) -> String {
    value.replace('%', "%%")
}

/// A value at the end of a unit line. A trailing backslash would join the next line to it (and
/// the next directive would vanish); systemd strips the space added after it, so the value reads
/// back exactly as written.
fn line_end(value: String) -> String {
    if value.ends_with('\\') {
        value + " "
    } else {
        value
    }
}

/// One `KEY=value` line of an EnvironmentFile that systemd (and a POSIX shell) reads back as
/// exactly `value`: plain values as they are, others double-quoted with `\`, `"`, `$` and `` ` ``
/// escaped. Unquoted, a trailing backslash would continue the line into the next variable and
/// quotes would be stripped. Values never hold a newline (validated or split into lines).
pub fn env_file_line(key: &str, value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:@,+=%".contains(c));
    if plain {
        return format!("{key}={value}\n");
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    format!("{key}=\"{quoted}\"\n")
}

/// A systemd double-quoted string, with specifiers escaped.
fn quoted(value: &str) -> String {
    let escaped = escape_specifiers(value)
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// One word of an Exec line: `$` would expand a variable, so it is doubled; anything beyond plain
/// characters is quoted.
fn exec_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@".contains(c));
    if plain {
        word.to_string()
    } else {
        quoted(word).replace('$', "$$")
    }
}

/// `unit generate --verify`: `systemd-analyze verify` must have nothing to say about the unit.
pub fn verify(app: &str, unit: &str, ui: &Ui) -> Result<()> {
    let analysis = analyze(app, unit, ui)?.ok_or_else(|| {
        crate::error::tagged(
            Category::Usage,
            anyhow::anyhow!("cannot run systemd-analyze: install systemd to use --verify"),
        )
    })?;
    if !analysis.success || !analysis.problems.is_empty() {
        crate::fail!(
            Usage,
            "systemd-analyze verify rejected {app}.service (systemd {}):\n{}",
            analysis.version,
            analysis.problems.join("\n")
        );
    }
    Ok(())
}

/// What `shipit build` checks before building, when this machine has `systemd-analyze`: every
/// directive name and section must be one systemd knows, exactly as a host would say it.
/// Values are left to the host's own systemd, which decides what its release accepts.
pub fn check_names(app: &str, unit: &str, ui: &Ui) -> Result<()> {
    let Some(analysis) = analyze(app, unit, ui)? else {
        ui.status(
            "Skipped",
            "checking the unit: systemd-analyze is not installed here (the hosts check it)",
        );
        return Ok(());
    };
    let unknown: Vec<&String> = analysis
        .problems
        .iter()
        .filter(|line| NAME_PROBLEMS.iter().any(|p| line.contains(p)))
        .collect();
    if !unknown.is_empty() {
        crate::fail!(
            Usage,
            "{app}.service names what systemd {} does not know:\n{}\n  \
             help: fix the name in {PROJECT_TEMPLATE} or [service.hardening] in shipit.toml \
             (`shipit unit generate` shows the rendered unit with these line numbers)",
            analysis.version,
            unknown
                .iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}

/// How systemd's unit parser says a name is wrong, in the wordings of the releases since 239
/// ("Unknown key name 'X' in section 'Service'", "Unknown key 'X' in section [Service]", …).
const NAME_PROBLEMS: &[&str] = &[
    "Unknown key",
    "Unknown lvalue",
    "Unknown section",
    "Invalid section header",
    "Missing '='",
    "Assignment outside of section",
];

/// What `systemd-analyze verify` said about a unit.
struct Analysis {
    success: bool,
    /// Its stderr lines, paths shown relative to the throwaway root.
    problems: Vec<String>,
    /// The systemd release that checked.
    version: u32,
}

/// Runs this machine's `systemd-analyze verify` (with the flags its release has) against a
/// throwaway root holding the unit, a stand-in for its binary and this machine's unit library.
/// Directives newer than this systemd are left out first, as a host of its release would get
/// them. It exits 0 on some bad values, so its stderr is what counts. None without
/// `systemd-analyze`.
fn analyze(app: &str, unit: &str, ui: &Ui) -> Result<Option<Analysis>> {
    let Some(version) = crate::systemd::local_version() else {
        return Ok(None);
    };
    let (unit, left_out) = crate::systemd::unit_for(unit, version);
    for l in left_out {
        ui.status(
            "Note",
            format_args!(
                "{}= needs systemd {}, this machine has {version}: not checked here",
                l.directive, l.since
            ),
        );
    }
    let root = tempfile::tempdir().context("cannot create a temporary directory")?;
    let unit_name = format!("{app}.service");
    stage_verify_root(root.path(), app, &unit_name, &unit)?;
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .args(crate::systemd::verify_flags(version))
        .arg(format!("--root={}", root.path().display()))
        .arg(&unit_name)
        .output()
        .context("cannot run systemd-analyze")
        .tag(Category::Usage)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let unit_dir = format!("{}/etc/systemd/system/", root.path().display());
    let root_text = root.path().display().to_string();
    Ok(Some(Analysis {
        success: output.status.success(),
        problems: stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.replace(&unit_dir, "").replace(&root_text, ""))
            .collect(),
        version,
    }))
}

fn stage_verify_root(root: &Path, app: &str, unit_name: &str, unit: &str) -> Result<()> {
    let unit_dir = root.join("etc/systemd/system");
    let binary_dir = root.join(current_dir(app).trim_start_matches('/'));
    for dir in [&unit_dir, &binary_dir, &root.join("usr/lib/systemd")] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(unit_dir.join(unit_name), unit)?;
    let binary = binary_dir.join(app);
    std::fs::write(&binary, "#!/bin/sh\n")?;
    set_executable(&binary)?;
    let library = PathBuf::from("/usr/lib/systemd/system");
    if library.is_dir() {
        let status = Command::new("cp")
            .arg("-a")
            .arg(&library)
            .arg(root.join("usr/lib/systemd/"))
            .status()
            .context("cannot copy the systemd unit library")?;
        anyhow::ensure!(status.success(), "copying {} failed", library.display());
    }
    Ok(())
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot chmod {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_words_are_quoted_and_escaped() {
        assert_eq!(exec_word("--port"), "--port");
        assert_eq!(exec_word("a b"), "\"a b\"");
        assert_eq!(exec_word("$HOME"), "\"$$HOME\"");
        assert_eq!(exec_word("50%"), "\"50%%\"");
        assert_eq!(exec_word("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(exec_word(""), "\"\"");
    }

    #[test]
    fn env_file_values_are_quoted_unless_plain() {
        assert_eq!(env_file_line("A", "b-1.2"), "A=b-1.2\n");
        assert_eq!(env_file_line("A", ""), "A=\n");
        assert_eq!(env_file_line("A", "x\\"), "A=\"x\\\\\"\n");
        assert_eq!(env_file_line("A", "'q'"), "A=\"'q'\"\n");
        assert_eq!(
            env_file_line("A", "\"$HOME\" `id`"),
            "A=\"\\\"\\$HOME\\\" \\`id\\`\"\n"
        );
    }

    #[test]
    fn a_trailing_backslash_never_ends_a_unit_line() {
        assert_eq!(line_end("a\\".into()), "a\\ ");
        assert_eq!(line_end("a".into()), "a");
    }

    #[test]
    fn environment_values_are_quoted() {
        assert_eq!(quoted("A=b c"), "\"A=b c\"");
        assert_eq!(quoted("P=100%"), "\"P=100%%\"");
    }
}
