//! `shipit exec HOST... -- CMD ARGS`: a command run on each host as the service runs
//! ([`crate::service_run`]) in the current release, its output streamed. One host: stdin passed
//! on, a terminal with `-t`, shipit exits with the command's status. Several hosts: all at once,
//! each output line prefixed with its host, then a summary of exit statuses. With `--json` or
//! `--events` stdout carries only JSON: every host's output goes to stderr, prefixed, and stdin
//! is not passed on, even for one host.

use std::io::Write;
use std::sync::Mutex;

use anyhow::Result;

use crate::cancel::{Cancel, interrupted};
use crate::config::Config;
use crate::error::{Category, PassThrough, tagged};
use crate::events::{Event, Events};
use crate::hosts::deployed::Deployed;
use crate::hosts::{self, Connection, Layout};
use crate::remote::channel::{self, Ended, RawMode, Terminal, Wiring};
use crate::remote::destination::Destination;
use crate::remote::{self, Remote};
use crate::service_run::{self, Prepared};
use crate::ui::{Format, Ui};

/// `shipit exec`, from the command line.
#[derive(Debug, Clone)]
pub struct Request {
    pub hosts: Vec<String>,
    /// The command and its arguments (argv, no shell).
    pub command: Vec<String>,
    /// `-t`: give the command a terminal (one host only).
    pub tty: bool,
    pub format: Format,
    /// `--events`: each host's exit as a JSON line on stdout; the summary is the last line.
    pub events: Events,
    pub connection: Connection,
}

/// The JSON result of `exec --json` (and the `exec_finished` event's report).
#[derive(Debug, serde::Serialize)]
pub struct Report<'a> {
    pub command: &'a [String],
    /// Every host ran the command and it exited 0.
    pub ok: bool,
    pub hosts: Vec<HostExit>,
}

/// How the command ended on one host: its exit status, or why there is none.
#[derive(Debug, serde::Serialize)]
pub struct HostExit {
    pub host: String,
    pub status: Option<i64>,
    pub error: Option<String>,
}

pub fn run(config: &Config, args: &Request, ui: &Ui) -> Result<()> {
    crate::remote::ssh::check_identity_files(&args.connection.identity)?;
    let hosts = hosts::expand_groups(config, &args.hosts);
    if args.tty && hosts.len() > 1 {
        crate::fail!(
            Usage,
            "-t gives one host a terminal; {} hosts were named ({})",
            hosts.len(),
            hosts.join(", ")
        );
    }
    service_run::check_command(&args.command)?;
    let destinations = hosts
        .iter()
        .map(|host| hosts::resolve(config, host, &args.connection))
        .collect::<Result<Vec<_>>>()?;
    let cancel = Cancel::on_signals()?;
    let layout = Layout::of_app(config);
    let run = Run {
        layout: &layout,
        args,
        cancel: &cancel,
        ui,
    };
    args.events.emit(Event::ExecStarted {
        command: args.command.clone(),
        hosts: destinations.iter().map(|d| d.label.clone()).collect(),
    });
    match destinations.as_slice() {
        [only] if !run.json_out() => on_one_host(only, &run),
        _ => on_each_host(&destinations, &run),
    }
}

/// What every host's run shares.
struct Run<'a> {
    layout: &'a Layout,
    args: &'a Request,
    cancel: &'a Cancel,
    ui: &'a Ui,
}

impl Run<'_> {
    /// Stdout is for JSON: the command's own output goes to stderr.
    fn json_out(&self) -> bool {
        self.args.events.on() || self.args.format == Format::Json
    }
}

fn on_one_host(destination: &Destination, run: &Run) -> Result<()> {
    let mut stdout = |data: &[u8]| {
        let mut out = std::io::stdout().lock();
        out.write_all(data)?;
        out.flush()
    };
    let mut stderr = |data: &[u8]| std::io::stderr().lock().write_all(data);
    let wiring = Wiring {
        terminal: run.args.tty.then(Terminal::like_this_one),
        stdin: true,
        stdout: &mut stdout,
        stderr: &mut stderr,
        cancel: run.cancel.clone(),
        on_interrupt: None,
        deadline: None,
    };
    match run_on(destination, run, wiring)? {
        Ended {
            interrupted: true, ..
        } => Err(interrupted()),
        Ended {
            signal: Some(signal),
            ..
        } => Err(tagged(
            Category::Remote,
            anyhow::anyhow!(
                "systemd-run was killed by signal {signal} on {}",
                destination.label
            ),
        )),
        Ended { status: 0, .. } => Ok(()),
        Ended { status, .. } => Err(anyhow::Error::new(PassThrough(status as u8))),
    }
}

