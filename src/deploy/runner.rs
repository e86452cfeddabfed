//! Runs deploy steps for real, or — with `--dry-run` — records what they would run.
//!
//! Steps say whether a script only reads the host ([`Runner::query`], always run, so the plan
//! shows real differences) or changes it ([`Runner::change`], recorded in a dry run).
//! Data sent on stdin appears in a plan only as a description, so secrets never show.

use std::io::Read;

use anyhow::Result;

use crate::interrupt;
use crate::remote::{self, Remote};

pub struct Runner<'a> {
    pub remote: &'a mut dyn Remote,
    plan: Option<Vec<String>>,
    /// Set once a deploy is winding down (unlocking, rolling back): a Ctrl-C must not stop that.
    cleaning_up: bool,
}

impl<'a> Runner<'a> {
    pub fn apply(remote: &'a mut dyn Remote) -> Self {
        Runner {
            remote,
            plan: None,
            cleaning_up: false,
        }
    }

    pub fn dry_run(remote: &'a mut dyn Remote) -> Self {
        Runner {
            remote,
            plan: Some(Vec::new()),
            cleaning_up: false,
        }
    }

    /// From here on, steps run even after a Ctrl-C.
    pub fn clean_up(&mut self) {
        self.cleaning_up = true;
    }

    fn check_interrupt(&self) -> Result<()> {
        if self.cleaning_up {
            Ok(())
        } else {
            interrupt::check()
        }
    }

    pub fn is_dry_run(&self) -> bool {
        self.plan.is_some()
    }

    pub fn label(&self) -> String {
        self.remote.label().to_string()
    }

    /// A read-only script: run in both modes.
    pub fn query(&mut self, step: &str, script: &str) -> Result<String> {
        crate::timings::time(step, || remote::run_root(self.remote, step, script))
    }

    /// A script that changes the host.
    pub fn change(&mut self, step: &str, script: &str) -> Result<String> {
        if let Some(plan) = &mut self.plan {
            plan.push(format!("# {step}\n{}", script_body(script)));
            return Ok(String::new());
        }
        self.check_interrupt()?;
        crate::timings::time(step, || remote::run_root(self.remote, step, script))
    }

    /// A changing script fed with data; `what` describes the data in a plan.
    pub fn change_with_input(
        &mut self,
        step: &str,
        script: &str,
        what: &str,
        input: &mut dyn Read,
        progress: &dyn Fn(u64),
    ) -> Result<String> {
        if let Some(plan) = &mut self.plan {
            plan.push(format!("# {step} (stdin: {what})\n{}", script_body(script)));
            return Ok(String::new());
        }
        self.check_interrupt()?;
        crate::timings::time(step, || {
            remote::run_root_with_input(self.remote, step, script, input, progress)
        })
    }

    /// A note in the plan (a diff, a summary); nothing in a real run.
    pub fn note(&mut self, text: String) {
        if let Some(plan) = &mut self.plan {
            plan.push(text);
        }
    }

    pub fn into_plan(self) -> Vec<String> {
        self.plan.unwrap_or_default()
    }
}

/// Plans show scripts without the variable preamble every step repeats.
fn script_body(script: &str) -> String {
    script
        .lines()
        .filter(|l| !is_preamble(l))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_preamble(line: &str) -> bool {
    line == "set -eu"
        || line
            .split_once('=')
            .is_some_and(|(k, _)| super::layout::VARIABLES.contains(&k))
}

/// The stdout of a step script that exited with `status`, which scripts use to report an
/// outcome callers branch on (a held lock, a timer that fired).
pub fn failed_with(error: &anyhow::Error, status: i32) -> Option<&str> {
    let failure = crate::error::find::<remote::StepFailure>(error)?;
    (failure.output.signal.is_none() && failure.output.status == status)
        .then_some(failure.output.stdout.as_str())
}
