//! Go: `CGO_ENABLED=0 go build -trimpath` with the version stamped through `-ldflags -X`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use super::{Stamp, Target, ensure_dir, run_tool};
use crate::config::Config;

pub fn build(config: &Config, target: Target, stamp: &Stamp, work_dir: &Path) -> Result<PathBuf> {
    let out_dir = work_dir.join(target.name());
    ensure_dir(&out_dir)?;
    let output = out_dir.join(&config.app.name);
    // -buildid= and -buildvcs=false keep the binary identical across clones and rebuilds;
    // -trimpath keeps the builder's paths out of it.
    let ldflags = format!(
        "-s -w -buildid= -X {}={} -X {}={}",
        config.build.version_var,
        stamp.version,
        config.build.build_time_var,
        stamp.build_time()
    );
    let package = if config.build.go_package == "." || config.build.go_package.starts_with("./") {
        config.build.go_package.clone()
    } else {
        format!("./{}", config.build.go_package)
    };
    let mut command = Command::new("go");
    command
        .current_dir(&config.root)
        .env("CGO_ENABLED", "0")
        .env("GOOS", "linux")
        .env("GOARCH", target.goarch())
        .args([
            "build",
            "-trimpath",
            "-buildvcs=false",
            "-ldflags",
            &ldflags,
            "-o",
        ])
        .arg(&output)
        .arg(package);
    run_tool("build your app with Go", &mut command)?;
    Ok(output)
}
