//! shipit.toml + flags → a validated [`Config`]. Every user-supplied name, path and value is checked
//! here, before anything is built or touches a server, and errors point at file:line:col.

mod generate;
mod model;
mod raw;
mod source;

use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use toml::Spanned;

use crate::error::{Category, Tag};
use crate::project::Language;
use crate::validate::{
    validate_app_name, validate_env_key, validate_line, validate_relative_path, validate_user_name,
    validate_version,
};

pub use model::{
    App, Argv, Build, Builder, CCompiler, Cgo, Config, Container, Deploy, Health, HookHosts, Hooks,
    HostEntry, K8s, Listen, Probe, Resources, Runtime, Service, VersionSource,
};
use raw::{
    HardeningValue, RawArgv, RawBuild, RawConfig, RawDeploy, RawHealth, RawHooks, RawHost,
    RawService,
};
use source::{Source, choice, string_or};

pub const FILE_NAME: &str = "shipit.toml";

/// The default hardening; it scores "OK" in `systemd-analyze security`. Users override or drop
/// single directives in `[service.hardening]`.
pub const DEFAULT_HARDENING: &[(&str, &str)] = &[
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallFilter", "@system-service"),
    ("UMask", "0077"),
];

const RESTART_VALUES: &[&str] = &[
    "no",
    "on-success",
    "on-failure",
    "on-abnormal",
    "on-watchdog",
    "on-abort",
    "always",
];

/// Loads `file` (or DIR/shipit.toml); without a file, defaults are derived from the project.
pub fn load(root: &Path, file: Option<&Path>) -> Result<Config> {
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
    parse(&root, &path, &text)
}

pub fn parse(root: &Path, path: &Path, text: &str) -> Result<Config> {
    let src = Source { path, text };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        src.error(&span, e.message().trim_end())
    })?;
    let detected = crate::project::detect(root)?;
    let build = parse_build(&src, raw.build, detected.language)?;

    let name = match raw.app.as_ref().and_then(|a| a.name.as_ref()) {
        Some(name) => {
            src.check(name, |n| validate_app_name(n))?;
            name.get_ref().clone()
        }
        None => detected.default_app_name().with_context(|| {
            format!(
                "set [app] name in {} (run `shipit init` to write one)",
                path.display()
            )
        })?,
    };
    let version = match raw.app.as_ref().and_then(|a| a.version.as_ref()) {
        None => VersionSource::Git,
        Some(v) if v.get_ref() == "git" => VersionSource::Git,
        Some(v) => {
            src.check(v, |v| validate_version(v))?;
            VersionSource::Literal(v.get_ref().clone())
        }
    };
    let mut service = parse_service(&src, root, raw.service, &name)?;
    let health = raw.health.map(|h| parse_health(&src, h)).transpose()?;
    service.port = service.port.or(health.as_ref().map(|h| h.endpoint().1));
    let hosts = parse_hosts(&src, root, raw.hosts, health.is_some())?;
    let groups = parse_groups(&src, raw.groups, &hosts)?;
    let deploy = parse_deploy(&src, raw.deploy, !service.listen.is_empty())?;
    let hooks = parse_hooks(&src, raw.hooks)?;
    let container = generate::parse_container(&src, raw.container)?;
    let k8s = generate::parse_k8s(&src, raw.k8s, &name)?;

    Ok(Config {
        root: root.to_path_buf(),
        app: App { name, version },
        build,
        service,
        health,
        hosts,
        groups,
        deploy,
        hooks,
        container,
        k8s,
    })
}

fn parse_groups(
    src: &Source,
    raw: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    hosts: &BTreeMap<String, HostEntry>,
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut groups = BTreeMap::new();
    for (name, members) in raw {
        src.check(&name, |n| {
            validate_app_name(n).map_err(|_| {
                format!("invalid group name {n:?}: use lowercase letters, digits and '-'")
            })?;
            if hosts.contains_key(n) {
                return Err(format!("{n:?} is both a host and a group"));
            }
            Ok(())
        })?;
        if members.is_empty() {
            return Err(src.error(&name.span(), "a group needs at least one host"));
        }
        let mut list: Vec<String> = Vec::new();
        for member in members {
            src.check(&member, |m| {
                crate::validate::validate_host(m).map_err(|e| e.to_string())?;
                if list.contains(m) {
                    return Err(format!("{m:?} is listed twice"));
                }
                Ok(())
            })?;
            list.push(member.into_inner());
        }
        groups.insert(name.into_inner(), list);
    }
    Ok(groups)
}

