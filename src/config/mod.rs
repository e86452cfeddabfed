//! shipit.toml + flags → a validated [`Config`]. Every user-supplied name, path and value is checked
//! here, before anything is built or touches a server, and errors point at file:line:col.
//!
//! The file is read into the serde structs of `raw`, exactly as written; each section's file
//! (`app`, `build`, `service`, `health`, `hosts`, `deploy`, `hooks`, `generate`, `metrics`,
//! `notify`) checks its part and turns it into the types of `model`, which the rest of shipit reads. With `-e NAME`,
//! `environments` first lays that environment's tables over the base ones; every environment is
//! checked, whichever is selected.

mod app;
mod build;
mod checks;
mod deploy;
mod environments;
mod generate;
mod health;
mod hooks;
mod hosts;
mod metrics;
mod model;
mod notify;
mod plan;
mod raw;
mod service;
mod show;
mod source;
#[cfg(test)]
mod tests;

use std::path::Path;

use anyhow::{Context, Result};

use crate::error::{Category, Tag};
use app::parse_app;
use build::parse_build;
use deploy::parse_deploy;
use generate::{parse_container, parse_k8s};
use health::parse_health;
use hooks::parse_hooks;
use hosts::{parse_groups, parse_hosts};
use metrics::parse_metrics;
use notify::parse_notify;
use raw::RawConfig;
use service::parse_service;
use source::Source;

pub use model::{
    App, Argv, Build, Builder, CCompiler, Cgo, Check, Config, Container, Deploy, Health, HookHosts,
    Hooks, HostEntry, K8s, Listen, Metrics, Notify, Probe, Resources, Runtime, Service, Sources,
    VersionSource, Webhook, WebhookHeader,
};
pub use plan::{
    Amount, Canary, DEFAULT_PARALLEL, MAX_PARALLEL, parse_amount, parse_batch, parse_canary,
    parse_duration, parse_parallel,
};
pub use service::{DEFAULT_HARDENING, parse_listen};
pub use show::{show_json, show_text};

pub const FILE_NAME: &str = "shipit.toml";

/// Loads `file` (or DIR/shipit.toml) for `environment` (`-e`); without a file, defaults are
/// derived from the project.
pub fn load(root: &Path, file: Option<&Path>, environment: Option<&str>) -> Result<Config> {
    let root = root
        .canonicalize()
        .with_context(|| format!("project directory {} is not accessible", root.display()))
        .tag(Category::Usage)?;
    let explicit = file.is_some();
    let path = file.map_or_else(|| root.join(FILE_NAME), Path::to_path_buf);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
        Err(e) => {
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("cannot read {}", path.display()))
                .tag(Category::Usage);
        }
    };
    parse(&root, &path, &text, environment)
}

pub fn parse(root: &Path, path: &Path, text: &str, environment: Option<&str>) -> Result<Config> {
    let src = Source { path, text };
    let names = environments::names(&src, &read(&src)?)?;
    environments::check_selected(&src, &names, environment)?;
    // Each environment is read afresh from the text and checked, so a mistake in production's
    // table is found by a deploy to staging too.
    for other in names.iter().filter(|n| Some(n.as_str()) != environment) {
        let mut raw = read(&src)?;
        environments::apply(&mut raw, other)?;
        check(root, &src, raw)?;
    }
    let mut raw = read(&src)?;
    if let Some(name) = environment {
        environments::apply(&mut raw, name)?;
    }
    let mut config = check(root, &src, raw)?;
    config.environment = environment.map(str::to_string);
    config.environments = names;
    Ok(config)
}

fn read(src: &Source) -> Result<RawConfig> {
    toml::from_str(src.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        src.error(&span, e.message().trim_end())
    })
}

/// The (laid over) file, section by section, into the model.
fn check(root: &Path, src: &Source, raw: RawConfig) -> Result<Config> {
    let sources = environments::sources(src, &raw);
    let detected = crate::project::detect(root)?;
    let build = parse_build(src, raw.build, detected.language)?;
    let app = parse_app(src, raw.app, &detected)?;
    let mut service = parse_service(src, root, raw.service, &app.name)?;
    let health = raw.health.map(|h| parse_health(src, h)).transpose()?;
    service.port = service.port.or(health.as_ref().and_then(Health::port));
    let hosts = parse_hosts(src, root, raw.hosts, health.is_some())?;
    let groups = parse_groups(src, raw.groups, &hosts)?;
    // Pre-flight needs a socket to run the release on, or a health command to run in it.
    let command_check = health
        .as_ref()
        .is_some_and(|h| matches!(h.check, Check::Command { .. }));
    let deploy = parse_deploy(src, raw.deploy, !service.listen.is_empty() || command_check)?;
    let hooks = parse_hooks(src, raw.hooks)?;
    let container = parse_container(src, raw.container)?;
    let k8s = parse_k8s(src, raw.k8s, &app.name)?;
    let notify = parse_notify(src, raw.notify)?;
    let health_port = health
        .as_ref()
        .and_then(|h| h.endpoint())
        .map(|(_, port, _)| port)
        .or(service.port);
    let metrics = parse_metrics(src, raw.metrics, health_port)?;

    Ok(Config {
        root: root.to_path_buf(),
        app,
        build,
        service,
        health,
        hosts,
        groups,
        deploy,
        hooks,
        container,
        k8s,
        notify,
        metrics,
        environment: None,
        environments: Vec::new(),
        sources,
    })
}
