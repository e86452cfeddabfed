//! The deploy steps: for each remote step, a function that builds it from its script in
//! [`scripts`](super::scripts) and one that reads its answer. Building and reading are apart so
//! the phases can send several steps in one batch (one round trip).

use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;

use super::layout::Layout;
use super::runner::failed_with;
use super::scripts::{self, assemble};
use crate::build::Target;
use crate::error::{Category, tagged};
use crate::interrupt::Interruptible;
use crate::package::Package;
use crate::remote::{Exit, Input, Step, StepFailure};
use crate::ui::Ui;

/// What the first look at a host finds, before anything is written there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFacts {
    /// The systemd release: which directives its units may use and which verify flags exist.
    pub systemd: u32,
}

/// The host must run systemd (239 or later) and match the package's architecture. Only reads:
/// a host that fails it is left exactly as it was, and a step batched after it does not run.
pub fn check(layout: &Layout, target: Target) -> Step<'static> {
    let values = [
        ("machine", machine(target).to_string()),
        ("oldest", crate::systemd::OLDEST.to_string()),
    ];
    Step::reads(
        "checking the host",
        assemble(layout, &values, &[scripts::CHECK]),
    )
}

fn machine(target: Target) -> &'static str {
    match target {
        Target::LinuxAmd64 => "x86_64",
        Target::LinuxArm64 => "aarch64",
    }
}

/// What [`check`] found, or why the host cannot take the package.
pub fn host_facts(answer: Result<String>, host: &str, target: Target) -> Result<HostFacts> {
    let out = match answer {
        Ok(out) => out,
        Err(e) => match failed_with(&e, Exit::Unsuitable) {
            Some(out) => out.to_string(),
            None => return Err(e),
        },
    };
    let fact = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    if fact("booted") != "yes" {
        return Err(tagged(
            Category::Usage,
            anyhow::anyhow!(
                "{host} does not run systemd (PID 1 is {}); nothing was changed there\n  \
                 help: shipit deploys services under systemd; for a host without it, `shipit \
                 generate supervisor` writes a supervisord config for the same service",
                fact("pid1")
            ),
        ));
    }
    let systemd = crate::systemd::parse_version(&fact("systemd")).ok_or_else(|| {
        tagged(
            Category::Remote,
            anyhow::anyhow!(
                "cannot tell which systemd {host} runs: `systemctl --version` printed {:?}",
                fact("systemd")
            ),
        )
    })?;
    if systemd < crate::systemd::OLDEST {
        return Err(tagged(
            Category::Usage,
            anyhow::anyhow!(
                "{host} runs systemd {systemd}; shipit needs {} or later",
                crate::systemd::OLDEST
            ),
        ));
    }
    let found = fact("machine");
    if found != machine(target) {
        return Err(tagged(
            Category::Usage,
            anyhow::anyhow!(
                "{host} is {found} but the package is for {target}\n  help: build with --target {}",
                if found == "aarch64" {
                    "linux-arm64"
                } else {
                    "linux-amd64"
                }
            ),
        ));
    }
    Ok(HostFacts { systemd })
}

/// What the upload step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// The host already had the package.
    Skipped,
    /// `sent` bytes went over the wire, continuing a partial upload at `resumed_from`.
    Sent { sent: u64, resumed_from: u64 },
}

impl Upload {
    /// Where an upload starts, given what the host has: None when it needs none.
    pub fn plan(earlier: EarlierUpload, package: &Package) -> Option<u64> {
        match earlier {
            EarlierUpload::Present => None,
            EarlierUpload::Partial(size) if size < package.size => Some(size),
            EarlierUpload::Partial(_) => Some(0),
        }
    }
}

