//! Builds take turns, and a deploy that is not about building gets a shared package.
//!
//! Tests run many at once because they mostly wait; a build (go, cargo, zig, qemu) is what keeps
//! the cores busy, so no more than [`TURNS`] run at a time. Most deploys only need *a* package of
//! their project at their version: `deploy --version-override V` becomes `deploy --package P`,
//! with P built once per distinct project contents and version and shared by every test that
//! asks. Those builds go first: a test waiting for one holds hosts that wait too, while a build
//! test only builds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Builds at once: one per core.
const TURNS: usize = 2;

struct Queue {
    running: usize,
    /// Shared packages waiting for a turn, which other builds let go first.
    shared_waiting: usize,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    running: 0,
    shared_waiting: 0,
});
static TURN_FREED: Condvar = Condvar::new();

/// A build's turn, given back when dropped.
pub struct Turn(());

/// Waits for a turn to build (`shipit build`).
pub fn turn() -> Turn {
    wait_for_turn(false)
}

/// Waits for a turn; a shared package's goes ahead of other builds.
fn wait_for_turn(shared: bool) -> Turn {
    let mut queue = lock(&QUEUE);
    if shared {
        queue.shared_waiting += 1;
    }
    while queue.running >= TURNS || (!shared && queue.shared_waiting > 0) {
        queue = TURN_FREED
            .wait(queue)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    queue.running += 1;
    if shared {
        queue.shared_waiting -= 1;
        // With no shared package left waiting, a build held back for it may go.
        TURN_FREED.notify_all();
    }
    Turn(())
}

impl Drop for Turn {
    fn drop(&mut self) {
        lock(&QUEUE).running -= 1;
        TURN_FREED.notify_all();
    }
}

/// A test that panicked while holding one of these poisons it; what it guards is still whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where the shared packages and the Rust examples' builds go, for this run of the tests.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("shared-builds-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("create the shared build directory")
    })
    .path()
}

/// Removes what [`scratch`] holds; called once the tests are done.
pub fn clean_up() {
    let dir = scratch();
    let _ = std::fs::remove_dir_all(dir);
}

/// One CARGO_TARGET_DIR for every Rust build the tests run: the examples' dependencies compile
/// once, not once per project copy (shipit reads cargo's outputs from its JSON messages).
pub fn cargo_target_dir() -> PathBuf {
    scratch().join("cargo-target")
}

type Built = Arc<OnceLock<Option<PathBuf>>>;

/// The package of `project` at `version`, built on first request; None where the build fails,
/// so the caller's own deploy builds and reports the failure as it would have.
pub fn package(shipit: &Path, project: &Path, version: &str) -> Option<PathBuf> {
    static BUILT: Mutex<Option<HashMap<String, Built>>> = Mutex::new(None);
    let key = contents_key(project, version);
    let built: Built = lock(&BUILT)
        .get_or_insert_with(HashMap::new)
        .entry(key.clone())
        .or_default()
        .clone();
    built
        .get_or_init(|| build(shipit, project, version, &scratch().join(&key)))
        .clone()
}

fn build(shipit: &Path, project: &Path, version: &str, out: &Path) -> Option<PathBuf> {
    let _turn = wait_for_turn(true);
    let output = std::process::Command::new(shipit)
        .arg("-C")
        .arg(project)
        .args(["build", "-q", "--version-override", version, "--out-dir"])
        .arg(out)
        .env("SOURCE_DATE_EPOCH", super::EPOCH)
        .env("CARGO_TARGET_DIR", cargo_target_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run shipit build");
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    (output.status.success() && path.is_file()).then_some(path)
}

/// A digest of everything a build reads: the version and the project's files, build output
/// (target/, dist/) left out.
fn contents_key(project: &Path, version: &str) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    digest.update(version.as_bytes());
    let mut files = Vec::new();
    list_files(project, project, &mut files);
    files.sort();
    for relative in files {
        digest.update([0]);
        digest.update(relative.to_string_lossy().as_bytes());
        digest.update([0]);
        let path = project.join(&relative);
        match std::fs::read_link(&path) {
            Ok(target) => digest.update(target.to_string_lossy().as_bytes()),
            Err(_) => digest.update(std::fs::read(&path).unwrap_or_default()),
        }
    }
    hex::encode(digest.finalize())
}

fn list_files(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if dir != root
                || !["target", "dist"].contains(&entry.file_name().to_str().unwrap_or(""))
            {
                list_files(root, &path, files);
            }
        } else {
            files.push(path.strip_prefix(root).unwrap().to_path_buf());
        }
    }
}
