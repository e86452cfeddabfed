//! `--confirm-timeout`: before the restart, the host gets a systemd timer that puts the previous
//! release back by itself unless shipit confirms, over a fresh connection, after the health gate.
//! If the deploying machine dies or loses the host mid-deploy, the host still heals.

use std::time::Duration;

use anyhow::Result;

use super::layout::Layout;
use super::runner::Runner;
use super::steps::{script, switch_script};
use crate::remote::{Remote, quote};

fn unit(layout: &Layout) -> String {
    format!("shipit-deadman-{}", layout.app)
}

pub fn arm(
    runner: &mut Runner,
    layout: &Layout,
    previous: Option<&str>,
    timeout: Duration,
) -> Result<()> {
    // The timer's job is a file, not an ExecStart line: systemd would expand the script's $vars.
    // It runs with `set -u` only: whatever fails, the lock goes and the release is marked failed.
    let heal = match previous {
        Some(previous) => format!(
            "{}\ntouch \"$rel/.shipit-failed\"\necho \"$previous\" >> \"$history\"\nrm -rf \"$lock\"\n",
            switch_script(layout, previous).replacen(
                "set -eu\n",
                &format!("set -u\nprevious={}\n", quote(previous)),
                1
            )
        ),
        None => script(
            layout,
            "systemctl disable --now \"$unit\"\ntouch \"$rel/.shipit-failed\"\nrm -rf \"$lock\"\n",
        )
        .replacen("set -eu\n", "set -u\n", 1),
    };
    let body = format!(
        "job=\"$base/.shipit/deadman.sh\"\n\
         printf '%s' {} > \"$job\"; chmod 0700 \"$job\"\n\
         systemctl stop {name}.timer {name}.service 2>/dev/null || true\n\
         systemctl reset-failed {name}.service {name}.timer 2>/dev/null || true\n\
         systemd-run --quiet --unit={name} --on-active={secs}s --timer-property=AccuracySec=1s /bin/sh \"$job\"\n",
        quote(&heal),
        name = unit(layout),
        secs = timeout.as_secs().max(1)
    );
    runner.change("arming the dead-man timer", &script(layout, &body))?;
    Ok(())
}

pub fn disarm(runner: &mut Runner, layout: &Layout) -> Result<()> {
    let body = format!(
        "systemctl stop {name}.timer 2>/dev/null || true\nrm -f \"$base/.shipit/deadman.sh\"\n",
        name = unit(layout)
    );
    runner.change("disarming the dead-man timer", &script(layout, &body))?;
    Ok(())
}

/// Confirms the release: stops the timer before it fires.
pub fn confirm(remote: &mut dyn Remote, layout: &Layout) -> Result<()> {
    disarm(&mut Runner::apply(remote), layout)
}
