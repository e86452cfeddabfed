//! Rust: `cargo build --release` (or `cross build`) for a static Linux target; the binary's path
//! comes from cargo's JSON messages, never from guessing target/ paths.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::{Stamp, Target, capture, run_tool};
use crate::config::{Builder, Config};

pub fn build(config: &Config, target: Target, stamp: &Stamp) -> Result<PathBuf> {
    let mut command = match config.build.builder {
        Builder::Cross => cross_command(config, target)?,
        _ => cargo_command(config, target)?,
    };
    command
        .current_dir(&config.root)
        .env(&config.build.version_env, &stamp.version)
        .env(&config.build.build_time_env, stamp.build_time())
        .args(["--release", "--message-format=json-render-diagnostics"]);
    if let Some(bin) = &config.build.cargo_bin {
        command.args(["--bin", bin]);
    }
    if !config.build.cargo_features.is_empty() {
        command.args(["--features", &config.build.cargo_features.join(",")]);
    }
    let label = format!("build your app with {}", config.build.builder);
    let output = run_tool(&label, &mut command)?;
    let executable = pick_executable(&String::from_utf8_lossy(&output.stdout), config)?;
    match config.build.builder {
        Builder::Cross => host_path_of_cross_output(config, &executable),
        _ => Ok(executable),
    }
}

fn cargo_command(config: &Config, target: Target) -> Result<Command> {
    let musl = format!("{}-unknown-linux-musl", target.rust_arch());
    let gnu = format!("{}-unknown-linux-gnu", target.rust_arch());
    let mut command = Command::new("cargo");
    command.arg("build");
    if target_installed(&config.root, &musl) {
        command.args(["--target", &musl]);
    } else if target_installed(&config.root, &gnu) {
        // An explicit --target keeps +crt-static away from build scripts and proc-macros.
        let var = format!(
            "CARGO_TARGET_{}_RUSTFLAGS",
            gnu.to_uppercase().replace('-', "_")
        );
        let flags = std::env::var(&var).map_or_else(
            |_| "-C target-feature=+crt-static".to_string(),
            |user| format!("{user} -C target-feature=+crt-static"),
        );
        command.env(var, flags).args(["--target", &gnu]);
    } else {
        anyhow::bail!(
            "the Rust target for {target} is not installed\n  \
             help: run `rustup target add {musl}` (a static musl build), or set \
             builder = \"cross\" in shipit.toml to build in a container"
        );
    }
    Ok(command)
}

/// Whether rustc (as the project's toolchain resolves it) has the standard library for `triple`.
fn target_installed(root: &Path, triple: &str) -> bool {
    capture(
        root,
        "rustc",
        &["--print", "target-libdir", "--target", triple],
    )
    .is_some_and(|dir| Path::new(&dir).is_dir())
}

fn cross_command(config: &Config, target: Target) -> Result<Command> {
    let engine = container_engine().ok_or_else(|| {
        anyhow::anyhow!(
            "builder = \"cross\" needs a running container engine, and neither `docker info` nor \
             `podman info` answered\n  \
             help: start Docker (>= 20.10) or Podman (>= 3.4), or set builder = \"cargo\" in \
             shipit.toml to build with the local toolchain"
        )
    })?;
    if capture(&config.root, "cross", &["--version"]).is_none() {
        anyhow::bail!(
            "builder = \"cross\" but `cross` is not installed\n  \
             help: cargo install cross --git https://github.com/cross-rs/cross"
        );
    }
    let mut command = Command::new("cross");
    command
        .env("CROSS_CONTAINER_ENGINE", engine)
        .args(["build", "--target"])
        .arg(format!("{}-unknown-linux-musl", target.rust_arch()));
    Ok(command)
}

fn container_engine() -> Option<&'static str> {
    ["docker", "podman"]
        .into_iter()
        .find(|engine| capture(Path::new("."), engine, &["info"]).is_some())
}

/// cross reports paths inside its container (/target/...); map them to the host target dir.
fn host_path_of_cross_output(config: &Config, executable: &Path) -> Result<PathBuf> {
    let Ok(inside) = executable.strip_prefix("/target") else {
        return Ok(executable.to_path_buf());
    };
    #[derive(Deserialize)]
    struct Metadata {
        target_directory: PathBuf,
    }
    let json = capture(
        &config.root,
        "cargo",
        &["metadata", "--format-version", "1", "--no-deps"],
    )
    .context("`cargo metadata` failed, so the cross build's output cannot be located")?;
    let metadata: Metadata = serde_json::from_str(&json).context("reading `cargo metadata`")?;
    Ok(metadata.target_directory.join(inside))
}

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    executable: Option<PathBuf>,
    #[serde(default)]
    target: Option<MessageTarget>,
}

#[derive(Deserialize)]
struct MessageTarget {
    name: String,
    kind: Vec<String>,
}

fn pick_executable(json_lines: &str, config: &Config) -> Result<PathBuf> {
    let mut binaries: Vec<(String, PathBuf)> = json_lines
        .lines()
        .filter_map(|line| serde_json::from_str::<Message>(line).ok())
        .filter(|m| m.reason == "compiler-artifact")
        .filter_map(|m| {
            let target = m.target?;
            let exe = m.executable?;
            target
                .kind
                .iter()
                .any(|k| k == "bin")
                .then_some((target.name, exe))
        })
        .collect();
    if let Some(wanted) = &config.build.cargo_bin {
        binaries.retain(|(name, _)| name == wanted);
    }
    match binaries.len() {
        1 => Ok(binaries.remove(0).1),
        0 => anyhow::bail!(
            "cargo built no binary{}: shipit ships one executable per app",
            config
                .build
                .cargo_bin
                .as_ref()
                .map(|b| format!(" named {b:?}"))
                .unwrap_or_default()
        ),
        _ => {
            let names = binaries.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>();
            anyhow::bail!(
                "cargo built several binaries ({}): set [build] cargo_bin in shipit.toml to the one to ship",
                names.join(", ")
            )
        }
    }
}
