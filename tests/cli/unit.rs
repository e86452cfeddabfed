//! `shipit unit generate`: the rendered unit, templates and `systemd-analyze verify`.

use crate::support::*;

/// hello-go without `[service] listen` (the example has it): one unit, the service.
fn plain_hello_go() -> tempfile::TempDir {
    project_without_listen("hello-go")
}

fn generate(project: &std::path::Path, extra: &[&str]) -> Run {
    let mut args = vec!["-C", project.to_str().unwrap(), "unit", "generate"];
    args.extend_from_slice(extra);
    shipit(&args).run()
}

fn default_unit_for_hello_go() {
    let run = generate(&example("hello-go"), &[]).success();
    insta::assert_snapshot!(run.stdout);
}

fn generated_units_pass_systemd_analyze_verify() {
    for name in ["hello-go", "hello-rust"] {
        generate(&example(name), &["--verify"])
            .success()
            .stderr_has("Verified");
    }
}

fn output_file_gets_the_unit_and_stdout_stays_empty() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unit.service");
    let plain = plain_hello_go();
    let run = generate(plain.path(), &["-o", file.to_str().unwrap()]).success();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let unit = std::fs::read_to_string(&file).unwrap();
    assert!(
        unit.contains("ExecStart=/opt/hello-go/current/hello-go --port 8080"),
        "{unit}"
    );
}

fn every_value_comes_from_shipit_toml_without_html_escaping() {
    let project = project_copy("hello-go");
    std::fs::write(
        project.path().join("shipit.toml"),
        r#"
[app]
name = "svc"

[service]
description = "Svc <100% & \"quoted\">"
user = "svcuser"
exec_args = ["--port", "8080", "--greeting", "hi $USER"]
limit_nofile = 1024
restart = "always"
restart_sec = 2
start_limit_interval_sec = 30
start_limit_burst = 3
timeout_stop_sec = 10
capabilities = ["CAP_NET_BIND_SERVICE"]

[service.env]
GREETING = "a=b \"c\""

[service.hardening]
MemoryDenyWriteExecute = false
ProtectSystem = "full"
"#,
    )
    .unwrap();
    let unit = generate(project.path(), &["--verify"]).success().stdout;
    for line in [
        "Description=Svc <100%% & \"quoted\">",
        "User=svcuser",
        "ExecStart=/opt/svc/current/svc --port 8080 --greeting \"hi $$USER\"",
        "LimitNOFILE=1024",
        "Restart=always",
        "RestartSec=2",
        "TimeoutStopSec=10",
        "Environment=\"GREETING=a=b \\\"c\\\"\"",
        "ProtectSystem=full",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "missing {line:?} in\n{unit}"
        );
    }
    assert!(
        !unit
            .lines()
            .any(|l| l.starts_with("MemoryDenyWriteExecute=")),
        "{unit}"
    );
    assert!(
        !unit.contains("&quot;") && !unit.contains("&amp;"),
        "{unit}"
    );
    // StartLimit* only take effect in [Unit].
    let unit_section = unit.split("[Service]").next().unwrap();
    assert!(
        unit_section.contains("StartLimitIntervalSec=30")
            && unit_section.contains("StartLimitBurst=3")
    );
}

fn a_project_template_overrides_the_built_in_one() {
    let project = plain_hello_go();
    std::fs::create_dir(project.path().join("templates")).unwrap();
    let template = "[Unit]\nDescription={{description}}\n\n[Service]\nExecStart={{exec_start}}\nLimitNOFILE=lots\n";
    std::fs::write(project.path().join("templates/service.hbs"), template).unwrap();
    let unit = generate(project.path(), &[]).success().stdout;
    assert_eq!(
        unit,
        "[Unit]\nDescription=hello-go example service\n\n[Service]\nExecStart=/opt/hello-go/current/hello-go --port 8080\nLimitNOFILE=lots\n"
    );
    // systemd-analyze exits 0 on this bad value; shipit still refuses it.
    generate(project.path(), &["--verify"])
        .failure(2)
        .stderr_has("systemd-analyze verify rejected hello-go.service")
        .stderr_has("hello-go.service:6: Failed to parse resource value, ignoring: lots");
}

