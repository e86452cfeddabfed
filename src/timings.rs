//! Phase timings for `bench/`: with `SHIPIT_TIMINGS=FILE` in the environment, each timed phase
//! appends one JSON line `{"phase": …, "seconds": …, "max_rss_kb": …}` to FILE, the last being
//! this process's peak resident memory so far (children such as `go build` not included).
//! Nothing happens without it.

use std::io::Write;
use std::time::Instant;

pub const ENV: &str = "SHIPIT_TIMINGS";

/// Runs `work`, recording how long it took as `phase` when timings are on.
pub fn time<T>(phase: &str, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = work();
    record(phase, started.elapsed().as_secs_f64());
    result
}

pub fn record(phase: &str, seconds: f64) {
    let Some(path) = std::env::var_os(ENV) else {
        return;
    };
    let line = serde_json::json!({
        "phase": phase,
        "seconds": seconds,
        "max_rss_kb": max_rss_kb(),
    })
    .to_string();
    // Best effort: a benchmark aid must never fail a build or a deploy.
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| writeln!(file, "{line}"));
}

fn max_rss_kb() -> i64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    usage.ru_maxrss
}
