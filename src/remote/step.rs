//! A step: one script for the host's shell, with what it is ([`Kind`]), its input and how it
//! relates to the step before it. Batches of steps are what [`Remote::run`](super::Remote::run)
//! sends in one round trip.

use std::io::Read;
use std::time::Duration;

/// Every script shipit runs on a host, by what it does. Progress, plans, errors and timings name
/// a step by its kind, and the fake host of the unit tests answers by it, so wording a message
/// differently never changes what a test fakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Check,
    Lock,
    Survey,
    Upload,
    Release,
    Preflight,
    Arm,
    Switch,
    UnitState,
    Mark,
    Stop,
    Journal,
    Finish,
    Log,
    Unlock,
    RemoveLock,
    LockStatus,
    Disarm,
    Releases,
    LogRead,
    Socket,
    Installed,
    Deployed,
    /// What `shipit diff` compares with shipit.toml.
    Drift,
    Probe,
    /// A `[hooks]` command, streamed as it runs ([`Remote::exec_streaming`](super::Remote)).
    Hook,
}

impl Kind {
    /// Every kind, in the order above (a new kind goes here too: the test that shellchecks
    /// every host script walks this list).
    pub const ALL: [Kind; 26] = [
        Kind::Check,
        Kind::Lock,
        Kind::Survey,
        Kind::Upload,
        Kind::Release,
        Kind::Preflight,
        Kind::Arm,
        Kind::Switch,
        Kind::UnitState,
        Kind::Mark,
        Kind::Stop,
        Kind::Journal,
        Kind::Finish,
        Kind::Log,
        Kind::Unlock,
        Kind::RemoveLock,
        Kind::LockStatus,
        Kind::Disarm,
        Kind::Releases,
        Kind::LogRead,
        Kind::Socket,
        Kind::Installed,
        Kind::Deployed,
        Kind::Drift,
        Kind::Probe,
        Kind::Hook,
    ];

    /// What the step does, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Check => "checking the host",
            Kind::Lock => "taking the deploy lock",
            Kind::Survey => "looking at the host's releases, uploads and free space",
            Kind::Upload => "uploading the package",
            Kind::Release => {
                "unpacking the release, creating the service user and verifying the unit"
            }
            Kind::Preflight => "running the new release on a scratch socket (pre-flight)",
            Kind::Arm => "arming the dead-man timer",
            Kind::Switch => "switching and restarting the service",
            Kind::UnitState => "reading the unit state",
            Kind::Mark => "recording the release outcome",
            Kind::Stop => "stopping the failed release",
            Kind::Journal => "reading the journal",
            Kind::Finish => "recording the release as good and pruning old releases",
            Kind::Log => "recording the deploy in the host's log",
            Kind::Unlock => "releasing the deploy lock",
            Kind::RemoveLock => "removing the deploy lock",
            Kind::LockStatus => "reading the deploy lock",
            Kind::Disarm => "disarming the dead-man timer",
            Kind::Releases => "listing releases",
            Kind::LogRead => "reading the host's deploy log",
            Kind::Socket => "reading the socket unit",
            Kind::Installed => "reading the installed unit and binary",
            Kind::Deployed => "reading the deployed release",
            Kind::Drift => "reading the installed units, env file and files",
            Kind::Probe => "running the health check from the host",
            Kind::Hook => "running a hook",
        }
    }

    /// Whether the step changes the host; a dry run runs only those that read.
    pub fn effect(self) -> Effect {
        match self {
            Kind::Check
            | Kind::Survey
            | Kind::UnitState
            | Kind::Journal
            | Kind::LockStatus
            | Kind::Releases
            | Kind::LogRead
            | Kind::Socket
            | Kind::Installed
            | Kind::Deployed
            | Kind::Drift
            | Kind::Probe => Effect::Reads,
            _ => Effect::Changes,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.describe())
    }
}

/// Whether a step depends on the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Only when the step before it succeeded (the first step of a batch always runs).
    AfterSuccess,
    /// Whatever happened before (releasing a lock).
    Always,
}

/// Whether a step only reads the host; a dry run runs those and records the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Reads,
    Changes,
}

/// Data a step reads on stdin, kept out of its script: secrets, the package.
pub struct Input<'a> {
    pub data: Box<dyn Read + 'a>,
    pub len: u64,
    /// What the data is, for a dry run's plan: never the data itself.
    pub what: String,
    /// Told how many bytes have been sent so far.
    pub progress: Box<dyn Fn(u64) + 'a>,
}

/// How a step's input reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Through a pipe holding exactly its input: the step may read it or not.
    Relay,
    /// The step reads exactly `$input` bytes from the shell's own stdin (bulk data: one copy
    /// fewer on the host). If it fails, the shell cannot tell where the next step starts, so it
    /// ends after answering, and the steps after it in the batch count as skipped.
    Direct,
}

/// One script for the host's shell, with its preamble of values.
pub struct Step<'a> {
    pub kind: Kind,
    pub script: String,
    pub input: Option<Input<'a>>,
    pub feed: Feed,
    pub when: When,
}

impl<'a> Step<'a> {
    pub fn new(kind: Kind, script: String) -> Step<'a> {
        Step {
            kind,
            script,
            input: None,
            feed: Feed::Relay,
            when: When::AfterSuccess,
        }
    }

    pub fn effect(&self) -> Effect {
        self.kind.effect()
    }

    pub fn with_input(mut self, input: Input<'a>) -> Step<'a> {
        self.input = Some(input);
        self
    }

    /// Bulk input, read by the step itself (see [`Feed::Direct`]).
    pub fn with_direct_input(mut self, input: Input<'a>) -> Step<'a> {
        self.input = Some(input);
        self.feed = Feed::Direct;
        self
    }

    pub fn always(mut self) -> Step<'a> {
        self.when = When::Always;
        self
    }
}

/// What a finished remote command left behind.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub status: i32,
    /// Set when the command was killed by a signal (its status then reads 0).
    pub signal: Option<String>,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == 0 && self.signal.is_none()
    }
}

/// What became of one step of a batch.
#[derive(Debug, Clone)]
pub enum Answer {
    /// It ran; `after` is how long after the batch was sent its answer came.
    Ran { output: ExecOutput, after: Duration },
    /// A step before it failed.
    Skipped,
}
