//! `--since` and `--until` in journalctl's forms (systemd.time(7)), read here before any host
//! is asked: a typo stops shipit with the forms it takes. The host's journalctl still reads the
//! value itself; shipit places it in time only where journalctl cannot help, `--until` with
//! `-f` (journalctl keeps following past it).

use anyhow::Result;

const MICROS: i64 = 1_000_000;
const DAY: i64 = 86_400 * MICROS;

/// A checked time in one of journalctl's forms.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TimeSpec {
    pub text: String,
    form: Form,
}

#[derive(Debug, Clone, PartialEq)]
enum Form {
    Now,
    Epoch(i64),
    Relative(i64),
    Absolute {
        /// Today when None.
        date: Option<(i64, u32, u32)>,
        /// Days after `date` (`yesterday` is today, -1).
        days: i64,
        /// Microseconds into the day; midnight when None.
        time: Option<i64>,
        zone: Zone,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Zone {
    /// The host's own.
    Host,
    Utc,
    /// A zone name shipit cannot place (`Europe/Berlin`, `CET`).
    Named,
}

const FORMS: &str = "\"2025-01-02 10:00[:00]\", \"10:00\", \"today\", \"yesterday\", \"now\", \
                     \"-1h\", \"+30min\", \"2h ago\", \"@1735787045\", each optionally ending in \
                     \"UTC\"";

impl TimeSpec {
    pub(super) fn parse(flag: &str, text: &str) -> Result<TimeSpec> {
        let bad = |why: &str| {
            crate::error::tagged(
                crate::error::Category::Usage,
                anyhow::anyhow!(
                    "{flag} {text:?} is not a time journalctl reads{why}\n  help: use one of {FORMS}"
                ),
            )
        };
        if text.chars().any(char::is_control) {
            return Err(bad(": it has a control character"));
        }
        let form = parse_form(text.trim()).map_err(|why| bad(&format!(": {why}")))?;
        Ok(TimeSpec {
            text: text.trim().to_string(),
            form,
        })
    }

    /// Microseconds since the epoch, for a host whose clock reads `now` (µs) in a zone
    /// `offset` seconds east of UTC; None for a named zone.
    pub(super) fn resolve(&self, now: i64, offset: i64) -> Option<i64> {
        match &self.form {
            Form::Now => Some(now),
            Form::Epoch(at) => Some(*at),
            Form::Relative(delta) => Some(now + delta),
            Form::Absolute {
                date,
                days,
                time,
                zone,
            } => {
                let offset = match zone {
                    Zone::Host => offset * MICROS,
                    Zone::Utc => 0,
                    Zone::Named => return None,
                };
                let day = match date {
                    Some((y, m, d)) => days_from_civil(*y, *m, *d) * DAY,
                    None => (now + offset).div_euclid(DAY) * DAY,
                };
                Some(day + days * DAY + time.unwrap_or(0) - offset)
            }
        }
    }
}

fn parse_form(text: &str) -> Result<Form, String> {
    if text.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(epoch) = text.strip_prefix('@') {
        return seconds(epoch).map(Form::Epoch);
    }
    if let Some(span) = text.strip_prefix('+') {
        return parse_span(span).map(Form::Relative);
    }
    if let Some(span) = text.strip_prefix('-') {
        return parse_span(span).map(|s| Form::Relative(-s));
    }
    if let Some(span) = text.strip_suffix(" ago") {
        return parse_span(span).map(|s| Form::Relative(-s));
    }
    if let Some(span) = text.strip_suffix(" left") {
        return parse_span(span).map(Form::Relative);
    }
    let mut words: Vec<&str> = text.split_whitespace().collect();
    let zone = match words.last().copied() {
        Some("UTC") if words.len() > 1 => Zone::Utc,
        Some(last) if words.len() > 1 && is_zone_name(last) => Zone::Named,
        _ => Zone::Host,
    };
    if zone != Zone::Host {
        words.pop();
    }
    let midnight = |days| Form::Absolute {
        date: None,
        days,
        time: None,
        zone: zone.clone(),
    };
    match words.as_slice() {
        ["now"] => return Ok(Form::Now),
        ["today"] => return Ok(midnight(0)),
        ["yesterday"] => return Ok(midnight(-1)),
        ["tomorrow"] => return Ok(midnight(1)),
        _ => {}
    }
    if words.first().is_some_and(|w| is_weekday(w)) {
        words.remove(0);
    }
    let (date, time) = match words.as_slice() {
        [one] if one.contains('T') && one.contains('-') => {
            let (date, time) = one.split_once('T').unwrap_or_default();
            (Some(parse_date(date)?), Some(parse_time(time)?))
        }
        [one] if one.contains('-') => (Some(parse_date(one)?), None),
        [one] if one.chars().all(|c| c.is_ascii_alphabetic()) => {
            return Err(format!(
                "{one:?} is not one of now, today, yesterday and tomorrow"
            ));
        }
        [one] => (None, Some(parse_time(one)?)),
        [date, time] => (Some(parse_date(date)?), Some(parse_time(time)?)),
        _ => return Err("it is not a date, a time or a span".into()),
    };
    Ok(Form::Absolute {
        date,
        days: 0,
        time,
        zone,
    })
}

fn is_weekday(word: &str) -> bool {
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let word = word.to_ascii_lowercase();
    DAYS.iter()
        .any(|d| word == *d || (word.len() == 3 && d.starts_with(&word)))
}

/// `Europe/Berlin`, `America/Argentina/Buenos_Aires`, or an abbreviation such as `CET`.
fn is_zone_name(word: &str) -> bool {
    let part = |p: &str| {
        p.starts_with(|c: char| c.is_ascii_alphabetic())
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
    };
    if word.contains('/') {
        return word.split('/').all(part);
    }
    (3..=5).contains(&word.len()) && word.chars().all(|c| c.is_ascii_uppercase())
}

/// `YYYY-MM-DD` or `YY-MM-DD` (69–99 meaning 19YY, as strptime's %y).
fn parse_date(text: &str) -> Result<(i64, u32, u32), String> {
    let bad = || format!("{text:?} is not a date like 2025-01-02");
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return Err(bad());
    };
    let number = |s: &str| {
        (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<i64>().ok())
            .flatten()
    };
    let (Some(y), Some(m), Some(d)) = (number(year), number(month), number(day)) else {
        return Err(bad());
    };
    let y = match year.len() {
        4 => y,
        2 if y >= 69 => 1900 + y,
        2 => 2000 + y,
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m as u32) {
        return Err(bad());
    }
    Ok((y, m as u32, d as u32))
}

/// `HH:MM`, `HH:MM:SS` or `HH:MM:SS.ffffff`, in microseconds into the day.
fn parse_time(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a time like 10:00 or 10:00:30");
    let (clock, fraction) = text.split_once('.').unwrap_or((text, ""));
    let parts: Vec<&str> = clock.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.chars().all(|c| c.is_ascii_digit()))
        || (!fraction.is_empty() && parts.len() != 3)
    {
        return Err(bad());
    }
    let field = |i: usize| parts.get(i).map_or(0, |p| p.parse::<i64>().unwrap_or(99));
    let (h, m, s) = (field(0), field(1), field(2));
    if h > 23 || m > 59 || s > 59 {
        return Err(bad());
    }
    Ok((h * 3600 + m * 60 + s) * MICROS + micros_of_fraction(fraction).ok_or_else(bad)?)
}

