//! Looking at a deployed app: `status`, `releases`, `lock status|release` (`shipit logs` has a
//! module of its own).

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use super::health::unit_properties;
use super::runner::Runner;
use super::targets::{Connection, connect, expand_groups, health_for, resolve};
use super::{Format, Layout, app_layout, deadman, history, lock, steps};
use crate::config::Config;
use crate::remote::Remote;
use crate::ui::Ui;

pub(super) fn open(
    config: &Config,
    host: &str,
    args: &Connection,
    ui: &Ui,
) -> Result<(Box<dyn Remote>, Layout)> {
    crate::remote::ssh::check_identity_files(&args.identity)?;
    let destination = resolve(config, host, args)?;
    let remote = connect(&destination, args, ui)?;
    Ok((Box::new(remote), app_layout(config)))
}

#[derive(Debug, Serialize)]
struct Status {
    host: String,
    app: String,
    release: Option<String>,
    version: Option<String>,
    active_state: String,
    sub_state: String,
    main_pid: u64,
    n_restarts: u64,
    since: String,
    limit_nofile: String,
    restart: String,
    health: Option<String>,
    /// The socket unit, with `[service] listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    socket: Option<steps::SocketState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `shipit status HOST...`.
pub fn status(
    config: &Config,
    hosts: &[String],
    format: Format,
    connection: &Connection,
    ui: &Ui,
) -> Result<()> {
    let mut statuses = Vec::new();
    for host in expand_groups(config, hosts) {
        statuses.push(
            status_of(config, host, connection, ui)
                .unwrap_or_else(|e| Status::unreachable(host, config, e)),
        );
    }
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
    } else if let [only] = statuses.as_slice() {
        print_one(only);
    } else {
        print_table(&statuses);
    }
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

fn status_of(config: &Config, host: &str, connect: &Connection, ui: &Ui) -> Result<Status> {
    let (mut remote, layout) = open(config, host, connect, ui)?;
    let props = unit_properties(remote.as_mut(), &layout)?;
    let get = |k: &str| props.get(k).cloned().unwrap_or_default();
    let mut answers = Runner::apply(remote.as_mut())
        .run(vec![steps::releases(&layout), steps::socket_state(&layout)])?
        .into_iter();
    let out = answers
        .next()
        .context("the host did not list its releases")??;
    let current = steps::parse_releases(&out).into_iter().find(|r| r.current);
    let socket = steps::parse_socket_state(&answers.next().context("no socket state")??);
    let health = health_for(config, host).map(|h| {
        let (host, port, path) = h.endpoint();
        let timeout = h.timeout.max(Duration::from_secs(1));
        match super::health::get(remote.as_mut(), &host, port, &path, timeout, ui) {
            Ok(answer) if answer.status == h.expect_status => format!("{} ok", answer.status),
            Ok(answer) => format!("{} unexpected (want {})", answer.status, h.expect_status),
            Err(e) => format!("unreachable: {e:#}"),
        }
    });
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
        socket,
        error: None,
    })
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
            socket: None,
            error: Some(format!("{error:#}")),
        }
    }
}

fn print_one(status: &Status) {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for (label, value) in [
        ("host", status.host.clone()),
        ("app", status.app.clone()),
        ("version", dash(&status.version)),
        ("release", dash(&status.release)),
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
        ("health", dash(&status.health)),
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

/// `shipit releases HOST`.
pub fn releases(
    config: &Config,
    host: &str,
    format: Format,
    connection: &Connection,
    ui: &Ui,
) -> Result<()> {
    let (mut remote, layout) = open(config, host, connection, ui)?;
    let mut answers = Runner::apply(remote.as_mut())
        .run(vec![
            steps::releases(&layout),
            history::read(&layout, history::KEEP_LINES),
        ])?
        .into_iter();
    let out = answers.next().expect("answered")?;
    let log = history::parse(&answers.next().expect("answered")?);
    let mut list = steps::parse_releases(&out);
    for release in &mut list {
        release.deployed_by = history::deployed_by(&log, &release.name);
    }
    if format == Format::Json {
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
            "{:<9}{:<40}{:<22}{:<24}{}",
            mark,
            release.name,
            release.deployed,
            release.deployed_by.as_deref().unwrap_or("-"),
            release.version
        );
    }
    Ok(())
}

/// What `shipit lock` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockAction {
    /// Show who holds the lock.
    Show,
    /// Remove a lock a dead deploy left.
    Release,
}

pub fn lock(
    config: &Config,
    action: LockAction,
    host: &str,
    connection: &Connection,
    ui: &Ui,
) -> Result<()> {
    let (mut remote, layout) = open(config, host, connection, ui)?;
    let mut runner = Runner::apply(remote.as_mut());
    let status = lock::status(&mut runner, &layout)?;
    match (action, &status.lock) {
        (_, None) => println!("{host}: {} is not locked", layout.app),
        (LockAction::Show, Some(held)) => {
            println!(
                "{}: {} is locked by {}",
                host,
                layout.app,
                lock::describe(held)
            )
        }
        (LockAction::Release, Some(held)) => {
            if !lock::release_held(&mut runner, &layout, held)? {
                crate::fail!(
                    Locked,
                    "{}: the lock of {} changed hands since it was read; nothing was removed\n  \
                     help: look again with `shipit lock status {}`",
                    host,
                    lock::describe(held),
                    host
                );
            }
            println!("{}: released the lock of {}", host, lock::describe(held));
        }
    }
    for timer in &status.timers {
        println!(
            "{}: a dead-man timer is {}",
            host,
            deadman::describe(timer, status.now)
        );
    }
    Ok(())
}
