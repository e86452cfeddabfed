//! A bounded HTTP load for restarts and deploys: a few client threads, each opening a new TCP
//! connection per request (so a moment without a listener shows as refused connections),
//! GETting one path until stopped or until a time limit, at a capped total rate. Every request
//! is recorded: when it started, how long it took and how it ended (the status and the JSON
//! `version` of an answer, or the way it failed).
//!
//! ```ignore
//! let load = Load::start(address, Load::DEFAULT);
//! … restart or deploy …
//! let report = load.stop();
//! println!("{}", report.summary());
//! report.assert_versions_in_order("1.0.0", "2.0.0");
//! ```

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How hard and how long to push.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Client threads, each with one request in flight at a time.
    pub clients: usize,
    /// All clients together stay at or below this many requests per second.
    pub rate: u32,
    /// Connect, write and read each give up after this long: a `Timeout`.
    pub timeout: Duration,
    /// The load stops by itself after this long, whether or not it is stopped.
    pub limit: Duration,
    pub path: &'static str,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Vec<Sample>>>,
}

/// One request.
#[derive(Debug, Clone)]
pub struct Sample {
    pub client: usize,
    /// When it started (before connecting), from the start of the load.
    pub started: Duration,
    /// Until the whole answer was read, or the failure.
    pub latency: Duration,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A complete HTTP answer: its status and the `version` of its JSON body, if any.
    Answered {
        status: u16,
        version: Option<String>,
    },
    /// Nothing listened: the connection was refused.
    Refused,
    /// The connection was reset (a listener that went away with the connection in its queue).
    Reset,
    /// Closed without a complete answer.
    Closed,
    /// No answer within the timeout.
    Timeout,
    /// Anything else, with the error.
    Other(String),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Answered { status: 200, .. })
    }

    /// A short name for counting failures: "refused", "HTTP 503", …
    pub fn kind(&self) -> String {
        match self {
            Outcome::Answered { status, .. } => format!("HTTP {status}"),
            Outcome::Refused => "refused".into(),
            Outcome::Reset => "reset".into(),
            Outcome::Closed => "closed".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Other(why) => format!("error: {why}"),
        }
    }

    pub fn version(&self) -> Option<&str> {
        match self {
            Outcome::Answered { version, .. } => version.as_deref(),
            _ => None,
        }
    }
}

impl Load {
    /// 4 clients, 1,500 requests/s, GET /health, 5 s timeout, 2 minutes at most: the load the
    /// zero-downtime issue measured a plain restart with.
    pub const DEFAULT: Settings = Settings {
        clients: 4,
        rate: 1500,
        timeout: Duration::from_secs(5),
        limit: Duration::from_secs(120),
        path: "/health",
    };

    pub fn start(address: SocketAddr, settings: Settings) -> Load {
        assert!(settings.clients > 0 && settings.rate > 0, "{settings:?}");
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        // Each client keeps to its share of the rate: one request per `pace` at most.
        let pace = Duration::from_secs_f64(settings.clients as f64 / f64::from(settings.rate));
        let clients = (0..settings.clients)
            .map(|client| {
                let stop = Arc::clone(&stop);
                std::thread::Builder::new()
                    .name(format!("load-{client}"))
                    .spawn(move || {
                        let mut samples = Vec::new();
                        let mut next = Instant::now();
                        while !stop.load(Ordering::SeqCst) && start.elapsed() < settings.limit {
                            let now = Instant::now();
                            if next > now {
                                std::thread::sleep(next - now);
                            }
                            next = Instant::now().max(next) + pace;
                            let began = Instant::now();
                            let outcome = request(address, settings.path, settings.timeout);
                            samples.push(Sample {
                                client,
                                started: began - start,
                                latency: began.elapsed(),
                                outcome,
                            });
                        }
                        samples
                    })
                    .expect("start a load client")
            })
            .collect();
        Load { stop, clients }
    }

    /// Stops the clients (each finishes its request in flight) and reports every request.
    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        let mut samples: Vec<Sample> = self
            .clients
            .into_iter()
            .flat_map(|c| c.join().expect("a load client panicked"))
            .collect();
        samples.sort_by_key(|s| s.started);
        Report { samples }
    }
}

/// GET `path` on a new connection; the whole answer is read until the server closes.
fn request(address: SocketAddr, path: &str, timeout: Duration) -> Outcome {
    let mut stream = match TcpStream::connect_timeout(&address, timeout) {
        Ok(stream) => stream,
        Err(e) => return failure(&e),
    };
    let exchange = (|| {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        Ok::<_, std::io::Error>(answer)
    })();
    match exchange {
        Ok(answer) => parse(&answer),
        Err(e) => failure(&e),
    }
}

fn failure(e: &std::io::Error) -> Outcome {
    match e.kind() {
        ErrorKind::ConnectionRefused => Outcome::Refused,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            Outcome::Reset
        }
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Outcome::Timeout,
        _ => Outcome::Other(e.to_string()),
    }
}

