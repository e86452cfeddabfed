//! The command line itself: --help, completions, man page and `shipit init`.

use crate::support::*;

fn help_snapshots() {
    for (name, args) in [
        ("help", &["--help"][..]),
        ("build_help", &["build", "--help"]),
        ("unit_generate_help", &["unit", "generate", "--help"]),
        ("init_help", &["init", "--help"]),
        ("deploy_help", &["deploy", "--help"]),
        ("generate_help", &["generate", "--help"]),
        ("exec_help", &["exec", "--help"]),
        ("logs_help", &["logs", "--help"]),
        ("history_help", &["history", "--help"]),
    ] {
        let run = shipit(args).env("COLUMNS", "100").run().success();
        insta::assert_snapshot!(name, run.stdout);
    }
}

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
    // hello-go's flag: fs.String("port", "8080", …) in main.go.
    assert!(
        text.contains(
            "# detected: the flag --port (default \"8080\") in main.go:49\n\
             exec_args = [\"--port\", \"8080\"]"
        ),
        "{text}"
    );
    assert!(
        text.contains("url = \"http://127.0.0.1:8080/health\""),
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

fn init_detects_rust_projects() {
    let project = project_copy("hello-rust");
    std::fs::remove_file(project.path().join("shipit.toml")).unwrap();
    Project::at(project.path())
        .shipit(&["init"])
        .run()
        .success();
    let text = std::fs::read_to_string(project.path().join("shipit.toml")).unwrap();
    assert!(
        text.contains("name = \"hello-rust\"") && text.contains("cargo_bin"),
        "{text}"
    );
    // A hand-written parser: "--port" and `let mut port = 8080;` in src/main.rs.
    assert!(
        text.contains("exec_args = [\"--port\", \"8080\"]")
            && text.contains("in src/main.rs:")
            && text.contains("url = \"http://127.0.0.1:8080/health\""),
        "{text}"
    );
}

/// A Go service that uses the flag package but has no port flag: init writes no exec_args (a
/// `--port` would stop it at start with "flag provided but not defined"), and takes the health
/// URL's port from its listen address. The service then starts as the unit would start it.
fn init_writes_no_port_flag_a_go_service_does_not_have() {
    let port = free_port();
    let project = go_project(&format!(
        "package main\n\nimport (\n\t\"flag\"\n\t\"fmt\"\n\t\"net/http\"\n)\n\n\
         func main() {{\n\
         \tverbose := flag.Bool(\"verbose\", false, \"log requests\")\n\
         \tflag.Parse()\n\
         \thttp.HandleFunc(\"/health\", func(w http.ResponseWriter, r *http.Request) {{\n\
         \t\tif *verbose {{\n\t\t\tfmt.Println(r.URL)\n\t\t}}\n\
         \t\tfmt.Fprintln(w, `{{\"status\":\"UP\"}}`)\n\
         \t}})\n\
         \tpanic(http.ListenAndServe(\":{port}\", nil))\n\
         }}\n"
    ));
    let dir = project.path().to_str().unwrap();
    shipit(&["-C", dir, "init"])
        .run()
        .success()
        .stderr_has(&format!("listens on port {port} (main.go:18)"));
    let text = std::fs::read_to_string(project.path().join("shipit.toml")).unwrap();
    assert!(
        text.contains("# exec_args = [") && text.contains("no port or address flag found"),
        "{text}"
    );
    assert!(!text.contains("\nexec_args"), "{text}");
    assert!(
        text.contains(&format!(
            "# detected: port {port}, from the listen address in main.go:18\n\
             url = \"http://127.0.0.1:{port}/health\""
        )),
        "{text}"
    );

    let out = tempfile::tempdir().unwrap();
    let archive = shipit(&[
        "-C",
        dir,
        "build",
        "--version-override",
        "1",
        "--out-dir",
        out.path().to_str().unwrap(),
    ])
    .run()
    .success()
    .stdout;
    let entries = package_map(std::path::Path::new(archive.trim()));
    let binary = out.path().join("demo");
    std::fs::write(&binary, &entries["demo"].data).unwrap();
    std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let unit = &entries["demo.service"].data;
    let exec_start = String::from_utf8_lossy(unit)
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=").map(str::to_string))
        .unwrap();
    assert_eq!(exec_start, "/opt/demo/current/demo", "no arguments");
    let _service = Service(
        std::process::Command::new(&binary)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert_eq!(http_get(port, "/health").0, 200);
}

/// Nothing in the source says where the service listens: init says what to set instead of
/// writing a guess, and the file still loads.
fn init_says_what_to_set_when_the_source_shows_no_port() {
    let project = go_project(
        "package main\n\nimport (\n\t\"net/http\"\n\t\"os\"\n)\n\n\
         func main() {\n\tpanic(http.ListenAndServe(os.Args[1], nil))\n}\n",
    );
    let dir = project.path().to_str().unwrap();
    shipit(&["-C", dir, "init"])
        .run()
        .success()
        .stderr_has("no port flag, PORT variable or listen address in the source");
    let text = std::fs::read_to_string(project.path().join("shipit.toml")).unwrap();
    assert!(
        text.contains("# [health]\n# url = \"http://127.0.0.1:PORT/health\"")
            && text.contains("set the\n# port your service listens on"),
        "{text}"
    );
    shipit(&["-C", dir, "unit", "generate", "--verify"])
        .run()
        .success();

    // PORT read from the environment with a default: that default is the health URL's port.
    std::fs::write(
        project.path().join("main.go"),
        "package main\n\nimport (\n\t\"net/http\"\n\t\"os\"\n)\n\n\
         func main() {\n\tport := os.Getenv(\"PORT\")\n\tif port == \"\" {\n\t\tport = \"9090\"\n\t}\n\
         \tpanic(http.ListenAndServe(\":\"+port, nil))\n}\n",
    )
    .unwrap();
    shipit(&["-C", dir, "init", "--force"]).run().success();
    let text = std::fs::read_to_string(project.path().join("shipit.toml")).unwrap();
    assert!(
        text.contains(
            "# detected: port 9090, from PORT's default in main.go:9\n\
             url = \"http://127.0.0.1:9090/health\""
        ),
        "{text}"
    );
}

/// A Go module named example.com/demo holding `main_go` as main.go.
fn go_project(main_go: &str) -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("go.mod"),
        "module example.com/demo\n\ngo 1.19\n",
    )
    .unwrap();
    std::fs::write(project.path().join("main.go"), main_go).unwrap();
    project
}

