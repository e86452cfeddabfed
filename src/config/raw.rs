//! shipit.toml as written, before any check beyond each value's type. Spanned fields are the
//! ones validated beyond their type, so their errors can point at the exact place.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) app: Option<RawApp>,
    #[serde(default)]
    pub(super) build: RawBuild,
    #[serde(default)]
    pub(super) service: RawService,
    pub(super) health: Option<Spanned<RawHealth>>,
    #[serde(default)]
    pub(super) hosts: BTreeMap<Spanned<String>, RawHost>,
    #[serde(default)]
    pub(super) deploy: RawDeploy,
    #[serde(default)]
    pub(super) groups: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) hooks: RawHooks,
    #[serde(default)]
    pub(super) container: RawContainer,
    #[serde(default)]
    pub(super) k8s: RawK8s,
    // Environments: each overrides parts of the above when it is selected with -e.
    #[serde(default)]
    pub(super) environments: BTreeMap<Spanned<String>, RawEnvironment>,
    #[serde(default)]
    pub(super) notify: RawNotify,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHost {
    pub(super) address: Spanned<String>,
    pub(super) user: Option<Spanned<String>>,
    pub(super) port: Option<Spanned<u16>>,
    pub(super) identity_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) env: BTreeMap<Spanned<String>, Spanned<String>>,
    pub(super) env_command: Option<RawArgv>,
    pub(super) health_url: Option<Spanned<String>>,
    pub(super) proxy_jump: Option<Spanned<String>>,
}

pub(super) type RawArgv = Spanned<Vec<Spanned<String>>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHooks {
    pub(super) before_switch: Option<RawArgv>,
    pub(super) before_switch_on: Option<Spanned<String>>,
    pub(super) after_switch: Option<RawArgv>,
    pub(super) local_before: Option<RawArgv>,
    pub(super) local_after: Option<RawArgv>,
    pub(super) timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub(super) command: Option<RawArgv>,
    pub(super) webhook: Option<Spanned<String>>,
    pub(super) webhook_header: Option<Spanned<String>>,
    pub(super) webhook_header_env: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
}

/// `[metrics]`: where the service serves Prometheus metrics.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) path: Option<Spanned<String>>,
    pub(super) port: Option<Spanned<u16>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDeploy {
    pub(super) keep_releases: Option<Spanned<usize>>,
    pub(super) preflight: Option<Spanned<bool>>,
    // The rollout's defaults; the deploy flags of the same names override them.
    pub(super) batch: Option<Spanned<AmountValue>>,
    pub(super) canary: Option<Spanned<AmountValue>>,
    pub(super) max_fail: Option<Spanned<AmountValue>>,
    pub(super) parallel: Option<Spanned<AmountValue>>,
    pub(super) confirm_timeout: Option<Spanned<String>>,
    pub(super) lock_wait: Option<Spanned<String>>,
}

/// A `[deploy]` value written as a number (`batch = 2`) or as text (`batch = "25%"`), read
/// as the text the flag of the same name takes.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum AmountValue {
    Number(u64),
    Text(String),
}

impl AmountValue {
    pub(super) fn text(&self) -> String {
        match self {
            AmountValue::Number(n) => n.to_string(),
            AmountValue::Text(text) => text.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub(super) name: Option<Spanned<String>>,
    pub(super) version: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBuild {
    pub(super) builder: Option<Spanned<String>>,
    pub(super) cgo: Option<Spanned<String>>,
    pub(super) cc: Option<Spanned<String>>,
    pub(super) go_package: Option<Spanned<String>>,
    pub(super) version_var: Option<Spanned<String>>,
    pub(super) build_time_var: Option<Spanned<String>>,
    pub(super) cargo_bin: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) cargo_features: Vec<Spanned<String>>,
    pub(super) version_env: Option<Spanned<String>>,
    pub(super) build_time_env: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) description: Option<Spanned<String>>,
    pub(super) user: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) exec_args: Vec<Spanned<String>>,
    pub(super) limit_nofile: Option<Spanned<u64>>,
    pub(super) restart: Option<Spanned<String>>,
    pub(super) restart_sec: Option<u64>,
    pub(super) start_limit_interval_sec: Option<u64>,
    pub(super) start_limit_burst: Option<u64>,
    pub(super) timeout_stop_sec: Option<u64>,
    #[serde(default)]
    pub(super) files: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) env: BTreeMap<Spanned<String>, Spanned<String>>,
    pub(super) env_file: Option<Spanned<String>>,
    pub(super) env_command: Option<RawArgv>,
    #[serde(default)]
    pub(super) hardening: BTreeMap<Spanned<String>, Spanned<HardeningValue>>,
    #[serde(default)]
    pub(super) capabilities: Vec<Spanned<String>>,
    pub(super) port: Option<Spanned<u16>>,
    #[serde(default)]
    pub(super) listen: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum HardeningValue {
    Off(bool),
    Value(String),
    Number(i64),
}

/// `[health]`: exactly one of `url`, `tcp` or `command` (checked in `health.rs`, so that an
/// environment's table can lay its keys over the base's first).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub(super) url: Option<Spanned<String>>,
    pub(super) expect_status: Option<Spanned<u16>>,
    pub(super) tcp: Option<Spanned<String>>,
    pub(super) send: Option<Spanned<String>>,
    pub(super) expect: Option<Spanned<String>>,
    pub(super) command: Option<RawArgv>,
    pub(super) interval: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) retries: Option<u32>,
    pub(super) settle: Option<Spanned<String>>,
    pub(super) check_version: Option<bool>,
}

impl RawHealth {
    /// The keys that say what is checked, taken out, the pace left behind.
    pub(super) fn kind(&mut self) -> RawHealth {
        RawHealth {
            url: self.url.take(),
            expect_status: self.expect_status.take(),
            tcp: self.tcp.take(),
            send: self.send.take(),
            expect: self.expect.take(),
            command: self.command.take(),
            ..RawHealth::default()
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContainer {
    pub(super) runtime: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawK8s {
    pub(super) image: Option<Spanned<String>>,
    pub(super) namespace: Option<Spanned<String>>,
    pub(super) replicas: Option<Spanned<u32>>,
    pub(super) service_port: Option<Spanned<u16>>,
    #[serde(default)]
    pub(super) resources: RawResourceTable,
    #[serde(default)]
    pub(super) readiness: RawProbe,
    #[serde(default)]
    pub(super) liveness: RawProbe,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResourceTable {
    #[serde(default)]
    pub(super) requests: RawResources,
    #[serde(default)]
    pub(super) limits: RawResources,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResources {
    pub(super) cpu: Option<Spanned<String>>,
    pub(super) memory: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    pub(super) initial_delay: Option<Spanned<String>>,
    pub(super) period: Option<Spanned<String>>,
}

/// `[environments.NAME]`: what differs from the base configuration in one environment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnvironment {
    #[serde(default)]
    pub(super) hosts: BTreeMap<Spanned<String>, RawHost>,
    #[serde(default)]
    pub(super) groups: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) service: RawEnvironmentService,
    pub(super) health: Option<Spanned<RawHealth>>,
    #[serde(default)]
    pub(super) deploy: RawDeploy,
    #[serde(default)]
    pub(super) hooks: RawHooks,
}

/// The `[service]` keys an environment may override: where the service's environment comes from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnvironmentService {
    #[serde(default)]
    pub(super) env: BTreeMap<Spanned<String>, Spanned<String>>,
    pub(super) env_file: Option<Spanned<String>>,
    pub(super) env_command: Option<RawArgv>,
}
