//! Runs a host's steps for real, or — with `--dry-run` — records what they would run.
//!
//! A step's kind says whether its script only reads the host ([`Effect::Reads`], always run,
//! so the plan shows real differences) or changes it ([`Effect::Changes`], recorded in a dry
//! run). Data sent on stdin appears in a plan only as a description, so secrets never show.
//! Steps go to the host in batches, one round trip each ([`Runner::run`]).

use anyhow::Result;

use super::script;
use crate::cancel::Cancel;
use crate::remote::{self, Answer, Effect, Exit, Kind, Remote, Step, StepFailure};

pub struct Runner<'a> {
    pub remote: &'a mut dyn Remote,
    /// Set by Ctrl-C: no change starts after it, unless the runner is cleaning up.
    pub cancel: Cancel,
    plan: Option<Vec<String>>,
    /// When each step of the last batch was answered, counted from its start.
    answered: Vec<std::time::Duration>,
    /// Set once a deploy is winding down (unlocking, rolling back): a Ctrl-C must not stop that.
    cleaning_up: bool,
}

impl<'a> Runner<'a> {
    pub fn apply(remote: &'a mut dyn Remote, cancel: &Cancel) -> Self {
        Runner {
            remote,
            cancel: cancel.clone(),
            plan: None,
            answered: Vec::new(),
            cleaning_up: false,
        }
    }

    pub fn dry_run(remote: &'a mut dyn Remote, cancel: &Cancel) -> Self {
        Runner {
            remote,
            cancel: cancel.clone(),
            plan: Some(Vec::new()),
            answered: Vec::new(),
            cleaning_up: false,
        }
    }

    /// From here on, steps run even after a Ctrl-C.
    pub fn clean_up(&mut self) {
        self.cleaning_up = true;
    }

    pub fn is_dry_run(&self) -> bool {
        self.plan.is_some()
    }

    pub fn label(&self) -> String {
        self.remote.label().to_string()
    }

    /// Runs `steps` as one batch (one round trip): each step's stdout, or the failure it met.
    /// The outer error is for the batch as a whole: the connection, or a Ctrl-C before a
    /// change.
    pub fn run(&mut self, steps: Vec<Step<'_>>) -> Result<Vec<Result<String>>> {
        let changes = steps.iter().any(|s| s.effect() == Effect::Changes);
        if changes && !self.cleaning_up && self.plan.is_none() {
            self.cancel.check()?;
        }
        let host = self.label();
        let Some(plan) = &mut self.plan else {
            let names: Vec<(Kind, String)> =
                steps.iter().map(|s| (s.kind, s.script.clone())).collect();
            let answers = self.remote.run(steps)?;
            self.answered = answers
                .iter()
                .map(|a| match a {
                    Answer::Ran { after, .. } => *after,
                    Answer::Skipped => std::time::Duration::ZERO,
                })
                .collect();
            let mut before = std::time::Duration::ZERO;
            return Ok(names
                .iter()
                .zip(answers.into_iter().map(Some).chain(std::iter::repeat(None)))
                .map(|((kind, script), answer)| {
                    if let Some(Answer::Ran { after, .. }) = &answer {
                        crate::timings::record(kind.describe(), (*after - before).as_secs_f64());
                        before = *after;
                    }
                    remote::answer_to_result(&host, *kind, script, answer)
                })
                .collect());
        };
        // A dry run records the changes and runs the reads, all in one batch.
        let mut reads = Vec::new();
        let mut slots = Vec::new();
        for step in steps {
            match step.effect() {
                Effect::Changes => {
                    let stdin = step
                        .input
                        .as_ref()
                        .map_or_else(String::new, |i| format!(" (stdin: {})", i.what));
                    plan.push(format!(
                        "# {}{stdin}\n{}",
                        step.kind,
                        script_body(&step.script)
                    ));
                    slots.push(None);
                }
                Effect::Reads => {
                    slots.push(Some(reads.len()));
                    reads.push((step.kind, step.script.clone(), step));
                }
            }
        }
        let (labels, steps): (Vec<_>, Vec<_>) =
            reads.into_iter().map(|(n, s, step)| ((n, s), step)).unzip();
        let mut answers: Vec<Option<Answer>> = if steps.is_empty() {
            Vec::new()
        } else {
            self.remote.run(steps)?.into_iter().map(Some).collect()
        };
        Ok(slots
            .into_iter()
            .map(|slot| match slot {
                None => Ok(String::new()),
                Some(i) => {
                    let (kind, script) = &labels[i];
                    remote::answer_to_result(&host, *kind, script, answers[i].take())
                }
            })
            .collect())
    }

    /// How long after the start of the last batch its step `index` was answered (zero in a dry
    /// run, or for a step that did not run).
    pub fn answered_after(&self, index: usize) -> std::time::Duration {
        self.answered.get(index).copied().unwrap_or_default()
    }

    /// One step, as a batch of its own.
    pub fn one(&mut self, step: Step<'_>) -> Result<String> {
        self.run(vec![step])?
            .pop()
            .unwrap_or_else(|| Err(anyhow::anyhow!("no answer")))
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

/// The next answer of a batch, as [`Runner::run`] gave them.
pub fn next(answers: &mut impl Iterator<Item = Result<String>>) -> Result<String> {
    answers
        .next()
        .unwrap_or_else(|| Err(anyhow::anyhow!("a step got no answer")))
}

/// Plans show scripts without the preamble every step repeats.
fn script_body(script: &str) -> String {
    script
        .lines()
        .filter(|l| !script::is_preamble(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The stdout of a step that met `exit`, which scripts use to tell how (who holds the lock,
/// what a timer did).
pub fn failed_with(error: &anyhow::Error, exit: Exit) -> Option<&str> {
    let failure = crate::error::find::<StepFailure>(error)?;
    (failure.exit == exit).then_some(failure.output.stdout.as_str())
}
