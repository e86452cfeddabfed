//! What each systemd release understands, as far as shipit's units go: every directive shipit
//! can write (the built-in template's and the keys `[service.hardening]` accepts) with the
//! release that brought it, and the `systemd-analyze verify` flags a release has.
//!
//! Versions come from systemd's NEWS. shipit supports systemd 239 (RHEL 8) and later, so a
//! directive older than that is recorded as 239: no supported host lacks it.

use std::fmt;
use std::process::Command;

/// The oldest systemd shipit deploys to.
pub const OLDEST: u32 = 239;

/// A unit directive, the section it belongs in and the systemd release that introduced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directive {
    pub name: &'static str,
    pub section: Section,
    pub since: u32,
}

/// The unit file sections shipit writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Unit,
    Service,
    Socket,
    Install,
}

impl Section {
    /// As in the unit file's `[…]` header.
    pub fn name(self) -> &'static str {
        match self {
            Section::Unit => "Unit",
            Section::Service => "Service",
            Section::Socket => "Socket",
            Section::Install => "Install",
        }
    }
}

const fn unit(name: &'static str, since: u32) -> Directive {
    Directive {
        name,
        section: Section::Unit,
        since,
    }
}

const fn d(name: &'static str, since: u32) -> Directive {
    Directive {
        name,
        section: Section::Service,
        since,
    }
}

const fn socket(name: &'static str, since: u32) -> Directive {
    Directive {
        name,
        section: Section::Socket,
        since,
    }
}

/// Every directive shipit writes (in the service and the socket unit) or accepts in
/// `[service.hardening]`, by section of the man pages. The manual's "Supported hosts" guide (docs/src/guides/supported-hosts.md) lists the
/// same; a test proves the table against the real systemd 247, 252 and 257 of the sandbox hosts.
pub const DIRECTIVES: &[Directive] = &[
    // The built-in templates: [Unit], [Service] and [Install] basics, all older than 239.
    unit("Description", 239),
    unit("After", 239),
    unit("Wants", 239),
    unit("Requires", 239),
    unit("StartLimitIntervalSec", 239),
    unit("StartLimitBurst", 239),
    Directive {
        name: "WantedBy",
        section: Section::Install,
        since: 239,
    },
    d("Type", 239),
    d("User", 239),
    d("Group", 239),
    d("WorkingDirectory", 239),
    d("ExecStart", 239),
    d("Restart", 239),
    d("RestartSec", 239),
    d("TimeoutStopSec", 239),
    d("LimitNOFILE", 239),
    d("Environment", 239),
    d("EnvironmentFile", 239),
    d("StateDirectory", 239),
    // systemd.socket(5), the socket unit's template: all older than 239 (the trigger limit
    // came in 230).
    socket("ListenStream", 239),
    socket("BindIPv6Only", 239),
    socket("Backlog", 239),
    socket("FreeBind", 239),
    socket("TriggerLimitIntervalSec", 239),
    socket("TriggerLimitBurst", 239),
    // systemd.exec(5): users, capabilities, security.
    d("DynamicUser", 239),
    d("CapabilityBoundingSet", 239),
    d("AmbientCapabilities", 239),
    d("NoNewPrivileges", 239),
    d("SecureBits", 239),
    d("UMask", 239),
    d("KeyringMode", 239),
    // systemd.exec(5): sandboxing.
    d("ProtectSystem", 239),
    d("ProtectHome", 239),
    d("RuntimeDirectory", 239),
    d("CacheDirectory", 239),
    d("LogsDirectory", 239),
    d("ConfigurationDirectory", 239),
    d("ReadWritePaths", 239),
    d("ReadOnlyPaths", 239),
    d("InaccessiblePaths", 239),
    d("ExecPaths", 248),
    d("NoExecPaths", 248),
    d("TemporaryFileSystem", 239),
    d("BindPaths", 239),
    d("BindReadOnlyPaths", 239),
    d("PrivateTmp", 239),
    d("PrivateDevices", 239),
    d("PrivateNetwork", 239),
    d("NetworkNamespacePath", 242),
    d("PrivateIPC", 248),
    d("IPCNamespacePath", 248),
    d("PrivatePIDs", 257),
    d("PrivateUsers", 239),
    d("PrivateMounts", 239),
    d("ProtectHostname", 242),
    d("ProtectClock", 245),
    d("ProtectKernelTunables", 239),
    d("ProtectKernelModules", 239),
    d("ProtectKernelLogs", 244),
    d("ProtectControlGroups", 239),
    d("ProtectProc", 247),
    d("ProcSubset", 247),
    d("RestrictAddressFamilies", 239),
    d("RestrictFileSystems", 250),
    d("RestrictNamespaces", 239),
    d("LockPersonality", 239),
    d("MemoryDenyWriteExecute", 239),
    d("RestrictRealtime", 239),
    d("RestrictSUIDSGID", 242),
    d("RemoveIPC", 239),
    // systemd.exec(5): system call filtering.
    d("SystemCallFilter", 239),
    d("SystemCallErrorNumber", 239),
    d("SystemCallArchitectures", 239),
    d("SystemCallLog", 247),
    // systemd.exec(5): credentials and process properties.
    d("LoadCredential", 247),
    d("SetCredential", 247),
    d("LoadCredentialEncrypted", 250),
    d("SetCredentialEncrypted", 250),
    d("ImportCredential", 254),
    d("OOMScoreAdjust", 239),
    d("Nice", 239),
    d("MemoryKSM", 254),
    // systemd.resource-control(5).
    d("MemoryMin", 240),
    d("MemoryLow", 239),
    d("MemoryHigh", 239),
    d("MemoryMax", 239),
    d("MemorySwapMax", 239),
    d("TasksMax", 239),
    d("CPUWeight", 239),
    d("CPUQuota", 239),
    d("IOWeight", 239),
    d("IPAddressAllow", 239),
    d("IPAddressDeny", 239),
    d("SocketBindAllow", 249),
    d("SocketBindDeny", 249),
    d("RestrictNetworkInterfaces", 250),
    d("DevicePolicy", 239),
    d("DeviceAllow", 239),
    // systemd.service(5).
    d("OOMPolicy", 243),
];

