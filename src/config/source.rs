//! Where a value was written, so every section's errors point at file:line:col, and the readers
//! several sections share.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use anyhow::Result;
use toml::Spanned;

use crate::error::Category;

/// Where a value came from, for error messages.
pub(super) struct Source<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl Source<'_> {
    pub(super) fn location(&self, span: &Range<usize>) -> String {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("{}:{line}:{col}", self.path.display())
    }

    pub(super) fn error(&self, span: &Range<usize>, message: impl fmt::Display) -> anyhow::Error {
        crate::error::tagged(
            Category::Usage,
            anyhow::anyhow!("{}: {message}", self.location(span)),
        )
    }

    pub(super) fn check<T>(
        &self,
        value: &Spanned<T>,
        check: impl FnOnce(&T) -> Result<(), String>,
    ) -> Result<()> {
        check(value.get_ref()).map_err(|why| self.error(&value.span(), why))
    }
}

/// One of `names`, or an error at the value listing them.
pub(super) fn choice<T: Copy>(
    src: &Source,
    value: &Spanned<String>,
    key: &str,
    names: &[(&str, T)],
) -> Result<T> {
    names
        .iter()
        .find(|(name, _)| name == value.get_ref())
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let valid: Vec<String> = names.iter().map(|(n, _)| format!("{n:?}")).collect();
            src.error(
                &value.span(),
                format!(
                    "unknown {key} {:?}: use {}",
                    value.get_ref(),
                    valid.join(", ")
                ),
            )
        })
}

pub(super) fn string_or(
    src: &Source,
    value: Option<Spanned<String>>,
    default: &str,
    check: fn(&str) -> Result<(), String>,
) -> Result<String> {
    match value {
        Some(v) => {
            src.check(&v, |s| check(s))?;
            Ok(v.into_inner())
        }
        None => Ok(default.to_string()),
    }
}
