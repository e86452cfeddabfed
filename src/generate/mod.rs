//! `shipit generate`: the service shipit.toml describes, for platforms beyond one systemd box —
//! a Dockerfile, Kubernetes manifests, a supervisord program — and the Prometheus targets of
//! its hosts.
//!
//! Every file comes from a handlebars template, rendered as the unit is (see `unit.rs`): strict
//! mode, no HTML escaping, from a typed struct, the built-in template embedded from `templates/`
//! and replaced by the project's own file at the same path under its root. Values arrive already
//! quoted for their format, so a project template cannot forget to.

mod container;
mod dockerfile;
mod k8s;
mod output;
mod prometheus;
mod supervisor;

use std::path::Path;

use anyhow::Result;

use crate::config::Config;
use crate::hosts::Connection;
use crate::ui::Ui;

pub use prometheus::Versions;

/// What `shipit generate` writes.
#[derive(Debug, Clone)]
pub enum What {
    /// The Dockerfile and its .dockerignore; `show_dockerignore` prints the latter instead.
    Dockerfile {
        show_dockerignore: bool,
    },
    /// Deployment, Service, ConfigMaps, and a Secret template if asked.
    K8s {
        secret_template: bool,
    },
    Supervisor,
    /// The hosts as `file_sd` targets and the scrape config that reads them;
    /// `show_scrape_config` prints the latter instead.
    Prometheus {
        versions: Versions,
        connection: Connection,
        show_scrape_config: bool,
    },
}

/// Renders `what`: to stdout, or as files into `output`.
pub fn run(config: &Config, what: What, output: Option<&Path>, ui: &Ui) -> Result<()> {
    match what {
        What::Dockerfile { show_dockerignore } => {
            let [dockerfile, dockerignore] = dockerfile::render(config)?;
            let shown = if show_dockerignore {
                &dockerignore
            } else {
                &dockerfile
            };
            output::deliver(output, &[&dockerfile, &dockerignore], &shown.text, ui)
        }
        What::K8s { secret_template } => {
            let files = k8s::render(config, secret_template)?;
            let stream = files
                .iter()
                .map(|f| f.text.as_str())
                .collect::<Vec<_>>()
                .join("---\n");
            output::deliver(output, &files.iter().collect::<Vec<_>>(), &stream, ui)
        }
        What::Supervisor => {
            let program = supervisor::render(config)?;
            output::deliver(output, &[&program], &program.text, ui)
        }
        What::Prometheus {
            versions,
            connection,
            show_scrape_config,
        } => {
            let [targets, scrape] = prometheus::render(config, versions, &connection, output, ui)?;
            let shown = if show_scrape_config {
                &scrape
            } else {
                &targets
            };
            output::deliver(output, &[&targets, &scrape], &shown.text, ui)
        }
    }
}
