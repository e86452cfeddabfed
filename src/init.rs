//! `shipit init`: a commented shipit.toml for the project in the directory. How the service
//! listens (exec_args, the health URL's port) is written only as far as the source shows it.

mod scan;

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::FILE_NAME;
use crate::error::{Category, Tag};
use crate::names::AppName;
use crate::project::{self, Language};
use crate::ui::Ui;

/// `shipit init`, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The app name, instead of the one found in go.mod or Cargo.toml.
    pub name: Option<String>,
    /// Overwrite an existing shipit.toml.
    pub force: bool,
}

pub fn run(dir: &Path, args: &Options, ui: &Ui) -> Result<()> {
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
        Some(name) => AppName::parse(name)
            .map_err(anyhow::Error::msg)
            .tag(Category::Usage)?,
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
    let listen = ListenPlan::from(scan::scan(dir, language));
    std::fs::write(&path, template(&name, language, &listen))
        .with_context(|| format!("cannot write {}", path.display()))
        .tag(Category::Usage)?;
    ui.status(
        "Created",
        format_args!("{} for the {language} app {name}", path.display()),
    );
    ui.status("Detected", &listen.summary);
    println!("{}", path.display());
    Ok(())
}

/// What init writes about how the service listens, each with the comment saying where in the
/// source it came from.
struct ListenPlan {
    /// exec_args and its comment, or the commented line saying what to set.
    exec_args: String,
    /// `[service.env]` lines.
    env: String,
    /// The `[health]` table, commented out when no port was found.
    health_url: Option<(u16, String)>,
    summary: String,
}

/// The port shipit sets when the source has a flag or PORT variable but no literal default.
const CHOSEN_PORT: u16 = 8080;

impl From<scan::Listening> for ListenPlan {
    fn from(found: scan::Listening) -> ListenPlan {
        let mut plan = ListenPlan {
            exec_args:
                "# exec_args = [\"--port\", \"8080\"]  # no port or address flag found in the \
                        source: set the arguments your service needs\n"
                    .into(),
            env: "# LOG_LEVEL = \"info\"\n".into(),
            health_url: None,
            summary: "no port flag, PORT variable or listen address in the source".into(),
        };
        if let Some(flag) = found.flag {
            let value = flag.value.default.clone().unwrap_or_else(|| {
                if flag.value.address {
                    format!("0.0.0.0:{CHOSEN_PORT}")
                } else {
                    CHOSEN_PORT.to_string()
                }
            });
            let port = scan::port_of(&value).unwrap_or(CHOSEN_PORT);
            let default = match &flag.value.default {
                Some(default) => format!("default {default:?}"),
                None => "no literal default: shipit sets one".into(),
            };
            plan.exec_args = format!(
                "# detected: the flag {} ({default}) in {}\nexec_args = [{:?}, {value:?}]\n",
                flag.value.flag, flag.at, flag.value.flag
            );
            plan.summary = format!("the flag {} in {}", flag.value.flag, flag.at);
            plan.health_url = Some((port, format!("the {} given in exec_args", flag.value.flag)));
        } else if let Some(literal) = found.literal_port {
            plan.summary = format!("listens on port {} ({})", literal.value, literal.at);
            plan.health_url = Some((
                literal.value,
                format!("the listen address in {}", literal.at),
            ));
        } else if let Some(env) = found.port_env {
            match env.value {
                Some(default) => {
                    plan.summary = format!("PORT, default {default} ({})", env.at);
                    plan.health_url = Some((default, format!("PORT's default in {}", env.at)));
                }
                None => {
                    plan.summary = format!("PORT ({}), set to {CHOSEN_PORT}", env.at);
                    plan.env = format!(
                        "# detected: the service reads PORT ({}), with no literal default there\n\
                         PORT = \"{CHOSEN_PORT}\"\n",
                        env.at
                    );
                    plan.health_url = Some((CHOSEN_PORT, "PORT in [service.env]".into()));
                }
            }
        }
        plan
    }
}

fn health_table(listen: &ListenPlan) -> String {
    let settings = "# expect_status = 200\n\
                    # timeout = \"2s\"\n\
                    # retries = 30\n\
                    # interval = \"1s\"\n\
                    # settle = \"3s\"            # the unit must stay up this long without restarting\n\
                    # check_version = true     # a JSON \"version\" in the response must match the release\n";
    match &listen.health_url {
        Some((port, why)) => format!(
            "[health]\n\
             # detected: port {port}, from {why}\n\
             url = \"http://127.0.0.1:{port}/health\"  # probed on the server after each restart\n\
             {settings}"
        ),
        None => format!(
            "# shipit found no port flag, PORT variable or listen address in the source: set the\n\
             # port your service listens on (and its health path), then uncomment:\n\
             # [health]\n\
             # url = \"http://127.0.0.1:PORT/health\"  # probed on the server after each restart\n\
             {settings}"
        ),
    }
}

