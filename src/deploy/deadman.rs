//! `--confirm-timeout`: before the restart, the host gets a systemd timer that puts the previous
//! release back by itself unless shipit confirms, over a fresh connection, after the health gate.
//! If the deploying machine dies or loses the host mid-deploy, the host still heals.
//!
//! The timer must never hurt a later deploy, so:
//! - A marker, `.shipit/deadman.<token>.json`, says it is armed. Whoever renames the marker
//!   first decides: the timer's script (it fires) or a disarm (it never will).
//! - The script takes the deploy lock itself, atomically; when another deploy holds it, it does
//!   nothing. It may take over only the lock of the deploy that armed it (which died).
//! - It acts only while `current` still points at the release it was armed for, and returns
//!   only to a release that still exists. It runs with `set -eu`; whenever in doubt it leaves
//!   the host as it is, and it says what it did or why it did nothing in the journal of its
//!   unit and in `.shipit/deadman.<token>.done`, which the deploy's confirmation reads.
//! - A deploy is refused while another deploy's timer is armed, unless `--force-disarm`.

use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::layout::Layout;
use super::lock::{self, LockOwner};
use super::runner::{Runner, failed_with};
use super::steps::{SWITCH, script};
use crate::remote::{Remote, quote};

/// The disarm script's exit status for "too late: the timer fired".
const FIRED: i32 = 77;

pub fn unit(layout: &Layout) -> String {
    format!("shipit-deadman-{}", layout.app)
}

/// A marker as the host holds it: who armed the timer, for which release, what it returns to
/// and when it fires (the host's clock).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArmedTimer {
    pub owner: LockOwner,
    pub release: String,
    pub previous: Option<String>,
    /// Written by the host when it arms the timer.
    #[serde(default, skip_serializing)]
    pub fires: u64,
}

pub fn describe(timer: &ArmedTimer, now: u64) -> String {
    let action = match &timer.previous {
        Some(previous) => format!("switches back to {previous}"),
        None => "stops the service".to_string(),
    };
    let when = match timer.fires.checked_sub(now) {
        Some(left) if left > 0 => format!(
            "in {}",
            humantime::format_duration(Duration::from_secs(left))
        ),
        _ => "any moment now".to_string(),
    };
    format!(
        "armed by {} for {}; {when} it {action} unless the host has moved on",
        timer.owner.who(),
        timer.release
    )
}

/// Prints `armed=<marker>` for every marker whose timer is still pending. A marker whose timer
/// is gone (the host rebooted: transient timers do not survive that) does not count.
pub const LIST_ARMED: &str = "for marker in \"$base/.shipit\"/deadman.*.json; do\n\
      [ -e \"$marker\" ] || continue\n\
      if systemctl is-active --quiet \"shipit-deadman-$app.timer\"; then echo \"armed=$(cat \"$marker\")\"; fi\n\
    done\n";

/// After the lock is taken: lists other deploys' armed timers and, per `$policy`, lets go of the
/// lock and fails (`refuse`), disarms them (`disarm`) or leaves them (`keep`). A marker whose
/// timer is gone (the host rebooted) is deleted.
pub const CHECK_ARMED: &str = "echo \"now=$(date +%s)\"\n\
    for marker in \"$base/.shipit\"/deadman.*.json; do\n\
      [ -e \"$marker\" ] || continue\n\
      if ! systemctl is-active --quiet \"$timer.timer\"; then rm -f \"$marker\"; continue; fi\n\
      echo \"armed=$(cat \"$marker\")\"\n\
      case $policy in\n\
        refuse) rm -rf \"$lock\"; exit 76 ;;\n\
        disarm) if mv \"$marker\" \"$marker.disarmed\" 2>/dev/null; then\n\
            systemctl stop \"$timer.timer\" 2>/dev/null || true\n\
            rm -f \"$marker.disarmed\" \"${marker%.json}.sh\"\n\
          fi ;;\n\
      esac\n\
    done\n";

