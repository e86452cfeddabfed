//! Where things live on a server, in one place so every step agrees.

use crate::config::Config;
use crate::names::{AppName, ReleaseId};
use crate::package::Package;
use crate::shell::quote;

/// The server-side paths of one release of one app. Every value is built from validated names,
/// and still quoted wherever it enters a shell.
#[derive(Debug, Clone)]
pub struct Layout {
    pub app: AppName,
    pub user: String,
    /// `<version>-<first 12 hex of the package sha256>`
    pub release: ReleaseId,
    pub sha256: String,
    /// The environment (`-e`) the command runs for: deploy logs and locks record it.
    pub environment: Option<String>,
}

impl Layout {
    /// The layout of `package`'s release of the app.
    pub fn for_package(config: &Config, package: &Package) -> Layout {
        Layout {
            app: config.app.name.clone(),
            user: config.service.user.clone(),
            release: ReleaseId::of(&package.manifest.version, &package.sha256),
            sha256: package.sha256.clone(),
            environment: config.environment.clone(),
        }
    }

    /// The layout of whatever is deployed, for commands that have no package.
    pub fn of_app(config: &Config) -> Layout {
        Layout {
            app: config.app.name.clone(),
            user: config.service.user.clone(),
            release: ReleaseId::default(),
            sha256: String::new(),
            environment: config.environment.clone(),
        }
    }

    /// The same app's layout for another release on the host.
    pub fn with_release(&self, release: &ReleaseId) -> Layout {
        Layout {
            release: release.clone(),
            ..self.clone()
        }
    }

    pub fn base(&self) -> String {
        crate::paths::install_dir(&self.app)
    }
    pub fn releases(&self) -> String {
        format!("{}/releases", self.base())
    }
    pub fn release_dir(&self) -> String {
        format!("{}/{}", self.releases(), self.release)
    }
    /// The release's copy of the env file, as an `EnvironmentFile=` value: the one the release
    /// runs with (see release.sh), and `-` because a release without one runs without.
    pub fn release_env_file(&self) -> String {
        format!("-{}/.env", self.release_dir())
    }
    pub fn current(&self) -> String {
        crate::paths::current_dir(&self.app)
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
    /// The socket unit that holds the listening sockets (`[service] listen`).
    pub fn socket_name(&self) -> String {
        format!("{}.socket", self.app)
    }
    pub fn socket_path(&self) -> String {
        format!("/etc/systemd/system/{}", self.socket_name())
    }
    pub fn env_file(&self) -> String {
        crate::paths::env_file(&self.app)
    }
    pub fn state_dir(&self) -> String {
        crate::paths::state_dir(&self.app)
    }
    pub fn history(&self) -> String {
        format!("{}/history", self.shipit_dir())
    }
    /// `name=value` shell assignments for the paths, so scripts read as prose and quote once.
    pub fn shell_vars(&self) -> String {
        let values = [
            self.app.to_string(),
            self.user.clone(),
            self.base(),
            self.releases(),
            self.release.to_string(),
            self.release_dir(),
            self.current(),
            self.lock(),
            self.uploads(),
            self.upload(),
            self.sha256.clone(),
            self.unit_name(),
            self.unit_path(),
            self.env_file(),
            self.state_dir(),
            self.history(),
            self.socket_name(),
            self.socket_path(),
        ];
        VARIABLES
            .iter()
            .zip(values)
            .map(|(name, value)| format!("{name}={}\n", quote(&value)))
            .collect()
    }
}

/// The shell variables every step script starts with, in [`Layout::shell_vars`] order.
pub const VARIABLES: [&str; 18] = [
    "app",
    "user",
    "base",
    "releases",
    "release",
    "rel",
    "current",
    "lock",
    "uploads",
    "upload",
    "sha",
    "unit",
    "unit_path",
    "env_file",
    "state_dir",
    "history",
    "socket",
    "socket_path",
];
