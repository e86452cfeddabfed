//! `shipit logs HOST...`: the unit's journal on each host, read as JSON (`journalctl -o json`)
//! and printed here: one host as journalctl's `short` output, several merged in time order
//! ([`merge`]) with a host column ([`journal`]).
//!
//! Each host is read in two parts: a first look (its clock, then the lines asked for with `-n`,
//! `--since`, `--until`, `-g`), and with `-f` a follow that starts after the first look's last
//! line (`--after-cursor`). The cursor is kept, so a host whose connection drops is reconnected
//! to and resumed exactly after the last line printed: nothing lost, nothing twice.

mod journal;
mod merge;
mod time;

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use crate::cancel::Cancel;
use crate::config::Config;
use crate::error::{Category, tagged};
use crate::hosts::{self, Connection, Layout};
use crate::remote::channel::{self, Wiring};
use crate::remote::destination::Destination;
use crate::remote::ssh::SshRemote;
use crate::remote::{self, Remote};
use crate::shell::{command, quote, without_header};
use crate::ui::Ui;

use journal::Entry;
use merge::Merge;
use time::TimeSpec;

/// Lines shown without `-n`, `--since` or `--until`.
const DEFAULT_LINES: u32 = 100;
/// The longest wait between attempts to reach a host that dropped.
const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// The most lines a first look keeps of one host: they are all held until every host has
/// answered, so `--since` a month ago on a busy service must not fill this machine's memory.
const MAX_FIRST_LOOK: usize = 50_000;
/// The longest line read: journalctl's JSON lines are a few kilobytes (it writes a field over
/// 4 KiB as null), so a longer one is no journal entry.
const MAX_LINE: usize = 1 << 20;
/// What is kept of journalctl's stderr for its error: the first of it says why.
const MAX_STDERR: usize = 64 << 10;

/// `shipit logs`, from the command line.
#[derive(Debug, Clone)]
pub struct Request {
    pub hosts: Vec<String>,
    /// Keep printing new lines.
    pub follow: bool,
    /// `-n`: the last lines shown.
    pub lines: Option<u32>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// `-g`: only lines that match this pattern.
    pub grep: Option<String>,
    /// Prefix each line with its host, even for one host.
    pub host_names: bool,
    pub connection: Connection,
}

/// What to read, checked before any host is asked.
struct Query {
    lines: Option<u32>,
    since: Option<TimeSpec>,
    until: Option<TimeSpec>,
    grep: Option<String>,
}

impl Query {
    fn from(args: &Request) -> Result<Query> {
        let since = args
            .since
            .as_deref()
            .map(|t| TimeSpec::parse("--since", t))
            .transpose()?;
        let until = args
            .until
            .as_deref()
            .map(|t| TimeSpec::parse("--until", t))
            .transpose()?;
        if args.follow
            && let Some(until) = &until
            && until.resolve(0, 0).is_none()
        {
            crate::fail!(
                Usage,
                "--until {:?} with -f: shipit stops following at that time itself and cannot place \
                 a named time zone\n  help: give the time in UTC (\"… UTC\") or in the host's zone",
                until.text
            );
        }
        if let Some(pattern) = &args.grep
            && (pattern.is_empty() || pattern.contains(['\0', '\n']))
        {
            crate::fail!(Usage, "-g needs a one-line, non-empty pattern");
        }
        let lines = match (args.lines, &since, &until) {
            (Some(n), _, _) => Some(n),
            (None, None, None) => Some(DEFAULT_LINES),
            _ => None,
        };
        Ok(Query {
            lines,
            since,
            until,
            grep: args.grep.clone(),
        })
    }
}

pub fn run(config: &Config, args: &Request, ui: &Ui) -> Result<()> {
    crate::remote::ssh::check_identity_files(&args.connection.identity)?;
    let query = Query::from(args)?;
    let hosts = hosts::expand_groups(config, &args.hosts);
    let destinations = hosts
        .iter()
        .map(|host| hosts::resolve(config, host, &args.connection))
        .collect::<Result<Vec<_>>>()?;
    let context = Context {
        layout: Layout::of_app(config),
        query,
        connect: &args.connection,
        ui,
        printer: Printer::new(&destinations, args.host_names),
    };
    if args.follow {
        follow(&context, &destinations)
    } else {
        once(&context, &destinations)
    }
}

