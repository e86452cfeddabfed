//! Secrets from a command (`env_command`): they reach the host's env file and nothing else.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::app::*;
use crate::support::sandbox::Sandbox;

/// Every process's command line on this machine, now.
fn local_command_lines() -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            all.push_str(&String::from_utf8_lossy(&cmdline).replace('\0', " "));
            all.push('\n');
        }
    }
    all
}

/// Files under `dir` whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let output = std::process::Command::new("grep")
        .args(["-rlaF", "--", needle])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            l.strip_prefix(dir.to_str().unwrap())
                .unwrap_or(l)
                .to_string()
        })
        .collect()
}

fn a_secret_from_a_command_reaches_the_env_file_and_nothing_else() {
    let host = "t-secret";
    let sandbox = Sandbox::up(&[host]);
    let project = variant("SHARED = \"unit\"", "[\"--port\", \"8080\"]");
    // The secret lives outside the project, as in a password manager.
    let vault = tempfile::tempdir().unwrap();
    let secret = "pw-7f3a9c1e5b";
    std::fs::write(
        vault.path().join("secrets.env"),
        format!("# from the vault\nDB_PASSWORD={secret}\nSHARED=command\n"),
    )
    .unwrap();
    std::fs::write(
        project.path().join(".env.prod"),
        "SHARED=file\nFILE_ONLY=\"dotenv style\"\n",
    )
    .unwrap();
    let base = std::fs::read_to_string(project.path().join("shipit.toml")).unwrap();
    let write_config = |command: &str| {
        let config = base.replacen(
            "[service]\n",
            &format!("[service]\nenv_file = \".env.prod\"\nenv_command = {command}\n"),
            1,
        );
        let config = format!(
            "{config}\n[hosts.box]\naddress = \"{}\"\nuser = \"root\"\n\
             env_command = [\"sh\", \"-c\", \"echo HOST_ONLY=for-$SHIPIT_HOST\"]\n\n\
             [hosts.box.env]\nOVERRIDE = \"host\"\n",
            sandbox.address(host),
        );
        std::fs::write(project.path().join("shipit.toml"), config).unwrap();
    };
    let ssh_config = sandbox_ssh_config(&sandbox, project.path());
    let ssh_config = ssh_config.to_str().unwrap();
    let deploy = |extra: &[&str]| {
        let args = [
            &[
                "deploy",
                "box",
                "-F",
                ssh_config,
                "--version-override",
                "1.0.0",
            ][..],
            extra,
        ]
        .concat();
        sandbox.project(project.path()).shipit(&args).run()
    };

    // A failing command stops the deploy before anything reaches the host; its stderr is shown,
    // its stdout is not.
    let script = |name: &str, body: &str| {
        let path = vault.path().join(name);
        std::fs::write(&path, body).unwrap();
        format!("[\"sh\", {:?}]", path.to_str().unwrap())
    };
    write_config(&script(
        "fails.sh",
        "echo DB_PASSWORD=leaked-a; echo 'not signed in' >&2; exit 3\n",
    ));
    let failed = deploy(&[])
        .failure(2)
        .stderr_has("not signed in")
        .stderr_has("env_command (");
    assert!(!failed.stderr.contains("leaked-a"), "{}", failed.stderr);
    assert!(!failed.stdout.contains("leaked-a"), "{}", failed.stdout);
    // Output that is not KEY=VALUE lines: its line number, never its text.
    write_config(&script(
        "garbled.sh",
        "echo OK=1; echo leaked-b-no-equals\n",
    ));
    let unparsable = deploy(&[])
        .failure(2)
        .stderr_has("output line 2: expected KEY=VALUE");
    assert!(
        !unparsable.stderr.contains("leaked-b"),
        "{}",
        unparsable.stderr
    );
    sandbox
        .ssh(host, "test ! -e /opt/hello-go && test ! -e /etc/hello-go")
        .success();

    write_config(&format!(
        "[\"cat\", {:?}]",
        vault.path().join("secrets.env").to_str().unwrap()
    ));
    let plan = deploy(&["--dry-run"]).success();
    assert!(!plan.stdout.contains(secret) && !plan.stderr.contains(secret));

    // Watch both machines' process lists while the deploy runs.
    sandbox
        .ssh(
            host,
            "setsid sh -c 'while :; do ps -eo args; sleep 0.02; done' > /root/ps.log 2>&1 \
             < /dev/null & echo $! > /root/ps.pid",
        )
        .success();
    let watching = Arc::new(AtomicBool::new(true));
    let local = std::thread::spawn({
        let watching = watching.clone();
        move || {
            let (mut seen, mut samples) = (String::new(), 0);
            while watching.load(Ordering::Relaxed) {
                let lines = local_command_lines();
                if lines.contains(secret) {
                    seen = lines;
                }
                samples += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            (seen, samples)
        }
    });
    let run = deploy(&["--json"]).success();
    watching.store(false, Ordering::Relaxed);
    let (seen, samples) = local.join().unwrap();
    sandbox
        .ssh(host, "kill $(cat /root/ps.pid) && rm /root/ps.pid")
        .success();
    assert!(samples > 5, "{samples} samples");
    assert_eq!(seen, "", "the secret in this machine's process list");
    let remote_ps = sandbox.ssh(host, "cat /root/ps.log").success().stdout;
    assert!(remote_ps.lines().count() > 50, "{remote_ps}");
    assert!(
        !remote_ps.contains(secret),
        "the secret in the host's process list"
    );
    assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    assert!(run.stdout.contains("\"round_trips\""), "{}", run.stdout);
    // The dotenv-style quotes are kept, and said so, by line and key only.
    let warning = ".env.prod:2: the value of FILE_ONLY is in quotes";
    assert!(run.stderr.contains(warning), "{}", run.stderr);

    // What the service runs with: env_file < env_command < the host's command < the host's env.
    let environ = service_environ(&sandbox, host);
    for line in [
        format!("DB_PASSWORD={secret}"),
        "SHARED=command".into(),
        "FILE_ONLY=\"dotenv style\"".into(),
        "HOST_ONLY=for-box".into(),
        "OVERRIDE=host".into(),
    ] {
        assert!(environ.lines().any(|l| l == line), "{line} in\n{environ}");
    }

    // Nothing shipit wrote keeps it: not the project, not the journal, and on the host only the
    // env file and the release's copy of it (both 0600, root's).
    assert_eq!(files_holding(project.path(), secret), Vec::<String>::new());
    let journal = sandbox
        .ssh(
            host,
            "journalctl --no-pager -o cat | grep -cF pw-7f3a9c1e5b || true",
        )
        .success()
        .stdout;
    assert_eq!(journal.trim(), "0", "the secret in the host's journal");
    let holding = sandbox
        .ssh(
            host,
            "grep -rlF pw-7f3a9c1e5b /etc /opt /var /root /tmp 2>/dev/null | sort",
        )
        .stdout;
    let holding: Vec<&str> = holding.lines().collect();
    assert_eq!(holding.len(), 2, "{holding:?}");
    assert_eq!(holding[0], "/etc/hello-go/hello-go.env", "{holding:?}");
    assert!(
        holding[1].starts_with("/opt/hello-go/releases/1.0.0-") && holding[1].ends_with("/.env"),
        "{holding:?}"
    );
    let modes = sandbox
        .ssh(host, &format!("stat -c '%a %U' {}", holding.join(" ")))
        .success()
        .stdout;
    assert_eq!(modes, "600 root\n600 root\n");
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![crate::test!(
        Hosts,
        9,
        a_secret_from_a_command_reaches_the_env_file_and_nothing_else
    )]
}
