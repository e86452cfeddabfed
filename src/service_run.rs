//! Running a command the way the service runs: the service's user, a working directory (the
//! current release or a given one), its env file(s) and `[service.env]` environment, its limits
//! and hardening, in a transient unit (`systemd-run --wait --pipe --collect`, or `--pty` for a
//! terminal) whose exit status is the command's. `shipit exec` uses it; hooks and pre-flight
//! checks run their commands the same way.
//!
//! The settings come from the unit itself, as the host has it (`systemctl cat`: the unit file
//! and its drop-ins, in order), not from shipit.toml, so a template override or an admin's
//! drop-in applies too. Each `[Service]` line becomes a `systemd-run -p` property:
//! - lines about the service's life rather than its process (ExecStart, Restart, Type,
//!   timeouts, stdio, …) do not apply to a one-off command and are skipped; WorkingDirectory
//!   and, when the caller gives its own, EnvironmentFile are replaced;
//! - a directive from [`crate::systemd::DIRECTIVES`] the host's systemd is too old for is left
//!   out and reported (the host ignores it in the unit too). Every directive there is accepted
//!   on transient units from the release that brought it (systemd 237 opened almost all unit
//!   settings to transient units; a test proves the table on 247, 252 and 257);
//! - a value with a specifier other than `%%` is left out and reported: unit files expand
//!   specifiers, `systemd-run -p` does not;
//! - anything else goes to systemd-run as written, which judges it: an assignment it does not
//!   take stops the run before the command starts, with its message.
//!
//! Drop-ins on the transient unit would take the unit's lines verbatim, specifiers included, but
//! systemd before 246 sees a new drop-in only after a `daemon-reload`.

use std::fmt;

use anyhow::Result;

use crate::shell::{self, quote, without_header};
use crate::systemd;

/// What to run, and as which service.
#[derive(Debug, Clone)]
pub struct ServiceRun<'a> {
    pub app: &'a str,
    /// Names the transient unit: `shipit-<purpose>-<app>-<random>.service`.
    pub purpose: &'a str,
    /// The service's unit as the host has it: a unit file, or `systemctl cat` output.
    pub unit: &'a str,
    /// The host's systemd release.
    pub systemd: u32,
    pub working_directory: &'a str,
    /// EnvironmentFile= values used instead of the unit's (e.g. a new release's env file).
    pub env_files: Option<&'a [String]>,
    /// Environment beyond the unit's (they win over its Environment=, not over its env file).
    pub env: &'a [(String, String)],
    /// The command and its arguments, never through a shell.
    pub argv: &'a [String],
    /// A terminal (`systemd-run --pty`) instead of pipes.
    pub terminal: bool,
}

/// A unit setting the command runs without.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftOut {
    /// The host's systemd does not know the directive (nor applies it to the service).
    Newer {
        directive: String,
        since: u32,
        version: u32,
    },
    /// The value holds a specifier only unit files expand.
    Specifier { directive: String, specifier: char },
}

impl fmt::Display for LeftOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeftOut::Newer {
                directive,
                since,
                version,
            } => write!(
                f,
                "{directive}= needs systemd {since}, this host has {version}: the command runs \
                 without it, as the service does"
            ),
            LeftOut::Specifier {
                directive,
                specifier,
            } => write!(
                f,
                "{directive}= uses the specifier %{specifier}, which only unit files expand: \
                 the command runs without it"
            ),
        }
    }
}

/// A command ready to run on the host.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The transient unit's name, e.g. for stopping it.
    pub unit_name: String,
    /// A POSIX shell script to run as root: enters the working directory, checks the command
    /// exists (exit 127 otherwise, as a shell would), then becomes systemd-run.
    pub script: String,
    pub left_out: Vec<LeftOut>,
    /// The script with environment values and the command's arguments masked, for showing.
    shown: String,
}

impl fmt::Display for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.shown)
    }
}

