//! Command-line interface: the clap types, the parsers that give flags their types (durations,
//! `N|P%` amounts, build targets), and each command's conversion into the options its stage
//! takes. Behaviour lives in the stage modules, none of which imports this one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use anyhow::Result;

use crate::build::Target;
use crate::config::{
    Config, parse_amount as amount, parse_batch as batch, parse_canary as canary,
    parse_duration as duration, parse_parallel,
};
use crate::events::Events;
use crate::hosts::{self, Connection};
use crate::ops;
use crate::rollout::{self, Amount, ArmedPolicy, Canary, OnFailure};
use crate::sandbox::{Init, Release};
use crate::ui::Format;

#[derive(Debug, Parser)]
#[command(
    name = "shipit",
    version,
    long_version = long_version(),
    about = "Ship a service to Linux servers as a static binary under systemd",
    long_about = "Ship a service to Linux servers as a static binary under systemd.\n\n\
        shipit cross-compiles a Go or Rust project for Linux, packages it reproducibly \
        (tar + gzip with a manifest), and renders a hardened systemd unit for it.",
    after_help = "Exit codes: 0 ok, 1 internal error, 2 usage or config, 3 build, 4 connection, \
        5 remote command, 6 rolled back, 7 rollback failed, 8 locked, 9 failed pre-flight, \
        10 a hook before the switch failed, 130 interrupted.",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// `--version` (not `-V`): shipit's version, and the libssh2 it runs, whose security fixes
