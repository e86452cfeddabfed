//! `shipit config`: the configuration as a command would use it, the selected environment laid
//! over the base, as TOML or JSON. A value that may be a secret is shown by where it comes
//! from, never by what it is: env values by their place in the file, env_file by its path,
//! env_command by its words (never run).

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{Argv, Check, Config, Deploy, Health, Hooks, Notify};

#[derive(Serialize)]
struct Shown<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    environments: &'a [String],
    app: App<'a>,
    service: Service<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<HealthShown<'a>>,
    deploy: DeployShown,
    hooks: HooksShown<'a>,
    metrics: MetricsShown<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify: Option<NotifyShown<'a>>,
    hosts: BTreeMap<&'a str, Host<'a>>,
    groups: &'a BTreeMap<String, Vec<String>>,
}

#[derive(Serialize)]
struct App<'a> {
    name: &'a str,
    version: String,
}

#[derive(Serialize)]
struct Service<'a> {
    user: &'a str,
    exec_args: &'a [String],
    listen: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env_command: Option<&'a [String]>,
    env: BTreeMap<&'a str, String>,
}

#[derive(Serialize)]
struct Host<'a> {
    address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy_jump: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env_command: Option<&'a [String]>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<&'a str, String>,
}

#[derive(Serialize)]
struct HealthShown<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expect_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    send: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expect: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a [String]>,
    interval: String,
    timeout: String,
    retries: u32,
    settle: String,
    check_version: bool,
}

#[derive(Serialize)]
struct DeployShown {
    keep_releases: usize,
    preflight: bool,
    batch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    canary: Option<String>,
    max_fail: String,
    parallel: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirm_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lock_wait: Option<String>,
}

#[derive(Serialize)]
struct HooksShown<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    before_switch: Option<&'a [String]>,
    before_switch_on: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    after_switch: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_before: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_after: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
}

#[derive(Serialize)]
struct MetricsShown<'a> {
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

/// A webhook by its origin only: chat webhooks carry their secret in the path.
#[derive(Serialize)]
struct NotifyShown<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_header: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_header_env: Option<&'a str>,
    timeout: String,
}

/// The configuration as TOML.
pub fn show_text(config: &Config) -> String {
    toml::to_string(&shown(config)).expect("the shown configuration is TOML")
}

/// The configuration as JSON.
pub fn show_json(config: &Config) -> String {
    let json =
        serde_json::to_string_pretty(&shown(config)).expect("the shown configuration is JSON");
    json + "\n"
}

fn shown(config: &Config) -> Shown<'_> {
    let service = &config.service;
    Shown {
        environment: config.environment.as_deref(),
        environments: &config.environments,
        app: App {
            name: config.app.name.as_str(),
            version: match &config.app.version {
                super::model::VersionSource::Git => "git".into(),
                super::model::VersionSource::Literal(v) => v.clone(),
            },
        },
        service: Service {
            user: &service.user,
            exec_args: &service.exec_args,
            listen: service.listen.iter().map(ToString::to_string).collect(),
            env_file: service.env_file.as_ref().map(|p| p.display().to_string()),
            env_command: service.env_command.as_ref().map(words),
            env: masked(&service.env, &config.sources.service_env),
        },
        health: config.health.as_ref().map(health),
        deploy: deploy(&config.deploy),
        hooks: hooks(&config.hooks),
        metrics: MetricsShown {
            path: &config.metrics.path,
            port: config.metrics.port,
        },
        notify: notify(&config.notify),
        hosts: config
            .hosts
            .iter()
            .map(|(name, h)| {
                let places = config.sources.host_env.get(name);
                let host = Host {
                    address: &h.address,
                    user: h.user.as_deref(),
                    port: h.port,
                    identity_file: h.identity_file.as_ref().map(|p| p.display().to_string()),
                    proxy_jump: h.proxy_jump.as_deref(),
                    health_url: h.health_url.as_deref(),
                    env_command: h.env_command.as_ref().map(words),
                    env: masked(&h.env, places.unwrap_or(&BTreeMap::new())),
                };
                (name.as_str(), host)
            })
            .collect(),
        groups: &config.groups,
    }
}

fn words(argv: &Argv) -> &[String] {
    &argv.words
}

/// Each key with where its value is written, never the value.
fn masked<'a>(
    env: &'a BTreeMap<String, String>,
    places: &BTreeMap<String, String>,
) -> BTreeMap<&'a str, String> {
    env.keys()
        .map(|key| {
            let place = places.get(key).map_or("shipit.toml", String::as_str);
            (key.as_str(), format!("<set in {place}>"))
        })
        .collect()
}

fn time(duration: std::time::Duration) -> String {
    humantime::format_duration(duration).to_string()
}

fn health(h: &Health) -> HealthShown<'_> {
    let (mut url, mut expect_status, mut tcp, mut send, mut expect, mut command) =
        (None, None, None, None, None, None);
    match &h.check {
        Check::Url {
            url: u,
            expect_status: s,
        } => (url, expect_status) = (Some(u.as_str()), Some(*s)),
        Check::Tcp {
            address,
            send: s,
            expect: e,
        } => (tcp, send, expect) = (Some(address.as_str()), s.as_deref(), e.as_deref()),
        Check::Command { argv } => command = Some(argv.words.as_slice()),
    }
    HealthShown {
        kind: h.check.kind(),
        url,
        expect_status,
        tcp,
        send,
        expect,
        command,
        interval: time(h.interval),
        timeout: time(h.timeout),
        retries: h.retries,
        settle: time(h.settle),
        check_version: h.check_version,
    }
}

fn deploy(d: &Deploy) -> DeployShown {
    DeployShown {
        keep_releases: d.keep_releases,
        preflight: d.preflight,
        batch: d.batch.to_string(),
        canary: d.canary.as_ref().map(ToString::to_string),
        max_fail: d.max_fail.to_string(),
        parallel: d.parallel,
        confirm_timeout: d.confirm_timeout.map(time),
        lock_wait: d.lock_wait.map(time),
    }
}

fn hooks(h: &Hooks) -> HooksShown<'_> {
    HooksShown {
        before_switch: h.before_switch.as_ref().map(words),
        before_switch_on: super::model::HookHosts::NAMES
            .iter()
            .find(|(_, v)| *v == h.before_switch_on)
            .map_or("first", |(name, _)| name),
        after_switch: h.after_switch.as_ref().map(words),
        local_before: h.local_before.as_ref().map(words),
        local_after: h.local_after.as_ref().map(words),
        timeout: h.timeout.map(time),
    }
}

fn notify(n: &Notify) -> Option<NotifyShown<'_>> {
    if n.command.is_none() && n.webhook.is_none() {
        return None;
    }
    let header = n.webhook.as_ref().and_then(|w| w.header.as_ref());
    Some(NotifyShown {
        command: n.command.as_ref().map(words),
        webhook: n
            .webhook
            .as_ref()
            .map(|w| format!("{}/… (path hidden)", w.origin)),
        webhook_header: header.map(|h| h.name.as_str()),
        webhook_header_env: header.map(|h| h.env.as_str()),
        timeout: time(n.timeout),
    })
}
