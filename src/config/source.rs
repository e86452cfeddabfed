//! Where a value was written, so every section's errors point at file:line:col, and the readers
//! several sections share.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use anyhow::Result;
use toml::Spanned;

use super::model::Argv;
use super::raw::RawArgv;
use crate::error::Category;
use crate::validate::validate_line;

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

/// A command as words, run without a shell: a program first (no `$`, which systemd would
/// expand in a hook's program name), and no word with a newline or NUL.
pub(super) fn parse_argv(src: &Source, raw: RawArgv, key: &str) -> Result<Argv> {
    let location = src.location(&raw.span());
    let program = raw.get_ref().first().map(|p| p.get_ref().as_str());
    if program.is_none_or(|p| p.is_empty() || p.contains('$')) {
        return Err(src.error(
            &raw.span(),
            format!(
                "{key} needs a program and its arguments, like [\"./app\", \"migrate\"] (no \
                 shell: for one, write [\"sh\", \"-c\", \"…\"]; no `$` in the program's name)"
            ),
        ));
    }
    let mut words = Vec::new();
    for word in raw.into_inner() {
        src.check(&word, |w| validate_line(w, &format!("a word of {key}")))?;
        words.push(word.into_inner());
    }
    Ok(Argv { words, location })
}
