//! `shipit lock status|release HOST`: who holds a host's deploy lock and which dead-man timers
//! are armed there; releasing a lock a dead deploy left (only the holder that was shown).

use anyhow::Result;

use crate::actions::{deadman, lock};
use crate::cancel::Cancel;
use crate::config::Config;
use crate::hosts::{self, Connection, Runner};
use crate::ui::Ui;

/// `shipit lock`, as the command line asked for it.
#[derive(Debug, Clone)]
pub struct Request {
    pub action: LockAction,
    pub host: String,
    pub connection: Connection,
}

/// What `shipit lock` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockAction {
    /// Show who holds the lock.
    Show,
    /// Remove a lock a dead deploy left.
    Release,
}

pub fn run(config: &Config, request: &Request, ui: &Ui) -> Result<()> {
    let host = &request.host;
    let (mut remote, layout) = hosts::open(config, host, &request.connection, ui)?;
    let mut runner = Runner::apply(remote.as_mut(), &Cancel::new());
    let status = lock::status(&mut runner, &layout)?;
    match (request.action, &status.lock) {
        (_, None) => println!("{host}: {} is not locked", layout.app),
        (LockAction::Show, Some(held)) => {
            println!(
                "{}: {} is locked by {}",
                host,
                layout.app,
                lock::describe(held)
            )
        }
        (LockAction::Release, Some(held)) => {
            if !lock::release_held(&mut runner, &layout, held)? {
                crate::fail!(
                    Locked,
                    "{}: the lock of {} changed hands since it was read; nothing was removed\n  \
                     help: look again with `shipit lock status {}`",
                    host,
                    lock::describe(held),
                    host
                );
            }
            println!("{}: released the lock of {}", host, lock::describe(held));
        }
    }
    for timer in &status.timers {
        println!(
            "{}: a dead-man timer is {}",
            host,
            deadman::describe(timer, status.now)
        );
    }
    Ok(())
}
