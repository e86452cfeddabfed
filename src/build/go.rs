//! Go: `go build -trimpath` with the version stamped through `-ldflags -X`; without cgo
//! (`CGO_ENABLED=0`) unless a package in the build has cgo files, and then with a musl C compiler
//! (musl-gcc or `zig cc`) and static external linking.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::stamp::Stamp;
use super::target::Target;
use super::toolchain::{self, INSTALL_MUSL_GCC, INSTALL_ZIG};
use crate::config::{CCompiler, Cgo, Config};
use crate::process::run_tool;
use crate::ui::Ui;

/// -buildid= and -buildvcs=false keep the binary identical across clones and rebuilds;
/// -trimpath keeps the builder's paths out of it. `shipit generate dockerfile` uses the same.
const FLAGS: [&str; 2] = ["-trimpath", "-buildvcs=false"];
/// With cgo, Go's own DNS resolver and user lookup, as without it: libc's would read
/// /etc/nsswitch.conf and load modules, which a static binary cannot.
const CGO_TAGS: &str = "netgo,osusergo";

/// The C compiler cgo uses, as the words of `CC`.
#[derive(Debug)]
struct CCompilerCommand {
    name: &'static str,
    cc: Vec<String>,
    cxx: Option<Vec<String>>,
}

pub(crate) fn build(
    config: &Config,
    target: Target,
    stamp: &Stamp,
    work_dir: &Path,
    ui: &Ui,
) -> Result<(PathBuf, String)> {
    let cgo = match config.build.cgo {
        Cgo::Off => None,
        Cgo::On => Some("[build] cgo = \"on\"".to_string()),
        // When `go list` fails, `go build` fails the same way and says why.
        Cgo::Auto => cgo_package(config, target)
            .unwrap_or(None)
            .map(|p| format!("{p} has cgo files")),
    };
    let compiler = match &cgo {
        Some(why) => {
            let compiler = c_compiler(config, target, why)?;
            ui.status("Using", format_args!("cgo with {}: {why}", compiler.name));
            Some(compiler)
        }
        None => None,
    };
    let out_dir = work_dir.join(target.name());
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let output = out_dir.join(&config.app.name);
    let mut command = Command::new("go");
    command
        .current_dir(&config.root)
        .env("CGO_ENABLED", if cgo.is_some() { "1" } else { "0" })
        .env("GOOS", "linux")
        .env("GOARCH", target.goarch());
    if let Some(compiler) = &compiler {
        command.env("CC", compiler.cc.join(" "));
        if let Some(cxx) = &compiler.cxx {
            command.env("CXX", cxx.join(" "));
        }
    }
    let ldflags = ldflags(config, cgo.is_some(), &stamp.version, &stamp.build_time());
    command
        .arg("build")
        .args(flags(cgo.is_some()))
        .args(["-ldflags", &ldflags, "-o"])
        .arg(&output)
        .arg(package(config));
    run_tool("build your app with Go", &mut command).map_err(|err| {
        let left_out = (config.build.cgo == Cgo::Off)
            .then(|| cgo_package(config, target).ok().flatten())
            .flatten();
        match left_out {
            Some(package) => err.context(format!(
                "{package} has cgo files, which [build] cgo = \"off\" leaves out\n  \
                 help: set cgo = \"auto\" in shipit.toml"
            )),
            None => err,
        }
    })?;
    let builder = match &compiler {
        Some(compiler) => format!("go (cgo, {})", compiler.name),
        None => "go".into(),
    };
    Ok((output, builder))
}

/// `go build`'s flags before `-ldflags`.
pub(crate) fn flags(cgo: bool) -> Vec<&'static str> {
    let mut flags = FLAGS.to_vec();
    if cgo {
        flags.extend(["-tags", CGO_TAGS]);
    }
    flags
}

/// Strips the binary and stamps the version and build time into the `-X` variables; with cgo,
/// links through the C compiler with `-static`, so libc is inside the binary.
pub(crate) fn ldflags(config: &Config, cgo: bool, version: &str, build_time: &str) -> String {
    let link = if cgo {
        " -linkmode external -extldflags '-static -s'"
    } else {
        ""
    };
    format!(
        "-s -w -buildid={link} -X {}={version} -X {}={build_time}",
        config.build.version_var, config.build.build_time_var
    )
}

/// The main package as `go build` takes it: a relative path must start with `./`.
pub(crate) fn package(config: &Config) -> String {
    let package = &config.build.go_package;
    if package == "." || package.starts_with("./") {
        package.clone()
    } else {
        format!("./{package}")
    }
}

/// The first package in the build, Go's own aside, that has cgo files, as "import/path (file.go)".
pub(crate) fn cgo_package(config: &Config, target: Target) -> Result<Option<String>> {
    let format =
        "{{if and (not .Standard) .CgoFiles}}{{.ImportPath}} ({{index .CgoFiles 0}}){{end}}";
    let mut command = Command::new("go");
    command
        .current_dir(&config.root)
        .env("CGO_ENABLED", "1")
        .env("GOOS", "linux")
        .env("GOARCH", target.goarch())
        .args(["list", "-deps", "-tags", CGO_TAGS, "-f", format])
        .arg(package(config));
    let output = run_tool("list your app's packages with Go", &mut command)?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|line| !line.trim().is_empty())
        .map(str::to_string))
}

/// `[build] cc`, or the best one installed: musl-gcc for this machine's architecture (no
/// cross compiler to set up, no libc to build first), else zig for any target.
fn c_compiler(config: &Config, target: Target, why: &str) -> Result<CCompilerCommand> {
    let musl_gcc = |gcc: String| CCompilerCommand {
        name: "musl-gcc",
        cc: vec![gcc],
        cxx: None,
    };
    let zig = |zig: Vec<String>| {
        let with = |driver: &str| {
            let mut words = zig.clone();
            words.extend([
                driver.to_string(),
                "-target".into(),
                toolchain::zig_target(target),
            ]);
            words
        };
        CCompilerCommand {
            name: "zig",
            cc: with("cc"),
            cxx: Some(with("c++")),
        }
    };
    match config.build.cc {
        CCompiler::MuslGcc => toolchain::musl_gcc(target).map(musl_gcc).ok_or_else(|| {
            let arch = target.rust_arch();
            anyhow::anyhow!(
                "[build] cc = \"musl-gcc\", but there is no musl-gcc for {target} here ({why})\n  \
                 help: musl-gcc builds for this machine's own architecture ({INSTALL_MUSL_GCC}); \
                 for {target} install {arch}-linux-musl-gcc, or set cc = \"zig\""
            )
        }),
        CCompiler::Zig => toolchain::zig().map(zig).ok_or_else(|| {
            anyhow::anyhow!(
                "[build] cc = \"zig\", but zig is not installed ({why})\n  help: install {INSTALL_ZIG}"
            )
        }),
        CCompiler::Auto => toolchain::musl_gcc(target)
            .map(musl_gcc)
            .or_else(|| toolchain::zig().map(zig))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{why}, so a static {target} build needs a C compiler for musl, and there is \
                     none here\n  help: {}; or set [build] cgo = \"off\" if the package builds \
                     without cgo",
                    toolchain::install_hint(target, false)
                )
            }),
    }
}
