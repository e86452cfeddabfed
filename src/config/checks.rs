//! Small validators several sections share. Each returns the reason in words a user can act on.

pub(super) fn validate_port(port: &u16) -> Result<(), String> {
    if *port > 0 {
        Ok(())
    } else {
        Err("a port must be 1-65535".into())
    }
}

pub(super) fn validate_health_url(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("{url:?}: the health URL must start with http:// (it is probed on the host)")
    })?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let port = authority.rsplit_once(':').map(|(_, p)| p);
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let host_ok = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    let path_ok = path.chars().all(|c| c.is_ascii_graphic());
    if host_ok && port_ok && path_ok {
        Ok(())
    } else {
        Err(format!(
            "{url:?} is not a URL like http://127.0.0.1:8080/health"
        ))
    }
}

/// `host:port` (or `[v6]:port`) with a port; the host's own tools connect to it.
pub(super) fn validate_tcp_address(address: &str) -> Result<(), String> {
    let (host, port) = super::model::split_host_port(address, "");
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(format!(
            "{address:?} is not an address like 127.0.0.1:6379 (a host and a port)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_urls() {
        assert!(validate_health_url("http://127.0.0.1:8080/health").is_ok());
        assert!(validate_health_url("http://localhost/health").is_ok());
        for bad in [
            "https://x/health",
            "http://h:99999/",
            "http://h/a b",
            "http://$(id)/",
        ] {
            assert!(validate_health_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tcp_addresses() {
        assert!(validate_tcp_address("127.0.0.1:6379").is_ok());
        assert!(validate_tcp_address("[::1]:6379").is_ok());
        for bad in ["127.0.0.1", "h:0", ":80", "$(id):1", "h:99999"] {
            assert!(validate_tcp_address(bad).is_err(), "{bad}");
        }
    }
}
