//! `shipit generate`: each output is read back with a real parser for its format — the
//! Kubernetes API types, a Dockerfile parser, an INI parser — not matched as text.

use std::collections::BTreeMap;
use std::path::Path;

use dockerfile_parser::{Dockerfile, Instruction};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::support::*;

fn generate(project: &Path, args: &[&str]) -> Run {
    let mut all = vec!["-C", project.to_str().unwrap(), "generate"];
    all.extend_from_slice(args);
    shipit(&all).run()
}

/// A copy of an example with `config` as its shipit.toml.
fn project_with(example_name: &str, config: &str) -> tempfile::TempDir {
    let project = project_copy(example_name);
    std::fs::write(project.path().join("shipit.toml"), config).unwrap();
    project
}

// --- Snapshots of the default outputs -----------------------------------------------------------

fn default_outputs_for_hello_go() {
    let project = example("hello-go");
    for (name, args) in [
        ("hello_go_dockerfile", &["dockerfile"][..]),
        ("hello_go_dockerignore", &["dockerfile", "--dockerignore"]),
        ("hello_go_k8s", &["k8s"]),
        ("hello_go_supervisor", &["supervisor"]),
    ] {
        insta::assert_snapshot!(name, generate(&project, args).success().stdout);
    }
}

/// A container or supervisord has no systemd to hold a socket: `[service] listen` changes none
/// of the outputs, and the service binds its own port there as before.
fn listen_changes_nothing_beyond_systemd() {
    let plain = example("hello-go");
    let with_listen = project_with_listen("hello-go", r#"["8080"]"#);
    for args in [
        &["dockerfile"][..],
        &["dockerfile", "--dockerignore"],
        &["k8s"],
        &["supervisor"],
    ] {
        let output = generate(with_listen.path(), args).success().stdout;
        assert_eq!(output, generate(&plain, args).success().stdout, "{args:?}");
        assert!(
            !output.to_lowercase().contains("socket"),
            "{args:?}:\n{output}"
        );
    }
}

fn default_dockerfile_for_hello_rust() {
    let run = generate(&example("hello-rust"), &["dockerfile"]).success();
    insta::assert_snapshot!(run.stdout);
}

// --- Kubernetes -----------------------------------------------------------------------------------

#[derive(Default)]
struct Manifests {
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    config_maps: Vec<ConfigMap>,
    secrets: Vec<Secret>,
}

impl Manifests {
    fn config_map(&self, name: &str) -> &ConfigMap {
        self.config_maps
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no ConfigMap {name}"))
    }
}

/// Splits a YAML stream into documents and reads each into its Kubernetes API type.
fn manifests(stream: &str) -> Manifests {
    let mut manifests = Manifests::default();
    for document in serde_yaml_ng::Deserializer::from_str(stream) {
        let value = serde_yaml_ng::Value::deserialize(document).expect("valid YAML");
        let kind = value["kind"].as_str().expect("a kind").to_string();
        match kind.as_str() {
            "Deployment" => manifests.deployments.push(api_object(value)),
            "Service" => manifests.services.push(api_object(value)),
            "ConfigMap" => manifests.config_maps.push(api_object(value)),
            "Secret" => manifests.secrets.push(api_object(value)),
            other => panic!("unexpected kind {other}"),
        }
    }
    manifests
}

/// k8s-openapi's types skip fields they do not know; serde_ignored reports each one, so a
/// misspelt or misplaced field fails here instead of being dropped by the API server.
fn api_object<T: DeserializeOwned>(value: serde_yaml_ng::Value) -> T {
    let mut unknown = Vec::new();
    let object = serde_ignored::deserialize(value, |path| unknown.push(path.to_string()))
        .expect("a valid Kubernetes object");
    assert!(
        unknown.is_empty(),
        "fields the API does not know: {unknown:?}"
    );
    object
}

fn only_container(deployment: &Deployment) -> &Container {
    let containers = &deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers;
    assert_eq!(containers.len(), 1);
    &containers[0]
}

/// What holds for every generated set of manifests: labels and selectors agree, every reference
/// points at an object that is there, the container is locked down.
fn check_consistent(m: &Manifests) {
    assert_eq!((m.deployments.len(), m.services.len()), (1, 1));
    let deployment = &m.deployments[0];
    let spec = deployment.spec.as_ref().unwrap();
    let selector = spec.selector.match_labels.clone().unwrap();
    assert!(!selector.is_empty());
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for (key, value) in &selector {
        assert_eq!(pod_labels.get(key), Some(value), "pod label {key}");
    }
    let service = &m.services[0];
    let service_spec = service.spec.as_ref().unwrap();
    assert_eq!(service_spec.selector.as_ref(), Some(&selector));

    let container = only_container(deployment);
    let port_names: Vec<&str> = container
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .filter_map(|p| p.name.as_deref())
        .collect();
    for port in service_spec.ports.as_ref().unwrap() {
        match port.target_port.as_ref().unwrap() {
            IntOrString::String(name) => assert!(port_names.contains(&name.as_str()), "{name}"),
            IntOrString::Int(n) => panic!("targetPort {n} should name the container port"),
        }
    }
    for source in container.env_from.as_ref().unwrap() {
        if let Some(config_map) = &source.config_map_ref {
            m.config_map(&config_map.name);
        }
    }
    let pod = spec.template.spec.as_ref().unwrap();
    for volume in pod.volumes.as_ref().unwrap() {
        if let Some(config_map) = &volume.config_map {
            m.config_map(&config_map.name);
        }
    }
    let pod_security = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(65532));
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        security.capabilities.as_ref().unwrap().drop,
        Some(vec!["ALL".to_string()])
    );
    for object in [&deployment.metadata, &service.metadata] {
        assert_eq!(object.labels.as_ref(), Some(&selector));
    }
}

