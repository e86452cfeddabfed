//! `--confirm-timeout`: before the restart, the host gets a systemd timer that puts the previous
//! release back by itself unless shipit confirms, over a fresh connection, as soon as that
//! host's health gate has passed (not after the whole rollout: a batched rollout may outlast the
//! timeout). If the deploying machine dies or loses the host mid-deploy, the host still heals.
//!
//! The timer must never hurt the deploy that armed it, nor a later one, so:
//! - A marker, `.shipit/deadman.<token>.json`, says it is armed. Whoever renames the marker
//!   first decides: the timer's script (it fires) or a disarm (it never will).
//! - While the deploy that armed it holds the lock and keeps it fresh, that deploy is alive and
//!   confirms or rolls back by itself: the script waits for it, and a disarm meanwhile still
//!   wins.
//! - The script takes the deploy lock itself, atomically; when another deploy holds it, it does
//!   nothing. It may take over only the lock of the deploy that armed it, once that lock has not
//!   been refreshed for [`LEASE`] (that deploy died or lost the host).
//! - It acts only while `current` still points at the release it was armed for, and returns
//!   only to a release that still exists. It runs with `set -eu`; whenever in doubt it leaves
//!   the host as it is, and it says what it did or why it did nothing in the journal of its
//!   unit and in `.shipit/deadman.<token>.done`, which the deploy's confirmation reads. A
//!   release it put back or stopped is marked failed in its name, and the deploy's
//!   `finish.sh` never records that release as good.
//! - A deploy is refused while another deploy's timer is armed, unless `--force-disarm`; a
//!   `shipit rollback` disarms it: the host runs what the user chose.

use std::borrow::Cow;
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::cancel::Cancel;
use crate::hosts::owner::{LockOwner, token};
use crate::hosts::runner::failed_with;
use crate::hosts::script::{self, LIB, Script};
use crate::hosts::{Layout, Runner};
use crate::names::ReleaseId;
use crate::remote::{Exit, Kind, Remote};

/// The lock's holder refreshes it every 15 s while its shell on the host lives (`lock.sh`): a
/// lock left alone for three of those has lost its deploy, which the timer's script may then
/// take over. The script waits up to this long after its deploy died.
pub const LEASE: Duration = Duration::from_secs(45);

pub fn unit(layout: &Layout) -> String {
    format!("shipit-deadman-{}", layout.app)
}

/// A marker as the host holds it: who armed the timer, for which release, what it returns to
/// and when it fires (the host's clock).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArmedTimer {
    pub owner: LockOwner,
    pub release: ReleaseId,
    pub previous: Option<ReleaseId>,
    /// Written by the host when it arms the timer.
    #[serde(default, skip_serializing)]
    pub fires: u64,
}

pub fn describe(timer: &ArmedTimer, now: u64) -> String {
    let action = match &timer.previous {
        Some(previous) => format!("switches back to {previous}"),
        None => "stops the service".to_string(),
    };
    let when = match timer.fires.checked_sub(now) {
        Some(left) if left > 0 => format!(
            "in {}",
            humantime::format_duration(Duration::from_secs(left))
        ),
        _ => "any moment now".to_string(),
    };
    format!(
        "armed by {} for {}; {when} it {action} unless the host has moved on",
        timer.owner.who(),
        timer.release
    )
}

pub fn parse_armed(out: &str) -> Vec<ArmedTimer> {
    out.lines()
        .filter_map(|l| l.strip_prefix("armed="))
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect()
}

/// Arms the timer for this deploy of the layout's release, returning to `previous` (or
/// stopping the service when there is none); see `arm.sh`.
pub struct ArmTimer {
    /// The marker, `"fires":` left open for the host's clock to close.
    marker: String,
    name: String,
    heal: String,
    timeout: Duration,
}

