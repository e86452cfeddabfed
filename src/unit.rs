//! The systemd units: the service, and with `[service] listen` the socket that holds its
//! listening sockets, each rendered from a handlebars template (built in, or the project's own
//! templates/service.hbs and templates/socket.hbs) and checked with `systemd-analyze verify`.

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

const SOCKET: Template = Template {
    path: "templates/socket.hbs",
    builtin: include_str!("../templates/socket.hbs"),
};

/// Where systemd units are installed on a host (and where `systemctl cat` says they are).
const UNIT_DIR: &str = "/etc/systemd/system";

/// The socket's `Backlog=`: INT_MAX, so the kernel's net.core.somaxconn alone decides how many
/// connections wait while the service restarts (as systemd 254 and later do by default; older
/// releases used libc's SOMAXCONN, 128 on RHEL 8's glibc).
const BACKLOG: u32 = i32::MAX as u32;

/// An app's rendered units: the service, and its socket when `[service] listen` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Units {
    pub service: String,
    pub socket: Option<String>,
}

impl Units {
    /// Each unit as (file name, text), the service first.
    pub fn files(&self, app: &str) -> Vec<(String, &str)> {
        let mut files = vec![(format!("{app}.service"), self.service.as_str())];
        if let Some(socket) = &self.socket {
            files.push((format!("{app}.socket"), socket.as_str()));
        }
        files
    }

    /// The units as systemd `version` should get them: every unit through
    /// [`crate::systemd::unit_for`], with what each left out, named by its file ("hello.socket:
    /// ") where there are several, for notes.
    pub fn for_version(
        &self,
        app: &str,
        version: u32,
    ) -> (Units, Vec<(String, crate::systemd::LeftOut)>) {
        let several = self.socket.is_some();
        let mut left_out = Vec::new();
        let mut adapt = |name: String, unit: &str| {
            let (adapted, dropped) = crate::systemd::unit_for(unit, version);
            let name = if several {
                format!("{name}: ")
            } else {
                String::new()
            };
            left_out.extend(dropped.into_iter().map(|l| (name.clone(), l)));
            adapted
        };
        let units = Units {
            service: adapt(format!("{app}.service"), &self.service),
            socket: self
                .socket
                .as_deref()
                .map(|socket| adapt(format!("{app}.socket"), socket)),
        };
        (units, left_out)
    }

    /// "hello.service" or "hello.service and hello.socket".
    fn names(&self, app: &str) -> String {
        self.files(app)
            .into_iter()
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

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
    /// `<app>.socket` when `[service] listen` is set: the service requires it.
    socket: Option<String>,
}

/// What templates/socket.hbs can use.
#[derive(Debug, Serialize)]
struct SocketData {
    app: String,
    description: String,
    /// The unit it passes its sockets to, `<app>.service`.
    service: String,
    /// `ListenStream=` values.
    listen: Vec<String>,
    backlog: u32,
    trigger_limit_interval_sec: u64,
    trigger_limit_burst: u64,
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
    let app = &config.app.name;
    let mut units = render(config)?;
    let destination = destination(options.output.as_deref(), &units, app)?;
    if let Some(version) = options.systemd_version {
        let (adapted, left_out) = units.for_version(app, version);
        for (name, l) in left_out {
            ui.status(
                "Note",
                format_args!(
                    "{name}{}= needs systemd {}, the unit is for {version}: left out",
                    l.directive, l.since
                ),
            );
        }
        units = adapted;
    }
    if options.verify {
        verify(app, &units, ui)?;
        ui.status(
            "Verified",
            format_args!("{} with systemd-analyze", units.names(app)),
        );
    }
    match destination {
        Destination::Stdout => print!("{}", shown(&units, app)),
        Destination::File(path) => write_unit(&path, &units.service, ui)?,
        Destination::Dir(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))
                .tag(Category::Usage)?;
            for (name, text) in units.files(app) {
                write_unit(&dir.join(name), text, ui)?;
            }
        }
    }
    Ok(())
}

