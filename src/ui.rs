//! Progress on stderr. Results go to stdout from the command itself, so `shipit build | xargs`
//! works; progress is drawn only on a terminal and never with `--quiet`. All bars share one
//! MultiProgress, so a fleet deploy shows a line per host and status lines never tear them.
//! Without a terminal (a CI log) nothing is redrawn: a finished spinner becomes one plain line,
//! and an upload is told by its status line alone.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

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
    /// Progress is shown, but not drawn: stderr is not a terminal.
    plain: bool,
    multi: MultiProgress,
}

impl Ui {
    pub fn new(quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let target = if quiet || !terminal {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Ui {
            quiet,
            plain: !quiet && !terminal,
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

    /// A spinner for a step of unknown length, drawn on a terminal; without one, the step is
    /// a line once it is done.
    pub fn spinner(&self, message: impl Into<String>) -> Spinner {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
        );
        let message = message.into();
        bar.set_message(message.clone());
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner {
            bar,
            plain: self.plain,
            message,
            started: Instant::now(),
        }
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

/// A running [`Ui::spinner`].
pub struct Spinner {
    bar: ProgressBar,
    plain: bool,
    message: String,
    started: Instant,
}

impl Spinner {
    /// Ends the spinner: gone from a terminal, one line in a log.
    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
        if self.plain {
            eprintln!(
                "{:>12} {} in {:.1}s",
                "Done",
                self.message,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// A byte count as people read it: "2.00 MiB".
pub fn bytes_text(bytes: u64) -> String {
    HumanBytes(bytes).to_string()
}
