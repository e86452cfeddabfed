//! Bad shipit.toml and bad names: refused before anything runs, with file:line:col and exit 2.

use crate::support::*;

/// Writes `config` into a copy of hello-go and runs `unit generate`, which loads and validates it.
fn with_config(config: &str) -> Run {
    let project = project_copy("hello-go");
    std::fs::write(project.path().join("shipit.toml"), config).unwrap();
    Project::at(project.path())
        .shipit(&["unit", "generate"])
        .run()
}

fn dangerous_app_names_are_refused_with_their_location() {
    with_config("[app]\nname = \"a;rm -rf /\"\n")
        .failure(2)
        .stderr_has("shipit.toml:2:8: invalid app name \"a;rm -rf /\"");
    with_config("[app]\nname = \"../x\"\n")
        .failure(2)
        .stderr_has("shipit.toml:2:8: invalid app name \"../x\"");
}

fn each_kind_of_bad_value_points_at_its_place() {
    let cases = [
        (
            "[app]\nnam = \"x\"\n",
            "shipit.toml:2:1",
            "unknown field `nam`",
        ),
        (
            "[service]\nuser = \"Root User\"\n",
            "shipit.toml:2:8",
            "invalid user name",
        ),
        (
            "[service]\nfiles = [\"../secret\"]\n",
            "shipit.toml:2:10",
            "must not contain '..'",
        ),
        (
            "[service]\nfiles = [\"/etc/passwd\"]\n",
            "shipit.toml:2:10",
            "relative path",
        ),
        (
            "[service]\nfiles = [\"missing.yaml\"]\n",
            "shipit.toml:2:10",
            "is not a file",
        ),
        (
            "[service.env]\n\"A B\" = \"x\"\n",
            "shipit.toml:2:1",
            "invalid environment variable name",
        ),
        (
            "[service]\nrestart = \"sometimes\"\n",
            "shipit.toml:2:11",
            "restart must be one of",
        ),
        (
            "[service]\nlimit_nofile = 0\n",
            "shipit.toml:2:16",
            "limit_nofile must be between",
        ),
        (
            "[service]\nexec_args = [\"a\\nb\"]\n",
            "shipit.toml:2:14",
            "newline",
        ),
        (
            "[hooks]\nbefore_switch = []\n",
            "shipit.toml:2:17",
            "before_switch needs a program",
        ),
        (
            "[hooks]\nlocal_after = [\"$HOME/x\"]\n",
            "shipit.toml:2:15",
            "no `$` in the program's name",
        ),
        (
            "[hooks]\nbefore_switch_on = \"each\"\n",
            "shipit.toml:2:20",
            "before_switch_on needs a before_switch hook",
        ),
        (
            "[hooks]\nbefore_switch = [\"./app\"]\nbefore_switch_on = \"all\"\n",
            "shipit.toml:3:20",
            "unknown before_switch_on \"all\": use \"first\", \"each\"",
        ),
        (
            "[hooks]\nafter = [\"./app\"]\n",
            "shipit.toml:2:1",
            "unknown field `after`",
        ),
        (
            "[service]\nenv_command = []\n",
            "shipit.toml:2:15",
            "env_command needs a program",
        ),
        (
            "[service]\nenv_command = [\"op\", \"read\\nx\"]\n",
            "shipit.toml:2:22",
            "a word of env_command must not contain a newline",
        ),
        (
            "[hosts.a]\naddress = \"10.0.0.1\"\nenv_command = \"op read x\"\n",
            "shipit.toml:3:15",
            "invalid type: string",
        ),
        (
            "[health]\nurl = \"https://x/health\"\n",
            "shipit.toml:2:7",
            "must start with http://",
        ),
        (
            "[health]\nurl = \"http://127.0.0.1:8080/\"\ntimeout = \"soon\"\n",
            "shipit.toml:3:11",
            "not a duration",
        ),
        (
            "[build]\nbuilder = \"cargo\"\n",
            "shipit.toml:2:11",
            "cannot build this Go project",
        ),
        (
            "[build]\ncgo = \"yes\"\n",
            "shipit.toml:2:7",
            "unknown cgo \"yes\": use \"auto\", \"on\", \"off\"",
        ),
        (
            "[build]\ncc = \"clang\"\n",
            "shipit.toml:2:6",
            "unknown cc \"clang\": use \"auto\", \"zig\", \"musl-gcc\"",
        ),
        (
            "[build]\nbuilder = \"zig\"\n",
            "shipit.toml:2:11",
            "use \"go\", \"cargo\", \"zigbuild\", \"cross\"",
        ),
        (
            "[build]\nversion_var = \"version\"\n",
            "shipit.toml:2:15",
            "is not a Go variable",
        ),
        (
            "[app]\nversion = \"1.0 beta\"\n",
            "shipit.toml:2:11",
            "invalid version",
        ),
        (
            "[service]\nlimit_nofile = \"lots\"\n",
            "shipit.toml:2:16",
            "invalid type",
        ),
        (
            "[service.hardening]\nProtectSystem = \"strict\\\\\"\n",
            "shipit.toml:2:17",
            "must not end in a backslash",
        ),
        (
            "[service.hardening]\nProtectKernelLog = \"yes\"\n",
            "shipit.toml:2:1",
            "\"ProtectKernelLog\" is not a directive shipit knows (did you mean ProtectKernelLogs?)",
        ),
        (
            "[service.hardening]\nBacklog = \"5\"\n",
            "shipit.toml:2:1",
            "\"Backlog\" is not a directive shipit knows",
        ),
        (
            "[service]\nlisten = [\"localhost:8080\"]\n",
            "shipit.toml:2:11",
            "systemd does not resolve host names: use an IP address",
        ),
        (
            "[service]\nlisten = [\"0.0.0.0\"]\n",
            "shipit.toml:2:11",
            "use a port (\"8080\"), IPv4:port (\"0.0.0.0:8080\") or [IPv6]:port (\"[::]:8080\")",
        ),
        (
            "[service]\nlisten = [\"[::1]:0\"]\n",
            "shipit.toml:2:11",
            "the port must be 1-65535",
        ),
        (
            "[service]\nlisten = [\"/run/hello.sock\"]\n",
            "shipit.toml:2:11",
            "takes TCP sockets only",
        ),
        (
            "[service]\nlisten = [8080]\n",
            "shipit.toml:2:11",
            "invalid type: integer `8080`, expected a string",
        ),
        (
            "[service]\nlisten = [\"8080\", \"0.0.0.0:8080\"]\n",
            "shipit.toml:2:19",
            "0.0.0.0:8080 and 8080 cannot both listen",
        ),
        (
            "[service]\nlisten = [\"127.0.0.1:8080\", \"127.0.0.1:8080\"]\n",
            "shipit.toml:2:29",
            "127.0.0.1:8080 is listed twice",
        ),
        (
            "[deploy]\npreflight = true\n",
            "shipit.toml:2:13",
            "preflight starts the new release on a socket of its own before the switch, so it needs [service] listen",
        ),
        (
            "[service]\nfiles = [\"hello-go.socket\"]\n",
            "shipit.toml:2:10",
            "would clash with a file shipit puts in the package",
        ),
        ("[app\n", "shipit.toml:1:5", ""),
    ];
    for (config, location, reason) in cases {
        let run = with_config(config).failure(2);
        assert!(
            run.stderr.contains(location) && run.stderr.contains(reason),
            "config {config:?}: expected {location} and {reason:?} in\n{}",
            run.stderr
        );
    }
}

