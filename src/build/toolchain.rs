//! The C toolchains that static builds with C code need, found where their own tools look:
//! musl-gcc (Debian's musl-tools; this machine's architecture only), zig (any target) and
//! cargo-zigbuild. Only the builds that need one look for it, so shipit itself needs none.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::target::Target;

/// How to get each tool, one line each, for `help:` lines.
pub(super) const INSTALL_MUSL_GCC: &str = "`apt-get install musl-tools` (Debian/Ubuntu)";
pub(super) const INSTALL_ZIG: &str = "zig: `pip install ziglang` in a virtualenv (found as `zig` on PATH \
     or `python3 -m ziglang`) or `brew install zig` (macOS)";
pub(super) const INSTALL_ZIGBUILD: &str = "zig and cargo-zigbuild: `pip install cargo-zigbuild` in a \
     virtualenv (it brings ziglang) or `brew install zig cargo-zigbuild` (macOS)";

/// The architecture shipit runs on, when it is one it builds for.
pub(super) fn native() -> Option<Target> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Target::LinuxAmd64),
        "aarch64" => Some(Target::LinuxArm64),
        _ => None,
    }
}

/// `program` in a PATH directory, executable.
pub(super) fn on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The words that run zig: `zig` on PATH, else PyPI's ziglang as `python3 -m ziglang` (the
/// order cargo-zigbuild looks in).
pub(super) fn zig() -> Option<Vec<String>> {
    if on_path("zig").is_some() {
        return Some(vec!["zig".into()]);
    }
    let python = ["python3", "-m", "ziglang"];
    let works = Command::new(python[0])
        .args(&python[1..])
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    works.then(|| python.map(String::from).to_vec())
}

/// zig's name for a musl target, as `zig cc -target` takes it.
pub(super) fn zig_target(target: Target) -> String {
    format!("{}-linux-musl", target.rust_arch())
}

/// A gcc that compiles and links against musl for `target`: `<arch>-linux-musl-gcc` (a musl
/// cross compiler), else Debian's `musl-gcc` when `target` is this machine's architecture.
pub(super) fn musl_gcc(target: Target) -> Option<String> {
    let cross = format!("{}-linux-musl-gcc", target.rust_arch());
    if on_path(&cross).is_some() {
        return Some(cross);
    }
    (native() == Some(target) && on_path("musl-gcc").is_some()).then(|| "musl-gcc".into())
}

pub(super) fn cargo_zigbuild() -> bool {
    on_path("cargo-zigbuild").is_some()
}

/// What a C build for `target` can use, for errors that name what to install.
pub(super) fn install_hint(target: Target, rust: bool) -> String {
    let zig = if rust { INSTALL_ZIGBUILD } else { INSTALL_ZIG };
    if native() == Some(target) {
        format!("install musl-gcc: {INSTALL_MUSL_GCC}; or {zig}")
    } else {
        format!("install {zig}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_musl_gcc_only_for_this_machines_architecture() {
        let here = native().expect("tests run on amd64 or arm64");
        let other = Target::ALL.into_iter().find(|t| *t != here).unwrap();
        assert!(install_hint(here, true).contains("musl-tools"));
        assert!(install_hint(here, true).contains("cargo-zigbuild"));
        assert!(!install_hint(other, false).contains("musl-tools"));
        assert!(install_hint(other, false).contains("pip install ziglang"));
    }
}
