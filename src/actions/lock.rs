//! The deploy lock on a host: a directory made with `mkdir` (atomic on every filesystem) holding
//! `owner.json`, which names the holder by a random token of its shipit process, the machine it
//! runs on (`/etc/machine-id`) and where its PID means something (boot and PID namespace).
//!
//! - Who holds the lock is what `owner.json` says, and it changes hands only atomically: a
//!   waiter taking over a stale lock renames the owner file to a name of its own, re-checks that
//!   it is still the stale owner's, and only then writes its own with `ln`, which never replaces
//!   a file. Of two waiters that both found the same stale lock, one wins; the other finds the
//!   winner's owner file and waits.
//! - The holder refreshes the lock (its directory's mtime) every 15 s: a job the lock script
//!   leaves running beside the host's shell of this deploy's connection, so refreshes stop when
//!   shipit or its connection dies. Stale means "not refreshed for [`STALE_AFTER`]", or an owner on this
//!   machine whose process is gone.
//! - Only the holder's token releases the lock; `shipit lock release` releases the holder it
//!   showed, not whoever took the lock since.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::deadman::{self, ArmedTimer};
use crate::error::{Category, tagged};
use crate::hosts::owner::{LockOwner, token};
use crate::hosts::runner::failed_with;
use crate::hosts::script::{LIB, Script};
use crate::hosts::{Layout, Runner};
use crate::remote::{Exit, Kind, Step};
use crate::ui::Ui;

/// A lock not refreshed for this long is left over from a deploy that died or lost the host.
/// Longer than any single remote command may block the refreshes (5 minutes).
pub const STALE_AFTER: Duration = Duration::from_secs(600);

/// The lock as found on the host.
pub struct HeldLock {
    pub owner: Option<LockOwner>,
    /// Since the last refresh.
    pub age: Duration,
}

/// The lock and the dead-man timers on a host, read without touching them.
pub struct Status {
    pub lock: Option<HeldLock>,
    pub timers: Vec<ArmedTimer>,
    /// The host's clock, for when the timers fire.
    pub now: u64,
}

/// Reads the lock and the armed dead-man timers, touching neither (`lock-status.sh`).
pub struct ReadLock;

impl Script for ReadLock {
    fn kind(&self) -> Kind {
        Kind::LockStatus
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![LIB.into(), include_str!("scripts/lock-status.sh").into()]
    }
}

impl ReadLock {
    fn parse(out: &str) -> Status {
        Status {
            lock: parse_held(out),
            timers: deadman::parse_armed(out),
            now: field(out, "now").and_then(|n| n.parse().ok()).unwrap_or(0),
        }
    }
}

/// Reads the lock and any armed dead-man timer.
pub fn status(runner: &mut Runner, layout: &Layout) -> Result<Status> {
    let out = runner.one(ReadLock.step(layout))?;
    Ok(ReadLock::parse(&out))
}

fn field<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
}

fn parse_held(out: &str) -> Option<HeldLock> {
    let age = field(out, "age")?.trim().parse().unwrap_or(0);
    let owner = field(out, "owner").and_then(|o| serde_json::from_str(o).ok());
    Some(HeldLock {
        owner,
        age: Duration::from_secs(age),
    })
}

pub fn describe(held: &HeldLock) -> String {
    let age = humantime::format_duration(held.age);
    match &held.owner {
        Some(owner) => format!("{owner} (refreshed {age} ago)"),
        None => format!("owner unknown (made {age} ago)"),
    }
}

/// What to do about another deploy's armed dead-man timer once the lock is ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmedPolicy {
    /// Let go of the lock and fail: the timer may still switch the host back.
    Refuse,
    /// Disarm it (`--force-disarm`, `shipit rollback`).
    Disarm,
}

/// Which lock the next attempt may replace: the one it found stale, named by its owner's token.
#[derive(Clone)]
enum Takeover {
    None,
    Owner { token: String, min_age: u64 },
    Ownerless { min_age: u64 },
}

/// Takes the lock, waiting up to `wait` for another deploy; a stale lock is taken over. Returns
/// the dead-man timers of other deploys found armed (and disarmed, with [`ArmedPolicy::Disarm`]).
pub fn lock(
    runner: &mut Runner,
    layout: &Layout,
    wait: Duration,
    armed: ArmedPolicy,
    ui: &Ui,
) -> Result<Vec<ArmedTimer>> {
    let first = runner.one(TakeLock::first(layout, armed).step(layout));
    Ok(settle(runner, layout, first, wait, armed, ui)?.armed)
}

/// The lock as taken by [`settle`].
pub struct Taken {
    /// Other deploys' dead-man timers found armed.
    pub armed: Vec<ArmedTimer>,
    /// The first try did not get it: steps batched after that try did not run.
    pub retried: bool,
}

