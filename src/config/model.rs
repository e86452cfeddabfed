//! The validated model of shipit.toml: what the rest of shipit reads, every value already checked.

use crate::names::AppName;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::plan::{Amount, Canary};
use crate::project::Language;

/// The whole, validated description of one app.
#[derive(Debug, Clone)]
pub struct Config {
    /// Project root (where go.mod / Cargo.toml live).
    pub root: PathBuf,
    pub app: App,
    pub build: Build,
    pub service: Service,
    pub health: Option<Health>,
    /// Named hosts from `[hosts.NAME]`.
    pub hosts: BTreeMap<String, HostEntry>,
    /// `[groups]`: a name for several hosts, in the order written.
    pub groups: BTreeMap<String, Vec<String>>,
    pub deploy: Deploy,
    /// `[hooks]`: commands run around the switch.
    pub hooks: Hooks,
    /// `[container]`, for `shipit generate dockerfile`.
    pub container: Container,
    /// `[k8s]`, for `shipit generate k8s`.
    pub k8s: K8s,
    /// `[notify]`: told how each deploy and rollback ended.
    pub notify: Notify,
    /// `[metrics]`, for `shipit generate prometheus`.
    pub metrics: Metrics,
    // Environments: the one selected with -e (its overrides are already applied above), the
    // names of all of them, and where the values shown by their source were written.
    pub environment: Option<String>,
    pub environments: Vec<String>,
    pub sources: Sources,
}

/// Where each secret-bearing value was written (`shipit.toml:LINE:COL`), so it can be shown by
/// its source and never by its value.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `[service] env` key → where its value is written.
    pub service_env: BTreeMap<String, String>,
    /// Host name → its `env` keys → where each value is written.
    pub host_env: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// A host name, an address or an alias from ~/.ssh/config.
    pub address: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    /// Extra environment for this host only; it goes into the host's env file, so every host
    /// runs the same unit.
    pub env: BTreeMap<String, String>,
    /// Secrets for this host only, from a command run here at deploy; after the shared ones.
    pub env_command: Option<Argv>,
    /// This host's health URL, when it differs from `[health] url`.
    pub health_url: Option<String>,
    /// Jump hosts, as OpenSSH's ProxyJump (`ssh -J`): `[user@]host[:port]`, comma-separated.
    pub proxy_jump: Option<String>,
}

/// `[hooks]`: each an argv (no shell unless it names one), with where it is written.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// On the host, with the new release, after it is unpacked and verified, before the switch.
    pub before_switch: Option<Argv>,
    pub before_switch_on: HookHosts,
    /// On each host that deployed, after its health gate; a failure does not roll back.
    pub after_switch: Option<Argv>,
    /// Here, before anything connects, and after every host is done.
    pub local_before: Option<Argv>,
    pub local_after: Option<Argv>,
    /// How long a host hook may run before it is stopped there and fails.
    pub timeout: Option<Duration>,
}

/// `[metrics]`: where each host's service serves Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// Absolute, without query or fragment (`/metrics` when not written).
    pub path: String,
    /// `[metrics] port`, else the health URL's port, else `[service] port`; none when neither
    /// says one, which `generate prometheus` refuses.
    pub port: Option<u16>,
}

/// `[notify]`: run here after each deploy and rollback that reached a host.
#[derive(Debug, Clone)]
pub struct Notify {
    /// Gets the report on stdin and `SHIPIT_*` variables; no shell unless it names one.
    pub command: Option<Argv>,
    pub webhook: Option<Webhook>,
    /// How long each notifier may take.
    pub timeout: Duration,
}

/// `[notify] webhook`: POSTed the report as JSON.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    /// `scheme://host[:port]`: how messages name it, since a webhook's path often is its secret.
    pub origin: String,
    /// `shipit.toml:LINE:COL`
    pub location: String,
    pub header: Option<WebhookHeader>,
}

/// A header sent with the webhook, its value read from this machine's environment when sent.
#[derive(Debug, Clone)]
pub struct WebhookHeader {
    pub name: String,
    /// The variable holding its value (a token): never shown.
    pub env: String,
}

