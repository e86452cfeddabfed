//! The Linux platforms shipit builds for, with each one's name in the tools that build for it.

use std::fmt;

use anyhow::Result;

use crate::error::{Category, Tag};

/// The Linux platforms shipit builds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    LinuxAmd64,
    LinuxArm64,
}

impl Target {
    pub const ALL: [Target; 2] = [Target::LinuxAmd64, Target::LinuxArm64];

    pub fn parse(name: &str) -> Result<Target> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                let valid = Target::ALL.map(Target::name).join(", ");
                anyhow::anyhow!("unknown target {name:?}: valid targets are {valid}")
            })
            .tag(Category::Usage)
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::LinuxAmd64 => "linux-amd64",
            Target::LinuxArm64 => "linux-arm64",
        }
    }

    pub(super) fn goarch(self) -> &'static str {
        match self {
            Target::LinuxAmd64 => "amd64",
            Target::LinuxArm64 => "arm64",
        }
    }

    pub(super) fn rust_arch(self) -> &'static str {
        match self {
            Target::LinuxAmd64 => "x86_64",
            Target::LinuxArm64 => "aarch64",
        }
    }

    pub(super) fn elf_machine(self) -> u16 {
        match self {
            Target::LinuxAmd64 => goblin::elf::header::EM_X86_64,
            Target::LinuxArm64 => goblin::elf::header::EM_AARCH64,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_list_valid_names_on_error() {
        assert_eq!(Target::parse("linux-arm64").unwrap(), Target::LinuxArm64);
        let err = Target::parse("windows-amd64").unwrap_err();
        assert_eq!(crate::error::category_of(&err), Some(Category::Usage));
        assert!(
            err.to_string().contains("linux-amd64, linux-arm64"),
            "{err}"
        );
    }
}
