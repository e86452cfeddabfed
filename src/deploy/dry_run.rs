//! `deploy --dry-run`: every step's script, the unit diff and the binary change, with the host
//! untouched (steps that only read run; the rest are recorded).

use anyhow::Result;

use super::runner::Runner;
use super::{Options, fleet, hooks, layout_for, phases, steps};
use crate::build::Target;
use crate::config::Config;
use crate::package::Package;
use crate::remote::Remote;
use crate::ui::Ui;

/// `--dry-run`: the steps' scripts, the unit diff and the binary change, with the host untouched.
pub fn plan(
    remote: &mut dyn Remote,
    config: &Config,
    package: &Package,
    target: &fleet::Target,
    options: &Options,
    first: bool,
    ui: &Ui,
) -> Result<Vec<String>> {
    let layout = layout_for(config, package);
    let mut runner = Runner::dry_run(remote);
    let platform = Target::parse(&package.manifest.target)?;
    let host = runner.label();
    let mut answers = runner
        .run(vec![
            steps::check(&layout, platform),
            steps::installed(&layout),
        ])?
        .into_iter();
    let facts = steps::host_facts(answers.next().expect("answered"), &host, platform)?;
    let installed = steps::parse_installed(&answers.next().expect("answered")?);
    let new_sha = package
        .manifest
        .files
        .iter()
        .find(|f| f.path == layout.app)
        .map(|f| f.sha256.clone())
        .unwrap_or_default();
    runner.note(format!(
        "# plan for {} {} on {} (systemd {}): nothing below has run\n# binary sha256: {} -> {new_sha}\n# paths:\n{}",
        layout.app,
        package.manifest.version,
        host,
        facts.systemd,
        installed.binary_sha256.as_deref().unwrap_or("(none installed)"),
        layout.shell_vars().trim_end()
    ));
    let host_unit = phases::host_unit(&mut runner, package, facts, ui);
    let new_unit = host_unit.service(package);
    runner.note(unit_diff(&installed.unit, new_unit, &layout.unit_path()));
    let new_socket = host_unit
        .socket_adapted
        .as_deref()
        .or(package.socket.as_deref())
        .unwrap_or_default();
    if !(new_socket.is_empty() && installed.socket.is_empty()) {
        runner.note(unit_diff(
            &installed.socket,
            new_socket,
            &layout.socket_path(),
        ));
    }
    let begun = phases::begin(&mut runner, &layout, None, options, ui).map_err(|f| f.error)?;
    let mut transfer = phases::transfer(
        &mut runner,
        &layout,
        package,
        target.env_file.as_deref(),
        &host_unit,
        &begun.survey,
        super::preflight::wanted(
            config.deploy.preflight,
            package,
            target.health.as_ref(),
            &host,
            ui,
        ),
        phases::Then::Wait,
        ui,
    )?;
    let release = hooks::Release {
        layout: &layout,
        package,
        host_unit: &host_unit,
        previous_version: transfer.previous_version.as_deref(),
    };
    for line in hooks::plan(&config.hooks, &release, first)? {
        runner.note(line);
    }
    phases::activate(
        &mut runner,
        &layout,
        package,
        target.health.as_ref(),
        &mut transfer,
        options,
        ui,
    )?;
    let keep = Some(config.deploy.keep_releases);
    let (_, error) = phases::finish(&mut runner, &layout, keep, None, phases::Lock::Held);
    if let Some(e) = error {
        return Err(e);
    }
    Ok(runner.into_plan())
}

fn unit_diff(old: &str, new: &str, path: &str) -> String {
    if old == new {
        return format!("# {path}: unchanged");
    }
    let diff = similar::TextDiff::from_lines(old, new);
    let name = |text: &str, what: &str| match text.is_empty() {
        true => "/dev/null".to_string(),
        false => format!("{path} ({what})"),
    };
    format!(
        "# unit diff\n{}",
        diff.unified_diff()
            .context_radius(3)
            .header(&name(old, "installed"), &name(new, "new"))
            .to_string()
            .trim_end()
    )
}