/// are shipit's.
fn long_version() -> &'static str {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{}\nlibssh2 {}",
            env!("CARGO_PKG_VERSION"),
            crate::remote::ssh::libssh2_version()
        )
    });
    &TEXT
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Project directory (holds shipit.toml and go.mod or Cargo.toml)
    #[arg(
        short = 'C',
        long = "path",
        global = true,
        value_name = "DIR",
        default_value = "."
    )]
    pub path: PathBuf,
    /// Configuration file [default: DIR/shipit.toml]
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// No progress output on stderr; errors are still printed
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Show the whole script of a remote step that fails, and all of its stderr
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// The [environments.NAME] of shipit.toml to use; required, when it defines any, by every
    /// command that talks to hosts
    #[arg(
        short = 'e',
        long,
        global = true,
        value_name = "NAME",
        env = "SHIPIT_ENVIRONMENT",
        hide_env_values = true
    )]
    pub environment: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a static Linux binary and package it into dist/
    ///
    /// Go builds without cgo unless a package in the build has cgo files; then with cgo, a musl C
    /// compiler (musl-gcc for this machine's architecture, else zig) and static linking ([build]
    /// cgo, cc). Rust builds with cargo for the musl target, and again with cargo-zigbuild when a
    /// crate's C code finds no C compiler ([build] builder). The result must be a static ELF for
    /// the target; a missing toolchain is named with how to install it.
    Build(BuildArgs),
    /// Build (or take --package), upload, install and restart on HOST, then prove it healthy
    ///
    /// The host's env file is [service] env_file, then the output of [service] env_command (run
    /// here before the build; never shown), then [hosts.NAME] env_command and env. [hooks]
    /// before_switch runs on the host as the new release's service, after its release is ready
    /// and before any switch: once per rollout on the first host (the canary), or on each
    /// (before_switch_on = "each"); if it fails, no host switches (exit 10). after_switch runs
    /// after the health gate (a failure is a warning); local_before and local_after run here.
    /// --dry-run shows the hooks and runs none.
    Deploy(DeployArgs),
    /// Show the deployed version, unit state, restarts and health on HOST
    Status(StatusArgs),
    /// Show how HOST differs from shipit.toml: units, env file keys, files
    ///
    /// Renders what a deploy would install on each host — the service unit for the host's
    /// systemd, the socket unit with [service] listen, the env file (values masked: KEY=<masked>
    /// on both sides, marked when a value differs; values never leave the host) and the sha256
    /// of each of [service] files — and prints a unified diff against what is installed there.
    /// Hooks are not compared: a deploy does not record them.
    #[command(
        after_help = "Exit status: 0 when every host is as shipit.toml declares, 1 when any \
        differs (as diff(1) exits), and the usual codes (2 and above) for errors."
    )]
    Diff(DiffArgs),
    /// Show the service's journal on hosts, merged in time order
    ///
    /// One host's lines look as journalctl prints them; several hosts' lines are merged by time
    /// (each host's clock corrected by its offset from this machine's), with a host column and
    /// UTC timestamps. With -f, every host is followed, and a host whose connection drops is
    /// reconnected to and resumed after its last line, as stderr says.
    Logs(LogsArgs),
    /// Run a command on hosts as the service runs: its user, release, env file and hardening
    ///
    /// The command runs in the current release's directory in a transient systemd unit with the
    /// installed unit's user, environment, env file, limits and hardening (`systemd-run --wait
    /// --pipe`); SHIPIT_VERSION and SHIPIT_RELEASE name the release. Its arguments are passed
    /// as they are, without a shell: write `sh -c '…'` for one. Output streams as it comes; on
    /// one host, stdin is passed on and shipit exits with the command's status. On several
    /// hosts the command runs everywhere at once, each line is prefixed with its host, and a
    /// summary lists each host's exit status.
    #[command(after_help = "Examples:\n  shipit exec web1 -- ./myapp migrate\n  \
        shipit exec web -- sh -c 'du -sh \"$STATE_DIRECTORY\"'\n  shipit exec -t web1 -- bash\n\n\
        Exit status: one host: the command's own (127: not found; 255: killed by a signal, \
        though systemd counts SIGHUP, SIGINT, SIGTERM and SIGPIPE as a clean end: 0). Several \
        hosts: 0 when it exited 0 everywhere, 5 when it failed somewhere, 4 when a host could \
        not be reached. Ctrl-C stops the command on the hosts: 130.")]
    Exec(ExecArgs),
    /// List the releases kept on HOST, marking current, previous and failed ones, and who
    /// deployed each
    Releases(ReleasesArgs),
    /// Show the deploys and rollbacks each host logged: when, by whom, what, how it ended
    ///
    /// Each host keeps its own append-only log (/opt/<app>/.shipit/log, its last 1000
    /// entries): every deploy and `shipit rollback` that reached it, with the time (the
    /// deploying machine's clock, UTC), user@machine, version, release, the release before,
    /// the outcome and how long it took. Several hosts are merged in time order.
    History(HistoryArgs),
    /// Switch HOST back to the previous good release (or --to VERSION) and check its health
    Rollback(RollbackArgs),
    /// Inspect or remove the deploy lock on HOST
    #[command(subcommand)]
    Lock(LockCommand),
    /// Work with the systemd units
    #[command(subcommand)]
    Unit(UnitCommand),
    /// Print the configuration commands use, -e's environment laid over, without secrets
    ///
    /// Values that may be secrets are shown by their source, never their value: each env value
    /// as the place in shipit.toml that sets it, env_file as its path, env_command as its words
    /// (it is not run).
    Config(ConfigArgs),
    /// Write a commented shipit.toml for the project in DIR
    ///
    /// Detects Go or Rust, and from the source how the service listens: a port or address flag
    /// (Go's flag package or pflag, clap, a hand-written "--port"), a literal listen address, or
    /// the PORT variable. exec_args and the [health] url are written only from what it found,
    /// each with a comment saying where; otherwise a commented line says what to set.
    Init(InitArgs),
    /// Write a Dockerfile, Kubernetes manifests, a supervisord config or Prometheus targets
    ///
    /// For platforms beyond one systemd host, and for monitoring the hosts. Each file is a
    /// handlebars template; a project's own templates/dockerfile.hbs, templates/dockerignore.hbs,
    /// templates/supervisor.hbs, templates/k8s/{deployment,service,configmap,secret}.hbs or
    /// templates/prometheus/{targets,scrape}.hbs replaces the built-in one.
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Local rehearsal hosts: Debian containers with systemd and SSH (Linux, root)
    ///
    /// Each host is a Debian container (bullseye, bookworm or trixie) booted by systemd-nspawn in
    /// a network namespace of its own, at 10.213.N.2; `ssh -F /var/lib/shipit/sandbox/ssh_config
    /// NAME` logs in as root. Hosts and keys live in $SHIPIT_SANDBOX_DIR (default
    /// /var/lib/shipit/sandbox), the rootfs of each release, built with debootstrap by the first
    /// `up` that needs it, in $SHIPIT_SANDBOX_CACHE (default /var/cache/shipit/sandbox).
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Print the man page (roff)
    Man,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Platform to build for: linux-amd64 or linux-arm64
    #[arg(long, value_name = "TARGET", default_value = "linux-amd64", value_parser = target)]
    pub target: Target,
    /// Use this version instead of shipit.toml's or `git describe`
    #[arg(long, value_name = "VERSION")]
    pub version_override: Option<String>,
    /// Where the package is written [default: DIR/dist]
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

