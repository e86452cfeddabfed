//! Routing, health checks, metrics and configuration.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::http::{Request, Response};
use crate::{build_time, version, APP_NAME};

const METRIC_PREFIX: &str = "hello_rust";

/// client_golang's default buckets (`prometheus.DefBuckets`): 5ms to 10s.
const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The longest `GET /?delay=D` holds a request.
const MAX_DELAY: Duration = Duration::from_secs(30);

pub struct App {
    start: SystemTime,
    started: Instant,
    greeting: String,
    /// Request counts keyed by (path, status code).
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// How long requests took, by path.
    durations: Mutex<BTreeMap<&'static str, Histogram>>,
}

/// One path's request durations: a count per bucket (the last one +Inf), not yet cumulative,
/// and their sum.
#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        // The first bucket whose upper bound (le) is at least the duration.
        self.counts[DURATION_BUCKETS.partition_point(|le| *le < seconds)] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

impl App {
    pub fn new(start: SystemTime, greeting: String) -> Self {
        App {
            start,
            started: Instant::now(),
            greeting,
            requests: Mutex::new(BTreeMap::new()),
            durations: Mutex::new(BTreeMap::new()),
        }
    }

    /// Routes a request, counts and times it.
    pub fn respond(&self, req: &Request) -> Response {
        let begin = Instant::now();
        let path = match req.path.as_str() {
            "/" => "/",
            "/health" => "/health",
            "/metrics" => "/metrics",
            _ => "other",
        };
        let response = if path != "other" && req.method != "GET" && req.method != "HEAD" {
            Response::text(405, "method not allowed\n").header("Allow", "GET, HEAD")
        } else {
            match path {
                "/" => match delay(&req.query) {
                    Ok(wait) => {
                        std::thread::sleep(wait);
                        Response::text(
                            200,
                            format!("{} from {APP_NAME} {}\n", self.greeting, version()),
                        )
                    }
                    Err(why) => Response::text(400, format!("{why}\n")),
                },
                "/health" => health_response(),
                "/metrics" => Response::new(
                    200,
                    "text/plain; version=0.0.4",
                    self.render_metrics(SystemTime::now()),
                ),
                _ => Response::text(404, "404 page not found\n"),
            }
        };
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((path, response.status))
            .or_insert(0) += 1;
        self.observe(path, begin.elapsed());
        response
    }

    fn observe(&self, path: &'static str, took: Duration) {
        self.durations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(path)
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// Renders the Prometheus text exposition format (version 0.0.4).
    pub fn render_metrics(&self, now: SystemTime) -> String {
        let p = METRIC_PREFIX;
        let mut out = String::new();
        let _ = writeln!(out, "# HELP {p}_build_info Build information.");
        let _ = writeln!(out, "# TYPE {p}_build_info gauge");
        let _ = writeln!(
            out,
            "{p}_build_info{{version=\"{}\",build_time=\"{}\"}} 1",
            escape_label(version()),
            escape_label(build_time())
        );
        let _ = writeln!(
            out,
            "# HELP {p}_http_requests_total HTTP requests by path and status code."
        );
        let _ = writeln!(out, "# TYPE {p}_http_requests_total counter");
        for ((path, code), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "{p}_http_requests_total{{path=\"{}\",code=\"{code}\"}} {n}",
                escape_label(path)
            );
        }
        self.render_durations(&mut out);
        let start = self.start.duration_since(UNIX_EPOCH).unwrap_or_default();
        let _ = writeln!(out, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.");
        let _ = writeln!(out, "# TYPE process_start_time_seconds gauge");
        let _ = writeln!(out, "process_start_time_seconds {:.3}", start.as_secs_f64());
        let uptime = now
            .duration_since(self.start)
            .unwrap_or_else(|_| self.started.elapsed());
        let _ = writeln!(
            out,
            "# HELP {p}_uptime_seconds Seconds since the process started."
        );
        let _ = writeln!(out, "# TYPE {p}_uptime_seconds gauge");
        let _ = writeln!(out, "{p}_uptime_seconds {:.3}", uptime.as_secs_f64());
        out
    }

    /// The histogram as Prometheus reads one: cumulative buckets ending with le="+Inf" (which
    /// equals _count), then _sum and _count.
    fn render_durations(&self, out: &mut String) {
        let name = format!("{METRIC_PREFIX}_http_request_duration_seconds");
        let _ = writeln!(
            out,
            "# HELP {name} Time taken to answer HTTP requests, by path."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (path, h) in self
            .durations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let path = escape_label(path);
            let mut cumulative = 0;
            for (i, count) in h.counts.iter().enumerate() {
                cumulative += count;
                let le = DURATION_BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), f64::to_string);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{path=\"{path}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(out, "{name}_sum{{path=\"{path}\"}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{path=\"{path}\"}} {}", h.count);
        }
    }
}

/// `?delay=D` (`500ms`, `2s`): how long to hold a request, a slow request to watch a graceful
/// shutdown finish it. Zero without the parameter.
fn delay(query: &str) -> Result<Duration, String> {
    let Some(value) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("delay="))
    else {
        return Ok(Duration::ZERO);
    };
    let parsed = if let Some(ms) = value.strip_suffix("ms") {
        ms.parse().ok().map(Duration::from_millis)
    } else {
        value
            .strip_suffix('s')
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
    };
    parsed
        .filter(|d| *d <= MAX_DELAY)
        .ok_or_else(|| format!("delay must be a duration up to {MAX_DELAY:?}, like 500ms"))
}

/// Runs the health checks: the service is UP only if every check is UP.
fn health_response() -> Response {
    let mut checks = vec![(
        "state_dir",
        check_state_dir(
            std::env::var_os("STATE_DIRECTORY")
                .as_deref()
                .map(Path::new),
        ),
    )];
    if std::env::var_os("HELLO_HEALTH_DOWN").is_some_and(|v| !v.is_empty()) {
        checks.push(("forced", "DOWN: HELLO_HEALTH_DOWN is set".to_string()));
    }
    let up = checks.iter().all(|(_, c)| !c.starts_with("DOWN"));
    let status = if up { 200 } else { 503 };
    Response::new(status, "application/json", health_json(up, &checks))
        .header("Cache-Control", "no-store")
}

fn health_json(up: bool, checks: &[(&str, String)]) -> String {
    let checks = checks
        .iter()
        .map(|(k, v)| format!("{}:{}", json_string(k), json_string(v)))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "{{\"status\":{},\"version\":{},\"buildTime\":{},\"checks\":{{{checks}}}}}\n",
        json_string(if up { "UP" } else { "DOWN" }),
        json_string(version()),
        json_string(build_time()),
    )
}

