//! `[deploy]`: how many releases a host keeps, and whether a release is tried on a scratch socket
//! before the switch.

use anyhow::Result;
use toml::Spanned;

use super::model::Deploy;
use super::raw::RawDeploy;
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
                     so it needs [service] listen\n  help: set [service] listen, or remove \
                     preflight"
                        .into(),
                )
            } else {
                Ok(())
            }
        })?;
    }
    Ok(Deploy {
        keep_releases: raw.keep_releases.map_or(5, Spanned::into_inner),
        preflight: has_sockets && raw.preflight.is_none_or(Spanned::into_inner),
    })
}