fn parse_hosts(
    src: &Source,
    root: &Path,
    raw: BTreeMap<Spanned<String>, RawHost>,
    has_health: bool,
) -> Result<BTreeMap<String, HostEntry>> {
    let mut hosts = BTreeMap::new();
    for (name, host) in raw {
        src.check(&name, |n| {
            validate_app_name(n).map_err(|_| {
                format!("invalid host name {n:?}: use lowercase letters, digits and '-'")
            })
        })?;
        src.check(&host.address, |a| {
            crate::validate::validate_host(a).map_err(|e| e.to_string())
        })?;
        if let Some(user) = &host.user {
            src.check(user, |u| validate_user_name(u))?;
        }
        if let Some(port) = &host.port {
            src.check(port, |p| {
                if *p > 0 {
                    Ok(())
                } else {
                    Err("port must be 1-65535".into())
                }
            })?;
        }
        let identity_file = host
            .identity_file
            .map(|f| {
                src.check(&f, |p| validate_line(p, "a path"))?;
                let path = match f.get_ref().strip_prefix("~/") {
                    Some(rest) => home_dir().join(rest),
                    None => PathBuf::from(f.get_ref()),
                };
                Ok::<_, anyhow::Error>(if path.is_absolute() {
                    path
                } else {
                    root.join(path)
                })
            })
            .transpose()?;
        let mut env = BTreeMap::new();
        for (key, value) in host.env {
            src.check(&key, |k| validate_env_key(k))?;
            src.check(&value, |v| validate_line(v, "an env value"))?;
            env.insert(key.into_inner(), value.into_inner());
        }
        let env_command = host
            .env_command
            .map(|c| parse_argv(src, c, "env_command"))
            .transpose()?;
        if let Some(jump) = &host.proxy_jump {
            src.check(jump, |j| {
                crate::validate::validate_jump(j).map_err(|e| format!("{e:#}"))
            })?;
        }
        if let Some(url) = &host.health_url {
            src.check(url, |u| {
                validate_health_url(u)?;
                if has_health {
                    Ok(())
                } else {
                    Err("health_url needs a [health] table for the other settings".into())
                }
            })?;
        }
        hosts.insert(
            name.into_inner(),
            HostEntry {
                address: host.address.into_inner(),
                user: host.user.map(Spanned::into_inner),
                port: host.port.map(Spanned::into_inner),
                identity_file,
                env,
                env_command,
                health_url: host.health_url.map(Spanned::into_inner),
                proxy_jump: host.proxy_jump.map(Spanned::into_inner),
            },
        );
    }
    Ok(hosts)
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

fn parse_deploy(src: &Source, raw: RawDeploy, has_sockets: bool) -> Result<Deploy> {
    if let Some(keep) = &raw.keep_releases {
        src.check(keep, |k| {
            if (2..=100).contains(k) {
                Ok(())
            } else {
                Err("keep_releases must be between 2 and 100".into())
            }
        })?;
    }
    if let Some(preflight) = &raw.preflight {
        src.check(preflight, |on| {
            if *on && !has_sockets {
                Err(
                    "preflight starts the new release on a socket of its own before the switch, \
                     so it needs [service] listen\n  help: set [service] listen, or remove \
                     preflight"
                        .into(),
                )
            } else {
                Ok(())
            }
        })?;
    }
    Ok(Deploy {
        keep_releases: raw.keep_releases.map_or(5, Spanned::into_inner),
        preflight: has_sockets && raw.preflight.is_none_or(Spanned::into_inner),
    })
}

fn parse_build(src: &Source, raw: RawBuild, detected: Option<Language>) -> Result<Build> {
    let builder = match &raw.builder {
        Some(b) => {
            let builder = choice(src, b, "builder", &Builder::NAMES)?;
            if let Some(lang) = detected.filter(|l| *l != builder.language()) {
                return Err(src.error(
                    &b.span(),
                    format!("builder {:?} cannot build this {lang} project", b.get_ref()),
                ));
            }
            builder
        }
        None => match detected {
            Some(Language::Go) => Builder::Go,
            Some(Language::Rust) => Builder::Cargo,
            None => crate::fail!(
                Usage,
                "no go.mod or Cargo.toml in {}: shipit builds Go and Rust projects\n  \
                 help: run shipit in the project directory or pass --path DIR",
                src.path.parent().unwrap_or(Path::new(".")).display()
            ),
        },
    };
    let go_only = |value: &Option<Spanned<String>>, key: &str| match value {
        Some(v) if builder != Builder::Go => Err(src.error(
            &v.span(),
            format!(
                "{key} is for Go's cgo; a Rust project's C code is built by its builder\n  \
                 help: remove it, or set builder = \"zigbuild\" to compile C with zig"
            ),
        )),
        _ => Ok(()),
    };
    go_only(&raw.cgo, "cgo")?;
    go_only(&raw.cc, "cc")?;
    let cgo = raw
        .cgo
        .as_ref()
        .map_or(Ok(Cgo::Auto), |v| choice(src, v, "cgo", &Cgo::NAMES))?;
    let cc = raw.cc.as_ref().map_or(Ok(CCompiler::Auto), |v| {
        choice(src, v, "cc", &CCompiler::NAMES)
    })?;
    Ok(Build {
        builder,
        zig_fallback: raw.builder.is_none() && builder == Builder::Cargo,
        cgo,
        cc,
        go_package: string_or(src, raw.go_package, ".", validate_go_package)?,
        version_var: string_or(src, raw.version_var, "main.version", validate_go_symbol)?,
        build_time_var: string_or(
            src,
            raw.build_time_var,
            "main.buildTime",
            validate_go_symbol,
        )?,
        cargo_bin: raw
            .cargo_bin
            .map(|b| src.check(&b, |s| validate_word(s)).map(|_| b.into_inner()))
            .transpose()?,
        cargo_features: raw
            .cargo_features
            .into_iter()
            .map(|f| src.check(&f, |s| validate_word(s)).map(|_| f.into_inner()))
            .collect::<Result<_>>()?,
        version_env: string_or(src, raw.version_env, "SHIPIT_VERSION", validate_env_key)?,
        build_time_env: string_or(
            src,
            raw.build_time_env,
            "SHIPIT_BUILD_TIME",
            validate_env_key,
        )?,
    })
}

fn parse_service(src: &Source, root: &Path, raw: RawService, app: &str) -> Result<Service> {
    let restart = string_or(src, raw.restart, "on-failure", |r| {
        if RESTART_VALUES.contains(&r) {
            Ok(())
        } else {
            Err(format!(
                "restart must be one of {}",
                RESTART_VALUES.join(", ")
            ))
        }
    })?;
    if let Some(limit) = &raw.limit_nofile {
        src.check(limit, |n| {
            if (1..=1 << 30).contains(n) {
                Ok(())
            } else {
                Err("limit_nofile must be between 1 and 1073741824".into())
            }
        })?;
    }
    let mut env = BTreeMap::new();
    for (key, value) in raw.env {
        src.check(&key, |k| validate_env_key(k))?;
        src.check(&value, |v| validate_line(v, "an env value"))?;
        env.insert(key.into_inner(), value.into_inner());
    }
    let env_file = raw
        .env_file
        .map(|f| {
            // An absolute path says "this file, wherever it is"; a relative one stays inside.
            if Path::new(f.get_ref()).is_absolute() {
                src.check(&f, |p| validate_line(p, "a path"))?;
                return Ok(PathBuf::from(f.get_ref()));
            }
            src.check(&f, |p| {
                validate_relative_path(p)?;
                stays_inside(root, p, true).map_err(|why| {
                    format!(
                        "{why}\n  help: to use a file outside the project on purpose, give \
                         env_file as an absolute path"
                    )
                })
            })?;
            Ok::<_, anyhow::Error>(root.join(f.get_ref()))
        })
        .transpose()?;
    let mut files = Vec::new();
    for file in raw.files {
        src.check(&file, |p| {
            validate_relative_path(p)?;
            if [
                app.to_string(),
                format!("{app}.service"),
                format!("{app}.socket"),
                "manifest.json".into(),
            ]
            .contains(&p.to_string())
            {
                return Err(format!(
                    "{p:?} would clash with a file shipit puts in the package"
                ));
            }
            if !root.join(p).is_file() {
                return Err(format!("{p:?} is not a file in {}", root.display()));
            }
            stays_inside(root, p, false).map_err(|why| {
                format!("{why}\n  help: copy the file into the project instead of linking to it")
            })
        })?;
        files.push(file.into_inner());
    }
    files.sort();
    files.dedup();
    let mut exec_args = Vec::new();
    for arg in raw.exec_args {
        src.check(&arg, |a| validate_line(a, "an argument"))?;
        exec_args.push(arg.into_inner());
    }
    let mut capabilities = Vec::new();
    for cap in raw.capabilities {
        src.check(&cap, |c| {
            let ok = c.strip_prefix("CAP_").is_some_and(|rest| {
                !rest.is_empty() && rest.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_')
            });
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "{c:?} is not a capability name like CAP_NET_BIND_SERVICE"
                ))
            }
        })?;
        capabilities.push(cap.into_inner());
    }
    if let Some(port) = &raw.port {
        src.check(port, validate_port)?;
    }
    let mut listen: Vec<Listen> = Vec::new();
    for value in &raw.listen {
        let parsed = parse_listen(value.get_ref()).map_err(|why| src.error(&value.span(), why))?;
        if let Some(earlier) = listen.iter().find(|l| l.clashes_with(&parsed)) {
            let why = if *earlier == parsed {
                format!("{parsed} is listed twice")
            } else {
                format!(
                    "{parsed} and {earlier} cannot both listen: one of them takes the other's \
                     address on port {}\n  help: keep one (a port alone, or [::], takes every \
                     IPv4 and IPv6 address; 0.0.0.0 every IPv4 one)",
                    parsed.port()
                )
            };
            return Err(src.error(&value.span(), why));
        }
        listen.push(parsed);
    }
    Ok(Service {
        description: string_or(
            src,
            raw.description,
            &format!("{app} (deployed by shipit)"),
            |d| validate_line(d, "the description"),
        )?,
        user: string_or(src, raw.user, app, validate_user_name)?,
        exec_args,
        limit_nofile: raw.limit_nofile.map_or(65536, Spanned::into_inner),
        restart,
        restart_sec: raw.restart_sec.unwrap_or(5),
        start_limit_interval_sec: raw.start_limit_interval_sec.unwrap_or(60),
        start_limit_burst: raw.start_limit_burst.unwrap_or(5),
        timeout_stop_sec: raw.timeout_stop_sec.unwrap_or(30),
        files,
        env,
        env_file,
        env_command: raw
            .env_command
            .map(|c| parse_argv(src, c, "env_command"))
            .transpose()?,
        hardening: merge_hardening(src, raw.hardening)?,
        capabilities,
        port: raw.port.map(Spanned::into_inner),
        listen,
    })
}

