//! Running local tools (go, cargo, ssh-keygen, ip, debootstrap, …): an error names the tool, what
//! it was for and the tail of what it printed. Depends on nothing else in the crate.

use std::io::IsTerminal;
use std::process::{Command, Output, Stdio};

use anyhow::Result;

/// A local command's stdin (`env_command`, local hooks): shipit's own at a terminal, where a
/// password manager may ask for something, and nothing otherwise: a command that reads stdin in
/// CI gets end-of-file instead of waiting for a runner's pipe that never closes.
pub fn stdin_for_child() -> Stdio {
    if std::io::stdin().is_terminal() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// Runs a build tool, naming it in any error together with the tail of what it printed.
pub fn run_tool(label: &str, command: &mut Command) -> Result<Output> {
    let output = spawn_tool(label, command)?;
    if !output.status.success() {
        return Err(tool_failed(label, command, &output));
    }
    Ok(output)
}

/// Runs a build tool to completion, failed or not; an error only when it cannot start.
pub fn spawn_tool(label: &str, command: &mut Command) -> Result<Output> {
    let program = command.get_program().to_string_lossy().into_owned();
    command.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!("{label}: `{program}` is not installed or not on PATH")
        } else {
            anyhow::anyhow!("{label}: cannot run `{program}`: {e}")
        }
    })
}

pub fn tool_failed(label: &str, command: &Command, output: &Output) -> anyhow::Error {
    anyhow::anyhow!(
        "{label} failed ({}): {}\n{}",
        output.status,
        describe(command),
        tail(&String::from_utf8_lossy(&output.stderr), 40)
    )
}

/// The command line as a user could paste it, with the environment shipit set.
fn describe(command: &Command) -> String {
    let env = command
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .filter(|kv| !kv.contains("PATH="));
    let words = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|w| w.to_string_lossy().into_owned());
    env.chain(words).collect::<Vec<_>>().join(" ")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