/// Connects, reads what is deployed and runs the command wired as asked; Ctrl-C stops its
/// unit on the host.
fn run_on(destination: &Destination, run: &Run, wiring: Wiring) -> Result<Ended> {
    let mut remote = hosts::connect(destination, &run.args.connection, run.ui)?;
    let terminal = wiring.terminal.is_some();
    let prepared = prepare_on(&mut remote, run.layout, &run.args.command, terminal, run.ui)?;
    let command = remote::as_root(remote.is_root(), &prepared.script);
    let stop = remote::as_root(
        remote.is_root(),
        &service_run::stop_script(&prepared.unit_name),
    );
    run.cancel.check()?;
    let _raw = terminal.then(RawMode::enter);
    channel::run(
        remote.session(),
        &destination.label,
        &command,
        Wiring {
            on_interrupt: Some(stop),
            ..wiring
        },
    )
}

/// How one host's run ended, for the summary.
enum Outcome {
    Ran(Ended),
    Failed(anyhow::Error),
}

impl Outcome {
    fn ok(&self) -> bool {
        matches!(self, Outcome::Ran(e) if e.status == 0 && e.signal.is_none() && !e.interrupted)
    }

    fn exit(&self, host: &str) -> HostExit {
        let (status, error) = match self {
            Outcome::Ran(Ended {
                interrupted: true, ..
            }) => (None, Some("interrupted".to_string())),
            Outcome::Ran(Ended {
                signal: Some(signal),
                ..
            }) => (None, Some(format!("killed by signal {signal}"))),
            Outcome::Ran(Ended { status, .. }) => (Some(i64::from(*status)), None),
            Outcome::Failed(e) => (None, Some(format!("not run: {}", first_line(e)))),
        };
        HostExit {
            host: host.to_string(),
            status,
            error,
        }
    }
}

fn on_each_host(destinations: &[Destination], run: &Run) -> Result<()> {
    let width = destinations
        .iter()
        .map(|d| d.label.len())
        .max()
        .unwrap_or(0);
    let output = Mutex::new(());
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let running: Vec<_> = destinations
            .iter()
            .map(|destination| {
                let output = &output;
                scope.spawn(move || {
                    let outcome = match on_host(destination, run, width, output) {
                        Ok(ended) => Outcome::Ran(ended),
                        Err(e) => Outcome::Failed(e),
                    };
                    let HostExit {
                        host,
                        status,
                        error,
                    } = outcome.exit(&destination.label);
                    let exited = Event::Exited {
                        host,
                        status,
                        error,
                    };
                    run.args.events.emit(exited);
                    outcome
                })
            })
            .collect();
        running
            .into_iter()
            .map(|r| {
                r.join().unwrap_or_else(|_| {
                    Outcome::Failed(anyhow::anyhow!("the host's thread panicked"))
                })
            })
            .collect()
    });
    let report = Report {
        command: &run.args.command,
        ok: outcomes.iter().all(Outcome::ok),
        hosts: destinations
            .iter()
            .zip(&outcomes)
            .map(|(d, o)| o.exit(&d.label))
            .collect(),
    };
    let summary = summarize(destinations, &outcomes, width);
    if run.args.events.on() {
        run.args.events.emit(Event::ExecFinished {
            report: crate::events::report(&report),
        });
    } else if run.args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    summary
}

/// One of several hosts: output lines prefixed with its name, no stdin.
fn on_host(
    destination: &Destination,
    run: &Run,
    width: usize,
    output: &Mutex<()>,
) -> Result<Ended> {
    let prefix = format!("{:<width$} | ", destination.label);
    let mut out = Prefixed::new(&prefix, output, run.json_out());
    let mut err = Prefixed::new(&prefix, output, true);
    let wiring = Wiring {
        terminal: None,
        stdin: false,
        stdout: &mut |data| out.write(data),
        stderr: &mut |data| err.write(data),
        cancel: run.cancel.clone(),
        on_interrupt: None,
        deadline: None,
    };
    let ended = run_on(destination, run, wiring);
    out.finish()?;
    err.finish()?;
    ended
}

