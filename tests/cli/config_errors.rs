//! Bad shipit.toml and bad names: refused before anything runs, with file:line:col and exit 2.

use crate::support::*;

/// Writes `config` into a copy of hello-go and runs `unit generate`, which loads and validates it.
fn with_config(config: &str) -> Run {
    let project = project_copy("hello-go");
    std::fs::write(project.path().join("shipit.toml"), config).unwrap();
    shipit(&["-C", project.path().to_str().unwrap(), "unit", "generate"]).run()
}

#[test]
fn dangerous_app_names_are_refused_with_their_location() {
    with_config("[app]\nname = \"a;rm -rf /\"\n")
        .failure(2)
        .stderr_has("shipit.toml:2:8: invalid app name \"a;rm -rf /\"");
    with_config("[app]\nname = \"../x\"\n")
        .failure(2)
        .stderr_has("shipit.toml:2:8: invalid app name \"../x\"");
}

#[test]
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

#[test]
fn a_missing_explicit_config_file_is_an_error() {
    shipit(&[
        "-C",
        example("hello-go").to_str().unwrap(),
        "-c",
        "/nonexistent/shipit.toml",
        "unit",
        "generate",
    ])
    .run()
    .failure(2)
    .stderr_has("cannot read /nonexistent/shipit.toml");
}

#[test]
fn a_directory_without_a_project_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    shipit(&["-C", dir.path().to_str().unwrap(), "build"])
        .run()
        .failure(2)
        .stderr_has("no go.mod or Cargo.toml");
}

#[test]
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