const HOST_HELP: &str = "A [hosts] name from shipit.toml, an ssh alias, a sandbox host, or \
    [user@]host[:port] [default: the environment's one host, else sandbox]";

#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Record an unknown host key (like OpenSSH's accept-new); a changed key is always refused
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// Identity file to try first (repeatable)
    #[arg(short = 'i', long = "identity", value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// ssh config file to use instead of ~/.ssh/config (like `ssh -F`)
    #[arg(short = 'F', long = "ssh-config", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
}

const HOSTS_HELP: &str = "Hosts or [groups] from shipit.toml, ssh aliases, sandbox hosts, or \
    [user@]host[:port] [default: every host of the environment, else sandbox]";

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[arg(value_name = "HOST", help = HOSTS_HELP)]
    pub hosts: Vec<String>,
    /// Deploy this package instead of building one
    #[arg(long, value_name = "FILE", conflicts_with_all = ["target", "version_override", "out_dir"])]
    pub package: Option<PathBuf>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
    /// Write what happens as JSON lines on stdout while it happens; the last line is the --json
    /// report
    #[arg(long, conflicts_with_all = ["json", "dry_run"])]
    pub events: bool,
    /// Print every remote step, the unit diff and the binary change; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// When the new release fails its health check, leave it in place instead of rolling back
    #[arg(long)]
    pub no_rollback: bool,
    /// Wait this long for another deploy's lock (e.g. 2m) instead of failing at once [default:
    /// [deploy] lock_wait]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub lock_wait: Option<Duration>,
    /// Arm a timer on the host that rolls back by itself unless shipit confirms the release
    /// within DURATION (e.g. 3m) — survives this machine dying mid-deploy [default: [deploy]
    /// confirm_timeout]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub confirm_timeout: Option<Duration>,
    /// Cancel another deploy's armed dead-man timer on the hosts instead of refusing to deploy
    #[arg(long)]
    pub force_disarm: bool,
    /// Hosts connected to, uploaded to and prepared at the same time [default: [deploy]
    /// parallel, else 8]
    #[arg(long, value_name = "N", value_parser = parse_parallel)]
    pub parallel: Option<usize>,
    /// Hosts switched at a time (N or P%); each batch must pass its health gate before the next
    /// [default: [deploy] batch, else 100%]
    #[arg(long, value_name = "N|P%", value_parser = batch)]
    pub batch: Option<Amount>,
    /// Switch this host (or "1": the first host) alone before any batch [default: [deploy]
    /// canary]
    #[arg(long, value_name = "HOST|1", value_parser = canary)]
    pub canary: Option<Canary>,
    /// Failed hosts (N or P%) tolerated before the rollout stops [default: [deploy] max_fail,
    /// else 0]
    #[arg(long, value_name = "N|P%", value_parser = amount)]
    pub max_fail: Option<Amount>,
    /// When the rollout stops, switch the hosts already on the new release back too
    #[arg(long)]
    pub rollback_all_on_failure: bool,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(value_name = "HOST", help = HOSTS_HELP)]
    pub hosts: Vec<String>,
    /// Print the status as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[arg(value_name = "HOST", help = HOSTS_HELP)]
    pub hosts: Vec<String>,
    /// Print each host's result as JSON: identical, and each file's unified diff
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