/// A command as words, run without a shell: a program first (no `$`, which systemd would
/// expand in a hook's program name), and no word with a newline or NUL.
fn parse_argv(src: &Source, raw: RawArgv, key: &str) -> Result<Argv> {
    let location = src.location(&raw.span());
    let program = raw.get_ref().first().map(|p| p.get_ref().as_str());
    if program.is_none_or(|p| p.is_empty() || p.contains('$')) {
        return Err(src.error(
            &raw.span(),
            format!(
                "{key} needs a program and its arguments, like [\"./app\", \"migrate\"] (no \
                 shell: for one, write [\"sh\", \"-c\", \"…\"]; no `$` in the program's name)"
            ),
        ));
    }
    let mut words = Vec::new();
    for word in raw.into_inner() {
        src.check(&word, |w| validate_line(w, &format!("a word of {key}")))?;
        words.push(word.into_inner());
    }
    Ok(Argv { words, location })
}

fn parse_hooks(src: &Source, raw: RawHooks) -> Result<Hooks> {
    let argv = |value: Option<RawArgv>, key| value.map(|v| parse_argv(src, v, key)).transpose();
    let before_switch_on = match &raw.before_switch_on {
        None => HookHosts::First,
        Some(on) if raw.before_switch.is_none() => {
            return Err(src.error(&on.span(), "before_switch_on needs a before_switch hook"));
        }
        Some(on) => choice(src, on, "before_switch_on", &HookHosts::NAMES)?,
    };
    Ok(Hooks {
        before_switch: argv(raw.before_switch, "before_switch")?,
        before_switch_on,
        after_switch: argv(raw.after_switch, "after_switch")?,
        local_before: argv(raw.local_before, "local_before")?,
        local_after: argv(raw.local_after, "local_after")?,
    })
}

