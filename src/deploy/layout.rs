//! Where things live on a server, in one place so every step agrees.

use crate::remote::quote;
use crate::unit;

/// The server-side paths of one release of one app. Every value is built from validated names,
/// and still quoted wherever it enters a shell.
#[derive(Debug, Clone)]
pub struct Layout {
    pub app: String,
    pub user: String,
    /// `<version>-<first 12 hex of the package sha256>`
    pub release: String,
    pub sha256: String,
}

impl Layout {
    pub fn base(&self) -> String {
        unit::install_dir(&self.app)
    }
    pub fn releases(&self) -> String {
        format!("{}/releases", self.base())
    }
    pub fn release_dir(&self) -> String {
        format!("{}/{}", self.releases(), self.release)
    }
    pub fn current(&self) -> String {
        unit::current_dir(&self.app)
    }
    pub fn shipit_dir(&self) -> String {
        format!("{}/.shipit", self.base())
    }
    pub fn lock(&self) -> String {
        format!("{}/lock", self.shipit_dir())
    }
    pub fn uploads(&self) -> String {
        format!("{}/uploads", self.shipit_dir())
    }
    pub fn upload(&self) -> String {
        format!("{}/{}.tar.gz", self.uploads(), self.sha256)
    }
    pub fn unit_name(&self) -> String {
        format!("{}.service", self.app)
    }
    pub fn unit_path(&self) -> String {
        format!("/etc/systemd/system/{}", self.unit_name())
    }
    pub fn env_file(&self) -> String {
        unit::env_file(&self.app)
    }
    pub fn state_dir(&self) -> String {
        unit::state_dir(&self.app)
    }
    /// `name=value` shell assignments for the paths, so scripts read as prose and quote once.
    pub fn shell_vars(&self) -> String {
        [
            ("app", self.app.clone()),
            ("user", self.user.clone()),
            ("base", self.base()),
            ("releases", self.releases()),
            ("release", self.release.clone()),
            ("rel", self.release_dir()),
            ("current", self.current()),
            ("lock", self.lock()),
            ("uploads", self.uploads()),
            ("upload", self.upload()),
            ("sha", self.sha256.clone()),
            ("unit", self.unit_name()),
            ("unit_path", self.unit_path()),
            ("env_file", self.env_file()),
            ("state_dir", self.state_dir()),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}\n", quote(v)))
        .collect()
    }
}