/// Where `before_switch` runs: once per rollout, on the first host to switch (the canary when
/// there is one), or on every host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HookHosts {
    #[default]
    First,
    Each,
}

impl HookHosts {
    pub const NAMES: [(&str, HookHosts); 2] =
        [("first", HookHosts::First), ("each", HookHosts::Each)];
}

/// A command as words, run without a shell, and where shipit.toml says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv {
    pub words: Vec<String>,
    /// `shipit.toml:LINE:COL`
    pub location: String,
}

#[derive(Debug, Clone)]
pub struct Deploy {
    /// Releases kept on the host; the current and previous one are never deleted.
    pub keep_releases: usize,
    /// Start the new release on a scratch socket and check it before the switch: `[deploy]
    /// preflight`, on by default when the service has `listen` sockets, never without.
    pub preflight: bool,
    /// The rollout's defaults (`[deploy]` batch, canary, max_fail, parallel, confirm_timeout,
    /// lock_wait); the deploy flags override each.
    pub batch: Amount,
    pub canary: Option<Canary>,
    pub max_fail: Amount,
    pub parallel: usize,
    pub confirm_timeout: Option<Duration>,
    pub lock_wait: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct App {
    pub name: AppName,
    pub version: VersionSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSource {
    /// `git describe --tags --always --dirty`
    Git,
    Literal(String),
}

#[derive(Debug, Clone)]
pub struct Build {
    pub builder: Builder,
    /// Rust with no `builder` written: when a crate's C code finds no C compiler for the target,
    /// shipit builds again with cargo-zigbuild, if it is installed.
    pub zig_fallback: bool,
    /// Go: whether the build uses cgo.
    pub cgo: Cgo,
    /// Go: the C compiler cgo builds and links with.
    pub cc: CCompiler,
    /// Go: the main package to build, relative to the root.
    pub go_package: String,
    /// Go: `-X` targets for the version and build time.
    pub version_var: String,
    pub build_time_var: String,
    /// Rust: the binary to build when the package has several.
    pub cargo_bin: Option<String>,
    pub cargo_features: Vec<String>,
    /// Rust: compile-time env vars carrying the version and build time (read with `option_env!`).
    pub version_env: String,
    pub build_time_env: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    Go,
    Cargo,
    /// cargo-zigbuild: cargo with zig as the C compiler and linker, for any target.
    Zigbuild,
    Cross,
}

impl Builder {
    pub const NAMES: [(&str, Builder); 4] = [
        ("go", Builder::Go),
        ("cargo", Builder::Cargo),
        ("zigbuild", Builder::Zigbuild),
        ("cross", Builder::Cross),
    ];

    pub fn language(self) -> Language {
        match self {
            Builder::Go => Language::Go,
            Builder::Cargo | Builder::Zigbuild | Builder::Cross => Language::Rust,
        }
    }
}

impl fmt::Display for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(name_of(&Builder::NAMES, *self))
    }
}

/// `[build] cgo`: "auto" turns cgo on when a package in the build (other than Go's own) has cgo
/// files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cgo {
    Auto,
    On,
    Off,
}

impl Cgo {
    pub const NAMES: [(&str, Cgo); 3] = [("auto", Cgo::Auto), ("on", Cgo::On), ("off", Cgo::Off)];
}

/// `[build] cc`: the C compiler for cgo. "auto" takes musl-gcc for this machine's own
/// architecture when it is installed, else zig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CCompiler {
    Auto,
    Zig,
    MuslGcc,
}

impl CCompiler {
    pub const NAMES: [(&str, CCompiler); 3] = [
        ("auto", CCompiler::Auto),
        ("zig", CCompiler::Zig),
        ("musl-gcc", CCompiler::MuslGcc),
    ];
}