impl DiffArgs {
    pub fn request(&self, config: &Config) -> Result<ops::diff::Request> {
        Ok(ops::diff::Request {
            hosts: hosts::choose(config, &self.hosts)?,
            format: format(self.json),
            connection: self.connect.connection(),
        })
    }
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[arg(value_name = "HOST", help = HOSTS_HELP)]
    pub hosts: Vec<String>,
    /// Keep printing new lines, from every host, until Ctrl-C (or --until)
    #[arg(short, long)]
    pub follow: bool,
    /// How many lines to show (of the merged lines for several hosts) [default: 100, or all
    /// with --since or --until]
    #[arg(short = 'n', long, value_name = "N")]
    pub lines: Option<u32>,
    /// Lines from this time on, in journalctl's forms: "2025-01-02 10:00", "10:00", "-1h",
    /// "2h ago", "today", "@1735787045" (the host's time zone unless "UTC" ends it)
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Lines up to this time, in the same forms; with -f, following stops there
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Only lines whose message matches this regular expression (journalctl --grep: PCRE2,
    /// case-insensitive unless it has capitals)
    #[arg(short = 'g', long = "grep", value_name = "PATTERN")]
    pub grep: Option<String>,
    /// Prefix lines with their host's name even for one host
    #[arg(long)]
    pub host_names: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[arg(value_name = "HOST", help = HOSTS_HELP)]
    pub hosts: Vec<String>,
    /// The command and its arguments, after `--`
    #[arg(value_name = "COMMAND", last = true, required = true)]
    pub command: Vec<String>,
    /// Give the command a terminal, for an interactive session (one host)
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Print a summary of the hosts' exit statuses as JSON; the command's output goes to stderr
    #[arg(long, conflicts_with = "tty")]
    pub json: bool,
    /// Write each host's exit as a JSON line on stdout as it happens, the --json summary last;
    /// the command's output goes to stderr
    #[arg(long, conflicts_with_all = ["json", "tty"])]
    pub events: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    #[arg(value_name = "HOST", help = HOST_HELP)]
    pub host: Option<String>,
    /// Print the releases as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[arg(value_name = "HOST", help = HOSTS_HELP)]
    pub hosts: Vec<String>,
    /// Show each host's last N entries
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 20)]
    pub lines: usize,
    /// Print the entries as JSON, each with its host
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[arg(value_name = "HOST", help = HOST_HELP)]
    pub host: Option<String>,
    /// Return to the newest good release of this version instead of the previous one
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
    /// Write what happens as JSON lines on stdout while it happens; the last line is the --json
    /// report
    #[arg(long, conflicts_with = "json")]
    pub events: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Show who holds the deploy lock and since when, and any dead-man timer armed on HOST
    Status(HostArgs),
    /// Remove the lock (after a deploy died without releasing it)
    Release(HostArgs),
}

#[derive(Debug, Args)]
pub struct HostArgs {
    #[arg(value_name = "HOST", help = HOST_HELP)]
    pub host: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Subcommand)]
pub enum UnitCommand {
    /// Render the systemd unit (and with [service] listen its socket unit) to stdout or files
    ///
    /// With a socket there are two units: stdout shows each after a `# /etc/systemd/system/NAME`
    /// line, as `systemctl cat` does, and -o takes a directory.
    Generate(UnitGenerateArgs),
}

#[derive(Debug, Args)]
pub struct UnitGenerateArgs {
    /// Write the service unit to FILE, or every unit (<app>.service, <app>.socket) into DIR: an
    /// existing directory, or a path ending in /
    #[arg(short, long, value_name = "FILE|DIR")]
    pub output: Option<PathBuf>,
    /// Check the units with `systemd-analyze verify`; any warning is an error
    #[arg(long)]
    pub verify: bool,
    /// Render the units for hosts with this systemd release: newer directives are left out
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(239..=9999))]
    pub systemd_version: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the configuration as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing shipit.toml
    #[arg(long)]
    pub force: bool,
    /// App name [default: from go.mod or Cargo.toml]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// A multi-stage Dockerfile: build stage, then a small non-root runtime image
    ///
    /// The builder compiles the static binary as `shipit build` does; the runtime stage is
    /// [container] runtime (distroless-static, scratch or alpine). With -o DIR a matching
    /// .dockerignore is written beside it.
    Dockerfile(DockerfileArgs),
    /// Kubernetes Deployment, Service and ConfigMap (one YAML stream, or files with -o)
    K8s(K8sArgs),
    /// A supervisord [program:<app>] section, with the [supervisord] file-descriptor limit
    Supervisor(SupervisorArgs),
    /// Prometheus file_sd targets for the environment's hosts, and a scrape config for them
    ///
    /// One target per host: its address with [metrics] port (default: the [health] url's port),
    /// labelled app, environment, host, group (its [groups], comma-joined) and version (the
    /// configured one, or with --live the one each host runs). The scrape config's
    /// file_sd_configs names the targets file, with [metrics] path as metrics_path. Prints the
    /// targets, or writes <app>[-<env>].json and <app>[-<env>].scrape.yml with -o.
    Prometheus(PrometheusArgs),
}

#[derive(Debug, Args)]
pub struct DockerfileArgs {
    /// Write Dockerfile and .dockerignore into DIR instead of printing the Dockerfile
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Print the .dockerignore instead of the Dockerfile
    #[arg(long, conflicts_with = "output")]
    pub dockerignore: bool,
}

