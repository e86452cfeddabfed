//! Sending the package (`upload.sh`): from an offset, into the content-addressed upload
//! directory, the bytes read by the host's shell itself. A partial upload left by a cut
//! connection is continued and the whole file verified.

use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom};

use anyhow::{Context, Result};

use super::survey::EarlierUpload;
use crate::cancel::Cancel;
use crate::hosts::Layout;
use crate::hosts::script::{LIB, Script};
use crate::package::Package;
use crate::remote::{Input, Kind, Step};
use crate::ui::Ui;

/// What the upload step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// The host already had the package.
    Skipped,
    /// `sent` bytes went over the wire, continuing a partial upload at `resumed_from`.
    Sent { sent: u64, resumed_from: u64 },
}

impl Upload {
    /// Where an upload starts, given what the host has: None when it needs none.
    pub fn plan(earlier: EarlierUpload, package: &Package) -> Option<u64> {
        match earlier {
            EarlierUpload::Present => None,
            EarlierUpload::Partial(size) if size < package.size => Some(size),
            EarlierUpload::Partial(_) => Some(0),
        }
    }
}

/// The script: the package's size and where this upload starts.
pub struct SendPackage {
    pub size: u64,
    pub offset: u64,
}

impl Script for SendPackage {
    fn kind(&self) -> Kind {
        Kind::Upload
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![
            ("size", self.size.to_string()),
            ("offset", self.offset.to_string()),
        ]
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![LIB.into(), include_str!("scripts/upload.sh").into()]
    }
}

impl SendPackage {
    /// The step, its input the package from the offset on (stopping at Ctrl-C), with a
    /// progress bar.
    pub fn with_package<'a>(
        &self,
        layout: &Layout,
        package: &Package,
        host: &str,
        cancel: &Cancel,
        ui: &Ui,
    ) -> Result<Step<'a>> {
        let offset = self.offset;
        let mut file = std::fs::File::open(&package.path)
            .with_context(|| format!("cannot read {}", package.path.display()))?;
        file.seek(SeekFrom::Start(offset))?;
        let remaining = package.size - offset;
        let bar = ui.bytes(remaining, format!("uploading to {host}"));
        Ok(self.step(layout).with_direct_input(Input {
            data: Box::new(cancel.reader(file)) as Box<dyn Read>,
            len: remaining,
            what: format!(
                "{} ({remaining} bytes from offset {offset})",
                package.path.display()
            ),
            progress: Box::new(move |sent| {
                bar.set_position(sent);
                if sent == remaining {
                    bar.finish_and_clear();
                }
            }),
        }))
    }

    /// What the upload did; a corrupt partial upload is reported as such (the caller starts over).
    pub fn read(&self, answer: Result<String>) -> Result<Upload> {
        answer?;
        Ok(Upload::Sent {
            sent: self.size - self.offset,
            resumed_from: self.offset,
        })
    }
}
