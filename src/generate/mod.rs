//! `shipit generate`: the service shipit.toml describes, for platforms beyond one systemd box —
//! a Dockerfile, Kubernetes manifests, a supervisord program.
//!
//! Every file comes from a handlebars template, rendered as the unit is (see `unit.rs`): strict
//! mode, no HTML escaping, from a typed struct, the built-in template embedded from `templates/`
//! and replaced by the project's own file at the same path under its root. Values arrive already
//! quoted for their format, so a project template cannot forget to.

mod dockerfile;
mod k8s;
mod supervisor;

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::error::{Category, Tag};
use crate::ui::Ui;

/// The uid and gid the container runs as: distroless's "nonroot". Numeric, because Kubernetes'
/// runAsNonRoot can only check a numeric USER, and scratch has no /etc/passwd to name one in.
const CONTAINER_UID: u32 = 65532;

/// Where the binary and its config files live inside the image, like /opt/<app>/current on a host.
const CONTAINER_DIR: &str = "/app";

/// What `shipit generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            deliver(output, &[&dockerfile, &dockerignore], &shown.text, ui)
        }
        What::K8s { secret_template } => {
            let files = k8s::render(config, secret_template)?;
            let stream = files
                .iter()
                .map(|f| f.text.as_str())
                .collect::<Vec<_>>()
                .join("---\n");
            deliver(output, &files.iter().collect::<Vec<_>>(), &stream, ui)
        }
        What::Supervisor => {
            let program = supervisor::render(config)?;
            deliver(output, &[&program], &program.text, ui)
        }
    }
}

/// One generated file: its name under `-o DIR`, and its text.
struct Output {
    name: String,
    text: String,
}

/// Writes `files` into `dir` (created when missing), or prints `stdout`: results go to stdout,
/// the names of written files to stderr, as with `unit generate -o`.
fn deliver(dir: Option<&Path>, files: &[&Output], stdout: &str, ui: &Ui) -> Result<()> {
    let Some(dir) = dir else {
        print!("{stdout}");
        return Ok(());
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .tag(Category::Usage)?;
    for file in files {
        let path = dir.join(&file.name);
        std::fs::write(&path, &file.text)
            .with_context(|| format!("cannot write {}", path.display()))
            .tag(Category::Usage)?;
        ui.status("Wrote", path.display());
    }
    Ok(())
}

/// A project path relative to its root (config paths are stored joined to the root).
fn relative(config: &Config, path: &Path) -> String {
    path.strip_prefix(&config.root)
        .unwrap_or(path)
        .display()
        .to_string()
}
