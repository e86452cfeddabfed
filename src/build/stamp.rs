//! What a build is stamped with: version, commit and build time.
//!
//! The build time comes from SOURCE_DATE_EPOCH or the commit, never the clock, so two builds of
//! one commit are byte-identical.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use super::query::capture;
use crate::config::{Config, VersionSource};
use crate::error::{Category, Tag};
use crate::validate::validate_version;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub version: String,
    /// Full commit hash when the project is in a git repository.
    pub commit: Option<String>,
    /// Seconds since the epoch; also the mtime of every file in the package.
    pub build_time_epoch: u64,
}

impl Stamp {
    pub fn resolve(config: &Config, version_override: Option<&str>) -> Result<Stamp> {
        let root = &config.root;
        let version = match (version_override, &config.app.version) {
            (Some(v), _) => {
                validate_version(v)
                    .map_err(|why| anyhow::anyhow!("--version-override: {why}"))
                    .tag(Category::Usage)?;
                v.to_string()
            }
            (None, VersionSource::Literal(v)) => v.clone(),
            (None, VersionSource::Git) => git_version(root)?,
        };
        // One git call for both: the commit and its time.
        let head = capture(root, "git", &["log", "-1", "--format=%H %ct"]);
        let (commit, commit_time) = match head.as_deref().and_then(|h| h.split_once(' ')) {
            Some((hash, time)) => (Some(hash.to_string()), time.trim().parse().ok()),
            None => (None, None),
        };
        let build_time_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| {
                    anyhow::anyhow!("SOURCE_DATE_EPOCH={text:?} is not a number of seconds")
                })
                .tag(Category::Usage)?,
            Err(_) => commit_time.unwrap_or_else(now),
        };
        Ok(Stamp {
            version,
            commit,
            build_time_epoch,
        })
    }

    /// RFC 3339 in UTC, e.g. 2026-11-25T10:00:00Z.
    pub fn build_time(&self) -> String {
        let time = UNIX_EPOCH + Duration::from_secs(self.build_time_epoch);
        humantime::format_rfc3339_seconds(time).to_string()
    }
}

fn git_version(root: &std::path::Path) -> Result<String> {
    let Some(described) = capture(root, "git", &["describe", "--tags", "--always", "--dirty"])
    else {
        crate::fail!(
            Usage,
            "cannot tell the version: `git describe --tags --always --dirty` failed in {} \
             (not a git repository, or no commits yet)\n  \
             help: commit once, set [app] version in shipit.toml, or pass --version-override",
            root.display()
        );
    };
    validate_version(&described)
        .map_err(|why| anyhow::anyhow!("git describe gave an unusable version: {why}"))
        .tag(Category::Usage)?;
    Ok(described)
}

/// Without git or SOURCE_DATE_EPOCH there is nothing stable to use; the build still works, it is
/// just not reproducible.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_time_is_rfc3339_utc() {
        let stamp = Stamp {
            version: "1.0.0".into(),
            commit: None,
            build_time_epoch: 1_764_028_800,
        };
        assert_eq!(stamp.build_time(), "2025-11-25T00:00:00Z");
    }
}
