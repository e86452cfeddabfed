//! `shipit releases HOST`: the releases a host keeps, newest first, with who deployed each
//! (from the host's deploy log, in the same round trip).

use anyhow::Result;

use crate::cancel::Cancel;
use crate::config::Config;
use crate::hosts::log::{KEEP_LINES, ReadLog, deployed_by};
use crate::hosts::releases::{ListReleases, parse_releases};
use crate::hosts::script::Script;
use crate::hosts::{self, Connection, Runner};
use crate::ui::{Format, Ui};

/// `shipit releases`, as the command line asked for it.
#[derive(Debug, Clone)]
pub struct Request {
    pub host: String,
    pub format: Format,
    pub connection: Connection,
}

pub fn run(config: &Config, request: &Request, ui: &Ui) -> Result<()> {
    let (mut remote, layout) = hosts::open(config, &request.host, &request.connection, ui)?;
    let mut answers = Runner::apply(remote.as_mut(), &Cancel::new())
        .run(vec![
            ListReleases.step(&layout),
            ReadLog::new(&layout, KEEP_LINES).step(&layout),
        ])?
        .into_iter();
    let out = answers.next().expect("answered")?;
    let log = ReadLog::parse(&answers.next().expect("answered")?);
    let mut list = parse_releases(&out);
    for release in &mut list {
        let deploy = deployed_by(&log, &release.name);
        release.environment = deploy.as_ref().and_then(|e| e.environment.clone());
        release.deployed_by = deploy.map(|e| e.by);
    }
    if request.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for release in list {
        let mark = if release.current {
            "current"
        } else if release.failed {
            "failed"
        } else if release.previous {
            "previous"
        } else {
            ""
        };
        // The version stays last, where scripts read it.
        println!(
            "{:<9}{:<40}{:<22}{:<24}{:<13}{}",
            mark,
            release.name,
            release.deployed,
            release.deployed_by.as_deref().unwrap_or("-"),
            release.environment.as_deref().unwrap_or("-"),
            release.version
        );
    }
    Ok(())
}
