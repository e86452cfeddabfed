//! `[metrics]`: where each host's service serves Prometheus metrics, for `shipit generate
//! prometheus`.

use anyhow::Result;
use toml::Spanned;

use super::checks::validate_port;
use super::model::Metrics;
use super::raw::RawMetrics;
use super::source::Source;

const DEFAULT_PATH: &str = "/metrics";

/// `health_port` is the port of the health URL (or `[service] port`), the default when
/// `[metrics] port` is not written: most services serve both from one listener.
pub(super) fn parse_metrics(
    src: &Source,
    raw: RawMetrics,
    health_port: Option<u16>,
) -> Result<Metrics> {
    if let Some(port) = &raw.port {
        src.check(port, validate_port)?;
    }
    if let Some(path) = &raw.path {
        src.check(path, |p| validate_path(p))?;
    }
    Ok(Metrics {
        path: raw
            .path
            .map_or_else(|| DEFAULT_PATH.to_string(), Spanned::into_inner),
        port: raw.port.map(Spanned::into_inner).or(health_port),
    })
}

/// Prometheus sends `metrics_path` as it is, so it must be a plain absolute path: a query or
/// fragment would be escaped into the path, and a space or quote breaks the request line.
fn validate_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "{path:?}: the metrics path must start with / (like \"/metrics\")"
        ));
    }
    if let Some(bad) = path
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '?' | '#' | '"' | '\\'))
    {
        return Err(format!(
            "{path:?}: the metrics path cannot hold {bad:?} (a plain path only: no query, \
             fragment, quote or space)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_plain_absolute_paths() {
        assert!(validate_path("/metrics").is_ok());
        assert!(validate_path("/internal/prom-metrics_v2").is_ok());
        assert!(validate_path("metrics").is_err());
        assert!(validate_path("/metrics?x=1").is_err());
        assert!(validate_path("/met rics").is_err());
        assert!(validate_path("/a\"b").is_err());
    }

    fn parse(text: &str) -> Result<Metrics> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("go.mod"), "module example.com/demo\n").unwrap();
        let path = dir.path().join(super::super::FILE_NAME);
        super::super::parse(dir.path(), &path, text, None).map(|c| c.metrics)
    }

    #[test]
    fn defaults_to_the_health_port_and_slash_metrics() {
        let health = "[health]\nurl = \"http://127.0.0.1:8080/health\"\n";
        assert_eq!(
            parse(health).unwrap(),
            Metrics {
                path: "/metrics".into(),
                port: Some(8080)
            }
        );
        let own = format!("{health}[metrics]\npath = \"/m\"\nport = 9100\n");
        assert_eq!(parse(&own).unwrap().port, Some(9100));
        assert_eq!(parse("").unwrap().port, None);
    }

    #[test]
    fn errors_point_at_the_value() {
        let err = parse("[metrics]\npath = \"metrics\"\n").unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("shipit.toml:2:8: \"metrics\": the metrics path must start with /"),
            "{err:#}"
        );
        let err = parse("[metrics]\nport = 0\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("shipit.toml:2:8: a port must be 1-65535"),
            "{err:#}"
        );
    }
}
