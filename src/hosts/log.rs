//! The deploy log each host keeps (`/opt/<app>/.shipit/log`): one JSON line per deploy and per
//! `shipit rollback` that reached the host — when, who (user@machine), what (version, release,
//! the release before), how it ended and how long it took. Nothing in it can hold a secret: no
//! error text, no hook output, no environment. It is written in the batch that releases the
//! lock (no round trip of its own), appended to, and cut to its last [`KEEP_LINES`] entries
//! once it is a fifth longer, so it stays small on a host deployed to every few minutes.
//! `shipit history` reads it, and `releases` names who deployed each release from it.

use std::borrow::Cow;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::layout::Layout;
use super::owner::LockOwner;
use super::script::Script;
use crate::names::ReleaseId;
use crate::remote::{Kind, Step};

/// Entries a host keeps.
pub const KEEP_LINES: usize = 1000;

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// RFC 3339, UTC, the deploying machine's clock.
    pub time: String,
    /// `deploy` or `rollback`.
    pub action: String,
    /// `user@machine` that ran shipit.
    pub by: String,
    pub version: String,
    pub release: ReleaseId,
    /// The release that ran before.
    #[serde(default)]
    pub previous: Option<ReleaseId>,
    /// As `deploy --json` says it: `deployed`, `failed`, `rolled-back`, `switched-back`,
    /// `skipped`; for a rollback, `rolled-back` or `failed`.
    pub outcome: String,
    pub seconds: f64,
    /// The environment (`-e`) it was for; none without environments, and in older entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl Entry {
    pub fn now(
        layout: &Layout,
        action: &str,
        version: &str,
        previous: Option<&ReleaseId>,
        outcome: &str,
        seconds: f64,
    ) -> Entry {
        let me = LockOwner::me(layout);
        Entry {
            time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            action: action.into(),
            by: format!("{}@{}", me.user, me.from),
            version: version.into(),
            release: layout.release.clone(),
            previous: previous.cloned(),
            outcome: outcome.into(),
            seconds: (seconds * 10.0).round() / 10.0,
            environment: layout.environment.clone(),
        }
    }
}

fn log_path(layout: &Layout) -> String {
    format!("{}/log", layout.shipit_dir())
}

/// Appends an entry to the host's log (`log.sh`); runs whatever happened before it in its
/// batch.
pub struct RecordLog<'e> {
    pub entry: &'e Entry,
    pub log: String,
}

impl<'e> RecordLog<'e> {
    pub fn new(layout: &Layout, entry: &'e Entry) -> RecordLog<'e> {
        RecordLog {
            entry,
            log: log_path(layout),
        }
    }
}

impl Script for RecordLog<'_> {
    fn kind(&self) -> Kind {
        Kind::Log
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "entry",
                serde_json::to_string(self.entry).expect("an entry serializes"),
            ),
            ("log", self.log.clone()),
            ("keep_lines", KEEP_LINES.to_string()),
        ]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![include_str!("scripts/log.sh").into()]
    }

    fn step<'a>(&self, layout: &Layout) -> Step<'a> {
        Step::new(self.kind(), self.assemble(layout)).always()
    }
}

/// The last `lines` entries, oldest first (`log-read.sh`).
pub struct ReadLog {
    pub log: String,
    pub lines: usize,
}

impl ReadLog {
    pub fn new(layout: &Layout, lines: usize) -> ReadLog {
        ReadLog {
            log: log_path(layout),
            lines,
        }
    }

    /// Entries from the log's lines; a line that does not read as one (cut short by a full
    /// disk, say) is skipped rather than hiding the rest.
    pub fn parse(out: &str) -> Vec<Entry> {
        out.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Script for ReadLog {
    fn kind(&self) -> Kind {
        Kind::LogRead
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![("log", self.log.clone()), ("lines", self.lines.to_string())]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![include_str!("scripts/log-read.sh").into()]
    }
}

/// The deploy that tells who deployed `release`, and for which environment: the last deploy of
/// it that reached its gate healthy, else the last that tried.
pub fn deployed_by(entries: &[Entry], release: &ReleaseId) -> Option<Entry> {
    let deploys = || {
        entries
            .iter()
            .rev()
            .filter(|e| e.action == "deploy" && e.release == *release)
    };
    deploys()
        .find(|e| e.outcome == "deployed")
        .or_else(|| deploys().next())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str, release: &str, outcome: &str, by: &str) -> Entry {
        Entry {
            time: "2026-01-01T00:00:00Z".into(),
            action: action.into(),
            by: by.into(),
            version: "1".into(),
            release: release.into(),
            previous: None,
            outcome: outcome.into(),
            seconds: 1.0,
            environment: None,
        }
    }

    #[test]
    fn entries_read_back_and_a_damaged_line_is_skipped() {
        let e = entry("deploy", "1-abc", "deployed", "ann@laptop");
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains('\n'));
        let out = format!("{line}\n{{\"time\": \"cut sh\n{line}\n");
        assert_eq!(ReadLog::parse(&out), [e.clone(), e]);
    }

    #[test]
    fn the_environment_is_written_when_there_is_one_and_older_entries_read_without() {
        let mut e = entry("deploy", "1-abc", "deployed", "ann@laptop");
        let old = serde_json::to_string(&e).unwrap();
        assert!(!old.contains("environment"), "{old}");
        assert_eq!(ReadLog::parse(&old), [e.clone()]);
        e.environment = Some("staging".into());
        let line = serde_json::to_string(&e).unwrap();
        assert!(line.contains(r#""environment":"staging""#), "{line}");
        assert_eq!(ReadLog::parse(&line), [e]);
    }

    #[test]
    fn who_deployed_a_release_is_the_last_healthy_deploy_of_it() {
        let log = [
            entry("deploy", "1-a", "deployed", "ann@a"),
            entry("deploy", "2-b", "rolled-back", "bob@b"),
            entry("deploy", "1-a", "deployed", "cy@c"),
            entry("rollback", "1-a", "rolled-back", "dee@d"),
            entry("deploy", "1-a", "failed", "eve@e"),
        ];
        let by = |release: &str| deployed_by(&log, &ReleaseId::from_host(release)).map(|e| e.by);
        assert_eq!(by("1-a").as_deref(), Some("cy@c"));
        assert_eq!(by("2-b").as_deref(), Some("bob@b"));
        assert_eq!(by("3-c"), None);
    }
}