fn k8s_manifests_are_valid_api_objects_for_hello_go() {
    let stream = generate(&example("hello-go"), &["k8s"]).success().stdout;
    let m = manifests(&stream);
    check_consistent(&m);
    assert!(m.secrets.is_empty(), "a Secret only when asked for");

    let container = only_container(&m.deployments[0]);
    for probe in [&container.readiness_probe, &container.liveness_probe] {
        let http = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(http.path.as_deref(), Some("/health"));
        assert_eq!(http.port, IntOrString::Int(8080));
    }
    let readiness = container.readiness_probe.as_ref().unwrap();
    let liveness = container.liveness_probe.as_ref().unwrap();
    assert_eq!(
        (readiness.initial_delay_seconds, readiness.period_seconds),
        (Some(5), Some(10))
    );
    assert_eq!(
        (liveness.initial_delay_seconds, liveness.period_seconds),
        (Some(15), Some(20))
    );
    let resources = container.resources.as_ref().unwrap();
    let quantities = |q: &Option<BTreeMap<String, Quantity>>| {
        let q = q.as_ref().unwrap();
        (q["cpu"].0.clone(), q["memory"].0.clone())
    };
    assert_eq!(
        quantities(&resources.requests),
        ("100m".into(), "128Mi".into())
    );
    assert_eq!(
        quantities(&resources.limits),
        ("500m".into(), "512Mi".into())
    );
    assert_eq!(m.deployments[0].spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(container.image.as_deref(), Some("hello-go:latest"));

    let service_port = &m.services[0].spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(service_port.port, 80);
    let env = m.config_map("hello-go-env").data.clone().unwrap();
    assert_eq!(env, BTreeMap::from([("LOG_LEVEL".into(), "info".into())]));
    let files = m.config_map("hello-go-files").data.clone().unwrap();
    assert_eq!(
        files["config.yaml"],
        std::fs::read_to_string(example("hello-go").join("config.yaml")).unwrap()
    );
    let mount = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.mount_path == "/app/config.yaml")
        .expect("config.yaml mounted into the working directory");
    assert_eq!(mount.sub_path.as_deref(), Some("config.yaml"));
}

