//! Ctrl-C and SIGTERM, as a token the work is handed: the first signal asks the running command
//! to stop at a safe point (a deploy releases its lock, and rolls back if it had already
//! switched); a Ctrl-C after that exits at once. A SIGTERM never does: CI runners send one after
//! their own first signal (GitHub: SIGINT, then SIGTERM 7.5 s later, then SIGKILL), and that
//! must not cut short the rollback and unlock the first one started. The work never reads a
//! process-wide flag, so tests each hand their rollout a token of their own and run side by side.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use crate::error::{Category, tagged};

/// Whether the command was asked to stop. Clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token only [`Cancel::request`] sets.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// A token the first SIGINT or SIGTERM sets; a SIGINT after either exits with status 130.
    /// Call once per command, where stopping becomes something to do cleanly.
    pub fn on_signals() -> Result<Cancel> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let cancel = Cancel::new();
        // Registered first, so it sees `cancel` as it was before this signal: set means second.
        signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&cancel.0))?;
        for signal in [SIGINT, SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&cancel.0))?;
        }
        Ok(cancel)
    }

    /// As a first Ctrl-C does.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Fails with the interruption when one was requested.
    pub fn check(&self) -> Result<()> {
        if self.requested() {
            Err(interrupted())
        } else {
            Ok(())
        }
    }

    /// `reader`, stopping with an error once a stop is requested (for uploads).
    pub fn reader<R>(&self, reader: R) -> Interruptible<R> {
        Interruptible {
            reader,
            cancel: self.clone(),
        }
    }
}

pub fn interrupted() -> anyhow::Error {
    tagged(Category::Interrupted, anyhow::anyhow!("interrupted"))
}

/// The error an [`Interruptible`] reader stops with.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by a signal")]
pub struct Stopped;

/// An I/O error as the command's error: the interruption when a reader stopped for it.
pub fn read_error(error: std::io::Error) -> anyhow::Error {
    if error.get_ref().is_some_and(|e| e.is::<Stopped>()) {
        interrupted()
    } else {
        anyhow::Error::new(error)
    }
}

/// A reader that stops with [`Stopped`] once its token is set.
pub struct Interruptible<R> {
    reader: R,
    cancel: Cancel,
}

impl<R: std::io::Read> std::io::Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.requested() {
            return Err(std::io::Error::other(Stopped));
        }
        self.reader.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn a_reader_stops_once_its_token_is_set_and_says_it_was_interrupted() {
        let cancel = Cancel::new();
        let mut reader = cancel.reader(&b"abcdef"[..]);
        let mut two = [0u8; 2];
        reader.read_exact(&mut two).unwrap();
        cancel.clone().request();
        let error = reader.read(&mut two).unwrap_err();
        let said = read_error(error);
        assert_eq!(
            crate::error::category_of(&said),
            Some(Category::Interrupted)
        );
        let other = read_error(std::io::Error::other("disk on fire"));
        assert_eq!(crate::error::category_of(&other), None);
    }
}
