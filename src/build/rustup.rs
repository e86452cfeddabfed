//! Whether the project's Rust toolchain (as rustup resolves it there: a toolchain file, an
//! override, the default) has the standard library for a target. A rustc that cannot answer,
//! such as rustup's proxy finding no toolchain under another HOME, is reported with its own
//! words, not as a missing target.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::Result;

use crate::process::spawn_tool;

/// Whether the standard library for `triple` is installed; an error with rustc's answer when
/// rustc cannot say.
pub(super) fn target_installed(root: &Path, triple: &str) -> Result<bool> {
    let mut rustc = Command::new("rustc");
    rustc
        .args(["--print", "target-libdir", "--target", triple])
        .current_dir(root)
        // rustup's errors carry a backtrace when RUST_BACKTRACE is set; the message is the answer.
        .env("RUST_LIB_BACKTRACE", "0");
    let output = spawn_tool(&format!("check the Rust target {triple}"), &mut rustc)?;
    if !output.status.success() {
        return Err(cannot_tell(root, triple, &output));
    }
    // rustc prints where the library would be whether or not it is there.
    let libdir = String::from_utf8_lossy(&output.stdout);
    Ok(Path::new(libdir.trim()).is_dir())
}

fn cannot_tell(root: &Path, triple: &str, output: &Output) -> anyhow::Error {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let answer: String = stderr
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .map(|line| format!("\n  {line}"))
        .collect();
    let help = if stderr.contains("rustup") {
        format!(
            "rustup looked for toolchains in {} ($RUSTUP_HOME, else ~/.rustup); if Rust is \
             installed under another home (sudo and a changed HOME point elsewhere), set \
             RUSTUP_HOME and CARGO_HOME to its directories, else do as rustup says",
            rustup_home().display()
        )
    } else {
        format!("`rustc --version` must work in {}", root.display())
    };
    anyhow::anyhow!(
        "cannot tell whether the Rust target {triple} is installed: `rustc --print target-libdir` \
         failed in {} ({}){answer}\n  help: {help}",
        root.display(),
        output.status
    )
}

/// Where rustup keeps toolchains: `$RUSTUP_HOME`, else `~/.rustup`.
fn rustup_home() -> PathBuf {
    std::env::var_os("RUSTUP_HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".rustup")))
        .unwrap_or_else(|| PathBuf::from("~/.rustup"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::*;

    fn failed(stderr: &str) -> String {
        let output = Output {
            status: ExitStatus::from_raw(1 << 8),
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        };
        cannot_tell(Path::new("/src/app"), "x86_64-unknown-linux-musl", &output).to_string()
    }

    #[test]
    fn a_rustc_that_cannot_answer_is_quoted_not_taken_for_a_missing_target() {
        // rustup 1.28 with HOME changed: no toolchain under the new home.
        let said = failed(
            "error: rustup could not choose a version of rustc to run, because one wasn't \
             specified explicitly, and no default is configured.\nhelp: run 'rustup default \
             stable' to download the latest stable release of Rust and set it as your default \
             toolchain.\n",
        );
        assert!(
            said.starts_with(
                "cannot tell whether the Rust target x86_64-unknown-linux-musl is installed: \
                 `rustc --print target-libdir` failed in /src/app (exit status: 1)\n  \
                 error: rustup could not choose a version of rustc to run"
            ) && said.contains("\n  help: run 'rustup default stable'")
                && said.contains("\n  help: rustup looked for toolchains in ")
                && !said.contains("rustup target add"),
            "{said}"
        );
        let said = failed("error: unknown print request: `target-libdir`\n");
        assert!(
            said.ends_with("\n  help: `rustc --version` must work in /src/app"),
            "{said}"
        );
    }
}
