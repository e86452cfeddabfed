//! The tests' load generator (support/load.rs) against tiny servers started here, one per way a
//! request can end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::support::load::*;

/// A server on 127.0.0.1 answering each connection with `answer` (after reading the request
/// head), on a thread per connection; it runs until the test process ends.
fn serve(answer: fn(&mut TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                answer(&mut stream);
            });
        }
    });
    address
}

fn json(stream: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

fn quick(limit_ms: u64) -> Settings {
    Settings {
        clients: 3,
        rate: 300,
        timeout: Duration::from_millis(300),
        limit: Duration::from_millis(limit_ms),
        path: "/health",
    }
}

/// The one kind every request of a load against `address` ended with.
fn only_outcome(address: SocketAddr) -> Outcome {
    let report = Load::start(address, quick(400)).stop_after(Duration::from_millis(400));
    assert!(report.samples.len() >= 3, "{report}");
    let first = report.samples[0].outcome.clone();
    assert!(
        report.samples.iter().all(|s| s.outcome == first),
        "{report}"
    );
    first
}

impl Load {
    fn stop_after(self, wait: Duration) -> Report {
        std::thread::sleep(wait);
        self.stop()
    }
}

fn answers_carry_their_status_and_version() {
    let up = serve(|s| json(s, "200 OK", r#"{"status":"UP","version":"1.2.3"}"#));
    assert_eq!(
        only_outcome(up),
        Outcome::Answered {
            status: 200,
            version: Some("1.2.3".into())
        }
    );
    let down = serve(|s| json(s, "503 Service Unavailable", r#"{"version":"9"}"#));
    let report = Load::start(down, quick(300)).stop_after(Duration::from_millis(300));
    assert_eq!(report.failures().len(), report.samples.len(), "{report}");
    assert_eq!(
        report.failure_kinds(),
        [("HTTP 503".to_string(), report.samples.len())]
    );
    assert_eq!(report.versions(), [("9".to_string(), report.samples.len())]);
}

fn each_way_of_failing_is_told_apart() {
    // Bound and closed again: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert_eq!(only_outcome(closed), Outcome::Refused);
    let reset = serve(|s| {
        // SO_LINGER 0: close() sends a RST instead of a FIN.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
    });
    assert_eq!(only_outcome(reset), Outcome::Reset);
    let cut = serve(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"version\"");
    });
    assert_eq!(only_outcome(cut), Outcome::Closed);
    let silent = serve(|_| std::thread::sleep(Duration::from_secs(2)));
    assert_eq!(only_outcome(silent), Outcome::Timeout);
}

fn the_load_keeps_to_its_rate_and_limit() {
    let up = serve(|s| json(s, "200 OK", r#"{"version":"1"}"#));
    let settings = Settings {
        limit: Duration::from_millis(500),
        ..quick(500)
    };
    let started = Instant::now();
    let report = Load::start(up, settings).stop_after(Duration::from_millis(1500));
    // Stopped by its limit, long before the 1.5 s: the clients were idle, not still running.
    assert!(report.span() < Duration::from_millis(800), "{report}");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    // 300 requests/s for 0.5 s: about 150, never more than the rate allows.
    let n = report.samples.len();
    assert!((40..=160).contains(&n), "{n} requests: {report}");
    assert!(report.failures().is_empty(), "{report}");
    assert!(
        report
            .summary()
            .starts_with(&format!("{n} requests, 0 failed; answers: 1 ×{n}"))
    );
}

fn versions_must_switch_once() {
    let sample = |started: u64, latency: u64, version: &str| Sample {
        client: 0,
        started: Duration::from_millis(started),
        latency: Duration::from_millis(latency),
        outcome: Outcome::Answered {
            status: 200,
            version: Some(version.into()),
        },
    };
    let good = Report {
        samples: vec![
            sample(0, 5, "1"),
            // Overlapping in time is fine: the old one's connection was made first.
            sample(10, 30, "1"),
            sample(12, 5, "2"),
            sample(50, 5, "2"),
        ],
    };
    good.assert_versions_in_order("1", "2");
    let back = Report {
        samples: vec![sample(0, 5, "1"), sample(10, 5, "2"), sample(20, 5, "1")],
    };
    let caught = std::panic::catch_unwind(|| back.assert_versions_in_order("1", "2"));
    assert!(
        caught.is_err(),
        "an answer from 1 after 2 answered must fail"
    );
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(Nothing, 1, answers_carry_their_status_and_version),
        crate::test!(Nothing, 2, each_way_of_failing_is_told_apart),
        crate::test!(Nothing, 2, the_load_keeps_to_its_rate_and_limit),
        crate::test!(Nothing, 0, versions_must_switch_once),
    ]
}
