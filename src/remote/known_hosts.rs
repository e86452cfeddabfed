//! Host-key checking in Rust, OpenSSH style: a known key is accepted, an unknown one is refused
//! unless the user opted in (accept-new), a changed or revoked one is always refused.
//!
//! libssh2's own check passes no key type and can report a false mismatch, so known_hosts is read
//! with the `ssh-key` crate and the server's key blob compared byte for byte.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hmac::{KeyInit, Mac};
use ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use ssh_key::{HashAlg, PublicKey};

/// How a host is written in known_hosts: `name`, or `[name]:port` off port 22.
pub fn host_form(hostname: &str, port: u16) -> String {
    if port == 22 {
        hostname.to_string()
    } else {
        format!("[{hostname}]:{port}")
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Known,
    Unknown,
    /// A key for this host is on record, and it is not this one.
    Changed {
        file: PathBuf,
        line: usize,
    },
    Revoked {
        file: PathBuf,
        line: usize,
    },
}

/// A known_hosts line that applies to this host.
struct Record {
    file: PathBuf,
    line: usize,
    entry: Entry,
}

pub fn check(files: &[PathBuf], hostname: &str, port: u16, key_blob: &[u8]) -> Result<Verdict> {
    let host = host_form(hostname, port);
    let records = records_for(files, &host)?;
    let same = |r: &Record| r.entry.public_key().to_bytes().is_ok_and(|b| b == key_blob);
    if let Some(r) = records
        .iter()
        .find(|r| r.entry.marker() == Some(&Marker::Revoked) && same(r))
    {
        return Ok(Verdict::Revoked {
            file: r.file.clone(),
            line: r.line,
        });
    }
    let plain: Vec<&Record> = records
        .iter()
        .filter(|r| r.entry.marker().is_none())
        .collect();
    if plain.iter().any(|r| same(r)) {
        return Ok(Verdict::Known);
    }
    Ok(match plain.first() {
        Some(r) => Verdict::Changed {
            file: r.file.clone(),
            line: r.line,
        },
        None => Verdict::Unknown,
    })
}

/// The host key algorithms on record for a host, so the server is asked for a key we can check.
pub fn algorithms_on_record(
    files: &[PathBuf],
    hostname: &str,
    port: u16,
) -> Result<Vec<&'static str>> {
    let host = host_form(hostname, port);
    let mut algorithms = Vec::new();
    for record in records_for(files, &host)? {
        if record.entry.marker().is_some() {
            continue;
        }
        let names: &[&str] = match record.entry.public_key().algorithm() {
            ssh_key::Algorithm::Ed25519 => &["ssh-ed25519"],
            ssh_key::Algorithm::Ecdsa { curve } => match curve {
                ssh_key::EcdsaCurve::NistP256 => &["ecdsa-sha2-nistp256"],
                ssh_key::EcdsaCurve::NistP384 => &["ecdsa-sha2-nistp384"],
                ssh_key::EcdsaCurve::NistP521 => &["ecdsa-sha2-nistp521"],
            },
            ssh_key::Algorithm::Rsa { .. } => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            _ => &[],
        };
        for name in names {
            if !algorithms.contains(name) {
                algorithms.push(*name);
            }
        }
    }
    Ok(algorithms)
}

fn records_for(files: &[PathBuf], host: &str) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Lines with key types the parser does not know cannot vouch for this host anyway.
            let Ok(entry) = line.parse::<Entry>() else {
                continue;
            };
            if patterns_match(entry.host_patterns(), host) {
                records.push(Record {
                    file: file.clone(),
                    line: index + 1,
                    entry,
                });
            }
        }
    }
    Ok(records)
}

fn patterns_match(patterns: &HostPatterns, host: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => {
            let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                return false;
            };
            mac.update(host.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
        HostPatterns::Patterns(list) => {
            let mut matched = false;
            for pattern in list {
                if let Some(negated) = pattern.strip_prefix('!') {
                    if wildcard(negated, host) {
                        return false;
                    }
                } else if wildcard(pattern, host) {
                    matched = true;
                }
            }
            matched
        }
    }
}

/// OpenSSH's `*` and `?` patterns.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

pub fn fingerprint(key_blob: &[u8]) -> String {
    PublicKey::from_bytes(key_blob)
        .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
        .unwrap_or_else(|_| "an unreadable key".into())
}

