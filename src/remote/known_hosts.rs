//! Host-key checking in Rust, OpenSSH style: a known key is accepted, an unknown one is refused
//! unless the user opted in (accept-new), a changed or revoked one is always refused.
//!
//! libssh2's own check passes no key type and can report a false mismatch, so known_hosts is read
//! with the `ssh-key` crate and the server's key blob compared byte for byte.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hmac::{KeyInit, Mac};
use ssh_key::known_hosts::{HostPatterns, Marker};
use ssh_key::{HashAlg, PublicKey};

/// The name a host's key is filed under, as OpenSSH looks it up: HostKeyAlias when set (without
/// a port), else `name`, or `[name]:port` off port 22. OpenSSH lowercases it before matching
/// and hashing.
pub fn lookup_name(hostname: &str, port: u16, alias: Option<&str>) -> String {
    let name = match alias {
        Some(alias) => alias.to_string(),
        None if port == 22 => hostname.to_string(),
        None => format!("[{hostname}]:{port}"),
    };
    name.to_ascii_lowercase()
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Known,
    /// No line of any known_hosts file names the host.
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
    /// Only a `@cert-authority` line vouches for the host, and libssh2 cannot check host
    /// certificates.
    CertificateOnly {
        file: PathBuf,
        line: usize,
    },
}

/// A known_hosts line that applies to this host.
struct Record {
    file: PathBuf,
    line: usize,
    marker: Option<Marker>,
    key: PublicKey,
}

/// `host` is the name from [`lookup_name`].
pub fn check(files: &[PathBuf], host: &str, key_blob: &[u8]) -> Result<Verdict> {
    let records = records_for(files, host)?;
    let same = |r: &Record| r.key.to_bytes().is_ok_and(|b| b == key_blob);
    let found = |r: &Record| (r.file.clone(), r.line);
    if let Some((file, line)) = records
        .iter()
        .find(|r| r.marker == Some(Marker::Revoked) && same(r))
        .map(found)
    {
        return Ok(Verdict::Revoked { file, line });
    }
    let plain: Vec<&Record> = records.iter().filter(|r| r.marker.is_none()).collect();
    if plain.iter().any(|r| same(r)) {
        return Ok(Verdict::Known);
    }
    if let Some((file, line)) = plain.first().map(|r| found(r)) {
        return Ok(Verdict::Changed { file, line });
    }
    Ok(
        match records
            .iter()
            .find(|r| r.marker == Some(Marker::CertAuthority))
            .map(found)
        {
            Some((file, line)) => Verdict::CertificateOnly { file, line },
            None => Verdict::Unknown,
        },
    )
}

