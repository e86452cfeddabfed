//! Build stage: turns a project into one static Linux executable, stamped with its version.
//!
//! The builder is chosen by the project (go.mod → Go, Cargo.toml → cargo, or cargo-zigbuild or
//! `cross` when configured); C code (cgo, crates' build scripts) is compiled against musl with
//! musl-gcc or zig. Whatever ran, the result is inspected as an ELF before anyone ships it.

mod cargo;
mod elf;
pub(crate) mod go;
mod stamp;
mod toolchain;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::config::{Builder, Config};
use crate::error::{Category, Tag};
use crate::ui::Ui;

pub use stamp::Stamp;

/// The Linux platforms shipit builds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    LinuxAmd64,
    LinuxArm64,
}

impl Target {
    pub const ALL: [Target; 2] = [Target::LinuxAmd64, Target::LinuxArm64];

    pub fn parse(name: &str) -> Result<Target> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                let valid = Target::ALL.map(Target::name).join(", ");
                anyhow::anyhow!("unknown target {name:?}: valid targets are {valid}")
            })
            .tag(Category::Usage)
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::LinuxAmd64 => "linux-amd64",
            Target::LinuxArm64 => "linux-arm64",
        }
    }

    fn goarch(self) -> &'static str {
        match self {
            Target::LinuxAmd64 => "amd64",
            Target::LinuxArm64 => "arm64",
        }
    }

    fn rust_arch(self) -> &'static str {
        match self {
            Target::LinuxAmd64 => "x86_64",
            Target::LinuxArm64 => "aarch64",
        }
    }

    fn elf_machine(self) -> u16 {
        match self {
            Target::LinuxAmd64 => goblin::elf::header::EM_X86_64,
            Target::LinuxArm64 => goblin::elf::header::EM_AARCH64,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A built, checked executable and what it was stamped with.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub path: PathBuf,
    pub target: Target,
    pub stamp: Stamp,
    /// What built it, for the manifest: "go", "go (cgo, zig)", "cargo", "zigbuild", "cross".
    pub builder: String,
}

/// Builds `config`'s project for `target` into `work_dir` and proves the result is static.
pub fn build(
    config: &Config,
    target: Target,
    version_override: Option<&str>,
    work_dir: &Path,
    ui: &Ui,
) -> Result<Artifact> {
    let stamp = Stamp::resolve(config, version_override)?;
    ui.status(
        "Building",
        format_args!(
            "{} {} ({}, {target})",
            config.app.name, stamp.version, config.build.builder
        ),
    );
    let spinner = ui.spinner(format!(
        "building {} with {}",
        config.app.name, config.build.builder
    ));
    let built = match config.build.builder {
        Builder::Go => go::build(config, target, &stamp, work_dir, ui),
        Builder::Cargo | Builder::Zigbuild | Builder::Cross => {
            cargo::build(config, target, &stamp, ui)
        }
    };
    spinner.finish_and_clear();
    let (path, builder) = built.tag(Category::Build)?;
    elf::check_static(&path, target, config.build.builder).tag(Category::Build)?;
    Ok(Artifact {
        path,
        target,
        stamp,
        builder,
    })
}

/// The output of a command that must succeed, as trimmed text; None when it cannot run or fails.
fn capture(dir: &Path, program: &str, args: &[&str]) -> Option<String> {
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

fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_list_valid_names_on_error() {
        assert_eq!(Target::parse("linux-arm64").unwrap(), Target::LinuxArm64);
        let err = Target::parse("windows-amd64").unwrap_err();
        assert_eq!(crate::error::category_of(&err), Some(Category::Usage));
        assert!(
            err.to_string().contains("linux-amd64, linux-arm64"),
            "{err}"
        );
    }
}