/// Finishes taking the lock from the answer to [`TakeLock::first`]: waits for another deploy
/// (up to `wait`) and takes over a stale lock.
pub fn settle(
    runner: &mut Runner,
    layout: &Layout,
    first: Result<String>,
    wait: Duration,
    armed: ArmedPolicy,
    ui: &Ui,
) -> Result<Taken> {
    let deadline = Instant::now() + wait;
    let mut takeover = Takeover::None;
    let mut last_seen = String::new();
    let mut reported = false;
    let mut retried_vanished = false;
    let mut answer = first;
    let mut retried = false;
    loop {
        let tried_takeover = !matches!(takeover, Takeover::None);
        let held = match answer {
            Ok(out) => {
                if out.lines().any(|l| l == "took-over") {
                    ui.status(
                        "Unlocking",
                        format_args!("stale lock on {} ({last_seen})", runner.label()),
                    );
                }
                return Ok(Taken {
                    armed: deadman::parse_armed(&out),
                    retried,
                });
            }
            Err(e) => {
                if let Some(out) = failed_with(&e, Exit::TimerArmed) {
                    return Err(armed_error(runner, layout, out));
                }
                let held = failed_with(&e, Exit::Locked).and_then(parse_held);
                held.ok_or(e)?
            }
        };
        retried = true;
        last_seen = describe(&held);
        // No owner file: the holder was letting go (or just taking it); look once more at once.
        if held.owner.is_none() && !retried_vanished && held.age < STALE_AFTER {
            retried_vanished = true;
            takeover = Takeover::None;
            std::thread::sleep(Duration::from_millis(100));
            answer = runner.one(TakeLock::again(layout, &takeover, armed).step(layout));
            continue;
        }
        takeover = stale(&held);
        // A takeover is tried at once, but not twice in a row without waiting: a lock that
        // looks stale yet cannot be claimed (a hand-edited owner file) must not spin.
        if !matches!(takeover, Takeover::None) && !tried_takeover {
            answer = runner.one(TakeLock::again(layout, &takeover, armed).step(layout));
            continue;
        }
        if Instant::now() >= deadline {
            return Err(tagged(
                Category::Locked,
                anyhow::anyhow!(
                    "another deploy of {} holds the lock on {}: {last_seen}\n  \
                     help: wait for it (--lock-wait 5m); if no deploy is running, remove the lock \
                     with `shipit lock release {}` (a lock not refreshed for {} is taken over \
                     by itself)",
                    layout.app,
                    runner.label(),
                    runner.label(),
                    humantime::format_duration(STALE_AFTER)
                ),
            ));
        }
        if !reported {
            ui.status(
                "Waiting",
                format_args!("for the lock on {}: {last_seen}", runner.label()),
            );
            reported = true;
        }
        runner.cancel.check()?;
        std::thread::sleep(Duration::from_secs(1));
        answer = runner.one(TakeLock::again(layout, &takeover, armed).step(layout));
    }
}

/// Whether `held` may be taken over, and on which condition the host re-checks.
fn stale(held: &HeldLock) -> Takeover {
    let min_age = STALE_AFTER.as_secs();
    match &held.owner {
        Some(owner) if owner.is_dead_here() => Takeover::Owner {
            token: owner.token.clone(),
            min_age: 0,
        },
        Some(owner) if held.age >= STALE_AFTER => Takeover::Owner {
            token: owner.token.clone(),
            min_age,
        },
        None if held.age >= STALE_AFTER => Takeover::Ownerless { min_age },
        _ => Takeover::None,
    }
}

/// A try at the lock (`lock.sh`): takes a free lock, or the stale one `takeover` names. Once
/// the lock is ours, the host refreshes it while this connection lives.
pub struct TakeLock {
    /// This process, as `owner.json` names it.
    owner: LockOwner,
    /// The dead-man timer whose markers say it is armed.
    timer: String,
    takeover: Takeover,
    armed: ArmedPolicy,
}

impl TakeLock {
    /// The first try, to send in one batch with the steps around it; [`settle`] reads its
    /// answer.
    pub fn first(layout: &Layout, armed: ArmedPolicy) -> TakeLock {
        TakeLock::again(layout, &Takeover::None, armed)
    }

    fn again(layout: &Layout, takeover: &Takeover, armed: ArmedPolicy) -> TakeLock {
        TakeLock {
            owner: LockOwner::me(layout),
            timer: deadman::unit(layout),
            takeover: takeover.clone(),
            armed,
        }
    }
}