/// Sends the package from `offset` into the content-addressed upload directory. A partial
/// upload left by a cut connection is continued and the whole file verified; see `upload.sh`.
pub fn upload<'a>(
    layout: &Layout,
    package: &Package,
    offset: u64,
    host: &str,
    ui: &Ui,
) -> Result<Step<'a>> {
    let mut file = std::fs::File::open(&package.path)
        .with_context(|| format!("cannot read {}", package.path.display()))?;
    file.seek(SeekFrom::Start(offset))?;
    let remaining = package.size - offset;
    let bar = ui.bytes(remaining, format!("uploading to {host}"));
    let values = [
        ("size", package.size.to_string()),
        ("offset", offset.to_string()),
    ];
    let step = Step::changes(
        "uploading the package",
        assemble(layout, &values, &[scripts::LIB, scripts::UPLOAD]),
    );
    Ok(step.with_direct_input(Input {
        data: Box::new(Interruptible(file)) as Box<dyn Read>,
        len: remaining,
        what: format!(
            "{} ({remaining} bytes from offset {offset})",
            package.path.display()
        ),
        progress: Box::new(move |sent| {
            bar.set_position(sent);
            if sent == remaining {
                bar.finish_and_clear();
            }
        }),
    }))
}

/// What [`upload`] did; a corrupt partial upload is reported as such (the caller starts over).
pub fn uploaded(answer: Result<String>, offset: u64, package: &Package) -> Result<Upload> {
    answer?;
    Ok(Upload::Sent {
        sent: package.size - offset,
        resumed_from: offset,
    })
}

/// The unit one host gets, for its systemd release.
#[derive(Debug, Clone)]
pub struct HostUnit {
    pub systemd: u32,
    /// The package's unit without the directives this systemd does not know; None when the
    /// package's unit is right as it is.
    pub adapted: Option<String>,
    /// The same for the package's socket unit (`[service] listen`).
    pub socket_adapted: Option<String>,
}

impl HostUnit {
    /// The service unit this host runs the package with: its adaptation, or the package's own.
    pub fn service<'a>(&'a self, package: &'a Package) -> &'a str {
        self.adapted.as_deref().unwrap_or(&package.unit)
    }
}

/// Everything between the upload and the switch, in one script: unpack the release,
/// create the service user, keep the env file and this host's unit with the release, verify
/// the unit (see `release.sh`). The env file travels on stdin, never in the script.
pub fn release<'a>(layout: &Layout, env_file: Option<&'a [u8]>, host_unit: &HostUnit) -> Step<'a> {
    let values = [
        (
            "env_from",
            if env_file.is_some() { "stdin" } else { "host" }.to_string(),
        ),
        ("host_unit", host_unit.adapted.clone().unwrap_or_default()),
        (
            "host_socket",
            host_unit.socket_adapted.clone().unwrap_or_default(),
        ),
        (
            "verify_flags",
            crate::systemd::verify_flags(host_unit.systemd).join(" "),
        ),
    ];
    let step = Step::changes(
        "unpacking the release, creating the service user and verifying the unit",
        assemble(layout, &values, &[scripts::LIB, scripts::RELEASE]),
    );
    match env_file {
        Some(secrets) => {
            let lines = String::from_utf8_lossy(secrets).lines().count();
            step.with_input(Input {
                data: Box::new(secrets),
                len: secrets.len() as u64,
                what: format!("env file, {lines} lines, values hidden"),
                progress: Box::new(|_| {}),
            })
        }
        None => step,
    }
}

/// Whether [`release`] found the release unpacked already.
pub fn released(answer: Result<String>, host_unit: &HostUnit) -> Result<bool> {
    let out = answer.map_err(|e| match Exit::of(&e) {
        Some(Exit::UnitRejected) => crate::remote::with_help(
            e,
            format!(
                "the unit comes from shipit.toml and templates/service.hbs; `shipit unit generate \
                 --systemd-version {} --verify` checks it on this machine",
                host_unit.systemd
            ),
        ),
        _ => e,
    })?;
    Ok(out.trim() == "reused")
}

