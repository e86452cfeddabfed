//! The host-side scripts: shell files in `scripts/`, embedded, each checked by shellcheck (in
//! CI and a unit test). A script gets its values only as a preamble of quoted variables — the
//! layout's paths, the exit statuses it may end with ([`Exit`]), then its own — followed by
//! the shared functions and its body, so no value is ever spliced into shell code.

use super::layout::Layout;
use crate::remote::Exit;
use crate::shell::quote;

pub const LIB: &str = include_str!("scripts/lib.sh");
pub const CHECK: &str = include_str!("scripts/check.sh");
pub const LOCK: &str = include_str!("scripts/lock.sh");
pub const SURVEY: &str = include_str!("scripts/survey.sh");
pub const UPLOAD: &str = include_str!("scripts/upload.sh");
pub const RELEASE: &str = include_str!("scripts/release.sh");
pub const SWITCH: &str = include_str!("scripts/switch.sh");
pub const STARTED: &str = include_str!("scripts/started.sh");
pub const FINISH: &str = include_str!("scripts/finish.sh");
pub const MARK: &str = include_str!("scripts/mark.sh");
pub const STOP: &str = include_str!("scripts/stop.sh");
pub const JOURNAL: &str = include_str!("scripts/journal.sh");
pub const UNLOCK: &str = include_str!("scripts/unlock.sh");
pub const LOCK_STATUS: &str = include_str!("scripts/lock-status.sh");
pub const RELEASES: &str = include_str!("scripts/releases.sh");
pub const INSTALLED: &str = include_str!("scripts/installed.sh");
pub const DEPLOYED: &str = include_str!("scripts/deployed.sh");
pub const ARM: &str = include_str!("scripts/arm.sh");
pub const HEAL: &str = include_str!("scripts/heal.sh");
pub const HEALED: &str = include_str!("scripts/healed.sh");
pub const DISARM: &str = include_str!("scripts/disarm.sh");
pub const SOCKET: &str = include_str!("scripts/socket.sh");
pub const PREFLIGHT: &str = include_str!("scripts/preflight.sh");
pub const LOG: &str = include_str!("scripts/log.sh");
pub const LOG_READ: &str = include_str!("scripts/log-read.sh");

/// `set -eu`, the preamble, then `files` (each without its header comment, which is for the
/// reader of the file: plans stay short).
pub fn assemble(layout: &Layout, values: &[(&str, String)], files: &[&str]) -> String {
    let mut script = format!("set -eu\n{}{}", layout.shell_vars(), Exit::shell_vars());
    for (name, value) in values {
        script.push_str(&format!("{name}={}\n", quote(value)));
    }
    for file in files {
        script.extend(
            file.lines()
                .skip_while(|l| l.starts_with('#'))
                .map(|l| format!("{l}\n")),
        );
    }
    script
}

/// Whether a line is part of the preamble every script repeats (plans leave it out).
pub fn is_preamble(line: &str) -> bool {
    line == "set -eu"
        || line.split_once('=').is_some_and(|(k, v)| {
            super::layout::VARIABLES.contains(&k)
                || Exit::shell_vars().contains(&format!("{k}={v}\n"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every script as a host gets it passes shellcheck (where it is installed; CI installs it
    /// and sets SHIPIT_REQUIRE_SHELLCHECK).
    #[test]
    fn assembled_scripts_pass_shellcheck() {
        let here = std::process::Command::new("shellcheck")
            .arg("--version")
            .output();
        if here.is_err() {
            assert!(
                std::env::var_os("SHIPIT_REQUIRE_SHELLCHECK").is_none(),
                "shellcheck is not installed"
            );
            eprintln!("shellcheck is not installed here; skipping");
            return;
        }
        let layout = Layout {
            app: "app".into(),
            user: "app".into(),
            release: "1.0.0-0123456789ab".into(),
            sha256: "0".repeat(64),
        };
        let v = |names: &[&str]| -> Vec<(&'static str, String)> {
            names
                .iter()
                .map(|n| {
                    (
                        Box::leak(n.to_string().into_boxed_str()) as &str,
                        "1".to_string(),
                    )
                })
                .collect()
        };
        let cases: Vec<(&str, String)> = vec![
            (
                "check",
                assemble(&layout, &v(&["machine", "oldest"]), &[CHECK]),
            ),
            (
                "lock",
                assemble(
                    &layout,
                    &v(&[
                        "me", "owner", "takeover", "expected", "min_age", "policy", "timer",
                    ]),
                    &[LIB, LOCK],
                ),
            ),
            ("survey", assemble(&layout, &[], &[LIB, SURVEY])),
            (
                "log",
                assemble(&layout, &v(&["entry", "log", "keep_lines"]), &[LOG]),
            ),
            (
                "log-read",
                assemble(&layout, &v(&["log", "lines"]), &[LOG_READ]),
            ),
            (
                "upload",
                assemble(&layout, &v(&["size", "offset"]), &[LIB, UPLOAD]),
            ),
            (
                "release",
                assemble(
                    &layout,
                    &v(&["env_from", "host_unit", "host_socket", "verify_flags"]),
                    &[LIB, RELEASE],
                ),
            ),
            (
                "switch",
                assemble(
                    &layout,
                    &v(&["target", "listen_port", "listen_wait"]),
                    &[SWITCH, STARTED],
                ),
            ),
            (
                "finish",
                assemble(&layout, &v(&["target", "keep"]), &[FINISH]),
            ),
            (
                "mark",
                assemble(&layout, &v(&["target", "healthy"]), &[MARK]),
            ),
            ("stop", assemble(&layout, &[], &[LIB, STOP])),
            ("journal", assemble(&layout, &v(&["since"]), &[JOURNAL])),
            (
                "unlock",
                assemble(&layout, &v(&["me", "expected"]), &[LIB, UNLOCK]),
            ),
            ("lock-status", assemble(&layout, &[], &[LIB, LOCK_STATUS])),
            ("releases", assemble(&layout, &[], &[LIB, RELEASES])),
            ("installed", assemble(&layout, &[], &[INSTALLED])),
            ("socket", assemble(&layout, &[], &[SOCKET])),
            (
                "preflight",
                assemble(
                    &layout,
                    &v(&[
                        "path",
                        "expect",
                        "wait",
                        "t",
                        "version",
                        "check_version",
                        "name",
                    ]),
                    &[
                        "start_on_socket() {\n    echo \"$1\"\n}\n",
                        &format!("get() {{\n{}}}\n", crate::remote::probe::SCRIPT),
                        PREFLIGHT,
                    ],
                ),
            ),
            ("deployed", assemble(&layout, &[], &[DEPLOYED])),
            (
                "arm",
                assemble(
                    &layout,
                    &v(&["token", "name", "heal", "marker_json", "secs"]),
                    &[ARM],
                ),
            ),
            (
                "heal",
                assemble(
                    &layout,
                    &v(&["token", "previous"]),
                    &[LIB, HEAL, SWITCH, HEALED],
                ),
            ),
            (
                "disarm",
                assemble(&layout, &v(&["token", "name"]), &[DISARM]),
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (name, script) in cases {
            let path = dir.path().join(format!("{name}.sh"));
            std::fs::write(&path, format!("# shellcheck shell=sh\n{script}")).unwrap();
            // The preamble sets every path and status; a script uses only some (SC2034).
            let out = std::process::Command::new("shellcheck")
                .args(["-e", "SC2034"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}