fn every_k8s_setting_and_awkward_value_survives_the_round_trip() {
    let project = project_with(
        "hello-go",
        r#"
[app]
name = "shop"

[service]
exec_args = ["--port", "9000"]
port = 9000
files = ["config.yaml", "conf/extra.yaml"]
env_file = ".env.production"
capabilities = ["CAP_NET_BIND_SERVICE"]
timeout_stop_sec = 45

[service.env]
GREETING = "hi: \"you\" # not a comment"
ENABLED = "true"
COUNT = "0755"
EMPTY = ""

[health]
url = "http://127.0.0.1:9001/ready?full=1"
timeout = "1500ms"

[k8s]
image = "registry.example.com/team/shop@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
namespace = "shop-prod"
replicas = 5
service_port = 8443
readiness = { initial_delay = "2s", period = "4s" }
liveness = { initial_delay = "1m", period = "30s" }

[k8s.resources]
requests = { cpu = "250m", memory = "1Gi" }
limits = { cpu = "2", memory = "1Gi" }
"#,
    );
    std::fs::create_dir(project.path().join("conf")).unwrap();
    let extra = "key: 'it''s'\nlist: [a, b]\n\ttabbed: \"\\u263a\" ☺\n";
    std::fs::write(project.path().join("conf/extra.yaml"), extra).unwrap();
    std::fs::write(
        project.path().join(".env.production"),
        "# secrets\nDB_PASSWORD=hunter2\n\nAPI_TOKEN = s3cr3t-value\n",
    )
    .unwrap();
    let stream = generate(project.path(), &["k8s", "--with-secret-template"])
        .success()
        .stdout;
    for secret in ["hunter2", "s3cr3t-value"] {
        assert!(!stream.contains(secret), "a secret value leaked:\n{stream}");
    }
    let m = manifests(&stream);
    check_consistent(&m);

    let namespaces: Vec<Option<&str>> = m
        .deployments
        .iter()
        .map(|d| &d.metadata)
        .chain(m.services.iter().map(|s| &s.metadata))
        .chain(m.config_maps.iter().map(|c| &c.metadata))
        .chain(m.secrets.iter().map(|s| &s.metadata))
        .map(|meta| meta.namespace.as_deref())
        .collect();
    assert_eq!(namespaces.len(), 5);
    assert!(
        namespaces.iter().all(|n| *n == Some("shop-prod")),
        "{namespaces:?}"
    );

    let deployment = &m.deployments[0];
    let spec = deployment.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(5));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(45));
    let container = only_container(deployment);
    assert!(
        container
            .image
            .as_deref()
            .unwrap()
            .ends_with("@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    );
    let ports: Vec<(Option<&str>, i32)> = container
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.name.as_deref(), p.container_port))
        .collect();
    assert_eq!(ports, [(Some("http"), 9000), (Some("health"), 9001)]);
    let readiness = container.readiness_probe.as_ref().unwrap();
    let http = readiness.http_get.as_ref().unwrap();
    assert_eq!(http.path.as_deref(), Some("/ready?full=1"));
    assert_eq!(http.port, IntOrString::Int(9001));
    assert_eq!(
        (
            readiness.initial_delay_seconds,
            readiness.period_seconds,
            readiness.timeout_seconds
        ),
        (Some(2), Some(4), Some(2))
    );
    let liveness = container.liveness_probe.as_ref().unwrap();
    assert_eq!(
        (liveness.initial_delay_seconds, liveness.period_seconds),
        (Some(60), Some(30))
    );
    let resources = container.resources.as_ref().unwrap();
    assert_eq!(
        resources.limits.as_ref().unwrap()["cpu"],
        Quantity("2".into())
    );
    assert_eq!(
        resources.requests.as_ref().unwrap()["memory"],
        Quantity("1Gi".into())
    );
    let capabilities = container
        .security_context
        .as_ref()
        .unwrap()
        .capabilities
        .as_ref();
    assert_eq!(
        capabilities.unwrap().add,
        Some(vec!["NET_BIND_SERVICE".to_string()])
    );
    let service_spec = m.services[0].spec.as_ref().unwrap();
    assert_eq!(service_spec.ports.as_ref().unwrap()[0].port, 8443);

    let env = m.config_map("shop-env").data.clone().unwrap();
    assert_eq!(env["GREETING"], "hi: \"you\" # not a comment");
    assert_eq!(env["ENABLED"], "true");
    assert_eq!(env["COUNT"], "0755");
    assert_eq!(env["EMPTY"], "");
    let files = m.config_map("shop-files").data.clone().unwrap();
    assert_eq!(files["conf_extra.yaml"], extra);
    let mount = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.mount_path == "/app/conf/extra.yaml")
        .unwrap();
    assert_eq!(mount.sub_path.as_deref(), Some("conf_extra.yaml"));

    let secret_refs: Vec<&str> = container
        .env_from
        .as_ref()
        .unwrap()
        .iter()
        .filter_map(|s| s.secret_ref.as_ref().map(|r| r.name.as_str()))
        .collect();
    assert_eq!(secret_refs, ["shop-secrets"]);
    assert_eq!(m.secrets.len(), 1);
    assert_eq!(m.secrets[0].metadata.name.as_deref(), Some("shop-secrets"));
    let placeholders = m.secrets[0].string_data.clone().unwrap();
    assert_eq!(
        placeholders,
        BTreeMap::from([
            ("API_TOKEN".into(), "REPLACE_ME".into()),
            ("DB_PASSWORD".into(), "REPLACE_ME".into()),
        ])
    );
}