/// `[Service]` directives that concern the service's life, not its process: a one-off command
/// does not get them.
const LIFECYCLE: &[&str] = &[
    "Type",
    "ExitType",
    "ExecStart",
    "ExecStartPre",
    "ExecStartPost",
    "ExecCondition",
    "ExecReload",
    "ExecStop",
    "ExecStopPost",
    "Restart",
    "RestartSec",
    "RestartSteps",
    "RestartMaxDelaySec",
    "RestartMode",
    "RestartPreventExitStatus",
    "RestartForceExitStatus",
    "SuccessExitStatus",
    "RemainAfterExit",
    "GuessMainPID",
    "PIDFile",
    "BusName",
    "NotifyAccess",
    "Sockets",
    "OpenFile",
    "FileDescriptorStoreMax",
    "FileDescriptorStorePreserve",
    "USBFunctionDescriptors",
    "USBFunctionStrings",
    "TimeoutSec",
    "TimeoutStartSec",
    "TimeoutAbortSec",
    "TimeoutStartFailureMode",
    "TimeoutStopFailureMode",
    "RuntimeMaxSec",
    "RuntimeRandomizedExtraSec",
    "WatchdogSec",
    "WatchdogSignal",
    "ReloadSignal",
    "RootDirectoryStartOnly",
    "PermissionsStartOnly",
    "StandardInput",
    "StandardOutput",
    "StandardError",
    "StandardInputText",
    "StandardInputData",
    "TTYPath",
    "TTYReset",
    "TTYVHangup",
    "TTYVTDisallocate",
    "TTYRows",
    "TTYColumns",
    // Unit-section settings some units still write under [Service].
    "StartLimitInterval",
    "StartLimitIntervalSec",
    "StartLimitBurst",
    "StartLimitAction",
    "FailureAction",
    "SuccessAction",
    "RebootArgument",
];

/// Checks the command and builds the systemd-run invocation.
pub fn prepare(run: &ServiceRun) -> Result<Prepared> {
    check(run)?;
    let unit_name = format!(
        "shipit-{}-{}-{}.service",
        run.purpose,
        run.app,
        random_suffix()
    );
    let (mut words, mut shown, left_out) = invocation(
        run,
        &unit_name,
        &[
            "--collect",
            "--wait",
            if run.terminal { "--pty" } else { "--pipe" },
        ],
    );
    words.push("--".into());
    shown.push("--".into());
    // systemd expands $VAR in a command's arguments; $$ is a literal $.
    words.extend(run.argv.iter().map(|a| a.replace('$', "$$")));
    shown.push(run.argv[0].clone());
    if run.argv.len() > 1 {
        shown.push(format!("‹{} arguments›", run.argv.len() - 1));
    }
    Ok(Prepared {
        script: script(run, &words),
        shown: script(run, &shown),
        unit_name,
        left_out,
    })
}

/// A command started as a socket-activated transient service rather than run to its end: a
/// scratch socket (`systemd-run --socket-property=ListenStream=…`, systemd 237 and later) hands
/// the listening socket to the command on its first connection, as the service's own socket
/// unit does. No `--wait` or `--pipe`: the caller talks to it through the socket, then stops
/// `<unit_name>.socket` and `<unit_name>.service`. `script` defines the shell function
/// `start_on_socket ADDRESS` (a `ListenStream=` value), which enters the working directory,
/// checks the command exists (127 otherwise) and starts both units. Used by deploy's pre-flight.
pub fn prepare_on_socket(run: &ServiceRun) -> Result<Prepared> {
    check(run)?;
    let unit_name = format!("shipit-{}-{}-{}", run.purpose, run.app, random_suffix());
    let (words, shown, left_out) = invocation(run, &unit_name, &["--collect"]);
    let as_function = |words: &[String], argv: Vec<String>| {
        let (command, argv) = (shell::command(words), shell::command(&argv));
        format!(
            "{}start_on_socket() {{\n    {} || return $?\n    {command} \
             \"--socket-property=ListenStream=$1\" -- {argv}\n}}\n",
            without_header(ENTER),
            enter(run)
        )
    };
    // systemd expands $VAR in a command's arguments; $$ is a literal $.
    let argv = run.argv.iter().map(|a| a.replace('$', "$$")).collect();
    let mut masked = vec![run.argv[0].clone()];
    if run.argv.len() > 1 {
        masked.push(format!("‹{} arguments›", run.argv.len() - 1));
    }
    Ok(Prepared {
        script: as_function(&words, argv),
        shown: as_function(&shown, masked),
        unit_name,
        left_out,
    })
}

