//! `shipit generate k8s`: Deployment, Service and ConfigMaps (and, when asked, a Secret with
//! placeholder values) for the service shipit.toml describes.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::container::{CONTAINER_DIR, CONTAINER_UID};
use super::output::{Output, relative};
use crate::config::{Config, Probe};
use crate::error::{Category, Tag};
use crate::template::Template;

const DEPLOYMENT: Template = Template {
    path: "templates/k8s/deployment.hbs",
    builtin: include_str!("../../templates/k8s/deployment.hbs"),
};
const SERVICE: Template = Template {
    path: "templates/k8s/service.hbs",
    builtin: include_str!("../../templates/k8s/service.hbs"),
};
const CONFIGMAP: Template = Template {
    path: "templates/k8s/configmap.hbs",
    builtin: include_str!("../../templates/k8s/configmap.hbs"),
};
const SECRET: Template = Template {
    path: "templates/k8s/secret.hbs",
    builtin: include_str!("../../templates/k8s/secret.hbs"),
};

/// Kubernetes refuses a ConfigMap larger than this.
const CONFIGMAP_LIMIT: usize = 1024 * 1024;

/// The object names, derived from the app name once so every manifest agrees.
struct Names {
    app: String,
    env: String,
    files: String,
    secret: String,
}

impl Names {
    fn new(app: &str) -> Names {
        Names {
            app: app.to_string(),
            env: format!("{app}-env"),
            files: format!("{app}-files"),
            secret: format!("{app}-secrets"),
        }
    }
}

/// Name, namespace and the label every object carries and every selector matches.
#[derive(Debug, Serialize)]
struct Metadata {
    name: String,
    namespace: Option<String>,
    app: String,
}

#[derive(Debug, Serialize)]
struct DeploymentData {
    app: String,
    metadata: Metadata,
    replicas: u32,
    image: String,
    /// Changes whenever the ConfigMaps do, so applying new config rolls the pods.
    config_sha256: String,
    uid: u32,
    termination_grace_period_seconds: u64,
    ports: Vec<Port>,
    env_config_map: String,
    secret: Option<SecretRef>,
    state_directory: String,
    requests: Quantities,
    limits: Quantities,
    probes: Option<Probes>,
    capabilities: Vec<String>,
    files_config_map: Option<String>,
    files: Vec<FileMount>,
}

#[derive(Debug, Serialize)]
struct Port {
    name: String,
    number: u16,
}

#[derive(Debug, Serialize)]
struct SecretRef {
    name: String,
    /// The local env file, shell-quoted for the `kubectl create secret` hint in a comment.
    env_file: String,
    /// The object name unquoted, for the same hint.
    plain_name: String,
}

#[derive(Debug, Serialize)]
struct Quantities {
    cpu: String,
    memory: String,
}

#[derive(Debug, Serialize)]
struct Probes {
    path: String,
    port: u16,
    timeout_seconds: u64,
    readiness: ProbeTimes,
    liveness: ProbeTimes,
}

#[derive(Debug, Serialize)]
struct ProbeTimes {
    initial_delay_seconds: u64,
    period_seconds: u64,
}

#[derive(Debug, Serialize)]
struct FileMount {
    key: String,
    mount_path: String,
}

#[derive(Debug, Serialize)]
struct ServiceData {
    app: String,
    metadata: Metadata,
    port: u16,
}

#[derive(Debug, Serialize)]
struct ConfigMapData {
    app: String,
    env: Metadata,
    env_data: Vec<Entry>,
    /// None when there are no config files.
    files: Option<Metadata>,
    files_data: Vec<Entry>,
}

#[derive(Debug, Serialize)]
struct Entry {
    key: String,
    value: String,
}

#[derive(Debug, Serialize)]
struct SecretData {
    app: String,
    metadata: Metadata,
    env_file: String,
    keys: Vec<String>,
}