/// The directive of this exact name, if shipit knows it.
pub fn directive(name: &str) -> Option<&'static Directive> {
    DIRECTIVES.iter().find(|d| d.name == name)
}

/// A `[Service]` directive of this exact name: what `[service.hardening]` accepts.
pub fn service_directive(name: &str) -> Option<&'static Directive> {
    directive(name).filter(|d| d.section == Section::Service)
}

/// The `[Service]` directive a mistyped name most likely meant: the same name in another case,
/// or one a couple of edits away.
pub fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    DIRECTIVES
        .iter()
        .filter(|d| d.section == Section::Service)
        .map(|d| (edit_distance(&lower, &d.name.to_ascii_lowercase()), d.name))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// A directive left out of a unit because the systemd it is for does not know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftOut {
    pub directive: &'static str,
    pub since: u32,
    /// The systemd the unit was made for.
    pub version: u32,
}

impl fmt::Display for LeftOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}= needs systemd {}, this host has {}: left out",
            self.directive, self.since, self.version
        )
    }
}

/// The unit as systemd `version` should get it: every line setting a directive newer than
/// `version` (and its continuation lines) becomes a comment saying why, so line numbers stay
/// those of the package's unit; everything else is kept byte for byte. Directives shipit does
/// not know stay, for `systemd-analyze verify` to judge.
pub fn unit_for(unit: &str, version: u32) -> (String, Vec<LeftOut>) {
    let mut kept = String::with_capacity(unit.len());
    let mut left_out: Vec<LeftOut> = Vec::new();
    let mut continuing = false;
    for line in unit.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        if continuing {
            continuing = content.ends_with('\\');
            kept.push_str("# ");
            kept.push_str(line);
            continue;
        }
        let newer = directive_of(content)
            .and_then(directive)
            .filter(|d| d.since > version);
        let Some(newer) = newer else {
            kept.push_str(line);
            continue;
        };
        if !left_out.iter().any(|l| l.directive == newer.name) {
            left_out.push(LeftOut {
                directive: newer.name,
                since: newer.since,
                version,
            });
        }
        kept.push_str(&format!(
            "# left out (needs systemd {}): {line}",
            newer.since
        ));
        continuing = content.ends_with('\\');
    }
    (kept, left_out)
}

/// The key of a `Key=value` line; None for comments, section headers and blank lines.
fn directive_of(line: &str) -> Option<&str> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with(['#', ';', '[']) {
        return None;
    }
    line.split_once('=').map(|(key, _)| key.trim_end())
}

/// `systemd-analyze verify` flags for this release: no man page lookups (`--man`, older than
/// 235), no generators (`--generators`, 235: verify began running them then) and, where it
/// exists (250 on), errors only for the unit itself, not for the units it names.
pub fn verify_flags(version: u32) -> Vec<&'static str> {
    let mut flags = vec!["--man=no", "--generators=no"];
    if version >= 250 {
        flags.push("--recursive-errors=no");
    }
    flags
}

