//! Who each side is: the host, by its key against known_hosts; the login user, by the identities
//! in ssh-agent and the identity files.

use anyhow::{Context, Result};
use ssh2::Session;

use crate::error::{Category, tagged};
use crate::remote::destination::Destination;
use crate::remote::known_hosts::{self, Verdict};

pub(super) fn verify_host_key(
    session: &Session,
    d: &Destination,
    accept_new_host_key: bool,
) -> Result<()> {
    let (blob, _) = session.host_key().context("the server sent no host key")?;
    let fingerprint = known_hosts::fingerprint(blob);
    let form = d.known_hosts_name();
    let first_file = || {
        d.known_hosts
            .first()
            .map_or_else(|| "~/.ssh/known_hosts".into(), |f| f.display().to_string())
    };
    match known_hosts::check(&d.known_hosts, &form, blob)
        .with_context(|| format!("checking the host key of {} ({form})", d.label))?
    {
        Verdict::Known => Ok(()),
        Verdict::Unknown if accept_new_host_key => {
            let file = d
                .known_hosts
                .first()
                .context("no known_hosts file is configured")?;
            known_hosts::append(
                file,
                &known_hosts::line_for(&form, blob, d.hash_known_hosts)?,
            )?;
            eprintln!(
                "    Accepted new host key for {form} ({fingerprint}), recorded in {}",
                file.display()
            );
            Ok(())
        }
        Verdict::Unknown => anyhow::bail!(
            "the host key of {} ({form}) is not known: {fingerprint}\n  \
             help: check the fingerprint with the host's owner (on the host: `ssh-keygen -lf \
             /etc/ssh/ssh_host_ed25519_key.pub`), then re-run with --accept-new-host-key to \
             record it in {}",
            d.label,
            first_file()
        ),
        Verdict::Changed { file, line } => anyhow::bail!(
            "REFUSED: the host key of {} ({form}) has CHANGED; it is now {fingerprint}. \
             Someone may be intercepting the connection, or the host was reinstalled.\n  \
             the recorded key is at {}:{line}\n  \
             help: if the change is expected, remove the old key with `ssh-keygen -R '{form}' -f {}` \
             and connect again with --accept-new-host-key",
            d.label,
            file.display(),
            file.display()
        ),
        Verdict::Revoked { file, line } => anyhow::bail!(
            "REFUSED: the host key of {} ({form}) is marked @revoked at {}:{line}",
            d.label,
            file.display()
        ),
        Verdict::CertificateOnly { file, line } => anyhow::bail!(
            "REFUSED: {} ({form}) is vouched for only by the @cert-authority line {}:{line}, and \
             shipit's SSH library (libssh2) cannot check host certificates; it offered the plain \
             key {fingerprint}\n  \
             help: after checking that fingerprint with the host's owner, add the host's own key \
             to {} (or re-run with --accept-new-host-key once the @cert-authority line no longer \
             names it)",
            d.label,
            file.display(),
            first_file()
        ),
    }
}

/// ssh-agent (every identity, not just the first), then identity files; the error lists all tried.
pub(super) fn authenticate(session: &Session, d: &Destination) -> Result<()> {
    let mut tried = Vec::new();
    match agent_auth(session, &d.user, &mut tried) {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(e) => tried.push(format!("ssh-agent: {e}")),
    }
    let mut locked = None;
    for identity in &d.identity_files {
        if !identity.is_file() {
            continue;
        }
        match session.userauth_pubkey_file(&d.user, None, identity, None) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => tried.push(format!("{}: not accepted", identity.display())),
            Err(_) if encrypted(identity) => {
                tried.push(format!(
                    "{}: protected by a passphrase, which shipit never asks for",
                    identity.display()
                ));
                locked.get_or_insert(identity);
            }
            Err(e) => tried.push(format!("{}: {}", identity.display(), e.message())),
        }
    }
    if tried.is_empty() {
        tried.push("no ssh-agent and none of the identity files exist".into());
    }
    let help = match locked {
        Some(key) => format!(
            "add it to ssh-agent (`ssh-add {}`, in CI from a secret), and shipit uses it from there",
            key.display()
        ),
        None => {
            "load a key into ssh-agent, pass -i KEY, or set IdentityFile in ~/.ssh/config".into()
        }
    };
    Err(tagged(
        Category::Connect,
        anyhow::anyhow!(
            "{} refused authentication as {}; tried:\n{}\n  help: {help}",
            d.label,
            d.user,
            tried
                .iter()
                .map(|t| format!("  - {t}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    ))
}

fn agent_auth(session: &Session, user: &str, tried: &mut Vec<String>) -> Result<bool> {
    if std::env::var_os("SSH_AUTH_SOCK").is_none() {
        return Ok(false);
    }
    let mut agent = session.agent()?;
    agent.connect()?;
    agent.list_identities()?;
    for identity in agent.identities()? {
        if agent.userauth(user, &identity).is_ok() && session.authenticated() {
            return Ok(true);
        }
        tried.push(format!(
            "ssh-agent key {}: not accepted",
            identity.comment()
        ));
    }
    Ok(false)
}

/// A key locked by a passphrase: usable only through ssh-agent, since nothing may prompt (there
/// may be no terminal to prompt on). OpenSSH's own format says so in the key; the older PEM one
/// in a header.
fn encrypted(identity: &std::path::Path) -> bool {
    match ssh_key::PrivateKey::read_openssh_file(identity) {
        Ok(key) => key.is_encrypted(),
        Err(_) => std::fs::read_to_string(identity).is_ok_and(|text| text.contains("ENCRYPTED")),
    }
}