struct Context<'a> {
    layout: Layout,
    query: Query,
    connect: &'a Connection,
    ui: &'a Ui,
    printer: Printer,
}

/// How lines go to stdout.
struct Printer {
    labels: Vec<String>,
    width: usize,
    merged: bool,
}

impl Printer {
    fn new(destinations: &[Destination], host_names: bool) -> Printer {
        Printer {
            labels: destinations.iter().map(|d| d.label.clone()).collect(),
            width: destinations
                .iter()
                .map(|d| d.label.len())
                .max()
                .unwrap_or(0),
            merged: host_names || destinations.len() > 1,
        }
    }

    /// Prints a line. When stdout is gone (`shipit logs -f | head` had enough), shipit ends
    /// there, as a SIGPIPE would end journalctl: the readers are still following.
    fn print(&self, host: usize, entry: &Entry, zone: i64) {
        use std::io::Write;
        let line = if self.merged {
            entry.merged(&self.labels[host], self.width)
        } else {
            entry.short(zone)
        };
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            std::process::exit(0);
        }
    }
}

/// A host's clock at the first look.
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// The host's time then, µs since the epoch.
    now: i64,
    /// The host's clock minus this machine's, µs.
    offset: i64,
    /// The host's time zone, seconds east of UTC.
    zone: i64,
}

struct FirstLook {
    clock: Clock,
    entries: Vec<Entry>,
}

/// Without `-f`: every host read at once, then printed in order.
fn once(context: &Context, destinations: &[Destination]) -> Result<()> {
    let looks: Vec<Result<FirstLook>> = std::thread::scope(|scope| {
        let reading: Vec<_> = destinations
            .iter()
            .map(|d| {
                scope.spawn(move || {
                    let mut remote = hosts::connect(d, context.connect, context.ui)?;
                    first_look(&mut remote, context)
                })
            })
            .collect();
        reading
            .into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("reading the host panicked")))
            })
            .collect()
    });
    let mut merge = Merge::new(destinations.len());
    let mut zones = vec![0; destinations.len()];
    let mut failures = Vec::new();
    for (index, look) in looks.into_iter().enumerate() {
        match look {
            Ok(look) => {
                merge.set_offset(index, look.clock.offset);
                zones[index] = look.clock.zone;
                let arrived = Instant::now();
                for entry in look.entries {
                    merge.push(index, entry, arrived);
                }
            }
            Err(e) => failures.push((index, e)),
        }
        merge.end(index);
    }
    for (host, entry) in tail(merge.drain(), context.query.lines) {
        context.printer.print(host, &entry, zones[host]);
    }
    fail_for(destinations, failures)
}

/// The last `lines` of merged lines.
fn tail(mut lines: Vec<(usize, Entry)>, keep: Option<u32>) -> Vec<(usize, Entry)> {
    if let Some(keep) = keep {
        let keep = keep as usize;
        if lines.len() > keep {
            lines.drain(..lines.len() - keep);
        }
    }
    lines
}

/// The error for hosts that could not be read: one host's own, or a list.
fn fail_for(destinations: &[Destination], mut failures: Vec<(usize, anyhow::Error)>) -> Result<()> {
    if failures.is_empty() {
        return Ok(());
    }
    if destinations.len() == 1 {
        return Err(failures.remove(0).1);
    }
    let category = crate::error::category_of(&failures[0].1).unwrap_or(Category::Remote);
    let lines: Vec<String> = failures
        .iter()
        .map(|(i, e)| {
            format!(
                "  {}: {}",
                destinations[*i].label,
                format!("{e:#}").replace('\n', "\n    ")
            )
        })
        .collect();
    Err(tagged(
        category,
        anyhow::anyhow!(
            "{} of {} hosts could not be read:\n{}",
            failures.len(),
            destinations.len(),
            lines.join("\n")
        ),
    ))
}