/// The command a unit's `ExecStart=` runs, as its argv: systemd's quoting undone (double and
/// single quotes, backslash escapes), `$$` and `%%` turned back into `$` and `%`, and the
/// prefixes (`-`, `@`, `+`, `!`, `:`) dropped. None without an ExecStart, or when its command
/// uses what a plain argv cannot carry (`$VAR` expansion, specifiers).
pub fn exec_start_argv(unit: &str) -> Option<Vec<String>> {
    let (_, value) = service_lines(unit)
        .into_iter()
        .rfind(|(key, _)| key == "ExecStart")?;
    let value = value.trim_start_matches(['-', '@', '+', '!', ':']);
    let mut argv = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => argv.extend(word.take()),
            '"' | '\'' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        q if q == c => break,
                        '\\' => word.push(unescape(chars.next()?)),
                        other => word.push(other),
                    }
                }
            }
            '\\' => word
                .get_or_insert_with(String::new)
                .push(unescape(chars.next()?)),
            other => word.get_or_insert_with(String::new).push(other),
        }
    }
    argv.extend(word);
    argv.into_iter()
        .map(|w| {
            let w = unescape_specifiers(&w).ok()?;
            // `$` alone starts a variable; `$$` is a literal `$`.
            let mut out = String::with_capacity(w.len());
            let mut rest = w.as_str();
            while let Some(at) = rest.find('$') {
                out.push_str(&rest[..at]);
                rest = rest[at + 1..].strip_prefix('$')?;
                out.push('$');
            }
            out.push_str(rest);
            Some(out)
        })
        .collect::<Option<Vec<_>>>()
        .filter(|argv| !argv.is_empty())
}

fn unescape(c: char) -> char {
    match c {
        'n' => '\n',
        't' => '\t',
        other => other,
    }
}

/// `systemd-run --quiet OPTIONS --unit=… --description=…`, the unit's properties and the extra
/// environment, as words to run and as words to show (values masked); and what was left out.
fn invocation(
    run: &ServiceRun,
    unit_name: &str,
    options: &[&str],
) -> (Vec<String>, Vec<String>, Vec<LeftOut>) {
    let (properties, left_out) = properties(run);
    let mut words: Vec<String> = ["systemd-run", "--quiet"]
        .iter()
        .chain(options)
        .map(|w| w.to_string())
        .collect();
    words.push(format!("--unit={unit_name}"));
    words.push(format!(
        "--description=shipit {} for {}",
        run.purpose, run.app
    ));
    let mut shown = words.clone();
    for property in &properties {
        for list in [&mut words, &mut shown] {
            list.push("-p".into());
            list.push(property.clone());
        }
    }
    for (key, value) in run.env {
        words.push(format!("--setenv={key}={value}"));
        shown.push(format!("--setenv={key}=…"));
    }
    (words, shown, left_out)
}

/// The script that stops a prepared command's unit (as root), e.g. after Ctrl-C: systemd sends
/// the service's KillSignal, then SIGKILL after its TimeoutStopSec.
pub fn stop_script(unit_name: &str) -> String {
    crate::shell::command(&["systemctl", "stop", "--no-block", unit_name])
}

fn check(run: &ServiceRun) -> Result<()> {
    check_command(run.argv)?;
    for (key, value) in run.env {
        if let Err(e) = crate::validate::validate_env_key(key) {
            crate::fail!(Usage, "{e}");
        }
        if value.contains(['\0', '\n']) {
            crate::fail!(
                Usage,
                "the value of {key} has a newline or NUL byte (the value is not shown)"
            );
        }
    }
    Ok(())
}

/// A command's argv as every run needs it: a program name, no NUL byte anywhere.
pub fn check_command(argv: &[String]) -> Result<()> {
    let Some(program) = argv.first().filter(|p| !p.is_empty()) else {
        crate::fail!(Usage, "no command to run");
    };
    if argv.iter().any(|a| a.contains('\0')) {
        crate::fail!(
            Usage,
            "the command {program:?} has an argument with a NUL byte, which no program can receive"
        );
    }
    if program.contains('$') {
        crate::fail!(
            Usage,
            "the command name {program:?} holds a `$`, which systemd would expand"
        );
    }
    Ok(())
}

/// `enter.sh`: the working directory entered and the program checked, first.
const ENTER: &str = include_str!("service_run/enter.sh");

