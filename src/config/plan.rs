//! The values a rollout is planned with (`N|P%` amounts, the canary, durations, parallelism),
//! and the one parser of each that both the command line and `[deploy]` use, so a value valid
//! in one place is valid in the other.

use std::time::Duration;

/// A number of hosts, or a share of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Count(usize),
    Percent(u8),
}

impl std::str::FromStr for Amount {
    type Err = String;

    fn from_str(text: &str) -> Result<Amount, String> {
        let parsed = match text.strip_suffix('%') {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= 100)
                .map(Amount::Percent),
            None => text.parse::<usize>().ok().map(Amount::Count),
        };
        parsed
            .ok_or_else(|| "use a number of hosts (like 2) or a percentage (like 25%)".to_string())
    }
}

impl Amount {
    /// How many of `total` hosts, rounded up.
    pub fn of(self, total: usize) -> usize {
        match self {
            Amount::Count(n) => n,
            Amount::Percent(p) => (total * p as usize).div_ceil(100),
        }
    }
}

/// As it is written: `2` or `25%`.
impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// The host switched alone before any batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canary {
    First,
    Host(String),
}

/// As it is written: `1` (the first host) or the host's name.
impl std::fmt::Display for Canary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Canary::First => f.write_str("1"),
            Canary::Host(name) => f.write_str(name),
        }
    }
}

/// Hosts a deploy prepares at once when neither `--parallel` nor `[deploy] parallel` says.
pub const DEFAULT_PARALLEL: usize = 8;
/// The most `--parallel` and `[deploy] parallel` take.
pub const MAX_PARALLEL: usize = 256;

pub fn parse_amount(text: &str) -> Result<Amount, String> {
    text.parse()
}

pub fn parse_batch(text: &str) -> Result<Amount, String> {
    let batch = parse_amount(text)?;
    if batch.of(100) == 0 {
        return Err("at least one host per batch".into());
    }
    Ok(batch)
}

pub fn parse_canary(text: &str) -> Result<Canary, String> {
    Ok(if text == "1" {
        Canary::First
    } else {
        Canary::Host(text.to_string())
    })
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like \"30s\" or \"5m\": {e}"))
}

pub fn parse_parallel(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_PARALLEL).contains(n))
        .ok_or_else(|| {
            format!("{text:?}: parallel must be a number of hosts from 1 to {MAX_PARALLEL}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_back_as_written() {
        for text in ["3", "25%", "100%", "0"] {
            assert_eq!(parse_amount(text).unwrap().to_string(), text);
        }
        for bad in ["", "-1", "101%", "x%", "2.5"] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
        assert!(parse_batch("0").is_err() && parse_batch("0%").is_err());
        assert_eq!(parse_canary("1"), Ok(Canary::First));
        assert_eq!(parse_parallel("256"), Ok(256));
        assert!(parse_parallel("0").is_err() && parse_parallel("257").is_err());
    }
}
