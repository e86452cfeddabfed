//! Environments: one shipit.toml for staging and production, selected with -e, refused
//! without it, recorded on the hosts, and shown without their secrets.

use std::path::Path;

use crate::support::app::*;
use crate::support::sandbox::Sandbox;
use crate::support::*;

const STAGING_VALUE: &str = "staging-greeting-4b1";
const PRODUCTION_SECRET: &str = "production-secret-9c2";

/// hello-go with `staging` (one host) and `production` (two), each with its own GREETING.
fn environments_project(
    sandbox: &Sandbox,
    staging: &str,
    production: [&str; 2],
) -> tempfile::TempDir {
    let project = variant("GREETING = \"base\"", "[\"--port\", \"8080\"]");
    let path = project.path().join("shipit.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    let host = |env: &str, name: &str| {
        format!(
            "\n[environments.{env}.hosts.{name}]\naddress = \"{}\"\nuser = \"root\"\n",
            sandbox.address(name)
        )
    };
    config.push_str(&host("staging", staging));
    config.push_str(&format!(
        "\n[environments.staging.service.env]\nGREETING = \"{STAGING_VALUE}\"\n"
    ));
    for name in production {
        config.push_str(&host("production", name));
    }
    config.push_str(&format!(
        "\n[environments.production.service.env]\nGREETING = \"{PRODUCTION_SECRET}\"\n\n\
         [environments.production.deploy]\ncanary = 1\n"
    ));
    std::fs::write(&path, config).unwrap();
    project
}

fn untouched(sandbox: &Sandbox, host: &str) {
    sandbox.ssh(host, "test ! -e /opt/hello-go").success();
}

