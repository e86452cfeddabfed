//! `shipit deploy`: for each host, check → lock → upload → unpack, check and verify → switch →
//! health gate → (roll back) → record and prune → unlock; for several hosts, in parallel and in
//! batches. Nothing the running release depends on changes before the switch, and the switch
//! is one `mv -T` of a symlink.
//!
//! From the top: [`deploy`] (the entry point), [`dry_run`] and [`report`]; [`fleet`] (many
//! hosts: batches, canary, max-fail) over [`phases`] (one host: begin, transfer, activate,
//! finish), each made of [`crate::actions`]; at the bottom, what a deploy is asked
//! ([`request`]) and its hosts ([`targets`]).

pub mod deploy;
pub mod dry_run;
pub mod fleet;
pub mod phases;
pub mod report;
pub mod request;
pub mod targets;
#[cfg(test)]
mod tests;

pub use crate::actions::{ArmedPolicy, OnFailure};
pub use deploy::run;
pub use request::{Amount, Canary, Options, Request, Rollout};