/// A step that ran out of disk space, said in one line: what filled, what was removed.
pub fn out_of_space(error: anyhow::Error, host: &str, layout: &Layout) -> anyhow::Error {
    if Exit::of(&error) != Some(Exit::NoSpace) {
        return error;
    }
    let said = crate::error::find::<StepFailure>(&error)
        .and_then(|f| {
            f.output
                .stderr
                .lines()
                .rev()
                .find(|l| l.starts_with("no space left"))
        })
        .unwrap_or("no space left")
        .to_string();
    tagged(
        Category::Remote,
        anyhow::anyhow!(
            "{host}: {said}\n  help: free space for {} on {host} (`shipit releases {host}` lists \
             the releases kept there; [deploy] keep_releases keeps fewer), then deploy again",
            layout.base()
        ),
    )
}

/// One release on the host, as `releases` and `rollback` see it.
#[derive(Debug, Clone, Serialize)]
pub struct Release {
    pub name: String,
    pub version: String,
    pub deployed: String,
    pub current: bool,
    pub previous: bool,
    pub failed: bool,
    /// `user@machine` of its last deploy, from the host's deploy log (`releases` fills it in).
    pub deployed_by: Option<String>,
}

/// Releases newest first, with the current one, the previous one (the last release that passed
/// its health gate before the current one) and failed ones marked; and the host's clock (to
/// read the journal from the restart on).
pub fn releases(layout: &Layout) -> Step<'static> {
    Step::reads(
        "listing releases",
        assemble(layout, &[], &[scripts::LIB, scripts::RELEASES]),
    )
}

pub fn parse_now(out: &str) -> Result<u64> {
    out.lines()
        .find_map(|l| l.strip_prefix("now="))
        .and_then(|n| n.trim().parse().ok())
        .context("the host's `date +%s` is not a number")
}

/// What the host has before a deploy changes anything: an earlier upload of the package, its
/// releases, the free space where the upload and the release go, and its clock (to read the
/// journal from around the restart on).
pub struct Survey {
    pub earlier_upload: EarlierUpload,
    /// The release is unpacked and checked already.
    pub unpacked: bool,
    pub uploads_room: Room,
    pub releases_room: Room,
    pub releases: Vec<Release>,
    pub now: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlierUpload {
    /// The package (or its unpacked, checked release) is there already.
    Present,
    /// This many bytes of a partial upload (0: none).
    Partial(u64),
}

/// The filesystem a directory is on (or will be, for the nearest existing parent) and the
/// space it has for files that are not root's (what `df` calls available).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Room {
    pub device: u64,
    pub free: u64,
}

/// A release already unpacked and checked against the manifest needs no package at all; an
/// upload only counts when its sha256 is right.
pub fn survey(layout: &Layout) -> Step<'static> {
    Step::reads(
        "looking at the host's releases, uploads and free space",
        assemble(layout, &[], &[scripts::LIB, scripts::SURVEY]),
    )
}

pub fn parse_survey(out: &str) -> Result<Survey> {
    let value = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
    };
    let numbers = |key: &str| -> Vec<u64> {
        out.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .filter_map(|n| n.trim().parse().ok())
            .collect()
    };
    let (devices, free) = (numbers("device"), numbers("free"));
    let room = |i: usize| {
        let found = || {
            Some(Room {
                device: *devices.get(i)?,
                free: free.get(i)? * 1024,
            })
        };
        found().context("the host's `df` said nothing readable about where the package goes")
    };
    Ok(Survey {
        earlier_upload: match value("upload").unwrap_or("0") {
            "present" => EarlierUpload::Present,
            size => EarlierUpload::Partial(size.parse().unwrap_or(0)),
        },
        unpacked: value("unpacked") == Some("yes"),
        uploads_room: room(0)?,
        releases_room: room(1)?,
        releases: parse_releases(out),
        now: parse_now(out)?,
    })
}

