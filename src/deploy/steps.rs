//! The deploy steps, each one named function running one shell script on the host as root.
//! Scripts start from [`Layout::shell_vars`], so every path is quoted exactly once.

use std::io::Read;

use anyhow::{Context, Result};

use super::layout::Layout;
use crate::build::Target;
use crate::error::{Category, tagged};
use crate::package::Package;
use crate::remote::{self, Remote, quote};
use crate::ui::Ui;

fn script(layout: &Layout, body: &str) -> String {
    format!("set -eu\n{}{body}", layout.shell_vars())
}

/// The host must run systemd and match the package's architecture.
pub fn preflight(remote: &mut dyn Remote, layout: &Layout, target: Target) -> Result<()> {
    let body = "test -d /run/systemd/system || { echo 'systemd is not running (PID 1 is not systemd)' >&2; exit 1; }\n\
                for tool in tar sha256sum systemctl journalctl; do command -v \"$tool\" >/dev/null || { echo \"$tool is missing\" >&2; exit 1; }; done\n\
                uname -m\n";
    let machine = remote::run_root(remote, "checking the host", &script(layout, body))?;
    let expected = match target {
        Target::LinuxAmd64 => "x86_64",
        Target::LinuxArm64 => "aarch64",
    };
    if machine.trim() != expected {
        return Err(tagged(
            Category::Usage,
            anyhow::anyhow!(
                "{} is {} but the package is for {target}\n  help: build with --target {}",
                remote.label(),
                machine.trim(),
                if machine.trim() == "aarch64" {
                    "linux-arm64"
                } else {
                    "linux-amd64"
                }
            ),
        ));
    }
    Ok(())
}

/// A mkdir lock: atomic on every filesystem, and it names its owner for whoever finds it.
pub fn lock(remote: &mut dyn Remote, layout: &Layout) -> Result<()> {
    let owner = serde_json::json!({
        "pid": std::process::id(),
        "from": local_host_name(),
        "version": layout.release,
    })
    .to_string();
    let body = format!(
        "mkdir -p \"$base/.shipit\"\n\
         if mkdir \"$lock\" 2>/dev/null; then\n\
           printf '%s\\n' {owner} > \"$lock/owner.json\"; date -u +%FT%TZ > \"$lock/since\"\n\
         else\n\
           echo \"locked since $(cat \"$lock/since\" 2>/dev/null) by $(cat \"$lock/owner.json\" 2>/dev/null)\" >&2; exit 75\n\
         fi\n",
        owner = quote(&owner)
    );
    let command = remote::as_root(remote, &script(layout, &body));
    let output = remote.exec(&command, None, &|_| {})?;
    if output.status == 75 {
        return Err(tagged(
            Category::Locked,
            anyhow::anyhow!(
                "another deploy of {} holds the lock on {}: {}\n  \
                 help: wait for it; if no deploy is running, remove the lock with \
                 `shipit unlock {}`",
                layout.app,
                remote.label(),
                output.stderr.trim(),
                remote.label()
            ),
        ));
    }
    if !output.success() {
        remote::run_root(remote, "taking the deploy lock", &script(layout, &body))?;
    }
    Ok(())
}

pub fn unlock(remote: &mut dyn Remote, layout: &Layout) -> Result<()> {
    remote::run_root(
        remote,
        "releasing the deploy lock",
        &script(layout, "rm -rf \"$lock\"\n"),
    )?;
    Ok(())
}

fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Uploads the package into the content-addressed upload dir unless it is already there.
/// Returns whether bytes were sent.
pub fn upload(
    remote: &mut dyn Remote,
    layout: &Layout,
    package: &Package,
    ui: &Ui,
) -> Result<bool> {
    let present = remote::run_root(
        remote,
        "looking for an earlier upload",
        &script(
            layout,
            "if [ -f \"$upload\" ] && printf '%s  %s\\n' \"$sha\" \"$upload\" | sha256sum -c --status; then echo present; fi\n",
        ),
    )?;
    if present.trim() == "present" {
        return Ok(false);
    }
    let body = "mkdir -p \"$uploads\"\n\
                partial=\"$upload.partial\"\n\
                got=$(umask 077; tee \"$partial\" | sha256sum)\n\
                if [ \"${got%% *}\" != \"$sha\" ]; then\n\
                  rm -f \"$partial\"; echo \"the uploaded package's sha256 differs from $sha: the transfer was damaged\" >&2; exit 1\n\
                fi\n\
                mv -f \"$partial\" \"$upload\"\n";
    let mut file = std::fs::File::open(&package.path)
        .with_context(|| format!("cannot read {}", package.path.display()))?;
    let bar = ui.bytes(package.size, format!("uploading to {}", remote.label()));
    let result = remote::run_root_with_input(
        remote,
        "uploading the package",
        &script(layout, body),
        &mut file as &mut dyn Read,
        &|sent| bar.set_position(sent),
    );
    bar.finish_and_clear();
    result?;
    Ok(true)
}

/// Unpacks the upload into its release directory, root-owned, checked file by file against the
/// manifest, and only then gives it its final name. Returns whether it already existed.
pub fn stage_release(remote: &mut dyn Remote, layout: &Layout, package: &Package) -> Result<bool> {
    let sums: String = package
        .manifest
        .files
        .iter()
        .map(|f| format!("{}  ./{}\n", f.sha256, f.path))
        .collect();
    let body = format!(
        "if [ -f \"$rel/.shipit-complete\" ]; then touch \"$rel\"; echo reused; exit 0; fi\n\
         mkdir -p \"$releases\"\n\
         tmp=\"$releases/.$release.tmp\"\n\
         rm -rf \"$tmp\"; mkdir \"$tmp\"\n\
         tar -xzf \"$upload\" -C \"$tmp\" --no-same-owner\n\
         chown -R root:root \"$tmp\"; chmod 0755 \"$tmp\"\n\
         (cd \"$tmp\" && printf '%s' {sums} | sha256sum -c --quiet --strict)\n\
         touch \"$tmp/.shipit-complete\"\n\
         rm -rf \"$rel\"; mv -T \"$tmp\" \"$rel\"\n",
        sums = quote(&sums)
    );
    let out = remote::run_root(remote, "unpacking the release", &script(layout, &body))?;
    Ok(out.trim() == "reused")
}

/// The service user, its state directory, and the env file with secrets (sent on stdin, never on
/// a command line, never printed).
pub fn prepare_host(
    remote: &mut dyn Remote,
    layout: &Layout,
    env_file: Option<&[u8]>,
) -> Result<()> {
    let body = "if ! id -u \"$user\" >/dev/null 2>&1; then\n\
                  useradd --system --user-group --home-dir \"$state_dir\" --no-create-home --shell /usr/sbin/nologin \"$user\"\n\
                fi\n\
                install -d -m 0750 -o \"$user\" -g \"$(id -gn \"$user\")\" \"$state_dir\"\n\
                install -d -m 0755 \"$(dirname \"$env_file\")\"\n";
    remote::run_root(remote, "creating the service user", &script(layout, body))?;
    if let Some(mut secrets) = env_file {
        let body = "tmp=\"$env_file.shipit-new\"\n\
                    (umask 077; cat > \"$tmp\")\n\
                    chown root:root \"$tmp\"; chmod 0600 \"$tmp\"\n\
                    mv -f \"$tmp\" \"$env_file\"\n";
        remote::run_root_with_input(
            remote,
            "writing the env file",
            &script(layout, body),
            &mut secrets,
            &|_| {},
        )?;
    }
    Ok(())
}

/// `systemd-analyze verify` on the host, before anything switches. The unit still names
/// /opt/<app>/current, which may not exist yet, so a copy pointing into the release is checked.
pub fn verify_unit(remote: &mut dyn Remote, layout: &Layout) -> Result<()> {
    let body = "command -v systemd-analyze >/dev/null || exit 0\n\
                dir=$(mktemp -d)\n\
                trap 'rm -rf \"$dir\"' EXIT\n\
                sed -e \"s#$current/#$rel/#g\" -e \"s#$current\\$#$rel#\" \"$rel/$unit\" > \"$dir/$unit\"\n\
                out=$(systemd-analyze verify --man=no --recursive-errors=no --generators=no \"$dir/$unit\" 2>&1) || { echo \"$out\" >&2; exit 1; }\n\
                if [ -n \"$out\" ]; then echo \"$out\" >&2; exit 1; fi\n";
    remote::run_root(
        remote,
        "verifying the unit on the host",
        &script(layout, body),
    )?;
    Ok(())
}

