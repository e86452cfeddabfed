//! `[deploy]`: how many releases a host keeps, whether a release is tried on a scratch socket
//! before the switch, and the rollout's defaults, read by the deploy flags' own parsers.

use anyhow::Result;
use toml::Spanned;

use super::model::Deploy;
use super::plan::{self, Amount, DEFAULT_PARALLEL};
use super::raw::{AmountValue, RawDeploy};
use super::source::Source;

pub(super) fn parse_deploy(src: &Source, raw: RawDeploy, has_sockets: bool) -> Result<Deploy> {
    if let Some(keep) = &raw.keep_releases {
        src.check(keep, |k| {
            if (2..=100).contains(k) {
                Ok(())
            } else {
                Err("keep_releases must be between 2 and 100".into())
            }
        })?;
    }
    if let Some(preflight) = &raw.preflight {
        src.check(preflight, |on| {
            if *on && !has_sockets {
                Err(
                    "preflight starts the new release on a socket of its own before the switch, \
                     so it needs [service] listen (or a [health] command, run in the new \
                     release)\n  help: set [service] listen, or remove preflight"
                        .into(),
                )
            } else {
                Ok(())
            }
        })?;
    }
    let duration = |v: Option<Spanned<String>>| {
        v.map(|v| plan::parse_duration(v.get_ref()).map_err(|why| src.error(&v.span(), why)))
            .transpose()
    };
    Ok(Deploy {
        keep_releases: raw.keep_releases.map_or(5, Spanned::into_inner),
        preflight: has_sockets && raw.preflight.is_none_or(Spanned::into_inner),
        batch: value(src, raw.batch, plan::parse_batch)?.unwrap_or(Amount::Percent(100)),
        canary: value(src, raw.canary, plan::parse_canary)?,
        max_fail: value(src, raw.max_fail, plan::parse_amount)?.unwrap_or(Amount::Count(0)),
        parallel: value(src, raw.parallel, plan::parse_parallel)?.unwrap_or(DEFAULT_PARALLEL),
        confirm_timeout: duration(raw.confirm_timeout)?,
        lock_wait: duration(raw.lock_wait)?,
    })
}

/// A rollout value, read by the parser of the flag of the same name.
fn value<T>(
    src: &Source,
    raw: Option<Spanned<AmountValue>>,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>> {
    raw.map(|v| parse(&v.get_ref().text()).map_err(|why| src.error(&v.span(), why)))
        .transpose()
}
