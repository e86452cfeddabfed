//! Progress on stderr. Results go to stdout from the command itself, so `shipit build | xargs`
//! works; progress is drawn only on a terminal and never with `--quiet`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy)]
pub struct Ui {
    quiet: bool,
    terminal: bool,
}

impl Ui {
    pub fn new(quiet: bool) -> Self {
        Ui {
            quiet,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// A one-line status such as "   Building hello-go 1.2.0 (go, linux-amd64)", cargo style.
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{verb:>12} {message}");
        }
    }

    /// A spinner for a step of unknown length; hidden unless stderr is a terminal.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, self.draw_target());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    /// A byte-counting bar, hidden unless stderr is a terminal.
    pub fn bytes(&self, total: u64, message: impl Into<String>) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(total), self.draw_target());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(message.into());
        bar
    }

    fn draw_target(&self) -> ProgressDrawTarget {
        if self.quiet || !self.terminal {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        }
    }
}
