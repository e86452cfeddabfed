//! `shipit init`: a commented shipit.toml for the project in the directory.

use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::InitArgs;
use crate::config::{FILE_NAME, validate_app_name};
use crate::error::{Category, Tag};
use crate::project::{self, Language};
use crate::ui::Ui;

pub fn run(dir: &Path, args: &InitArgs, ui: &Ui) -> Result<()> {
    let detected = project::detect(dir)?;
    let Some(language) = detected.language else {
        crate::fail!(
            Usage,
            "{} holds {}: shipit init needs exactly one of go.mod or Cargo.toml\n  \
             help: run it in your project directory or pass --path DIR",
            dir.display(),
            if dir.join("go.mod").is_file() {
                "both go.mod and Cargo.toml"
            } else {
                "neither go.mod nor Cargo.toml"
            }
        );
    };
    let name = match &args.name {
        Some(name) => {
            validate_app_name(name)
                .map_err(anyhow::Error::msg)
                .tag(Category::Usage)?;
            name.clone()
        }
        None => detected
            .default_app_name()
            .context("pass --name NAME")
            .tag(Category::Usage)?,
    };
    let path = dir.join(FILE_NAME);
    if path.exists() && !args.force {
        crate::fail!(
            Usage,
            "{} already exists\n  help: pass --force to overwrite it",
            path.display()
        );
    }
    std::fs::write(&path, template(&name, language))
        .with_context(|| format!("cannot write {}", path.display()))
        .tag(Category::Usage)?;
    ui.status(
        "Created",
        format_args!("{} for the {language} app {name}", path.display()),
    );
    println!("{}", path.display());
    Ok(())
}

fn template(name: &str, language: Language) -> String {
    let build = match language {
        Language::Go => {
            "[build]\n\
             # builder = \"go\"              # detected from go.mod\n\
             # go_package = \".\"            # the main package, e.g. \"./cmd/server\"\n\
             # version_var = \"main.version\"      # stamped with -ldflags -X\n\
             # build_time_var = \"main.buildTime\"\n"
        }
        Language::Rust => {
            "[build]\n\
             # builder = \"cargo\"           # or \"cross\" to build in a container (Docker/Podman)\n\
             # cargo_bin = \"server\"        # when the package has several binaries\n\
             # cargo_features = []\n\
             # version_env = \"SHIPIT_VERSION\"       # read with option_env!(\"SHIPIT_VERSION\")\n\
             # build_time_env = \"SHIPIT_BUILD_TIME\"\n"
        }
    };
    format!(
        "# shipit.toml: how shipit builds, packages and runs {name}.\n\
         # Every setting is described in shipit's README.md, section \"shipit.toml\".\n\
         \n\
         [app]\n\
         name = \"{name}\"          # unit, user and directory name on the server\n\
         # version = \"git\"        # \"git\" = `git describe --tags --always --dirty`, or a literal\n\
         \n\
         {build}\
         \n\
         [service]\n\
         description = \"{name}\"\n\
         # user = \"{name}\"        # system user the service runs as (created on deploy)\n\
         exec_args = [\"--port\", \"8080\"]\n\
         # files = [\"config.yaml\"]  # shipped beside the binary, in the working directory\n\
         # limit_nofile = 65536\n\
         # restart = \"on-failure\"\n\
         # restart_sec = 5\n\
         # start_limit_interval_sec = 60\n\
         # start_limit_burst = 5\n\
         # timeout_stop_sec = 30\n\
         # env_file = \".env.production\"  # secrets: uploaded to /etc/{name}/{name}.env, mode 0600\n\
         # capabilities = [\"CAP_NET_BIND_SERVICE\"]  # to listen below port 1024\n\
         \n\
         [service.env]\n\
         # LOG_LEVEL = \"info\"\n\
         \n\
         [service.hardening]\n\
         # Defaults score \"OK\" in systemd-analyze security; relax one directive at a time:\n\
         # MemoryDenyWriteExecute = false\n\
         \n\
         [health]\n\
         url = \"http://127.0.0.1:8080/health\"  # probed on the server after each restart\n\
         # expect_status = 200\n\
         # timeout = \"2s\"\n\
         # retries = 30\n\
         # interval = \"1s\"\n\
         # settle = \"3s\"            # the unit must stay up this long without restarting\n\
         # check_version = true     # a JSON \"version\" in the response must match the release\n\
         \n\
         # Hosts to deploy to by name (`shipit deploy web1`), and groups of them (`shipit deploy web`):\n\
         # [hosts.web1]\n\
         # address = \"10.0.0.5\"      # or an alias from ~/.ssh/config\n\
         # user = \"deploy\"           # non-root users need passwordless sudo\n\
         # env = {{ REGION = \"a\" }}    # this host only, in its env file\n\
         #\n\
         # [groups]\n\
         # web = [\"web1\", \"web2\"]\n\
         #\n\
         # [deploy]\n\
         # keep_releases = 5\n\
         #\n\
         # For `shipit generate dockerfile|k8s` (see README, \"Beyond one box\"):\n\
         # [container]\n\
         # runtime = \"distroless-static\"   # or \"scratch\", \"alpine\"\n\
         # [k8s]\n\
         # image = \"registry.example.com/{name}:latest\"\n\
         # replicas = 3\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_as_valid_config() {
        for (language, marker) in [(Language::Go, "go.mod"), (Language::Rust, "Cargo.toml")] {
            let dir = tempfile::tempdir().unwrap();
            let content = match language {
                Language::Go => "module example.com/demo\n",
                Language::Rust => "[package]\nname = \"demo\"\n",
            };
            std::fs::write(dir.path().join(marker), content).unwrap();
            let text = template("demo", language);
            let config = crate::config::parse(dir.path(), &dir.path().join(FILE_NAME), &text)
                .unwrap_or_else(|e| panic!("{e:#}\n{text}"));
            assert_eq!(config.app.name, "demo");
        }
    }
}
