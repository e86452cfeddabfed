//! Whole files through `parse`: settings of one section that depend on another or on the project.

use super::model::Builder;
use super::plan::{Amount, Canary};
use super::{FILE_NAME, parse};

#[test]
fn cgo_settings_belong_to_go_and_a_written_builder_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"demo\"\n",
    )
    .unwrap();
    let parse = |text: &str| parse(dir.path(), &dir.path().join(FILE_NAME), text, None);
    let err = parse("[build]\ncc = \"zig\"\n").unwrap_err().to_string();
    assert!(
        err.contains("shipit.toml:2:6") && err.contains("builder = \"zigbuild\""),
        "{err}"
    );
    assert!(parse("[build]\ncgo = \"off\"\n").is_err());
    let auto = parse("").unwrap().build;
    assert_eq!((auto.builder, auto.zig_fallback), (Builder::Cargo, true));
    let cargo = parse("[build]\nbuilder = \"cargo\"\n").unwrap().build;
    assert_eq!((cargo.builder, cargo.zig_fallback), (Builder::Cargo, false));
    let zig = parse("[build]\nbuilder = \"zigbuild\"\n").unwrap().build;
    assert_eq!(zig.builder, Builder::Zigbuild);
}

#[test]
fn preflight_is_on_with_sockets_unless_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go.mod"), "module example.com/demo\n").unwrap();
    let preflight = |text: &str| {
        parse(dir.path(), &dir.path().join(FILE_NAME), text, None)
            .map(|c| c.deploy.preflight)
            .map_err(|e| e.to_string())
    };
    assert_eq!(preflight(""), Ok(false));
    assert_eq!(preflight("[deploy]\npreflight = false\n"), Ok(false));
    let sockets = "[service]\nlisten = [\"8080\"]\n";
    assert_eq!(preflight(sockets), Ok(true));
    assert_eq!(
        preflight(&format!("{sockets}[deploy]\npreflight = false\n")),
        Ok(false)
    );
    let err = preflight("[deploy]\npreflight = true\n").unwrap_err();
    assert!(
        err.contains("shipit.toml:2:13") && err.contains("needs [service] listen"),
        "{err}"
    );
}

#[test]
fn a_hooks_timeout_bounds_the_host_hooks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go.mod"), "module example.com/demo\n").unwrap();
    let timeout = |text: &str| {
        parse(dir.path(), &dir.path().join(FILE_NAME), text, None)
            .map(|c| c.hooks.timeout)
            .map_err(|e| e.to_string())
    };
    let hook = "[hooks]\nbefore_switch = [\"./demo\", \"migrate\"]\n";
    assert_eq!(timeout(hook), Ok(None));
    assert_eq!(
        timeout(&format!("{hook}timeout = \"10m\"\n")),
        Ok(Some(std::time::Duration::from_secs(600)))
    );
    for (text, place, says) in [
        (
            "timeout = \"soon\"\n",
            "shipit.toml:3:11",
            "not a duration like \"10m\"",
        ),
        ("timeout = \"0s\"\n", "shipit.toml:3:11", "longer than 0s"),
    ] {
        let err = timeout(&format!("{hook}{text}")).unwrap_err();
        assert!(err.contains(place) && err.contains(says), "{err}");
    }
    let err = timeout("[hooks]\nlocal_after = [\"true\"]\ntimeout = \"1m\"\n").unwrap_err();
    assert!(
        err.contains("shipit.toml:3:11") && err.contains("needs a before_switch or after_switch"),
        "{err}"
    );
}

const ENVIRONMENTS: &str = r#"[service.env]
GREETING = "hello-base"
LOG = "info"

[health]
url = "http://127.0.0.1:8080/health"

[hooks]
local_before = ["true"]
local_after = ["true"]

[deploy]
batch = 2
max_fail = "25%"

[environments.staging.hosts.st]
address = "10.0.0.1"

[environments.production.hosts.p1]
address = "10.0.0.2"
[environments.production.hosts.p2]
address = "10.0.0.3"
[environments.production.groups]
web = ["p1", "p2"]
[environments.production.service.env]
GREETING = "hello-production"
[environments.production.health]
url = "http://127.0.0.1:9090/ready"
[environments.production.deploy]
canary = 1
confirm_timeout = "3m"
[environments.production.hooks]
local_after = ["echo", "done"]
"#;

fn go_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go.mod"), "module example.com/demo\n").unwrap();
    dir
}