pub fn parse_armed(out: &str) -> Vec<ArmedTimer> {
    out.lines()
        .filter_map(|l| l.strip_prefix("armed="))
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect()
}

/// Arms the timer for this deploy of `layout.release`, returning to `previous` (or stopping the
/// service when there is none).
pub fn arm(
    runner: &mut Runner,
    layout: &Layout,
    previous: Option<&str>,
    timeout: Duration,
) -> Result<()> {
    let mut marker = serde_json::to_string(&ArmedTimer {
        owner: LockOwner::me(layout),
        release: layout.release.clone(),
        previous: previous.map(str::to_string),
        fires: 0,
    })?;
    // The host's clock says when it fires: the script appends `"fires":<then>}`.
    marker.pop();
    marker.push_str(",\"fires\":");
    // The timer's job is a file, not an ExecStart line: systemd would expand the script's $vars.
    // The marker appears only once the timer exists; a failure leaves neither behind.
    let body = format!(
        "marker=\"$base/.shipit/deadman.\"{token}\n\
         name={name}\n\
         trap 'rm -f \"$marker.json.tmp\"; [ -e \"$marker.json\" ] || rm -f \"$marker.sh\"' EXIT\n\
         rm -f \"$base/.shipit\"/deadman.*.done\n\
         printf '%s' {heal} > \"$marker.sh\"; chmod 0700 \"$marker.sh\"\n\
         systemctl stop \"$name.timer\" \"$name.service\" 2>/dev/null || true\n\
         systemctl reset-failed \"$name.service\" \"$name.timer\" 2>/dev/null || true\n\
         printf '%s%s}}\\n' {marker} \"$(( $(date +%s) + {secs} ))\" > \"$marker.json.tmp\"\n\
         systemd-run --quiet --unit=\"$name\" --on-active={secs}s --timer-property=AccuracySec=1s /bin/sh \"$marker.sh\"\n\
         mv \"$marker.json.tmp\" \"$marker.json\"\n",
        token = quote(lock::token()),
        name = quote(&unit(layout)),
        heal = quote(&heal_script(layout, previous)),
        marker = quote(&marker),
        secs = timeout.as_secs().max(1)
    );
    runner.change("arming the dead-man timer", &script(layout, &body))?;
    Ok(())
}

