//! Go: `CGO_ENABLED=0 go build -trimpath` with the version stamped through `-ldflags -X`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use super::{Stamp, Target, ensure_dir, run_tool};
use crate::config::Config;

/// -buildid= and -buildvcs=false keep the binary identical across clones and rebuilds;
/// -trimpath keeps the builder's paths out of it. `shipit generate dockerfile` uses the same.
pub const FLAGS: [&str; 2] = ["-trimpath", "-buildvcs=false"];

pub fn build(config: &Config, target: Target, stamp: &Stamp, work_dir: &Path) -> Result<PathBuf> {
    let out_dir = work_dir.join(target.name());
    ensure_dir(&out_dir)?;
    let output = out_dir.join(&config.app.name);
    let ldflags = ldflags(config, &stamp.version, &stamp.build_time());
    let mut command = Command::new("go");
    command
        .current_dir(&config.root)
        .env("CGO_ENABLED", "0")
        .env("GOOS", "linux")
        .env("GOARCH", target.goarch())
        .arg("build")
        .args(FLAGS)
        .args(["-ldflags", &ldflags, "-o"])
        .arg(&output)
        .arg(package(config));
    run_tool("build your app with Go", &mut command)?;
    Ok(output)
}

/// Strips the binary and stamps the version and build time into the `-X` variables.
pub fn ldflags(config: &Config, version: &str, build_time: &str) -> String {
    format!(
        "-s -w -buildid= -X {}={version} -X {}={build_time}",
        config.build.version_var, config.build.build_time_var
    )
}

/// The main package as `go build` takes it: a relative path must start with `./`.
pub fn package(config: &Config) -> String {
    let package = &config.build.go_package;
    if package == "." || package.starts_with("./") {
        package.clone()
    } else {
        format!("./{package}")
    }
}