fn merge_hardening(
    src: &Source,
    overrides: BTreeMap<Spanned<String>, Spanned<HardeningValue>>,
) -> Result<Vec<(String, String)>> {
    let mut merged: Vec<(String, String)> = DEFAULT_HARDENING
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (key, value) in overrides {
        src.check(&key, |k| validate_hardening_key(k))?;
        let new = match value.get_ref() {
            HardeningValue::Off(true) => {
                return Err(src.error(
                    &value.span(),
                    "use a directive value (e.g. \"yes\") or false to drop the directive",
                ));
            }
            HardeningValue::Off(false) => None,
            HardeningValue::Value(v) => {
                src.check(&value, |_| {
                    validate_line(v, "a directive value")?;
                    // A unit line ending in a backslash continues on the next one.
                    if v.ends_with('\\') {
                        return Err("a directive value must not end in a backslash".into());
                    }
                    Ok(())
                })?;
                Some(v.clone())
            }
            HardeningValue::Number(n) => Some(n.to_string()),
        };
        let key = key.into_inner();
        let slot = merged.iter().position(|(k, _)| *k == key);
        match (slot, new) {
            (Some(i), Some(v)) => merged[i].1 = v,
            (Some(i), None) => {
                merged.remove(i);
            }
            (None, Some(v)) => merged.push((key, v)),
            (None, None) => {}
        }
    }
    Ok(merged)
}