fn template(name: &str, language: Language, listen: &ListenPlan) -> String {
    let build = match language {
        Language::Go => {
            "[build]\n\
             # builder = \"go\"              # detected from go.mod\n\
             # cgo = \"auto\"                # on when a package in the build has cgo files; or \"on\", \"off\"\n\
             # cc = \"auto\"                 # cgo's C compiler: \"musl-gcc\" (this machine's arch) or \"zig\"\n\
             # go_package = \".\"            # the main package, e.g. \"./cmd/server\"\n\
             # version_var = \"main.version\"      # stamped with -ldflags -X\n\
             # build_time_var = \"main.buildTime\"\n"
        }
        Language::Rust => {
            "[build]\n\
             # builder = \"cargo\"           # then cargo-zigbuild for C code; or \"zigbuild\", \"cross\" (a container)\n\
             # cargo_bin = \"server\"        # when the package has several binaries\n\
             # cargo_features = []\n\
             # version_env = \"SHIPIT_VERSION\"       # read with option_env!(\"SHIPIT_VERSION\")\n\
             # build_time_env = \"SHIPIT_BUILD_TIME\"\n"
        }
    };
    format!(
        "# shipit.toml: how shipit builds, packages and runs {name}.\n\
         # Every setting is described in shipit's manual: docs/src/reference/config.md.\n\
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
         {exec_args}\
         # files = [\"config.yaml\"]  # shipped beside the binary, in the working directory\n\
         # limit_nofile = 65536\n\
         # restart = \"on-failure\"\n\
         # restart_sec = 5\n\
         # start_limit_interval_sec = 60\n\
         # start_limit_burst = 5\n\
         # timeout_stop_sec = 30\n\
         # env_file = \".env.production\"  # secrets: uploaded to /etc/{name}/{name}.env, mode 0600\n\
         # capabilities = [\"CAP_NET_BIND_SERVICE\"]  # to listen below port 1024\n\
         # listen = [\"8080\"]       # systemd holds the socket (manual: \"Zero-downtime deploys\")\n\
         \n\
         [service.env]\n\
         {env}\
         \n\
         [service.hardening]\n\
         # Defaults score \"OK\" in systemd-analyze security; relax one directive at a time:\n\
         # MemoryDenyWriteExecute = false\n\
         \n\
         {health}\
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
         # For `shipit generate dockerfile|k8s` (see the manual, \"Beyond one box\"):\n\
         # [container]\n\
         # runtime = \"distroless-static\"   # or \"scratch\", \"alpine\"\n\
         # [k8s]\n\
         # image = \"registry.example.com/{name}:latest\"\n\
         # replicas = 3\n",
        exec_args = listen.exec_args,
        env = listen.env,
        health = health_table(listen),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_as_valid_config() {
        let port_flag = scan::Listening {
            flag: Some(scan::Found {
                value: scan::ListenFlag {
                    flag: "--listen".into(),
                    default: None,
                    address: true,
                },
                at: "main.go:3".into(),
            }),
            ..Default::default()
        };
        let port_env = scan::Listening {
            port_env: Some(scan::Found {
                value: None,
                at: "src/main.rs:9".into(),
            }),
            ..Default::default()
        };
        for (language, marker) in [(Language::Go, "go.mod"), (Language::Rust, "Cargo.toml")] {
            let dir = tempfile::tempdir().unwrap();
            let content = match language {
                Language::Go => "module example.com/demo\n",
                Language::Rust => "[package]\nname = \"demo\"\n",
            };
            std::fs::write(dir.path().join(marker), content).unwrap();
            for found in [
                scan::Listening::default(),
                port_flag.clone(),
                port_env.clone(),
            ] {
                let listen = ListenPlan::from(found);
                let text = template("demo", language, &listen);
                let config =
                    crate::config::parse(dir.path(), &dir.path().join(FILE_NAME), &text, None)
                        .unwrap_or_else(|e| panic!("{e:#}\n{text}"));
                assert_eq!(config.app.name, "demo");
                let port = config
                    .health
                    .as_ref()
                    .and_then(|h| h.endpoint())
                    .map(|e| e.1);
                assert_eq!(port, listen.health_url.map(|(port, _)| port), "{text}");
            }
        }
        let listen = ListenPlan::from(port_flag);
        assert!(
            listen
                .exec_args
                .contains("exec_args = [\"--listen\", \"0.0.0.0:8080\"]"),
            "{}",
            listen.exec_args
        );
        assert!(ListenPlan::from(port_env).env.contains("PORT = \"8080\""));
    }
}
