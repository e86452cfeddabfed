//! `shipit status HOST...`: the unit's state, the release it runs, its health and, with
//! `[service] listen`, its socket unit and the connections waiting in its queues.

use std::borrow::Cow;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use super::diff;
use crate::actions::check;
use crate::actions::health::{self, unit_properties};
use crate::cancel::Cancel;
use crate::config::{Check, Config, Health};
use crate::hosts::releases::{ListReleases, parse_releases};
use crate::hosts::script::Script;
use crate::hosts::{self, Connection, Layout, Runner};
use crate::names::{AppName, ReleaseId};
use crate::remote::{Kind, Remote};
use crate::ui::{Format, Ui};

/// `shipit status`, as the command line asked for it.
#[derive(Debug, Clone)]
pub struct Request {
    pub hosts: Vec<String>,
    pub format: Format,
    pub connection: Connection,
}

#[derive(Debug, Serialize)]
struct Status {
    host: String,
    app: AppName,
    release: Option<ReleaseId>,
    version: Option<String>,
    active_state: String,
    sub_state: String,
    main_pid: u64,
    n_restarts: u64,
    since: String,
    limit_nofile: String,
    restart: String,
    health: Option<String>,
    /// The `[health]` check asked: its kind and what it asks, e.g. `tcp 127.0.0.1:6379`.
    #[serde(skip_serializing_if = "Option::is_none")]
    health_check: Option<String>,
    /// The socket unit, with `[service] listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    socket: Option<SocketState>,
    /// Whether what is installed differs from shipit.toml (`shipit diff`); None when it could
    /// not be told.
    drifted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(config: &Config, request: &Request, ui: &Ui) -> Result<()> {
    let mut statuses = Vec::new();
    let hosts = hosts::expand_groups(config, &request.hosts);
    let declared = declared_for_drift(config, &hosts, ui);
    for (i, host) in hosts.iter().enumerate() {
        let declared = declared.as_ref().map(|d| &d[i]);
        statuses.push(
            status_of(config, host, declared, &request.connection, ui)
                .unwrap_or_else(|e| Status::unreachable(host, config, e)),
        );
    }
    if request.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
    } else if let [only] = statuses.as_slice() {
        print_one(only);
    } else {
        print_table(&statuses);
    }
    print_drifted(&statuses, request.format);
    if let Some(failed) = statuses.iter().find(|s| s.error.is_some()) {
        crate::fail!(
            Connect,
            "{}: {}",
            failed.host,
            failed.error.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

fn status_of(
    config: &Config,
    host: &str,
    declared: Option<&diff::Declared>,
    connection: &Connection,
    ui: &Ui,
) -> Result<Status> {
    let (mut remote, layout) = hosts::open(config, host, connection, ui)?;
    let props = unit_properties(remote.as_mut(), &layout)?;
    let get = |k: &str| props.get(k).cloned().unwrap_or_default();
    let mut answers = Runner::apply(remote.as_mut(), &Cancel::new())
        .run(vec![ListReleases.step(&layout), ReadSocket.step(&layout)])?
        .into_iter();
    let out = answers
        .next()
        .context("the host did not list its releases")??;
    let current = parse_releases(&out).into_iter().find(|r| r.current);
    let socket = parse_socket_state(&answers.next().context("no socket state")??);
    let check = hosts::health_for(config, host);
    let health = check
        .as_ref()
        .map(|h| health_now(remote.as_mut(), &layout, h, ui));
    let drifted = declared
        .and_then(|d| diff::compare(d, remote.as_mut(), &layout).ok())
        .map(|compared| !compared.identical);
    Ok(Status {
        host: host.to_string(),
        app: layout.app.clone(),
        release: current.as_ref().map(|r| r.name.clone()),
        version: current.map(|r| r.version),
        active_state: get("ActiveState"),
        sub_state: get("SubState"),
        main_pid: get("MainPID").parse().unwrap_or(0),
        n_restarts: get("NRestarts").parse().unwrap_or(0),
        since: get("ActiveEnterTimestamp"),
        limit_nofile: get("LimitNOFILE"),
        restart: get("Restart"),
        health,
        health_check: check.map(|h| check::describe(&h.check)),
        socket,
        drifted,
        error: None,
    })
}

/// One try of the check, as the gate makes it: what answered and whether that is healthy.
fn health_now(remote: &mut dyn Remote, layout: &Layout, h: &Health, ui: &Ui) -> String {
    let mut h = h.clone();
    h.timeout = h.timeout.max(Duration::from_secs(1));
    let reply = health::Asker::new(remote, layout, &h, ui).and_then(|mut ask| ask.once());
    match (reply, &h.check) {
        (Ok(r), Check::Url { expect_status, .. }) if !r.healthy => {
            format!(
                "{} unexpected (want {expect_status})",
                r.status.unwrap_or(0)
            )
        }
        (Ok(r), Check::Url { .. }) => format!("{} ok", r.status.unwrap_or(0)),
        (Ok(r), _) if r.healthy => format!("{} ok", r.said),
        (Ok(r), _) => format!("failed: {}", r.why),
        (Err(e), _) => format!("unreachable: {e:#}"),
    }
}

impl Status {
    fn unreachable(host: &str, config: &Config, error: anyhow::Error) -> Status {
        Status {
            host: host.to_string(),
            app: config.app.name.clone(),
            release: None,
            version: None,
            active_state: String::new(),
            sub_state: String::new(),
            main_pid: 0,
            n_restarts: 0,
            since: String::new(),
            limit_nofile: String::new(),
            restart: String::new(),
            health: None,
            health_check: None,
            socket: None,
            drifted: None,
            error: Some(format!("{error:#}")),
        }
    }
}

fn print_one(status: &Status) {
    let dash = |v: Option<&str>| v.unwrap_or("-").to_string();
    for (label, value) in [
        ("host", status.host.clone()),
        ("app", status.app.to_string()),
        ("version", dash(status.version.as_deref())),
        ("release", dash(status.release.as_deref())),
        (
            "state",
            format!("{}/{}", status.active_state, status.sub_state),
        ),
        ("pid", status.main_pid.to_string()),
        (
            "since",
            if status.since.is_empty() {
                "-".into()
            } else {
                status.since.clone()
            },
        ),
        ("restarts", status.n_restarts.to_string()),
        ("restart", status.restart.clone()),
        ("limitnofile", status.limit_nofile.clone()),
        ("check", dash(status.health_check.as_deref())),
        ("health", dash(status.health.as_deref())),
    ] {
        println!("{:<13}{value}", format!("{label}:"));
    }
    if let Some(socket) = &status.socket {
        println!(
            "{:<13}{}/{}",
            "socket:", socket.active_state, socket.sub_state
        );
        for queue in &socket.listen {
            let waiting = match (queue.waiting, queue.limit) {
                (Some(waiting), Some(limit)) => {
                    format!("{waiting} connections waiting to be accepted (at most {limit})")
                }
                _ => "queue unknown (no `ss` on the host)".to_string(),
            };
            println!("{:<13}{}: {waiting}", "listen:", queue.address);
        }
    }
}

/// Hosts side by side; a version that differs from the most common one is marked with `!`.
fn print_table(statuses: &[Status]) {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for s in statuses {
        *counts
            .entry(s.version.as_deref().unwrap_or("-"))
            .or_default() += 1;
    }
    let common = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(v, _)| *v)
        .unwrap_or("-");
    println!(
        "{:<20} {:<2}{:<16} {:<18} {:>8} {:>9}  HEALTH",
        "HOST", "", "VERSION", "STATE", "PID", "RESTARTS"
    );
    for s in statuses {
        let version = s.version.as_deref().unwrap_or("-");
        let mark = if version != common { "!" } else { "" };
        match &s.error {
            Some(e) => println!(
                "{:<20} {:<2}{:<16} unreachable: {}",
                s.host,
                "!",
                "-",
                e.lines().next().unwrap_or_default()
            ),
            None => println!(
                "{:<20} {:<2}{:<16} {:<18} {:>8} {:>9}  {}",
                s.host,
                mark,
                version,
                format!("{}/{}", s.active_state, s.sub_state),
                s.main_pid,
                s.n_restarts,
                s.health.as_deref().unwrap_or("-")
            ),
        }
    }
}

/// What shipit.toml declares for each host, to mark drift; without it (an env_command that
/// failed, say) status shows the rest.
fn declared_for_drift(config: &Config, hosts: &[&str], ui: &Ui) -> Option<Vec<diff::Declared>> {
    diff::declare(config, hosts, ui)
        .inspect_err(|e| {
            ui.diagnostic(format!(
                "warning: cannot tell whether the hosts drifted from shipit.toml: {e:#}"
            ))
        })
        .ok()
}

/// The hosts that drifted, after the text, with the command that shows how.
fn print_drifted(statuses: &[Status], format: Format) {
    let drifted: Vec<&str> = statuses
        .iter()
        .filter(|s| s.drifted == Some(true))
        .map(|s| s.host.as_str())
        .collect();
    if format == Format::Text && !drifted.is_empty() {
        println!(
            "drifted:     {} (from shipit.toml: `shipit diff {}` shows how)",
            drifted.join(", "),
            drifted.join(" ")
        );
    }
}

/// The socket unit's state and its listening sockets' queues (see `socket.sh`).
pub struct ReadSocket;

impl Script for ReadSocket {
    fn kind(&self) -> Kind {
        Kind::Socket
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![include_str!("scripts/socket.sh").into()]
    }
}

/// What [`ReadSocket`] found: None without a socket unit; else its state, and per address it
/// listens on the connections waiting now and the queue's limit (when `ss` could tell).
fn parse_socket_state(out: &str) -> Option<SocketState> {
    let mut state = SocketState::default();
    let mut found = false;
    let mut ss = Vec::new();
    for line in out.lines() {
        if let Some(v) = line.strip_prefix("ActiveState=") {
            state.active_state = v.to_string();
            found = true;
        } else if let Some(v) = line.strip_prefix("SubState=") {
            state.sub_state = v.to_string();
        } else if let Some(v) = line.strip_prefix("Listen=") {
            let address = v.split_whitespace().next().unwrap_or(v);
            state.listen.push(SocketQueue {
                address: address.to_string(),
                waiting: None,
                limit: None,
            });
        } else if let Some(v) = line.strip_prefix("ss=") {
            ss.push(v.split_whitespace().collect::<Vec<_>>());
        }
    }
    // `ss` writes 0.0.0.0:80, *:80 or [::]:80 where systemd writes [::]:80 or 0.0.0.0:80: the
    // port decides, and the address where it names one.
    let port = |a: &str| a.rsplit_once(':').map(|(_, p)| p.to_string());
    let host = |a: &str| {
        a.rsplit_once(':')
            .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
            .filter(|h| !matches!(h.as_str(), "*" | "0.0.0.0" | "::"))
    };
    for queue in &mut state.listen {
        let seen = ss.iter().find(|fields| {
            fields.len() >= 4
                && port(fields[3]) == port(&queue.address)
                && (host(fields[3]).is_none()
                    || host(&queue.address).is_none()
                    || host(fields[3]) == host(&queue.address))
        });
        if let Some(fields) = seen {
            queue.waiting = fields[1].parse().ok();
            queue.limit = fields[2].parse().ok();
        }
    }
    found.then_some(state)
}

/// A socket unit as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
struct SocketState {
    active_state: String,
    sub_state: String,
    listen: Vec<SocketQueue>,
}

/// One listening address: connections waiting to be accepted now, and how many may wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct SocketQueue {
    address: String,
    waiting: Option<u64>,
    limit: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_queues_are_matched_to_listen_addresses_by_port() {
        let out = "ActiveState=active\nSubState=listening\nListen=[::]:8080 (Stream)\n\
                   Listen=127.0.0.1:9000 (Stream)\n\
                   ss=LISTEN 3      4096       *:8080       *:*\n\
                   ss=LISTEN 0      128      127.0.0.1:9000 0.0.0.0:*\n\
                   ss=LISTEN 0      128      0.0.0.0:22     0.0.0.0:*\n";
        let state = parse_socket_state(out).unwrap();
        assert_eq!(state.active_state, "active");
        assert_eq!(state.sub_state, "listening");
        let queues: Vec<_> = state
            .listen
            .iter()
            .map(|q| (q.address.as_str(), q.waiting, q.limit))
            .collect();
        assert_eq!(
            queues,
            [
                ("[::]:8080", Some(3), Some(4096)),
                ("127.0.0.1:9000", Some(0), Some(128))
            ]
        );
        assert_eq!(parse_socket_state(""), None);
    }
}