/// `1735787045` or `1735787045.5`, in microseconds.
fn seconds(text: &str) -> Result<i64, String> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole: i64 = (!whole.is_empty() && whole.chars().all(|c| c.is_ascii_digit()))
        .then(|| whole.parse().ok())
        .flatten()
        .ok_or_else(|| format!("{text:?} is not a number of seconds"))?;
    let fraction =
        micros_of_fraction(fraction).ok_or_else(|| format!("{text:?} is not a number"))?;
    Ok(whole * MICROS + fraction)
}

fn micros_of_fraction(digits: &str) -> Option<i64> {
    if !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 9 {
        return None;
    }
    let padded = format!("{digits:0<6}");
    padded[..6].parse().ok()
}

/// A span as systemd reads one: numbers (with an optional fraction) each followed by a unit
/// (seconds when none), spaces allowed between: `1h 30min`, `90s`, `2.5h`, `1 day`.
fn parse_span(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("a span like 1h or 30min must follow".into());
    }
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_end];
        if number.is_empty() {
            return Err(format!("{text:?} is not a span like 1h or 30min"));
        }
        rest = rest[number_end..].trim_start();
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = rest[unit_end..].trim_start();
        let Some(scale) = unit_micros(unit) else {
            return Err(format!(
                "{unit:?} is not a unit of time (s, min, h, d, w, …)"
            ));
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole
                .parse()
                .map_err(|_| format!("{number:?} is not a number"))?
        };
        let fraction =
            fraction_of(fraction, scale).ok_or_else(|| format!("{number:?} is not a number"))?;
        total = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(fraction))
            .and_then(|v| total.checked_add(v))
            .ok_or("the span is too long")?;
    }
    Ok(total)
}

fn fraction_of(digits: &str, scale: i64) -> Option<i64> {
    if digits.is_empty() {
        return Some(0);
    }
    if !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 9 {
        return None;
    }
    let value: i64 = digits.parse().ok()?;
    Some(value * scale / 10i64.pow(digits.len() as u32))
}

