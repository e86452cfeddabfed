//! Proves a built file is a static executable for the target: right machine, no PT_INTERP and no
//! DT_NEEDED. Static-pie binaries are ELF type DYN, so the type itself is not checked.

use std::path::Path;

use anyhow::{Context, Result};
use goblin::elf::Elf;

use super::target::Target;
use crate::config::Builder;

pub(super) fn check_static(path: &Path, target: Target, builder: Builder) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    check_bytes(&bytes, target, builder)
        .with_context(|| format!("{} is not shippable", path.display()))
}

fn check_bytes(bytes: &[u8], target: Target, builder: Builder) -> Result<()> {
    let elf = Elf::parse(bytes).context("not an ELF executable")?;
    let machine = elf.header.e_machine;
    if machine != target.elf_machine() {
        anyhow::bail!(
            "it is built for {} but the target is {target}",
            goblin::elf::header::machine_to_str(machine)
        );
    }
    if elf.interpreter.is_none() && elf.libraries.is_empty() {
        return Ok(());
    }
    let mut needs: Vec<String> = elf.libraries.iter().map(|l| l.to_string()).collect();
    if let Some(interp) = elf.interpreter {
        needs.insert(0, format!("interpreter {interp}"));
    }
    let fix = match builder {
        Builder::Go => {
            "remove linker settings from GOFLAGS (shipit links Go statically itself), or set \
             [build] cgo = \"off\""
        }
        Builder::Cargo | Builder::Zigbuild | Builder::Cross => {
            "a dependency links a system library dynamically: use the musl target \
             (`rustup target add x86_64-unknown-linux-musl`) or enable the crate's vendored/static \
             feature (e.g. openssl's \"vendored\")"
        }
    };
    anyhow::bail!(
        "it is dynamically linked and needs {}\n  help: {fix}",
        needs.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_dynamic_binary_and_names_its_libraries() {
        // The test binary itself is a dynamic glibc executable.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let err = check_bytes(&me, Target::LinuxAmd64, Builder::Go)
            .unwrap_err()
            .to_string();
        assert!(err.contains("libc.so.6"), "{err}");
        assert!(err.contains("cgo = \"off\""), "{err}");
        let err = check_bytes(&me, Target::LinuxArm64, Builder::Go)
            .unwrap_err()
            .to_string();
        assert!(err.contains("target is linux-arm64"), "{err}");
    }

    #[test]
    fn refuses_a_non_elf() {
        let err = check_bytes(b"#!/bin/sh\n", Target::LinuxAmd64, Builder::Go).unwrap_err();
        assert!(err.to_string().contains("not an ELF"));
    }
}