/// A key shipit knows the systemd release of (so it can leave it out for older hosts); anything
/// else is a typo or a directive shipit cannot vouch for, refused before anything is built.
fn validate_hardening_key(key: &str) -> Result<(), String> {
    if crate::systemd::service_directive(key).is_some() {
        return Ok(());
    }
    let guess = crate::systemd::suggest(key)
        .map(|name| format!(" (did you mean {name}?)"))
        .unwrap_or_default();
    Err(format!(
        "{key:?} is not a directive shipit knows{guess}\n  \
         help: README.md \"Supported hosts\" lists the [service.hardening] keys and the systemd \
         release each needs"
    ))
}

fn parse_health(src: &Source, raw: RawHealth) -> Result<Health> {
    src.check(&raw.url, |u| validate_health_url(u))?;
    let duration = |value: Option<Spanned<String>>, default: Duration| -> Result<Duration> {
        match value {
            None => Ok(default),
            Some(v) => humantime::parse_duration(v.get_ref()).map_err(|e| {
                src.error(
                    &v.span(),
                    format!("{:?} is not a duration like \"2s\": {e}", v.get_ref()),
                )
            }),
        }
    };
    if let Some(status) = &raw.expect_status {
        src.check(status, |s| {
            if (100..600).contains(s) {
                Ok(())
            } else {
                Err("expect_status must be an HTTP status (100-599)".into())
            }
        })?;
    }
    Ok(Health {
        url: raw.url.into_inner(),
        expect_status: raw.expect_status.map_or(200, Spanned::into_inner),
        interval: duration(raw.interval, Duration::from_secs(1))?,
        timeout: duration(raw.timeout, Duration::from_secs(2))?,
        retries: raw.retries.unwrap_or(30),
        settle: duration(raw.settle, Duration::from_secs(3))?,
        check_version: raw.check_version.unwrap_or(true),
    })
}

// ---------------------------------------------------------------------------------------------
// Validators, shared with the command line. Each returns the reason in words a user can act on.

fn validate_go_symbol(symbol: &str) -> Result<(), String> {
    let ok = symbol.contains('.')
        && !symbol.starts_with('.')
        && !symbol.ends_with('.')
        && symbol
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{symbol:?} is not a Go variable for -X (like main.version or example.com/app/buildinfo.Version)"
        ))
    }
}