/// An HTTP/1.x answer: status line, headers, and a body of `Content-Length` bytes (or up to the
/// end); anything shorter is `Closed`.
fn parse(answer: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Outcome::Closed;
    };
    let Some(status) = head
        .lines()
        .next()
        .filter(|line| line.starts_with("HTTP/1."))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
    else {
        return Outcome::Closed;
    };
    let length = head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    if length.is_some_and(|length| body.len() < length) {
        return Outcome::Closed;
    }
    let version = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|json| json["version"].as_str().map(str::to_string));
    Outcome::Answered { status, version }
}

/// Every request of a load, in the order they started.
pub struct Report {
    pub samples: Vec<Sample>,
}

impl Report {
    pub fn failures(&self) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| !s.outcome.is_success())
            .collect()
    }

    /// Failures by kind, most frequent first.
    pub fn failure_kinds(&self) -> Vec<(String, usize)> {
        let mut kinds: Vec<(String, usize)> = Vec::new();
        for failure in self.failures() {
            let kind = failure.outcome.kind();
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((kind, 1)),
            }
        }
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        kinds
    }

    /// The versions that answered, in the order they first did, with how many answers each.
    pub fn versions(&self) -> Vec<(String, usize)> {
        let mut versions: Vec<(String, usize)> = Vec::new();
        for version in self.samples.iter().filter_map(|s| s.outcome.version()) {
            match versions.iter_mut().find(|(v, _)| v == version) {
                Some((_, n)) => *n += 1,
                None => versions.push((version.to_string(), 1)),
            }
        }
        versions
    }

    /// From the start of the first failed request to the end of the last one.
    pub fn failure_window(&self) -> Option<(Duration, Duration)> {
        let failures = self.failures();
        let start = failures.iter().map(|s| s.started).min()?;
        let end = failures.iter().map(|s| s.started + s.latency).max()?;
        Some((start, end))
    }

    /// When the last request ended, from the start of the load.
    pub fn span(&self) -> Duration {
        self.samples
            .iter()
            .map(|s| s.started + s.latency)
            .max()
            .unwrap_or_default()
    }

    pub fn longest(&self) -> Duration {
        self.samples
            .iter()
            .map(|s| s.latency)
            .max()
            .unwrap_or_default()
    }

    /// Not one request failed.
    #[track_caller]
    pub fn assert_none_failed(&self) {
        assert!(self.failures().is_empty(), "{self}: {:?}", self.failures());
    }

    /// `first` answered, then `second`, and never `first` again: every answer from `first`
    /// started before every answer from `second` ended. That holds for any correct switch
    /// (an old process's connection was made before it stopped listening, a new one's answer
    /// came after it began), whatever the clients' scheduling.
    #[track_caller]
    pub fn assert_versions_in_order(&self, first: &str, second: &str) {
        let of = |version: &str| -> Vec<&Sample> {
            self.samples
                .iter()
                .filter(|s| s.outcome.version() == Some(version))
                .collect()
        };
        let (old, new) = (of(first), of(second));
        assert!(
            !old.is_empty() && !new.is_empty(),
            "expected answers from {first} and {second}: {}",
            self.summary()
        );
        let last_old_start = old.iter().map(|s| s.started).max().unwrap();
        let first_new_end = new.iter().map(|s| s.started + s.latency).min().unwrap();
        assert!(
            last_old_start < first_new_end,
            "{first} answered a request started at {last_old_start:?}, after {second} had \
             answered one at {first_new_end:?}: {}",
            self.summary()
        );
        let others: Vec<&str> = self
            .samples
            .iter()
            .filter_map(|s| s.outcome.version())
            .filter(|v| *v != first && *v != second)
            .collect();
        assert!(
            others.is_empty(),
            "answers from {others:?}: {}",
            self.summary()
        );
    }

    /// "2345 requests, 12 failed (refused 12) from 0.912 s to 0.950 s; answers: 1.0.0 ×1200,
    /// 2.0.0 ×1133; longest 0.118 s, over 1.6 s".
    pub fn summary(&self) -> String {
        let failures = self.failures().len();
        let kinds = self.failure_kinds();
        let failed = match self.failure_window() {
            None => "0 failed".to_string(),
            Some((start, end)) => {
                let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
                format!(
                    "{failures} failed ({}) from {:.3} s to {:.3} s",
                    kinds.join(", "),
                    start.as_secs_f64(),
                    end.as_secs_f64()
                )
            }
        };
        let versions: Vec<String> = self
            .versions()
            .iter()
            .map(|(v, n)| format!("{v} ×{n}"))
            .collect();
        format!(
            "{} requests, {failed}; answers: {}; longest {:.3} s, over {:.1} s",
            self.samples.len(),
            if versions.is_empty() {
                "none".to_string()
            } else {
                versions.join(", ")
            },
            self.longest().as_secs_f64(),
            self.span().as_secs_f64()
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}