/// Refuses a package that will not fit, before a byte of it is sent: the upload and the
/// unpacked release (beside each other while it unpacks) with 5% and 1 MB to spare.
pub fn check_room(survey: &Survey, package: &Package, layout: &Layout, host: &str) -> Result<()> {
    let upload = match survey.earlier_upload {
        EarlierUpload::Present => 0,
        EarlierUpload::Partial(have) => package.size.saturating_sub(have),
    };
    let release = if survey.unpacked {
        0
    } else {
        // manifest.json is not listed in itself; a few KB covers it.
        package.manifest.files.iter().map(|f| f.size).sum::<u64>() + 16 * 1024
    };
    let with_margin = |bytes: u64| {
        if bytes == 0 {
            0
        } else {
            bytes + bytes / 20 + 1_000_000
        }
    };
    let (uploads, releases) = (survey.uploads_room, survey.releases_room);
    let needs = if uploads.device == releases.device {
        vec![(uploads, with_margin(upload + release))]
    } else {
        vec![
            (uploads, with_margin(upload)),
            (releases, with_margin(release)),
        ]
    };
    for (room, need) in needs {
        if room.free < need {
            return Err(tagged(
                Category::Remote,
                anyhow::anyhow!(
                    "{host}: {} has {} MB free, this release needs {} MB; nothing was sent\n  \
                     help: free space for {} on {host} (`shipit releases {host}` lists the \
                     releases kept there; [deploy] keep_releases keeps fewer)",
                    layout.base(),
                    room.free / 1_000_000,
                    need.div_ceil(1_000_000),
                    layout.base()
                ),
            ));
        }
    }
    Ok(())
}

/// Reads `list_releases` (lib.sh): newest first; a release is named `<version>-<sha12>`.
pub fn parse_releases(out: &str) -> Vec<Release> {
    let mut current = "";
    let mut history: Vec<&str> = Vec::new();
    let mut failed: Vec<&str> = Vec::new();
    let mut found: Vec<(f64, &str)> = Vec::new();
    for line in out.lines() {
        if let Some(c) = line.strip_prefix("current=") {
            current = c;
        } else if let Some(h) = line.strip_prefix("history=") {
            history = h.split_whitespace().collect();
        } else if let Some(name) = line.strip_prefix("failed=yes ") {
            failed.push(name);
        } else if let Some((mtime, name)) =
            line.strip_prefix("mtime=").and_then(|m| m.split_once(' '))
        {
            found.push((mtime.parse().unwrap_or(0.0), name));
        }
    }
    found.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut list: Vec<Release> = found
        .into_iter()
        .map(|(mtime, name)| Release {
            name: name.to_string(),
            version: name.rsplit_once('-').map_or(name, |(v, _)| v).to_string(),
            deployed: humantime::format_rfc3339_seconds(
                SystemTime::UNIX_EPOCH + Duration::from_secs(mtime as u64),
            )
            .to_string(),
            current: name == current,
            previous: false,
            failed: failed.contains(&name),
            deployed_by: None,
        })
        .collect();
    let previous = history
        .iter()
        .rev()
        .find(|h| **h != current && list.iter().any(|r| r.name == **h && !r.failed));
    for release in &mut list {
        release.previous = previous.is_some_and(|p| *p == release.name);
    }
    list
}

/// How the switch step waits for the service to listen before answering (see `started.sh`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Listen {
    /// The health URL's port, when its host is this host.
    pub port: Option<u16>,
    /// At most this long.
    pub wait: Duration,
}

/// Switches to `release` and restarts (see `switch.sh`), then answers with the unit's state
/// once the service listens (see `started.sh`), so the health gate starts a round trip ahead.
pub fn switch_to(layout: &Layout, release: &str, listen: Listen) -> Step<'static> {
    let values = [
        ("target", release.to_string()),
        (
            "listen_port",
            listen.port.map_or_else(String::new, |p| format!("{p:04X}")),
        ),
        (
            "listen_wait",
            (listen.wait.as_millis() / 10).max(1).to_string(),
        ),
    ];
    Step::changes(
        "switching and restarting the service",
        assemble(layout, &values, &[scripts::SWITCH, scripts::STARTED]),
    )
}