fn a_missing_explicit_config_file_is_an_error() {
    Project::at(&example("hello-go"))
        .shipit(&["-c", "/nonexistent/shipit.toml", "unit", "generate"])
        .run()
        .failure(2)
        .stderr_has("cannot read /nonexistent/shipit.toml");
}

fn a_directory_without_a_project_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Project::at(dir.path())
        .shipit(&["build"])
        .run()
        .failure(2)
        .stderr_has("no go.mod or Cargo.toml");
}

/// Symlinks never take a shipped file out of the project: a repository could otherwise ship a
/// file of the machine that builds it (`leak.txt -> ~/.ssh/id_ed25519`) to every host.
fn files_and_env_files_may_not_point_outside_the_project() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("id_ed25519");
    std::fs::write(&secret, "PRIVATE KEY\n").unwrap();
    std::fs::create_dir(outside.path().join("conf")).unwrap();
    std::fs::write(outside.path().join("conf/app.yaml"), "a: b\n").unwrap();
    let real = |p: &std::path::Path| p.canonicalize().unwrap().display().to_string();

    let project = project_copy("hello-go");
    let dir = project.path();
    std::os::unix::fs::symlink(&secret, dir.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("conf"), dir.join("conf")).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join(".env.prod")).unwrap();
    std::os::unix::fs::symlink("config.yaml", dir.join("also.yaml")).unwrap();
    let run = |config: &str, command: &[&str]| {
        std::fs::write(dir.join("shipit.toml"), config).unwrap();
        let mut args = vec!["-C", dir.to_str().unwrap()];
        args.extend_from_slice(command);
        shipit(&args).run()
    };
    let build = ["build", "--out-dir", "dist"];

    for (config, location, path) in [
        (
            "[service]\nfiles = [\"leak.txt\"]\n",
            "shipit.toml:2:10",
            "leak.txt",
        ),
        (
            "[service]\nfiles = [\"conf/app.yaml\"]\n",
            "shipit.toml:2:10",
            "conf/app.yaml",
        ),
        (
            "[service]\nenv_file = \".env.prod\"\n",
            "shipit.toml:2:12",
            ".env.prod",
        ),
    ] {
        let target = if path == "conf/app.yaml" {
            real(&outside.path().join("conf/app.yaml"))
        } else {
            real(&secret)
        };
        run(config, &build)
            .failure(2)
            .stderr_has(&format!(
                "{location}: \"{path}\" points outside the project, to {target}"
            ))
            .stderr_has("help: ");
        assert!(
            !dir.join("dist").exists(),
            "something was built for {config:?}"
        );
    }

    // A link that stays inside is fine; an env_file outside is fine when its path says so.
    let absolute = format!(
        "[service]\nfiles = [\"also.yaml\"]\nenv_file = {:?}\n",
        secret.display().to_string()
    );
    run(&absolute, &["unit", "generate"]).success();
}

fn a_jump_host_that_ssh_could_read_as_an_option_is_refused() {
    with_config("[hosts.web]\naddress = \"10.0.0.5\"\nproxy_jump = \"ok,-oProxyCommand=x\"\n")
        .failure(2)
        .stderr_has("shipit.toml:3:14")
        .stderr_has("invalid jump host \"-oProxyCommand=x\"");
    with_config(
        "[hosts.web]\naddress = \"10.0.0.5\"\nproxy_jump = \"ops@bastion:2222,ssh://b2\"\n",
    )
    .success();
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(
            Nothing,
            0,
            dangerous_app_names_are_refused_with_their_location
        ),
        crate::test!(Nothing, 1, each_kind_of_bad_value_points_at_its_place),
        crate::test!(Nothing, 0, a_missing_explicit_config_file_is_an_error),
        crate::test!(Nothing, 1, a_directory_without_a_project_is_refused),
        crate::test!(
            Nothing,
            0,
            files_and_env_files_may_not_point_outside_the_project
        ),
        crate::test!(
            Nothing,
            0,
            a_jump_host_that_ssh_could_read_as_an_option_is_refused
        ),
    ]
}
