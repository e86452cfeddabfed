//! Where an app lives on a server: the unit, the package, the generated configs and deploy
//! agree on these. Depends on nothing else in the crate.

/// Where an app lives on a server; the unit, the package and deploy agree on these.
pub fn install_dir(app: &str) -> String {
    format!("/opt/{app}")
}

pub fn current_dir(app: &str) -> String {
    format!("/opt/{app}/current")
}

pub fn env_file(app: &str) -> String {
    format!("/etc/{app}/{app}.env")
}

pub fn state_dir(app: &str) -> String {
    format!("/var/lib/{app}")
}
