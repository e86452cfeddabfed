//! Real hosts for tests: `shipit sandbox` containers in a state directory of the test's own, so
//! tests running in parallel never see each other's hosts.
//!
//! ```ignore
//! let sandbox = Sandbox::up(&["web1", "web2"]);
//! sandbox.shipit(&["-C", dir, "deploy", "web1"]).run().success();
//! assert_eq!(sandbox.ssh("web1", "systemctl is-active hello").success().stdout, "active\n");
//! ```
//!
//! Dropping the guard runs `shipit sandbox down --all`, also when the test panicked.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Run, Shipit, shipit};

pub struct Sandbox {
    state: tempfile::TempDir,
    /// Layers of an overlayfs mounted over `state`, unmounted on drop.
    layers: Option<tempfile::TempDir>,
}

impl Sandbox {
    /// Boots `names` with one `shipit sandbox up`; panics with shipit's output if that fails.
    pub fn up(names: &[&str]) -> Sandbox {
        Sandbox::up_with(names, &[])
    }

    /// [`Sandbox::up`] with more options for `up`, e.g. `["--release", "trixie"]`.
    pub fn up_with(names: &[&str], options: &[&str]) -> Sandbox {
        let sandbox = Sandbox::empty();
        let args = [&["sandbox", "up"], names, options].concat();
        sandbox.shipit(&args).run().success();
        sandbox
    }

    /// Boots `names` on a network only `bastion` (a host of this sandbox) reaches; the sandbox's
    /// ssh_config reaches them with `ProxyJump bastion`.
    pub fn up_behind(&self, bastion: &str, names: &[&str]) {
        let args = [&["sandbox", "up", "--behind", bastion], names].concat();
        self.shipit(&args).run().success();
    }

    /// A state directory without hosts, for tests that run `shipit sandbox up` themselves.
    pub fn empty() -> Sandbox {
        Sandbox {
            state: temp_dir("sandbox-"),
            layers: None,
        }
    }

    /// An empty state directory that is itself on overlayfs, which cannot hold the upper layer
    /// of a host's overlay: hosts get copied rootfs instead.
    pub fn on_overlayfs() -> Sandbox {
        let sandbox = Sandbox {
            state: temp_dir("sandbox-"),
            layers: Some(temp_dir("layers-")),
        };
        let layers = sandbox.layers.as_ref().unwrap().path();
        for dir in ["lower", "upper", "work"] {
            std::fs::create_dir(layers.join(dir)).unwrap();
        }
        let options = format!(
            "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
            layers.display()
        );
        let status = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(sandbox.state_dir())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount an overlayfs as the state directory"
        );
        sandbox
    }

    /// `$SHIPIT_SANDBOX_DIR` for this sandbox's shipit runs.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    pub fn ssh_config(&self) -> PathBuf {
        self.state_dir().join("ssh_config")
    }

    /// The host's address, e.g. `10.213.7.2`, from its record.
    pub fn address(&self, name: &str) -> String {
        self.record(name)["address"]
            .as_str()
            .expect("an address in host.json")
            .to_string()
    }

    /// The host's record (`hosts/<name>/host.json`): name, address, netns, veth, pid, index,
    /// overlay, …
    pub fn record(&self, name: &str) -> serde_json::Value {
        let path = self.state_dir().join("hosts").join(name).join("host.json");
        let json = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&json).expect("host.json is JSON")
    }

    pub fn rootfs(&self, name: &str) -> PathBuf {
        self.state_dir().join("hosts").join(name).join("rootfs")
    }

    /// Runs `command` as root on the host through OpenSSH and the sandbox's ssh_config.
    pub fn ssh(&self, name: &str, command: &str) -> Run {
        let output = Command::new("ssh")
            .arg("-F")
            .arg(self.ssh_config())
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", name, "--"])
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// shipit with `SHIPIT_SANDBOX_DIR` set to this sandbox.
    /// `dir` as a project whose shipit runs in this sandbox.
    pub fn project(&self, dir: &Path) -> super::Project<'_> {
        super::Project::in_sandbox(dir, self)
    }

    pub fn shipit(&self, args: &[&str]) -> Shipit {
        shipit(args).env(
            "SHIPIT_SANDBOX_DIR",
            self.state_dir().to_str().expect("a UTF-8 temp path"),
        )
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let run = self.shipit(&["sandbox", "down", "--all"]).run();
        if run.code != 0 {
            // No panic: this may run while a failed test unwinds.
            eprintln!(
                "shipit sandbox down --all failed in {}:\n{}",
                self.state_dir().display(),
                run.stderr
            );
        }
        if self.layers.is_some() {
            let _ = Command::new("umount").arg(self.state_dir()).status();
        }
    }
}

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    // Under target/, not /tmp: a copied rootfs is ~300 MB, too much for a tmpfs.
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create a sandbox state directory")
}

/// The type of the filesystem mounted at `path` (the topmost one), if anything is.
pub fn mount_type(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    info.lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let point = mount.split(' ').nth(4)?;
            (Path::new(point) == path).then(|| fs.split(' ').next().unwrap_or("").to_string())
        })
        .next_back()
}
