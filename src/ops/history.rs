//! `shipit history HOST...`: each host's deploy log (see [`crate::rollout::log`]), several hosts
//! merged by time.

use anyhow::Result;
use serde::Serialize;

use crate::cancel::Cancel;
use crate::config::Config;
use crate::hosts::log::{Entry, ReadLog};
use crate::hosts::script::Script;
use crate::hosts::{self, Connection, Runner};
use crate::ui::{Format, Ui};

/// `shipit history`, as the command line asked for it.
#[derive(Debug, Clone)]
pub struct Request {
    pub hosts: Vec<String>,
    /// The last this many entries per host.
    pub lines: usize,
    pub format: Format,
    pub connection: Connection,
}

/// A host's entry as `history --json` prints it.
#[derive(Debug, Serialize)]
struct HostEntry<'a> {
    host: &'a str,
    #[serde(flatten)]
    entry: &'a Entry,
}

pub fn run(config: &Config, request: &Request, ui: &Ui) -> Result<()> {
    let hosts = hosts::expand_groups(config, &request.hosts);
    let mut entries: Vec<(&str, Entry)> = Vec::new();
    let mut unreachable = Vec::new();
    for host in &hosts {
        let read =
            hosts::open(config, host, &request.connection, ui).and_then(|(mut remote, layout)| {
                Runner::apply(remote.as_mut(), &Cancel::new())
                    .one(ReadLog::new(&layout, request.lines).step(&layout))
            });
        match read {
            Ok(out) => entries.extend(ReadLog::parse(&out).into_iter().map(|e| (*host, e))),
            Err(e) => unreachable.push(format!("{host}: {e:#}")),
        }
    }
    // RFC 3339 in UTC sorts as text; the sort is stable, so one host's order stays.
    entries.sort_by(|a, b| a.1.time.cmp(&b.1.time));
    if request.format == Format::Json {
        let list: Vec<HostEntry> = entries
            .iter()
            .map(|(host, entry)| HostEntry { host, entry })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print_table(&entries, hosts.len() > 1);
    }
    if !unreachable.is_empty() {
        crate::fail!(Connect, "{}", unreachable.join("\n"));
    }
    Ok(())
}

fn print_table(entries: &[(&str, Entry)], with_host: bool) {
    let host_width = entries
        .iter()
        .map(|(h, _)| h.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let host = |name: &str| {
        if with_host {
            format!("{name:<host_width$} ")
        } else {
            String::new()
        }
    };
    println!(
        "{:<21}{}{:<9}{:<16}{:<14}{:>8}  {:<24}{:<13}RELEASE",
        "TIME",
        host("HOST"),
        "ACTION",
        "VERSION",
        "OUTCOME",
        "SECONDS",
        "BY",
        "ENVIRONMENT"
    );
    for (name, e) in entries {
        println!(
            "{:<21}{}{:<9}{:<16}{:<14}{:>8.1}  {:<24}{:<13}{}",
            e.time,
            host(name),
            e.action,
            e.version,
            e.outcome,
            e.seconds,
            e.by,
            e.environment.as_deref().unwrap_or("-"),
            e.release
        );
    }
}
