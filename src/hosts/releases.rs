//! The releases a host keeps (`list_releases` in lib.sh, and `releases.sh` to ask for them
//! alone): newest first, with the current one, the previous one (the last release that passed
//! its health gate before the current one) and the failed ones marked, and the host's clock.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;

use super::script::{LIB, Script};
use crate::names::ReleaseId;
use crate::remote::Kind;

/// The script: the host's clock (`now=`) and its releases.
pub struct ListReleases;

impl Script for ListReleases {
    fn kind(&self) -> Kind {
        Kind::Releases
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![LIB.into(), include_str!("scripts/releases.sh").into()]
    }
}

/// One release on the host, as `releases` and `rollback` see it.
#[derive(Debug, Clone, Serialize)]
pub struct Release {
    pub name: ReleaseId,
    pub version: String,
    pub deployed: String,
    pub current: bool,
    pub previous: bool,
    pub failed: bool,
    /// `user@machine` of its last deploy, from the host's deploy log (`releases` fills it in).
    pub deployed_by: Option<String>,
    /// The environment of that deploy, from the same log entry.
    pub environment: Option<String>,
}

/// The host's clock, as `date +%s` said it.
pub fn parse_now(out: &str) -> Result<u64> {
    out.lines()
        .find_map(|l| l.strip_prefix("now="))
        .and_then(|n| n.trim().parse().ok())
        .context("the host's `date +%s` is not a number")
}

/// Reads `list_releases` (lib.sh): newest first; a release is named `<version>-<sha12>`.
pub fn parse_releases(out: &str) -> Vec<Release> {
    let mut current = "";
    let mut history: Vec<&str> = Vec::new();
    let mut failed: Vec<&str> = Vec::new();
    let mut found: Vec<(f64, &str)> = Vec::new();
    for line in out.lines() {
        if let Some(c) = line.strip_prefix("current=") {
            current = c;
        } else if let Some(h) = line.strip_prefix("history=") {
            history = h.split_whitespace().collect();
        } else if let Some(name) = line.strip_prefix("failed=yes ") {
            failed.push(name);
        } else if let Some((mtime, name)) =
            line.strip_prefix("mtime=").and_then(|m| m.split_once(' '))
        {
            found.push((mtime.parse().unwrap_or(0.0), name));
        }
    }
    found.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut list: Vec<Release> = found
        .into_iter()
        .map(|(mtime, name)| Release {
            name: ReleaseId::from_host(name),
            version: ReleaseId::from_host(name).version().to_string(),
            deployed: humantime::format_rfc3339_seconds(
                SystemTime::UNIX_EPOCH + Duration::from_secs(mtime as u64),
            )
            .to_string(),
            current: name == current,
            previous: false,
            failed: failed.contains(&name),
            deployed_by: None,
            environment: None,
        })
        .collect();
    let previous = history
        .iter()
        .rev()
        .find(|h| **h != current && list.iter().any(|r| r.name == **h && !r.failed));
    for release in &mut list {
        release.previous = previous.is_some_and(|p| release.name == *p);
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_is_the_last_good_release_before_the_current_one() {
        let out = "current=c-3\nhistory=a-1 b-2 a-1 c-3 \n\
                   failed=yes x-4\nfailed=no c-3\nfailed=no b-2\nfailed=no a-1\n\
                   mtime=1767484800.5 x-4\nmtime=1767225600.0 a-1\n\
                   mtime=1767398400.0 c-3\nmtime=1767312000.0 b-2\n";
        let list = parse_releases(out);
        let marks: Vec<(&str, bool, bool, bool)> = list
            .iter()
            .map(|r| (r.name.as_str(), r.current, r.previous, r.failed))
            .collect();
        assert_eq!(
            marks,
            [
                ("x-4", false, false, true),
                ("c-3", true, false, false),
                ("b-2", false, false, false),
                ("a-1", false, true, false)
            ]
        );
        assert_eq!(list[1].version, "c");
        assert_eq!(list[0].deployed, "2026-01-04T00:00:00Z");
    }
}