/// The unit's state as the health gate reads it (see `started.sh`).
pub fn unit_state(layout: &Layout) -> Step<'static> {
    let values = [("listen_port", String::new()), ("listen_wait", "1".into())];
    Step::reads(
        "reading the unit state",
        assemble(layout, &values, &[scripts::STARTED]),
    )
}

/// Records a release as good (it passed its gate) or failed (it never counts as previous).
pub fn mark(layout: &Layout, release: &str, healthy: bool) -> Step<'static> {
    let values = [
        ("target", release.to_string()),
        ("healthy", if healthy { "yes" } else { "no" }.to_string()),
    ];
    Step::changes(
        "recording the release outcome",
        assemble(layout, &values, &[scripts::MARK]),
    )
}

/// With no earlier release to return to, a failed first release is stopped, not left flapping.
pub fn stop(layout: &Layout) -> Step<'static> {
    Step::changes(
        "stopping the failed release",
        assemble(layout, &[], &[scripts::LIB, scripts::STOP]),
    )
}

pub fn journal_since(layout: &Layout, since: u64) -> Step<'static> {
    Step::reads(
        "reading the journal",
        assemble(layout, &[("since", since.to_string())], &[scripts::JOURNAL]),
    )
}

/// Records the new current release as good, then keeps `keep` releases (see `finish.sh`).
/// Returns what was deleted, through [`pruned`].
pub fn mark_good_and_prune(layout: &Layout, release: &str, keep: usize) -> Step<'static> {
    let values = [("target", release.to_string()), ("keep", keep.to_string())];
    Step::changes(
        "recording the release as good and pruning old releases",
        assemble(layout, &values, &[scripts::FINISH]),
    )
}

pub fn pruned(out: &str) -> Vec<String> {
    out.lines().map(str::to_string).collect()
}

/// The socket unit's state and its listening sockets' queues, for `status` (see `socket.sh`).
pub fn socket_state(layout: &Layout) -> Step<'static> {
    Step::reads(
        "reading the socket unit",
        assemble(layout, &[], &[scripts::SOCKET]),
    )
}

/// What [`socket_state`] found: None without a socket unit; else its state, and per address
/// it listens on the connections waiting now and the queue's limit (when `ss` could tell).
pub fn parse_socket_state(out: &str) -> Option<SocketState> {
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
pub struct SocketState {
    pub active_state: String,
    pub sub_state: String,
    pub listen: Vec<SocketQueue>,
}

/// One listening address: connections waiting to be accepted now, and how many may wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketQueue {
    pub address: String,
    pub waiting: Option<u64>,
    pub limit: Option<u64>,
}

/// What is installed now, for a dry run's diff: the unit file and the running binary's sha256.
pub fn installed(layout: &Layout) -> Step<'static> {
    Step::reads(
        "reading the installed unit and binary",
        assemble(layout, &[], &[scripts::INSTALLED]),
    )
}

/// What [`installed`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Installed {
    pub unit: String,
    /// Empty when no socket unit is installed.
    pub socket: String,
    pub binary_sha256: Option<String>,
}

