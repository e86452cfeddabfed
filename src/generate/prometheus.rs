//! `shipit generate prometheus`: the hosts of one environment as Prometheus `file_sd` targets,
//! and the `scrape_configs` entry that reads them.
//!
//! Each host is one target group, `address:port` from `[metrics]`, labelled with the app, the
//! environment, the host's name, its groups and the version it runs (the configured one, or
//! with `--live` what each host says). Prometheus labels hold one string, so a host in several
//! `[groups]` gets them comma-joined in name order (`group=~"(.*,)?web(,.*)?"` selects one).
//!
//! Values reach the templates already JSON-quoted; a JSON string is a YAML one too, so one
//! quoting serves both files.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::output::Output;
use crate::build::Stamp;
use crate::cancel::Cancel;
use crate::config::Config;
use crate::error::{Category, tagged};
use crate::hosts::releases::{ListReleases, parse_releases};
use crate::hosts::{self, Connection, Runner, Script};
use crate::template::Template;
use crate::ui::Ui;

const TARGETS: Template = Template {
    path: "templates/prometheus/targets.hbs",
    builtin: include_str!("../../templates/prometheus/targets.hbs"),
};

const SCRAPE: Template = Template {
    path: "templates/prometheus/scrape.hbs",
    builtin: include_str!("../../templates/prometheus/scrape.hbs"),
};

/// Where the version labels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// `[app] version`, or `git describe` as `shipit build` stamps it.
    Configured,
    /// Asked of each host, as `status` does.
    Live,
}

#[derive(Debug, Serialize)]
struct TargetsData {
    groups: Vec<TargetGroup>,
}

#[derive(Debug, Serialize)]
struct TargetGroup {
    target: String,
    labels: Vec<Label>,
}

#[derive(Debug, Serialize)]
struct Label {
    name: String,
    value: String,
}

#[derive(Debug, Serialize)]
struct ScrapeData {
    app: String,
    job: String,
    metrics_path: String,
    file: String,
}

/// The targets file and the scrape config that points at it. `dir` is where they are written:
/// the scrape config names the targets file by its absolute path there, by its bare name
/// (next to prometheus.yml) when printed.
pub(super) fn render(
    config: &Config,
    versions: Versions,
    connection: &Connection,
    dir: Option<&Path>,
    ui: &Ui,
) -> Result<[Output; 2]> {
    config.require_environment()?;
    let groups = target_groups(config, versions, connection, ui)?;
    let base = file_base(config);
    let targets = Output {
        name: format!("{base}.json"),
        text: crate::template::render(config, &TARGETS, &TargetsData { groups })?,
    };
    let file = match dir {
        Some(dir) => absolute(dir)?.join(&targets.name).display().to_string(),
        None => targets.name.clone(),
    };
    let scrape = ScrapeData {
        app: config.app.name.to_string(),
        job: json(&base),
        metrics_path: json(&config.metrics.path),
        file: json(&file),
    };
    let scrape = Output {
        name: format!("{base}.scrape.yml"),
        text: crate::template::render(config, &SCRAPE, &scrape)?,
    };
    Ok([targets, scrape])
}

/// One group per host, in name order.
fn target_groups(
    config: &Config,
    versions: Versions,
    connection: &Connection,
    ui: &Ui,
) -> Result<Vec<TargetGroup>> {
    let port = metrics_port(config)?;
    let names: Vec<&String> = config.hosts.keys().collect();
    if names.is_empty() {
        crate::fail!(
            Usage,
            "there are no hosts to monitor: shipit.toml names none{}\n  help: add [hosts.NAME] \
             tables with their address",
            config
                .environment
                .as_deref()
                .map(|e| format!(" for environment {e}"))
                .unwrap_or_default()
        );
    }
    // Prometheus cannot resolve an ssh alias or a sandbox host's name: the target is the
    // address ssh connects to (`ssh -G`), as every other command reaches the host.
    let addresses = names
        .iter()
        .map(|name| {
            Ok(hosts::resolve(config, name, connection)?
                .hostname
                .as_str()
                .to_string())
        })
        .collect::<Result<Vec<_>>>()?;
    let versions = match versions {
        Versions::Configured => vec![Some(Stamp::resolve(config, None)?.version); names.len()],
        Versions::Live => live_versions(config, &names, connection, ui)?,
    };
    Ok(names
        .iter()
        .zip(addresses)
        .zip(versions)
        .map(|((name, address), version)| TargetGroup {
            target: json(&target(&address, port)),
            labels: labels(config, name, version),
        })
        .collect())
}

