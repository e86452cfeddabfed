//! What shipit does on one host, each a typed host script or a short run of them, from which a
//! rollout, a rollback and the dead-man timer are made: take the deploy [`lock`], [`survey`]
//! the host, [`upload`] the package, unpack and verify the [`release`], run it once on a
//! scratch socket ([`preflight`]), [`switch`] to it, hold the [`health`] gate, arm and disarm
//! the dead-man timer ([`deadman`]), run [`hooks`], and put the host back when a release fails
//! ([`recover`]).

pub mod check;
pub mod deadman;
pub mod health;
pub mod hooks;
pub mod lock;
pub mod preflight;
pub mod recover;
pub mod release;
pub mod survey;
pub mod switch;
pub mod upload;

pub use lock::ArmedPolicy;
pub use recover::OnFailure;
