//! `[build]`: which builder, and what it stamps the version and build time into.

use std::path::Path;

use anyhow::Result;
use toml::Spanned;

use super::model::{Build, Builder, CCompiler, Cgo};
use super::raw::RawBuild;
use super::source::{Source, choice, string_or};
use crate::project::Language;
use crate::validate::{validate_env_key, validate_relative_path};

pub(super) fn parse_build(
    src: &Source,
    raw: RawBuild,
    detected: Option<Language>,
) -> Result<Build> {
    let builder = match &raw.builder {
        Some(b) => {
            let builder = choice(src, b, "builder", &Builder::NAMES)?;
            if let Some(lang) = detected.filter(|l| *l != builder.language()) {
                return Err(src.error(
                    &b.span(),
                    format!("builder {:?} cannot build this {lang} project", b.get_ref()),
                ));
            }
            builder
        }
        None => match detected {
            Some(Language::Go) => Builder::Go,
            Some(Language::Rust) => Builder::Cargo,
            None => crate::fail!(
                Usage,
                "no go.mod or Cargo.toml in {}: shipit builds Go and Rust projects\n  \
                 help: run shipit in the project directory or pass --path DIR",
                src.path.parent().unwrap_or(Path::new(".")).display()
            ),
        },
    };
    let go_only = |value: &Option<Spanned<String>>, key: &str| match value {
        Some(v) if builder != Builder::Go => Err(src.error(
            &v.span(),
            format!(
                "{key} is for Go's cgo; a Rust project's C code is built by its builder\n  \
                 help: remove it, or set builder = \"zigbuild\" to compile C with zig"
            ),
        )),
        _ => Ok(()),
    };
    go_only(&raw.cgo, "cgo")?;
    go_only(&raw.cc, "cc")?;
    let cgo = raw
        .cgo
        .as_ref()
        .map_or(Ok(Cgo::Auto), |v| choice(src, v, "cgo", &Cgo::NAMES))?;
    let cc = raw.cc.as_ref().map_or(Ok(CCompiler::Auto), |v| {
        choice(src, v, "cc", &CCompiler::NAMES)
    })?;
    Ok(Build {
        builder,
        zig_fallback: raw.builder.is_none() && builder == Builder::Cargo,
        cgo,
        cc,
        go_package: string_or(src, raw.go_package, ".", validate_go_package)?,
        version_var: string_or(src, raw.version_var, "main.version", validate_go_symbol)?,
        build_time_var: string_or(
            src,
            raw.build_time_var,
            "main.buildTime",
            validate_go_symbol,
        )?,
        cargo_bin: raw
            .cargo_bin
            .map(|b| src.check(&b, |s| validate_word(s)).map(|_| b.into_inner()))
            .transpose()?,
        cargo_features: raw
            .cargo_features
            .into_iter()
            .map(|f| src.check(&f, |s| validate_word(s)).map(|_| f.into_inner()))
            .collect::<Result<_>>()?,
        version_env: string_or(src, raw.version_env, "SHIPIT_VERSION", validate_env_key)?,
        build_time_env: string_or(
            src,
            raw.build_time_env,
            "SHIPIT_BUILD_TIME",
            validate_env_key,
        )?,
    })
}

fn validate_go_symbol(symbol: &str) -> Result<(), String> {
    let ok = symbol.contains('.')
        && !symbol.starts_with('.')
        && !symbol.ends_with('.')
        && symbol
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{symbol:?} is not a Go variable for -X (like main.version or example.com/app/buildinfo.Version)"
        ))
    }
}

fn validate_go_package(package: &str) -> Result<(), String> {
    if package == "." {
        return Ok(());
    }
    let path = package.strip_prefix("./").unwrap_or(package);
    validate_relative_path(path).map_err(|why| format!("go_package: {why} (like \"./cmd/server\")"))
}

fn validate_word(word: &str) -> Result<(), String> {
    let ok = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{word:?}: use letters, digits, '_', '-' and '/'"))
    }
}