impl ArmTimer {
    pub fn new(layout: &Layout, previous: Option<&ReleaseId>, timeout: Duration) -> ArmTimer {
        let mut marker = serde_json::to_string(&ArmedTimer {
            owner: LockOwner::me(layout),
            release: layout.release.clone(),
            previous: previous.cloned(),
            fires: 0,
        })
        .expect("a marker serializes");
        // The host's clock says when it fires: the script appends `"fires":<then>}`.
        marker.pop();
        marker.push_str(",\"fires\":");
        ArmTimer {
            marker,
            name: unit(layout),
            heal: heal_script(layout, previous),
            timeout,
        }
    }
}

impl Script for ArmTimer {
    fn kind(&self) -> Kind {
        Kind::Arm
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![
            ("token", token().to_string()),
            ("name", self.name.clone()),
            ("heal", self.heal.clone()),
            ("marker_json", self.marker.clone()),
            ("secs", self.timeout.as_secs().max(1).to_string()),
        ]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![include_str!("scripts/arm.sh").into()]
    }
}

/// The timer's script (`heal.sh`, then the switch, then `healed.sh`). See the module comment
/// for what it promises.
pub fn heal_script(layout: &Layout, previous: Option<&ReleaseId>) -> String {
    let values = [
        ("token", token().to_string()),
        (
            "previous",
            previous.map(ReleaseId::to_string).unwrap_or_default(),
        ),
        ("lease", LEASE.as_secs().to_string()),
    ];
    script::assemble(
        layout,
        &values,
        &[
            LIB.into(),
            include_str!("scripts/heal.sh").into(),
            super::switch::SWITCH.into(),
            include_str!("scripts/healed.sh").into(),
        ],
    )
}

/// What disarming found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disarm {
    /// The timer will not fire.
    Disarmed,
    /// This deploy had no timer armed on the host.
    NotArmed,
    /// Too late: the timer fired; what it did (or is doing).
    Fired(String),
}

/// Disarms this deploy's timer, if it has not fired yet (see `disarm.sh`).
pub struct DisarmTimer {
    name: String,
}

impl DisarmTimer {
    pub fn new(layout: &Layout) -> DisarmTimer {
        DisarmTimer { name: unit(layout) }
    }

    /// What it found.
    pub fn read(answer: Result<String>, dry_run: bool) -> Result<Disarm> {
        match answer {
            Ok(out) if out.trim() == "disarmed" || dry_run => Ok(Disarm::Disarmed),
            Ok(_) => Ok(Disarm::NotArmed),
            Err(e) => match failed_with(&e, Exit::TimerFired) {
                Some(verdict) => Ok(Disarm::Fired(verdict.trim().to_string())),
                None => Err(e),
            },
        }
    }
}

impl Script for DisarmTimer {
    fn kind(&self) -> Kind {
        Kind::Disarm
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![("token", token().to_string()), ("name", self.name.clone())]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![include_str!("scripts/disarm.sh").into()]
    }
}

pub fn disarm(runner: &mut Runner, layout: &Layout) -> Result<Disarm> {
    let answer = runner.one(DisarmTimer::new(layout).step(layout));
    DisarmTimer::read(answer, runner.is_dry_run())
}

/// Confirms the release: disarms the timer before it fires. Fails if it fired already.
pub fn confirm(remote: &mut dyn Remote, layout: &Layout) -> Result<()> {
    // It runs when the deploy is done: nothing is left for Ctrl-C to stop.
    let mut runner = Runner::apply(remote, &Cancel::new());
    runner.clean_up();
    match disarm(&mut runner, layout)? {
        Disarm::Disarmed => Ok(()),
        Disarm::NotArmed => anyhow::bail!(
            "the dead-man timer on {} was no longer armed (disarmed by hand?)",
            runner.label()
        ),
        Disarm::Fired(verdict) => anyhow::bail!(
            "too late: the dead-man timer on {} fired before the confirmation: {verdict}",
            runner.label()
        ),
    }
}