#[derive(Debug, Args)]
pub struct K8sArgs {
    /// Write deployment.yaml, service.yaml and configmap.yaml into DIR instead of stdout
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Add a Secret with the keys of [service] env_file and REPLACE_ME values (never the real ones)
    #[arg(long)]
    pub with_secret_template: bool,
}

#[derive(Debug, Args)]
pub struct PrometheusArgs {
    /// Write the targets and the scrape config into DIR instead of printing the targets
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Print the scrape config instead of the targets
    #[arg(long, conflicts_with = "output")]
    pub scrape_config: bool,
    /// Label each host with the version it runs, read from all hosts at once
    #[arg(long)]
    pub live: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct SupervisorArgs {
    /// Write <app>.conf into DIR instead of stdout
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Boot hosts that are not running yet and print `NAME ADDRESS` for each
    Up(SandboxUpArgs),
    /// Stop and delete hosts
    Down(SandboxDownArgs),
    /// Show every host with its address and state
    List,
}

#[derive(Debug, Args)]
pub struct SandboxUpArgs {
    /// Host names [default: sandbox]
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Boot N hosts per NAME, named NAME-1 to NAME-N
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=254))]
    pub count: u8,
    /// Debian release of new hosts [default: bookworm; a running host keeps its own]
    #[arg(long, value_enum, value_name = "RELEASE")]
    pub release: Option<Release>,
    /// PID 1 of new hosts: systemd, or sshd alone (a host without systemd, as in a container)
    #[arg(long, value_enum, value_name = "INIT")]
    pub init: Option<Init>,
    /// Put the new hosts on a network only BASTION (a running sandbox host) reaches; ssh_config
    /// reaches them with `ProxyJump BASTION`
    #[arg(long, value_name = "BASTION")]
    pub behind: Option<String>,
}

#[derive(Debug, Args)]
pub struct SandboxDownArgs {
    /// Host names [default: sandbox]
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Every host in the sandbox directory
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

impl Shell {
    pub fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
            Shell::Elvish => clap_complete::Shell::Elvish,
            Shell::Powershell => clap_complete::Shell::PowerShell,
        }
    }
}

fn target(text: &str) -> Result<Target, String> {
    Target::parse(text).map_err(|e| e.to_string())
}

impl BuildArgs {
    pub fn options(&self) -> crate::package::BuildOptions {
        crate::package::BuildOptions {
            target: self.target,
            version_override: self.version_override.clone(),
            out_dir: self.out_dir.clone(),
        }
    }
}

impl ConnectArgs {
    pub fn connection(&self) -> Connection {
        Connection {
            accept_new_host_key: self.accept_new_host_key,
            identity: self.identity.clone(),
            ssh_config: self.ssh_config.clone(),
        }
    }
}

fn events(on: bool) -> Events {
    if on { Events::stdout() } else { Events::off() }
}

fn format(json: bool) -> Format {
    if json { Format::Json } else { Format::Text }
}

impl DeployArgs {
    /// The request, each rollout flag over its `[deploy]` key and the hosts chosen.
    pub fn request(&self, config: &Config) -> Result<rollout::Request> {
        let file = &config.deploy;
        Ok(rollout::Request {
            hosts: hosts::choose(config, &self.hosts)?,
            package: self.package.clone(),
            build: self.build.options(),
            format: format(self.json),
            events: events(self.events),
            options: rollout::Options {
                dry_run: self.dry_run,
                on_failure: if self.no_rollback {
                    OnFailure::Stay
                } else {
                    OnFailure::RollBack
                },
                lock_wait: self.lock_wait.or(file.lock_wait).unwrap_or_default(),
                confirm_timeout: self.confirm_timeout.or(file.confirm_timeout),
                armed: if self.force_disarm {
                    ArmedPolicy::Disarm
                } else {
                    ArmedPolicy::Refuse
                },
            },
            rollout: rollout::Rollout {
                parallel: self.parallel.unwrap_or(file.parallel),
                batch: self.batch.unwrap_or(file.batch),
                canary: self.canary.clone().or_else(|| file.canary.clone()),
                max_fail: self.max_fail.unwrap_or(file.max_fail),
                rollback_all_on_failure: self.rollback_all_on_failure,
            },
            connection: self.connect.connection(),
        })
    }
}

impl StatusArgs {
    pub fn request(&self, config: &Config) -> Result<ops::status::Request> {
        Ok(ops::status::Request {
            hosts: hosts::choose(config, &self.hosts)?,
            format: format(self.json),
            connection: self.connect.connection(),
        })
    }
}

