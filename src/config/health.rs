//! `[health]`: the URL the health gate probes on each host, and how patiently.

use std::time::Duration;

use anyhow::Result;
use toml::Spanned;

use super::checks::validate_health_url;
use super::model::Health;
use super::raw::RawHealth;
use super::source::Source;

pub(super) fn parse_health(src: &Source, raw: RawHealth) -> Result<Health> {
    src.check(&raw.url, |u| validate_health_url(u))?;
    let duration = |value: Option<Spanned<String>>, default: Duration| -> Result<Duration> {
        match value {
            None => Ok(default),
            Some(v) => humantime::parse_duration(v.get_ref()).map_err(|e| {
                src.error(
                    &v.span(),
                    format!("{:?} is not a duration like \"2s\": {e}", v.get_ref()),
                )
            }),
        }
    };
    if let Some(status) = &raw.expect_status {
        src.check(status, |s| {
            if (100..600).contains(s) {
                Ok(())
            } else {
                Err("expect_status must be an HTTP status (100-599)".into())
            }
        })?;
    }
    Ok(Health {
        url: raw.url.into_inner(),
        expect_status: raw.expect_status.map_or(200, Spanned::into_inner),
        interval: duration(raw.interval, Duration::from_secs(1))?,
        timeout: duration(raw.timeout, Duration::from_secs(2))?,
        retries: raw.retries.unwrap_or(30),
        settle: duration(raw.settle, Duration::from_secs(3))?,
        check_version: raw.check_version.unwrap_or(true),
    })
}
