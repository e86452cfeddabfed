//! Where the sandbox keeps its state: the directory (`$SHIPIT_SANDBOX_DIR`, else root's
//! `/var/lib/shipit/sandbox`), the files in it that `ssh` and shipit read, and each host's
//! directory.

use std::path::PathBuf;

/// The variable that names another state directory.
pub(super) const STATE_DIR_VAR: &str = "SHIPIT_SANDBOX_DIR";

/// Where hosts, the client key and the ssh files live: `$SHIPIT_SANDBOX_DIR`, else
/// `/var/lib/shipit/sandbox`.
pub fn state_dir() -> PathBuf {
    dir_from_env(STATE_DIR_VAR, "/var/lib/shipit/sandbox")
}

/// An `ssh_config` with one block per host: `ssh -F <this> NAME` logs in as root.
pub fn ssh_config_path() -> PathBuf {
    state_dir().join("ssh_config")
}

/// Every host's real host key, so connections can check keys strictly.
pub fn known_hosts_path() -> PathBuf {
    state_dir().join("known_hosts")
}

/// The private key every host authorizes for root.
pub fn identity_path() -> PathBuf {
    state_dir().join("id_ed25519")
}

pub(super) fn dir_from_env(var: &str, default: &str) -> PathBuf {
    match std::env::var_os(var).filter(|dir| !dir.is_empty()) {
        // Absolute, because the path ends up in ssh_config and in claims other processes read.
        Some(dir) => std::path::absolute(&dir).unwrap_or_else(|_| dir.into()),
        None => PathBuf::from(default),
    }
}

pub(super) fn host_dir(name: &str) -> PathBuf {
    state_dir().join("hosts").join(name)
}
