//! `shipit diff` and the drift mark of `status` on a real host: a deploy leaves nothing to
//! show; hand edits of the installed unit and env file show (the env values never do), and so
//! does a change of shipit.toml before the next deploy.

use crate::support::app::*;
use crate::support::sandbox::Sandbox;
use crate::support::*;

const SECRET: &str = "secret-value-123";

fn hand_edits_and_config_changes_show_with_env_values_masked() {
    let host = "t-diff";
    let sandbox = Sandbox::up(&[host]);
    let dir = listening_variant("LOG_LEVEL = \"info\"", "[\"--port\", \"8080\"]");
    let config = dir.path().join("shipit.toml");
    let base = std::fs::read_to_string(&config).unwrap().replacen(
        "[service]\n",
        "[service]\nenv_file = \".env.prod\"\n",
        1,
    );
    std::fs::write(&config, &base).unwrap();
    std::fs::write(dir.path().join(".env.prod"), "DB_URL=postgres://db/app\n").unwrap();
    let project = sandbox.project(dir.path());
    project.deploy(host, Ship::Version("1.0.0"), &[]).success();
    let diff = |extra: &[&str]| project.shipit(&[&["diff", host][..], extra].concat()).run();
    let drifted = || {
        let run = project.shipit(&["status", host, "--json"]).run().success();
        let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        status[0]["drifted"].clone()
    };

    let same = diff(&[]).success();
    assert_eq!(same.stdout, "", "{}", same.stderr);
    assert_eq!(drifted(), false, "a fresh deploy has not drifted");

    sandbox
        .ssh(
            host,
            &format!(
                "sed -i 's/^RestartSec=.*/RestartSec=17/' /etc/systemd/system/hello-go.service \
                 && sed -i 's|^DB_URL=.*|DB_URL=postgres://elsewhere|' /etc/hello-go/hello-go.env \
                 && echo EXTRA={SECRET} >> /etc/hello-go/hello-go.env"
            ),
        )
        .success();
    let text = diff(&[]).failure(1);
    for needle in [
        "--- declared\n+++ installed t-diff:/etc/systemd/system/hello-go.service\n",
        "\n+RestartSec=17\n",
        "--- declared\n+++ installed t-diff:/etc/hello-go/hello-go.env\n",
        "\n-DB_URL=<masked>\n+DB_URL=<masked> (value differs)\n+EXTRA=<masked>\n",
    ] {
        assert!(
            text.stdout.contains(needle),
            "no {needle:?} in:\n{}",
            text.stdout
        );
    }
    let json = diff(&["--json"]).failure(1);
    let hosts: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(hosts[0]["identical"], false, "{hosts}");
    let changed: Vec<&str> = hosts[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["identical"] == false)
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        changed,
        [
            "t-diff:/etc/systemd/system/hello-go.service",
            "t-diff:/etc/hello-go/hello-go.env"
        ]
    );
    for run in [&text, &json] {
        for (name, out) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(!out.contains(SECRET), "the env value in {name}:\n{out}");
            assert!(
                !out.contains("elsewhere"),
                "the env value in {name}:\n{out}"
            );
        }
    }
    assert_eq!(drifted(), true, "hand edits are drift");
    let status = project.shipit(&["status", host]).run().success();
    assert!(
        status
            .stdout
            .contains("drifted:     t-diff (from shipit.toml"),
        "{}",
        status.stdout
    );

    // shipit.toml changed, not yet deployed: the unit it declares differs.
    std::fs::write(
        &config,
        base.replacen("[service]\n", "[service]\nlimit_nofile = 4096\n", 1),
    )
    .unwrap();
    let changed = diff(&[]).failure(1);
    assert!(
        changed.stdout.contains("\n-LimitNOFILE=4096\n"),
        "{}",
        changed.stdout
    );
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![crate::test!(
        Hosts,
        12,
        hand_edits_and_config_changes_show_with_env_values_masked
    )]
}
