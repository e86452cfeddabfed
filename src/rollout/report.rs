//! What a deploy says when it ends: the summary (a line, a table or `--json`) and the exit
//! code the hosts' outcomes add up to.

use anyhow::Result;

use super::fleet::{self, HostReport, Outcome};
use crate::error::{Category, tagged};
use crate::events::{Event, Events};
use crate::hosts::Layout;
use crate::notify::Notice;
use crate::package::Package;
use crate::ui::Format;

/// The JSON result of `deploy --json` (and the `rollout_finished` event's report): the same
/// for one host or many.
#[derive(Debug, serde::Serialize)]
pub struct Summary<'a> {
    app: &'a str,
    /// `-e`'s environment; null without one.
    environment: Option<&'a str>,
    version: &'a str,
    release: &'a str,
    ok: bool,
    hosts: Vec<&'a HostReport>,
}

/// Whether a host runs the new release and passed its gate, with nothing after it gone wrong
/// (a dead-man timer left unconfirmed, a lock not released): what CI may call success.
pub fn passed(report: &HostReport) -> bool {
    report.outcome == Outcome::Deployed && report.error.is_none()
}

/// The exit: success only when every host [`passed`] (a failure tolerated by `--max-fail`
/// still fails the command); one host's own error when there is one host; otherwise a summary
/// with the most severe host's category.
pub fn outcome(results: Vec<(HostReport, Option<anyhow::Error>)>) -> Result<()> {
    let total = results.len();
    let mut failed: Vec<(HostReport, anyhow::Error)> = results
        .into_iter()
        .filter_map(|(report, error)| match error {
            Some(e) => Some((report, e)),
            None if passed(&report) => None,
            None => {
                let e = anyhow::anyhow!("{}", report.outcome.label());
                Some((report, tagged(Category::Remote, e)))
            }
        })
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    if total == 1 {
        return Err(failed.remove(0).1);
    }
    failed.sort_by_key(|(r, _)| fleet::severity(r.category.unwrap_or(Category::Remote)));
    let category = failed[0].0.category.unwrap_or(Category::Remote);
    let lines: Vec<String> = failed
        .iter()
        .map(|(r, e)| format!("  {}: {}", r.host, format!("{e:#}").replace('\n', "\n    ")))
        .collect();
    Err(tagged(
        category,
        anyhow::anyhow!(
            "{} of {total} hosts did not deploy:\n{}",
            failed.len(),
            lines.join("\n")
        ),
    ))
}

impl<'a> Summary<'a> {
    pub fn new(reports: &[&'a HostReport], package: &'a Package, layout: &'a Layout) -> Self {
        Summary {
            app: &layout.app,
            environment: layout.environment.as_deref(),
            version: &package.manifest.version,
            release: &layout.release,
            ok: reports.iter().all(|r| passed(r)),
            hosts: reports.to_vec(),
        }
    }
}

/// What `[notify]` is told: `--json`'s summary, and one word for the whole rollout: rolled-back
/// when a host switched to the new release and back.
pub fn notice(reports: &[&HostReport], package: &Package, layout: &Layout) -> Result<Notice> {
    let summary = Summary::new(reports, package, layout);
    let outcome = if summary.ok {
        "deployed"
    } else if reports
        .iter()
        .any(|r| matches!(r.outcome, Outcome::RolledBack | Outcome::SwitchedBack))
    {
        "rolled-back"
    } else {
        "failed"
    };
    Notice::new("deploy", outcome, layout, &summary)
}

/// The summary on stdout; with `--events`, the report as the last event and nothing else.
pub fn print_summary(
    reports: &[&HostReport],
    package: &Package,
    layout: &Layout,
    format: Format,
    events: &Events,
) -> Result<()> {
    let summary = Summary::new(reports, package, layout);
    if events.on() {
        events.emit(Event::RolloutFinished {
            report: crate::events::report(&summary),
        });
        return Ok(());
    }
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    if let [only] = reports {
        if passed(only) {
            println!(
                "deployed {} {} to {} (release {}{})",
                layout.app,
                only.new_version,
                only.host,
                only.release,
                if only.uploaded {
                    ""
                } else {
                    ", upload skipped"
                }
            );
        }
        return Ok(());
    }
    println!(
        "{:<20} {:<14} {:<22} {:<9} {:>7}  HEALTH",
        "HOST", "OUTCOME", "VERSION", "UPLOAD", "TIME"
    );
    for r in reports {
        let versions = format!(
            "{} -> {}",
            r.old_version.as_deref().unwrap_or("none"),
            r.new_version
        );
        println!(
            "{:<20} {:<14} {:<22} {:<9} {:>6.1}s  {}",
            r.host,
            r.outcome.label(),
            versions,
            r.upload,
            r.seconds,
            r.health
        );
    }
    Ok(())
}
