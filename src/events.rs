//! `--events`: what a deploy, rollback or exec does, as one JSON object per line on stdout, each
//! written and flushed as it happens so a pipeline can follow along. The sink is handed down
//! with the work (as `Cancel` is); a command without `--events` hands down [`Events::off`].
//! The schema is documented in `docs/src/reference/events.schema.json`: bump [`SCHEMA`] when an
//! event loses or changes a field (adding one does not).

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::Category;

/// The version of the events' shape, in every line as `"schema"`.
pub const SCHEMA: u32 = 1;

/// One thing that happened. `host` names the host an event is about.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RolloutStarted {
        app: String,
        /// `-e`'s environment; null without one.
        environment: Option<String>,
        version: String,
        release: String,
        hosts: Vec<String>,
    },
    Connected {
        host: String,
    },
    Locked {
        host: String,
    },
    /// `skipped`: the host had the package already; nothing was sent.
    Uploaded {
        host: String,
        bytes: u64,
        seconds: f64,
        resumed_from: u64,
        skipped: bool,
    },
    Switched {
        host: String,
        release: String,
    },
    /// One try of the health check: its `kind` (url, tcp, command), `answer` (and for a URL
    /// `status`) when it answered, `error` when it could not ask.
    Probe {
        host: String,
        attempt: u32,
        kind: String,
        status: Option<u16>,
        answer: Option<String>,
        error: Option<String>,
        ok: bool,
    },
    Healthy {
        host: String,
        release: String,
    },
    Failed {
        host: String,
        error: String,
        category: String,
        exit_code: u8,
    },
    RolledBack {
        host: String,
        release: String,
    },
    HookRan {
        host: String,
        hook: String,
        ok: bool,
        exit_status: Option<i64>,
    },
    Unlocked {
        host: String,
    },
    /// The same object `deploy --json` prints.
    RolloutFinished {
        report: Box<RawValue>,
    },
    RollbackStarted {
        app: String,
        environment: Option<String>,
        host: String,
    },
    /// The same object `rollback --json` prints.
    RollbackFinished {
        report: Box<RawValue>,
    },
    ExecStarted {
        command: Vec<String>,
        hosts: Vec<String>,
    },
    Exited {
        host: String,
        status: Option<i64>,
        error: Option<String>,
    },
    /// The same object `exec --json` prints.
    ExecFinished {
        report: Box<RawValue>,
    },
}

/// A report event's `report`: `value` as its own `--json` prints it (same serializer, same
/// order of keys), on one line.
pub fn report(value: &impl Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("reports serialize")
}

impl Event {
    /// `host` did not make it: the error as shipit prints it, its category (the exit code's
    /// name, kebab-case: `rolled-back`) and exit code.
    pub fn failed(host: &str, error: &anyhow::Error) -> Event {
        let category = crate::error::category_of(error).unwrap_or(Category::Remote);
        Event::Failed {
            host: host.to_string(),
            error: format!("{error:#}"),
            category: kebab(&format!("{category:?}")),
            exit_code: category.exit_code(),
        }
    }
}

/// `RolledBack` → `rolled-back`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A line as written: the schema version and the time beside the event's own fields.
#[derive(Serialize)]
struct Line<'a> {
    schema: u32,
    ts: String,
    #[serde(flatten)]
    event: &'a Event,
}

type Writer = Box<dyn Write + Send>;

/// Where events go: nowhere, or stdout (shared by the threads of a fleet, line by line).
#[derive(Clone, Default)]
pub struct Events {
    out: Option<Arc<Mutex<Writer>>>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.on() {
            "Events(on)"
        } else {
            "Events(off)"
        })
    }
}

impl Events {
    pub fn off() -> Events {
        Events::default()
    }

    pub fn stdout() -> Events {
        Events::to(Box::new(std::io::stdout()))
    }

    fn to(writer: Writer) -> Events {
        Events {
            out: Some(Arc::new(Mutex::new(writer))),
        }
    }

    /// Whether events are written: then nothing else may go to stdout.
    pub fn on(&self) -> bool {
        self.out.is_some()
    }