#[test]
fn an_environment_is_laid_over_the_base() {
    let dir = go_project();
    let load = |env| parse(dir.path(), &dir.path().join(FILE_NAME), ENVIRONMENTS, env).unwrap();
    let base = load(None);
    assert_eq!(base.environment, None);
    assert_eq!(base.environments, ["production", "staging"]);
    assert!(base.require_environment().is_err());
    let staging = load(Some("staging"));
    assert!(staging.require_environment().is_ok());
    assert_eq!(staging.hosts.keys().collect::<Vec<_>>(), ["st"]);
    assert_eq!(staging.service.env["GREETING"], "hello-base");
    assert_eq!(staging.deploy.batch, Amount::Count(2));
    assert_eq!(staging.deploy.canary, None);
    let production = load(Some("production"));
    assert_eq!(production.environment.as_deref(), Some("production"));
    assert_eq!(production.hosts.keys().collect::<Vec<_>>(), ["p1", "p2"]);
    assert_eq!(production.groups["web"], ["p1", "p2"]);
    // Through each host's env file: the unit stays the base's, for one package everywhere.
    assert_eq!(production.service.env["GREETING"], "hello-base");
    assert_eq!(production.hosts["p2"].env["GREETING"], "hello-production");
    assert!(!production.hosts["p2"].env.contains_key("LOG"));
    assert_eq!(
        production.sources.host_env["p2"]["GREETING"],
        format!("{}:26:12", dir.path().join(FILE_NAME).display())
    );
    let health = production.health.unwrap();
    assert_eq!(health.check.target(), "http://127.0.0.1:9090/ready");
    assert_eq!(health.retries, 30);
    assert_eq!(production.deploy.batch, Amount::Count(2));
    assert_eq!(production.deploy.max_fail, Amount::Percent(25));
    assert_eq!(production.deploy.canary, Some(Canary::First));
    assert_eq!(
        production.deploy.confirm_timeout,
        Some(std::time::Duration::from_secs(180))
    );
    let hooks = production.hooks;
    assert_eq!(hooks.local_after.unwrap().words, ["echo", "done"]);
    assert_eq!(hooks.local_before.unwrap().words, ["true"]);
}

#[test]
fn environments_and_their_values_are_checked_at_their_place() {
    let dir = go_project();
    let parse = |text: &str, env: Option<&str>| {
        parse(dir.path(), &dir.path().join(FILE_NAME), text, env)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let err = parse(ENVIRONMENTS, Some("prod")).unwrap_err();
    assert!(
        err.contains("unknown environment \"prod\"")
            && err.contains("production, staging")
            && err.contains("help: add -e production or -e staging"),
        "{err}"
    );
    let err = parse("", Some("staging")).unwrap_err();
    assert!(err.contains("defines no environments"), "{err}");
    for (text, place, says) in [
        (
            "[environments.staging]\nbatch = 2\n",
            "shipit.toml:2:1",
            "unknown field `batch`",
        ),
        (
            "[environments.staging.service]\nuser = \"x\"\n",
            "shipit.toml:2:1",
            "unknown field `user`",
        ),
        (
            "[environments.Staging]\n",
            "shipit.toml:1:15",
            "invalid environment name",
        ),
        (
            "[deploy]\nbatch = \"0%\"\n",
            "shipit.toml:2:9",
            "at least one host per batch",
        ),
        (
            "[environments.production.deploy]\nmax_fail = \"x\"\n",
            "shipit.toml:2:12",
            "a number of hosts",
        ),
        (
            "[environments.production.deploy]\nconfirm_timeout = \"soon\"\n",
            "shipit.toml:2:19",
            "not a duration",
        ),
        (
            "[environments.production.deploy]\nparallel = 0\n",
            "shipit.toml:2:12",
            "from 1 to 256",
        ),
        (
            "[environments.production.health]\nretries = 3\n",
            "shipit.toml:1:1",
            "needs what to check",
        ),
    ] {
        // Checked whichever environment is selected.
        for env in [None, Some("other")] {
            let text = format!("{text}[environments.other]\n");
            let err = parse(&text, env).unwrap_err();
            assert!(err.contains(place) && err.contains(says), "{env:?}: {err}");
        }
    }
}

#[test]
fn shown_configuration_names_where_secrets_are_never_what_they_are() {
    let dir = go_project();
    let text = format!(
        "{ENVIRONMENTS}[environments.production.hosts.p1.env]\nTOKEN = \"hunter2\"\n\
         [environments.production.service]\nenv_command = [\"pass\", \"show\", \"demo\"]\n\
         [notify]\nwebhook = \"https://hooks.example.com/T0/s3cr3t-path\"\n\
         webhook_header = \"Authorization\"\nwebhook_header_env = \"DEPLOY_TOKEN\"\n"
    );
    let config = parse(
        dir.path(),
        &dir.path().join(FILE_NAME),
        &text,
        Some("production"),
    )
    .unwrap();
    let shown = super::show_text(&config);
    let json = super::show_json(&config);
    for out in [&shown, &json] {
        for secret in ["hunter2", "hello-", "\"info\"", "s3cr3t"] {
            assert!(!out.contains(secret), "{secret} in:\n{out}");
        }
    }
    let value: toml::Table = toml::from_str(&shown).unwrap();
    assert_eq!(value["environment"].as_str(), Some("production"));
    assert_eq!(
        value["notify"]["webhook_header_env"].as_str(),
        Some("DEPLOY_TOKEN")
    );
    assert_eq!(value["metrics"]["path"].as_str(), Some("/metrics"));
    let at = |line: u32, col: u32| {
        format!(
            "<set in {}:{line}:{col}>",
            dir.path().join(FILE_NAME).display()
        )
    };
    assert_eq!(
        value["service"]["env"]["GREETING"].as_str(),
        Some(at(2, 12).as_str())
    );
    assert_eq!(
        value["hosts"]["p2"]["env"]["GREETING"].as_str(),
        Some(at(26, 12).as_str())
    );
    assert_eq!(
        value["hosts"]["p1"]["env"]["TOKEN"].as_str(),
        Some(at(35, 9).as_str())
    );
    assert_eq!(value["deploy"]["canary"].as_str(), Some("1"));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["service"]["env_command"][0], "pass");
}
