//! `[app]`: the name (or the one the project's go.mod or Cargo.toml gives) and the version.

use anyhow::{Context, Result};

use super::model::{App, VersionSource};
use super::raw::RawApp;
use super::source::Source;
use crate::names::AppName;
use crate::project::Detected;
use crate::validate::{validate_app_name, validate_version};

pub(super) fn parse_app(src: &Source, raw: Option<RawApp>, detected: &Detected) -> Result<App> {
    let (name, version) = raw.map_or((None, None), |app| (app.name, app.version));
    let name = match name {
        Some(name) => {
            src.check(&name, |n| validate_app_name(n))?;
            AppName::parse(name.get_ref()).map_err(anyhow::Error::msg)?
        }
        None => detected.default_app_name().with_context(|| {
            format!(
                "set [app] name in {} (run `shipit init` to write one)",
                src.path.display()
            )
        })?,
    };
    let version = match version {
        None => VersionSource::Git,
        Some(v) if v.get_ref() == "git" => VersionSource::Git,
        Some(v) => {
            src.check(&v, |v| validate_version(v))?;
            VersionSource::Literal(v.into_inner())
        }
    };
    Ok(App { name, version })
}

#[cfg(test)]
mod tests {
    use crate::validate::validate_app_name;

    #[test]
    fn app_names() {
        for ok in ["hello", "hello-go", "a1", "x"] {
            assert!(validate_app_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a;rm -rf /",
            "../x",
            "Hello",
            "1app",
            "app-",
            "a b",
            &"a".repeat(33),
        ] {
            assert!(validate_app_name(bad).is_err(), "{bad}");
        }
    }
}