/// systemd's time units (parse_sec), in microseconds.
fn unit_micros(unit: &str) -> Option<i64> {
    Some(match unit {
        "" | "s" | "sec" | "second" | "seconds" => MICROS,
        "us" | "usec" | "µs" | "μs" => 1,
        "ms" | "msec" => 1_000,
        "m" | "min" | "minute" | "minutes" => 60 * MICROS,
        "h" | "hr" | "hour" | "hours" => 3_600 * MICROS,
        "d" | "day" | "days" => DAY,
        "w" | "week" | "weeks" => 7 * DAY,
        "M" | "month" | "months" => 2_629_800 * MICROS,
        "y" | "year" | "years" => 31_557_600 * MICROS,
        _ => return None,
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(super) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number from [`days_from_civil`].
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-02T03:04:05.000006Z
    const NOW: i64 = 1_735_787_045 * MICROS + 6;

    fn at(text: &str, offset: i64) -> Option<i64> {
        TimeSpec::parse("--since", text)
            .unwrap()
            .resolve(NOW, offset)
    }

    #[test]
    fn forms_resolve_as_journalctl_places_them() {
        let midnight_utc = 1_735_776_000 * MICROS;
        assert_eq!(at("now", 0), Some(NOW));
        assert_eq!(at("today", 0), Some(midnight_utc));
        assert_eq!(at("yesterday UTC", 3600), Some(midnight_utc - DAY));
        assert_eq!(at("tomorrow", 0), Some(midnight_utc + DAY));
        // 03:04 UTC is 04:04 at +01:00: still the 2nd there.
        assert_eq!(at("today", 3600), Some(midnight_utc - 3600 * MICROS));
        assert_eq!(at("-1h", 0), Some(NOW - 3600 * MICROS));
        assert_eq!(at("+1h 30min", 0), Some(NOW + 5400 * MICROS));
        assert_eq!(at("2.5h ago", 0), Some(NOW - 9000 * MICROS));
        assert_eq!(at("10 min left", 0), Some(NOW + 600 * MICROS));
        assert_eq!(at("@1735787045.5", 0), Some(1_735_787_045_500_000));
        assert_eq!(
            at("2025-01-02 03:00", 0),
            Some(midnight_utc + 3 * 3600 * MICROS)
        );
        assert_eq!(
            at("2025-01-02 03:00:10 UTC", 7200),
            Some(midnight_utc + (3 * 3600 + 10) * MICROS)
        );
        assert_eq!(
            at("Thu 2025-01-02 03:00", -3600),
            Some(midnight_utc + 4 * 3600 * MICROS)
        );
        assert_eq!(at("25-01-02", 0), Some(midnight_utc));
        assert_eq!(
            at("2025-01-02T03:00:00", 0),
            Some(midnight_utc + 3 * 3600 * MICROS)
        );
        assert_eq!(at("10:30", 0), Some(midnight_utc + 37_800 * MICROS));
        assert_eq!(at("10:30:00.25", 0), Some(midnight_utc + 37_800_250_000));
        assert_eq!(at("2025-01-02 10:00 Europe/Berlin", 0), None);
    }

    #[test]
    fn typos_are_refused_with_the_forms() {
        for bad in [
            "",
            "1 huor ago",
            "2025-13-01",
            "2025-02-30",
            "25:00",
            "10:61",
            "yesterdy",
            "2025-01-02 10:00 10:00",
            "@abc",
            "+",
            "1h\n",
            "-1 fortnight",
        ] {
            let err = TimeSpec::parse("--since", bad)
                .map(|t| format!("accepted as {t:?}"))
                .unwrap_or_else(|e| format!("{e:#}"));
            assert!(err.contains("help: use one of"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn days_round_trip() {
        for (y, m, d) in [
            (1970, 1, 1),
            (2000, 2, 29),
            (2025, 1, 2),
            (2038, 1, 19),
            (1969, 12, 31),
        ] {
            assert_eq!(civil_from_days(days_from_civil(y, m, d)), (y, m, d));
        }
        assert_eq!(days_from_civil(2025, 1, 2), 20_090);
    }

    /// This machine's own systemd reads the same forms the same way (where it is installed).
    #[test]
    fn systemd_analyze_agrees() {
        let Some(version) = crate::systemd::local_version() else {
            return;
        };
        if version < 244 {
            return;
        }
        for text in [
            "2025-01-02 03:00",
            "2025-01-02 03:00:10 UTC",
            "@1735787045.5",
            "25-01-02 UTC",
            "Thu 2025-01-02 03:00 UTC",
            "2025-01-02 UTC",
        ] {
            let out = std::process::Command::new("systemd-analyze")
                .args(["timestamp", text])
                .env("TZ", "UTC")
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stdout);
            let epoch = said
                .lines()
                .find_map(|l| l.trim().strip_prefix("UNIX seconds: @"))
                .unwrap_or_else(|| panic!("{text}: {said}"));
            let micros = seconds(epoch).unwrap();
            assert_eq!(at(text, 0), Some(micros), "{text}");
        }
    }
}