    /// Writes `event` as one line and flushes it. A reader that went away stops nothing: the
    /// deploy goes on and its exit code still tells.
    pub fn emit(&self, event: Event) {
        let Some(out) = &self.out else { return };
        let line = Line {
            schema: SCHEMA,
            ts: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            event: &event,
        };
        let Ok(text) = serde_json::to_string(&line) else {
            return;
        };
        let mut out = out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(out, "{text}").and_then(|()| out.flush());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const SCHEMA_FILE: &str = include_str!("../docs/src/reference/events.schema.json");

    /// One of each event. The match makes a new variant fail to compile until it is added here,
    /// and so checked against the documented schema.
    fn samples() -> Vec<Event> {
        let host = || "web1".to_string();
        let all = vec![
            Event::RolloutStarted {
                app: "hello".into(),
                environment: Some("staging".into()),
                version: "1.0.0".into(),
                release: "20260101T000000Z-1.0.0".into(),
                hosts: vec![host()],
            },
            Event::Connected { host: host() },
            Event::Locked { host: host() },
            Event::Uploaded {
                host: host(),
                bytes: 2048,
                seconds: 0.4,
                resumed_from: 0,
                skipped: false,
            },
            Event::Switched {
                host: host(),
                release: "r".into(),
            },
            Event::Probe {
                host: host(),
                attempt: 1,
                kind: "url".into(),
                status: Some(200),
                answer: Some("HTTP 200".into()),
                error: None,
                ok: true,
            },
            Event::Healthy {
                host: host(),
                release: "r".into(),
            },
            Event::Failed {
                host: host(),
                error: "no".into(),
                category: "rolled-back".into(),
                exit_code: 6,
            },
            Event::RolledBack {
                host: host(),
                release: "r".into(),
            },
            Event::HookRan {
                host: host(),
                hook: "after_switch".into(),
                ok: false,
                exit_status: Some(3),
            },
            Event::Unlocked { host: host() },
            Event::RolloutFinished {
                report: report(
                    r#"{"app":"a","environment":"staging","version":"1","release":"r","ok":true,"hosts":[]}"#,
                ),
            },
            Event::RollbackStarted {
                app: "hello".into(),
                environment: None,
                host: host(),
            },
            Event::RollbackFinished {
                report: report(r#"{"app":"a","environment":null,"host":"web1","ok":true}"#),
            },
            Event::ExecStarted {
                command: vec!["true".into()],
                hosts: vec![host()],
            },
            Event::Exited {
                host: host(),
                status: Some(0),
                error: None,
            },
            Event::ExecFinished {
                report: report(r#"{"command":["true"],"ok":true,"hosts":[]}"#),
            },
        ];
        for event in &all {
            match event {
                Event::RolloutStarted { .. }
                | Event::Connected { .. }
                | Event::Locked { .. }
                | Event::Uploaded { .. }
                | Event::Switched { .. }
                | Event::Probe { .. }
                | Event::Healthy { .. }
                | Event::Failed { .. }
                | Event::RolledBack { .. }
                | Event::HookRan { .. }
                | Event::Unlocked { .. }
                | Event::RolloutFinished { .. }
                | Event::RollbackStarted { .. }
                | Event::RollbackFinished { .. }
                | Event::ExecStarted { .. }
                | Event::Exited { .. }
                | Event::ExecFinished { .. } => {}
            }
        }
        all
    }

    fn report(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.into()).unwrap()
    }

    /// What a sink wrote, for the tests.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn written(events: Vec<Event>) -> Vec<serde_json::Value> {
        let captured = Captured::default();
        let sink = Events::to(Box::new(captured.clone()));
        for event in events {
            sink.emit(event);
        }
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn every_event_is_one_line_valid_against_the_documented_schema() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA_FILE).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        for line in written(samples()) {
            let errors: Vec<String> = validator
                .iter_errors(&line)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{line}: {errors:?}");
            assert_eq!(line["schema"], SCHEMA);
        }
    }

    #[test]
    fn the_schema_documents_exactly_the_events_there_are() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA_FILE).unwrap();
        let documented: BTreeSet<String> = schema["$defs"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|def| def["properties"]["event"]["const"].as_str())
            .map(String::from)
            .collect();
        let emitted: BTreeSet<String> = written(samples())
            .iter()
            .map(|line| line["event"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(documented, emitted);
        assert_eq!(schema["properties"]["schema"]["const"], SCHEMA);
    }

    #[test]
    fn a_failure_names_its_category_as_the_exit_codes_do() {
        let error = crate::error::tagged(Category::RolledBack, anyhow::anyhow!("unhealthy"));
        let line = &written(vec![Event::failed("web1", &error)])[0];
        assert_eq!(line["category"], "rolled-back");
        assert_eq!(line["exit_code"], 6);
        assert_eq!(line["error"], "unhealthy");
    }

    #[test]
    fn the_schema_names_every_category() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA_FILE).unwrap();
        let documented = &schema["$defs"]["failed"]["properties"]["category"]["enum"];
        for category in Category::ALL {
            let error = crate::error::tagged(category, anyhow::anyhow!("x"));
            let line = &written(vec![Event::failed("web1", &error)])[0];
            assert!(
                documented.as_array().unwrap().contains(&line["category"]),
                "{line}"
            );
        }
    }

    #[test]
    fn off_writes_nothing() {
        assert!(!Events::off().on());
        Events::off().emit(Event::Connected { host: "a".into() });
    }
}
