//! Fleets: several sandbox hosts, each with its own address, deployed as one group.

use std::path::Path;

use crate::support::app::*;
use crate::support::sandbox::Sandbox;
use crate::support::*;

fn fleet_deploy(
    sandbox: &Sandbox,
    project: &Path,
    ssh_config: &str,
    version: &str,
    extra: &[&str],
) -> (Run, serde_json::Value) {
    let mut args = vec![
        "-C",
        project.to_str().unwrap(),
        "deploy",
        "web",
        "-F",
        ssh_config,
        "--json",
        "--version-override",
        version,
    ];
    args.extend_from_slice(extra);
    // Built by the deploy: one build for the whole fleet is part of what these tests check.
    let run = sandbox.shipit(&args).building().run();
    let summary = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    (run, summary)
}

fn outcomes(summary: &serde_json::Value) -> Vec<(String, String)> {
    summary["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap().to_string(),
                h["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn a_group_deploys_in_parallel_and_status_shows_it_side_by_side() {
    let hosts = ["fp-1", "fp-2", "fp-3"];
    let sandbox = Sandbox::up(&hosts);
    let (project, ssh_config) = fleet_project(
        &sandbox,
        &hosts,
        "\n[hosts.fp-2.env]\nLOG_LEVEL = \"debug\"\n",
    );
    let (run, summary) = fleet_deploy(&sandbox, project.path(), &ssh_config, "1.0.0", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(summary["ok"], true);
    assert_eq!(
        outcomes(&summary),
        pairs(&[
            ("fp-1", "deployed"),
            ("fp-2", "deployed"),
            ("fp-3", "deployed")
        ])
    );
    // One package, built once, sent to each host.
    assert_eq!(run.stderr.matches("Building").count(), 1, "{}", run.stderr);
    assert_eq!(run.stderr.matches("Uploaded").count(), 3, "{}", run.stderr);
    let addresses: std::collections::BTreeSet<String> =
        hosts.iter().map(|h| sandbox.address(h)).collect();
    assert_eq!(addresses.len(), 3);
    for host in hosts {
        assert_eq!(health(&sandbox, host)["version"], "1.0.0");
    }
    // The host's own env goes into its env file; the others have none.
    let env = sandbox
        .ssh("fp-2", "cat /etc/hello-go/hello-go.env")
        .success()
        .stdout;
    assert_eq!(env, "LOG_LEVEL=debug\n");
    sandbox
        .ssh("fp-1", "test ! -e /etc/hello-go/hello-go.env")
        .success();

    let table = sandbox
        .project(project.path())
        .shipit(&["status", "web", "-F", &ssh_config])
        .run()
        .success()
        .stdout;
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(
        !table.contains('!'),
        "all hosts run the same version:\n{table}"
    );
}

fn a_rolling_deploy_stops_at_the_first_unhealthy_host() {
    let hosts = ["fr-1", "fr-2", "fr-3"];
    let sandbox = Sandbox::up(&hosts);
    let (good, ssh_config) = fleet_project(&sandbox, &hosts, "");
    fleet_deploy(&sandbox, good.path(), &ssh_config, "1.0.0", &[])
        .0
        .success();
    // Host 2 answers /health with 503 in every later release.
    let (bad, _) = fleet_project(
        &sandbox,
        &hosts,
        "\n[hosts.fr-2.env]\nHELLO_HEALTH_DOWN = \"1\"\n",
    );
    let versions = || hosts.map(|h| health(&sandbox, h)["version"].as_str().unwrap().to_string());

    // With --rollback-all-on-failure, host 1 goes back to 1.0.0 too.
    let (run, summary) = fleet_deploy(
        &sandbox,
        bad.path(),
        &ssh_config,
        "2.0.0",
        &["--batch", "1", "--rollback-all-on-failure"],
    );
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert_eq!(summary["ok"], false);
    assert_eq!(
        outcomes(&summary),
        pairs(&[
            ("fr-1", "switched-back"),
            ("fr-2", "rolled-back"),
            ("fr-3", "skipped")
        ])
    );
    assert_eq!(versions(), ["1.0.0", "1.0.0", "1.0.0"]);

    // Without it, host 1 keeps the new release and host 3 is untouched.
    let (run, summary) = fleet_deploy(
        &sandbox,
        bad.path(),
        &ssh_config,
        "3.0.0",
        &["--batch", "1"],
    );
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert_eq!(
        outcomes(&summary),
        pairs(&[
            ("fr-1", "deployed"),
            ("fr-2", "rolled-back"),
            ("fr-3", "skipped")
        ])
    );
    assert_eq!(versions(), ["3.0.0", "1.0.0", "1.0.0"]);
    assert!(
        run.stderr.contains("2 of 3 hosts did not deploy"),
        "{}",
        run.stderr
    );

    // Mixed versions stand out in status.
    let table = sandbox
        .project(good.path())
        .shipit(&["status", "web", "-F", &ssh_config])
        .run()
        .success()
        .stdout;
    let marked: Vec<&str> = table
        .lines()
        .filter(|l| l.contains(" ! "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(marked, ["fr-1"], "{table}");
    let json = sandbox
        .project(good.path())
        .shipit(&["status", "web", "-F", &ssh_config, "--json"])
        .run()
        .success()
        .stdout;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);

    // A canary goes first, alone: here the failing host, so nobody else is touched.
    let (run, summary) = fleet_deploy(
        &sandbox,
        bad.path(),
        &ssh_config,
        "4.0.0",
        &["--canary", "fr-2"],
    );
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert_eq!(
        outcomes(&summary),
        pairs(&[
            ("fr-1", "skipped"),
            ("fr-2", "rolled-back"),
            ("fr-3", "skipped")
        ])
    );
    assert_eq!(versions(), ["3.0.0", "1.0.0", "1.0.0"]);
}

fn a_host_that_dies_mid_rollout_fails_alone() {
    let hosts = ["fd-1", "fd-2", "fd-3"];
    let sandbox = Sandbox::up(&hosts);
    let (project, ssh_config) = fleet_project(&sandbox, &hosts, "");
    fleet_deploy(&sandbox, project.path(), &ssh_config, "1.0.0", &[])
        .0
        .success();

    let dir = project.path().to_str().unwrap();
    let mut running = Running::start(
        &sandbox,
        &[
            "-C",
            dir,
            "deploy",
            "web",
            "-F",
            &ssh_config,
            "--json",
            "--version-override",
            "2.0.0",
            "--batch",
            "1",
            "--max-fail",
            "1",
        ],
    );
    running.wait_for_line("Healthy hello-go 2.0.0 on fd-1");
    sandbox.shipit(&["sandbox", "down", "fd-2"]).run().success();
    let mut stdout = String::new();
    std::io::Read::read_to_string(running.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let (code, stderr) = running.finish();
    assert_ne!(code, 0, "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let outcomes = outcomes(&summary);
    assert_eq!(outcomes[0], ("fd-1".to_string(), "deployed".to_string()));
    assert_ne!(outcomes[1].1, "deployed");
    assert_eq!(outcomes[2], ("fd-3".to_string(), "deployed".to_string()));
    assert!(stderr.contains("fd-2"), "{stderr}");
    assert_eq!(health(&sandbox, "fd-3")["version"], "2.0.0");
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(
            Hosts,
            9,
            a_group_deploys_in_parallel_and_status_shows_it_side_by_side
        ),
        crate::test!(
            Hosts,
            40,
            a_rolling_deploy_stops_at_the_first_unhealthy_host
        ),
        crate::test!(Hosts, 55, a_host_that_dies_mid_rollout_fails_alone),
    ]
}
