//! The host's scripts as types. A script is shell in `.sh` files, embedded; a type of each
//! script carries its inputs as fields, which reach the host only as a preamble of quoted
//! variables — the layout's paths, the exit statuses it may end with ([`Exit`]), then its own
//! values — followed by its body (shared functions first), so no value is ever spliced into
//! shell code. Its answer is read by one function beside the type. Each file starts with a
//! header comment for its reader, and `: "${name:?}"` lines naming what it needs: shellcheck
//! checks the files in CI, and a unit test checks every script as a host gets it.

use std::borrow::Cow;

use super::layout::Layout;
use crate::remote::{Exit, Kind, Step};
use crate::shell::{quote, without_header};

/// Functions several scripts share.
pub const LIB: &str = include_str!("scripts/lib.sh");

/// One script of the host's shell: its [`Kind`], its values and its body.
pub trait Script {
    /// Which step it is.
    fn kind(&self) -> Kind;

    /// Its own values: `name=value` lines of its preamble.
    fn values(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// What follows the preamble: its files (the shared ones first), and any functions made
    /// for it.
    fn body(&self) -> Vec<Cow<'static, str>>;

    /// The script as the host's shell gets it.
    fn assemble(&self, layout: &Layout) -> String {
        assemble(layout, &self.values(), &self.body())
    }

    /// The script as a step, for a batch.
    fn step<'a>(&self, layout: &Layout) -> Step<'a> {
        Step::new(self.kind(), self.assemble(layout))
    }
}

/// `set -eu`, the preamble, then `files` (each without its header comment, which is for the
/// reader of the file: plans stay short).
pub fn assemble(layout: &Layout, values: &[(&str, String)], files: &[Cow<'_, str>]) -> String {
    let mut script = format!("set -eu\n{}{}", layout.shell_vars(), Exit::shell_vars());
    for (name, value) in values {
        script.push_str(&format!("{name}={}\n", quote(value)));
    }
    for file in files {
        script.push_str(&without_header(file));
    }
    script
}

/// Whether a line is part of the preamble every script repeats (plans leave it out).
pub fn is_preamble(line: &str) -> bool {
    line == "set -eu"
        || line.split_once('=').is_some_and(|(k, v)| {
            super::layout::VARIABLES.contains(&k)
                || Exit::shell_vars().contains(&format!("{k}={v}\n"))
        })
}
