//! `deploy --dry-run`: every step's script, the unit diff and the binary change, with the host
//! untouched (steps that only read run; the rest are recorded).

use std::borrow::Cow;

use anyhow::Result;

use super::phases;
use super::request::Options;
use super::targets::Target;
use crate::actions::{hooks, preflight};
use crate::build::Target as Platform;
use crate::config::Config;
use crate::events::Events;
use crate::hosts::check::{CheckHost, HostUnit};
use crate::hosts::script::Script;
use crate::hosts::{Layout, Runner};
use crate::package::Package;
use crate::remote::Kind;
use crate::ui::Ui;

/// `--dry-run`: the steps' scripts, the unit diff and the binary change, with the host untouched.
pub fn plan(
    mut runner: Runner,
    config: &Config,
    package: &Package,
    target: &Target,
    options: &Options,
    first: bool,
    ui: &Ui,
) -> Result<Vec<String>> {
    let layout = Layout::for_package(config, package);
    let check = CheckHost {
        target: Platform::parse(&package.manifest.target)?,
    };
    let host = runner.label();
    let mut answers = runner
        .run(vec![check.step(&layout), ReadInstalled.step(&layout)])?
        .into_iter();
    let facts = check.read(answers.next().expect("answered"), &host)?;
    let installed = parse_installed(&answers.next().expect("answered")?);
    let new_sha = package.binary().map_or("", |binary| binary.sha256.as_str());
    runner.note(format!(
        "# plan for {} {} on {} (systemd {}): nothing below has run\n# binary sha256: {} -> {new_sha}\n# paths:\n{}",
        layout.app,
        package.manifest.version,
        host,
        facts.systemd,
        installed.binary_sha256.as_deref().unwrap_or("(none installed)"),
        layout.shell_vars().trim_end()
    ));
    let host_unit = HostUnit::for_host(&mut runner, package, facts, ui);
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
    let begun = phases::begin(&mut runner, &layout, None, options, &Events::off(), ui)
        .map_err(|f| f.error)?;
    let mut transfer = phases::transfer(
        &mut runner,
        &layout,
        package,
        target.env_file.as_deref(),
        &host_unit,
        &begun.survey,
        preflight::wanted(
            config.deploy.preflight,
            package,
            target.health.as_ref(),
            &host,
            ui,
        ),
        phases::Then::Wait,
        &Events::off(),
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
        &Events::off(),
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

/// What is installed now, for the diff: the unit file and the running binary's sha256
/// (`installed.sh`).
pub struct ReadInstalled;

impl Script for ReadInstalled {
    fn kind(&self) -> Kind {
        Kind::Installed
    }

    fn body(&self) -> Vec<Cow<'static, str>> {
        vec![include_str!("scripts/installed.sh").into()]
    }
}

/// What [`ReadInstalled`] found.
#[derive(Debug, Default, PartialEq, Eq)]
struct Installed {
    unit: String,
    /// Empty when no socket unit is installed.
    socket: String,
    binary_sha256: Option<String>,
}

fn parse_installed(out: &str) -> Installed {
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
}