fn validate_go_package(package: &str) -> Result<(), String> {
    if package == "." {
        return Ok(());
    }
    let path = package.strip_prefix("./").unwrap_or(package);
    validate_relative_path(path).map_err(|why| format!("go_package: {why} (like \"./cmd/server\")"))
}

fn validate_word(word: &str) -> Result<(), String> {
    let ok = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{word:?}: use letters, digits, '_', '-' and '/'"))
    }
}

fn validate_port(port: &u16) -> Result<(), String> {
    if *port > 0 {
        Ok(())
    } else {
        Err("a port must be 1-65535".into())
    }
}

/// Symlinks may not lead a project path out of the project: a repository could otherwise ship a
/// file of the machine that builds it (`leak.txt -> ~/.ssh/id_ed25519`). `root` is canonical.
/// A path that does not exist yet passes when `missing_ok`; whoever reads it reports that.
fn stays_inside(root: &Path, path: &str, missing_ok: bool) -> Result<(), String> {
    let real = match root.join(path).canonicalize() {
        Ok(real) => real,
        Err(_) if missing_ok => return Ok(()),
        Err(e) => return Err(format!("{path:?} cannot be resolved: {e}")),
    };
    if real.starts_with(root) {
        Ok(())
    } else {
        Err(format!(
            "{path:?} points outside the project, to {}: only files inside {} are shipped",
            real.display(),
            root.display()
        ))
    }
}

/// A `[service] listen` value: a port, IPv4:port or [IPv6]:port, the `ListenStream=` forms for
/// TCP. What else systemd takes there (AF_UNIX paths, abstract and vsock sockets, interface
/// scopes) is refused with a word on why; systemd itself resolves no host names.
pub fn parse_listen(value: &str) -> Result<Listen, String> {
    let forms =
        "use a port (\"8080\"), IPv4:port (\"0.0.0.0:8080\") or [IPv6]:port (\"[::]:8080\")";
    let port_ok = |port: u16| {
        if port == 0 {
            Err(format!("{value:?}: the port must be 1-65535"))
        } else {
            Ok(())
        }
    };
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = value
            .parse()
            .map_err(|_| format!("{value:?}: the port must be 1-65535"))?;
        port_ok(port)?;
        return Ok(Listen::Port(port));
    }
    if value.starts_with(['/', '@']) || value.starts_with("vsock:") {
        return Err(format!(
            "{value:?}: shipit's listen takes TCP sockets only: {forms}\n  help: for another \
             kind of socket, write it in the project's templates/socket.hbs"
        ));
    }
    if value.contains('%') {
        return Err(format!(
            "{value:?}: interface scopes (%dev) are not supported: {forms}"
        ));
    }
    let address = if value.starts_with('[') {
        value.parse::<SocketAddrV6>().ok().map(SocketAddr::V6)
    } else {
        value.parse::<SocketAddrV4>().ok().map(SocketAddr::V4)
    };
    let Some(address) = address else {
        // Letters outside brackets: a name, not an IPv4 or IPv6 address.
        let host = value.rsplit_once(':').map_or(value, |(host, _)| host);
        let named = !host.contains([':', '[']) && host.chars().any(|c| c.is_ascii_alphabetic());
        let help = if named {
            "\n  help: systemd does not resolve host names: use an IP address, like \
             127.0.0.1:8080"
        } else {
            ""
        };
        return Err(format!(
            "{value:?} is not an address systemd listens on: {forms}{help}"
        ));
    };
    port_ok(address.port())?;
    Ok(Listen::Address(address))
}

