//! Build stage: turns a project into one static Linux executable, stamped with its version.
//!
//! The builder is chosen by the project (go.mod → Go, Cargo.toml → cargo, or cargo-zigbuild or
//! `cross` when configured); C code (cgo, crates' build scripts) is compiled against musl with
//! musl-gcc or zig. Whatever ran, the result is inspected as an ELF before anyone ships it.

mod cargo;
mod elf;
pub(crate) mod go;
mod query;
mod rustup;
mod stamp;
mod target;
mod toolchain;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::{Builder, Config};
use crate::error::{Category, Tag};
use crate::ui::Ui;

pub use stamp::Stamp;
pub use target::Target;

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