/// libssh2 up to 1.11.1 has a pre-auth heap overflow a malicious server can trigger
/// (CVE-2026-55200); libssh2-sys 0.3.3 vendors it fixed. What counts is the libssh2 in the
/// binary: the version it reports at run time must be the one the locked libssh2-sys vendors,
/// built in, never a system libssh2.so (Debian's 1.10 and 1.11.1 lack the fix).
fn the_linked_libssh2_carries_the_overflow_fix() {
    let lock = std::fs::read_to_string(repo_root().join("Cargo.lock")).unwrap();
    let locked = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"libssh2-sys\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("libssh2-sys in Cargo.lock");
    assert!(
        numbers(&locked) >= vec![0, 3, 3],
        "libssh2-sys {locked} lacks the fix; need >= 0.3.3"
    );

    let binary = std::fs::read(env!("CARGO_BIN_EXE_shipit")).unwrap();
    let elf = goblin::elf::Elf::parse(&binary).expect("shipit is an ELF file");
    assert!(
        !elf.libraries.iter().any(|l| l.starts_with("libssh2")),
        "shipit links a system libssh2: {:?}",
        elf.libraries
    );
    let version = shipit(&["--version"]).run().success().stdout;
    let linked = version
        .lines()
        .find_map(|l| l.strip_prefix("libssh2 "))
        .unwrap_or_else(|| panic!("no libssh2 line in --version:\n{version}"));
    assert!(
        numbers(linked) >= vec![1, 11, 1],
        "shipit runs libssh2 {linked}; need >= 1.11.1 with the fix"
    );
    assert_eq!(
        linked,
        vendored_libssh2(&locked),
        "shipit runs another libssh2 than libssh2-sys {locked} vendors"
    );
}

/// The numbers of a version, up to a suffix: "1.11.2_DEV" → [1, 11, 2].
fn numbers(version: &str) -> Vec<u32> {
    version
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap_or_default()
        .split('.')
        .map(|n| n.parse().unwrap_or_else(|_| panic!("version {version:?}")))
        .collect()
}

/// LIBSSH2_VERSION in the libssh2 sources that libssh2-sys `version` vendors, where cargo keeps
/// them.
fn vendored_libssh2(version: &str) -> String {
    // For this platform only: offline, cargo has no other platforms' crates to read.
    let platform = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let metadata = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &platform])
        .current_dir(repo_root())
        .output()
        .expect("run cargo metadata");
    assert!(
        metadata.status.success(),
        "{}",
        String::from_utf8_lossy(&metadata.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout).unwrap();
    let manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "libssh2-sys" && p["version"] == version)
        .and_then(|p| p["manifest_path"].as_str())
        .expect("libssh2-sys in cargo metadata");
    let header = std::path::Path::new(manifest).with_file_name("libssh2/include/libssh2.h");
    let header =
        std::fs::read_to_string(&header).unwrap_or_else(|e| panic!("{}: {e}", header.display()));
    header
        .lines()
        .find_map(|l| l.strip_prefix("#define LIBSSH2_VERSION "))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("LIBSSH2_VERSION in libssh2.h")
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(Nothing, 2, help_snapshots),
        crate::test!(Nothing, 0, completions_and_man_page),
        crate::test!(
            Nothing,
            2,
            init_writes_a_working_config_and_keeps_an_existing_one
        ),
        crate::test!(Nothing, 0, init_detects_rust_projects),
        crate::test!(
            Nothing,
            13,
            init_writes_no_port_flag_a_go_service_does_not_have
        ),
        crate::test!(
            Nothing,
            2,
            init_says_what_to_set_when_the_source_shows_no_port
        ),
        crate::test!(Nothing, 1, the_linked_libssh2_carries_the_overflow_fix),
    ]
}
