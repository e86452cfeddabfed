//! Reading an HTTP response, whichever way it was fetched: through a direct-tcpip tunnel
//! ([`super::ssh`]) or by a tool on the host itself ([`super::probe`]).

use anyhow::{Context, Result};

use super::HttpAnswer;

pub(super) fn parse_http(response: &[u8]) -> Result<HttpAnswer> {
    let text = String::from_utf8_lossy(response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| {
            let start: String = text.chars().take(80).collect();
            format!("not an HTTP response: {start:?}")
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok(HttpAnswer { status, body })
}
