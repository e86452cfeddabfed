//! What `shipit deploy` is asked to do, typed at the edge: the request, the deploy's options
//! and the rollout's plan (batches, canary, max-fail).

use std::path::PathBuf;
use std::time::Duration;

use crate::actions::{ArmedPolicy, OnFailure};
pub use crate::config::{Amount, Canary};
use crate::events::Events;
use crate::hosts::Connection;
use crate::package::BuildOptions;
use crate::ui::Format;

/// How a deploy behaves, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub dry_run: bool,
    /// What a release that fails its gate gets: rolled back, or left (`--no-rollback`).
    pub on_failure: OnFailure,
    pub lock_wait: Duration,
    pub confirm_timeout: Option<Duration>,
    /// What to do about another deploy's armed dead-man timer (`--force-disarm` disarms it).
    pub armed: ArmedPolicy,
}

/// `shipit deploy`, as the command line asked for it.
#[derive(Debug, Clone)]
pub struct Request {
    pub hosts: Vec<String>,
    /// Deploy this package instead of building one.
    pub package: Option<PathBuf>,
    pub build: BuildOptions,
    pub format: Format,
    /// `--events`: what happens, as JSON lines on stdout; the report is the last of them.
    pub events: Events,
    pub options: Options,
    pub rollout: Rollout,
    pub connection: Connection,
}

/// How to roll out, from `--batch`, `--canary`, `--max-fail`, `--rollback-all-on-failure`, each
/// flag over its `[deploy]` key.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub parallel: usize,
    pub batch: Amount,
    pub canary: Option<Canary>,
    pub max_fail: Amount,
    pub rollback_all_on_failure: bool,
}