/// Every file, in `kubectl apply` order: the ConfigMaps (and Secret) before the Deployment that
/// reads them.
pub(super) fn render(config: &Config, with_secret_template: bool) -> Result<Vec<Output>> {
    let Some(port) = config.service.port else {
        crate::fail!(
            Usage,
            "Kubernetes needs the port the service listens on\n  \
             help: set [service] port, or a [health] url with the port"
        );
    };
    let names = Names::new(&config.app.name);
    let files = config_files(config)?;
    let configmap =
        crate::template::render(config, &CONFIGMAP, &configmap_data(config, &names, &files))?;
    let mut outputs = vec![Output {
        name: "configmap.yaml".into(),
        text: configmap,
    }];
    if with_secret_template {
        outputs.push(Output {
            name: "secret.yaml".into(),
            text: crate::template::render(config, &SECRET, &secret_data(config, &names)?)?,
        });
    }
    let deployment = deployment_data(config, &names, port, &files, &outputs[0].text);
    outputs.push(Output {
        name: "deployment.yaml".into(),
        text: crate::template::render(config, &DEPLOYMENT, &deployment)?,
    });
    let service = ServiceData {
        app: names.app.clone(),
        metadata: metadata(config, &names.app, &names.app),
        port: config.k8s.service_port,
    };
    outputs.push(Output {
        name: "service.yaml".into(),
        text: crate::template::render(config, &SERVICE, &service)?,
    });
    Ok(outputs)
}

/// A YAML double-quoted scalar. JSON's string escapes are a subset of YAML's, so a user's value
/// can never end the string, start a comment or become a number or a boolean.
fn yaml(value: &str) -> String {
    serde_json::to_string(value).expect("a string serializes")
}

fn metadata(config: &Config, name: &str, app: &str) -> Metadata {
    Metadata {
        name: yaml(name),
        namespace: config.k8s.namespace.as_deref().map(yaml),
        app: yaml(app),
    }
}

/// A config file shipped in the files ConfigMap: its key there, and its text.
struct ConfigFile {
    path: String,
    key: String,
    text: String,
}

fn config_files(config: &Config) -> Result<Vec<ConfigFile>> {
    let mut files: Vec<ConfigFile> = Vec::new();
    for path in &config.service.files {
        // ConfigMap keys allow only these characters, so a path's '/' becomes '_'.
        let key: String = path
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-._".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if let Some(other) = files.iter().find(|f| f.key == key) {
            crate::fail!(
                Usage,
                "[service] files {:?} and {path:?} would both be the ConfigMap key {key:?}\n  \
                 help: rename one of them",
                other.path
            );
        }
        let full = config.root.join(path);
        let bytes = std::fs::read(&full)
            .with_context(|| format!("cannot read {}", full.display()))
            .tag(Category::Usage)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| {
                anyhow::anyhow!(
                    "{path:?} is not UTF-8 text, which is all a ConfigMap's data can hold"
                )
            })
            .tag(Category::Usage)?;
        files.push(ConfigFile {
            path: path.clone(),
            key,
            text,
        });
    }
    let size: usize = files.iter().map(|f| f.key.len() + f.text.len()).sum();
    if size > CONFIGMAP_LIMIT {
        crate::fail!(
            Usage,
            "[service] files add up to {size} bytes; a ConfigMap holds at most {CONFIGMAP_LIMIT}"
        );
    }
    Ok(files)
}

fn configmap_data(config: &Config, names: &Names, files: &[ConfigFile]) -> ConfigMapData {
    let entry = |key: &str, value: &str| Entry {
        key: yaml(key),
        value: yaml(value),
    };
    ConfigMapData {
        app: names.app.clone(),
        env: metadata(config, &names.env, &names.app),
        env_data: config
            .service
            .env
            .iter()
            .map(|(k, v)| entry(k, v))
            .collect(),
        files: (!files.is_empty()).then(|| metadata(config, &names.files, &names.app)),
        files_data: files.iter().map(|f| entry(&f.key, &f.text)).collect(),
    }
}