fn k8s_files_go_into_a_directory_one_per_object() {
    let project = project_with(
        "hello-go",
        "[app]\nname = \"hello-go\"\n\n[service]\nfiles = [\"config.yaml\"]\nenv_file = \".env\"\n\n\
         [health]\nurl = \"http://127.0.0.1:8080/health\"\n",
    );
    std::fs::write(project.path().join(".env"), "TOKEN=abc\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("k8s");
    let run = generate(
        project.path(),
        &["k8s", "--with-secret-template", "-o", dir.to_str().unwrap()],
    )
    .success();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "configmap.yaml",
            "deployment.yaml",
            "secret.yaml",
            "service.yaml"
        ]
    );
    let all: String = names
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(n)).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    check_consistent(&manifests(&all));
    assert!(!all.contains("abc"));
}

fn a_secret_template_needs_an_env_file_and_kubernetes_needs_a_port() {
    generate(&example("hello-go"), &["k8s", "--with-secret-template"])
        .failure(2)
        .stderr_has("[service] env_file");
    let project = project_with("hello-go", "[app]\nname = \"worker\"\n");
    generate(project.path(), &["k8s"])
        .failure(2)
        .stderr_has("set [service] port");
    // A bad env file line is refused without showing the line.
    let project = project_with("hello-go", "[service]\nenv_file = \".env\"\nport = 8080\n");
    std::fs::write(project.path().join(".env"), "OK=1\nnot a pair sekrit\n").unwrap();
    let run = generate(project.path(), &["k8s", "--with-secret-template"]).failure(2);
    assert!(
        run.stderr.contains(".env:2: expected KEY=VALUE"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("sekrit"), "{}", run.stderr);
}

fn bad_k8s_values_point_at_their_place() {
    let cases = [
        (
            "[k8s]\nreplicas = 0\n",
            "shipit.toml:2:12",
            "replicas must be between 1 and 1000",
        ),
        (
            "[k8s]\nreplicas = -1\n",
            "shipit.toml:2:12",
            "invalid value",
        ),
        (
            "[k8s]\nnamespace = \"Prod\"\n",
            "shipit.toml:2:13",
            "invalid namespace \"Prod\"",
        ),
        (
            "[k8s]\nimage = \"My App\"\n",
            "shipit.toml:2:9",
            "invalid image \"My App\"",
        ),
        (
            "[k8s]\nservice_port = 0\n",
            "shipit.toml:2:16",
            "a port must be 1-65535",
        ),
        (
            "[k8s]\nimages = \"x\"\n",
            "shipit.toml:2:1",
            "unknown field `images`",
        ),
        (
            "[k8s.resources]\nlimits = { memory = \"1GB\" }\n",
            "shipit.toml:2:21",
            "\"1GB\" is not a Kubernetes quantity like 128Mi or 1Gi",
        ),
        (
            "[k8s.resources]\nrequests = { memory = \"128m\" }\n",
            "shipit.toml:2:23",
            "a fraction of a byte",
        ),
        (
            "[k8s.resources]\nrequests = { cpu = \"2\" }\n",
            "shipit.toml:2:20",
            "the cpu request 2 is more than its limit 500m",
        ),
        (
            "[k8s.liveness]\nperiod = \"1.5s\"\n",
            "shipit.toml:2:10",
            "whole seconds",
        ),
        (
            "[k8s.readiness]\nperiod = \"0s\"\n",
            "shipit.toml:2:10",
            "must be at least 1s",
        ),
        (
            "[k8s.readiness]\nperiod = \"soon\"\n",
            "shipit.toml:2:10",
            "not a duration",
        ),
        (
            "[container]\nruntime = \"ubuntu\"\n",
            "shipit.toml:2:11",
            "unknown runtime \"ubuntu\": use one of \"scratch\", \"distroless-static\", \"alpine\"",
        ),
        (
            "[service]\nport = 0\n",
            "shipit.toml:2:8",
            "a port must be 1-65535",
        ),
    ];
    for (config, location, reason) in cases {
        let project = project_with("hello-go", config);
        let run = generate(project.path(), &["k8s"]).failure(2);
        assert!(
            run.stderr.contains(&format!("{location}: {reason}"))
                || (run.stderr.contains(location) && run.stderr.contains(reason)),
            "config {config:?}: expected {location} and {reason:?} in\n{}",
            run.stderr
        );
    }
}

// --- Dockerfile ------------------------------------------------------------------------------------

/// A Dockerfile's stages, each as (FROM image, its instructions as "NAME arguments" lines).
fn stages(text: &str) -> Vec<(String, Vec<String>)> {
    let dockerfile = Dockerfile::parse(text).expect("a valid Dockerfile");
    dockerfile
        .iter_stages()
        .map(|stage| {
            let mut from = String::new();
            let lines = stage
                .instructions
                .iter()
                .filter_map(|instruction| match instruction {
                    Instruction::From(f) => {
                        from = f.image.content.clone();
                        None
                    }
                    Instruction::Run(run) => Some(format!(
                        "RUN {}",
                        words(&run.expr.as_shell().expect("shell-form RUN").to_string())
                    )),
                    Instruction::Copy(copy) => {
                        let flags = copy
                            .flags
                            .iter()
                            .map(|f| format!("--{}={} ", f.name.content, f.value.content));
                        let paths = copy.sources.iter().map(|s| s.content.clone());
                        Some(format!(
                            "COPY {}{} {}",
                            flags.collect::<String>(),
                            paths.collect::<Vec<_>>().join(" "),
                            copy.destination.content
                        ))
                    }
                    Instruction::Entrypoint(e) => Some(format!(
                        "ENTRYPOINT {:?}",
                        e.expr.as_exec().expect("exec-form ENTRYPOINT").as_str_vec()
                    )),
                    Instruction::Arg(a) => Some(format!("ARG {}", a.name.content)),
                    Instruction::Misc(m) => Some(format!(
                        "{} {}",
                        m.instruction.content.to_uppercase(),
                        words(&m.arguments.to_string())
                    )),
                    other => panic!("unexpected instruction {other:?}"),
                })
                .collect();
            (from, lines)
        })
        .collect()
}

/// Continued lines joined as Docker reads them, with their indentation collapsed.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn has(lines: &[String], wanted: &str) -> bool {
    lines.iter().any(|l| l == wanted)
}