/// Checks that `dir` (systemd's StateDirectory=) is writable.
fn check_state_dir(dir: Option<&Path>) -> String {
    let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) else {
        return "UP (no STATE_DIRECTORY)".to_string();
    };
    // systemd passes several directories colon-separated; check the first.
    let dir_str = dir.to_string_lossy();
    let dir = Path::new(dir_str.split(':').next().unwrap_or_default());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let probe = dir.join(format!(".health-{}-{nanos}", std::process::id()));
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|f| {
            drop(f);
            fs::remove_file(&probe)
        });
    match result {
        Ok(()) => "UP".to_string(),
        Err(e) => format!("DOWN: {}: {e}", probe.display()),
    }
}

/// Encodes `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < '\u{20}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Escapes a Prometheus label value.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Reads the `greeting` key from a YAML file; "hello" if missing.
pub fn load_greeting(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| parse_greeting(&text))
        .unwrap_or_else(|| "hello".to_string())
}

/// Understands just a top-level `greeting: text` or `greeting: "text"`
/// (or single quotes), with an optional trailing `# comment`.
pub fn parse_greeting(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix("greeting:")?.trim();
        if let Some(q) = value.chars().next().filter(|c| *c == '"' || *c == '\'') {
            if let Some(end) = value[1..].find(q) {
                return Some(value[1..1 + end].to_string());
            }
        }
        let value = match value.find(" #") {
            Some(i) => value[..i].trim_end(),
            None => value,
        };
        (!value.is_empty() && !value.starts_with('#')).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn escapes_json_strings() {
        assert_eq!(json_string("UP"), r#""UP""#);
        assert_eq!(json_string(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(json_string("l1\nl2\r\t"), r#""l1\nl2\r\t""#);
        assert_eq!(json_string("\u{1}\u{1f}"), r#""\u0001\u001f""#);
        assert_eq!(json_string("héllo ✓"), "\"héllo ✓\"");
    }

    #[test]
    fn health_json_shape() {
        let checks = [("state_dir", "DOWN: /x: \"denied\"".to_string())];
        assert_eq!(
            health_json(false, &checks),
            format!(
                "{{\"status\":\"DOWN\",\"version\":\"{}\",\"buildTime\":\"{}\",\
                 \"checks\":{{\"state_dir\":\"DOWN: /x: \\\"denied\\\"\"}}}}\n",
                version(),
                build_time()
            )
        );
    }

    #[test]
    fn state_dir_check() {
        assert_eq!(check_state_dir(None), "UP (no STATE_DIRECTORY)");
        let dir = std::env::temp_dir().join(format!("hello-rust-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(check_state_dir(Some(&dir)), "UP");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            0,
            "probe file left behind"
        );
        fs::remove_dir(&dir).unwrap();
        assert!(check_state_dir(Some(&dir)).starts_with("DOWN: "));
    }

    #[test]
    fn parses_greeting() {
        assert_eq!(
            parse_greeting("greeting: \"hi there\"\n"),
            Some("hi there".into())
        );
        assert_eq!(
            parse_greeting("# c\ngreeting: hey # trailing\n"),
            Some("hey".into())
        );
        assert_eq!(parse_greeting("greeting: 'single'"), Some("single".into()));
        assert_eq!(
            parse_greeting("greeting: \"a # not a comment\""),
            Some("a # not a comment".into())
        );
        assert_eq!(parse_greeting("other: x\n  greeting: nested\n"), None);
        assert_eq!(parse_greeting("greeting:\n"), None);
        assert_eq!(parse_greeting(""), None);
    }

    #[test]
    fn renders_metrics() {
        let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let app = App::new(start, "hello".into());
        let get = |path: &str| Request {
            method: "GET".into(),
            path: path.into(),
            query: String::new(),
        };
        assert_eq!(app.respond(&get("/")).status, 200);
        assert_eq!(app.respond(&get("/nope")).status, 404);
        assert_eq!(app.respond(&get("/nope/again")).status, 404);
        let out = app.render_metrics(start + Duration::from_millis(2_500));
        // How long the requests took varies; times_requests_by_path checks those lines.
        let histogram = "hello_rust_http_request_duration_seconds";
        assert!(out.contains(&format!("# TYPE {histogram} histogram\n")));
        assert!(out.contains(&format!("{histogram}_count{{path=\"other\"}} 2\n")));
        let out: String = out
            .lines()
            .filter(|l| !l.contains(histogram))
            .map(|l| format!("{l}\n"))
            .collect();
        let expected = format!(
            "# HELP hello_rust_build_info Build information.\n\
             # TYPE hello_rust_build_info gauge\n\
             hello_rust_build_info{{version=\"{}\",build_time=\"{}\"}} 1\n\
             # HELP hello_rust_http_requests_total HTTP requests by path and status code.\n\
             # TYPE hello_rust_http_requests_total counter\n\
             hello_rust_http_requests_total{{path=\"/\",code=\"200\"}} 1\n\
             hello_rust_http_requests_total{{path=\"other\",code=\"404\"}} 2\n\
             # HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n\
             # TYPE process_start_time_seconds gauge\n\
             process_start_time_seconds 1700000000.250\n\
             # HELP hello_rust_uptime_seconds Seconds since the process started.\n\
             # TYPE hello_rust_uptime_seconds gauge\n\
             hello_rust_uptime_seconds 2.500\n",
            version(),
            build_time()
        );
        assert_eq!(out, expected);
        assert_eq!(escape_label("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }

    #[test]
    fn times_requests_by_path() {
        let app = App::new(SystemTime::now(), "hello".into());
        app.observe("/", Duration::from_millis(3));
        app.observe("/", Duration::from_millis(300));
        app.observe("/", Duration::from_secs(20));
        let mut out = String::new();
        app.render_durations(&mut out);
        let name = "hello_rust_http_request_duration_seconds";
        for want in [
            format!("{name}_bucket{{path=\"/\",le=\"0.005\"}} 1\n"),
            format!("{name}_bucket{{path=\"/\",le=\"0.25\"}} 1\n"),
            format!("{name}_bucket{{path=\"/\",le=\"0.5\"}} 2\n"),
            format!("{name}_bucket{{path=\"/\",le=\"10\"}} 2\n"),
            format!("{name}_bucket{{path=\"/\",le=\"+Inf\"}} 3\n"),
            format!("{name}_sum{{path=\"/\"}} 20.303\n"),
            format!("{name}_count{{path=\"/\"}} 3\n"),
        ] {
            assert!(out.contains(&want), "missing {want:?} in:\n{out}");
        }
    }

    #[test]
    fn routes_requests() {
        let app = App::new(SystemTime::now(), "howdy".into());
        let get = |method: &str, path: &str, query: &str| {
            app.respond(&Request {
                method: method.into(),
                path: path.into(),
                query: query.into(),
            })
        };
        let r = get("GET", "/", "");
        assert_eq!(r.body, format!("howdy from hello-rust {}\n", version()));
        assert_eq!(get("POST", "/health", "").status, 405);
        let r = get("GET", "/metrics", "");
        assert_eq!(r.content_type, "text/plain; version=0.0.4");
        let started = Instant::now();
        assert_eq!(get("GET", "/", "x=1&delay=50ms").status, 200);
        assert!(started.elapsed() >= Duration::from_millis(50));
        for bad in ["delay=soon", "delay=31s", "delay=-1s", "delay=5"] {
            assert_eq!(get("GET", "/", bad).status, 400, "{bad}");
        }
    }
}
