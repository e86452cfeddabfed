//! Shared helpers: run the shipit binary, copy example projects, read packages, query /health,
//! boot sandbox hosts.

#![allow(dead_code)]

pub mod app;
pub mod builds;
pub mod load;
pub mod proxy;
pub mod sandbox;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fixed build time for reproducible builds: 2025-01-02T03:04:05Z.
pub const EPOCH: &str = "1735787045";
pub const EPOCH_RFC3339: &str = "2025-01-02T03:04:05Z";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example(name: &str) -> PathBuf {
    repo_root().join("examples").join(name)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(
            self.code, 0,
            "shipit failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn failure(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "wrong exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// Runs shipit with a clean, reproducible environment.
///
/// A `build`, `deploy` or `init` builds Rust into the tests' one CARGO_TARGET_DIR
/// ([`builds::cargo_target_dir`]). A `build` takes its turn ([`builds::turn`]). A
/// `deploy --version-override V` that neither
/// targets another platform nor is a dry run deploys the shared package of its project at V
/// instead ([`builds::package`]), unless [`Shipit::building`] says the test is about deploy's own
/// build.
pub struct Shipit {
    command: Command,
    args: Vec<String>,
    shared_package: bool,
}

pub fn shipit(args: &[&str]) -> Shipit {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shipit"));
    command.env("SOURCE_DATE_EPOCH", EPOCH).stdin(Stdio::null());
    Shipit {
        command,
        args: args.iter().map(|a| a.to_string()).collect(),
        shared_package: true,
    }
}

impl Shipit {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.command.env(key, value);
        self
    }

    /// Reads stdin from `file` instead of nothing.
    pub fn stdin(mut self, file: std::fs::File) -> Self {
        self.command.stdin(file);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    /// A deploy that builds its package itself, for tests about that build.
    pub fn building(mut self) -> Self {
        self.shared_package = false;
        self
    }

    pub fn run(mut self) -> Run {
        let subcommand = self.subcommand().map(str::to_string);
        if matches!(subcommand.as_deref(), Some("build" | "deploy" | "init")) {
            self.command
                .env("CARGO_TARGET_DIR", builds::cargo_target_dir());
        }
        let _turn = (subcommand.as_deref() == Some("build")).then(builds::turn);
        let args = self.with_shared_package().unwrap_or(self.args);
        let output = self.command.args(args).output().expect("run shipit");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The first word that is not an option or the value of `-C`/`-c`.
    fn subcommand(&self) -> Option<&str> {
        let mut args = self.args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-C" | "--path" | "-c" | "--config" => {
                    args.next();
                }
                word if !word.starts_with('-') => return Some(word),
                _ => {}
            }
        }
        None
    }

    /// This deploy's arguments with `--package SHARED` for `--version-override V`, where it
    /// gets the shared package.
    fn with_shared_package(&self) -> Option<Vec<String>> {
        let builds_its_own = [
            "--package",
            "--target",
            "--out-dir",
            "--dry-run",
            "-c",
            "--config",
        ];
        if !self.shared_package
            || self.subcommand() != Some("deploy")
            || self
                .args
                .iter()
                .any(|a| builds_its_own.contains(&a.as_str()))
        {
            return None;
        }
        let value_of = |flag: &str| {
            let at = self.args.iter().position(|a| a == flag)?;
            Some((at, self.args.get(at + 1)?.clone()))
        };
        let (at, version) = value_of("--version-override")?;
        let (_, project) = value_of("-C")?;
        let package = builds::package(
            Path::new(env!("CARGO_BIN_EXE_shipit")),
            Path::new(&project),
            &version,
        )?;
        let mut args = self.args.clone();
        args.splice(
            at..at + 2,
            ["--package".to_string(), package.display().to_string()],
        );
        Some(args)
    }
}

/// A project the tests run shipit in: `.shipit(args)` is `shipit -C DIR args`, with the
/// sandbox's environment when it belongs to a [`sandbox::Sandbox`] (see `Sandbox::project`).
pub struct Project<'a> {
    dir: PathBuf,
    sandbox: Option<&'a sandbox::Sandbox>,
}

