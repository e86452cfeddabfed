//! Rust: `cargo build --release` (or `cargo zigbuild`, or `cross build`) for a static Linux
//! target; the binary's path comes from cargo's JSON messages, never from guessing target/ paths.
//!
//! C code in dependencies is compiled by their build scripts (cc-rs) for the target: with
//! musl-gcc for this machine's architecture, or with zig through cargo-zigbuild for any. Left to
//! itself, shipit builds with cargo and, when a build script finds no C compiler, builds again
//! with cargo-zigbuild if it is installed; otherwise it names what to install.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result};
use serde::Deserialize;

use super::query::{capture, without_prompts};
use super::rustup;
use super::stamp::Stamp;
use super::target::Target;
use super::toolchain::{self, INSTALL_ZIGBUILD};
use crate::config::{Builder, Config};
use crate::process::{spawn_tool, tool_failed};
use crate::ui::Ui;

/// The executable and what built it.
pub(super) fn build(
    config: &Config,
    target: Target,
    stamp: &Stamp,
    ui: &Ui,
) -> Result<(PathBuf, String)> {
    let builder = config.build.builder;
    let built = |path: PathBuf, by: Builder| (path, by.to_string());
    match builder {
        Builder::Cross => {
            let executable = run(config, cross_command(config, target)?, stamp, "cross")?;
            Ok(built(
                host_path_of_cross_output(config, &executable)?,
                builder,
            ))
        }
        Builder::Zigbuild => run(
            config,
            zigbuild_command(config, target)?,
            stamp,
            "cargo-zigbuild",
        )
        .map(|path| built(path, builder)),
        _ => {
            let (command, output) = spawn(config, cargo_command(config, target)?, stamp, "cargo")?;
            if output.status.success() {
                let executable = pick_executable(&String::from_utf8_lossy(&output.stdout), config)?;
                return Ok(built(executable, builder));
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            let Some(missing) = MissingCCompiler::find(&stderr) else {
                return Err(tool_failed(&label("cargo"), &command, &output));
            };
            let triple = musl_triple(target);
            let zigbuild = toolchain::cargo_zigbuild() && toolchain::zig().is_some();
            if config.build.zig_fallback && zigbuild {
                ui.status(
                    "Retrying",
                    format_args!(
                        "with cargo-zigbuild: {} compiles C code and there is no C compiler for \
                         {triple} here",
                        missing.krate
                    ),
                );
                return run(
                    config,
                    zigbuild_command(config, target)?,
                    stamp,
                    "cargo-zigbuild",
                )
                .map(|path| built(path, Builder::Zigbuild));
            }
            Err(missing.explain(config, target, zigbuild))
        }
    }
}

fn label(tool: &str) -> String {
    format!("build your app with {tool}")
}

/// Runs a prepared cargo (or cross, or cargo-zigbuild) command with shipit's settings; returns
/// the command and what it did, failed or not.
fn spawn(
    config: &Config,
    mut command: Command,
    stamp: &Stamp,
    tool: &str,
) -> Result<(Command, Output)> {
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
    without_prompts(&mut command);
    let output = spawn_tool(&label(tool), &mut command)?;
    Ok((command, output))
}

/// [`spawn`] that must succeed; returns the built executable.
fn run(config: &Config, command: Command, stamp: &Stamp, tool: &str) -> Result<PathBuf> {
    let (command, output) = spawn(config, command, stamp, tool)?;
    if !output.status.success() {
        return Err(tool_failed(&label(tool), &command, &output));
    }
    pick_executable(&String::from_utf8_lossy(&output.stdout), config)
}

fn musl_triple(target: Target) -> String {
    format!("{}-unknown-linux-musl", target.rust_arch())
}

fn cargo_command(config: &Config, target: Target) -> Result<Command> {
    let musl = musl_triple(target);
    let gnu = format!("{}-unknown-linux-gnu", target.rust_arch());
    let native = toolchain::native() == Some(target);
    let mut command = Command::new("cargo");
    command.arg("build");
    if rustup::target_installed(&config.root, &musl)? {
        command.args(["--target", &musl]);
        // This machine's `cc` links only its own architecture. rust-lld (shipped with rustc)
        // links the musl target's self-contained objects for any, unless a linker is set.
        if !native && !linker_configured(&config.root, &musl) {
            command.env(linker_var(&musl), "rust-lld");
        }
    } else if native && rustup::target_installed(&config.root, &gnu)? {
        // An explicit --target keeps +crt-static away from build scripts and proc-macros.
        let var = format!("CARGO_TARGET_{}_RUSTFLAGS", env_triple(&gnu));
        let flags = std::env::var(&var).map_or_else(
            |_| "-C target-feature=+crt-static".to_string(),
            |user| format!("{user} -C target-feature=+crt-static"),
        );
        command.env(var, flags).args(["--target", &gnu]);
    } else {
        anyhow::bail!(
            "the Rust target for {target} is not installed\n  \
             help: run `rustup target add {musl}` (a static musl build)"
        );
    }
    Ok(command)
}

fn zigbuild_command(config: &Config, target: Target) -> Result<Command> {
    if !toolchain::cargo_zigbuild() || toolchain::zig().is_none() {
        anyhow::bail!(
            "builder = \"zigbuild\" needs zig and cargo-zigbuild, and {} not installed\n  \
             help: install {INSTALL_ZIGBUILD}",
            if toolchain::cargo_zigbuild() {
                "zig is"
            } else {
                "cargo-zigbuild is"
            }
        );
    }
    let musl = musl_triple(target);
    if !rustup::target_installed(&config.root, &musl)? {
        anyhow::bail!(
            "the Rust target for {target} is not installed\n  help: run `rustup target add {musl}`"
        );
    }
    let mut command = Command::new("cargo");
    command.args(["zigbuild", "--target", &musl]);
    Ok(command)
}

fn env_triple(triple: &str) -> String {
    triple.to_uppercase().replace('-', "_")
}

fn linker_var(triple: &str) -> String {
    format!("CARGO_TARGET_{}_LINKER", env_triple(triple))
}

/// Whether the user chose a linker for `triple`: in the environment, or in a cargo config file
/// cargo reads for this project (its directory and the ones above it, then CARGO_HOME).
fn linker_configured(root: &Path, triple: &str) -> bool {
    if std::env::var_os(linker_var(triple)).is_some() {
        return true;
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let dirs = root
        .ancestors()
        .map(|dir| dir.join(".cargo"))
        .chain(cargo_home);
    dirs.flat_map(|dir| [dir.join("config.toml"), dir.join("config")])
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .filter_map(|text| text.parse::<toml::Table>().ok())
        .any(|config| {
            config
                .get("target")
                .and_then(|t| t.get(triple))
                .and_then(|t| t.get("linker"))
                .is_some()
        })
}

/// A build script's C compile that found no compiler, as cc-rs reports it.
#[derive(Debug, PartialEq, Eq)]
struct MissingCCompiler {
    /// The crate whose build script failed, e.g. "ring v0.17.8".
    krate: String,
    /// The compiler cc-rs looked for, e.g. "aarch64-linux-musl-gcc".
    tool: String,
}

impl MissingCCompiler {
    fn find(stderr: &str) -> Option<MissingCCompiler> {
        let krate = between(stderr, "failed to run custom build command for `", "`")?;
        let krate = krate.split(" (").next().unwrap_or(krate).to_string();
        // cc-rs 1.1+: failed to find tool "x": …; before: Failed to find tool. Is `x` installed?
        let tool = between(stderr, "failed to find tool \"", "\"")
            .or_else(|| between(stderr, "Failed to find tool. Is `", "`"))?;
        Some(MissingCCompiler {
            krate,
            tool: tool.to_string(),
        })
    }

    fn explain(&self, config: &Config, target: Target, zigbuild: bool) -> anyhow::Error {
        let triple = musl_triple(target);
        let native = toolchain::native() == Some(target);
        let musl_gcc = format!("musl-gcc: {}", toolchain::INSTALL_MUSL_GCC);
        let help = match (config.build.zig_fallback, zigbuild) {
            (false, true) if native => format!(
                "install {musl_gcc}; or set builder = \"zigbuild\" in shipit.toml (zig and \
                 cargo-zigbuild are installed)"
            ),
            (false, true) => {
                "set builder = \"zigbuild\" in shipit.toml (zig and cargo-zigbuild are \
                 installed)"
                    .to_string()
            }
            (false, false) if native => format!(
                "install {musl_gcc}; or install {INSTALL_ZIGBUILD} and set builder = \"zigbuild\""
            ),
            (false, false) => {
                format!("install {INSTALL_ZIGBUILD} and set builder = \"zigbuild\" in shipit.toml")
            }
            (true, _) => format!(
                "{}; shipit uses them when it finds them",
                toolchain::install_hint(target, true)
            ),
        };
        anyhow::anyhow!(
            "{} compiles C code in its build script, and there is no C compiler for {triple} here \
             (it looked for {})\n  help: {help}",
            self.krate,
            self.tool
        )
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

fn cross_command(config: &Config, target: Target) -> Result<Command> {
    let engine = container_engine().ok_or_else(|| {
        anyhow::anyhow!(
            "builder = \"cross\" needs a running container engine, and neither `docker info` nor \
             `podman info` answered\n  \
             help: start Docker (>= 20.10) or Podman (>= 3.4), or set builder = \"zigbuild\" (or \
             \"cargo\") in shipit.toml to build without a container"
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
        .arg(musl_triple(target));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_c_compiler_is_read_from_both_cc_rs_wordings() {
        let cargo = |cc_rs: &str| {
            format!(
                "   Compiling ring v0.17.8\nerror: failed to run custom build command for `ring \
                 v0.17.8 (/src/ring)`\n\nCaused by:\n  process didn't exit successfully\n  --- \
                 stderr\n\n  {cc_rs}\n"
            )
        };
        let expected = Some(MissingCCompiler {
            krate: "ring v0.17.8".into(),
            tool: "aarch64-linux-musl-gcc".into(),
        });
        let current = "error occurred in cc-rs: failed to find tool \"aarch64-linux-musl-gcc\": \
                       No such file or directory (os error 2)";
        assert_eq!(MissingCCompiler::find(&cargo(current)), expected);
        let older = "error occurred: Failed to find tool. Is `aarch64-linux-musl-gcc` installed?";
        assert_eq!(MissingCCompiler::find(&cargo(older)), expected);
        let other = "error: could not find system library 'openssl' required by openssl-sys";
        assert_eq!(MissingCCompiler::find(&cargo(other)), None);
    }

    #[test]
    fn a_linker_set_in_a_cargo_config_above_the_project_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("app");
        std::fs::create_dir_all(dir.path().join(".cargo")).unwrap();
        std::fs::create_dir(&project).unwrap();
        let triple = "aarch64-unknown-linux-musl";
        assert!(!linker_configured(&project, triple));
        std::fs::write(
            dir.path().join(".cargo/config.toml"),
            "[target.aarch64-unknown-linux-musl]\nlinker = \"aarch64-linux-musl-gcc\"\n",
        )
        .unwrap();
        assert!(linker_configured(&project, triple));
        assert!(!linker_configured(&project, "x86_64-unknown-linux-musl"));
    }
}