impl ReleasesArgs {
    pub fn request(&self, config: &Config) -> Result<ops::releases::Request> {
        Ok(ops::releases::Request {
            host: hosts::choose_one(config, self.host.as_deref())?,
            format: format(self.json),
            connection: self.connect.connection(),
        })
    }
}

impl HistoryArgs {
    pub fn request(&self, config: &Config) -> Result<ops::history::Request> {
        Ok(ops::history::Request {
            hosts: hosts::choose(config, &self.hosts)?,
            lines: self.lines,
            format: format(self.json),
            connection: self.connect.connection(),
        })
    }
}

impl RollbackArgs {
    pub fn request(&self, config: &Config) -> Result<ops::rollback::Request> {
        Ok(ops::rollback::Request {
            host: hosts::choose_one(config, self.host.as_deref())?,
            to: self.to.clone(),
            format: format(self.json),
            events: events(self.events),
            connection: self.connect.connection(),
        })
    }
}

impl LogsArgs {
    pub fn request(&self, config: &Config) -> Result<crate::logs::Request> {
        Ok(crate::logs::Request {
            hosts: hosts::choose(config, &self.hosts)?,
            follow: self.follow,
            lines: self.lines,
            since: self.since.clone(),
            until: self.until.clone(),
            grep: self.grep.clone(),
            host_names: self.host_names,
            connection: self.connect.connection(),
        })
    }
}

impl ExecArgs {
    pub fn request(&self, config: &Config) -> Result<crate::exec::Request> {
        Ok(crate::exec::Request {
            hosts: hosts::choose(config, &self.hosts)?,
            command: self.command.clone(),
            tty: self.tty,
            format: format(self.json),
            events: events(self.events),
            connection: self.connect.connection(),
        })
    }
}

impl LockCommand {
    pub fn request(&self, config: &Config) -> Result<ops::lock::Request> {
        let (action, args) = match self {
            LockCommand::Status(args) => (ops::lock::LockAction::Show, args),
            LockCommand::Release(args) => (ops::lock::LockAction::Release, args),
        };
        Ok(ops::lock::Request {
            action,
            host: hosts::choose_one(config, args.host.as_deref())?,
            connection: args.connect.connection(),
        })
    }
}

impl UnitGenerateArgs {
    pub fn options(&self) -> crate::unit::GenerateOptions {
        crate::unit::GenerateOptions {
            output: self.output.clone(),
            verify: self.verify,
            systemd_version: self.systemd_version,
        }
    }
}

impl InitArgs {
    pub fn options(&self) -> crate::init::Options {
        crate::init::Options {
            name: self.name.clone(),
            force: self.force,
        }
    }
}

impl GenerateCommand {
    pub fn what(&self) -> (crate::generate::What, Option<&Path>) {
        use crate::generate::What;
        match self {
            GenerateCommand::Dockerfile(args) => (
                What::Dockerfile {
                    show_dockerignore: args.dockerignore,
                },
                args.output.as_deref(),
            ),
            GenerateCommand::K8s(args) => (
                What::K8s {
                    secret_template: args.with_secret_template,
                },
                args.output.as_deref(),
            ),
            GenerateCommand::Supervisor(args) => (What::Supervisor, args.output.as_deref()),
            GenerateCommand::Prometheus(args) => (
                What::Prometheus {
                    versions: if args.live {
                        crate::generate::Versions::Live
                    } else {
                        crate::generate::Versions::Configured
                    },
                    connection: args.connect.connection(),
                    show_scrape_config: args.scrape_config,
                },
                args.output.as_deref(),
            ),
        }
    }
}

impl SandboxCommand {
    pub fn request(&self) -> crate::sandbox::Request {
        use crate::sandbox::{Request, UpOptions, expand_names};
        match self {
            SandboxCommand::Up(args) => Request::Up(
                expand_names(&args.names, args.count),
                UpOptions {
                    release: args.release,
                    init: args.init,
                    behind: args.behind.clone(),
                },
            ),
            SandboxCommand::Down(args) if args.all => Request::DownAll,
            SandboxCommand::Down(args) => Request::Down(expand_names(&args.names, 1)),
            SandboxCommand::List => Request::List,
        }
    }
}

// The sandbox's choices, offered on the command line without the sandbox knowing clap.
impl ValueEnum for Release {
    fn value_variants<'a>() -> &'a [Self] {
        &Release::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.suite()).help(self.describe()))
    }
}

impl ValueEnum for Init {
    fn value_variants<'a>() -> &'a [Self] {
        &Init::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()).help(self.describe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