fn dockerfile_stages_for_each_runtime() {
    for (runtime, image) in [
        (
            "distroless-static",
            "gcr.io/distroless/static-debian12:nonroot",
        ),
        ("scratch", "scratch"),
        ("alpine", "alpine:3"),
    ] {
        let project = project_with(
            "hello-go",
            &format!(
                "[app]\nname = \"hello-go\"\n\n[service]\nexec_args = [\"--port\", \"8080\", \"--greeting\", \"it's $HOME\"]\n\
                 files = [\"config.yaml\"]\n\n[health]\nurl = \"http://127.0.0.1:8080/health\"\n\n\
                 [container]\nruntime = \"{runtime}\"\n"
            ),
        );
        let text = generate(project.path(), &["dockerfile"]).success().stdout;
        let stages = stages(&text);
        assert_eq!(stages.len(), 2, "{text}");

        let (builder_image, builder) = &stages[0];
        assert_eq!(builder_image, "golang:1");
        let build = builder
            .iter()
            .find(|l| l.contains("go build"))
            .expect("a go build");
        for part in [
            "CGO_ENABLED=0 go build -trimpath -buildvcs=false",
            "-ldflags \"-s -w -buildid= -X main.version=${VERSION} -X main.buildTime=${BUILD_TIME}\"",
            "-o /out/hello-go .",
        ] {
            assert!(build.contains(part), "{part:?} missing from {build}");
        }
        assert!(
            has(builder, "ARG VERSION") && has(builder, "ARG BUILD_TIME"),
            "{builder:?}"
        );

        let (runtime_image, runtime_stage) = &stages[1];
        assert_eq!(runtime_image, image);
        for line in [
            "COPY --from=builder /out/hello-go /app/hello-go",
            "COPY config.yaml /app/config.yaml",
            "USER 65532:65532",
            "EXPOSE 8080",
            "WORKDIR /app",
        ] {
            assert!(
                has(runtime_stage, line),
                "{runtime}: no {line:?} in {runtime_stage:#?}"
            );
        }
        let entrypoint = runtime_stage.last().unwrap();
        assert_eq!(
            entrypoint,
            &format!(
                "ENTRYPOINT {:?}",
                [
                    "/app/hello-go",
                    "--port",
                    "8080",
                    "--greeting",
                    "it's $HOME"
                ]
            )
        );
        let healthcheck = runtime_stage.iter().find(|l| l.starts_with("HEALTHCHECK"));
        if runtime == "alpine" {
            let healthcheck = healthcheck.expect("alpine can run a HEALTHCHECK");
            assert!(
                healthcheck.ends_with(
                    r#"CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]"#
                ),
                "{healthcheck}"
            );
            assert!(has(runtime_stage, "RUN apk add --no-cache ca-certificates"));
        } else {
            assert_eq!(healthcheck, None, "{runtime} cannot run one");
            assert!(
                text.contains(&format!("# No HEALTHCHECK: {runtime} has no shell")),
                "{text}"
            );
        }
        assert_eq!(
            runtime == "scratch",
            runtime_stage
                .iter()
                .any(|l| l.contains("ca-certificates.crt")),
            "{runtime}: CA certificates copied only into scratch"
        );
    }
}

