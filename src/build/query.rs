//! Asking a local tool a question (git, rustc, cargo metadata, a container engine): its answer,
//! or nothing when it cannot run or fails.

use std::io::IsTerminal;
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

/// Without a terminal nobody can answer git's credential prompt, which git opens on /dev/tty
/// (cargo's git dependencies; `go` sets the same for the modules it fetches): git fails instead
/// and the build error says why.
pub(super) fn without_prompts(command: &mut Command) {
    if !std::io::stdin().is_terminal() && std::env::var_os("GIT_TERMINAL_PROMPT").is_none() {
        command.env("GIT_TERMINAL_PROMPT", "0");
    }
}
