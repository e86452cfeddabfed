//! `shipit generate dockerfile`: a multi-stage Dockerfile whose builder makes the same static,
//! stamped binary as `shipit build`, and a .dockerignore that keeps secrets out of the context.

use anyhow::{Context, Result};
use serde::Serialize;

use super::container::{CONTAINER_DIR, CONTAINER_UID};
use super::output::{Output, relative};
use crate::build::{Target, go};
use crate::config::{Builder, Cgo, Config, Runtime, VersionSource};
use crate::error::{Category, Tag};
use crate::shell::quote;
use crate::template::Template;

const DOCKERFILE: Template = Template {
    path: "templates/dockerfile.hbs",
    builtin: include_str!("../../templates/dockerfile.hbs"),
};
const DOCKERIGNORE: Template = Template {
    path: "templates/dockerignore.hbs",
    builtin: include_str!("../../templates/dockerignore.hbs"),
};

const GO_IMAGE: &str = "golang:1";
// With cgo: Alpine's gcc compiles and links against musl, as musl-gcc does for `shipit build`.
const GO_CGO_IMAGE: &str = "golang:1-alpine";
// Alpine's own Rust target is *-linux-musl, which links statically: the same kind of binary
// `shipit build` makes, on amd64 and arm64 alike.
const RUST_IMAGE: &str = "rust:1-alpine";

#[derive(Debug, Serialize)]
struct DockerfileData {
    app: String,
    /// Default of the VERSION build argument: `[app] version` when it is a literal, else "dev".
    version: String,
    go: Option<GoStage>,
    rust: Option<RustStage>,
    runtime: &'static str,
    runtime_image: &'static str,
    /// alpine: `apk add ca-certificates`, as the seed's runtime stage does.
    install_ca_certificates: bool,
    /// scratch has no CA certificates at all: copy the builder's.
    copy_ca_certificates: bool,
    dir: &'static str,
    /// Where the builder leaves the binary, and where it goes in the image.
    built: String,
    binary: String,
    files: Vec<Copy>,
    uid: u32,
    expose: Vec<u16>,
    healthcheck: Option<Healthcheck>,
    /// Comment lines saying why there is no HEALTHCHECK, when there is none.
    no_healthcheck: Vec<String>,
    /// The exec-form (JSON array) ENTRYPOINT: the binary and `[service] exec_args`.
    entrypoint: String,
}

#[derive(Debug, Serialize)]
struct GoStage {
    image: &'static str,
    /// Why the build uses cgo ("example.com/app (sqlite.go) has cgo files"); None without.
    cgo: Option<String>,
    flags: String,
    ldflags: String,
    package: String,
}

#[derive(Debug, Serialize)]
struct RustStage {
    image: &'static str,
    cargo_args: String,
    bin: String,
    version_env: String,
    build_time_env: String,
}

#[derive(Debug, Serialize)]
struct Copy {
    source: String,
    destination: String,
}

#[derive(Debug, Serialize)]
struct Healthcheck {
    interval: u64,
    timeout: u64,
    start_period: u64,
    command: String,
}

#[derive(Debug, Serialize)]
struct DockerignoreData {
    app: String,
    ignore: Vec<String>,
    /// Config files the image needs, re-included in case a pattern above matches one.
    keep: Vec<String>,
}

/// The Dockerfile and the .dockerignore, in that order.
pub(super) fn render(config: &Config) -> Result<[Output; 2]> {
    for file in &config.service.files {
        check_plain_path(file, "[service] files")?;
    }
    let dockerfile = crate::template::render(config, &DOCKERFILE, &dockerfile_data(config)?)?;
    let dockerignore = crate::template::render(config, &DOCKERIGNORE, &dockerignore_data(config)?)?;
    Ok([
        Output {
            name: "Dockerfile".into(),
            text: dockerfile,
        },
        Output {
            name: ".dockerignore".into(),
            text: dockerignore,
        },
    ])
}