/// No container engine here, so the Go builder stage's RUN lines run on this machine instead, in
/// a copy of the project (the build context) with the image's /out mapped to a directory; the
/// result must be the static, stamped binary `shipit build` makes. Returns its /health.
fn run_go_builder_stage(project: &Path, stage: &[String], cc: Option<&str>) -> serde_json::Value {
    let out = tempfile::tempdir().unwrap();
    let out_dir = format!("{}/", out.path().display());
    // Alpine's package manager is the one step that cannot run here; musl-gcc stands in for the
    // gcc it installs.
    let runs = stage
        .iter()
        .filter_map(|l| l.strip_prefix("RUN "))
        .filter(|run| !run.starts_with("apk "));
    for run in runs {
        let mut command = std::process::Command::new("sh");
        command
            .args(["-c", &run.replace("/out/", &out_dir)])
            .current_dir(project)
            .env("VERSION", "3.1.4")
            .env("BUILD_TIME", EPOCH_RFC3339);
        if let Some(cc) = cc {
            command.env("CC", cc);
        }
        assert!(command.status().unwrap().success(), "RUN {run}");
    }
    let binary = std::fs::read(out.path().join("app")).expect("the builder stage leaves /out/app");
    assert_static_elf(&binary, goblin::elf::header::EM_X86_64);
    let health = run_for_health(&binary, goblin::elf::header::EM_X86_64);
    assert_eq!(
        (health["version"].as_str(), health["buildTime"].as_str()),
        (Some("3.1.4"), Some(EPOCH_RFC3339))
    );
    health
}

fn dockerfile_go_builder_stage_builds_a_stamped_static_binary() {
    let project = project_with("hello-go", "[app]\nname = \"app\"\nversion = \"1\"\n");
    let text = generate(project.path(), &["dockerfile"]).success().stdout;
    let stages = stages(&text);
    assert_eq!(stages[0].0, "golang:1");
    assert!(text.contains("CGO_ENABLED=0 go build"), "{text}");
    run_go_builder_stage(project.path(), &stages[0].1, None);
}

/// cgo: the builder is Alpine with its gcc, and links statically as `shipit build` does.
fn dockerfile_for_cgo_builds_static_against_musl() {
    let project = project_with("hello-cgo", "[app]\nname = \"app\"\nversion = \"1\"\n");
    let text = generate(project.path(), &["dockerfile"]).success().stdout;
    let stages = stages(&text);
    let (image, builder) = &stages[0];
    assert_eq!(image, "golang:1-alpine");
    assert!(has(builder, "RUN apk add --no-cache build-base"), "{text}");
    assert!(
        text.contains("# cgo: example.com/hello-cgo (native.go) has cgo files."),
        "{text}"
    );
    let build = builder.iter().find(|l| l.contains("go build")).unwrap();
    assert!(
        build.contains("CGO_ENABLED=1 go build -trimpath -buildvcs=false -tags netgo,osusergo")
            && build.contains("-linkmode external -extldflags '-static -s'"),
        "{build}"
    );
    let health = run_go_builder_stage(project.path(), builder, Some("musl-gcc"));
    assert_eq!(health["checks"]["native"], "UP (C on x86_64)");
}