/// What a host's reader tells the printer while following.
enum Event {
    /// The first look: clock and the lines asked for.
    First(usize, Clock, Vec<Entry>),
    /// A new line.
    Line(usize, Entry, Instant),
    /// Something for stderr (a lost connection, a reconnect).
    Note(String),
    /// The host will send nothing more: its --until passed, or an error that reconnecting
    /// cannot mend.
    Done(usize, Result<()>),
}

/// `-f`: every host followed at once; a host that drops is reconnected to.
fn follow(context: &Context, destinations: &[Destination]) -> Result<()> {
    let (send, receive) = mpsc::channel();
    std::thread::scope(|scope| {
        for (index, destination) in destinations.iter().enumerate() {
            let send = send.clone();
            scope.spawn(move || {
                let done = follow_host(context, index, destination, &send);
                let _ = send.send(Event::Done(index, done));
            });
        }
        drop(send);
        // Returns once every reader is done (its --until passed, or it failed for good).
        print_followed(context, destinations, &receive)
    })
}

/// Prints the first looks merged, then every line as the merge lets it go.
fn print_followed(
    context: &Context,
    destinations: &[Destination],
    receive: &Receiver<Event>,
) -> Result<()> {
    let mut followed = Followed {
        merge: Merge::new(destinations.len()),
        zones: vec![0; destinations.len()],
        failures: Vec::new(),
    };
    // The first looks are printed together, in order; lines that followed them meanwhile wait.
    let mut heard = vec![false; destinations.len()];
    let mut early = Vec::new();
    while heard.iter().any(|h| !h) {
        match receive.recv() {
            Ok(Event::Line(i, entry, arrived)) => early.push((i, entry, arrived)),
            Ok(event) => {
                if let Some(host) = followed.take(event, context, destinations) {
                    heard[host] = true;
                }
            }
            Err(_) => break,
        }
    }
    for (host, entry) in tail(followed.merge.drain(), context.query.lines) {
        context.printer.print(host, &entry, followed.zones[host]);
    }
    for (host, entry, arrived) in early {
        followed.merge.push(host, entry, arrived);
    }
    while !followed.merge.is_done() {
        while let Some((host, entry)) = followed.merge.pop(Instant::now()) {
            context.printer.print(host, &entry, followed.zones[host]);
        }
        let wait = followed
            .merge
            .deadline()
            .map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(Instant::now())
            });
        match receive.recv_timeout(wait) {
            Ok(event) => {
                followed.take(event, context, destinations);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    for (host, entry) in followed.merge.drain() {
        context.printer.print(host, &entry, followed.zones[host]);
    }
    fail_for(destinations, followed.failures)
}

/// What following has gathered so far.
struct Followed {
    merge: Merge,
    /// Each host's time zone, for one host's journalctl-style lines.
    zones: Vec<i64>,
    failures: Vec<(usize, anyhow::Error)>,
}

impl Followed {
    /// Takes in an event; the host it starts or ends, if it does.
    fn take(
        &mut self,
        event: Event,
        context: &Context,
        destinations: &[Destination],
    ) -> Option<usize> {
        match event {
            Event::First(host, clock, entries) => {
                self.merge.set_offset(host, clock.offset);
                self.zones[host] = clock.zone;
                let now = Instant::now();
                for entry in entries {
                    self.merge.push(host, entry, now);
                }
                Some(host)
            }
            Event::Line(host, entry, arrived) => {
                self.merge.push(host, entry, arrived);
                None
            }
            Event::Note(note) => {
                context.ui.diagnostic(note);
                None
            }
            Event::Done(host, result) => {
                self.merge.end(host);
                if let Err(e) = result {
                    self.failures
                        .push((host, said_now(context, destinations, host, e)));
                }
                Some(host)
            }
        }
    }
}

/// A followed host that failed for good, said at once when others are still followed (the
/// final error then only names it).
fn said_now(
    context: &Context,
    destinations: &[Destination],
    host: usize,
    error: anyhow::Error,
) -> anyhow::Error {
    if destinations.len() == 1 {
        return error;
    }
    let label = &destinations[host].label;
    context.ui.diagnostic(format!("error: {label}: {error:#}"));
    let category = crate::error::category_of(&error).unwrap_or(Category::Remote);
    tagged(category, anyhow::anyhow!("stopped following (see above)"))
}

/// Follows one host until its --until passes or an error reconnecting cannot mend; a lost
/// connection is reported and made again after a pause that grows while it keeps failing.
fn follow_host(
    context: &Context,
    index: usize,
    destination: &Destination,
    send: &Sender<Event>,
) -> Result<()> {
    let label = &destination.label;
    let mut resume: Option<Resume> = None;
    let mut pause = Duration::from_secs(1);
    loop {
        let followed =
            hosts::connect(destination, context.connect, context.ui).and_then(|mut remote| {
                let resume = match &mut resume {
                    Some(resume) => {
                        let _ = send.send(Event::Note(format!(
                            "note: reconnected to {label}; resuming after its last line"
                        )));
                        pause = Duration::from_secs(1);
                        resume
                    }
                    None => {
                        let look = first_look(&mut remote, context)?;
                        let after = Resume::after(&look, &context.query);
                        let _ = send.send(Event::First(index, look.clock, look.entries));
                        resume.insert(after)
                    }
                };
                follow_from(&mut remote, context, index, resume, send)
            });
        match followed {
            Ok(()) => return Ok(()),
            // Only a host that was being followed is reconnected to: one that cannot be
            // reached (or refuses shipit) at the start is an error like any other.
            Err(e)
                if resume.is_some() && crate::error::category_of(&e) == Some(Category::Connect) =>
            {
                let _ = send.send(Event::Note(format!(
                    "warning: {}; reconnecting in {} s",
                    format!("{e:#}").replace('\n', " "),
                    pause.as_secs()
                )));
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Where following a host starts: after the last line seen, or (none seen yet) from its clock
/// at the first look; and where it stops.
#[derive(Debug, Clone)]
struct Resume {
    cursor: Option<String>,
    /// µs by the host's clock.
    since: i64,
    until: Option<i64>,
}

impl Resume {
    fn after(look: &FirstLook, query: &Query) -> Resume {
        let on_host = |time: &Option<TimeSpec>| {
            time.as_ref()
                .and_then(|t| t.resolve(look.clock.now, look.clock.zone))
        };
        Resume {
            cursor: look.entries.last().map(|e| e.cursor.clone()),
            since: on_host(&query.since)
                .unwrap_or(i64::MIN)
                .max(look.clock.now),
            until: on_host(&query.until),
        }
    }
}

/// Streams new lines from `resume` on (moving it along) until the stream ends (its --until)
/// or fails.
fn follow_from(
    remote: &mut SshRemote,
    context: &Context,
    index: usize,
    resume: &mut Resume,
    send: &Sender<Event>,
) -> Result<()> {
    let mut words = journalctl_words(context);
    words.extend(["--follow".into(), "--no-tail".into()]);
    match &resume.cursor {
        Some(cursor) => words.push(format!("--after-cursor={cursor}")),
        None => words.push(format!("--since=@{}", resume.since.div_euclid(1_000_000))),
    }
    let end = resume
        .until
        .map(|until| (until + 999_999).div_euclid(1_000_000).to_string());
    let script = follow_script(end.as_deref().unwrap_or_default(), &words);
    let until = resume.until;
    run_script(remote, &script, context, |line| {
        let Some(entry) = Entry::parse(line) else {
            return;
        };
        if until.is_some_and(|u| entry.at > u) {
            return;
        }
        resume.cursor = Some(entry.cursor.clone());
        // The printer only stops by ending the process.
        let _ = send.send(Event::Line(index, entry, Instant::now()));
    })
}

/// The host's clock, then the lines asked for (the last [`MAX_FIRST_LOOK`] of them at most: the
/// older ones are dropped as they come, since `-g` and `--since` leave journalctl itself no
/// count to stop at), in one command.
fn first_look(remote: &mut SshRemote, context: &Context) -> Result<FirstLook> {
    let query = &context.query;
    let label = remote.label().to_string();
    let mut words = journalctl_words(context);
    if let Some(n) = query.lines {
        words.push(format!("--lines={n}"));
    }
    if let Some(since) = &query.since {
        words.push(format!("--since={}", since.text));
    }
    if let Some(until) = &query.until {
        words.push(format!("--until={}", until.text));
    }
    let script = first_look_script(&words);
    let mut clock = None;
    let mut entries = VecDeque::new();
    let mut left_out = false;
    run_script(remote, &script, context, |line| {
        match line.strip_prefix("clock=") {
            Some(reading) if clock.is_none() => clock = Some((reading.to_string(), local_now())),
            _ => {
                entries.extend(Entry::parse(line));
                if entries.len() > MAX_FIRST_LOOK {
                    entries.pop_front();
                    left_out = true;
                }
            }
        }
    })?;
    if left_out {
        context.ui.diagnostic(format!(
            "note: {label}: more than {MAX_FIRST_LOOK} lines match; showing the last \
             {MAX_FIRST_LOOK}, the most shipit keeps of a host at once\n  help: narrow them with \
             --since, --until or -g"
        ));
    }
    let clock = clock
        .and_then(|(reading, here)| parse_clock(&reading, here))
        .ok_or_else(|| {
            tagged(
                Category::Remote,
                anyhow::anyhow!("{label} did not tell its time (`date +%s%N %z`)"),
            )
        })?;
    Ok(FirstLook {
        clock,
        entries: entries.into(),
    })
}

/// Runs a journalctl script as root, each stdout line to `line`; a failure says what journalctl
/// said.
fn run_script(
    remote: &mut SshRemote,
    script: &str,
    context: &Context,
    mut line: impl FnMut(&str),
) -> Result<()> {
    let label = remote.label().to_string();
    let command = remote::as_root(remote.is_root(), script);
    let mut lines = Lines::default();
    let mut errors = Vec::new();
    let ended = channel::run(
        remote.session(),
        &label,
        &command,
        Wiring {
            terminal: None,
            stdin: false,
            stdout: &mut |data| {
                lines.take(data).iter().for_each(|l| line(l));
                Ok(())
            },
            stderr: &mut |data| {
                let room = MAX_STDERR.saturating_sub(errors.len());
                errors.extend_from_slice(&data[..data.len().min(room)]);
                Ok(())
            },
            // shipit logs sets no handler: Ctrl-C ends it, and with it the follow.
            cancel: Cancel::new(),
            on_interrupt: None,
            deadline: None,
        },
    )?;
    // With -g, journalctl exits 1 without a word when nothing matched.
    let nothing_matched = ended.status == 1 && context.query.grep.is_some() && errors.is_empty();
    if (ended.status == 0 && ended.signal.is_none()) || nothing_matched {
        return Ok(());
    }
    Err(journalctl_failed(&label, &errors, &context.query))
}

/// `first-look.sh` with journalctl's words.
pub(crate) fn first_look_script(journalctl: &[String]) -> String {
    format!(
        "set -- {}\n{}",
        command(journalctl),
        without_header(include_str!("first-look.sh"))
    )
}

/// `follow.sh` with journalctl's words, ending at `until` (the host's clock, in seconds; empty
/// for no end).
pub(crate) fn follow_script(until: &str, journalctl: &[String]) -> String {
    format!(
        "until={}\nset -- {}\n{}",
        quote(until),
        command(journalctl),
        without_header(include_str!("follow.sh"))
    )
}

/// `journalctl` for the app's unit as JSON, with the pattern if any.
fn journalctl_words(context: &Context) -> Vec<String> {
    let mut words: Vec<String> = [
        "journalctl",
        "--unit",
        &context.layout.unit_name(),
        "--output=json",
        &format!("--output-fields={}", journal::FIELDS),
        "--no-pager",
    ]
    .map(str::to_string)
    .to_vec();
    if let Some(pattern) = &context.query.grep {
        words.push(format!("--grep={pattern}"));
    }
    words
}

/// journalctl's refusal, said with what it said and how to get on.
fn journalctl_failed(label: &str, stderr: &[u8], query: &Query) -> anyhow::Error {
    let said = String::from_utf8_lossy(stderr).trim().to_string();
    let help = if said.contains("pattern matching") || said.contains("PCRE") {
        "\n  help: this host's journalctl was built without PCRE2, so it cannot search; drop -g \
         and filter here instead, e.g. `shipit logs HOST | grep PATTERN`"
            .to_string()
    } else if said.contains("Failed to parse timestamp") {
        let values: Vec<&str> = [&query.since, &query.until]
            .into_iter()
            .flatten()
            .map(|t| t.text.as_str())
            .collect();
        format!(
            "\n  help: this host's journalctl does not read {} (older systemd releases take \
             fewer forms; \"YYYY-MM-DD HH:MM:SS\" works everywhere)",
            values.join(" or ")
        )
    } else {
        String::new()
    };
    tagged(
        Category::Remote,
        anyhow::anyhow!(
            "journalctl failed on {label}: {}{help}",
            if said.is_empty() {
                "(no message)"
            } else {
                &said
            }
        ),
    )
}

/// `clock=<ns since the epoch> <±hhmm>` read at this machine's `here` (µs).
fn parse_clock(reading: &str, here: i64) -> Option<Clock> {
    let (nanos, zone) = reading.trim().split_once(' ')?;
    let now = nanos.parse::<i64>().ok()? / 1_000;
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = zone.get(1..5)?;
    let hours: i64 = digits.get(..2)?.parse().ok()?;
    let minutes: i64 = digits.get(2..)?.parse().ok()?;
    Some(Clock {
        now,
        offset: now - here,
        zone: sign * (hours * 3600 + minutes * 60),
    })
}

fn local_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Bytes cut into whole lines; a partial line waits for the rest, up to [`MAX_LINE`]: a longer
/// line is dropped.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    /// The line coming is over [`MAX_LINE`]: the rest of it is dropped as it comes.
    overlong: bool,
}

impl Lines {
    fn take(&mut self, data: &[u8]) -> Vec<String> {
        let mut complete = Vec::new();
        for piece in data.split_inclusive(|b| *b == b'\n') {
            let (text, ends) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            if !self.overlong {
                self.partial.extend_from_slice(text);
                self.overlong = self.partial.len() > MAX_LINE;
            }
            if self.overlong {
                self.partial.clear();
            }
            if ends {
                if !self.partial.is_empty() {
                    complete.push(String::from_utf8_lossy(&self.partial).into_owned());
                }
                self.partial.clear();
                self.overlong = false;
            }
        }
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_read_with_their_zone_and_offset() {
        let clock = parse_clock("1735787045000006000 +0130", 1_735_787_044_000_006).unwrap();
        assert_eq!(clock.now, 1_735_787_045_000_006);
        assert_eq!(clock.offset, 1_000_000);
        assert_eq!(clock.zone, 5400);
        assert_eq!(parse_clock("123 -0800", 0).unwrap().zone, -28_800);
        assert!(parse_clock("123", 0).is_none());
        assert!(parse_clock("x +0000", 0).is_none());
    }

    #[test]
    fn lines_wait_for_their_end() {
        let mut lines = Lines::default();
        assert!(lines.take(b"{\"a\"").is_empty());
        assert_eq!(
            lines.take(b":1}\n{\"b\":2}\n{\"c"),
            ["{\"a\":1}", "{\"b\":2}"]
        );
        assert_eq!(lines.take(b"\":3}\n"), ["{\"c\":3}"]);
    }

    #[test]
    fn a_line_too_long_is_dropped_not_held() {
        let mut lines = Lines::default();
        let long = vec![b'x'; MAX_LINE / 2 + 1];
        assert!(lines.take(&long).is_empty());
        assert!(lines.take(&long).is_empty());
        assert!(lines.partial.is_empty());
        assert!(lines.take(&long).is_empty());
        assert!(lines.partial.is_empty());
        assert_eq!(lines.take(b"end\n{\"a\":1}\n"), ["{\"a\":1}"]);
    }
}