fn dockerfile_data(config: &Config) -> Result<DockerfileData> {
    let app = &config.app.name;
    let runtime = config.container.runtime;
    let binary = format!("{CONTAINER_DIR}/{app}");
    let (go, rust) = match config.build.builder {
        Builder::Go => (Some(go_stage(config)?), None),
        Builder::Cargo | Builder::Zigbuild | Builder::Cross => (None, Some(rust_stage(config)?)),
    };
    let mut expose: Vec<u16> = config.service.port.into_iter().collect();
    let health_port = config
        .health
        .as_ref()
        .and_then(|h| h.endpoint())
        .map(|e| e.1);
    expose.extend(health_port.filter(|p| !expose.contains(p)));
    let (healthcheck, no_healthcheck) = healthcheck(config);
    let entrypoint = std::iter::once(&binary)
        .chain(&config.service.exec_args)
        .map(|word| serde_json::to_string(word).expect("a string serializes"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(DockerfileData {
        app: app.to_string(),
        version: match &config.app.version {
            VersionSource::Literal(version) => version.clone(),
            VersionSource::Git => "dev".into(),
        },
        go,
        rust,
        runtime: runtime.name(),
        runtime_image: runtime.image(),
        install_ca_certificates: runtime == Runtime::Alpine,
        copy_ca_certificates: runtime == Runtime::Scratch,
        dir: CONTAINER_DIR,
        built: format!("/out/{app}"),
        binary,
        files: config
            .service
            .files
            .iter()
            .map(|file| Copy {
                source: file.clone(),
                destination: format!("{CONTAINER_DIR}/{file}"),
            })
            .collect(),
        uid: CONTAINER_UID,
        expose,
        healthcheck,
        no_healthcheck,
        entrypoint: format!("[{entrypoint}]"),
    })
}

fn go_stage(config: &Config) -> Result<GoStage> {
    let cgo = match config.build.cgo {
        Cgo::Off => None,
        Cgo::On => Some("[build] cgo = \"on\"".to_string()),
        Cgo::Auto => go::cgo_package(config, Target::LinuxAmd64)
            .context(
                "cannot tell whether the Dockerfile must build with cgo\n  \
                 help: set [build] cgo = \"on\" or \"off\" in shipit.toml",
            )
            .tag(Category::Usage)?
            .map(|package| format!("{package} has cgo files")),
    };
    Ok(GoStage {
        image: if cgo.is_some() {
            GO_CGO_IMAGE
        } else {
            GO_IMAGE
        },
        flags: go::flags(cgo.is_some()).join(" "),
        // The build arguments, expanded by the RUN shell.
        ldflags: go::ldflags(config, cgo.is_some(), "${VERSION}", "${BUILD_TIME}"),
        package: quote(&go::package(config)),
        cgo,
    })
}

fn rust_stage(config: &Config) -> Result<RustStage> {
    let bin = rust_binary(config)?;
    let mut cargo_args = String::new();
    if config.root.join("Cargo.lock").is_file() {
        cargo_args.push_str(" --locked");
    }
    cargo_args.push_str(&format!(" --bin {}", quote(&bin)));
    if !config.build.cargo_features.is_empty() {
        let features = config.build.cargo_features.join(",");
        cargo_args.push_str(&format!(" --features {}", quote(&features)));
    }
    Ok(RustStage {
        image: RUST_IMAGE,
        cargo_args,
        bin,
        version_env: config.build.version_env.clone(),
        build_time_env: config.build.build_time_env.clone(),
    })
}

/// The binary cargo builds: `[build] cargo_bin`, else the package's only `[[bin]]`, else the
/// package itself (src/main.rs). `shipit build` learns it from cargo; a Dockerfile must name it.
fn rust_binary(config: &Config) -> Result<String> {
    if let Some(bin) = &config.build.cargo_bin {
        return Ok(bin.clone());
    }
    let path = config.root.join("Cargo.toml");
    let manifest: toml::Table = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))
        .and_then(|text| {
            toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))
        })
        .tag(Category::Usage)?;
    let name_of = |table: &toml::Value| table.get("name")?.as_str().map(str::to_string);
    let bins: Vec<String> = manifest
        .get("bin")
        .and_then(|b| b.as_array())
        .map(|bins| bins.iter().filter_map(name_of).collect())
        .unwrap_or_default();
    match bins.as_slice() {
        [only] => Ok(only.clone()),
        [] => manifest
            .get("package")
            .and_then(name_of)
            .with_context(|| format!("{} has no [package] name", path.display()))
            .tag(Category::Usage),
        several => crate::fail!(
            Usage,
            "{} has several binaries ({}): set [build] cargo_bin in shipit.toml to the one to ship",
            path.display(),
            several.join(", ")
        ),
    }
}

