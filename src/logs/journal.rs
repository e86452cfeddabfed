//! journalctl's JSON entries (`-o json`), read and printed: one host's lines as journalctl's
//! own `short` output shows them (the host's local time), several hosts' with a host column and
//! UTC timestamps to the microsecond, so lines of hosts in different zones compare.

use serde_json::Value;

use super::time::civil_from_days;

/// The fields asked for (`--output-fields`); journalctl always adds `__CURSOR` and
/// `__REALTIME_TIMESTAMP`.
pub(super) const FIELDS: &str = "MESSAGE,_HOSTNAME,SYSLOG_IDENTIFIER,_COMM,_PID,SYSLOG_PID";

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    /// Microseconds since the epoch, by the host's clock.
    pub at: i64,
    pub cursor: String,
    pub hostname: String,
    /// SYSLOG_IDENTIFIER, or the command's name.
    pub identifier: String,
    pub pid: String,
    pub message: String,
}

impl Entry {
    /// One line of `journalctl -o json`; None for anything else (journalctl's own notes).
    pub(super) fn parse(line: &str) -> Option<Entry> {
        let value: Value = serde_json::from_str(line.trim()).ok()?;
        let field = |name: &str| text_of(value.get(name)?);
        Some(Entry {
            at: field("__REALTIME_TIMESTAMP")?.parse().ok()?,
            cursor: field("__CURSOR")?,
            hostname: field("_HOSTNAME").unwrap_or_default(),
            identifier: field("SYSLOG_IDENTIFIER")
                .or_else(|| field("_COMM"))
                .unwrap_or_else(|| "unknown".into()),
            pid: field("_PID")
                .or_else(|| field("SYSLOG_PID"))
                .unwrap_or_default(),
            message: match value.get("MESSAGE") {
                Some(Value::Null) | None => "[blob data]".into(),
                Some(message) => text_of(message).unwrap_or_else(|| "[blob data]".into()),
            },
        })
    }

    /// As journalctl's `short` output prints it, in a zone `offset` seconds east of UTC:
    /// `Jan 02 03:04:05 web1 hello-go[123]: message`.
    pub(super) fn short(&self, offset: i64) -> String {
        let local = self.at.div_euclid(1_000_000) + offset;
        let (_, month, day) = civil_from_days(local.div_euclid(86_400));
        let seconds = local.rem_euclid(86_400);
        let stamp = format!(
            "{} {day:02} {:02}:{:02}:{:02}",
            MONTHS[month as usize - 1],
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        );
        self.with_head(&format!("{stamp} {} ", self.hostname))
    }

    /// With a host column and the UTC time to the microsecond:
    /// `web1 | 2025-01-02T03:04:05.000006Z hello-go[123]: message`.
    pub(super) fn merged(&self, host: &str, width: usize) -> String {
        let seconds = self.at.div_euclid(1_000_000);
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        let of_day = seconds.rem_euclid(86_400);
        let stamp = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60,
            self.at.rem_euclid(1_000_000)
        );
        let column = format!("{host:<width$} | ");
        let text = self.with_head(&format!("{stamp} "));
        // Continuation lines keep the host column too, so every line says where it is from.
        text.lines()
            .map(|l| format!("{column}{l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `HEAD identifier[pid]: message`, a multi-line message's later lines indented to where
    /// the message starts, as journalctl does.
    fn with_head(&self, head: &str) -> String {
        let pid = if self.pid.is_empty() {
            String::new()
        } else {
            format!("[{}]", self.pid)
        };
        let lead = format!("{head}{}{pid}: ", self.identifier);
        let indent = " ".repeat(lead.chars().count());
        let mut lines = self.message.trim_end_matches('\n').split('\n');
        let mut text = format!("{lead}{}", lines.next().unwrap_or_default());
        for line in lines {
            text.push('\n');
            text.push_str(&indent);
            text.push_str(line);
        }
        text
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A JSON field as text: journalctl writes a string, or an array of bytes for a value that is
/// not valid UTF-8 (or has control characters).
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(bytes) => {
            let bytes: Option<Vec<u8>> = bytes
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            Some(String::from_utf8_lossy(&bytes?).into_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1735787045000006","_HOSTNAME":"web-a","SYSLOG_IDENTIFIER":"hello-go","_PID":"123","MESSAGE":"listening on :8080","__MONOTONIC_TIMESTAMP":"1"}"#;

    #[test]
    fn entries_print_as_journalctl_and_merged() {
        let entry = Entry::parse(LINE).unwrap();
        assert_eq!(entry.at, 1_735_787_045_000_006);
        assert_eq!(entry.cursor, "s=1;i=2");
        assert_eq!(
            entry.short(3600),
            "Jan 02 04:04:05 web-a hello-go[123]: listening on :8080"
        );
        assert_eq!(
            entry.merged("web1", 6),
            "web1   | 2025-01-02T03:04:05.000006Z hello-go[123]: listening on :8080"
        );
    }

    #[test]
    fn odd_messages_still_print() {
        let bytes = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"0","_COMM":"app","MESSAGE":[104,105,255,10,116,119,111]}"#;
        let entry = Entry::parse(bytes).unwrap();
        assert_eq!(entry.identifier, "app");
        assert_eq!(entry.message, "hi\u{fffd}\ntwo");
        assert_eq!(
            entry.short(0),
            "Jan 01 00:00:00  app: hi\u{fffd}\n                      two"
        );
        assert_eq!(
            entry.merged("h", 1),
            "h | 1970-01-01T00:00:00.000000Z app: hi\u{fffd}\nh |                                  two"
        );
        let null = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"5","MESSAGE":null}"#;
        assert_eq!(Entry::parse(null).unwrap().message, "[blob data]");
        assert_eq!(Entry::parse("-- No entries --"), None);
    }
}
