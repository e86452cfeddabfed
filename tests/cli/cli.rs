//! The command line itself: --help, completions, man page and `shipit init`.

use crate::support::*;

#[test]
fn help_snapshots() {
    for (name, args) in [
        ("help", &["--help"][..]),
        ("build_help", &["build", "--help"]),
        ("unit_generate_help", &["unit", "generate", "--help"]),
        ("init_help", &["init", "--help"]),
        ("deploy_help", &["deploy", "--help"]),
        ("generate_help", &["generate", "--help"]),
    ] {
        let run = shipit(args).env("COLUMNS", "100").run().success();
        insta::assert_snapshot!(name, run.stdout);
    }
}

#[test]
fn completions_and_man_page() {
    let bash = shipit(&["completions", "bash"]).run().success().stdout;
    assert!(
        bash.contains("_shipit()") && bash.contains("--version-override"),
        "{bash}"
    );
    let man = shipit(&["man"]).run().success().stdout;
    assert!(
        man.contains(".TH shipit") && man.contains("Exit codes"),
        "{man}"
    );
    shipit(&["completions", "tcsh"]).run().failure(2);
}

#[test]
fn init_writes_a_working_config_and_keeps_an_existing_one() {
    let project = project_copy("hello-go");
    std::fs::remove_file(project.path().join("shipit.toml")).unwrap();
    let dir = project.path().to_str().unwrap();
    let run = shipit(&["-C", dir, "init"]).run().success();
    let path = project.path().join("shipit.toml");
    assert_eq!(run.stdout.trim(), path.to_str().unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("name = \"hello-go\"") && text.contains("# go_package"),
        "{text}"
    );
    shipit(&["-C", dir, "unit", "generate", "--verify"])
        .run()
        .success();

    shipit(&["-C", dir, "init"])
        .run()
        .failure(2)
        .stderr_has("--force");
    shipit(&["-C", dir, "init", "--force", "--name", "other"])
        .run()
        .success();
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("name = \"other\"")
    );
    shipit(&["-C", dir, "init", "--force", "--name", "a;rm -rf /"])
        .run()
        .failure(2)
        .stderr_has("invalid app name");
}

#[test]
fn init_detects_rust_projects() {
    let project = project_copy("hello-rust");
    std::fs::remove_file(project.path().join("shipit.toml")).unwrap();
    shipit(&["-C", project.path().to_str().unwrap(), "init"])
        .run()
        .success();
    let text = std::fs::read_to_string(project.path().join("shipit.toml")).unwrap();
    assert!(
        text.contains("name = \"hello-rust\"") && text.contains("cargo_bin"),
        "{text}"
    );
}

/// libssh2 up to 1.11.1 has a pre-auth heap overflow a malicious server can trigger; the fix
/// shipped in libssh2-sys 0.3.3. Guard the lock file against a downgrade.
#[test]
fn libssh2_carries_the_overflow_fix() {
    let lock = std::fs::read_to_string(repo_root().join("Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"libssh2-sys\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("libssh2-sys in Cargo.lock");
    let parts: Vec<u32> = version.split('.').map(|n| n.parse().unwrap()).collect();
    assert!(
        parts >= vec![0, 3, 3],
        "libssh2-sys {version} lacks the fix; need >= 0.3.3"
    );
}