/// The call of `enter` for `run`.
fn enter(run: &ServiceRun) -> String {
    format!(
        "enter {} {}",
        quote(run.working_directory),
        quote(&run.argv[0])
    )
}

fn script(run: &ServiceRun, words: &[String]) -> String {
    let command = shell::command(words);
    format!(
        "{}{} || exit $?\nexec {command}\n",
        without_header(ENTER),
        enter(run)
    )
}

/// The `-p` properties for the unit's `[Service]` lines, and what had to be left out.
fn properties(run: &ServiceRun) -> (Vec<String>, Vec<LeftOut>) {
    let mut properties = vec![format!("WorkingDirectory={}", run.working_directory)];
    let mut left_out = Vec::new();
    for (key, value) in service_lines(run.unit) {
        let replaced =
            key == "WorkingDirectory" || (key == "EnvironmentFile" && run.env_files.is_some());
        if replaced || LIFECYCLE.contains(&key.as_str()) {
            continue;
        }
        if let Some(newer) = systemd::directive(&key).filter(|d| d.since > run.systemd) {
            push_once(
                &mut left_out,
                LeftOut::Newer {
                    directive: key,
                    since: newer.since,
                    version: run.systemd,
                },
            );
            continue;
        }
        match unescape_specifiers(&value) {
            Ok(value) => properties.push(format!("{key}={value}")),
            Err(specifier) => push_once(
                &mut left_out,
                LeftOut::Specifier {
                    directive: key,
                    specifier,
                },
            ),
        }
    }
    for file in run.env_files.into_iter().flatten() {
        properties.push(format!("EnvironmentFile={file}"));
    }
    (properties, left_out)
}

