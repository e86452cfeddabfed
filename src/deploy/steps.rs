//! The deploy steps, each one named function running one shell script on the host as root.
//! Scripts start from [`Layout::shell_vars`], so every path is quoted exactly once.

use std::io::{Read, Seek, SeekFrom};

use anyhow::{Context, Result};
use serde::Serialize;

use super::layout::Layout;
use super::runner::Runner;
use crate::build::Target;
use crate::error::{Category, tagged};
use crate::interrupt::Interruptible;
use crate::package::Package;
use crate::remote::quote;
use crate::ui::Ui;

/// The exit status of a step that ran out of disk space and removed what it had written
/// (EX_IOERR).
const NO_SPACE: i32 = 74;
/// The exit status of a step whose `systemd-analyze verify` refused the unit (EX_CONFIG).
const UNIT_REJECTED: i32 = 78;
/// Shell: whether the filesystem holding $1 (or its nearest existing parent) is full, with
/// under 1 MB or no inodes left. Asked after a write failed, to tell ENOSPC from other errors.
const FULL: &str = concat!(
    "full() {\n",
    "  d=$1; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done\n",
    "  df -Pk \"$d\" | awk 'NR == 2 { exit !($4 < 1024) }' && return 0\n",
    "  df -Pi \"$d\" | awk 'NR == 2 { exit !($2 > 0 && $4 == 0) }'\n",
    "}\n",
);

pub fn script(layout: &Layout, body: &str) -> String {
    format!("set -eu\n{}{body}", layout.shell_vars())
}

/// What the first look at a host finds, before anything is written there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFacts {
    /// The systemd release: which directives its units may use and which verify flags exist.
    pub systemd: u32,
}

