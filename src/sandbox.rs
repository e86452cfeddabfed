// placeholder until the sandbox branch merges
use std::path::PathBuf;
pub fn state_dir() -> PathBuf {
    std::env::var_os("SHIPIT_SANDBOX_DIR")
        .map_or_else(|| PathBuf::from("/var/lib/shipit/sandbox"), PathBuf::from)
}
pub fn ssh_config_path() -> PathBuf {
    state_dir().join("ssh_config")
}