fn a_template_typo_is_an_error_in_strict_mode() {
    let project = project_copy("hello-go");
    std::fs::create_dir(project.path().join("templates")).unwrap();
    std::fs::write(
        project.path().join("templates/service.hbs"),
        "[Unit]\nDescription={{descripton}}\n",
    )
    .unwrap();
    generate(project.path(), &[])
        .failure(2)
        .stderr_has("templates/service.hbs")
        .stderr_has("descripton");
}

/// For an older systemd, newer directives become comments (line numbers stay), each with a note.
fn a_unit_for_systemd_239_leaves_out_what_239_does_not_know() {
    let plain = plain_hello_go();
    let run = generate(plain.path(), &["--systemd-version", "239", "--verify"])
        .success()
        .stderr_has("Note ProtectClock= needs systemd 245, the unit is for 239: left out")
        .stderr_has("ProtectKernelLogs= needs systemd 244")
        .stderr_has("ProtectHostname= needs systemd 242")
        .stderr_has("RestrictSUIDSGID= needs systemd 242")
        .stderr_has("Verified");
    let unit = run.stdout;
    assert!(
        unit.lines()
            .any(|l| l == "# left out (needs systemd 245): ProtectClock=yes"),
        "{unit}"
    );
    assert!(
        !unit.lines().any(|l| l.starts_with("ProtectClock=")),
        "{unit}"
    );
    let full = generate(plain.path(), &[]).success().stdout;
    assert_eq!(unit.lines().count(), full.lines().count());
    assert_eq!(
        generate(plain.path(), &["--systemd-version", "257"])
            .success()
            .stdout,
        full
    );
    generate(plain.path(), &["--systemd-version", "200"])
        .failure(2)
        .stderr_has("239");
}

/// `shipit build` checks the names in the unit with this machine's systemd-analyze before
/// building, and says what the host would say; values are left to the host's systemd.
fn build_refuses_a_directive_systemd_does_not_know() {
    let project = plain_hello_go();
    std::fs::create_dir(project.path().join("templates")).unwrap();
    std::fs::write(
        project.path().join("templates/service.hbs"),
        "[Unit]\nDescription={{description}}\n\n[Service]\nExecStart={{exec_start}}\nProtectKernelLog=yes\n",
    )
    .unwrap();
    let dir = project.path().to_str().unwrap();
    let run = shipit(&["-C", dir, "build", "--version-override", "1.0.0"])
        .run()
        .failure(2)
        .stderr_has("hello-go.service names what systemd ")
        .stderr_has("hello-go.service:6: Unknown key")
        .stderr_has("'ProtectKernelLog'");
    assert!(!run.stderr.contains("Building"), "{}", run.stderr);
    assert!(!project.path().join("dist").exists());
}

/// With `listen`, -o DIR gets both units; the socket's and the service's are snapshots, and
/// the service differs from the one without `listen` only by requiring the socket.
fn listen_adds_a_socket_unit_the_service_requires() {
    let project = project_with_listen("hello-go", r#"["0.0.0.0:8080", "[::1]:8080"]"#);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("units/");
    let run = generate(project.path(), &["-o", dir.to_str().unwrap(), "--verify"]).success();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let run = run.stderr_has("Verified hello-go.service and hello-go.socket");
    assert!(run.stderr.contains("Wrote"), "{}", run.stderr);
    let socket = std::fs::read_to_string(dir.join("hello-go.socket")).unwrap();
    let service = std::fs::read_to_string(dir.join("hello-go.service")).unwrap();
    insta::assert_snapshot!("hello_go_socket_unit", socket);
    insta::assert_snapshot!("hello_go_service_unit_with_listen", service);
    let plain = generate(plain_hello_go().path(), &[]).success().stdout;
    let added: Vec<&str> = service
        .lines()
        .filter(|l| !plain.lines().any(|p| p == *l))
        .collect();
    assert_eq!(
        added,
        [
            "# The listening sockets come from hello-go.socket, which stays open across restarts.",
            "Requires=hello-go.socket",
            "After=hello-go.socket",
        ]
    );
    assert_eq!(service.lines().count(), plain.lines().count() + added.len());

    // stdout shows both, each after the path `systemctl cat` would show.
    let shown = generate(project.path(), &[]).success().stdout;
    assert_eq!(
        shown,
        format!(
            "# /etc/systemd/system/hello-go.service\n{service}\n# /etc/systemd/system/hello-go.socket\n{socket}"
        )
    );
}

/// -o FILE writes the service unit as it always did; with a socket too it is refused, and a
/// directory (existing, or a path ending in /) takes every unit.
fn output_takes_a_file_for_one_unit_and_a_directory_for_several() {
    let out = tempfile::tempdir().unwrap();
    let existing = out.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    generate(plain_hello_go().path(), &["-o", existing.to_str().unwrap()]).success();
    let names = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&existing), ["hello-go.service"]);

    let project = project_with_listen("hello-go", r#"["8080"]"#);
    let file = out.path().join("hello-go.service");
    generate(project.path(), &["-o", file.to_str().unwrap()])
        .failure(2)
        .stderr_has(
            "with [service] listen there are two units, hello-go.service and hello-go.socket",
        )
        .stderr_has("help: give -o a directory");
    assert!(!file.exists());
    generate(project.path(), &["-o", existing.to_str().unwrap()]).success();
    assert_eq!(names(&existing), ["hello-go.service", "hello-go.socket"]);
    let socket = std::fs::read_to_string(existing.join("hello-go.socket")).unwrap();
    assert!(socket.lines().any(|l| l == "ListenStream=8080"), "{socket}");
}