fn validate_health_url(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("{url:?}: the health URL must start with http:// (it is probed on the host)")
    })?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let port = authority.rsplit_once(':').map(|(_, p)| p);
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let host_ok = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    let path_ok = path.chars().all(|c| c.is_ascii_graphic());
    if host_ok && port_ok && path_ok {
        Ok(())
    } else {
        Err(format!(
            "{url:?} is not a URL like http://127.0.0.1:8080/health"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        for ok in ["hello", "hello-go", "a1", "x"] {
            assert!(validate_app_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a;rm -rf /",
            "../x",
            "Hello",
            "1app",
            "app-",
            "a b",
            &"a".repeat(33),
        ] {
            assert!(validate_app_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_paths_stay_inside() {
        assert!(validate_relative_path("config.yaml").is_ok());
        assert!(validate_relative_path("conf/app.yaml").is_ok());
        for bad in ["/etc/passwd", "../secret", "a/../../b", "./x", "", "a\nb"] {
            assert!(validate_relative_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cgo_settings_belong_to_go_and_a_written_builder_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"demo\"\n",
        )
        .unwrap();
        let parse = |text: &str| parse(dir.path(), &dir.path().join(FILE_NAME), text);
        let err = parse("[build]\ncc = \"zig\"\n").unwrap_err().to_string();
        assert!(
            err.contains("shipit.toml:2:6") && err.contains("builder = \"zigbuild\""),
            "{err}"
        );
        assert!(parse("[build]\ncgo = \"off\"\n").is_err());
        let auto = parse("").unwrap().build;
        assert_eq!((auto.builder, auto.zig_fallback), (Builder::Cargo, true));
        let cargo = parse("[build]\nbuilder = \"cargo\"\n").unwrap().build;
        assert_eq!((cargo.builder, cargo.zig_fallback), (Builder::Cargo, false));
        let zig = parse("[build]\nbuilder = \"zigbuild\"\n").unwrap().build;
        assert_eq!(zig.builder, Builder::Zigbuild);
    }

    #[test]
    fn listen_values_are_what_listen_stream_takes() {
        let ok = |v: &str| parse_listen(v).unwrap().to_string();
        assert_eq!(ok("8080"), "8080");
        assert_eq!(ok("0.0.0.0:8080"), "0.0.0.0:8080");
        assert_eq!(ok("127.0.0.1:1"), "127.0.0.1:1");
        assert_eq!(ok("[::]:8080"), "[::]:8080");
        assert_eq!(ok("[::1]:65535"), "[::1]:65535");
        assert_eq!(ok("[2001:db8::1]:443"), "[2001:db8::1]:443");
        for (bad, why) in [
            ("", "not an address"),
            ("0", "1-65535"),
            ("65536", "1-65535"),
            ("0.0.0.0:0", "1-65535"),
            ("0.0.0.0", "not an address"),
            ("::1:8080", "not an address"),
            ("[::1]", "not an address"),
            ("1.2.3.4.5:80", "not an address"),
            ("01.2.3.4:80", "not an address"),
            ("localhost:8080", "does not resolve host names"),
            ("/run/app.sock", "TCP sockets only"),
            ("@abstract", "TCP sockets only"),
            ("vsock:2:8080", "TCP sockets only"),
            ("[fe80::1%eth0]:8080", "interface scopes"),
            (" 8080", "not an address"),
        ] {
            let err = parse_listen(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

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

    #[test]
    fn preflight_is_on_with_sockets_unless_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("go.mod"), "module example.com/demo\n").unwrap();
        let preflight = |text: &str| {
            parse(dir.path(), &dir.path().join(FILE_NAME), text)
                .map(|c| c.deploy.preflight)
                .map_err(|e| e.to_string())
        };
        assert_eq!(preflight(""), Ok(false));
        assert_eq!(preflight("[deploy]\npreflight = false\n"), Ok(false));
        let sockets = "[service]\nlisten = [\"8080\"]\n";
        assert_eq!(preflight(sockets), Ok(true));
        assert_eq!(
            preflight(&format!("{sockets}[deploy]\npreflight = false\n")),
            Ok(false)
        );
        let err = preflight("[deploy]\npreflight = true\n").unwrap_err();
        assert!(
            err.contains("shipit.toml:2:13") && err.contains("needs [service] listen"),
            "{err}"
        );
    }

    #[test]
    fn health_urls() {
        assert!(validate_health_url("http://127.0.0.1:8080/health").is_ok());
        assert!(validate_health_url("http://localhost/health").is_ok());
        for bad in [
            "https://x/health",
            "http://h:99999/",
            "http://h/a b",
            "http://$(id)/",
        ] {
            assert!(validate_health_url(bad).is_err(), "{bad}");
        }
    }
}
