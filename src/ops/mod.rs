//! The commands that look after a deployed app, one module and one typed request each:
//! `status`, `diff`, `releases`, `history`, `lock status|release` (they only read, but for releasing a
//! dead deploy's lock) and `rollback` (under the deploy lock, health-checked). They stand on
//! [`crate::hosts`] to reach hosts and on [`crate::rollout`] for what a deploy leaves there.

pub mod diff;
pub mod history;
pub mod lock;
pub mod releases;
pub mod rollback;
pub mod status;