/// Only the alpine image has something (busybox wget) to run a HEALTHCHECK with; its timings are
/// the liveness probe's, which watches for the same thing.
fn healthcheck(config: &Config) -> (Option<Healthcheck>, Vec<String>) {
    let Some((health, (_, port, path))) = config
        .health
        .as_ref()
        .and_then(|h| Some((h, h.endpoint()?)))
    else {
        return (
            None,
            vec!["No HEALTHCHECK: shipit.toml has no [health] url to probe.".into()],
        );
    };
    let runtime = config.container.runtime;
    if runtime != Runtime::Alpine {
        return (
            None,
            vec![
                format!(
                    "No HEALTHCHECK: {} has no shell, wget or curl to run one.",
                    runtime.name()
                ),
                format!(
                    "Kubernetes probes {} from outside (shipit generate k8s); runtime \"alpine\" can.",
                    path
                ),
            ],
        );
    }
    let url = format!("http://127.0.0.1:{port}{path}");
    let command = ["wget", "-q", "-O", "/dev/null", &url]
        .map(|word| serde_json::to_string(word).expect("a string serializes"))
        .join(", ");
    let liveness = config.k8s.liveness;
    let healthcheck = Healthcheck {
        interval: liveness.period_seconds,
        timeout: health.timeout.as_secs_f64().ceil().max(1.0) as u64,
        start_period: liveness.initial_delay_seconds,
        command: format!("[{command}]"),
    };
    (Some(healthcheck), Vec::new())
}

fn dockerignore_data(config: &Config) -> Result<DockerignoreData> {
    let mut ignore: Vec<String> = [".git", "dist"].map(String::from).to_vec();
    if config.build.builder.language() == crate::project::Language::Rust {
        ignore.push("target".into());
    }
    // Secrets must never reach the build context, let alone a layer.
    ignore.extend([".env".to_string(), ".env.*".to_string()]);
    // An env_file outside the project (an absolute path) is not in the build context at all.
    if let Some(env_file) = config
        .service
        .env_file
        .as_ref()
        .filter(|f| f.starts_with(&config.root))
    {
        let env_file = relative(config, env_file);
        check_plain_path(&env_file, "[service] env_file")?;
        let covered =
            env_file == ".env" || (env_file.starts_with(".env.") && !env_file.contains('/'));
        if !covered {
            ignore.push(env_file);
        }
    }
    ignore.extend(["Dockerfile".to_string(), ".dockerignore".to_string()]);
    Ok(DockerignoreData {
        app: config.app.name.to_string(),
        ignore,
        keep: config.service.files.clone(),
    })
}

/// COPY sources and .dockerignore lines are patterns, and COPY expands $VARIABLES: a path is
/// written as it is only when it holds none of those characters.
fn check_plain_path(path: &str, key: &str) -> Result<()> {
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/+@".contains(c));
    if plain {
        Ok(())
    } else {
        crate::fail!(
            Usage,
            "{key}: {path:?} has characters a Dockerfile or .dockerignore would read as a pattern \
             or a variable\n  help: rename it to letters, digits and . _ - / + @, or copy it in \
             a templates/dockerfile.hbs of your own"
        )
    }
}