/// What a deploy ships: the project at a version (the shared package of it, see [`Shipit`]), that
/// version built by the deploy itself, or a package built before.
#[derive(Clone, Copy)]
pub enum Ship<'a> {
    Version(&'a str),
    Built(&'a str),
    Package(&'a Path),
}

impl<'a> Project<'a> {
    /// A project outside any sandbox.
    pub fn at(dir: &Path) -> Project<'a> {
        Project {
            dir: dir.to_path_buf(),
            sandbox: None,
        }
    }

    pub fn in_sandbox(dir: &Path, sandbox: &'a sandbox::Sandbox) -> Project<'a> {
        Project {
            dir: dir.to_path_buf(),
            sandbox: Some(sandbox),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `shipit -C DIR args…`, in the sandbox's environment if any.
    pub fn shipit(&self, args: &[&str]) -> Shipit {
        let dir = self.dir.to_str().expect("a UTF-8 project path");
        let args = [&["-C", dir][..], args].concat();
        match self.sandbox {
            Some(sandbox) => sandbox.shipit(&args),
            None => shipit(&args),
        }
    }

    /// The one deploy helper: `deploy HOST` with `--version-override VERSION` or
    /// `--package FILE`, then `extra`.
    pub fn deploy(&self, host: &str, ship: Ship, extra: &[&str]) -> Run {
        let package;
        let mut args = vec!["deploy", host];
        match ship {
            Ship::Version(version) | Ship::Built(version) => {
                args.extend(["--version-override", version])
            }
            Ship::Package(path) => {
                package = path.to_str().expect("a UTF-8 package path").to_string();
                args.extend(["--package", package.as_str()]);
            }
        }
        args.extend_from_slice(extra);
        let shipit = self.shipit(&args);
        match ship {
            Ship::Built(_) => shipit.building(),
            Ship::Version(_) | Ship::Package(_) => shipit,
        }
        .run()
    }
}

/// Builds the shared packages of `project` at `versions` now, so that its deploys later start at
/// once: for tests whose deploys must happen within a window (a dead-man timer's).
pub fn build_shared_packages(project: &Path, versions: &[&str]) {
    for version in versions {
        builds::package(Path::new(env!("CARGO_BIN_EXE_shipit")), project, version)
            .unwrap_or_else(|| panic!("{} does not build at {version}", project.display()));
    }
}

/// The first host's report from a successful `deploy --json`.
pub fn host_report(run: Run) -> serde_json::Value {
    let run = run.success();
    let summary: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    assert_eq!(summary["ok"], true, "{summary}");
    summary["hosts"][0].clone()
}

/// A temporary project: a copy of an example (without build output), or an empty directory.
pub fn project_copy(example_name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&example(example_name), dir.path());
    dir
}

/// The `listen` line the examples' shipit.toml have.
const EXAMPLE_LISTEN: &str = "listen = [\"8080\"]\n";

/// A copy of example `name` whose shipit.toml sets `[service] listen` to `listen`, a TOML array.
pub fn project_with_listen(name: &str, listen: &str) -> tempfile::TempDir {
    edit_listen(name, &format!("listen = {listen}\n"))
}

/// A copy of example `name` without `[service] listen`: the service binds its port itself.
pub fn project_without_listen(name: &str) -> tempfile::TempDir {
    edit_listen(name, "")
}

fn edit_listen(name: &str, line: &str) -> tempfile::TempDir {
    let project = project_copy(name);
    let path = project.path().join("shipit.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    assert!(config.contains(EXAMPLE_LISTEN), "{config}");
    std::fs::write(&path, config.replace(EXAMPLE_LISTEN, line)).unwrap();
    project
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == "dist" {
            continue;
        }
        let dest = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

pub fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?}");
}

pub fn sha256(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// A package's entries: path → (mode, mtime, uid, gid, content).
pub struct PackageEntry {
    pub mode: u32,
    pub mtime: u64,
    pub uid: u64,
    pub gid: u64,
    pub data: Vec<u8>,
}

pub fn read_package(path: &Path) -> Vec<(String, PackageEntry)> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut entries = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        entries.push((
            entry.path().unwrap().display().to_string(),
            PackageEntry {
                mode: header.mode().unwrap(),
                mtime: header.mtime().unwrap(),
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                data,
            },
        ));
    }
    entries
}

pub fn package_map(path: &Path) -> BTreeMap<String, PackageEntry> {
    read_package(path).into_iter().collect()
}

/// Asserts an ELF is static (no PT_INTERP, no DT_NEEDED) for the given machine.
#[track_caller]
pub fn assert_static_elf(bytes: &[u8], machine: u16) {
    let elf = goblin::elf::Elf::parse(bytes).expect("an ELF file");
    assert_eq!(elf.header.e_machine, machine);
    assert!(
        elf.interpreter.is_none(),
        "has PT_INTERP {:?}",
        elf.interpreter
    );
    assert!(elf.libraries.is_empty(), "needs {:?}", elf.libraries);
}

/// A PATH holding every program of this one except the C toolchains static C builds use
/// (musl-gcc, cross gccs for musl, zig, cargo-zigbuild, and python3 for `python3 -m ziglang`):
/// this machine as one without them.
pub fn path_without_c_toolchains() -> (tempfile::TempDir, String) {
    let hidden = |name: &str| {
        name.ends_with("musl-gcc") || ["zig", "cargo-zigbuild", "python3"].contains(&name)
    };
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var_os("PATH").expect("PATH is set");
    for from in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&from) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let link = dir.path().join(&name);
            if !hidden(&name.to_string_lossy()) && !link.exists() {
                std::os::unix::fs::symlink(entry.path(), link).unwrap();
            }
        }
    }
    let bare = dir.path().to_str().unwrap().to_string();
    (dir, bare)
}

/// Runs a built executable, an arm64 one under `qemu-aarch64-static` (Debian's qemu-user-static;
/// no binfmt registration needed), and returns its /health answer.
pub fn run_for_health(executable: &[u8], machine: u16) -> serde_json::Value {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("service");
    std::fs::write(&binary, executable).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = if machine == goblin::elf::header::EM_AARCH64 {
        let mut qemu = Command::new("qemu-aarch64-static");
        qemu.arg(&binary);
        qemu
    } else {
        Command::new(&binary)
    };
    let port = free_port();
    let _service = Service(
        command
            .args(["--port", &port.to_string()])
            .env("STATE_DIRECTORY", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "run the service (arm64: is qemu-user-static installed? scripts/setup --tests)",
            ),
    );
    let (status, body) = http_get(port, "/health");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A service process that is killed when dropped.
pub struct Service(pub Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET `path` on 127.0.0.1:port until it answers (up to 10 s); returns (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match try_get(port, path) {
            Ok(answer) => return answer,
            Err(e) if Instant::now() > deadline => panic!("GET {path} on port {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn try_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    read_answer(send_get(port, path)?)
}

/// Sends `GET path` to 127.0.0.1:port once; [`read_answer`] reads what comes back.
pub fn send_get(port: u16, path: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    Ok(stream)
}

/// The (status, body) of the answer on `stream`, an error if the connection ends without one.
pub fn read_answer(mut stream: TcpStream) -> std::io::Result<(u16, String)> {
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}
