//! hello-rust: a tiny example HTTP service for shipit.
//!
//! Serves a greeting on `/`, a JSON health report on `/health` and Prometheus
//! metrics on `/metrics` using only std networking (thread per connection,
//! `Connection: close`), takes its listening sockets from systemd when a
//! socket unit passes them (else binds `--port`), and shuts down gracefully
//! on SIGTERM/SIGINT.

mod app;
mod http;

use std::io::{BufReader, ErrorKind};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use signal_hook::consts::{SIGINT, SIGTERM};

use app::App;

pub const APP_NAME: &str = "hello-rust";
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// Set by the SIGTERM/SIGINT handlers.
static SHUTDOWN: AtomicBool = AtomicBool::new(false);

/// Stamped at build time: shipit sets SHIPIT_VERSION for cargo.
pub fn version() -> &'static str {
    option_env!("SHIPIT_VERSION").unwrap_or("dev")
}

/// Stamped at build time: shipit sets SHIPIT_BUILD_TIME for cargo.
pub fn build_time() -> &'static str {
    option_env!("SHIPIT_BUILD_TIME").unwrap_or("unknown")
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{APP_NAME}: error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let Some(port) = parse_args(std::env::args().skip(1))? else {
        println!("usage: {APP_NAME} [--port N]   (default 8080, listens on 0.0.0.0:N)");
        return Ok(());
    };

    // A second signal during shutdown exits immediately (the shutdown
    // action must be registered before the flag is set).
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, &SHUTDOWN)
            .and_then(|_| signal_hook::flag::register(sig, &SHUTDOWN))
            .map_err(|e| format!("installing signal handler: {e}"))?;
    }

    let app = Arc::new(App::new(
        SystemTime::now(),
        app::load_greeting("config.yaml"),
    ));
    let (listeners, origin) = listeners(port)?;
    let addresses: Vec<String> = listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map_or_else(|e| e.to_string(), |a| a.to_string())
        })
        .collect();
    eprintln!(
        "{APP_NAME} {} (built {}) listening on {} ({origin})",
        version(),
        build_time(),
        addresses.join(", ")
    );

    let active = Arc::new(AtomicUsize::new(0));
    while !SHUTDOWN.load(Ordering::SeqCst) {
        let mut accepted = false;
        for listener in &listeners {
            match listener.accept() {
                Ok((stream, _)) => {
                    accepted = true;
                    spawn_connection(stream, &app, &active);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => {
                    // e.g. EMFILE: log and back off rather than spin.
                    eprintln!("{APP_NAME}: accept: {e}");
                }
            }
        }
        if !accepted {
            thread::sleep(ACCEPT_POLL);
        }
    }
    // Closes this process's copies only: systemd keeps a passed socket open, so new
    // connections wait in its queue for the next process instead of being refused.
    drop(listeners);

    let n = active.load(Ordering::SeqCst);
    eprintln!("{APP_NAME}: signal received, shutting down ({n} connection(s) in flight)");
    let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
    while active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    match active.load(Ordering::SeqCst) {
        0 => eprintln!("{APP_NAME}: stopped"),
        n => eprintln!(
            "{APP_NAME}: stopped, abandoning {n} connection(s) after {SHUTDOWN_TIMEOUT:?}"
        ),
    }
    Ok(())
}

/// The listening sockets systemd passed (socket activation), else one of its own on
/// 0.0.0.0:port; all non-blocking, so the accept loop can watch for the shutdown signal.
fn listeners(port: u16) -> Result<(Vec<TcpListener>, &'static str), String> {
    let mut passed = listenfd::ListenFd::from_env();
    let mut listeners = Vec::new();
    for index in 0..passed.len() {
        let listener = passed
            .take_tcp_listener(index)
            .map_err(|e| format!("socket {} from systemd: {e}", index + 3))?;
        listeners.extend(listener);
    }
    let origin = if listeners.is_empty() {
        let own = TcpListener::bind(("0.0.0.0", port))
            .map_err(|e| format!("listening on 0.0.0.0:{port}: {e}"))?;
        listeners.push(own);
        "its own socket"
    } else {
        "sockets from systemd"
    };
    for listener in &listeners {
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("making the listener non-blocking: {e}"))?;
    }
    Ok((listeners, origin))
}

/// Parses `--port N` / `--port=N`. Returns `Ok(None)` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<u16>, String> {
    let mut port = 8080;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => args.next().ok_or("--port needs a value")?,
            _ => match arg.strip_prefix("--port=") {
                Some(v) => v.to_string(),
                None => {
                    return Err(format!(
                        "unknown argument {arg:?} (usage: {APP_NAME} [--port N])"
                    ))
                }
            },
        };
        port = match value.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => {
                return Err(format!(
                    "invalid --port {value:?}: must be an integer in 1..65535"
                ))
            }
        };
    }
    Ok(Some(port))
}

/// Handles one connection on its own thread, tracked by `active`.
fn spawn_connection(stream: TcpStream, app: &Arc<App>, active: &Arc<AtomicUsize>) {
    // Decrements the counter however the thread ends (even on panic).
    struct Guard(Arc<AtomicUsize>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    active.fetch_add(1, Ordering::SeqCst);
    let guard = Guard(Arc::clone(active));
    let app = Arc::clone(app);
    let spawned = thread::Builder::new().name("conn".into()).spawn(move || {
        let _guard = guard;
        if let Err(e) = handle(stream, &app) {
            if !matches!(
                e.kind(),
                ErrorKind::WouldBlock
                    | ErrorKind::TimedOut
                    | ErrorKind::BrokenPipe
                    | ErrorKind::ConnectionReset
            ) {
                eprintln!("{APP_NAME}: connection: {e}");
            }
        }
    });
    if let Err(e) = spawned {
        eprintln!("{APP_NAME}: spawning connection thread: {e}");
    }
}

fn handle(stream: TcpStream, app: &App) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(&stream);
    let (response, head_only) = match http::read_request(&mut reader) {
        Ok(Some(req)) => (app.respond(&req), req.method == "HEAD"),
        Ok(None) => return Ok(()), // client closed without sending anything
        Err(http::Error::Io(e)) => return Err(e),
        Err(http::Error::Bad(why)) => (
            http::Response::text(400, format!("bad request: {why}\n")),
            false,
        ),
    };
    response.write_to(&mut &stream, head_only)
}

#[cfg(test)]
mod tests {
    use super::parse_args;

    fn args(list: &[&str]) -> Result<Option<u16>, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_port_flag() {
        assert_eq!(args(&[]), Ok(Some(8080)));
        assert_eq!(args(&["--port", "9000"]), Ok(Some(9000)));
        assert_eq!(args(&["--port=9001"]), Ok(Some(9001)));
        assert_eq!(args(&["--help"]), Ok(None));
        assert!(args(&["--port", "notaport"])
            .unwrap_err()
            .contains("invalid --port"));
        assert!(args(&["--port", "0"]).is_err());
        assert!(args(&["--port", "70000"]).is_err());
        assert!(args(&["--port"]).is_err());
        assert!(args(&["--listen", "x"]).is_err());
    }
}
