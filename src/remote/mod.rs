//! The remote half: where a host is ([`destination`]), proving it is the host we know
//! ([`known_hosts`]) and talking to it ([`ssh`]), directly or through a bastion ([`proxy`]).
//! Deploy speaks to hosts only through [`Remote`], so the transport can be swapped and logic
//! tested without a network.

pub mod channel;
pub mod destination;
mod failure;
#[cfg(test)]
pub mod fake;
mod http;
pub mod known_hosts;
pub mod probe;
pub mod proxy;
pub mod ssh;
mod step;
mod transport;

pub use failure::{Exit, StepFailure, answer_to_result, with_help};
pub use step::{Answer, Effect, ExecOutput, Feed, Input, Kind, Step, When};
pub use transport::{HttpAnswer, Remote, TimeLimit, as_root, run_one};
