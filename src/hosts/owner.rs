//! Who is deploying: a random token naming this shipit process, and the owner record a lock
//! and a dead-man timer carry (user, machine, process), with what tells a dead owner here.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::layout::Layout;

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
    /// The environment (`-e`) the holder deploys to; none without environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
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
            version: layout.release.to_string(),
            since: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            token: token().to_string(),
            machine: machine_id(),
            process: format!("{}{}", process_space(), start_time(pid).unwrap_or_default()),
            environment: layout.environment.clone(),
        }
    }

    /// Dead when it ran on this machine, in this boot and PID namespace, and its process is
    /// gone. A host name says nothing: containers and cloned machines share them.
    pub fn is_dead_here(&self) -> bool {
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
        let to = self
            .environment
            .as_ref()
            .map(|e| format!(" to {e}"))
            .unwrap_or_default();
        write!(
            f,
            "{} deploying {}{to} since {}",
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

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn owner(machine: &str, process: String) -> LockOwner {
        LockOwner {
            user: "u".into(),
            from: read_trimmed("/proc/sys/kernel/hostname"),
            pid: std::process::id(),
            version: "v".into(),
            since: "t".into(),
            token: "0123".into(),
            machine: machine.into(),
            process,
            environment: None,
        }
    }

    #[test]
    fn an_owner_is_dead_here_only_on_this_machine_boot_and_pid_namespace() {
        let me = LockOwner::me(&Layout {
            app: "a".into(),
            user: "a".into(),
            release: "r".into(),
            sha256: String::new(),
            environment: None,
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
    fn an_owner_names_the_environment_it_deploys_to_and_older_ones_read_without() {
        let mut me = owner("m", String::new());
        let old = serde_json::to_string(&me).unwrap();
        assert!(!old.contains("environment"), "{old}");
        assert!(me.to_string().contains(" deploying v since t"), "{me}");
        me.environment = Some("production".into());
        assert!(
            me.to_string()
                .contains(" deploying v to production since t"),
            "{me}"
        );
        let back: LockOwner = serde_json::from_str(&serde_json::to_string(&me).unwrap()).unwrap();
        assert_eq!(back.environment.as_deref(), Some("production"));
    }

    #[test]
    fn tokens_are_random_hex_and_fixed_per_process() {
        assert_eq!(token().len(), 32);
        assert!(token().chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(token(), token());
    }
}
