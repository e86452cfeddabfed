//! What kind of project lives in a directory, and what it calls itself.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::names::AppName;

use anyhow::{Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Go,
    Rust,
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Language::Go => "Go",
            Language::Rust => "Rust",
        })
    }
}

#[derive(Debug)]
pub struct Detected {
    pub root: PathBuf,
    /// None when the directory holds neither go.mod nor Cargo.toml, or both.
    pub language: Option<Language>,
}

pub fn detect(root: &Path) -> Result<Detected> {
    let go = root.join("go.mod").is_file();
    let rust = root.join("Cargo.toml").is_file();
    let language = match (go, rust) {
        (true, false) => Some(Language::Go),
        (false, true) => Some(Language::Rust),
        _ => None,
    };
    Ok(Detected {
        root: root.to_path_buf(),
        language,
    })
}

impl Detected {
    /// The app name the project suggests: the last element of the Go module path, or the Cargo
    /// package name, turned into a valid app name.
    pub fn default_app_name(&self) -> Result<AppName> {
        let raw = match self.language {
            Some(Language::Go) => go_module_name(&self.root.join("go.mod"))?,
            Some(Language::Rust) => cargo_package_name(&self.root.join("Cargo.toml"))?,
            None => anyhow::bail!(
                "cannot tell the app name: {} has no go.mod or Cargo.toml",
                self.root.display()
            ),
        };
        AppName::parse(&sanitize_app_name(&raw)).map_err(anyhow::Error::msg)
    }
}

fn go_module_name(go_mod: &Path) -> Result<String> {
    let text = std::fs::read_to_string(go_mod)
        .with_context(|| format!("cannot read {}", go_mod.display()))?;
    let module = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("module "))
        .map(|m| m.trim().trim_matches('"'))
        .with_context(|| format!("{} has no module line", go_mod.display()))?;
    // A major-version suffix (example.com/app/v2) is not the app's name.
    let mut parts = module.rsplit('/');
    let last = parts.next().unwrap_or(module);
    let is_major =
        last.len() > 1 && last.starts_with('v') && last[1..].bytes().all(|b| b.is_ascii_digit());
    Ok(if is_major {
        parts.next().unwrap_or(last)
    } else {
        last
    }
    .to_string())
}

fn cargo_package_name(cargo_toml: &Path) -> Result<String> {
    let text = std::fs::read_to_string(cargo_toml)
        .with_context(|| format!("cannot read {}", cargo_toml.display()))?;
    let doc: toml::Table = toml::from_str(&text)
        .with_context(|| format!("{} is not valid TOML", cargo_toml.display()))?;
    doc.get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .with_context(|| format!("{} has no [package] name", cargo_toml.display()))
}

fn sanitize_app_name(raw: &str) -> String {
    let mapped: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| c == '-' || c.is_ascii_digit());
    trimmed
        .chars()
        .take(32)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_project_files() {
        assert_eq!(sanitize_app_name("Hello_World"), "hello-world");
        assert_eq!(sanitize_app_name("9lives"), "lives");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("go.mod"),
            "module example.com/my-svc/v2\n\ngo 1.19\n",
        )
        .unwrap();
        assert_eq!(
            detect(dir.path()).unwrap().default_app_name().unwrap(),
            "my-svc"
        );
    }
}