fn dockerfile_for_rust_builds_on_musl_with_the_cargo_settings() {
    let project = project_with(
        "hello-rust",
        "[app]\nname = \"hello-rust\"\nversion = \"2.0.1\"\n\n[build]\ncargo_features = [\"a\", \"b\"]\n\
         version_env = \"APP_VERSION\"\n",
    );
    let text = generate(project.path(), &["dockerfile"]).success().stdout;
    let stages = stages(&text);
    let (image, builder) = &stages[0];
    assert_eq!(image, "rust:1-alpine");
    let build = builder.iter().find(|l| l.contains("cargo build")).unwrap();
    assert!(
        build.contains(
            "APP_VERSION=\"${VERSION}\" SHIPIT_BUILD_TIME=\"${BUILD_TIME}\" cargo build \
             --release --locked --bin hello-rust --features a,b"
        ),
        "{build}"
    );
    assert!(text.contains("ARG VERSION=2.0.1"), "{text}");
    // No [health]: nothing to probe, and nothing to EXPOSE.
    assert!(text.contains("# No HEALTHCHECK: shipit.toml has no [health] url"));
    assert!(!stages[1].1.iter().any(|l| l.starts_with("EXPOSE")));
    assert!(
        !stages[1]
            .1
            .iter()
            .any(|l| l.starts_with("COPY config.yaml"))
    );
}

fn dockerfile_with_o_writes_the_dockerignore_too() {
    let project = project_with(
        "hello-rust",
        "[service]\nfiles = [\"config.yaml\"]\nenv_file = \"secrets/prod.env\"\n",
    );
    let out = tempfile::tempdir().unwrap();
    let run = generate(
        project.path(),
        &["dockerfile", "-o", out.path().to_str().unwrap()],
    )
    .success();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("Wrote"), "{}", run.stderr);
    let dockerfile = std::fs::read_to_string(out.path().join("Dockerfile")).unwrap();
    assert_eq!(stages(&dockerfile).len(), 2);
    let ignore = std::fs::read_to_string(out.path().join(".dockerignore")).unwrap();
    let lines: Vec<&str> = ignore.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            ".git",
            "dist",
            "target",
            ".env",
            ".env.*",
            "secrets/prod.env",
            "Dockerfile",
            ".dockerignore",
            "!config.yaml"
        ]
    );
    generate(project.path(), &["dockerfile", "--dockerignore", "-o", "x"]).failure(2);
}

fn dockerfile_refuses_paths_it_cannot_write_plainly() {
    let project = project_with("hello-go", "[service]\nfiles = [\"my config.yaml\"]\n");
    std::fs::write(project.path().join("my config.yaml"), "x: 1\n").unwrap();
    generate(project.path(), &["dockerfile"])
        .failure(2)
        .stderr_has("\"my config.yaml\" has characters");
}

// --- supervisord -----------------------------------------------------------------------------------

/// Parses as supervisord's configparser does: no quote or escape handling in values.
fn ini(text: &str) -> ini::Ini {
    let options = ini::ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        ..Default::default()
    };
    ini::Ini::load_from_str_opt(text, options).expect("valid INI")
}

fn supervisor_program_has_the_units_settings() {
    let project = project_with(
        "hello-go",
        r#"
[app]
name = "hello-go"

[service]
user = "web"
exec_args = ["--port", "8080", "--greeting", "it's 100% $HOME"]
restart = "always"
limit_nofile = 4096
timeout_stop_sec = 20
start_limit_interval_sec = 30
start_limit_burst = 4
env_file = ".env"

[service.env]
GREETING = "a,b c"
QUOTED = "say \"hi\" now"
"#,
    );
    let text = generate(project.path(), &["supervisor"]).success().stdout;
    let ini = ini(&text);
    assert_eq!(ini.get_from(Some("supervisord"), "minfds"), Some("4096"));
    let program = ini
        .section(Some("program:hello-go"))
        .expect("[program:hello-go]");
    let expected = [
        (
            "command",
            "/opt/hello-go/current/hello-go --port 8080 --greeting 'it'\\''s 100%% $HOME'",
        ),
        ("directory", "/opt/hello-go/current"),
        ("user", "web"),
        ("environment", "GREETING=\"a,b c\",QUOTED='say \"hi\" now'"),
        ("autostart", "true"),
        ("autorestart", "true"),
        ("exitcodes", "0"),
        ("startsecs", "8"),
        ("startretries", "4"),
        ("stopsignal", "TERM"),
        ("stopwaitsecs", "20"),
        ("stopasgroup", "true"),
    ];
    for (key, value) in expected {
        assert_eq!(program.get(key), Some(value), "{key} in\n{text}");
    }
    assert!(
        text.contains("/etc/hello-go/hello-go.env"),
        "the env file is pointed at"
    );
}

