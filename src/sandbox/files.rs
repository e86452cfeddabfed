//! Files in the state and cache directories: locked, replaced whole, removed.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};

/// An exclusive lock that lasts as long as the returned file is open.
pub(super) fn lock_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot lock {}", path.display()));
    }
    Ok(file)
}

/// Replaces a file whole, so a reader never sees half of it.
pub(super) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let temp = path.with_extension("tmp");
    fs::write(&temp, contents)
        .and_then(|()| fs::rename(&temp, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Removes a directory and everything in it; one already gone is fine.
pub(super) fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}