fn each_environment_deploys_only_its_hosts_with_its_env_and_the_hosts_record_it() {
    let (staging, production) = ("en-s", ["en-p1", "en-p2"]);
    let sandbox = Sandbox::up(&[staging, production[0], production[1]]);
    let project = environments_project(&sandbox, staging, production);
    let ssh_config = sandbox_ssh_config(&sandbox, project.path());
    let ssh_config = ssh_config.to_str().unwrap();
    let dir = project.path().to_str().unwrap();
    // -F after the subcommand, before any `--`.
    let shipit = |args: &[&str]| {
        let (command, rest) = args.split_first().unwrap();
        sandbox.shipit(&[&["-C", dir, command, "-F", ssh_config], rest].concat())
    };

    // No -e: refused before anything is built or touched, naming both environments.
    let deploy = ["deploy", "--version-override", "1.0.0"];
    shipit(&deploy)
        .building()
        .run()
        .failure(2)
        .stderr_has(
            "defines environments (production, staging), and this command talks to hosts: name \
             the one it is for",
        )
        .stderr_has("help: add -e production or -e staging");
    assert!(!project.path().join("dist").exists());
    shipit(&[&deploy[..], &["-e", "qa"]].concat())
        .run()
        .failure(2)
        .stderr_has("unknown environment \"qa\"");
    for host in [staging, production[0], production[1]] {
        untouched(&sandbox, host);
    }

    // -e staging: its one host, and no other.
    let run = shipit(&[&deploy[..], &["-e", "staging", "--json"]].concat())
        .run()
        .success();
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let deployed: Vec<&str> = summary["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(deployed, [staging], "{}", run.stdout);
    assert_eq!(summary["environment"], "staging", "{}", run.stdout);
    untouched(&sandbox, production[0]);
    untouched(&sandbox, production[1]);
    let echo = [
        "exec",
        "-e",
        "staging",
        "--",
        "sh",
        "-c",
        "echo \"$GREETING\"",
    ];
    let out = shipit(&echo).run().success().stdout;
    assert_eq!(out.trim(), STAGING_VALUE);

    // Another environment's host is refused, naming this one's.
    shipit(&["status", "-e", "staging", production[0]])
        .run()
        .failure(2)
        .stderr_has(&format!(
            "is not a host of environment staging, whose hosts are {staging}"
        ));

    check_the_host_records_the_environment(&shipit, staging);

    // Built once, the same package goes to production: both its hosts, canary first as its
    // [deploy] says, each with production's value.
    let build = sandbox
        .shipit(&["-C", dir, "build", "--version-override", "1.0.0"])
        .run()
        .success();
    let package = build.stdout.trim();
    let run = shipit(&[
        "deploy",
        "-e",
        "production",
        "--package",
        package,
        "--events",
    ])
    .run()
    .success();
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let at = |event: &str, host: &str| {
        events
            .iter()
            .position(|e| e["event"] == event && e["host"] == host)
            .unwrap_or_else(|| panic!("no {event} of {host} in {}", run.stdout))
    };
    assert!(
        at("healthy", production[0]) < at("switched", production[1]),
        "the canary passes its gate before the other host switches: {}",
        run.stdout
    );
    assert_eq!(events[0]["environment"], "production", "{}", run.stdout);
    let out = shipit(&[&["exec", "-e", "production"], &echo[3..]].concat())
        .run()
        .success()
        .stdout;
    for host in production {
        assert!(
            out.lines()
                .any(|l| l.contains(host) && l.contains(PRODUCTION_SECRET)),
            "{out}"
        );
    }
    assert_eq!(out.matches(PRODUCTION_SECRET).count(), 2, "{out}");
}

fn check_the_host_records_the_environment(shipit: &dyn Fn(&[&str]) -> Shipit, host: &str) {
    let history = shipit(&["history", "-e", "staging", "--json"])
        .run()
        .success()
        .stdout;
    let entries: Vec<serde_json::Value> = serde_json::from_str(&history).unwrap();
    assert_eq!(entries.len(), 1, "{history}");
    assert_eq!(entries[0]["host"], host);
    assert_eq!(entries[0]["environment"], "staging", "{history}");
    let table = shipit(&["history", "-e", "staging"]).run().success().stdout;
    assert!(
        table.starts_with("TIME") && table.contains("ENVIRONMENT") && table.contains(" staging "),
        "{table}"
    );
    let releases = shipit(&["releases", "-e", "staging", "--json"])
        .run()
        .success()
        .stdout;
    let releases: Vec<serde_json::Value> = serde_json::from_str(&releases).unwrap();
    assert_eq!(releases[0]["environment"], "staging", "{releases:?}");
    let text = shipit(&["releases", "-e", "staging"])
        .run()
        .success()
        .stdout;
    assert!(text.contains(" staging "), "{text}");
}

/// `config -e production`: the merged values, each env value by its place, never its value.
fn config_shows_an_environment_without_its_secrets() {
    let project = variant("GREETING = \"base\"", "[\"--port\", \"8080\"]");
    let path = project.path().join("shipit.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!(
            "{config}\n[environments.staging.hosts.s]\naddress = \"10.0.0.1\"\n\n\
             [environments.production.hosts.p]\naddress = \"10.0.0.2\"\n\n\
             [environments.production.service.env]\nGREETING = \"{PRODUCTION_SECRET}\"\n\n\
             [environments.production.deploy]\nbatch = \"50%\"\n"
        ),
    )
    .unwrap();
    let line = config.lines().count() + 9;
    let project = Project::at(project.path());
    let shown = project
        .shipit(&["config", "-e", "production"])
        .run()
        .success()
        .stdout;
    let json = project
        .shipit(&["config", "--json"])
        .env("SHIPIT_ENVIRONMENT", "production")
        .run()
        .success()
        .stdout;
    for out in [&shown, &json] {
        assert!(!out.contains(PRODUCTION_SECRET), "{out}");
    }
    let shown: toml::Table = toml::from_str(&shown).unwrap();
    let place = format!("<set in {}:{line}:12>", path.display());
    assert_eq!(
        shown["hosts"]["p"]["env"]["GREETING"].as_str(),
        Some(place.as_str())
    );
    assert_eq!(shown["deploy"]["batch"].as_str(), Some("50%"));
    assert!(shown["hosts"].get("s").is_none());
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["environment"], "production");
    assert_eq!(json["hosts"]["p"]["env"]["GREETING"], place.as_str());
}

/// `-e` and the `[deploy]` keys, wrong: refused at their place before anything runs.
fn environments_and_deploy_keys_are_checked_before_anything_runs() {
    let project = project_copy("hello-go");
    let write = |config: &str| std::fs::write(project.path().join("shipit.toml"), config).unwrap();
    let project_dir: &Path = project.path();
    let shipit = |args: &[&str]| Project::at(project_dir).shipit(args).run();
    write("[app]\nname = \"hello-go\"\n");
    shipit(&["unit", "generate", "-e", "staging"])
        .failure(2)
        .stderr_has("-e staging: ")
        .stderr_has("defines no environments");
    write("[environments.staging]\nbatch = 2\n");
    shipit(&["unit", "generate"])
        .failure(2)
        .stderr_has("shipit.toml:2:1: unknown field `batch`");
    write("[deploy]\nbatch = \"0\"\n");
    shipit(&["unit", "generate"])
        .failure(2)
        .stderr_has("shipit.toml:2:9: at least one host per batch");
    write("[environments.staging.hosts.s]\naddress = \"10.0.0.1\"\n");
    shipit(&["status"])
        .failure(2)
        .stderr_has("help: add -e staging");
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(
            Hosts,
            35,
            each_environment_deploys_only_its_hosts_with_its_env_and_the_hosts_record_it
        ),
        crate::test!(Nothing, 0, config_shows_an_environment_without_its_secrets),
        crate::test!(
            Nothing,
            0,
            environments_and_deploy_keys_are_checked_before_anything_runs
        ),
    ]
}