fn supervisor_refuses_values_it_would_cut_short() {
    let project = project_with(
        "hello-go",
        "[service]\nexec_args = [\"--greeting\", \"hi ;there\"]\n",
    );
    generate(project.path(), &["supervisor"])
        .failure(2)
        .stderr_has("as the start of a comment");
    let project = project_with("hello-go", "[service.env]\nX = \"it's \\\"both\\\"\"\n");
    generate(project.path(), &["supervisor"])
        .failure(2)
        .stderr_has("both ' and \"");
}

// --- Templates -------------------------------------------------------------------------------------

fn project_templates_override_the_built_in_ones() {
    let project = project_copy("hello-go");
    std::fs::create_dir_all(project.path().join("templates/k8s")).unwrap();
    std::fs::write(
        project.path().join("templates/k8s/service.hbs"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{metadata.name}}\n  labels:\n    \
         app.kubernetes.io/name: {{metadata.app}}\nspec:\n  type: NodePort\n  selector:\n    \
         app.kubernetes.io/name: {{metadata.app}}\n  ports:\n    - name: \"http\"\n      \
         port: {{port}}\n      targetPort: \"http\"\n      nodePort: 30080\n",
    )
    .unwrap();
    std::fs::write(
        project.path().join("templates/supervisor.hbs"),
        "[program:{{app}}]\ncommand={{command}}\n",
    )
    .unwrap();
    let m = manifests(&generate(project.path(), &["k8s"]).success().stdout);
    check_consistent(&m);
    let spec = m.services[0].spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    assert_eq!(spec.ports.as_ref().unwrap()[0].node_port, Some(30080));
    assert_eq!(
        generate(project.path(), &["supervisor"]).success().stdout,
        "[program:hello-go]\ncommand=/opt/hello-go/current/hello-go --port 8080\n"
    );
    // The other outputs still come from the built-in templates.
    assert!(
        generate(project.path(), &["dockerfile"])
            .success()
            .stdout
            .contains("FROM golang:1 AS builder")
    );

    std::fs::write(
        project.path().join("templates/dockerfile.hbs"),
        "FROM {{runtime_imag}}\n",
    )
    .unwrap();
    generate(project.path(), &["dockerfile"])
        .failure(2)
        .stderr_has("templates/dockerfile.hbs")
        .stderr_has("runtime_imag");
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(Nothing, 1, default_outputs_for_hello_go),
        crate::test!(Nothing, 2, listen_changes_nothing_beyond_systemd),
        crate::test!(Nothing, 0, default_dockerfile_for_hello_rust),
        crate::test!(Nothing, 0, k8s_manifests_are_valid_api_objects_for_hello_go),
        crate::test!(
            Nothing,
            0,
            every_k8s_setting_and_awkward_value_survives_the_round_trip
        ),
        crate::test!(Nothing, 0, k8s_files_go_into_a_directory_one_per_object),
        crate::test!(
            Nothing,
            0,
            a_secret_template_needs_an_env_file_and_kubernetes_needs_a_port
        ),
        crate::test!(Nothing, 1, bad_k8s_values_point_at_their_place),
        crate::test!(Nothing, 1, dockerfile_stages_for_each_runtime),
        crate::test!(
            Nothing,
            0,
            dockerfile_go_builder_stage_builds_a_stamped_static_binary
        ),
        crate::test!(Nothing, 2, dockerfile_for_cgo_builds_static_against_musl),
        crate::test!(
            Nothing,
            0,
            dockerfile_for_rust_builds_on_musl_with_the_cargo_settings
        ),
        crate::test!(Nothing, 0, dockerfile_with_o_writes_the_dockerignore_too),
        crate::test!(Nothing, 0, dockerfile_refuses_paths_it_cannot_write_plainly),
        crate::test!(Nothing, 0, supervisor_program_has_the_units_settings),
        crate::test!(Nothing, 0, supervisor_refuses_values_it_would_cut_short),
        crate::test!(Nothing, 1, project_templates_override_the_built_in_ones),
    ]
}
