//! The scripts shipit runs on hosts, as hosts get them, through shellcheck.

fn every_host_script_passes_shellcheck() {
    let dir = tempfile::tempdir().unwrap();
    let mut failed = Vec::new();
    for (name, script) in shipit::scripts_check::every_host_script() {
        let path = dir.path().join(format!("{name}.sh"));
        std::fs::write(&path, format!("# shellcheck shell=sh\n{script}")).unwrap();
        // The preamble sets every path and status; a script uses only some (SC2034). A quoted
        // `$` is meant literally (SC2016): the timer's script as a value, systemd's `$$`.
        let out = std::process::Command::new("shellcheck")
            .args(["-e", "SC2034,SC2016"])
            .arg(&path)
            .output()
            .unwrap();
        if !out.status.success() {
            failed.push(format!("{name}:\n{}", String::from_utf8_lossy(&out.stdout)));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![crate::test!(
        Shellcheck,
        2,
        every_host_script_passes_shellcheck
    )]
}