/// The host must run systemd (239 or later) and match the package's architecture. One round
/// trip that only reads: a host that fails it is left exactly as it was.
pub fn preflight(runner: &mut Runner, layout: &Layout, target: Target) -> Result<HostFacts> {
    let body = "if [ -d /run/systemd/system ]; then echo booted=yes; else echo booted=no; fi\n\
                echo \"pid1=$(cat /proc/1/comm 2>/dev/null || echo unknown)\"\n\
                echo \"systemd=$(systemctl --version 2>/dev/null | head -n 1)\"\n\
                echo \"machine=$(uname -m)\"\n\
                [ -d /run/systemd/system ] || exit 0\n\
                for tool in tar sha256sum cmp systemctl journalctl; do command -v \"$tool\" >/dev/null || { echo \"$tool is missing\" >&2; exit 1; }; done\n";
    let out = runner.query("checking the host", &script(layout, body))?;
    let fact = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let host = runner.label();
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
    let machine = fact("machine");
    let expected = match target {
        Target::LinuxAmd64 => "x86_64",
        Target::LinuxArm64 => "aarch64",
    };
    if machine != expected {
        return Err(tagged(
            Category::Usage,
            anyhow::anyhow!(
                "{host} is {machine} but the package is for {target}\n  help: build with --target {}",
                if machine == "aarch64" {
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

/// Uploads the package into the content-addressed upload dir unless it is there already (as
/// [`survey`] found). A
/// partial upload left by a cut connection is continued from its size and the whole file
/// verified; a partial that turns out corrupt is discarded and the upload starts over once.
pub fn upload(
    runner: &mut Runner,
    layout: &Layout,
    package: &Package,
    earlier: EarlierUpload,
    ui: &Ui,
) -> Result<Upload> {
    let partial = match earlier {
        EarlierUpload::Present => return Ok(Upload::Skipped),
        EarlierUpload::Partial(size) => size,
    };
    let resume_from = if partial < package.size { partial } else { 0 };
    match send(runner, layout, package, resume_from, ui) {
        Err(e) if resume_from > 0 && format!("{e:#}").contains("sha256 differs") => {
            ui.status(
                "Restarting",
                "the upload: the partial upload on the host was corrupt",
            );
            send(runner, layout, package, 0, ui)
        }
        other => other,
    }
}

fn send(
    runner: &mut Runner,
    layout: &Layout,
    package: &Package,
    offset: u64,
    ui: &Ui,
) -> Result<Upload> {
    // A fresh upload is not hashed on the host: sha256sum there costs more than the transfer
    // itself (about 0.3 s of a core per 100 MB), while SSH's MAC already guarantees the bytes
    // arrive as they were sent and `prepare_release` checks every file against the manifest's
    // sha256 before the release can be used. A resumed upload joins bytes from an earlier
    // connection, so the whole file is hashed before it may take the package's name.
    let receive = if offset == 0 {
        "(umask 077; cat > \"$partial\") || no_room\ngot=$sha\n"
    } else {
        "cat >> \"$partial\" || no_room\ngot=$(sha256sum < \"$partial\")\n"
    };
    // A connection that dies looks like the end of the data to the receiving shell, so a short
    // file is kept for the next deploy to continue; only a full-size file with the wrong sum is
    // damaged and discarded. A full disk removes the partial: it could not be continued, and it
    // takes the space the running service needs. Whatever fails, the rest of the data is read
    // and dropped, so shipit's writes finish and it hears the exit status instead of waiting.
    let body = format!(
        "{FULL}\
         partial=\"$upload.partial\"\n\
         size={size}\n\
         trap 'status=$?; if [ \"$status\" -ne 0 ]; then cat > /dev/null 2>&1; fi; exit \"$status\"' EXIT\n\
         no_room() {{\n\
           full \"$uploads\" || exit 1\n\
           rm -f \"$partial\"\n\
           echo \"no space left in $base while uploading: the partial upload was removed, the host is as it was\" >&2; exit {NO_SPACE}\n\
         }}\n\
         mkdir -p \"$uploads\" || no_room\n\
         {receive}\
         have=$(stat -c %s \"$partial\")\n\
         if [ \"$have\" -lt \"$size\" ]; then\n\
           echo \"the upload stopped after $have of $size bytes; deploy again to continue it\" >&2; exit 1\n\
         fi\n\
         if [ \"$have\" -ne \"$size\" ] || [ \"${{got%% *}}\" != \"$sha\" ]; then\n\
           rm -f \"$partial\"; echo \"the uploaded package's sha256 differs from $sha: the partial upload was discarded\" >&2; exit 1\n\
         fi\n\
         mv -f \"$partial\" \"$upload\"\n",
        size = package.size
    );
    let mut file = std::fs::File::open(&package.path)
        .with_context(|| format!("cannot read {}", package.path.display()))?;
    file.seek(SeekFrom::Start(offset))?;
    let remaining = package.size - offset;
    let bar = ui.bytes(remaining, format!("uploading to {}", runner.label()));
    let what = format!(
        "{} ({remaining} bytes from offset {offset})",
        package.path.display()
    );
    let result = runner.change_with_input(
        "uploading the package",
        &script(layout, &body),
        &what,
        &mut Interruptible(file) as &mut dyn Read,
        &|sent| bar.set_position(sent),
    );
    bar.finish_and_clear();
    result?;
    Ok(Upload::Sent {
        sent: remaining,
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
}

/// Everything between the upload and the switch, in one script (one round trip): unpack the
/// release, create the service user, keep the env file with the release, verify the unit.
/// Returns whether the release was already unpacked.
///
/// - The upload is unpacked into its release directory, root-owned, checked file by file
///   against the manifest (the end-to-end check of a fresh upload), and only then given its
///   final name. An upload that fails that check is deleted, so the next deploy sends it again.
///   A disk that fills up while unpacking loses the half-unpacked release and the upload.
/// - The service user and its state directory are created if missing. The release keeps its
///   copy of the env file: the new secrets when shipit.toml has an env_file (sent on stdin,
///   never on a command line, never printed), else whatever the host has now. Switching to a
///   release installs its copy, so a rollback restores the env file the old release ran with.
/// - Likewise the unit for this host's systemd, when it differs from the package's: the release
///   keeps it as `.unit`, and switching to the release installs that (see [`SWITCH`]).
/// - `systemd-analyze verify` (with the flags this systemd has) checks the unit the host will
///   install before anything switches. The unit names /opt/<app>/current, which may not exist
///   yet, so a copy pointing into the release is checked. A unit byte for byte the same as the
///   installed one was checked when it was installed and still names the same binary, which
///   the manifest check has just seen: verifying it again would only cost the host about 50 ms
///   of CPU per deploy.
pub fn prepare_release(
    runner: &mut Runner,
    layout: &Layout,
    package: &Package,
    env_file: Option<&[u8]>,
    host_unit: &HostUnit,
) -> Result<bool> {
    let sums: String = package
        .manifest
        .files
        .iter()
        .map(|f| format!("{}  ./{}\n", f.sha256, f.path))
        .collect();
    let unpack = format!(
        "part='unpacking the release'\n\
         if [ -f \"$rel/.shipit-complete\" ]; then\n\
           touch \"$rel\"; echo reused\n\
         else\n\
           tmp=\"$releases/.$release.tmp\"\n\
           unpacked=yes\n\
           {{ mkdir -p \"$releases\" && rm -rf \"$tmp\" && mkdir \"$tmp\" && tar -xzf \"$upload\" -C \"$tmp\" --no-same-owner; }} || unpacked=no\n\
           if [ \"$unpacked\" = no ] && full \"$releases\"; then\n\
             rm -rf \"$tmp\" \"$upload\"\n\
             echo \"no space left in $base while unpacking: the half-unpacked release and its upload were removed, the host is as it was\" >&2; exit {NO_SPACE}\n\
           fi\n\
           if [ \"$unpacked\" = no ] || ! (cd \"$tmp\" && printf '%s' {sums} | sha256sum -c --quiet --strict); then\n\
             rm -rf \"$tmp\" \"$upload\"\n\
             echo \"the uploaded package did not unpack, or its files differ from manifest.json: it was deleted, so the next deploy sends it again\" >&2; exit 1\n\
           fi\n\
           chown -R root:root \"$tmp\"; chmod 0755 \"$tmp\"\n\
           touch \"$tmp/.shipit-complete\"\n\
           rm -rf \"$rel\"; mv -T \"$tmp\" \"$rel\"\n\
         fi\n",
        sums = quote(&sums)
    );
    let user = "part='creating the service user'\n\
                if ! id -u \"$user\" >/dev/null 2>&1; then\n\
                  useradd --system --user-group --home-dir \"$state_dir\" --no-create-home --shell /usr/sbin/nologin \"$user\"\n\
                fi\n\
                install -d -m 0750 -o \"$user\" -g \"$(id -gn \"$user\")\" \"$state_dir\"\n\
                install -d -m 0755 \"$(dirname \"$env_file\")\"\n\
                part='keeping the env file with the release'\n";
    let env = if env_file.is_some() {
        "(umask 077; cat > \"$rel/.env.tmp\")\nmv -f \"$rel/.env.tmp\" \"$rel/.env\"\n"
    } else {
        "if [ -f \"$env_file\" ]; then (umask 077; cp \"$env_file\" \"$rel/.env\"); else rm -f \"$rel/.env\"; fi\n"
    };
    let unit = match &host_unit.adapted {
        Some(unit) => format!(
            "part='keeping the unit for this host with the release'\n\
             printf '%s' {} > \"$rel/.unit.tmp\"\nmv -f \"$rel/.unit.tmp\" \"$rel/.unit\"\n",
            quote(unit)
        ),
        None => "rm -f \"$rel/.unit\"\n".to_string(),
    };
    let verify = format!(
        "part='verifying the unit'\n\
         new=\"$rel/$unit\"; [ ! -f \"$rel/.unit\" ] || new=\"$rel/.unit\"\n\
         if ! cmp -s \"$new\" \"$unit_path\" && command -v systemd-analyze >/dev/null; then\n\
           dir=$(mktemp -d)\n\
           sed -e \"s#$current/#$rel/#g\" -e \"s#$current\\$#$rel#\" \"$new\" > \"$dir/$unit\"\n\
           status=0; out=$(systemd-analyze verify {flags} \"$dir/$unit\" 2>&1) || status=$?\n\
           rm -rf \"$dir\"\n\
           if [ \"$status\" -ne 0 ] || [ -n \"$out\" ]; then printf '%s\\n' \"$out\" | sed \"s#$dir/##g\" >&2; exit {UNIT_REJECTED}; fi\n\
         fi\n",
        flags = crate::systemd::verify_flags(host_unit.systemd).join(" ")
    );
    // Says which part failed; the parts' own messages come before it on stderr.
    let body = format!(
        "{FULL}trap 'status=$?; [ \"$status\" -eq 0 ] || echo \"(failed while $part)\" >&2' EXIT\n\
         {unpack}{user}{env}{unit}{verify}"
    );
    let step = "unpacking the release, creating the service user and verifying the unit";
    let script = script(layout, &body);
    let out = match env_file {
        Some(mut secrets) => {
            let lines = String::from_utf8_lossy(secrets).lines().count();
            runner.change_with_input(
                step,
                &script,
                &format!("env file, {lines} lines, values hidden"),
                &mut secrets,
                &|_| {},
            )
        }
        None => runner.change(step, &script),
    }
    .map_err(|e| match crate::remote::exit_status(&e) {
        Some(UNIT_REJECTED) => crate::remote::with_help(
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
    if crate::remote::exit_status(&error) != Some(NO_SPACE) {
        return error;
    }
    let said = crate::error::find::<crate::remote::StepFailure>(&error)
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
}

/// Releases newest first, with the current one, the previous one (the last release that passed
/// its health gate before the current one) and failed ones marked.
pub fn releases(runner: &mut Runner, layout: &Layout) -> Result<Vec<Release>> {
    Ok(releases_and_clock(runner, layout)?.0)
}

/// [`releases`] and the host's clock (to read the journal from the restart on), in one round
/// trip.
pub fn releases_and_clock(runner: &mut Runner, layout: &Layout) -> Result<(Vec<Release>, u64)> {
    let body = format!("echo \"now=$(date +%s)\"\n{LIST_RELEASES}");
    let out = runner.query("listing releases", &script(layout, &body))?;
    Ok((parse_releases(&out), parse_now(&out)?))
}

/// Prints `current=`, `history=` and one `release=` line per release; ends the script when
/// there are no releases yet.
const LIST_RELEASES: &str = "cd \"$releases\" 2>/dev/null || exit 0\n\
    echo \"current=$(basename \"$(readlink \"$current\" 2>/dev/null)\")\"\n\
    echo \"history=$(tail -n 20 \"$history\" 2>/dev/null | tr '\\n' ' ')\"\n\
    ls -1t | while read -r r; do\n\
      v=$(sed -n 's/^  \"version\": \"\\(.*\\)\",$/\\1/p' \"$r/manifest.json\" 2>/dev/null)\n\
      f=no; [ -f \"$r/.shipit-failed\" ] && f=yes\n\
      printf 'release=%s %s %s %s\\n' \"$r\" \"$f\" \"$(date -u -r \"$r\" +%FT%TZ)\" \"$v\"\n\
    done\n";

fn parse_now(out: &str) -> Result<u64> {
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

/// One round trip for [`Survey`]. A release already unpacked and checked against the manifest
/// needs no package at all; an upload only counts when its sha256 is right.
pub fn survey(runner: &mut Runner, layout: &Layout) -> Result<Survey> {
    let body = format!(
        "if [ -f \"$rel/.shipit-complete\" ]; then echo upload=present; echo unpacked=yes\n\
         elif [ -f \"$upload\" ] && printf '%s  %s\\n' \"$sha\" \"$upload\" | sha256sum -c --status; then echo upload=present\n\
         else echo \"upload=$(stat -c %s \"$upload.partial\" 2>/dev/null || echo 0)\"; fi\n\
         echo \"now=$(date +%s)\"\n\
         room() {{\n\
           d=$2; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done\n\
           echo \"room=$1 $(stat -c %d \"$d\") $(df -Pk \"$d\" | awk 'NR == 2 {{ print $4 }}')\"\n\
         }}\n\
         room uploads \"$uploads\"; room releases \"$releases\"\n\
         {LIST_RELEASES}"
    );
    let out = runner.query(
        "looking at the host's releases, uploads and free space",
        &script(layout, &body),
    )?;
    let value = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
    };
    let room = |name: &str| {
        out.lines()
            .filter_map(|l| l.strip_prefix("room="))
            .find_map(|r| {
                let mut words = r.split_whitespace();
                (words.next()? == name).then_some(())?;
                Some(Room {
                    device: words.next()?.parse().ok()?,
                    free: words.next()?.parse::<u64>().ok()? * 1024,
                })
            })
            .with_context(|| format!("the host's `df` said nothing readable about {name}"))
    };
    Ok(Survey {
        earlier_upload: match value("upload").unwrap_or("0") {
            "present" => EarlierUpload::Present,
            size => EarlierUpload::Partial(size.parse().unwrap_or(0)),
        },
        unpacked: value("unpacked") == Some("yes"),
        uploads_room: room("uploads")?,
        releases_room: room("releases")?,
        releases: parse_releases(&out),
        now: parse_now(&out)?,
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

fn parse_releases(out: &str) -> Vec<Release> {
    let mut current = "";
    let mut history: Vec<&str> = Vec::new();
    let mut list = Vec::new();
    for line in out.lines() {
        if let Some(c) = line.strip_prefix("current=") {
            current = c;
        } else if let Some(h) = line.strip_prefix("history=") {
            history = h.split_whitespace().collect();
        } else if let Some(r) = line.strip_prefix("release=") {
            let mut words = r.splitn(4, ' ');
            let (name, failed, deployed, version) = (
                words.next().unwrap_or_default(),
                words.next() == Some("yes"),
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
            );
            list.push(Release {
                name: name.to_string(),
                version: version.to_string(),
                deployed: deployed.to_string(),
                current: name == current,
                previous: false,
                failed,
            });
        }
    }
    let previous = history
        .iter()
        .rev()
        .find(|h| **h != current && list.iter().any(|r| r.name == **h && !r.failed));
    for release in &mut list {
        release.previous = previous.is_some_and(|p| *p == release.name);
    }
    list
}

/// Installs the release's unit and env file, moves `current` atomically, and restarts. The unit
/// file is replaced, systemd reloaded and the unit enabled only when the release's unit differs
/// from the installed one, systemd asks for a reload or the unit is not enabled: `daemon-reload`
/// and `enable` cost about 0.1 s each, more than restarting a small service. `reset-failed`
/// clears the start rate limit a crash-looping release may have used up, so neither the next
/// deploy nor a rollback is refused by it.
pub fn switch_to(runner: &mut Runner, layout: &Layout, release: &str) -> Result<()> {
    let body = format!("target={}\n{SWITCH}", quote(release));
    runner.change(
        "switching and restarting the service",
        &script(layout, &body),
    )?;
    Ok(())
}

/// The switch to the release in `$target` (the dead-man timer runs it on the host by itself).
/// Once started, it finishes even if the connection drops (sshd hangs up the session): a
/// half-done switch would leave the unit and `current` disagreeing.
pub const SWITCH: &str = "trap '' HUP PIPE\n\
    reload=no\n\
    new=\"$releases/$target/$unit\"; [ ! -f \"$releases/$target/.unit\" ] || new=\"$releases/$target/.unit\"\n\
    if ! cmp -s \"$new\" \"$unit_path\"; then\n\
      install -m 0644 \"$new\" \"$unit_path.shipit-new\"\n\
      mv -f \"$unit_path.shipit-new\" \"$unit_path\"\n\
      reload=yes\n\
    fi\n\
    if [ -f \"$releases/$target/.env\" ]; then\n\
      (umask 077; cp \"$releases/$target/.env\" \"$env_file.shipit-new\"); mv -f \"$env_file.shipit-new\" \"$env_file\"\n\
    else rm -f \"$env_file\"; fi\n\
    ln -sfn \"releases/$target\" \"$base/.current.shipit-new\"\n\
    mv -T \"$base/.current.shipit-new\" \"$current\"\n\
    if [ \"$reload\" = yes ] || [ \"$(systemctl show -p NeedDaemonReload --value \"$unit\")\" != no ]; then\n\
      systemctl daemon-reload\n\
    fi\n\
    if [ \"$reload\" = yes ] || ! systemctl is-enabled --quiet \"$unit\"; then\n\
      systemctl enable --quiet \"$unit\"\n\
    fi\n\
    systemctl reset-failed \"$unit\" 2>/dev/null || true\n\
    systemctl restart \"$unit\"\n";

/// Records a release as good (it passed its gate) or failed (it never counts as previous).
pub fn mark(runner: &mut Runner, layout: &Layout, release: &str, healthy: bool) -> Result<()> {
    let body = if healthy {
        "rm -f \"$releases/$target/.shipit-failed\"\necho \"$target\" >> \"$history\"\n"
    } else {
        "touch \"$releases/$target/.shipit-failed\"\n"
    };
    let body = format!("target={}\n{body}", quote(release));
    runner.change("recording the release outcome", &script(layout, &body))?;
    Ok(())
}

/// With no earlier release to return to, a failed first release is stopped, not left flapping.
pub fn stop(runner: &mut Runner, layout: &Layout) -> Result<()> {
    runner.change(
        "stopping the failed release",
        &script(layout, "systemctl disable --now --quiet \"$unit\"\n"),
    )?;
    Ok(())
}

pub fn journal_since(runner: &mut Runner, layout: &Layout, since: u64) -> Result<String> {
    runner.query(
        "reading the journal",
        &script(
            layout,
            &format!("journalctl -u \"$unit\" --since @{since} --no-pager -n 40 -o short-iso 2>&1 || true\n"),
        ),
    )
}

/// Records the new current release as good, then keeps `keep` releases: the current and previous
/// one whatever their age, then the newest good ones; failed releases never take a place. Old
/// uploads go the same way. One script, so one round trip. Returns what was deleted.
pub fn mark_good_and_prune(
    runner: &mut Runner,
    layout: &Layout,
    release: &str,
    keep: usize,
) -> Result<Vec<String>> {
    // "previous" as `releases` reads it: the last release in the history (of the last 20) that
    // is not the current one, still exists and did not fail.
    let body = format!(
        "target={}\nkeep={keep}\n\
         rm -f \"$releases/$target/.shipit-failed\"\necho \"$target\" >> \"$history\"\n\
         cd \"$releases\"\n\
         cur=$(basename \"$(readlink \"$current\" 2>/dev/null)\")\n\
         prev=\n\
         for r in $(tail -n 20 \"$history\" 2>/dev/null); do\n\
           if [ \"$r\" != \"$cur\" ] && [ -e \"$r\" ] && [ ! -f \"$r/.shipit-failed\" ]; then prev=$r; fi\n\
         done\n\
         protected=\"$cur $prev\"\n\
         n=0\n\
         for old in $(ls -1t); do\n\
           case \" $protected \" in *\" $old \"*) n=$((n + 1)); continue ;; esac\n\
           if [ ! -f \"$old/.shipit-failed\" ]; then n=$((n + 1)); [ \"$n\" -le \"$keep\" ] && continue; fi\n\
           rm -rf -- \"$old\"; echo \"$old\"\n\
         done\n\
         cd \"$uploads\" 2>/dev/null && ls -1t | tail -n +$((keep + 1)) | while read -r old; do\n\
           [ \"$old\" = \"$sha.tar.gz\" ] || rm -f -- \"$old\"\n\
         done\n\
         true\n",
        quote(release)
    );
    let out = runner.change(
        "recording the release as good and pruning old releases",
        &script(layout, &body),
    )?;
    Ok(out.lines().map(str::to_string).collect())
}

/// What is installed now, for a dry run's diff: the unit file and the running binary's sha256.
pub fn installed(runner: &mut Runner, layout: &Layout) -> Result<(String, Option<String>)> {
    let unit = runner.query(
        "reading the installed unit",
        &script(layout, "cat \"$unit_path\" 2>/dev/null || true\n"),
    )?;
    let sha = runner.query(
        "reading the installed binary's checksum",
        &script(
            layout,
            "sha256sum \"$current/$app\" 2>/dev/null | cut -d' ' -f1\n",
        ),
    )?;
    let sha = sha.trim();
    Ok((unit, (!sha.is_empty()).then(|| sha.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_is_the_last_good_release_before_the_current_one() {
        let out = "current=c\nhistory=a b a c \n\
                   release=x yes 2026-01-04T00:00:00Z 4\n\
                   release=c no 2026-01-03T00:00:00Z 3\n\
                   release=b no 2026-01-02T00:00:00Z 2\n\
                   release=a no 2026-01-01T00:00:00Z 1\n";
        let list = parse_releases(out);
        let marks: Vec<(&str, bool, bool, bool)> = list
            .iter()
            .map(|r| (r.name.as_str(), r.current, r.previous, r.failed))
            .collect();
        assert_eq!(
            marks,
            [
                ("x", false, false, true),
                ("c", true, false, false),
                ("b", false, false, false),
                ("a", false, true, false)
            ]
        );
        assert_eq!(list[1].version, "3");
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
