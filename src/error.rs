//! Exit codes and the error category that selects them.
//!
//! Errors travel as `anyhow::Error`; a stage that knows what kind of failure it hit tags it once
//! with [`Tag::tag`], and `main` turns the tag into the documented exit code.

use std::fmt;

/// The manual's exit-code page (docs/src/reference/exit-codes.md) is generated from [`Category::ALL`]
/// and [`Category::meaning`], and a test fails when it falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Bad command line, shipit.toml or user-supplied value. Nothing was run.
    Usage = 2,
    /// The build, the static-binary check or packaging failed.
    Build = 3,
    /// Could not connect or authenticate to a host, or its host key was refused.
    Connect = 4,
    /// A command on the host failed.
    Remote = 5,
    /// The new release failed its health gate and the previous release was restored.
    RolledBack = 6,
    /// The new release failed and restoring the previous release failed too.
    RollbackFailed = 7,
    /// Another deploy holds the lock for this app on the host.
    Locked = 8,
    /// The new release failed its pre-flight on a scratch socket: it never took traffic and
    /// nothing was switched.
    Preflight = 9,
    /// A hook before the switch (`before_switch` on a host, or `local_before` here) failed; no
    /// host was switched.
    Hook = 10,
    /// Stopped by Ctrl-C or SIGTERM; the host was left on its previous release.
    Interrupted = 130,
}

/// The exit code of an error no category claims: a bug in shipit, never a user's mistake.
pub const EXIT_INTERNAL: u8 = 1;

impl Category {
    /// Every category, in the order of their exit codes.
    pub const ALL: [Category; 10] = [
        Category::Usage,
        Category::Build,
        Category::Connect,
        Category::Remote,
        Category::RolledBack,
        Category::RollbackFailed,
        Category::Locked,
        Category::Preflight,
        Category::Hook,
        Category::Interrupted,
    ];

    pub fn exit_code(self) -> u8 {
        self as u8
    }

    /// What the exit code tells the person or script that ran shipit, in one line.
    pub fn meaning(self) -> &'static str {
        match self {
            Category::Usage => {
                "usage: bad command line, shipit.toml, template or value, or a host shipit cannot \
                 deploy to (no systemd, another architecture); nothing was run"
            }
            Category::Build => {
                "build: the compiler failed, the binary is not static, or packaging failed"
            }
            Category::Connect => {
                "connection: a host could not be reached or authenticated, or its host key was \
                 refused"
            }
            Category::Remote => {
                "remote: a command on a host failed, or the host has no room for the release"
            }
            Category::RolledBack => {
                "rolled back: the new release failed its health check and the previous one was \
                 restored"
            }
            Category::RollbackFailed => {
                "rollback failed: the new release failed and the previous one could not be \
                 restored"
            }
            Category::Locked => {
                "locked: another deploy of this app holds the host's lock, or its dead-man timer \
                 is armed there"
            }
            Category::Preflight => {
                "failed pre-flight: the new release crashed, hung or answered unhealthy on a \
                 scratch socket before the switch; nothing was switched"
            }
            Category::Hook => {
                "a hook before the switch failed (`before_switch` on a host, or `local_before`): \
                 no host was switched"
            }
            Category::Interrupted => {
                "interrupted by Ctrl-C or SIGTERM; the host runs the release it had"
            }
        }
    }
}

/// An error carrying its category. Display and source pass through to the wrapped error so the
/// tag never shows up in messages.
#[derive(Debug)]
pub struct Tagged {
    pub category: Category,
    inner: anyhow::Error,
}

impl fmt::Display for Tagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for Tagged {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source()
    }
}

pub trait Tag<T> {
    fn tag(self, category: Category) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> Tag<T> for Result<T, E> {
    fn tag(self, category: Category) -> anyhow::Result<T> {
        self.map_err(|e| tagged(category, e.into()))
    }
}

pub fn tagged(category: Category, inner: anyhow::Error) -> anyhow::Error {
    if category_of(&inner).is_some() {
        return inner;
    }
    anyhow::Error::new(Tagged { category, inner })
}

/// The innermost-added tag wins: the stage closest to the failure knows best what it was.
pub fn category_of(err: &anyhow::Error) -> Option<Category> {
    err.chain()
        .filter_map(|e| e.downcast_ref::<Tagged>())
        .map(|t| t.category)
        .last()
}

/// Finds an error of type `T` anywhere in the chain, looking inside tags too.
pub fn find<T>(err: &anyhow::Error) -> Option<&T>
where
    T: std::fmt::Display + std::fmt::Debug + Send + Sync + 'static,
{
    err.downcast_ref::<T>().or_else(|| {
        err.chain()
            .filter_map(|e| e.downcast_ref::<Tagged>())
            .find_map(|t| find::<T>(&t.inner))
    })
}

/// [`find`], for changing the error found (adding a `help:` line, say).
pub fn find_mut<T>(err: &mut anyhow::Error) -> Option<&mut T>
where
    T: std::fmt::Display + std::fmt::Debug + Send + Sync + 'static,
{
    if err.downcast_ref::<T>().is_some() {
        return err.downcast_mut::<T>();
    }
    let tagged = err.downcast_mut::<Tagged>()?;
    find_mut::<T>(&mut tagged.inner)
}

/// A remote command's own exit status, which shipit exits with (`exec` on one host): the
/// command has said what it had to say, so nothing more is printed.
#[derive(Debug)]
pub struct PassThrough(pub u8);

impl fmt::Display for PassThrough {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the command exited with status {}", self.0)
    }
}

impl std::error::Error for PassThrough {}

/// `bail!` with a category.
#[macro_export]
macro_rules! fail {
    ($cat:ident, $($arg:tt)*) => {
        return Err($crate::error::tagged($crate::error::Category::$cat, anyhow::anyhow!($($arg)*)))
    };
}

/// Prints an error the way cargo does: the top message, then each cause on its own line.
pub fn report(err: &anyhow::Error) {
    let mut causes = err.chain().map(|c| c.to_string()).collect::<Vec<_>>();
    causes.dedup();
    let mut lines = causes.into_iter();
    if let Some(first) = lines.next() {
        eprintln!("error: {first}");
    }
    for cause in lines {
        eprintln!("\nCaused by:\n{}", indent(&cause, "  "));
    }
}

/// Indents every line of `text` by `by`, for nested output.
pub fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn all_lists_every_category_once_by_exit_code() {
        // Exhaustive on purpose: a new category stops this from compiling until it is placed.
        let position = |category: Category| match category {
            Category::Usage => 0,
            Category::Build => 1,
            Category::Connect => 2,
            Category::Remote => 3,
            Category::RolledBack => 4,
            Category::RollbackFailed => 5,
            Category::Locked => 6,
            Category::Preflight => 7,
            Category::Hook => 8,
            Category::Interrupted => 9,
        };
        for (i, category) in Category::ALL.into_iter().enumerate() {
            assert_eq!(position(category), i, "{category:?}");
        }
        assert!(
            Category::ALL
                .windows(2)
                .all(|w| w[0].exit_code() < w[1].exit_code())
        );
    }

    #[test]
    fn innermost_tag_decides_the_exit_code() {
        let err: anyhow::Result<()> = Err(anyhow::anyhow!("ssh refused")).tag(Category::Connect);
        let err = err
            .context("deploying to web1")
            .tag(Category::Remote)
            .unwrap_err();
        assert_eq!(category_of(&err), Some(Category::Connect));
        assert_eq!(format!("{err:#}"), "deploying to web1: ssh refused");
    }
}