impl Script for TakeLock {
    fn kind(&self) -> Kind {
        Kind::Lock
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        let (mode, expected, min_age) = match &self.takeover {
            Takeover::None => ("none", "", 0),
            Takeover::Owner { token, min_age } => ("owner", token.as_str(), *min_age),
            Takeover::Ownerless { min_age } => ("ownerless", "", *min_age),
        };
        let policy = match self.armed {
            ArmedPolicy::Refuse => "refuse",
            ArmedPolicy::Disarm => "disarm",
        };
        vec![
            ("me", token().to_string()),
            (
                "owner",
                serde_json::to_string(&self.owner).expect("an owner serializes"),
            ),
            ("takeover", mode.to_string()),
            ("expected", expected.to_string()),
            ("min_age", min_age.to_string()),
            ("policy", policy.to_string()),
            ("timer", self.timer.clone()),
        ]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![LIB.into(), include_str!("scripts/lock.sh").into()]
    }
}

fn armed_error(runner: &Runner, layout: &Layout, out: &str) -> anyhow::Error {
    let now = field(out, "now").and_then(|n| n.parse().ok()).unwrap_or(0);
    let timers = deadman::parse_armed(out);
    let what = timers
        .iter()
        .map(|t| deadman::describe(t, now))
        .collect::<Vec<_>>()
        .join("; ");
    tagged(
        Category::Locked,
        anyhow::anyhow!(
            "another deploy's dead-man timer is armed on {host}: {what}\n  \
             help: let it fire (`shipit lock status {host}` shows it), or pass --force-disarm \
             to cancel it and deploy {app} anyway",
            host = runner.label(),
            app = layout.app,
        ),
    )
}

/// Releases the lock while its owner is `expected` (a token; None for a lock without owner
/// file), atomically (`unlock.sh`). A step of its own, so a deploy can batch it after its last
/// change; it runs whatever happened to the steps before it.
pub struct ReleaseLock {
    expected: Option<String>,
    kind: Kind,
}

impl ReleaseLock {
    /// This process's lock.
    pub fn mine() -> ReleaseLock {
        ReleaseLock {
            expected: Some(token().to_string()),
            kind: Kind::Unlock,
        }
    }

    /// The lock `held` describes (`shipit lock release`), unless it changed hands since.
    pub fn held(held: &HeldLock) -> ReleaseLock {
        ReleaseLock {
            expected: held.owner.as_ref().map(|o| o.token.clone()),
            kind: Kind::RemoveLock,
        }
    }

    /// Whether it released the lock.
    pub fn released(out: &str) -> bool {
        out.lines().any(|l| l == "released")
    }
}

impl Script for ReleaseLock {
    fn kind(&self) -> Kind {
        self.kind
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![
            ("me", token().to_string()),
            (
                "expected",
                self.expected.clone().unwrap_or_else(|| "-".into()),
            ),
        ]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![LIB.into(), include_str!("scripts/unlock.sh").into()]
    }

    fn step<'a>(&self, layout: &Layout) -> Step<'a> {
        Step::new(self.kind, self.assemble(layout)).always()
    }
}

/// This process's lock, released as a step of a batch.
pub fn unlock_step<'a>(layout: &Layout) -> Step<'a> {
    ReleaseLock::mine().step(layout)
}

/// Releases the lock if this process holds it; says whether it did.
pub fn unlock(runner: &mut Runner, layout: &Layout) -> Result<bool> {
    release(runner, layout, ReleaseLock::mine())
}

/// Releases the lock `held` describes (`shipit lock release`), unless it changed hands since.
pub fn release_held(runner: &mut Runner, layout: &Layout, held: &HeldLock) -> Result<bool> {
    release(runner, layout, ReleaseLock::held(held))
}

fn release(runner: &mut Runner, layout: &Layout, script: ReleaseLock) -> Result<bool> {
    let out = runner.one(script.step(layout))?;
    Ok(ReleaseLock::released(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::owner::tests::owner;

    #[test]
    fn held_locks_parse_with_or_without_owner() {
        let held = parse_held(
            "now=100\nage=30\nowner={\"user\":\"u\",\"from\":\"h\",\"pid\":1,\"version\":\"v\",\"since\":\"t\"}\n",
        )
        .unwrap();
        assert_eq!(held.age, Duration::from_secs(30));
        assert!(describe(&held).starts_with("u@h (pid 1) deploying v since t"));
        assert!(held.owner.unwrap().token.is_empty());
        assert!(parse_held("age=5\nowner=\n").unwrap().owner.is_none());
        assert!(parse_held("now=1\n").is_none());
    }

    #[test]
    fn stale_means_dead_here_or_not_refreshed() {
        let fresh = HeldLock {
            owner: Some(owner("other", String::new())),
            age: Duration::from_secs(60),
        };
        assert!(matches!(stale(&fresh), Takeover::None));
        let old = HeldLock {
            age: STALE_AFTER,
            ..fresh
        };
        assert!(
            matches!(stale(&old), Takeover::Owner { ref token, min_age } if token == "0123" && min_age == STALE_AFTER.as_secs())
        );
        let ownerless = HeldLock {
            owner: None,
            age: STALE_AFTER,
        };
        assert!(matches!(stale(&ownerless), Takeover::Ownerless { .. }));
    }
}
