//! What the host has before a deploy changes anything (`survey.sh`, after the lock, so no
//! other deploy of the app is writing): an earlier upload of the package, its releases, the
//! free space where the upload and the release go, and its clock. A package that will not fit
//! is refused before a byte of it is sent.

use std::borrow::Cow;

use anyhow::{Context, Result};

use crate::error::{Category, tagged};
use crate::hosts::Layout;
use crate::hosts::releases::{Release, parse_now, parse_releases};
use crate::hosts::script::{LIB, Script};
use crate::package::Package;
use crate::remote::Kind;

/// The script. A release already unpacked and checked against the manifest needs no package
/// at all; an upload only counts when its sha256 is right.
pub struct SurveyHost;

impl Script for SurveyHost {
    fn kind(&self) -> Kind {
        Kind::Survey
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![LIB.into(), include_str!("scripts/survey.sh").into()]
    }
}

/// What the host has before a deploy changes anything: an earlier upload of the package, its
/// releases, the free space where the upload and the release go, and its clock (to read the
/// journal from around the restart on).
pub struct Survey {
    pub earlier_upload: EarlierUpload,
    /// The release is unpacked and checked already.
    pub unpacked: bool,
    pub uploads_room: Room,
    pub releases_room: Room,
    pub releases: Vec<Release>,
    pub now: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlierUpload {
    /// The package (or its unpacked, checked release) is there already.
    Present,
    /// This many bytes of a partial upload (0: none).
    Partial(u64),
}

/// The filesystem a directory is on (or will be, for the nearest existing parent) and the
/// space it has for files that are not root's (what `df` calls available).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Room {
    pub device: u64,
    pub free: u64,
}

impl Survey {
    pub fn parse(out: &str) -> Result<Survey> {
        let value = |key: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
        };
        let numbers = |key: &str| -> Vec<u64> {
            out.lines()
                .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        };
        let (devices, free) = (numbers("device"), numbers("free"));
        let room = |i: usize| {
            let found = || {
                Some(Room {
                    device: *devices.get(i)?,
                    free: free.get(i)? * 1024,
                })
            };
            found().context("the host's `df` said nothing readable about where the package goes")
        };
        Ok(Survey {
            earlier_upload: match value("upload").unwrap_or("0") {
                "present" => EarlierUpload::Present,
                size => EarlierUpload::Partial(size.parse().unwrap_or(0)),
            },
            unpacked: value("unpacked") == Some("yes"),
            uploads_room: room(0)?,
            releases_room: room(1)?,
            releases: parse_releases(out),
            now: parse_now(out)?,
        })
    }
}

/// Refuses a package that will not fit, before a byte of it is sent: the upload and the
/// unpacked release (beside each other while it unpacks) with 5% and 1 MB to spare.
pub fn check_room(survey: &Survey, package: &Package, layout: &Layout, host: &str) -> Result<()> {
    let upload = match survey.earlier_upload {
        EarlierUpload::Present => 0,
        EarlierUpload::Partial(have) => package.size.saturating_sub(have),
    };
    let release = if survey.unpacked {
        0
    } else {
        // manifest.json is not listed in itself; a few KB covers it.
        package.manifest.files.iter().map(|f| f.size).sum::<u64>() + 16 * 1024
    };
    let with_margin = |bytes: u64| {
        if bytes == 0 {
            0
        } else {
            bytes + bytes / 20 + 1_000_000
        }
    };
    let (uploads, releases) = (survey.uploads_room, survey.releases_room);
    let needs = if uploads.device == releases.device {
        vec![(uploads, with_margin(upload + release))]
    } else {
        vec![
            (uploads, with_margin(upload)),
            (releases, with_margin(release)),
        ]
    };
    for (room, need) in needs {
        if room.free < need {
            return Err(tagged(
                Category::Remote,
                anyhow::anyhow!(
                    "{host}: {} has {} MB free, this release needs {} MB; nothing was sent\n  \
                     help: free space for {} on {host} (`shipit releases {host}` lists the \
                     releases kept there; [deploy] keep_releases keeps fewer)",
                    layout.base(),
                    room.free / 1_000_000,
                    need.div_ceil(1_000_000),
                    layout.base()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(size: u64, unpacked: u64) -> Package {
        crate::package::fixture("p.tar.gz".as_ref(), "1", size, unpacked, "")
    }

    fn survey(upload: EarlierUpload, unpacked: bool, free: u64, devices: (u64, u64)) -> Survey {
        Survey {
            earlier_upload: upload,
            unpacked,
            uploads_room: Room {
                device: devices.0,
                free,
            },
            releases_room: Room {
                device: devices.1,
                free,
            },
            releases: Vec::new(),
            now: 0,
        }
    }

    #[test]
    fn the_upload_and_its_unpacked_release_must_fit_with_a_margin() {
        let layout = Layout {
            app: "app".into(),
            user: "app".into(),
            release: "1-000000000000".into(),
            sha256: "0".repeat(64),
            environment: None,
        };
        let (mb, package) = (1_000_000, package(23_000_000, 22_000_000));
        let check = |survey: &Survey| check_room(survey, &package, &layout, "web1");
        let err = check(&survey(EarlierUpload::Partial(0), false, 18 * mb, (1, 1))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("web1: /opt/app has 18 MB free, this release needs 49 MB"),
            "{err}"
        );
        assert!(check(&survey(EarlierUpload::Partial(0), false, 49 * mb, (1, 1))).is_ok());
        // Uploaded already: only the release is still to come; unpacked: nothing is.
        assert!(check(&survey(EarlierUpload::Present, false, 25 * mb, (1, 1))).is_ok());
        assert!(check(&survey(EarlierUpload::Present, true, 0, (1, 1))).is_ok());
        // Half of it is on the host from an interrupted upload.
        assert!(
            check(&survey(
                EarlierUpload::Partial(12 * mb),
                false,
                37 * mb,
                (1, 1)
            ))
            .is_ok()
        );
        // On two filesystems each needs only its own part.
        assert!(check(&survey(EarlierUpload::Partial(0), false, 26 * mb, (1, 2))).is_ok());
    }
}
