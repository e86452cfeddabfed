//! `shipit deploy`: for each host, check → lock → upload → unpack, check and verify → switch →
//! health gate → (roll back) → record and prune → unlock; for several hosts, in parallel and in
//! batches. Nothing the running release depends on changes before the switch, and the switch
//! is one `mv -T` of a symlink.
//!
//! The rooms, from the top: [`deploy`] (the entry point), [`dry_run`] and [`report`]; [`fleet`]
//! (many hosts: batches, canary, max-fail) over [`phases`] (one host: begin, transfer,
//! activate, finish); the parts a phase is made of — [`lock`], [`deadman`], [`health`],
//! [`preflight`], [`hooks`] — and the host scripts they send ([`survey`], [`upload`],
//! [`release`], [`switch`]); at the bottom, what a deploy is asked ([`request`]) and its hosts
//! ([`targets`]). What every command knows of a host (its releases, its deploy log, the check)
//! is in [`crate::hosts`].

pub mod deadman;
pub mod deploy;
pub mod dry_run;
pub mod fleet;
pub mod health;
pub mod hooks;
pub mod lock;
pub mod phases;
pub mod preflight;
pub mod release;
pub mod report;
pub mod request;
pub mod survey;
pub mod switch;
pub mod targets;
#[cfg(test)]
mod tests;
pub mod upload;

pub use deploy::run;
pub use request::{Amount, ArmedPolicy, Canary, OnFailure, Options, Request, Rollout};
