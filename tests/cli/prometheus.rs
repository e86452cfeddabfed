//! `shipit generate prometheus`, read by the real thing: promtool checks the scrape config with
//! its targets file and the examples' metrics, and a Prometheus started here scrapes the hosts.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::app::*;
use crate::support::sandbox::Sandbox;
use crate::support::*;

/// A Prometheus on 127.0.0.1, killed however the test ends.
struct Prometheus {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Prometheus {
    /// Runs `config` with its own storage under `dir`.
    fn start(config: &Path, dir: &Path) -> Prometheus {
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("run prometheus (scripts/setup --tests installs it)");
        Prometheus { child, port, log }
    }

    /// The `up` series, by their `host` label, once the query answers.
    fn up(&self) -> Option<Vec<serde_json::Value>> {
        let url = format!("http://127.0.0.1:{}/api/v1/query?query=up", self.port);
        let body = ureq::get(&url)
            .call()
            .ok()?
            .into_body()
            .read_to_string()
            .ok()?;
        let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
        answer["data"]["result"].as_array().cloned()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn promtool(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (scripts/setup --tests installs it)");
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// hello-go at a configured version, with `stage` in staging and `web1`, `web2` in production
/// on the two sandbox hosts (staging's host is web1's machine: two boots serve both).
fn two_environments(sandbox: &Sandbox, machines: [&str; 2]) -> tempfile::TempDir {
    let project = variant("", "[\"--port\", \"8080\"]");
    let path = project.path().join("shipit.toml");
    let mut config = std::fs::read_to_string(&path).unwrap().replacen(
        "name = \"hello-go\"\n",
        "name = \"hello-go\"\nversion = \"0.9.0\"\n",
        1,
    );
    let host = |env: &str, name: &str, machine: &str| {
        format!(
            "\n[environments.{env}.hosts.{name}]\naddress = \"{}\"\nuser = \"root\"\n",
            sandbox.address(machine)
        )
    };
    config.push_str(&host("staging", "stage", machines[0]));
    config.push_str(&host("production", "web1", machines[0]));
    config.push_str(&host("production", "web2", machines[1]));
    config.push_str("\n[environments.production.groups]\nweb = [\"web1\", \"web2\"]\n");
    std::fs::write(&path, config).unwrap();
    project
}

fn labels_by_host(targets: &str) -> Vec<(String, serde_json::Value)> {
    let groups: Vec<serde_json::Value> = serde_json::from_str(targets).unwrap();
    groups
        .into_iter()
        .map(|g| (g["labels"]["host"].as_str().unwrap().to_string(), g))
        .collect()
}

fn prometheus_scrapes_the_environments_hosts() {
    let machines = ["prom-1", "prom-2"];
    let sandbox = Sandbox::up(&machines);
    let project = two_environments(&sandbox, machines);
    let ssh_config = sandbox_ssh_config(&sandbox, project.path());
    let ssh_config = ssh_config.to_str().unwrap();
    let dir = project.path().to_str().unwrap();
    let shipit =
        |args: &[&str]| sandbox.shipit(&[&["-C", dir], args, &["-F", ssh_config]].concat());
    let address = |machine: &str| format!("{}:8080", sandbox.address(machine));

    // Each environment lists its own hosts, labelled with the configured version.
    let staging = shipit(&["generate", "prometheus", "-e", "staging"])
        .run()
        .success()
        .stdout;
    let staging = labels_by_host(&staging);
    assert_eq!(staging.len(), 1, "{staging:?}");
    let (name, group) = &staging[0];
    assert_eq!(name, "stage");
    assert_eq!(group["targets"], serde_json::json!([address(machines[0])]));
    assert_eq!(group["labels"]["environment"], "staging");
    assert_eq!(group["labels"]["version"], "0.9.0");

    shipit(&["deploy", "-e", "production", "--version-override", "1.0.0"])
        .run()
        .success();

    // --live: the version each host runs, not the configured one.
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();
    shipit(&[
        "generate",
        "prometheus",
        "-e",
        "production",
        "--live",
        "-o",
        out_dir,
    ])
    .run()
    .success();
    let targets = std::fs::read_to_string(out.path().join("hello-go-production.json")).unwrap();
    let production = labels_by_host(&targets);
    let names: Vec<&str> = production.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["web1", "web2"], "{targets}");
    for ((_, group), machine) in production.iter().zip(machines) {
        assert_eq!(group["targets"], serde_json::json!([address(machine)]));
        assert_eq!(group["labels"]["version"], "1.0.0", "{targets}");
        assert_eq!(group["labels"]["group"], "web", "{targets}");
    }

    // promtool: the scrape config with its targets file, and the deployed example's metrics.
    let scrape = out.path().join("hello-go-production.scrape.yml");
    let checked = promtool(&["check", "config", scrape.to_str().unwrap()], None);
    assert_eq!(checked.code, 0, "{}{}", checked.stdout, checked.stderr);
    let url = format!("http://{}/metrics", address(machines[1]));
    let metrics = ureq::get(&url)
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("hello_go_http_request_duration_seconds_bucket{"),
        "{metrics}"
    );
    let checked = promtool(&["check", "metrics"], Some(&metrics));
    assert_eq!(
        checked.code, 0,
        "{}{}\n{metrics}",
        checked.stdout, checked.stderr
    );

    // A real Prometheus, scraping every second, finds both hosts up, with their labels.
    let config = out.path().join("prometheus.yml");
    let snippet = std::fs::read_to_string(&scrape).unwrap();
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n{snippet}"),
    )
    .unwrap();
    let prometheus = Prometheus::start(&config, out.path());
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut up = Vec::new();
    while Instant::now() < deadline {
        up = prometheus.up().unwrap_or_default();
        if up.len() == 2 && up.iter().all(|s| s["value"][1] == "1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        up.len() == 2 && up.iter().all(|s| s["value"][1] == "1"),
        "up is not 1 for both hosts: {up:?}\n{}",
        prometheus.log()
    );
    let mut hosts: Vec<&str> = up
        .iter()
        .map(|s| s["metric"]["host"].as_str().unwrap())
        .collect();
    hosts.sort_unstable();
    assert_eq!(hosts, ["web1", "web2"], "{up:?}");
    for series in &up {
        assert_eq!(series["metric"]["job"], "hello-go-production", "{series}");
        assert_eq!(series["metric"]["environment"], "production", "{series}");
        assert_eq!(series["metric"]["version"], "1.0.0", "{series}");
    }
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![crate::test!(
        Prometheus,
        60,
        prometheus_scrapes_the_environments_hosts
    )]
}