/// A project's templates/socket.hbs replaces the built-in one, strictly, and the socket unit is
/// adapted to a systemd release, checked and named in notes exactly as the service unit is.
fn a_project_socket_template_is_rendered_adapted_and_checked_like_the_service() {
    let project = project_with_listen("hello-go", r#"["127.0.0.1:8080"]"#);
    let templates = project.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("socket.hbs"),
        "[Socket]\n{{#each listen}}\nListenStream={{this}}\n{{/each}}\nBacklog={{backlog}}\nProtectClock=yes\n",
    )
    .unwrap();
    let run = generate(project.path(), &["--systemd-version", "239", "--verify"])
        .success()
        .stderr_has(
            "Note hello-go.socket: ProtectClock= needs systemd 245, the unit is for 239: left out",
        )
        .stderr_has("Note hello-go.service: ProtectClock= needs systemd 245");
    assert!(
        run.stdout.ends_with(
            "# /etc/systemd/system/hello-go.socket\n[Socket]\nListenStream=127.0.0.1:8080\n\
             Backlog=2147483647\n# left out (needs systemd 245): ProtectClock=yes\n"
        ),
        "{}",
        run.stdout
    );

    std::fs::write(
        templates.join("socket.hbs"),
        "[Socket]\nBacklog={{backlgo}}\n",
    )
    .unwrap();
    generate(project.path(), &[])
        .failure(2)
        .stderr_has("templates/socket.hbs")
        .stderr_has("backlgo");

    // `shipit build` checks the socket's names too, before building anything.
    std::fs::write(
        templates.join("socket.hbs"),
        "[Socket]\nListenStream=8080\nBacklogg=5\n",
    )
    .unwrap();
    let dir = project.path().to_str().unwrap();
    shipit(&["-C", dir, "build", "--version-override", "1.0.0"])
        .run()
        .failure(2)
        .stderr_has("hello-go.service and hello-go.socket names what systemd ")
        .stderr_has("hello-go.socket:3: Unknown key")
        .stderr_has("templates/service.hbs, templates/socket.hbs");
    assert!(!project.path().join("dist").exists());
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(Nothing, 0, default_unit_for_hello_go),
        crate::test!(Nothing, 1, generated_units_pass_systemd_analyze_verify),
        crate::test!(Nothing, 0, output_file_gets_the_unit_and_stdout_stays_empty),
        crate::test!(
            Nothing,
            0,
            every_value_comes_from_shipit_toml_without_html_escaping
        ),
        crate::test!(Nothing, 1, a_project_template_overrides_the_built_in_one),
        crate::test!(Nothing, 0, a_template_typo_is_an_error_in_strict_mode),
        crate::test!(
            Nothing,
            0,
            a_unit_for_systemd_239_leaves_out_what_239_does_not_know
        ),
        crate::test!(Nothing, 1, build_refuses_a_directive_systemd_does_not_know),
        crate::test!(Nothing, 1, listen_adds_a_socket_unit_the_service_requires),
        crate::test!(
            Nothing,
            0,
            output_takes_a_file_for_one_unit_and_a_directory_for_several
        ),
        crate::test!(
            Nothing,
            0,
            a_project_socket_template_is_rendered_adapted_and_checked_like_the_service
        ),
    ]
}
