//! Asking a local tool a question (git, rustc, cargo metadata, a container engine): its answer,
//! or nothing when it cannot run or fails.

use std::path::Path;
use std::process::Command;

/// The output of a command that must succeed, as trimmed text; None when it cannot run or fails.
pub(super) fn capture(dir: &Path, program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}