fn metrics_port(config: &Config) -> Result<u16> {
    config.metrics.port.ok_or_else(|| {
        tagged(
            Category::Usage,
            anyhow::anyhow!(
                "shipit.toml does not say which port {} serves metrics on\n  help: set \
                 [metrics] port (it defaults to the port of [health] url, or [service] port)",
                config.app.name
            ),
        )
    })
}

/// `app` or `app-environment`: the job's name and the files', so that each environment's
/// files and jobs can sit side by side in one Prometheus.
fn file_base(config: &Config) -> String {
    match &config.environment {
        Some(environment) => format!("{}-{environment}", config.app.name),
        None => config.app.name.to_string(),
    }
}

/// `host:port`, an IPv6 address in brackets as Prometheus wants it.
fn target(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// The labels of one host; an empty one is left out, as Prometheus treats it as absent.
fn labels(config: &Config, host: &str, version: Option<String>) -> Vec<Label> {
    let groups = config
        .groups
        .iter()
        .filter(|(_, members)| members.iter().any(|m| m == host))
        .map(|(group, _)| group.as_str())
        .collect::<Vec<_>>()
        .join(",");
    [
        ("app", config.app.name.to_string()),
        (
            "environment",
            config.environment.clone().unwrap_or_default(),
        ),
        ("host", host.to_string()),
        ("group", groups),
        ("version", version.unwrap_or_default()),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .map(|(name, value)| Label {
        name: json(name),
        value: json(&value),
    })
    .collect()
}

/// The version each host runs, read from all of them at once; a host with no release yet has
/// none. A host that cannot be read fails the command, since its label would be a guess.
fn live_versions(
    config: &Config,
    names: &[&String],
    connection: &Connection,
    ui: &Ui,
) -> Result<Vec<Option<String>>> {
    let answers: Vec<Result<Option<String>>> = std::thread::scope(|scope| {
        let readers: Vec<_> = names
            .iter()
            .map(|name| scope.spawn(|| running_version(config, name, connection, ui)))
            .collect();
        readers
            .into_iter()
            .map(|reader| reader.join().expect("a version reader panicked"))
            .collect()
    });
    names
        .iter()
        .zip(answers)
        .map(|(name, answer)| {
            let version = answer.map_err(|e| {
                tagged(
                    Category::Connect,
                    anyhow::anyhow!(
                        "--live: cannot read which version {name} runs: {e:#}\n  help: leave \
                         out --live to label every host with the configured version"
                    ),
                )
            })?;
            if version.is_none() {
                ui.diagnostic(format!(
                    "warning: {name} runs no release of {} yet, so its target has no version \
                     label",
                    config.app.name
                ));
            }
            Ok(version)
        })
        .collect()
}

/// What `status` reads: the host's releases, and the version of the current one.
fn running_version(
    config: &Config,
    host: &str,
    connection: &Connection,
    ui: &Ui,
) -> Result<Option<String>> {
    let (mut remote, layout) = hosts::open(config, host, connection, ui)?;
    let out = Runner::apply(remote.as_mut(), &Cancel::new())
        .run(vec![ListReleases.step(&layout)])?
        .into_iter()
        .next()
        .context("the host did not list its releases")??;
    Ok(parse_releases(&out)
        .into_iter()
        .find(|r| r.current)
        .map(|r| r.version))
}

fn absolute(dir: &Path) -> Result<std::path::PathBuf> {
    std::path::absolute(dir)
        .with_context(|| format!("cannot tell the absolute path of {}", dir.display()))
        .map_err(|e| tagged(Category::Usage, e))
}

fn json(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The targets file as host name → its labels.
    fn parsed(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        let groups: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
        groups
            .iter()
            .map(|g| {
                let labels: BTreeMap<String, String> =
                    serde_json::from_value(g["labels"].clone()).unwrap();
                (labels["host"].clone(), labels)
            })
            .collect()
    }

    const TWO_ENVIRONMENTS: &str = r#"
[app]
name = "demo"
version = "1.4.2"

[health]
url = "http://127.0.0.1:8080/health"

[environments.staging.hosts.stage1]
address = "10.0.0.5"

[environments.production.hosts.web1]
address = "192.0.2.10"
[environments.production.hosts.web2]
address = "2001:db8::2"
[environments.production.hosts.worker]
address = "192.0.2.30"
[environments.production.groups]
web = ["web1", "web2"]
canary = ["web1"]
"#;

    fn config(text: &str, environment: Option<&str>) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("go.mod"), "module example.com/demo\n").unwrap();
        let path = dir.path().join(crate::config::FILE_NAME);
        let config = crate::config::parse(dir.path(), &path, text, environment).unwrap();
        (dir, config)
    }

    fn rendered(text: &str, environment: Option<&str>) -> [Output; 2] {
        let (_dir, config) = config(text, environment);
        render(
            &config,
            Versions::Configured,
            &Connection::default(),
            None,
            &Ui::new(true),
        )
        .unwrap()
    }

    #[test]
    fn each_environment_lists_its_own_hosts_with_their_labels() {
        let [staging, _] = rendered(TWO_ENVIRONMENTS, Some("staging"));
        assert_eq!(staging.name, "demo-staging.json");
        let hosts = parsed(&staging.text);
        assert_eq!(hosts.keys().collect::<Vec<_>>(), ["stage1"]);
        assert_eq!(
            hosts["stage1"],
            BTreeMap::from([
                ("app".into(), "demo".into()),
                ("environment".into(), "staging".into()),
                ("host".into(), "stage1".into()),
                ("version".into(), "1.4.2".into()),
            ])
        );

        let [production, _] = rendered(TWO_ENVIRONMENTS, Some("production"));
        let hosts = parsed(&production.text);
        assert_eq!(hosts.keys().collect::<Vec<_>>(), ["web1", "web2", "worker"]);
        assert_eq!(hosts["web1"]["group"], "canary,web");
        assert_eq!(hosts["web2"]["group"], "web");
        assert!(!hosts["worker"].contains_key("group"));
        assert!(
            production
                .text
                .contains(r#""targets": ["[2001:db8::2]:8080"]"#)
        );
        assert!(
            production
                .text
                .contains(r#""targets": ["192.0.2.10:8080"]"#)
        );
    }

    #[test]
    fn the_scrape_config_points_at_the_targets_file_with_the_metrics_path() {
        let text =
            format!("{TWO_ENVIRONMENTS}\n[metrics]\npath = \"/internal/metrics\"\nport = 9100\n");
        let [targets, scrape] = rendered(&text, Some("production"));
        assert!(targets.text.contains(r#""192.0.2.10:9100""#));
        assert_eq!(scrape.name, "demo-production.scrape.yml");
        assert!(scrape.text.contains(r#"job_name: "demo-production""#));
        assert!(scrape.text.contains(r#"metrics_path: "/internal/metrics""#));
        assert!(scrape.text.contains(r#"- "demo-production.json""#));
    }

    #[test]
    fn without_environments_the_files_hosts_are_the_targets() {
        let text = "[app]\nversion = \"2.0.0\"\n[service]\nport = 9000\n\
                    [hosts.a]\naddress = \"10.1.1.1\"\n";
        let [targets, scrape] = rendered(text, None);
        assert_eq!(targets.name, "demo.json");
        let hosts = parsed(&targets.text);
        assert!(!hosts["a"].contains_key("environment"));
        assert!(targets.text.contains(r#""10.1.1.1:9000""#));
        assert!(scrape.text.contains(r#"metrics_path: "/metrics""#));
    }

    #[test]
    fn refuses_what_it_cannot_write() {
        let connection = Connection::default();
        let ui = Ui::new(true);
        let (_dir, config) = config(TWO_ENVIRONMENTS, None);
        let Err(err) = render(&config, Versions::Configured, &connection, None, &ui) else {
            panic!("rendered without a port");
        };
        assert!(
            format!("{err:#}").contains("-e production or -e staging"),
            "{err:#}"
        );

        let (_dir, config) = config_no_port();
        let Err(err) = render(&config, Versions::Configured, &connection, None, &ui) else {
            panic!("rendered without a port");
        };
        assert!(format!("{err:#}").contains("[metrics] port"), "{err:#}");
    }

    fn config_no_port() -> (tempfile::TempDir, Config) {
        config(
            "[app]\nversion = \"1\"\n[hosts.a]\naddress = \"10.1.1.1\"\n",
            None,
        )
    }
}
