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
}

impl Sandbox {
    /// Boots `names` with one `shipit sandbox up`; panics with shipit's output if that fails.
    pub fn up(names: &[&str]) -> Sandbox {
        let sandbox = Sandbox::empty();
        let args = [&["sandbox", "up"], names].concat();
        sandbox.shipit(&args).run().success();
        sandbox
    }

    /// A state directory without hosts, for tests that run `shipit sandbox up` themselves.
    pub fn empty() -> Sandbox {
        // Under target/, not /tmp: every host copies a ~300 MB rootfs, too much for a tmpfs.
        let state = tempfile::Builder::new()
            .prefix("sandbox-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("create a sandbox state directory");
        Sandbox { state }
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

    /// The host's record (`hosts/<name>/host.json`): name, address, netns, veth, pid, index.
    pub fn record(&self, name: &str) -> serde_json::Value {
        let path = self.state_dir().join("hosts").join(name).join("host.json");
        let json = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&json).expect("host.json is JSON")
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
    }
}
