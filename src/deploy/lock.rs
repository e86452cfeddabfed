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

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::deadman::{self, ArmedTimer};
use super::layout::Layout;
use super::runner::{Runner, failed_with};
use super::scripts::{self, assemble};
use crate::error::{Category, tagged};
use crate::interrupt;
use crate::remote::{Exit, Step};
use crate::ui::Ui;

/// A lock not refreshed for this long is left over from a deploy that died or lost the host.
/// Longer than any single remote command may block the refreshes (5 minutes).
pub const STALE_AFTER: Duration = Duration::from_secs(600);

/// The random token naming this shipit process in locks and dead-man timers.
pub fn token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let mut bytes = [0u8; 16];
        let random = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
        if random.is_err() {
            // No /dev/urandom (a very bare chroot): still unique per process and machine.
            use sha2::Digest;
            let seed = format!(
                "{:?} {} {}",
                std::time::SystemTime::now(),
                std::process::id(),
                read_trimmed("/proc/sys/kernel/random/boot_id")
            );
            bytes.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes())[..16]);
        }
        hex::encode(bytes)
    })
}

/// Who holds a deploy lock; written into the lock as owner.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockOwner {
    pub user: String,
    pub from: String,
    pub pid: u32,
    pub version: String,
    pub since: String,
    /// The holder's process token (locks written before tokens have none).
    #[serde(default)]
    pub token: String,
    /// The deploying machine's /etc/machine-id.
    #[serde(default)]
    pub machine: String,
    /// `<boot id>/<PID namespace>/<process start time>`: where `pid` names the holder.
    #[serde(default)]
    pub process: String,
}

impl LockOwner {
    pub fn me(layout: &Layout) -> LockOwner {
        let pid = std::process::id();
        LockOwner {
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                // SAFETY: getuid has no preconditions and cannot fail.
                .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() })),
            from: read_trimmed("/proc/sys/kernel/hostname"),
            pid,
            version: layout.release.clone(),
            since: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            token: token().to_string(),
            machine: machine_id(),
            process: format!("{}{}", process_space(), start_time(pid).unwrap_or_default()),
        }
    }

    /// Dead when it ran on this machine, in this boot and PID namespace, and its process is
    /// gone. A host name says nothing: containers and cloned machines share them.
    fn is_dead_here(&self) -> bool {
        let Some(start) = self.process.strip_prefix(&process_space()) else {
            return false;
        };
        !self.machine.is_empty()
            && self.machine == machine_id()
            && start_time(self.pid).as_deref() != Some(start)
    }
}

impl LockOwner {
    /// `user@host (pid N, machine 1234abcd)`
    pub fn who(&self) -> String {
        let machine = match self.machine.get(..8) {
            Some(id) => format!(", machine {id}"),
            None => String::new(),
        };
        format!("{}@{} (pid {}{machine})", self.user, self.from, self.pid)
    }
}

impl std::fmt::Display for LockOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} deploying {} since {}",
            self.who(),
            self.version,
            self.since
        )
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// This machine's id, as systemd defines it (D-Bus's copy on hosts without one).
fn machine_id() -> String {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .map(|path| read_trimmed(path))
        .find(|id| !id.is_empty())
        .unwrap_or_default()
}

/// `<boot id>/<PID namespace>/`: PIDs compare only within one of these.
fn process_space() -> String {
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!(
        "{}/{namespace}/",
        read_trimmed("/proc/sys/kernel/random/boot_id")
    )
}

/// A process's start time (clock ticks after boot), which tells a reused PID apart.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces and parentheses.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19).map(str::to_string)
}

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

/// Reads the lock and any armed dead-man timer.
pub fn status(runner: &mut Runner, layout: &Layout) -> Result<Status> {
    let step = Step::reads(
        "reading the deploy lock",
        assemble(layout, &[], &[scripts::LIB, scripts::LOCK_STATUS]),
    );
    let out = runner.one(step)?;
    Ok(Status {
        lock: parse_held(&out),
        timers: deadman::parse_armed(&out),
        now: field(&out, "now").and_then(|n| n.parse().ok()).unwrap_or(0),
    })
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
    /// Disarm it (`--force-disarm`).
    Disarm,
    /// Leave it armed; it will find `current` moved and do nothing (`shipit rollback`).
    Keep,
}

/// Which lock the next attempt may replace: the one it found stale, named by its owner's token.
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
    let first = runner.one(try_lock(layout, armed));
    Ok(settle(runner, layout, first, wait, armed, ui)?.armed)
}

/// The lock as taken by [`settle`].
pub struct Taken {
    /// Other deploys' dead-man timers found armed.
    pub armed: Vec<ArmedTimer>,
    /// The first try did not get it: steps batched after that try did not run.
    pub retried: bool,
}

