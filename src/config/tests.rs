//! Whole files through `parse`: settings of one section that depend on another or on the project.

use super::model::Builder;
use super::{FILE_NAME, parse};

#[test]
fn cgo_settings_belong_to_go_and_a_written_builder_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"demo\"\n",
    )
    .unwrap();
    let parse = |text: &str| parse(dir.path(), &dir.path().join(FILE_NAME), text);
    let err = parse("[build]\ncc = \"zig\"\n").unwrap_err().to_string();
    assert!(
        err.contains("shipit.toml:2:6") && err.contains("builder = \"zigbuild\""),
        "{err}"
    );
    assert!(parse("[build]\ncgo = \"off\"\n").is_err());
    let auto = parse("").unwrap().build;
    assert_eq!((auto.builder, auto.zig_fallback), (Builder::Cargo, true));
    let cargo = parse("[build]\nbuilder = \"cargo\"\n").unwrap().build;
    assert_eq!((cargo.builder, cargo.zig_fallback), (Builder::Cargo, false));
    let zig = parse("[build]\nbuilder = \"zigbuild\"\n").unwrap().build;
    assert_eq!(zig.builder, Builder::Zigbuild);
}

#[test]
fn preflight_is_on_with_sockets_unless_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go.mod"), "module example.com/demo\n").unwrap();
    let preflight = |text: &str| {
        parse(dir.path(), &dir.path().join(FILE_NAME), text)
            .map(|c| c.deploy.preflight)
            .map_err(|e| e.to_string())
    };
    assert_eq!(preflight(""), Ok(false));
    assert_eq!(preflight("[deploy]\npreflight = false\n"), Ok(false));
    let sockets = "[service]\nlisten = [\"8080\"]\n";
    assert_eq!(preflight(sockets), Ok(true));
    assert_eq!(
        preflight(&format!("{sockets}[deploy]\npreflight = false\n")),
        Ok(false)
    );
    let err = preflight("[deploy]\npreflight = true\n").unwrap_err();
    assert!(
        err.contains("shipit.toml:2:13") && err.contains("needs [service] listen"),
        "{err}"
    );
}

#[test]
fn a_hooks_timeout_bounds_the_host_hooks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go.mod"), "module example.com/demo\n").unwrap();
    let timeout = |text: &str| {
        parse(dir.path(), &dir.path().join(FILE_NAME), text)
            .map(|c| c.hooks.timeout)
            .map_err(|e| e.to_string())
    };
    let hook = "[hooks]\nbefore_switch = [\"./demo\", \"migrate\"]\n";
    assert_eq!(timeout(hook), Ok(None));
    assert_eq!(
        timeout(&format!("{hook}timeout = \"10m\"\n")),
        Ok(Some(std::time::Duration::from_secs(600)))
    );
    for (text, place, says) in [
        (
            "timeout = \"soon\"\n",
            "shipit.toml:3:11",
            "not a duration like \"10m\"",
        ),
        ("timeout = \"0s\"\n", "shipit.toml:3:11", "longer than 0s"),
    ] {
        let err = timeout(&format!("{hook}{text}")).unwrap_err();
        assert!(err.contains(place) && err.contains(says), "{err}");
    }
    let err = timeout("[hooks]\nlocal_after = [\"true\"]\ntimeout = \"1m\"\n").unwrap_err();
    assert!(
        err.contains("shipit.toml:3:11") && err.contains("needs a before_switch or after_switch"),
        "{err}"
    );
}
