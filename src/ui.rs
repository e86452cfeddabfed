//! Progress on stderr. Results go to stdout from the command itself, so `shipit build | xargs`
//! works; progress is drawn only on a terminal and never with `--quiet`. All bars share one
//! MultiProgress, so a fleet deploy shows a line per host and status lines never tear them.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `-v`: set once at start; read where a failure is reported, far from any `Ui`.
static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// How a command prints its result on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Ui {
    quiet: bool,
    multi: MultiProgress,
}

impl Ui {
    pub fn new(quiet: bool) -> Self {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Ui {
            quiet,
            multi: MultiProgress::with_draw_target(target),
        }
    }

    /// A one-line status such as "   Building hello-go 1.2.0 (go, linux-amd64)", cargo style.
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if !self.quiet {
            let line = format!("{verb:>12} {message}");
            self.multi.suspend(|| eprintln!("{line}"));
        }
    }

    /// Output of a command run for the user (a hook's lines): stderr, none with `--quiet`.
    pub fn output(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            let line = line.to_string();
            self.multi.suspend(|| eprintln!("{line}"));
        }
    }

    /// Diagnostics that belong with an error (a journal tail): printed even with `--quiet`.
    pub fn diagnostic(&self, text: impl std::fmt::Display) {
        let text = text.to_string();
        self.multi.suspend(|| eprintln!("{text}"));
    }

    /// A spinner for a step of unknown length; hidden unless stderr is a terminal.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    /// A byte-counting bar, hidden unless stderr is a terminal.
    pub fn bytes(&self, total: u64, message: impl Into<String>) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(message.into());
        bar
    }
}
