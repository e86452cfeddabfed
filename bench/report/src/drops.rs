//! Benchmark 7, requests failed during a deploy. `shipit-bench-report load ADDRESS STOP_FILE`
//! puts the tests' own load on ADDRESS (tests/cli/support/load.rs: 4 clients, a new connection
//! per request, up to 1,500 requests/s, GET /health) until STOP_FILE exists, then prints
//! `REQUESTS FAILED LONGEST_SECONDS`; bench/run deploys meanwhile. [`rows`] turns the samples
//! (`drops.<kind>.requests|failed|longest`, kind `plain` or `socket`) into the table's rows.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use super::{Row, Samples, Verdict, judge, secs};

#[allow(dead_code)] // the tests' helpers this benchmark does not use
#[path = "../../../tests/cli/support/load.rs"]
mod load;

/// `load ADDRESS STOP_FILE`.
pub fn load(args: &[String]) -> ExitCode {
    let [address, stop] = args else {
        eprintln!("usage: shipit-bench-report load ADDRESS:PORT STOP_FILE");
        return ExitCode::from(2);
    };
    let Ok(address) = address.parse::<SocketAddr>() else {
        eprintln!("error: {address:?} is not an IP address and port");
        return ExitCode::from(2);
    };
    let running = load::Load::start(address, load::Load::DEFAULT);
    while !Path::new(stop).exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = running.stop();
    eprintln!("{report}");
    println!(
        "{} {} {:.6}",
        report.samples.len(),
        report.failures().len(),
        report.longest().as_secs_f64()
    );
    ExitCode::SUCCESS
}

fn total(s: &Samples, key: &str) -> Option<f64> {
    s.values.get(key).map(|v| v.iter().sum())
}

/// Socket activation against a plain restart: the requests that failed over all repetitions,
/// and the slowest answer any of them saw.
pub fn rows(s: &Samples) -> Vec<Row> {
    let of = |kind: &str| {
        Some((
            total(s, &format!("drops.{kind}.failed"))?,
            total(s, &format!("drops.{kind}.requests"))?,
            s.max(&format!("drops.{kind}.longest"))?,
        ))
    };
    let (Some(socket), Some(plain)) = (of("socket"), of("plain")) else {
        return Vec::new();
    };
    let deploys = s.count("drops.socket.failed");
    let failed = |(failed, requests, _): (f64, f64, f64)| format!("{failed:.0} of {requests:.0}");
    vec![
        Row {
            what: format!(
                "7. Requests failed during a deploy under load ({deploys} deploy{} each), socket \
                 activation vs plain restart",
                if deploys == 1 { "" } else { "s" }
            ),
            measured: failed(socket),
            anchor: failed(plain),
            ratio: "—".into(),
            target: "0 failed".into(),
            verdict: judge(socket.0 == 0.0),
        },
        Row {
            what: "7. Slowest response during a deploy, socket activation vs plain restart".into(),
            measured: secs(socket.2),
            anchor: secs(plain.2),
            ratio: "—".into(),
            target: "< 1 s".into(),
            verdict: if socket.1 > 0.0 {
                judge(socket.2 < 1.0)
            } else {
                Verdict::Info
            },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_add_up_and_the_slowest_counts() {
        let s = Samples::parse(
            "sample\tdrops.socket.requests\t9000\nsample\tdrops.socket.failed\t0\n\
             sample\tdrops.socket.longest\t0.4\nsample\tdrops.socket.requests\t9100\n\
             sample\tdrops.socket.failed\t0\nsample\tdrops.socket.longest\t1.2\n\
             sample\tdrops.plain.requests\t9000\nsample\tdrops.plain.failed\t40\n\
             sample\tdrops.plain.longest\t0.2\n",
        )
        .unwrap();
        let rows = rows(&s);
        assert_eq!(rows[0].measured, "0 of 18100");
        assert_eq!(rows[0].anchor, "40 of 9000");
        assert!(rows[0].verdict == Verdict::Pass);
        assert_eq!(rows[1].measured, "1.200 s");
        assert!(rows[1].verdict == Verdict::Fail);
    }
}