/// The release number in `systemctl --version` / `systemd-analyze --version` output, whose
/// first line reads `systemd 252 (252.39-1~deb12u2)`.
pub fn parse_version(text: &str) -> Option<u32> {
    let mut words = text.lines().next()?.split_whitespace();
    if words.next()? != "systemd" {
        return None;
    }
    let number = words.next()?;
    let digits = number
        .find(|c: char| !c.is_ascii_digit())
        .map_or(number, |end| &number[..end]);
    digits.parse().ok()
}

/// This machine's systemd, from `systemd-analyze --version`; None without it.
pub fn local_version() -> Option<u32> {
    let output = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .ok()?;
    parse_version(&String::from_utf8_lossy(&output.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_directive_shipit_writes_is_in_the_table() {
        let templates = [
            include_str!("../templates/service.hbs"),
            include_str!("../templates/socket.hbs"),
        ];
        for template in templates {
            let mut section = None;
            for line in template.lines() {
                if let Some(header) = line.strip_prefix('[') {
                    section = header.strip_suffix(']');
                }
                if let Some(key) = directive_of(line).filter(|k| !k.starts_with("{{")) {
                    let known =
                        directive(key).unwrap_or_else(|| panic!("{key} is not in DIRECTIVES"));
                    assert_eq!(Some(known.section.name()), section, "{key}");
                }
            }
        }
        for (key, _) in crate::config::DEFAULT_HARDENING {
            assert!(
                service_directive(key).is_some(),
                "{key} is not in DIRECTIVES"
            );
        }
        let mut names: Vec<&str> = DIRECTIVES.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DIRECTIVES.len(), "a directive is listed twice");
        assert!(DIRECTIVES.iter().all(|d| d.since >= OLDEST));
    }

    #[test]
    fn newer_directives_are_left_out_with_their_lines() {
        let unit = "[Service]\n# ProtectClock=yes stays: a comment\nProtectClock=yes\n\
                    ExecStart=/bin/true\nSystemCallFilter=@system-service \\\n  @clock\n\
                    PrivateIPC=yes\nProtectClock=no\nUnknownThing=1\n";
        let (kept, left_out) = unit_for(unit, 239);
        assert_eq!(
            kept,
            "[Service]\n# ProtectClock=yes stays: a comment\n\
             # left out (needs systemd 245): ProtectClock=yes\nExecStart=/bin/true\n\
             SystemCallFilter=@system-service \\\n  @clock\n\
             # left out (needs systemd 248): PrivateIPC=yes\n\
             # left out (needs systemd 245): ProtectClock=no\nUnknownThing=1\n"
        );
        assert_eq!(kept.lines().count(), unit.lines().count());
        assert_eq!(
            unit_for("SocketBindDeny=ipv4:tcp \\\n  ipv6:tcp\nUMask=0077\n", 247).0,
            "# left out (needs systemd 249): SocketBindDeny=ipv4:tcp \\\n#   ipv6:tcp\nUMask=0077\n"
        );
        let names: Vec<&str> = left_out.iter().map(|l| l.directive).collect();
        assert_eq!(names, ["ProtectClock", "PrivateIPC"]);
        assert_eq!(
            left_out[0].to_string(),
            "ProtectClock= needs systemd 245, this host has 239: left out"
        );
        assert_eq!(unit_for(unit, 257).0, unit);
        assert!(unit_for(unit, 257).1.is_empty());
    }

    #[test]
    fn verify_flags_follow_the_release() {
        assert!(!verify_flags(247).contains(&"--recursive-errors=no"));
        assert!(verify_flags(250).contains(&"--recursive-errors=no"));
        assert!(verify_flags(239).contains(&"--man=no"));
    }

    #[test]
    fn versions_parse_from_the_first_line() {
        assert_eq!(
            parse_version("systemd 252 (252.39-1~deb12u2)\n+PAM +AUDIT"),
            Some(252)
        );
        assert_eq!(parse_version("systemd 239 (239-78.el8)"), Some(239));
        assert_eq!(parse_version("systemd 257~rc1 (257~rc1-1)"), Some(257));
        assert_eq!(parse_version("bash: systemctl: not found"), None);
    }

    #[test]
    fn misspelled_directives_get_a_suggestion() {
        assert_eq!(suggest("ProtectKernelLog"), Some("ProtectKernelLogs"));
        assert_eq!(suggest("protectclock"), Some("ProtectClock"));
        assert_eq!(suggest("Frobnicate"), None);
        // A socket directive is no [Service] key.
        assert_eq!(suggest("Backlogs"), None);
        assert!(service_directive("Backlog").is_none() && directive("Backlog").is_some());
    }
}