/// The host key algorithms on record for a host, so the server is asked for a key we can check.
pub fn algorithms_on_record(files: &[PathBuf], host: &str) -> Result<Vec<&'static str>> {
    let mut algorithms = Vec::new();
    for record in records_for(files, host)? {
        if record.marker.is_some() {
            continue;
        }
        let names: &[&str] = match record.key.algorithm() {
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

/// Every line naming `host`, read as OpenSSH reads them: fields split on runs of spaces and
/// tabs, names matched without regard to case. `@revoked` lines are kept for the caller to
/// compare keys. A line that names the host but whose key cannot be read is an error: skipping
/// it could turn a changed key into an unknown one, which accept-new would record.
fn records_for(files: &[PathBuf], host: &str) -> Result<Vec<Record>> {
    let host = host.to_ascii_lowercase();
    let mut records = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        for (index, line) in text.lines().enumerate() {
            let mut fields = line.split([' ', '\t']).filter(|f| !f.is_empty());
            let Some(first) = fields.next().filter(|f| !f.starts_with('#')) else {
                continue;
            };
            let (marker, patterns) = match first.strip_prefix('@') {
                Some(_) => (Some(first.parse::<Marker>()), fields.next()),
                None => (None, Some(first)),
            };
            // Names we cannot decode (a damaged hash) cannot be shown to be this host's.
            let Some(patterns) = patterns.and_then(|p| p.parse::<HostPatterns>().ok()) else {
                continue;
            };
            if !patterns_match(&patterns, &host) {
                continue;
            }
            let key = match (fields.next(), fields.next()) {
                (Some(algorithm), Some(data)) => {
                    PublicKey::from_openssh(&format!("{algorithm} {data}")).ok()
                }
                _ => None,
            };
            let (Some(key), Ok(marker)) = (key, marker.transpose()) else {
                anyhow::bail!(
                    "cannot read line {} of {}, which names {host}\n  \
                     help: fix or delete that line (`ssh-keygen -R '{host}' -f {}` deletes \
                     every line for the host), then check the host's key again",
                    index + 1,
                    file.display(),
                    file.display()
                );
            };
            records.push(Record {
                file: file.clone(),
                line: index + 1,
                marker,
                key,
            });
        }
    }
    Ok(records)
}

/// OpenSSH's match_hostname: patterns compared in lowercase, a matching `!pattern` vetoes.
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
            for pattern in list.iter().map(|p| p.to_ascii_lowercase()) {
                if let Some(negated) = pattern.strip_prefix('!') {
                    if wildcard(negated, host) {
                        return false;
                    }
                } else if wildcard(&pattern, host) {
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
pub fn line_for(host: &str, key_blob: &[u8], hashed: bool) -> Result<String> {
    let mut key =
        PublicKey::from_bytes(key_blob).context("the server sent a key shipit cannot read")?;
    key.set_comment("");
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
        host.to_string()
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

    fn verdict(files: &[PathBuf], host: &str, key: &str) -> Verdict {
        check(files, host, &blob(key)).unwrap()
    }

    #[test]
    fn known_unknown_changed_revoked() {
        let (_d, files) = file_with(&format!(
            "# comment\nother.example {OTHER}\n10.0.0.5 {ED}\n[10.0.0.6]:2222 {ED}\n"
        ));
        assert_eq!(verdict(&files, "10.0.0.5", ED), Verdict::Known);
        assert_eq!(verdict(&files, "[10.0.0.6]:2222", ED), Verdict::Known);
        assert_eq!(verdict(&files, "10.0.0.6", ED), Verdict::Unknown);
        assert!(matches!(
            verdict(&files, "10.0.0.5", OTHER),
            Verdict::Changed { line: 3, .. }
        ));
        let (_d, files) = file_with(&format!("@revoked * {ED}\n10.0.0.5 {ED}\n"));
        assert!(matches!(
            verdict(&files, "10.0.0.5", ED),
            Verdict::Revoked { .. }
        ));
        // A revoked key does not make other hosts known, or unknown ones changed.
        assert_eq!(verdict(&files, "10.0.0.9", OTHER), Verdict::Unknown);
    }

    #[test]
    fn the_lookup_name_is_the_alias_or_the_host_and_port_in_lowercase() {
        assert_eq!(lookup_name("web.example.com", 22, None), "web.example.com");
        assert_eq!(lookup_name("Web", 2222, None), "[web]:2222");
        assert_eq!(lookup_name("10.0.0.5", 2222, Some("Inner")), "inner");
    }

    /// The lines OpenSSH's own lookup (`ssh-keygen -F`) finds are exactly the lines shipit
    /// reads for the host, whatever the spacing, case, hashing, wildcards and negations.
    #[test]
    fn lines_for_a_host_are_the_ones_ssh_keygen_finds() {
        let hashed = line_for("hashed.example.com", &blob(ED), true).unwrap();
        let text = format!(
            "web.example.com\t{ED}\n   Web2.Example.COM  \t {OTHER} a comment\n\
             @revoked * {OTHER}\n@cert-authority *.ca.example.org {ED}\n\
             *.example.com,!bad.example.com {OTHER}\n[web.example.com]:2222 {ED}\n\
             #web.example.com {OTHER}\n{hashed}\nALIAS-1,alias-2 {ED}\n\n"
        );
        let (_d, files) = file_with(&text);
        for host in [
            "web.example.com",
            "web2.example.com",
            "bad.example.com",
            "x.ca.example.org",
            "[web.example.com]:2222",
            "hashed.example.com",
            "alias-1",
            "alias-2",
            "nothing.here",
        ] {
            let output = std::process::Command::new("ssh-keygen")
                .args(["-F", host, "-f"])
                .arg(&files[0])
                .output()
                .expect("run ssh-keygen (openssh-client)");
            let theirs: Vec<usize> = String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|l| l.split(" found: line ").nth(1))
                .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
                .collect();
            let ours: Vec<usize> = records_for(&files, host)
                .unwrap()
                .iter()
                .map(|r| r.line)
                .collect();
            assert_eq!(ours, theirs, "lines for {host}");
        }
        assert_eq!(verdict(&files, "WEB.example.com", ED), Verdict::Known);
        assert!(matches!(
            verdict(&files, "web2.example.com", ED),
            Verdict::Changed { line: 2, .. }
        ));
        assert_eq!(verdict(&files, "bad.example.com", ED), Verdict::Unknown);
        assert!(matches!(
            verdict(&files, "x.ca.example.org", ED),
            Verdict::CertificateOnly { line: 4, .. }
        ));
        assert_eq!(verdict(&files, "hashed.example.com", ED), Verdict::Known);
        assert_eq!(
            algorithms_on_record(&files, "web.example.com").unwrap(),
            ["ssh-ed25519"]
        );
        assert!(
            algorithms_on_record(&files, "x.ca.example.org")
                .unwrap()
                .is_empty()
        );
        // OpenSSH ends a marker at the line's first space, so it loses `@revoked<TAB>* KEY`
        // when a space follows; shipit honours the revocation.
        let (_d, files) = file_with(&format!("@revoked\t* {ED}\n10.0.0.5 {ED}\n"));
        assert!(matches!(
            verdict(&files, "10.0.0.5", ED),
            Verdict::Revoked { line: 1, .. }
        ));
    }

    #[test]
    fn an_unreadable_line_for_the_host_fails_the_check() {
        let (_d, files) = file_with(&format!(
            "other.example ssh-ed25519 AAAAbroken\n10.0.0.5\tssh-ed25519  AAAAbroken\n10.0.0.5 {ED}\n"
        ));
        let error = check(&files, "10.0.0.5", &blob(ED)).unwrap_err();
        assert!(
            format!("{error:#}").contains("cannot read line 2 of"),
            "{error:#}"
        );
        // Lines naming other hosts are none of this check's business.
        assert_eq!(verdict(&files, "10.0.0.6", ED), Verdict::Unknown);
        let (_d, files) = file_with(&format!("@bogus 10.0.0.5 {ED}\n10.0.0.5\n"));
        let error = check(&files, "10.0.0.5", &blob(ED)).unwrap_err();
        assert!(format!("{error:#}").contains("line 1"), "{error:#}");
    }

    #[test]
    fn accepted_lines_read_back_as_known() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/known_hosts");
        append(
            &file,
            &line_for("[10.0.0.7]:2200", &blob(ED), false).unwrap(),
        )
        .unwrap();
        append(&file, &line_for("10.0.0.8", &blob(ED), true).unwrap()).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("[10.0.0.7]:2200 ssh-ed25519 ") && text.contains("\n|1|"),
            "{text}"
        );
        let files = [file];
        assert_eq!(verdict(&files, "[10.0.0.7]:2200", ED), Verdict::Known);
        assert_eq!(verdict(&files, "10.0.0.8", ED), Verdict::Known);
        assert!(fingerprint(&blob(ED)).starts_with("SHA256:"));
    }
}