/// The timer's script. See the module comment for what it promises.
fn heal_script(layout: &Layout, previous: Option<&str>) -> String {
    let body = format!(
        "token={token}\nprevious={previous}\n\
         marker=\"$base/.shipit/deadman.$token\"\n\
         me=\"deadman-$token\"\n\
         owner=$(printf '{{\"user\":\"root\",\"from\":\"%s\",\"pid\":%s,\"version\":\"%s (dead-man timer)\",\"since\":\"%s\",\"token\":\"%s\"}}' \"$(uname -n)\" \"$$\" \"$release\" \"$(date -u +%FT%TZ)\" \"$me\")\n\
         {functions}\
         say() {{ echo \"shipit dead-man timer for $app $release: $*\"; }}\n\
         verdict() {{ say \"$*\"; echo \"$*\" > \"$marker.done\"; }}\n\
         step='claiming the timer'\n\
         took=no\n\
         finish() {{\n\
           status=$?\n\
           if [ \"$status\" -ne 0 ]; then verdict \"failed (exit $status) while $step; the host is as that step left it\"; fi\n\
           if [ \"$took\" = yes ]; then rm -rf \"$lock\"; fi\n\
           rm -f \"$marker.json.firing\" \"$marker.sh\"\n\
         }}\n\
         trap finish EXIT\n\
         if ! mv \"$marker.json\" \"$marker.json.firing\" 2>/dev/null; then say 'disarmed before it fired: nothing to do'; exit 0; fi\n\
         step='taking the deploy lock'\n\
         mkdir -p \"$base/.shipit\"\n\
         if mkdir \"$lock\" 2>/dev/null || claim \"$token\"; then\n\
           if own; then took=yes; fi\n\
         fi\n\
         if [ \"$took\" != yes ]; then\n\
           verdict \"another deploy holds the lock ($(cat \"$lock/owner.json\" 2>/dev/null || echo 'owner unknown')): left the host as it is\"; exit 0\n\
         fi\n\
         step='checking the host'\n\
         now=$(readlink \"$current\" 2>/dev/null || true)\n\
         now=${{now##*/}}\n\
         if [ \"$now\" != \"$release\" ]; then\n\
           verdict \"current is ${{now:-missing}}, not $release: a later deploy or rollback moved it, so the host was left as it is\"; exit 0\n\
         fi\n\
         if [ -z \"$previous\" ]; then\n\
           step='stopping the service'\n\
           touch \"$rel/.shipit-failed\"\n\
           systemctl disable --now --quiet \"$unit\"\n\
           verdict \"$release was not confirmed and there is no earlier release: stopped and disabled $unit\"; exit 0\n\
         fi\n\
         if [ ! -f \"$releases/$previous/.shipit-complete\" ]; then\n\
           verdict \"$release was not confirmed, but the release to return to, $previous, is gone: left the host as it is\"; exit 0\n\
         fi\n\
         step=\"switching back to $previous\"\n\
         touch \"$rel/.shipit-failed\"\n\
         target=$previous\n\
         {SWITCH}\
         echo \"$previous\" >> \"$history\"\n\
         verdict \"$release was not confirmed: switched back to $previous and marked $release failed\"\n",
        token = quote(lock::token()),
        previous = quote(previous.unwrap_or("")),
        functions = lock::OWNER_FUNCTIONS,
    );
    script(layout, &body)
}

/// What disarming found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disarm {
    /// The timer will not fire.
    Disarmed,
    /// This deploy had no timer armed on the host.
    NotArmed,
    /// Too late: the timer fired; what it did (or is doing).
    Fired(String),
}

/// Disarms this deploy's timer, if it has not fired yet.
pub fn disarm(runner: &mut Runner, layout: &Layout) -> Result<Disarm> {
    let body = format!(
        "marker=\"$base/.shipit/deadman.\"{token}\n\
         if mv \"$marker.json\" \"$marker.json.disarmed\" 2>/dev/null; then\n\
           systemctl stop {name}.timer 2>/dev/null || true\n\
           rm -f \"$marker.json.disarmed\" \"$marker.sh\"\n\
           echo disarmed\n\
         elif [ -e \"$marker.json.firing\" ]; then echo 'it is running now'; exit {FIRED}\n\
         elif [ -f \"$marker.done\" ]; then cat \"$marker.done\"; rm -f \"$marker.done\"; exit {FIRED}\n\
         fi\n",
        token = quote(lock::token()),
        name = quote(&unit(layout)),
    );
    match runner.change("disarming the dead-man timer", &script(layout, &body)) {
        Ok(out) if out.trim() == "disarmed" || runner.is_dry_run() => Ok(Disarm::Disarmed),
        Ok(_) => Ok(Disarm::NotArmed),
        Err(e) => match failed_with(&e, FIRED) {
            Some(verdict) => Ok(Disarm::Fired(verdict.trim().to_string())),
            None => Err(e),
        },
    }
}

/// Confirms the release: disarms the timer before it fires. Fails if it fired already.
pub fn confirm(remote: &mut dyn Remote, layout: &Layout) -> Result<()> {
    let mut runner = Runner::apply(remote);
    runner.clean_up();
    match disarm(&mut runner, layout)? {
        Disarm::Disarmed => Ok(()),
        Disarm::NotArmed => anyhow::bail!(
            "the dead-man timer on {} was no longer armed (disarmed by hand?)",
            runner.label()
        ),
        Disarm::Fired(verdict) => anyhow::bail!(
            "too late: the dead-man timer on {} fired before the confirmation: {verdict}",
            runner.label()
        ),
    }
}