/// The summary table (stderr, after the output) and the exit: 0 when every host ran the
/// command and it exited 0.
fn summarize(destinations: &[Destination], outcomes: &[Outcome], width: usize) -> Result<()> {
    let width = width.max(4);
    let mut lines = vec![format!("{:<width$}  EXIT", "HOST")];
    let mut failed = Vec::new();
    let mut category = None;
    for (destination, outcome) in destinations.iter().zip(outcomes) {
        let host = &destination.label;
        let said = match outcome {
            Outcome::Ran(Ended {
                interrupted: true, ..
            }) => {
                category = Some(Category::Interrupted);
                "interrupted".to_string()
            }
            Outcome::Ran(Ended {
                signal: Some(signal),
                ..
            }) => format!("killed by signal {signal}"),
            Outcome::Ran(Ended { status, .. }) => status.to_string(),
            Outcome::Failed(e) => {
                category = category.or(crate::error::category_of(e));
                format!("not run: {}", first_line(e))
            }
        };
        match outcome {
            _ if outcome.ok() => {}
            Outcome::Ran(Ended {
                status,
                signal: None,
                interrupted: false,
                ..
            }) => failed.push(format!("{host} (exit status {status})")),
            _ => failed.push(format!("{host} ({said})")),
        }
        lines.push(format!("{host:<width$}  {said}"));
    }
    eprintln!("{}", lines.join("\n"));
    if failed.is_empty() {
        return Ok(());
    }
    if category == Some(Category::Interrupted) {
        return Err(interrupted());
    }
    Err(tagged(
        category.unwrap_or(Category::Remote),
        anyhow::anyhow!(
            "the command failed on {} of {} hosts: {}",
            failed.len(),
            destinations.len(),
            failed.join(", ")
        ),
    ))
}

fn first_line(error: &anyhow::Error) -> String {
    format!("{error:#}")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn prepare_on(
    remote: &mut dyn Remote,
    layout: &Layout,
    argv: &[String],
    terminal: bool,
    ui: &Ui,
) -> Result<Prepared> {
    let deployed = Deployed::read(remote, layout)?;
    let prepared = deployed.command(layout, "exec", &[], argv, terminal)?;
    for note in &prepared.left_out {
        ui.diagnostic(format!("warning: {}: {note}", remote.label()));
    }
    if crate::ui::verbose() {
        ui.diagnostic(format!(
            "--- the command on {} ---\n{}---",
            remote.label(),
            prepared
        ));
    }
    Ok(prepared)
}

/// The longest line kept whole before it is shown in pieces.
const MAX_LINE: usize = 16 * 1024;

/// Output of one of several hosts, written a whole line at a time with the host's prefix, so
/// hosts' lines never mix within a line.
struct Prefixed<'a> {
    prefix: &'a str,
    lock: &'a Mutex<()>,
    stderr: bool,
    partial: Vec<u8>,
}

impl<'a> Prefixed<'a> {
    fn new(prefix: &'a str, lock: &'a Mutex<()>, stderr: bool) -> Self {
        Prefixed {
            prefix,
            lock,
            stderr,
            partial: Vec::new(),
        }
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.partial.extend_from_slice(data);
        if let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') {
            let complete: Vec<u8> = self.partial.drain(..=end).collect();
            self.emit(&complete)?;
        }
        // A host that never ends its line must not fill this machine's memory: an overlong
        // line is shown in pieces, each on a line of its own.
        while self.partial.len() >= MAX_LINE {
            let mut piece: Vec<u8> = self.partial.drain(..MAX_LINE).collect();
            piece.push(b'\n');
            self.emit(&piece)?;
        }
        Ok(())
    }

    /// Writes a last line that had no newline.
    fn finish(&mut self) -> std::io::Result<()> {
        if self.partial.is_empty() {
            return Ok(());
        }
        let mut rest = std::mem::take(&mut self.partial);
        rest.push(b'\n');
        self.emit(&rest)
    }

    fn emit(&self, lines: &[u8]) -> std::io::Result<()> {
        let mut text = Vec::with_capacity(lines.len() + 16);
        for line in lines.split_inclusive(|b| *b == b'\n') {
            text.extend_from_slice(self.prefix.as_bytes());
            text.extend_from_slice(line);
        }
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.stderr {
            std::io::stderr().lock().write_all(&text)
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&text)?;
            out.flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_output_keeps_lines_whole() {
        let lock = Mutex::new(());
        let mut out = Prefixed::new("web1 | ", &lock, false);
        out.write(b"par").unwrap();
        assert_eq!(out.partial, b"par");
        out.write(b"tial\nnext\nla").unwrap();
        assert_eq!(out.partial, b"la");
    }

    #[test]
    fn a_line_that_never_ends_is_shown_in_pieces() {
        let lock = Mutex::new(());
        let mut out = Prefixed::new("web1 | ", &lock, false);
        for _ in 0..100 {
            out.write(&[b'x'; 1000]).unwrap();
        }
        assert!(
            out.partial.len() < MAX_LINE,
            "{} bytes held",
            out.partial.len()
        );
    }
}
