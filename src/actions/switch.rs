//! Switching releases and what goes with it: the switch itself (`switch.sh`, then
//! `started.sh`, which answers with the unit's state once the service listens), the unit's
//! state alone, marking a release good or failed, stopping a failed first release, the journal
//! since the restart, and the good release recorded with the old ones pruned.

use std::borrow::Cow;
use std::time::Duration;

use crate::hosts::Layout;
use crate::hosts::owner::token;
use crate::hosts::script::{LIB, Script};
use crate::names::ReleaseId;
use crate::remote::{Kind, Step};

/// The switch (`switch.sh`): deploy, rollback, a fleet's switch-back and the dead-man timer all
/// run it.
pub const SWITCH: &str = include_str!("scripts/switch.sh");
const STARTED: &str = include_str!("scripts/started.sh");

/// How the switch step waits for the service to listen before answering (see `started.sh`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Listen {
    /// The health URL's port, when its host is this host.
    pub port: Option<u16>,
    /// At most this long.
    pub wait: Duration,
}

/// Switches to `release` and restarts (see `switch.sh`), then answers with the unit's state
/// once the service listens (see `started.sh`), so the health gate starts a round trip ahead.
pub struct SwitchTo {
    pub release: ReleaseId,
    pub listen: Listen,
}

impl Script for SwitchTo {
    fn kind(&self) -> Kind {
        Kind::Switch
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        let listen = self.listen;
        vec![
            ("target", self.release.to_string()),
            (
                "listen_port",
                listen.port.map_or_else(String::new, |p| format!("{p:04X}")),
            ),
            (
                "listen_wait",
                (listen.wait.as_millis() / 10).max(1).to_string(),
            ),
        ]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![SWITCH.into(), STARTED.into()]
    }
}

/// The unit's state as the health gate reads it (see `started.sh`).
pub struct ReadUnitState;

impl Script for ReadUnitState {
    fn kind(&self) -> Kind {
        Kind::UnitState
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![("listen_port", String::new()), ("listen_wait", "1".into())]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![STARTED.into()]
    }
}

/// Records a release as good (it passed its gate) or failed (it never counts as previous).
pub struct MarkRelease {
    pub release: ReleaseId,
    pub healthy: bool,
}

impl Script for MarkRelease {
    fn kind(&self) -> Kind {
        Kind::Mark
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![
            ("target", self.release.to_string()),
            (
                "healthy",
                if self.healthy { "yes" } else { "no" }.to_string(),
            ),
        ]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![include_str!("scripts/mark.sh").into()]
    }
}

/// With no earlier release to return to, a failed first release is stopped, not left flapping.
pub struct StopService;

impl Script for StopService {
    fn kind(&self) -> Kind {
        Kind::Stop
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![LIB.into(), include_str!("scripts/stop.sh").into()]
    }
}

/// The unit's journal since the host's clock read `since`.
pub struct ReadJournal {
    pub since: u64,
}

impl Script for ReadJournal {
    fn kind(&self) -> Kind {
        Kind::Journal
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![("since", self.since.to_string())]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![include_str!("scripts/journal.sh").into()]
    }
}

/// Records the new current release as good, then keeps `keep` releases (see `finish.sh`), unless
/// this deploy's dead-man timer undid it; it answers with what it deleted
/// ([`FinishRelease::pruned`]).
pub struct FinishRelease {
    pub release: ReleaseId,
    pub keep: usize,
}

impl FinishRelease {
    pub fn pruned(out: &str) -> Vec<String> {
        out.lines().map(str::to_string).collect()
    }
}

impl Script for FinishRelease {
    fn kind(&self) -> Kind {
        Kind::Finish
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![
            ("target", self.release.to_string()),
            ("keep", self.keep.to_string()),
            ("token", token().to_string()),
        ]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![include_str!("scripts/finish.sh").into()]
    }
}

/// The layout's own release, switched to.
pub fn switch_to(layout: &Layout, release: &ReleaseId, listen: Listen) -> Step<'static> {
    SwitchTo {
        release: release.clone(),
        listen,
    }
    .step(layout)
}