fn push_once(list: &mut Vec<LeftOut>, item: LeftOut) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The `Key=value` assignments of every `[Service]` section, in order, as systemd reads a unit
/// file: comments skipped, a trailing backslash joining the next line (with a space), comment
/// lines inside such a value dropped.
fn service_lines(unit: &str) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    let mut in_service = false;
    let mut pending: Option<String> = None;
    for raw in unit.lines() {
        let line = raw.trim();
        if let Some(mut joined) = pending.take() {
            if line.starts_with(['#', ';']) {
                pending = Some(joined);
                continue;
            }
            match line.strip_suffix('\\') {
                Some(more) => {
                    joined.push(' ');
                    joined.push_str(more);
                    pending = Some(joined);
                }
                None => {
                    joined.push(' ');
                    joined.push_str(line);
                    lines.push(joined);
                }
            }
            continue;
        }
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        if !in_service {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => pending = Some(start.to_string()),
            None => lines.push(line.to_string()),
        }
    }
    lines.extend(pending);
    lines
        .into_iter()
        .filter_map(|l| {
            let (key, value) = l.split_once('=')?;
            Some((key.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// A value with `%%` turned into `%`; any other specifier is returned as the error.
fn unescape_specifiers(value: &str) -> Result<String, char> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(other) => return Err(other),
            None => return Err('%'),
        }
    }
    Ok(out)
}

/// 32 random bits in hex, so two commands started at once get units of their own.
fn random_suffix() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 4];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        bytes = (nanos ^ std::process::id()).to_be_bytes();
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_becomes_the_argv_systemd_would_run() {
        let argv = |line: &str| exec_start_argv(&format!("[Service]\nExecStart={line}\n"));
        assert_eq!(
            argv("/opt/app/current/app --port 8080"),
            Some(vec![
                "/opt/app/current/app".into(),
                "--port".into(),
                "8080".into()
            ])
        );
        assert_eq!(
            argv(r#"-/bin/app "a b" 'c\'d' e\ f 100%% $$HOME"#),
            Some(vec![
                "/bin/app".into(),
                "a b".into(),
                "c'd".into(),
                "e f".into(),
                "100%".into(),
                "$HOME".into()
            ])
        );
        assert_eq!(argv("/bin/app $HOME"), None);
        assert_eq!(argv("/bin/app %n"), None);
        assert_eq!(exec_start_argv("[Service]\nUser=app\n"), None);
    }

    #[test]
    fn a_socket_run_is_a_function_taking_the_address() {
        let argv = [
            "/opt/app/releases/2/app".to_string(),
            "--port".into(),
            "80".into(),
        ];
        let run = ServiceRun {
            app: "app",
            purpose: "preflight",
            unit: UNIT,
            systemd: 252,
            working_directory: "/opt/app/releases/2",
            env_files: None,
            env: &[],
            argv: &argv,
            terminal: false,
        };
        let prepared = prepare_on_socket(&run).unwrap();
        assert!(prepared.unit_name.starts_with("shipit-preflight-app-"));
        assert!(!prepared.unit_name.ends_with(".service"));
        let script = &prepared.script;
        assert!(
            script.contains(
                "start_on_socket() {\n    enter /opt/app/releases/2 /opt/app/releases/2/app \
                 || return $?\n"
            ),
            "{script}"
        );
        assert!(
            script.contains(
                " \"--socket-property=ListenStream=$1\" -- /opt/app/releases/2/app --port 80\n}\n"
            ),
            "{script}"
        );
        assert!(
            !script.contains("--wait") && !script.contains("--pipe"),
            "{script}"
        );
        assert!(script.contains(" -p User=app "), "{script}");
        assert!(prepared.to_string().contains("‹2 arguments›"), "{prepared}");
    }

    const UNIT: &str = "# /etc/systemd/system/app.service\n[Unit]\nDescription=app\n\
        StartLimitBurst=5\n\n[Service]\nType=simple\nUser=app\nWorkingDirectory=/opt/app/current\n\
        ExecStart=/opt/app/current/app --port 8080\nRestart=on-failure\nLimitNOFILE=65536\n\
        Environment=\"LOG_LEVEL=info\" \"RATIO=100%%\"\nEnvironmentFile=-/etc/app/app.env\n\
        ProtectClock=yes\nSystemCallFilter=@system-service \\\n# a comment inside\n  @clock\n\
        PrivateIPC=yes\nCapabilityBoundingSet=\n\n[Install]\nWantedBy=multi-user.target\n\n\
        # /etc/systemd/system/app.service.d/override.conf\n[Service]\nLimitNOFILE=1024\n\
        ReadWritePaths=%S/app\nSupplementaryGroups=ssl-cert\n";

    fn run<'a>(argv: &'a [String], env: &'a [(String, String)]) -> ServiceRun<'a> {
        ServiceRun {
            app: "app",
            purpose: "exec",
            unit: UNIT,
            systemd: 247,
            working_directory: "/opt/app/releases/1.0.0-abc",
            env_files: None,
            env,
            argv,
            terminal: false,
        }
    }

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_units_process_settings_become_properties_in_order() {
        let argv = words(&["./app", "--check"]);
        let (properties, left_out) = properties(&run(&argv, &[]));
        assert_eq!(
            properties,
            [
                "WorkingDirectory=/opt/app/releases/1.0.0-abc",
                "User=app",
                "LimitNOFILE=65536",
                "Environment=\"LOG_LEVEL=info\" \"RATIO=100%\"",
                "EnvironmentFile=-/etc/app/app.env",
                "ProtectClock=yes",
                "SystemCallFilter=@system-service  @clock",
                "CapabilityBoundingSet=",
                "LimitNOFILE=1024",
                "SupplementaryGroups=ssl-cert",
            ]
        );
        assert_eq!(
            left_out,
            [
                LeftOut::Newer {
                    directive: "PrivateIPC".into(),
                    since: 248,
                    version: 247
                },
                LeftOut::Specifier {
                    directive: "ReadWritePaths".into(),
                    specifier: 'S'
                },
            ]
        );
        assert_eq!(
            left_out[0].to_string(),
            "PrivateIPC= needs systemd 248, this host has 247: the command runs without it, as \
             the service does"
        );
    }

    #[test]
    fn given_env_files_replace_the_units() {
        let argv = words(&["true"]);
        let files = vec!["-/opt/app/releases/x/.env".to_string()];
        let spec = ServiceRun {
            env_files: Some(&files),
            systemd: 257,
            ..run(&argv, &[])
        };
        let (properties, left_out) = properties(&spec);
        assert!(!properties.contains(&"EnvironmentFile=-/etc/app/app.env".to_string()));
        assert_eq!(
            properties.last().unwrap(),
            "EnvironmentFile=-/opt/app/releases/x/.env"
        );
        assert!(properties.contains(&"PrivateIPC=yes".to_string()));
        assert_eq!(left_out.len(), 1, "{left_out:?}");
    }

    #[test]
    fn the_script_quotes_every_word_and_masks_what_it_shows() {
        let argv = words(&["./app", "it's $HOME", "a;b"]);
        let env = vec![("SHIPIT_VERSION".to_string(), "1.0 secret".to_string())];
        let prepared = prepare(&run(&argv, &env)).unwrap();
        assert!(prepared.unit_name.starts_with("shipit-exec-app-"));
        assert!(prepared.unit_name.ends_with(".service"));
        let script = &prepared.script;
        assert!(
            script.starts_with("enter() {\n") && script.contains("command -v -- \"$2\""),
            "{script}"
        );
        assert!(
            script.contains("\nenter /opt/app/releases/1.0.0-abc ./app || exit $?\n"),
            "{script}"
        );
        assert!(
            script.contains(
                "'--setenv=SHIPIT_VERSION=1.0 secret' -- ./app 'it'\\''s $$HOME' 'a;b'\n"
            ),
            "{script}"
        );
        assert!(
            script.contains(" --pipe --unit=shipit-exec-app-"),
            "{script}"
        );
        assert!(script.contains(" -p 'SystemCallFilter=@system-service  @clock' "));
        let shown = prepared.to_string();
        assert!(
            !shown.contains("secret") && !shown.contains("HOME"),
            "{shown}"
        );
        assert!(
            shown.contains("'--setenv=SHIPIT_VERSION=…' -- ./app '‹2 arguments›'"),
            "{shown}"
        );
    }

    #[test]
    fn the_script_runs_the_command_through_sh_as_written() {
        // The script's words reach systemd-run exactly: a stand-in prints them back.
        let argv = words(&["printf", "[%s]", "it's", "$X", "a b", "*"]);
        let prepared = prepare(&run(&argv, &[])).unwrap();
        let script = prepared
            .script
            .replace("enter /opt/app/releases/1.0.0-abc", "enter /")
            .replace("exec systemd-run", "shift_to_command() { while [ \"$1\" != -- ]; do shift; done; shift; printf '%s|' \"$@\"; }; shift_to_command");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "printf|[%s]|it's|$$X|a b|*|"
        );
    }

    #[test]
    fn bad_commands_are_refused_before_anything_runs() {
        for argv in [
            vec![],
            words(&[""]),
            words(&["ls", "a\0b"]),
            words(&["$HOME/x"]),
        ] {
            assert!(prepare(&run(&argv, &[])).is_err(), "{argv:?}");
        }
        let argv = words(&["true"]);
        for env in [
            vec![("1BAD".to_string(), "x".to_string())],
            vec![("OK".to_string(), "a\nb".to_string())],
        ] {
            let err = prepare(&run(&argv, &env)).unwrap_err().to_string();
            assert!(!err.contains("a\nb"), "{err}");
        }
    }

    #[test]
    fn a_terminal_uses_a_pty() {
        let argv = words(&["bash"]);
        let spec = ServiceRun {
            terminal: true,
            ..run(&argv, &[])
        };
        let script = prepare(&spec).unwrap().script;
        assert!(
            script.contains(" --pty ") && !script.contains("--pipe"),
            "{script}"
        );
    }

    #[test]
    fn specifiers_unescape_or_refuse() {
        assert_eq!(unescape_specifiers("100%% sure").unwrap(), "100% sure");
        assert_eq!(unescape_specifiers("%t/x"), Err('t'));
        assert_eq!(unescape_specifiers("50%"), Err('%'));
    }

    #[test]
    fn a_missing_directory_or_program_answers_127_before_anything_runs() {
        let argv = words(&["./no-such-program"]);
        let run_in = |directory: &str| {
            let spec = ServiceRun {
                working_directory: directory,
                ..run(&argv, &[])
            };
            let script = prepare(&spec).unwrap().script;
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.code(), stderr)
        };
        let (status, stderr) = run_in("/");
        assert_eq!(status, Some(127));
        assert_eq!(
            stderr,
            "shipit: ./no-such-program: command not found (in /)\n"
        );
        let (status, stderr) = run_in("/no/such/dir");
        assert_eq!(status, Some(127));
        assert!(
            stderr.ends_with("shipit: cannot enter /no/such/dir\n"),
            "{stderr}"
        );
    }
}
