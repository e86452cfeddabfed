//! `[service]`: the systemd unit's settings, the files shipped beside the binary, its environment,
//! hardening and the sockets systemd listens on for it.

use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};

use anyhow::Result;
use toml::Spanned;

use super::checks::validate_port;
use super::model::{Listen, Service};
use super::raw::{HardeningValue, RawService};
use super::source::{Source, parse_argv, string_or};
use crate::validate::{
    validate_env_key, validate_line, validate_relative_path, validate_user_name,
};

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

pub(super) fn parse_service(
    src: &Source,
    root: &Path,
    raw: RawService,
    app: &str,
) -> Result<Service> {
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
         help: the manual's \"Supported hosts\" guide (docs/src/guides/supported-hosts.md) lists the [service.hardening] keys and the systemd \
         release each needs"
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside() {
        assert!(validate_relative_path("config.yaml").is_ok());
        assert!(validate_relative_path("conf/app.yaml").is_ok());
        for bad in ["/etc/passwd", "../secret", "a/../../b", "./x", "", "a\nb"] {
            assert!(validate_relative_path(bad).is_err(), "{bad}");
        }
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
}
