//! Ctrl-C and SIGTERM: the first one asks the running deploy to stop at a safe point (releasing
//! its lock, rolling back if it had already switched); a second one exits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use crate::error::{Category, tagged};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handlers; call once before the first remote step.
pub fn install() -> Result<()> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal: set means second.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&flag))?;
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            signal_hook::low_level::register(signal, || REQUESTED.store(true, Ordering::SeqCst))?;
        }
    }
    Ok(())
}

/// As a first Ctrl-C does (for tests of what happens then).
#[cfg(test)]
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Forgets a requested interruption (between tests).
#[cfg(test)]
pub fn reset() {
    REQUESTED.store(false, Ordering::SeqCst);
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Fails with the interruption when one was requested.
pub fn check() -> Result<()> {
    if requested() {
        Err(interrupted())
    } else {
        Ok(())
    }
}

pub fn interrupted() -> anyhow::Error {
    tagged(Category::Interrupted, anyhow::anyhow!("interrupted"))
}

/// A reader that stops with an error once an interruption is requested (for uploads).
pub struct Interruptible<R>(pub R);

impl<R: std::io::Read> std::io::Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if requested() {
            return Err(std::io::Error::other("interrupted by a signal"));
        }
        self.0.read(buf)
    }
}
