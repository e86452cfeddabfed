//! What `shipit generate` produces: files, written into `-o DIR` or printed, and project paths
//! as they are written in them.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::error::{Category, Tag};
use crate::ui::Ui;

/// One generated file: its name under `-o DIR`, and its text.
pub(super) struct Output {
    pub(super) name: String,
    pub(super) text: String,
}

/// Writes `files` into `dir` (created when missing), or prints `stdout`: results go to stdout,
/// the names of written files to stderr, as with `unit generate -o`.
pub(super) fn deliver(dir: Option<&Path>, files: &[&Output], stdout: &str, ui: &Ui) -> Result<()> {
    let Some(dir) = dir else {
        print!("{stdout}");
        return Ok(());
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .tag(Category::Usage)?;
    for file in files {
        let path = dir.join(&file.name);
        std::fs::write(&path, &file.text)
            .with_context(|| format!("cannot write {}", path.display()))
            .tag(Category::Usage)?;
        ui.status("Wrote", path.display());
    }
    Ok(())
}

/// A project path relative to its root (config paths are stored joined to the root).
pub(super) fn relative(config: &Config, path: &Path) -> String {
    path.strip_prefix(&config.root)
        .unwrap_or(path)
        .display()
        .to_string()
}
