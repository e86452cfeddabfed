//! The deploy log each host keeps: `shipit history` of several hosts, `releases` naming who
//! deployed, a rollback logged, and the log kept bounded.

use crate::support::app::*;
use crate::support::sandbox::Sandbox;

fn history_shows_deploys_and_rollbacks_of_each_host_and_releases_who_deployed() {
    let hosts = ["hs-1", "hs-2"];
    let sandbox = Sandbox::up(&hosts);
    let (project, ssh_config) = fleet_project(&sandbox, &hosts, "");
    let shipit = |args: &[&str]| {
        let args = [args, &["-F", ssh_config.as_str()][..]].concat();
        sandbox.project(project.path()).shipit(&args).run()
    };
    for version in ["1.0.0", "2.0.0"] {
        shipit(&["deploy", "web", "--version-override", version]).success();
    }
    // A log at its bound is cut to its last 1000 entries by the next write.
    let filler = r#"{"time":"2000-01-01T00:00:00Z","action":"deploy","by":"old@box","version":"0.1.0","release":"0.1.0-000000000000","previous":null,"outcome":"deployed","seconds":1.0}"#;
    sandbox
        .ssh(
            "hs-1",
            &format!(
                "log=/opt/hello-go/.shipit/log; mv $log $log.real && \
                 for i in $(seq 1199); do echo '{filler}'; done > $log && cat $log.real >> $log \
                 && rm $log.real && wc -l < $log"
            ),
        )
        .success();
    shipit(&["rollback", "hs-1"]).success();
    let lines = sandbox
        .ssh("hs-1", "wc -l < /opt/hello-go/.shipit/log")
        .success()
        .stdout;
    assert_eq!(lines.trim(), "1000");
    // hs-2 fails its health gate with 3.0.0 and goes back to 2.0.0 by itself.
    std::fs::write(
        project.path().join("shipit.toml"),
        std::fs::read_to_string(project.path().join("shipit.toml")).unwrap()
            + "\n[hosts.hs-2.env]\nHELLO_HEALTH_DOWN = \"1\"\n",
    )
    .unwrap();
    shipit(&["deploy", "hs-2", "--version-override", "3.0.0"]).failure(6);

    let run = shipit(&["history", "web", "--json", "-n", "5"]).success();
    let entries: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    let seen: Vec<(String, String, String, String)> = entries
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("-").to_string();
            (s("host"), s("action"), s("version"), s("outcome"))
        })
        .collect();
    let row = |h: &str, a: &str, v: &str, o: &str| (h.into(), a.into(), v.into(), o.into());
    // hs-1's last 5 (filler first), hs-2's 3, merged by time (the deploys of a version to
    // both hosts share their second, and a host's order is kept).
    let of = |host: &str| -> Vec<_> {
        seen.iter()
            .filter(|r| r.0 == host && r.2 != "0.1.0")
            .cloned()
            .collect()
    };
    assert_eq!(
        of("hs-1"),
        [
            row("hs-1", "deploy", "1.0.0", "deployed"),
            row("hs-1", "deploy", "2.0.0", "deployed"),
            row("hs-1", "rollback", "1.0.0", "rolled-back"),
        ]
    );
    assert_eq!(
        of("hs-2"),
        [
            row("hs-2", "deploy", "1.0.0", "deployed"),
            row("hs-2", "deploy", "2.0.0", "deployed"),
            row("hs-2", "deploy", "3.0.0", "rolled-back"),
        ]
    );
    assert_eq!(seen.len(), 8, "{seen:?}");
    let times: Vec<&str> = entries
        .iter()
        .map(|e| e["time"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let last = entries.last().unwrap();
    assert_eq!(last["host"], "hs-2");
    assert!(last["release"].as_str().unwrap().starts_with("3.0.0-"));
    assert!(last["previous"].as_str().unwrap().starts_with("2.0.0-"));
    assert!(last["seconds"].as_f64().unwrap() > 0.0);
    let who = last["by"].as_str().unwrap().to_string();
    assert!(who.contains('@') && !who.starts_with('@'), "{who}");
    let rollback = entries.iter().find(|e| e["action"] == "rollback").unwrap();
    assert!(rollback["release"].as_str().unwrap().starts_with("1.0.0-"));
    assert!(rollback["previous"].as_str().unwrap().starts_with("2.0.0-"));

    // The table: a host column for several hosts, none for one.
    let table = shipit(&["history", "hs-1"]).success().stdout;
    assert!(
        table.starts_with("TIME") && !table.contains("HOST"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 21, "{table}");
    assert!(
        table.lines().last().unwrap().contains("rollback"),
        "{table}"
    );
    let table = shipit(&["history", "web", "-n", "1"]).success().stdout;
    assert!(table.lines().next().unwrap().contains("HOST"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");

    // releases: who deployed each one.
    let run = shipit(&["releases", "hs-2", "--json"]).success();
    let releases: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(releases.len(), 3, "{releases:?}");
    for release in &releases {
        assert_eq!(release["deployed_by"], who.as_str(), "{release}");
    }
    let text = shipit(&["releases", "hs-2"]).success().stdout;
    assert_eq!(text.matches(&who).count(), 3, "{text}");
    for release in &releases {
        let (name, deployed) = (&release["name"], &release["deployed"]);
        assert!(
            text.lines().any(|line| {
                let columns: Vec<&str> = line.split_whitespace().collect();
                columns.contains(&name.as_str().unwrap())
                    && columns.contains(&deployed.as_str().unwrap())
            }),
            "{name} and {deployed} are columns of their own in:\n{text}"
        );
    }
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![crate::test!(
        Hosts,
        24,
        history_shows_deploys_and_rollbacks_of_each_host_and_releases_who_deployed
    )]
}