/// The release `current` points at now, relative to the app dir (e.g. `releases/1.0-abc`).
pub fn current_release(remote: &mut dyn Remote, layout: &Layout) -> Result<Option<String>> {
    let out = remote::run_root(
        remote,
        "reading the current release",
        &script(layout, "readlink \"$current\" || true\n"),
    )?;
    let target = out.trim();
    Ok(target
        .strip_prefix("releases/")
        .filter(|r| !r.is_empty() && !r.contains('/'))
        .map(str::to_string))
}

/// The host's clock, so the journal can be read from the moment of the restart.
pub fn remote_now(remote: &mut dyn Remote, layout: &Layout) -> Result<u64> {
    let out = remote::run_root(
        remote,
        "reading the host clock",
        &script(layout, "date +%s\n"),
    )?;
    out.trim()
        .parse()
        .context("the host's `date +%s` is not a number")
}

/// Installs the release's unit, moves `current` atomically, and restarts the service.
pub fn switch_to(remote: &mut dyn Remote, layout: &Layout, release: &str) -> Result<()> {
    let body = format!(
        "target={}\n\
         install -m 0644 \"$releases/$target/$unit\" \"$unit_path.shipit-new\"\n\
         mv -f \"$unit_path.shipit-new\" \"$unit_path\"\n\
         ln -sfn \"releases/$target\" \"$base/.current.shipit-new\"\n\
         mv -T \"$base/.current.shipit-new\" \"$current\"\n\
         systemctl daemon-reload\n\
         systemctl enable --quiet \"$unit\"\n\
         systemctl restart \"$unit\"\n",
        quote(release)
    );
    remote::run_root(
        remote,
        "switching and restarting the service",
        &script(layout, &body),
    )?;
    Ok(())
}

/// With no earlier release to return to, a failed first release is stopped, not left flapping.
pub fn stop(remote: &mut dyn Remote, layout: &Layout) -> Result<()> {
    remote::run_root(
        remote,
        "stopping the failed release",
        &script(layout, "systemctl disable --now --quiet \"$unit\"\n"),
    )?;
    Ok(())
}

pub fn journal_since(remote: &mut dyn Remote, layout: &Layout, since: u64) -> Result<String> {
    remote::run_root(
        remote,
        "reading the journal",
        &script(
            layout,
            &format!(
                "journalctl -u \"$unit\" --since @{since} --no-pager -n 40 -o short-iso 2>&1 || true\n"
            ),
        ),
    )
}

/// Deletes releases beyond `keep`, newest first, never the current or previous one; old uploads
/// go the same way. Returns the deleted release names.
pub fn prune(
    remote: &mut dyn Remote,
    layout: &Layout,
    keep: usize,
    previous: Option<&str>,
) -> Result<Vec<String>> {
    let body = format!(
        "keep={keep}\nprevious={}\n\
         cd \"$releases\"\n\
         ls -1t | tail -n +$((keep + 1)) | while read -r old; do\n\
           [ \"$old\" = \"$release\" ] || [ \"$old\" = \"$previous\" ] || {{ rm -rf -- \"$old\"; echo \"$old\"; }}\n\
         done\n\
         cd \"$uploads\" 2>/dev/null && ls -1t | tail -n +$((keep + 1)) | while read -r old; do\n\
           [ \"$old\" = \"$sha.tar.gz\" ] || rm -f -- \"$old\"\n\
         done\n\
         true\n",
        quote(previous.unwrap_or(""))
    );
    let out = remote::run_root(remote, "pruning old releases", &script(layout, &body))?;
    Ok(out.lines().map(str::to_string).collect())
}
