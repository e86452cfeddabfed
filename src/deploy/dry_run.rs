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
    let (installed_unit, installed_sha) =
        steps::parse_installed(&answers.next().expect("answered")?);
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
        installed_sha.as_deref().unwrap_or("(none installed)"),
        layout.shell_vars().trim_end()
    ));
    let host_unit = phases::host_unit(&mut runner, package, facts, ui);
    let new_unit = host_unit.adapted.as_deref().unwrap_or(&package.unit);
    runner.note(unit_diff(&installed_unit, new_unit, &layout.unit_path()));
    let begun = phases::begin(&mut runner, &layout, None, options, ui).map_err(|f| f.error)?;
    let mut transfer = phases::transfer(
        &mut runner,
        &layout,
        package,
        target.env_file.as_deref(),
        &host_unit,
        &begun.survey,
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
    let old_name = if old.is_empty() {
        "/dev/null".to_string()
    } else {
        format!("{path} (installed)")
    };
    format!(
        "# unit diff\n{}",
        diff.unified_diff()
            .context_radius(3)
            .header(&old_name, &format!("{path} (new)"))
            .to_string()
            .trim_end()
    )
}
