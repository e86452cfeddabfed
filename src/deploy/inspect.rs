//! Looking at a deployed app: `status`, `logs`, `releases`, `unlock`.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::health::unit_properties;
use super::{Layout, app_layout, connect};
use crate::cli::{ConnectArgs, LogsArgs, StatusArgs};
use crate::config::Config;
use crate::remote::{self, Remote, destination};
use crate::ui::Ui;

fn open(
    config: &Config,
    host: &str,
    args: &ConnectArgs,
    ui: &Ui,
) -> Result<(Box<dyn Remote>, Layout)> {
    crate::remote::ssh::check_identity_files(&args.identity)?;
    let destination = destination::resolve(
        host,
        &config.hosts,
        &args.identity,
        args.ssh_config.as_deref(),
    )?;
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
}

pub fn status(config: &Config, args: &StatusArgs, ui: &Ui) -> Result<()> {
    let (mut remote, layout) = open(config, &args.host, &args.connect, ui)?;
    let remote = remote.as_mut();
    let props = unit_properties(remote, &layout)?;
    let get = |k: &str| props.get(k).cloned().unwrap_or_default();
    let release = super::steps::current_release(remote, &layout)?;
    let version = match &release {
        Some(_) => manifest_version(remote, &layout)?,
        None => None,
    };
    let health = config.health.as_ref().map(|h| {
        let (host, port, path) = h.endpoint();
        match remote.http_get(&host, port, &path, h.timeout.max(Duration::from_secs(1))) {
            Ok(answer) => format!(
                "{} {}",
                answer.status,
                if answer.status == h.expect_status {
                    "ok"
                } else {
                    "unexpected"
                }
            ),
            Err(e) => format!("unreachable: {e:#}"),
        }
    });
    let status = Status {
        host: args.host.clone(),
        app: layout.app.clone(),
        release,
        version,
        active_state: get("ActiveState"),
        sub_state: get("SubState"),
        main_pid: get("MainPID").parse().unwrap_or(0),
        n_restarts: get("NRestarts").parse().unwrap_or(0),
        since: get("ActiveEnterTimestamp"),
        limit_nofile: get("LimitNOFILE"),
        restart: get("Restart"),
        health,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        println!("host:         {}", status.host);
        println!("app:          {}", status.app);
        println!("version:      {}", dash(&status.version));
        println!("release:      {}", dash(&status.release));
        println!("state:        {}/{}", status.active_state, status.sub_state);
        println!("pid:          {}", status.main_pid);
        println!(
            "since:        {}",
            if status.since.is_empty() {
                "-"
            } else {
                &status.since
            }
        );
        println!("restarts:     {}", status.n_restarts);
        println!("restart:      {}", status.restart);
        println!("limitnofile:  {}", status.limit_nofile);
        println!("health:       {}", dash(&status.health));
    }
    Ok(())
}

fn manifest_version(remote: &mut dyn Remote, layout: &Layout) -> Result<Option<String>> {
    let out = remote::run_user(
        remote,
        "reading the current manifest",
        &format!(
            "cat {}/manifest.json 2>/dev/null || true",
            remote::quote(&layout.current())
        ),
    )?;
    Ok(serde_json::from_str::<crate::package::Manifest>(&out)
        .ok()
        .map(|m| m.version))
}

pub fn logs(config: &Config, args: &LogsArgs, ui: &Ui) -> Result<()> {
    let (mut remote, layout) = open(config, &args.host, &args.connect, ui)?;
    let mut words = vec![
        "journalctl".to_string(),
        "-u".into(),
        layout.unit_name(),
        "--no-pager".into(),
    ];
    words.extend(["-n".into(), args.lines.to_string()]);
    if args.follow {
        words.push("-f".into());
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let command = remote::as_root(remote.as_ref(), &remote::command(&words));
    let output = remote.exec_streaming(&command, &mut std::io::stdout())?;
    if !output.success() {
        crate::fail!(
            Remote,
            "journalctl failed on {}: {}",
            args.host,
            output.stderr.trim()
        );
    }
    Ok(())
}

pub fn releases(config: &Config, host: &str, args: &ConnectArgs, ui: &Ui) -> Result<()> {
    let (mut remote, layout) = open(config, host, args, ui)?;
    let body = format!(
        "cd {} 2>/dev/null || exit 0\n\
         cur=$(basename \"$(readlink ../current 2>/dev/null)\")\n\
         ls -1t | while read -r r; do\n\
           mark=' '; [ \"$r\" = \"$cur\" ] && mark='*'\n\
           printf '%s %s %s\\n' \"$mark\" \"$r\" \"$(date -u -r \"$r\" +%FT%TZ)\"\n\
         done\n",
        remote::quote(&layout.releases())
    );
    let out = remote::run_root(remote.as_mut(), "listing releases", &body)?;
    print!("{out}");
    Ok(())
}

pub fn unlock(config: &Config, host: &str, args: &ConnectArgs, ui: &Ui) -> Result<()> {
    let (mut remote, layout) = open(config, host, args, ui)?;
    let body = format!(
        "lock={}\nif [ -d \"$lock\" ]; then cat \"$lock/owner.json\" 2>/dev/null; rm -rf \"$lock\"; fi\n",
        remote::quote(&layout.lock())
    );
    let owner = remote::run_root(remote.as_mut(), "removing the deploy lock", &body)?;
    if owner.trim().is_empty() {
        ui.status("Unlocked", format_args!("{host}: there was no lock"));
    } else {
        ui.status(
            "Unlocked",
            format_args!("{host}: removed the lock held by {}", owner.trim()),
        );
    }
    Ok(())
}