fn name_of<T: PartialEq + Copy>(names: &[(&'static str, T)], value: T) -> &'static str {
    names
        .iter()
        .find(|(_, v)| *v == value)
        .map(|(name, _)| *name)
        .expect("every value has a name")
}

#[derive(Debug, Clone)]
pub struct Service {
    pub description: String,
    pub user: String,
    pub exec_args: Vec<String>,
    pub limit_nofile: u64,
    pub restart: String,
    pub restart_sec: u64,
    pub start_limit_interval_sec: u64,
    pub start_limit_burst: u64,
    pub timeout_stop_sec: u64,
    /// Project files shipped beside the binary (relative paths, checked to stay inside the root).
    pub files: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// A local file of KEY=VALUE lines with secrets, relative to the root.
    pub env_file: Option<PathBuf>,
    /// A command run here at deploy whose stdout is KEY=VALUE lines (a password manager's).
    pub env_command: Option<Argv>,
    /// Hardening directives after the user's overrides; `false` in shipit.toml drops one.
    pub hardening: Vec<(String, String)>,
    /// Capabilities the service keeps (e.g. CAP_NET_BIND_SERVICE for ports below 1024).
    pub capabilities: Vec<String>,
    /// The port the service listens on: `port`, else the `[health] url`'s. Only `shipit
    /// generate` uses it (EXPOSE, containerPort).
    pub port: Option<u16>,
    /// Sockets systemd listens on for the service (`<app>.socket`), in the order written;
    /// empty: no socket unit, the service binds its own.
    pub listen: Vec<Listen>,
}

/// One `[service] listen` entry: a TCP socket as systemd's `ListenStream=` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// A port alone: every address, IPv4 and IPv6 (systemd falls back to IPv4 on hosts
    /// without IPv6).
    Port(u16),
    Address(SocketAddr),
}

impl Listen {
    pub fn port(&self) -> u16 {
        match self {
            Listen::Port(port) => *port,
            Listen::Address(address) => address.port(),
        }
    }

    /// Whether binding both would fail: the same port, and one address is the other or a
    /// wildcard covering it. `[::]` is dual-stack, as the socket unit's BindIPv6Only=both makes
    /// it, so it covers IPv4 too.
    pub(super) fn clashes_with(&self, other: &Listen) -> bool {
        let covers = |a: &Listen, b: &Listen| match (a.ip(), b.ip()) {
            (None, _) => true,
            (Some(IpAddr::V6(v6)), _) if v6.is_unspecified() => true,
            (Some(IpAddr::V4(v4)), Some(IpAddr::V4(_))) if v4.is_unspecified() => true,
            (a, b) => a == b,
        };
        self.port() == other.port() && (covers(self, other) || covers(other, self))
    }

    fn ip(&self) -> Option<IpAddr> {
        match self {
            Listen::Port(_) => None,
            Listen::Address(address) => Some(address.ip()),
        }
    }
}

/// As `ListenStream=` takes it: `8080`, `0.0.0.0:8080`, `[::1]:8080`.
impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Port(port) => write!(f, "{port}"),
            Listen::Address(address) => write!(f, "{address}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Health {
    pub check: Check,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub settle: Duration,
    pub check_version: bool,
}

/// What the gate asks, made on the host itself: `[health]` names exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A GET that must answer `expect_status`.
    Url { url: String, expect_status: u16 },
    /// A connect to `address` (host:port); with `send`, the answer must contain `expect`.
    Tcp {
        address: String,
        send: Option<String>,
        expect: Option<String>,
    },
    /// The release's own command, run as the service runs; exit 0 is healthy.
    Command { argv: Argv },
}

impl Check {
    /// `url`, `tcp` or `command`: the key that chose it, as status and events name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Url { .. } => "url",
            Check::Tcp { .. } => "tcp",
            Check::Command { .. } => "command",
        }
    }

    /// What is asked, in one line: the URL, the address or the command's words.
    pub fn target(&self) -> String {
        match self {
            Check::Url { url, .. } => url.clone(),
            Check::Tcp { address, .. } => address.clone(),
            Check::Command { argv } => argv.words.join(" "),
        }
    }
}