/// The known_hosts line for a key, as OpenSSH writes it (with HashKnownHosts, the host name is
/// stored as `|1|salt|HMAC-SHA1(salt, name)`).
pub fn line_for(hostname: &str, port: u16, key_blob: &[u8], hashed: bool) -> Result<String> {
    let mut key =
        PublicKey::from_bytes(key_blob).context("the server sent a key shipit cannot read")?;
    key.set_comment("");
    let host = host_form(hostname, port);
    let host = if hashed {
        let mut salt = [0u8; 20];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut salt))
            .context("reading /dev/urandom for a known_hosts salt")?;
        let mut mac =
            hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt).expect("HMAC takes any key length");
        mac.update(host.as_bytes());
        HostPatterns::HashedName {
            salt: salt.to_vec(),
            hash: mac.finalize().into_bytes().into(),
        }
        .to_string()
    } else {
        host
    };
    Ok(format!("{host} {}", key.to_openssh()?.trim_end()))
}

/// Records a key (accept-new), creating the file and its directory with OpenSSH's modes.
pub fn append(file: &Path, line: &str) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = file.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("cannot write {}", file.display()))?;
    writeln!(out, "{line}").with_context(|| format!("cannot write {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const OTHER: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkQ2UGPUk2fEuqZsP4Og9NRQ5ETlwNZUdXoyCV4ZvWw";

    fn blob(key: &str) -> Vec<u8> {
        key.parse::<PublicKey>().unwrap().to_bytes().unwrap()
    }

    fn file_with(text: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, text).unwrap();
        (dir, vec![path])
    }

    #[test]
    fn known_unknown_changed_revoked() {
        let (_d, files) = file_with(&format!(
            "# comment\nother.example {OTHER}\n10.0.0.5 {ED}\n[10.0.0.6]:2222 {ED}\n"
        ));
        assert_eq!(
            check(&files, "10.0.0.5", 22, &blob(ED)).unwrap(),
            Verdict::Known
        );
        assert_eq!(
            check(&files, "10.0.0.6", 2222, &blob(ED)).unwrap(),
            Verdict::Known
        );
        assert_eq!(
            check(&files, "10.0.0.6", 22, &blob(ED)).unwrap(),
            Verdict::Unknown
        );
        assert!(matches!(
            check(&files, "10.0.0.5", 22, &blob(OTHER)).unwrap(),
            Verdict::Changed { line: 3, .. }
        ));
        let (_d, files) = file_with(&format!("@revoked * {ED}\n10.0.0.5 {ED}\n"));
        assert!(matches!(
            check(&files, "10.0.0.5", 22, &blob(ED)).unwrap(),
            Verdict::Revoked { .. }
        ));
    }

    #[test]
    fn hashed_and_wildcard_entries() {
        // `ssh-keygen -H` of "10.0.0.5" with this salt.
        let salt = [7u8; 20];
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"10.0.0.5");
        let hash = mac.finalize().into_bytes();
        use base64ct::Encoding;
        let hashed = format!(
            "|1|{}|{} {ED}\n",
            base64ct::Base64::encode_string(&salt),
            base64ct::Base64::encode_string(&hash)
        );
        let (_d, files) = file_with(&hashed);
        assert_eq!(
            check(&files, "10.0.0.5", 22, &blob(ED)).unwrap(),
            Verdict::Known
        );
        assert_eq!(
            check(&files, "10.0.0.9", 22, &blob(ED)).unwrap(),
            Verdict::Unknown
        );

        let (_d, files) = file_with(&format!("*.example.com,!bad.example.com {ED}\n"));
        assert_eq!(
            check(&files, "web.example.com", 22, &blob(ED)).unwrap(),
            Verdict::Known
        );
        assert_eq!(
            check(&files, "bad.example.com", 22, &blob(ED)).unwrap(),
            Verdict::Unknown
        );
        assert_eq!(
            algorithms_on_record(&files, "web.example.com", 22).unwrap(),
            ["ssh-ed25519"]
        );
    }

    #[test]
    fn accepted_lines_read_back_as_known() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/known_hosts");
        append(
            &file,
            &line_for("10.0.0.7", 2200, &blob(ED), false).unwrap(),
        )
        .unwrap();
        append(&file, &line_for("10.0.0.8", 22, &blob(ED), true).unwrap()).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("[10.0.0.7]:2200 ssh-ed25519 ") && text.contains("\n|1|"),
            "{text}"
        );
        let files = [file];
        assert_eq!(
            check(&files, "10.0.0.7", 2200, &blob(ED)).unwrap(),
            Verdict::Known
        );
        assert_eq!(
            check(&files, "10.0.0.8", 22, &blob(ED)).unwrap(),
            Verdict::Known
        );
        assert!(fingerprint(&blob(ED)).starts_with("SHA256:"));
    }
}
