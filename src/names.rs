//! Values checked once, where they enter, and carried as types from there: an app's name (it
//! becomes the unit, user and directory names on every host), a host's name (it reaches ssh,
//! known_hosts and ProxyCommand's `%h`) and a release's id (the directory it unpacks to). Code
//! that holds one never checks it again.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::validate::{validate_app_name, validate_host};

/// An app's name: `[a-z0-9][a-z0-9-]*`, at most 64 characters (see [`validate_app_name`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AppName(String);

impl AppName {
    pub fn parse(name: &str) -> Result<AppName, String> {
        validate_app_name(name)?;
        Ok(AppName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A host's name or address, as ssh connects to it (see [`validate_host`]): nothing that ssh
/// or a shell could read as an option or syntax.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct HostName(String);

impl HostName {
    pub fn parse(name: &str) -> anyhow::Result<HostName> {
        validate_host(name)?;
        Ok(HostName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A release on a host, named `<version>-<first 12 hex of the package's sha256>`; empty for the
/// layout of an app with no release in view.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReleaseId(String);

impl ReleaseId {
    /// The release of the package with this version and sha256.
    pub fn of(version: &str, sha256: &str) -> ReleaseId {
        ReleaseId(format!("{version}-{}", &sha256[..12.min(sha256.len())]))
    }

    /// A release as a host names it (a directory under `releases/`).
    pub fn from_host(name: &str) -> ReleaseId {
        ReleaseId(name.to_string())
    }

    /// The version it is of: what comes before its last `-`.
    pub fn version(&self) -> &str {
        self.0
            .rsplit_once('-')
            .map_or(&self.0, |(version, _)| version)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! reads_as_str {
    ($($name:ident),*) => {$(
        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<std::path::Path> for $name {
            fn as_ref(&self) -> &std::path::Path {
                self.0.as_ref()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    )*};
}

reads_as_str!(AppName, HostName, ReleaseId);

// Unit tests write their fixtures' names as literals; nothing else makes one unchecked.
#[cfg(test)]
impl From<&str> for AppName {
    fn from(name: &str) -> AppName {
        AppName::parse(name).expect("a valid app name in a test")
    }
}

#[cfg(test)]
impl From<&str> for HostName {
    fn from(name: &str) -> HostName {
        HostName::parse(name).expect("a valid host name in a test")
    }
}

#[cfg(test)]
impl From<&str> for ReleaseId {
    fn from(name: &str) -> ReleaseId {
        ReleaseId::from_host(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_name_is_checked_when_made() {
        assert_eq!(AppName::parse("hello-go").unwrap(), "hello-go");
        assert!(AppName::parse("Hello").is_err());
        assert!(AppName::parse("a/b").is_err());
    }

    #[test]
    fn a_host_name_is_checked_when_made() {
        assert_eq!(
            HostName::parse("web1.example.com").unwrap(),
            "web1.example.com"
        );
        assert_eq!(HostName::parse("fd00::5").unwrap(), "fd00::5");
        assert!(HostName::parse("-oProxyCommand=x").is_err());
        assert!(HostName::parse("a b").is_err());
    }

    #[test]
    fn a_release_knows_its_version() {
        let release = ReleaseId::of("1.2.3-rc.1", &"ab".repeat(32));
        assert_eq!(release, "1.2.3-rc.1-abababababab");
        assert_eq!(release.version(), "1.2.3-rc.1");
        assert_eq!(ReleaseId::from_host("old-aaaaaaaaaaaa").version(), "old");
        assert_eq!(ReleaseId::from_host("plain").version(), "plain");
    }

    #[test]
    fn names_fill_the_columns_of_a_table() {
        // `releases` and `history` align their columns with width specifiers.
        let release = ReleaseId::from_host("1.0.0-abababababab");
        assert_eq!(format!("{release:<20}|"), "1.0.0-abababababab  |");
        assert_eq!(format!("{:>10}|", AppName::from("web")), "       web|");
    }
}