impl Health {
    /// Where the health URL points: (host, port, path); None for a check of another kind.
    pub fn endpoint(&self) -> Option<(String, u16, String)> {
        let Check::Url { url, .. } = &self.check else {
            return None;
        };
        let rest = url.trim_start_matches("http://");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let (host, port) = split_host_port(authority, "80");
        let port = port.parse().unwrap_or(80);
        Some((host.to_string(), port, path.to_string()))
    }

    /// The host and port a URL or TCP check connects to.
    pub fn address(&self) -> Option<(String, u16)> {
        match &self.check {
            Check::Url { .. } => self.endpoint().map(|(host, port, _)| (host, port)),
            Check::Tcp { address, .. } => {
                let (host, port) = split_host_port(address, "");
                Some((host.to_string(), port.parse().ok()?))
            }
            Check::Command { .. } => None,
        }
    }

    /// The port a URL or TCP check connects to.
    pub fn port(&self) -> Option<u16> {
        self.address().map(|(_, port)| port)
    }
}

/// `host:port` or `[v6]:port` as (host, port), with `default` for a missing port.
pub(super) fn split_host_port<'a>(authority: &'a str, default: &'a str) -> (&'a str, &'a str) {
    match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once("]:") {
            Some((host, port)) => (host, port),
            None => (v6.trim_end_matches(']'), default),
        },
        None => authority.rsplit_once(':').unwrap_or((authority, default)),
    }
}

/// `[container]`: the image `shipit generate dockerfile` describes.
#[derive(Debug, Clone)]
pub struct Container {
    pub runtime: Runtime,
}

/// The final stage's base image. All three run a static binary; they differ in what else is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Nothing but the binary, the config files and CA certificates copied from the builder.
    Scratch,
    /// gcr.io/distroless/static: CA certificates, tzdata and /etc/passwd, no shell.
    DistrolessStatic,
    /// Alpine with ca-certificates: a shell and busybox wget, so a HEALTHCHECK can run.
    Alpine,
}

impl Runtime {
    pub(super) const ALL: [Runtime; 3] =
        [Runtime::Scratch, Runtime::DistrolessStatic, Runtime::Alpine];

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Scratch => "scratch",
            Runtime::DistrolessStatic => "distroless-static",
            Runtime::Alpine => "alpine",
        }
    }

    pub fn image(self) -> &'static str {
        match self {
            Runtime::Scratch => "scratch",
            Runtime::DistrolessStatic => "gcr.io/distroless/static-debian12:nonroot",
            Runtime::Alpine => "alpine:3",
        }
    }
}

/// `[k8s]`: what `shipit generate k8s` writes into the Deployment and Service.
#[derive(Debug, Clone)]
pub struct K8s {
    pub image: String,
    pub namespace: Option<String>,
    pub replicas: u32,
    /// The Service's port; it forwards to the container's `[service] port`.
    pub service_port: u16,
    pub requests: Resources,
    pub limits: Resources,
    pub readiness: Probe,
    pub liveness: Probe,
}

/// Kubernetes quantities, as written (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub initial_delay_seconds: u64,
    pub period_seconds: u64,
}

#[cfg(test)]
mod tests {
    use crate::config::service::parse_listen;

    #[test]
    fn listen_entries_that_cannot_bind_together_clash() {
        let l = |v: &str| parse_listen(v).unwrap();
        for (a, b) in [
            ("8080", "0.0.0.0:8080"),
            ("8080", "[::]:8080"),
            ("8080", "[::1]:8080"),
            ("[::]:8080", "127.0.0.1:8080"),
            ("0.0.0.0:8080", "10.0.0.5:8080"),
            ("10.0.0.5:8080", "10.0.0.5:8080"),
        ] {
            assert!(
                l(a).clashes_with(&l(b)) && l(b).clashes_with(&l(a)),
                "{a} {b}"
            );
        }
        for (a, b) in [
            ("8080", "8081"),
            ("0.0.0.0:8080", "[::1]:8080"),
            ("127.0.0.1:8080", "10.0.0.5:8080"),
            ("[::1]:8080", "[2001:db8::1]:8080"),
        ] {
            assert!(!l(a).clashes_with(&l(b)), "{a} {b}");
        }
    }
}