pub fn parse_installed(out: &str) -> Installed {
    let (sha, rest) = out.split_once('\n').unwrap_or((out, ""));
    let (size, rest) = rest.split_once('\n').unwrap_or((rest, ""));
    let size = size.trim().parse::<usize>().unwrap_or(0).min(rest.len());
    let (unit, socket) = match rest.is_char_boundary(size) {
        true => rest.split_at(size),
        false => (rest, ""),
    };
    let sha = sha.trim();
    Installed {
        unit: unit.to_string(),
        socket: socket.to_string(),
        binary_sha256: (!sha.is_empty()).then(|| sha.to_string()),
    }
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

    #[test]
    fn installed_units_are_told_apart_by_the_service_units_size() {
        let out = "abc\n10\n[Service]\n[Socket]\n";
        assert_eq!(
            parse_installed(out),
            Installed {
                unit: "[Service]\n".into(),
                socket: "[Socket]\n".into(),
                binary_sha256: Some("abc".into()),
            }
        );
        assert_eq!(parse_installed("\n0\n"), Installed::default());
    }

    #[test]
    fn previous_is_the_last_good_release_before_the_current_one() {
        let out = "current=c-3\nhistory=a-1 b-2 a-1 c-3 \n\
                   failed=yes x-4\nfailed=no c-3\nfailed=no b-2\nfailed=no a-1\n\
                   mtime=1767484800.5 x-4\nmtime=1767225600.0 a-1\n\
                   mtime=1767398400.0 c-3\nmtime=1767312000.0 b-2\n";
        let list = parse_releases(out);
        let marks: Vec<(&str, bool, bool, bool)> = list
            .iter()
            .map(|r| (r.name.as_str(), r.current, r.previous, r.failed))
            .collect();
        assert_eq!(
            marks,
            [
                ("x-4", false, false, true),
                ("c-3", true, false, false),
                ("b-2", false, false, false),
                ("a-1", false, true, false)
            ]
        );
        assert_eq!(list[1].version, "c");
        assert_eq!(list[0].deployed, "2026-01-04T00:00:00Z");
    }

    fn package(size: u64, unpacked: u64) -> Package {
        Package {
            path: "p.tar.gz".into(),
            sha256: "0".repeat(64),
            size,
            manifest: crate::package::Manifest {
                app: "app".into(),
                version: "1".into(),
                commit: None,
                build_time: String::new(),
                target: "linux-amd64".into(),
                builder: "go".into(),
                files: vec![crate::package::FileEntry {
                    path: "app".into(),
                    mode: "0755".into(),
                    size: unpacked,
                    sha256: "0".repeat(64),
                }],
            },
            unit: String::new(),
            socket: None,
        }
    }

    fn survey(upload: EarlierUpload, unpacked: bool, free: u64, devices: (u64, u64)) -> Survey {
        Survey {
            earlier_upload: upload,
            unpacked,
            uploads_room: Room {
                device: devices.0,
                free,
            },
            releases_room: Room {
                device: devices.1,
                free,
            },
            releases: Vec::new(),
            now: 0,
        }
    }

    #[test]
    fn the_upload_and_its_unpacked_release_must_fit_with_a_margin() {
        let layout = Layout {
            app: "app".into(),
            user: "app".into(),
            release: "1-000000000000".into(),
            sha256: "0".repeat(64),
        };
        let (mb, package) = (1_000_000, package(23_000_000, 22_000_000));
        let check = |survey: &Survey| check_room(survey, &package, &layout, "web1");
        let err = check(&survey(EarlierUpload::Partial(0), false, 18 * mb, (1, 1))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("web1: /opt/app has 18 MB free, this release needs 49 MB"),
            "{err}"
        );
        assert!(check(&survey(EarlierUpload::Partial(0), false, 49 * mb, (1, 1))).is_ok());
        // Uploaded already: only the release is still to come; unpacked: nothing is.
        assert!(check(&survey(EarlierUpload::Present, false, 25 * mb, (1, 1))).is_ok());
        assert!(check(&survey(EarlierUpload::Present, true, 0, (1, 1))).is_ok());
        // Half of it is on the host from an interrupted upload.
        assert!(
            check(&survey(
                EarlierUpload::Partial(12 * mb),
                false,
                37 * mb,
                (1, 1)
            ))
            .is_ok()
        );
        // On two filesystems each needs only its own part.
        assert!(check(&survey(EarlierUpload::Partial(0), false, 26 * mb, (1, 2))).is_ok());
    }
}