/// The first try at the lock, to send in one batch with the steps around it; [`settle`] reads
/// its answer. Once the lock is ours, the host refreshes it while this connection lives.
pub fn try_lock(layout: &Layout, armed: ArmedPolicy) -> Step<'static> {
    attempt(layout, &Takeover::None, armed)
}

/// Finishes taking the lock from the answer to [`try_lock`]: waits for another deploy (up to
/// `wait`) and takes over a stale lock.
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
            answer = runner.one(attempt(layout, &takeover, armed));
            continue;
        }
        takeover = stale(&held);
        // A takeover is tried at once, but not twice in a row without waiting: a lock that
        // looks stale yet cannot be claimed (a hand-edited owner file) must not spin.
        if !matches!(takeover, Takeover::None) && !tried_takeover {
            answer = runner.one(attempt(layout, &takeover, armed));
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
        interrupt::check()?;
        std::thread::sleep(Duration::from_secs(1));
        answer = runner.one(attempt(layout, &takeover, armed));
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

fn attempt(layout: &Layout, takeover: &Takeover, armed: ArmedPolicy) -> Step<'static> {
    let (mode, expected, min_age) = match takeover {
        Takeover::None => ("none", "", 0),
        Takeover::Owner { token, min_age } => ("owner", token.as_str(), *min_age),
        Takeover::Ownerless { min_age } => ("ownerless", "", *min_age),
    };
    let policy = match armed {
        ArmedPolicy::Refuse => "refuse",
        ArmedPolicy::Disarm => "disarm",
        ArmedPolicy::Keep => "keep",
    };
    let owner = serde_json::to_string(&LockOwner::me(layout)).expect("an owner serializes");
    let values = [
        ("me", token().to_string()),
        ("owner", owner),
        ("takeover", mode.to_string()),
        ("expected", expected.to_string()),
        ("min_age", min_age.to_string()),
        ("policy", policy.to_string()),
        ("timer", deadman::unit(layout)),
    ];
    Step::changes(
        "taking the deploy lock",
        assemble(layout, &values, &[scripts::LIB, scripts::LOCK]),
    )
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

/// Releases the lock if this process holds it; says whether it did.
pub fn unlock(runner: &mut Runner, layout: &Layout) -> Result<bool> {
    release(runner, layout, Some(token()), "releasing the deploy lock")
}

/// Releases the lock `held` describes (`shipit lock release`), unless it changed hands since.
pub fn release_held(runner: &mut Runner, layout: &Layout, held: &HeldLock) -> Result<bool> {
    let expected = held.owner.as_ref().map(|o| o.token.as_str());
    release(runner, layout, expected, "removing the deploy lock")
}

/// Releases the lock while `expected` (the owner's token, or None for a lock without owner
/// file) holds it. A step of its own, so a deploy can batch it after its last change; it runs
/// whatever happened to the steps before it.
pub fn release_step(layout: &Layout, expected: Option<&str>, step: &str) -> Step<'static> {
    let values = [
        ("me", token().to_string()),
        ("expected", expected.unwrap_or("-").to_string()),
    ];
    Step::changes(
        step,
        assemble(layout, &values, &[scripts::LIB, scripts::UNLOCK]),
    )
    .always()
}

/// This process's lock, released.
pub fn unlock_step(layout: &Layout) -> Step<'static> {
    release_step(layout, Some(token()), "releasing the deploy lock")
}

/// Whether [`release_step`] released the lock.
pub fn released(out: &str) -> bool {
    out.lines().any(|l| l == "released")
}

fn release(
    runner: &mut Runner,
    layout: &Layout,
    expected: Option<&str>,
    step: &str,
) -> Result<bool> {
    let out = runner.one(release_step(layout, expected, step))?;
    Ok(released(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(machine: &str, process: String) -> LockOwner {
        LockOwner {
            user: "u".into(),
            from: read_trimmed("/proc/sys/kernel/hostname"),
            pid: std::process::id(),
            version: "v".into(),
            since: "t".into(),
            token: "0123".into(),
            machine: machine.into(),
            process,
        }
    }

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
    fn an_owner_is_dead_here_only_on_this_machine_boot_and_pid_namespace() {
        let me = LockOwner::me(&Layout {
            app: "a".into(),
            user: "a".into(),
            release: "r".into(),
            sha256: String::new(),
        });
        if me.machine.is_empty() {
            return; // no machine id here: nothing is ever "dead here"
        }
        assert!(!me.is_dead_here(), "this process is alive");
        let gone = format!("{}1", process_space());
        assert!(owner(&me.machine, gone.clone()).is_dead_here());
        // Same host name and PID, another machine: never ours to judge.
        assert!(!owner("0000other0000machine0000", gone).is_dead_here());
        // Same machine id (a container from the same image), another PID namespace.
        assert!(!owner(&me.machine, "boot/pid:[1]/1".into()).is_dead_here());
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

    #[test]
    fn tokens_are_random_hex_and_fixed_per_process() {
        assert_eq!(token().len(), 32);
        assert!(token().chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(token(), token());
    }
}
