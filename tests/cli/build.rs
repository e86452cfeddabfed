//! `shipit build` with the real go and cargo toolchains.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use goblin::elf::header::{EM_AARCH64, EM_X86_64};

use crate::support::*;

/// Builds `project` into a fresh out dir and returns (out dir, archive path).
fn build(project: &Path, extra: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let out = tempfile::tempdir().unwrap();
    let project = project.to_str().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let mut args = vec!["-C", project, "build", "--out-dir", out_dir];
    args.extend_from_slice(extra);
    let run = shipit(&args).run().success();
    let archive = std::path::PathBuf::from(run.stdout.trim());
    assert!(
        archive.is_file(),
        "stdout is not just the archive path: {:?}",
        run.stdout
    );
    (out, archive)
}

/// The whole contract for one example: static, stamped, complete, reproducible.
fn check_example(name: &str) {
    let project = example(name);
    let (out1, archive) = build(&project, &["--version-override", "1.2.3"]);
    assert_eq!(
        archive.file_name().unwrap().to_str().unwrap(),
        format!("{name}-1.2.3-linux-amd64.tar.gz")
    );

    let entries = read_package(&archive);
    let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    // The examples use `[service] listen`: the socket unit travels beside the service's.
    let (service, socket) = (format!("{name}.service"), format!("{name}.socket"));
    let mut files = vec!["config.yaml", name, service.as_str(), socket.as_str()];
    files.sort();
    let expected: Vec<&str> = std::iter::once("manifest.json").chain(files).collect();
    assert_eq!(
        paths, expected,
        "manifest.json first, then the files sorted, none missing"
    );
    let entries = package_map(&archive);
    for (path, entry) in &entries {
        let mode = if path == name { 0o755 } else { 0o644 };
        assert_eq!(entry.mode, mode, "{path} mode");
        assert_eq!(entry.mtime.to_string(), EPOCH, "{path} mtime");
        assert_eq!((entry.uid, entry.gid), (0, 0), "{path} owner");
    }
    assert_static_elf(&entries[name].data, EM_X86_64);

    let manifest: serde_json::Value =
        serde_json::from_slice(&entries["manifest.json"].data).unwrap();
    assert_eq!(manifest["app"], name);
    assert_eq!(manifest["version"], "1.2.3");
    assert_eq!(manifest["build_time"], EPOCH_RFC3339);
    assert_eq!(manifest["target"], "linux-amd64");
    for file in manifest["files"].as_array().unwrap() {
        let path = file["path"].as_str().unwrap();
        let data = &entries[path].data;
        use sha2::Digest;
        assert_eq!(
            file["sha256"],
            hex::encode(sha2::Sha256::digest(data)),
            "{path}"
        );
        assert_eq!(file["size"], data.len(), "{path}");
    }
    let sums = std::fs::read_to_string(archive.with_extension("gz.sha256")).unwrap();
    assert_eq!(
        sums,
        format!(
            "{}  {}\n",
            sha256(&archive),
            archive.file_name().unwrap().to_str().unwrap()
        )
    );

    // The stamped version and build time are what the running service reports.
    let binary = out1.path().join("bin");
    std::fs::write(&binary, &entries[name].data).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let state = tempfile::tempdir().unwrap();
    let _service = Service(
        Command::new(&binary)
            .args(["--port", &port.to_string()])
            .current_dir(&project)
            .env("STATE_DIRECTORY", state.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (status, body) = http_get(port, "/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "UP");
    assert_eq!(health["version"], "1.2.3");
    assert_eq!(health["buildTime"], EPOCH_RFC3339);

    // Same inputs, byte-identical archive.
    let (_out2, again) = build(&project, &["--version-override", "1.2.3"]);
    assert_eq!(
        sha256(&archive),
        sha256(&again),
        "{name} is not reproducible"
    );
}

fn go_example_builds_static_stamped_and_reproducible() {
    check_example("hello-go");
}

fn rust_example_builds_static_stamped_and_reproducible() {
    check_example("hello-rust");
}

/// Pure Go and pure Rust need no C toolchain for arm64: Go cross-compiles itself, and Rust links
/// with rust-lld. Each binary runs under qemu and answers /health.
fn examples_without_c_code_build_for_arm64_without_a_c_toolchain() {
    let (_bin, bare_path) = path_without_c_toolchains();
    for name in ["hello-go", "hello-rust"] {
        let out = tempfile::tempdir().unwrap();
        let run = shipit(&[
            "-C",
            example(name).to_str().unwrap(),
            "build",
            "--target",
            "linux-arm64",
            "--version-override",
            "1.0.0",
            "--out-dir",
            out.path().to_str().unwrap(),
        ])
        .env("PATH", &bare_path)
        .run()
        .success();
        let archive = std::path::PathBuf::from(run.stdout.trim());
        assert!(
            archive
                .to_str()
                .unwrap()
                .ends_with(&format!("{name}-1.0.0-linux-arm64.tar.gz"))
        );
        let binary = &package_map(&archive)[name].data;
        assert_static_elf(binary, EM_AARCH64);
        assert_eq!(run_for_health(binary, EM_AARCH64)["version"], "1.0.0");
    }
}

/// An example with C code, built static for both architectures: each binary is checked as an
/// ELF, run (arm64 under qemu) and asked for /health, whose "native" check is the C code's answer.
/// `builders` is what the manifest says built each (amd64, arm64) on a machine set up by
/// scripts/setup: musl-gcc where it can, zig for arm64.
fn check_c_example(name: &str, builders: [&str; 2]) {
    let project = example(name);
    let targets = [
        ("linux-amd64", EM_X86_64, "x86_64"),
        ("linux-arm64", EM_AARCH64, "aarch64"),
    ];
    for ((target, machine, arch), builder) in targets.into_iter().zip(builders) {
        let (_out, archive) = build(
            &project,
            &["--target", target, "--version-override", "2.0.0"],
        );
        let entries = package_map(&archive);
        let manifest: serde_json::Value =
            serde_json::from_slice(&entries["manifest.json"].data).unwrap();
        assert_eq!(manifest["builder"], builder, "{target}");
        assert_static_elf(&entries[name].data, machine);
        let health = run_for_health(&entries[name].data, machine);
        assert_eq!(health["status"], "UP", "{target}: {health}");
        assert_eq!(health["version"], "2.0.0", "{target}");
        assert_eq!(health["buildTime"], EPOCH_RFC3339, "{target}");
        assert_eq!(
            health["checks"]["native"],
            format!("UP (C on {arch})"),
            "{target}"
        );
        let (_again, rebuilt) = build(
            &project,
            &["--target", target, "--version-override", "2.0.0"],
        );
        assert_eq!(
            sha256(&archive),
            sha256(&rebuilt),
            "{name} for {target} is not reproducible"
        );
    }
}

fn cgo_example_builds_static_for_amd64_and_arm64() {
    check_c_example("hello-cgo", ["go (cgo, musl-gcc)", "go (cgo, zig)"]);
}

fn rust_example_with_c_code_builds_static_for_amd64_and_arm64() {
    check_c_example("hello-rust-c", ["cargo", "zigbuild"]);
}

/// Without a C compiler for the target, a build with C code stops in a few lines that say which
/// code needs one and what to install.
fn c_code_without_a_c_compiler_names_what_to_install() {
    let (_bin, bare_path) = path_without_c_toolchains();
    let short = |run: Run| {
        assert!(
            run.stderr.lines().count() <= 5,
            "more than 5 lines:\n{}",
            run.stderr
        );
        run
    };
    let go = project_copy("hello-cgo");
    let go_dir = go.path().to_str().unwrap();
    let build_go = || shipit(&["-C", go_dir, "build", "--version-override", "1"]);
    short(build_go().env("PATH", &bare_path).run().failure(3))
        .stderr_has("example.com/hello-cgo (native.go) has cgo files")
        .stderr_has("apt-get install musl-tools")
        .stderr_has("pip install ziglang");
    let config = std::fs::read_to_string(go.path().join("shipit.toml")).unwrap();
    std::fs::write(
        go.path().join("shipit.toml"),
        format!("[build]\ncgo = \"off\"\n\n{config}"),
    )
    .unwrap();
    build_go()
        .run()
        .failure(3)
        .stderr_has("has cgo files, which [build] cgo = \"off\" leaves out");
    // musl-gcc builds for this machine's architecture only.
    std::fs::write(
        go.path().join("shipit.toml"),
        format!("[build]\ncc = \"musl-gcc\"\n\n{config}"),
    )
    .unwrap();
    short(
        shipit(&[
            "-C",
            go_dir,
            "build",
            "--target",
            "linux-arm64",
            "--version-override",
            "1",
        ])
        .run()
        .failure(3),
    )
    .stderr_has("cc = \"musl-gcc\", but there is no musl-gcc for linux-arm64 here")
    .stderr_has("set cc = \"zig\"");

    let rust = project_copy("hello-rust-c");
    let rust_dir = rust.path().to_str().unwrap();
    let build_rust = |target: &str| {
        shipit(&[
            "-C",
            rust_dir,
            "build",
            "--target",
            target,
            "--version-override",
            "1",
        ])
    };
    short(
        build_rust("linux-amd64")
            .env("PATH", &bare_path)
            .run()
            .failure(3),
    )
    .stderr_has("hello-rust-c v0.1.0 compiles C code in its build script")
    .stderr_has("no C compiler for x86_64-unknown-linux-musl")
    .stderr_has("apt-get install musl-tools")
    .stderr_has("pip install cargo-zigbuild");
    // builder = "cargo" written out: no zig, and arm64 has no musl-gcc.
    let config = std::fs::read_to_string(rust.path().join("shipit.toml")).unwrap();
    std::fs::write(
        rust.path().join("shipit.toml"),
        format!("[build]\nbuilder = \"cargo\"\n\n{config}"),
    )
    .unwrap();
    short(build_rust("linux-arm64").run().failure(3))
        .stderr_has("no C compiler for aarch64-unknown-linux-musl")
        .stderr_has("set builder = \"zigbuild\"");
}

/// Machines with the arm64 target installed (CI's among them) still check the message: the
/// build runs on a copy of the current toolchain whose sysroot holds only this machine's
/// standard library, as rustup leaves it before `rustup target add`.
fn rust_arm64_names_the_missing_rustup_target() {
    let toolchain = toolchain_without("aarch64-unknown-linux-musl");
    let out = tempfile::tempdir().unwrap();
    Project::at(&example("hello-rust"))
        .shipit(&[
            "build",
            "--target",
            "linux-arm64",
            "--out-dir",
            out.path().to_str().unwrap(),
        ])
        .env("RUSTUP_TOOLCHAIN", toolchain.path().to_str().unwrap())
        .run()
        .failure(3)
        .stderr_has("rustup target add aarch64-unknown-linux-musl");
}

/// A rustup toolchain directory made of the current one's files, minus the standard library for
/// `missing`. rustc finds its sysroot from where its own files are, so binaries and shared
/// libraries are hard links (copies across filesystems), not symlinks.
fn toolchain_without(missing: &str) -> tempfile::TempDir {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    let sysroot = std::path::PathBuf::from(String::from_utf8(sysroot.stdout).unwrap().trim());
    let copy = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let link = |from: &Path, to: &Path| {
        std::fs::hard_link(from, to)
            .or_else(|_| std::fs::copy(from, to).map(drop))
            .unwrap()
    };
    std::fs::create_dir_all(copy.path().join("bin")).unwrap();
    for entry in std::fs::read_dir(sysroot.join("bin")).unwrap() {
        let entry = entry.unwrap();
        link(
            &entry.path(),
            &copy.path().join("bin").join(entry.file_name()),
        );
    }
    std::fs::create_dir_all(copy.path().join("lib/rustlib")).unwrap();
    for entry in std::fs::read_dir(sysroot.join("lib")).unwrap() {
        let entry = entry.unwrap();
        let to = copy.path().join("lib").join(entry.file_name());
        if entry.file_name() == "rustlib" {
            continue;
        } else if entry.file_type().unwrap().is_dir() {
            std::os::unix::fs::symlink(entry.path(), to).unwrap();
        } else {
            link(&entry.path(), &to);
        }
    }
    for entry in std::fs::read_dir(sysroot.join("lib/rustlib")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != missing {
            let to = copy.path().join("lib/rustlib").join(entry.file_name());
            std::os::unix::fs::symlink(entry.path(), to).unwrap();
        }
    }
    copy
}

fn unknown_target_lists_the_valid_ones() {
    Project::at(&example("hello-go"))
        .shipit(&["build", "--target", "windows-amd64"])
        .run()
        .failure(2)
        .stderr_has("valid targets are linux-amd64, linux-arm64");
}

fn version_comes_from_git_describe() {
    let project = project_copy("hello-go");
    git(project.path(), &["init", "-q"]);
    git(project.path(), &["add", "."]);
    git(project.path(), &["commit", "-q", "-m", "first"]);
    git(project.path(), &["tag", "v0.9.0"]);
    let (_out, archive) = build(project.path(), &[]);
    assert!(
        archive
            .to_str()
            .unwrap()
            .ends_with("hello-go-v0.9.0-linux-amd64.tar.gz"),
        "{archive:?}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&package_map(&archive)["manifest.json"].data).unwrap();
    assert_eq!(manifest["commit"].as_str().unwrap().len(), 40);

    std::fs::write(project.path().join("config.yaml"), "greeting: changed\n").unwrap();
    let (_out, archive) = build(project.path(), &[]);
    assert!(
        archive
            .to_str()
            .unwrap()
            .ends_with("hello-go-v0.9.0-dirty-linux-amd64.tar.gz"),
        "{archive:?}"
    );
}

fn without_git_the_version_must_be_given() {
    let project = project_copy("hello-go");
    Project::at(project.path())
        .shipit(&["build"])
        .run()
        .failure(2)
        .stderr_has("--version-override");
    Project::at(project.path())
        .shipit(&["build", "--version-override", "1.0;rm"])
        .run()
        .failure(2)
        .stderr_has("invalid version");
}

fn a_compile_error_is_a_build_failure_naming_the_tool() {
    let project = project_copy("hello-go");
    std::fs::write(
        project.path().join("broken.go"),
        "package main\nfunc broken() { undefined() }\n",
    )
    .unwrap();
    Project::at(project.path())
        .shipit(&["build", "--version-override", "1"])
        .run()
        .failure(3)
        .stderr_has("build your app with Go failed")
        .stderr_has("undefined");
}

fn cross_without_a_container_engine_says_so() {
    let project = project_copy("hello-rust");
    let config = std::fs::read_to_string(project.path().join("shipit.toml")).unwrap();
    std::fs::write(
        project.path().join("shipit.toml"),
        format!("[build]\nbuilder = \"cross\"\n{config}"),
    )
    .unwrap();
    Project::at(project.path())
        .shipit(&["build", "--version-override", "1"])
        .run()
        .failure(3)
        .stderr_has("needs a running container engine");
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(
            Nothing,
            17,
            go_example_builds_static_stamped_and_reproducible
        ),
        crate::test!(
            Nothing,
            7,
            rust_example_builds_static_stamped_and_reproducible
        ),
        crate::test!(
            Nothing,
            9,
            examples_without_c_code_build_for_arm64_without_a_c_toolchain
        ),
        crate::test!(Nothing, 88, cgo_example_builds_static_for_amd64_and_arm64),
        crate::test!(
            Nothing,
            13,
            rust_example_with_c_code_builds_static_for_amd64_and_arm64
        ),
        crate::test!(
            Nothing,
            12,
            c_code_without_a_c_compiler_names_what_to_install
        ),
        crate::test!(Nothing, 4, rust_arm64_names_the_missing_rustup_target),
        crate::test!(Nothing, 1, unknown_target_lists_the_valid_ones),
        crate::test!(Nothing, 30, version_comes_from_git_describe),
        crate::test!(Nothing, 4, without_git_the_version_must_be_given),
        crate::test!(
            Nothing,
            1,
            a_compile_error_is_a_build_failure_naming_the_tool
        ),
        crate::test!(
            NoContainerEngine,
            0,
            cross_without_a_container_engine_says_so
        ),
    ]
}