fn deployment_data(
    config: &Config,
    names: &Names,
    port: u16,
    files: &[ConfigFile],
    configmap: &str,
) -> DeploymentData {
    let k8s = &config.k8s;
    let mut ports = vec![Port {
        name: yaml("http"),
        number: port,
    }];
    // Kubernetes probes from outside, so only a URL check becomes its probes.
    let probes = config.health.as_ref().and_then(|health| {
        let (_, health_port, path) = health.endpoint()?;
        if health_port != port {
            ports.push(Port {
                name: yaml("health"),
                number: health_port,
            });
        }
        Some(Probes {
            path: yaml(&path),
            port: health_port,
            timeout_seconds: health.timeout.as_secs_f64().ceil().max(1.0) as u64,
            readiness: probe_times(k8s.readiness),
            liveness: probe_times(k8s.liveness),
        })
    });
    DeploymentData {
        app: names.app.clone(),
        metadata: metadata(config, &names.app, &names.app),
        replicas: k8s.replicas,
        image: yaml(&k8s.image),
        config_sha256: yaml(&hex::encode(Sha256::digest(configmap))),
        uid: CONTAINER_UID,
        termination_grace_period_seconds: config.service.timeout_stop_sec,
        ports,
        env_config_map: yaml(&names.env),
        secret: config.service.env_file.as_ref().map(|file| SecretRef {
            name: yaml(&names.secret),
            env_file: crate::shell::quote(&relative(config, file)),
            plain_name: names.secret.clone(),
        }),
        state_directory: yaml(&crate::paths::state_dir(&names.app)),
        requests: Quantities {
            cpu: yaml(&k8s.requests.cpu),
            memory: yaml(&k8s.requests.memory),
        },
        limits: Quantities {
            cpu: yaml(&k8s.limits.cpu),
            memory: yaml(&k8s.limits.memory),
        },
        probes,
        // Kubernetes names capabilities without systemd's CAP_ prefix.
        capabilities: config
            .service
            .capabilities
            .iter()
            .map(|c| yaml(c.trim_start_matches("CAP_")))
            .collect(),
        files_config_map: (!files.is_empty()).then(|| yaml(&names.files)),
        files: files
            .iter()
            .map(|f| FileMount {
                key: yaml(&f.key),
                mount_path: yaml(&format!("{CONTAINER_DIR}/{}", f.path)),
            })
            .collect(),
    }
}

fn probe_times(probe: Probe) -> ProbeTimes {
    ProbeTimes {
        initial_delay_seconds: probe.initial_delay_seconds,
        period_seconds: probe.period_seconds,
    }
}

/// The Secret's keys come from the local env file; its values never leave this function.
fn secret_data(config: &Config, names: &Names) -> Result<SecretData> {
    let Some(path) = &config.service.env_file else {
        crate::fail!(
            Usage,
            "--with-secret-template takes its keys from [service] env_file, which shipit.toml \
             does not set"
        );
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the env file {}", path.display()))
        .tag(Category::Usage)?;
    let mut keys = BTreeSet::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split_once('=').map(|(k, _)| k.trim());
        match key {
            Some(key) if crate::validate::validate_env_key(key).is_ok() => {
                keys.insert(key.to_string());
            }
            _ => crate::fail!(
                Usage,
                "{}:{}: expected KEY=VALUE (the value is not shown because it may be a secret)",
                path.display(),
                index + 1
            ),
        }
    }
    Ok(SecretData {
        app: names.app.clone(),
        metadata: metadata(config, &names.secret, &names.app),
        env_file: relative(config, path),
        keys: keys.iter().map(|k| yaml(k)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_strings_stay_strings() {
        assert_eq!(yaml("true"), "\"true\"");
        assert_eq!(yaml("a: b # c"), "\"a: b # c\"");
        assert_eq!(yaml("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
        assert_eq!(yaml("\u{1}"), "\"\\u0001\"");
    }
}