/// Where `unit generate` puts the units.
enum Destination {
    Stdout,
    /// `-o FILE`: the service unit, as before sockets; refused when there is a socket too.
    File(PathBuf),
    /// `-o DIR` (an existing directory, or a path ending in `/`): each unit under its name.
    Dir(PathBuf),
}

fn destination(output: Option<&Path>, units: &Units, app: &str) -> Result<Destination> {
    let Some(path) = output else {
        return Ok(Destination::Stdout);
    };
    if path.is_dir() || path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return Ok(Destination::Dir(path.to_path_buf()));
    }
    if units.socket.is_some() {
        crate::fail!(
            Usage,
            "-o {}: with [service] listen there are two units, {}\n  \
             help: give -o a directory (an existing one, or a path ending in /) to write both",
            path.display(),
            units.names(app)
        );
    }
    Ok(Destination::File(path.to_path_buf()))
}

fn write_unit(path: &Path, text: &str, ui: &Ui) -> Result<()> {
    std::fs::write(path, text)
        .with_context(|| format!("cannot write {}", path.display()))
        .tag(Category::Usage)?;
    ui.status("Wrote", path.display());
    Ok(())
}

/// The units for stdout: the service alone as it is, or each unit after a `# /etc/systemd/system/
/// NAME` line, as `systemctl cat` shows several.
fn shown(units: &Units, app: &str) -> String {
    if units.socket.is_none() {
        return units.service.clone();
    }
    units
        .files(app)
        .into_iter()
        .map(|(name, text)| format!("# {UNIT_DIR}/{name}\n{text}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders the service unit, and the socket unit when `[service] listen` is set.
pub fn render(config: &Config) -> Result<Units> {
    let service = crate::template::render(config, &SERVICE, &unit_data(config))?;
    let socket = match socket_data(config) {
        Some(data) => Some(crate::template::render(config, &SOCKET, &data)?),
        None => None,
    };
    Ok(Units { service, socket })
}

fn socket_data(config: &Config) -> Option<SocketData> {
    let service = &config.service;
    if service.listen.is_empty() {
        return None;
    }
    let app = &config.app.name;
    Some(SocketData {
        app: app.to_string(),
        description: line_end(escape_specifiers(&format!(
            "{} (listening socket)",
            service.description
        ))),
        service: format!("{app}.service"),
        listen: service
            .listen
            .iter()
            .map(|l| escape_specifiers(&l.to_string()))
            .collect(),
        backlog: BACKLOG,
        trigger_limit_interval_sec: service.start_limit_interval_sec,
        trigger_limit_burst: service.start_limit_burst,
    })
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
        app: app.to_string(),
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
        socket: (!service.listen.is_empty()).then(|| format!("{app}.socket")),
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

/// `unit generate --verify`: `systemd-analyze verify` must succeed and have nothing to say about
/// the units; what it says about this machine is shown as warnings.
pub fn verify(app: &str, units: &Units, ui: &Ui) -> Result<()> {
    let analysis = analyze(app, units, ui)?.ok_or_else(|| {
        crate::error::tagged(
            Category::Usage,
            anyhow::anyhow!("cannot run systemd-analyze: install systemd to use --verify"),
        )
    })?;
    if !analysis.success || analysis.lines.iter().any(|line| line.about_units) {
        let said: Vec<&str> = analysis.lines.iter().map(|l| l.text.as_str()).collect();
        crate::fail!(
            Usage,
            "systemd-analyze verify rejected {} (systemd {}):\n{}",
            units.names(app),
            analysis.version,
            said.join("\n")
        );
    }
    for line in &analysis.lines {
        ui.status(
            "Warning",
            format_args!(
                "systemd-analyze verify passed {}; of this machine it said: {}",
                units.names(app),
                line.text
            ),
        );
    }
    Ok(())
}

/// What `shipit build` checks before building, when this machine has `systemd-analyze`: every
/// directive name and section must be one systemd knows, exactly as a host would say it.
/// Values are left to the host's own systemd, which decides what its release accepts.
pub fn check_names(app: &str, units: &Units, ui: &Ui) -> Result<()> {
    let Some(analysis) = analyze(app, units, ui)? else {
        ui.status(
            "Skipped",
            "checking the units: systemd-analyze is not installed here (the hosts check them)",
        );
        return Ok(());
    };
    let unknown: Vec<&String> = analysis
        .lines
        .iter()
        .filter(|line| line.about_units && NAME_PROBLEMS.iter().any(|p| line.text.contains(p)))
        .map(|line| &line.text)
        .collect();
    if !unknown.is_empty() {
        let templates = if units.socket.is_some() {
            format!("{PROJECT_TEMPLATE}, {}", SOCKET.path)
        } else {
            PROJECT_TEMPLATE.to_string()
        };
        crate::fail!(
            Usage,
            "{} names what systemd {} does not know:\n{}\n  \
             help: fix the name in {templates} or [service.hardening] in shipit.toml \
             (`shipit unit generate` shows the rendered units with these line numbers)",
            units.names(app),
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
    lines: Vec<VerifyLine>,
    /// The systemd release that checked.
    version: u32,
}

struct VerifyLine {
    text: String,
    /// It names one of the units (see [`verify_lines_about`]); else it is about the machine.
    about_units: bool,
}

/// Which of `systemd-analyze verify`'s lines are about the units `names`: those naming one, not
/// as part of a longer name — its file (`app.service:6: Unknown key …`), a drop-in of it
/// (`app.service.d/x.conf:2: …`), the unit itself (`app.service: Command … is not executable`).
/// The other lines are about the machine that checks (a drop-in of a dependency such as
/// sockets.target, which systemd before 250 reports with the unit; what the environment
/// lacks): they name no unit of the app, so they only warn. An extended regular expression, so
/// this machine (`regex`) and the hosts (`grep -E`, in release.sh) read the lines alike; unit
/// names are app names (letters, digits, `-`) and a suffix, so only the dot needs escaping.
pub fn verify_lines_about(names: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|name| name.replace('.', "\\.")).collect();
    format!(
        "(^|[^A-Za-z0-9_.@:-])({})([^A-Za-z0-9_@-]|$)",
        names.join("|")
    )
}

/// Runs this machine's `systemd-analyze verify` (with the flags its release has) against a
/// throwaway root holding the units, a stand-in for the binary and this machine's unit library.
/// Directives newer than this systemd are left out first, as a host of its release would get
/// them. It exits 0 on some bad values, so its stderr is what counts. None without
/// `systemd-analyze`.
fn analyze(app: &str, units: &Units, ui: &Ui) -> Result<Option<Analysis>> {
    let Some(version) = crate::systemd::local_version() else {
        return Ok(None);
    };
    let (units, left_out) = units.for_version(app, version);
    for (name, l) in left_out {
        ui.status(
            "Note",
            format_args!(
                "{name}{}= needs systemd {}, this machine has {version}: not checked here",
                l.directive, l.since
            ),
        );
    }
    let root = tempfile::tempdir().context("cannot create a temporary directory")?;
    let files = units.files(app);
    stage_verify_root(root.path(), app, &files)?;
    let about_units = regex::Regex::new(&verify_lines_about(
        &files
            .iter()
            .map(|(name, _)| name.clone())
            .collect::<Vec<_>>(),
    ))
    .expect("unit names make a valid pattern");
    let output = Command::new("systemd-analyze")
        // systemd 247 colours its messages even into a pipe, whatever SYSTEMD_COLORS says.
        .env("SYSTEMD_LOG_COLOR", "0")
        .arg("verify")
        .args(crate::systemd::verify_flags(version))
        .arg(format!("--root={}", root.path().display()))
        .args(files.iter().map(|(name, _)| name))
        .output()
        .context("cannot run systemd-analyze")
        .tag(Category::Usage)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let unit_dir = format!("{}{UNIT_DIR}/", root.path().display());
    let root_text = root.path().display().to_string();
    Ok(Some(Analysis {
        success: output.status.success(),
        lines: stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.replace(&unit_dir, "").replace(&root_text, ""))
            .map(|text| VerifyLine {
                about_units: about_units.is_match(&text),
                text,
            })
            .collect(),
        version,
    }))
}

fn stage_verify_root(root: &Path, app: &str, units: &[(String, &str)]) -> Result<()> {
    let unit_dir = root.join(UNIT_DIR.trim_start_matches('/'));
    let binary_dir = root.join(current_dir(app).trim_start_matches('/'));
    for dir in [&unit_dir, &binary_dir, &root.join("usr/lib/systemd")] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for (name, text) in units {
        std::fs::write(unit_dir.join(name), text)?;
    }
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

    /// What `systemd-analyze verify` printed, captured from Debian 11 (247), this machine's
    /// Debian 12 (252) and Debian 13 (257), with the copy's directory taken out as hosts do.
    const ABOUT_THE_UNITS: &[&str] = &[
        "hello-go.service:21: Failed to parse resource value, ignoring: lots",
        "hello-go.service:22: Unknown key name 'Foo' in section 'Service', ignoring.",
        "hello-go.service:21: Failed to parse LimitNOFILE=lots, ignoring: Invalid argument",
        "hello-go.service:22: Unknown key 'Foo' in section [Service], ignoring.",
        "hello-go.service: Command /opt/hello-go/current/missing is not executable: No such \
         file or directory",
        "/etc/systemd/system/hello-go.service.d/bad.conf:2: Unknown key 'Foo' in section \
         [Service], ignoring.",
    ];
    const ABOUT_THE_MACHINE: &[&str] = &[
        // 247: drop-ins of the units' dependencies (sockets.target, network-online.target).
        "/etc/systemd/system/sockets.target.d/bad.conf:2: Unknown key name 'Foo' in section \
         'Unit', ignoring.",
        "Configuration file /etc/systemd/system/network-online.target.d/x.conf is marked \
         executable. Please remove executable permission bits. Proceeding anyway.",
        // 247 without /proc or a cgroup file system (it exits 1 then).
        "Failed to read /proc/cmdline: No such process",
        "Cannot determine cgroup we are running in: No medium found",
        "Failed to initialize manager: No medium found",
        // 257 with a read-only /run (it exits 1 then).
        "Failed to create directory '/run/systemd/': Read-only file system",
        // 252 with SYSTEMD_LOG_LEVEL=debug in the environment.
        "Failed to read $container of PID 1, ignoring: Permission denied",
        "Found container virtualization docker.",
        // Not captured: the unit of another app, whose name ends in this one's.
        "/etc/systemd/system/old-hello-go.service:3: Unknown key 'Foo' in section [Unit], \
         ignoring.",
    ];

    #[test]
    fn verify_lines_that_name_the_units_are_about_them_and_the_rest_about_the_machine() {
        let names = [
            "hello-go.service".to_string(),
            "hello-go.socket".to_string(),
        ];
        let pattern = verify_lines_about(&names);
        let about = regex::Regex::new(&pattern).unwrap();
        for line in ABOUT_THE_UNITS {
            assert!(about.is_match(line), "{line}");
        }
        for line in ABOUT_THE_MACHINE {
            assert!(!about.is_match(line), "{line}");
        }
        assert!(about.is_match("hello-go.socket: Failed to listen"));
        // Hosts read the lines with `grep -E` and this very pattern (release.sh).
        let all = [ABOUT_THE_UNITS, ABOUT_THE_MACHINE].concat().join("\n");
        let mut grep = Command::new("grep")
            .args(["-E", &pattern])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        grep.stdin
            .take()
            .unwrap()
            .write_all(all.as_bytes())
            .unwrap();
        let matched = grep.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8(matched.stdout)
                .unwrap()
                .lines()
                .collect::<Vec<_>>(),
            ABOUT_THE_UNITS
        );
    }
}
