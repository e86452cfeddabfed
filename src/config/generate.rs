//! `[container]` and `[k8s]`: what `shipit generate` needs beyond one box. Kept apart from the
//! systemd settings of the other sections; validated the same way, with file:line:col errors.

use std::time::Duration;

use anyhow::Result;
use toml::Spanned;

use super::checks::validate_port;
use super::model::{Container, K8s, Probe, Resources, Runtime};
use super::raw::{RawContainer, RawK8s, RawProbe, RawResourceTable};
use super::source::Source;

/// One resource and its defaults, the seed Deployment's.
struct Resource {
    name: &'static str,
    request: &'static str,
    limit: &'static str,
}

const CPU: Resource = Resource {
    name: "cpu",
    request: "100m",
    limit: "500m",
};
const MEMORY: Resource = Resource {
    name: "memory",
    request: "128Mi",
    limit: "512Mi",
};
// The seed's probe timings.
const DEFAULT_READINESS: Probe = Probe {
    initial_delay_seconds: 5,
    period_seconds: 10,
};
const DEFAULT_LIVENESS: Probe = Probe {
    initial_delay_seconds: 15,
    period_seconds: 20,
};

pub(super) fn parse_container(src: &Source, raw: RawContainer) -> Result<Container> {
    let runtime = match raw.runtime {
        None => Runtime::DistrolessStatic,
        Some(value) => {
            let found = Runtime::ALL
                .into_iter()
                .find(|r| r.name() == value.get_ref());
            match found {
                Some(runtime) => runtime,
                None => {
                    let names = Runtime::ALL.map(|r| format!("{:?}", r.name())).join(", ");
                    return Err(src.error(
                        &value.span(),
                        format!("unknown runtime {:?}: use one of {names}", value.get_ref()),
                    ));
                }
            }
        }
    };
    Ok(Container { runtime })
}

pub(super) fn parse_k8s(src: &Source, raw: RawK8s, app: &str) -> Result<K8s> {
    let image = match raw.image {
        Some(image) => {
            src.check(&image, |i| validate_image(i))?;
            image.into_inner()
        }
        None => format!("{app}:latest"),
    };
    if let Some(namespace) = &raw.namespace {
        src.check(namespace, |n| validate_namespace(n))?;
    }
    if let Some(replicas) = &raw.replicas {
        src.check(replicas, |r| {
            if (1..=1000).contains(r) {
                Ok(())
            } else {
                Err("replicas must be between 1 and 1000".into())
            }
        })?;
    }
    if let Some(port) = &raw.service_port {
        src.check(port, validate_port)?;
    }
    let RawResourceTable { requests, limits } = raw.resources;
    let (cpu_request, cpu_limit) = quantities(src, &CPU, requests.cpu, limits.cpu)?;
    let (memory_request, memory_limit) = quantities(src, &MEMORY, requests.memory, limits.memory)?;
    Ok(K8s {
        image,
        namespace: raw.namespace.map(Spanned::into_inner),
        replicas: raw.replicas.map_or(3, Spanned::into_inner),
        service_port: raw.service_port.map_or(80, Spanned::into_inner),
        requests: Resources {
            cpu: cpu_request,
            memory: memory_request,
        },
        limits: Resources {
            cpu: cpu_limit,
            memory: memory_limit,
        },
        readiness: parse_probe(src, raw.readiness, DEFAULT_READINESS)?,
        liveness: parse_probe(src, raw.liveness, DEFAULT_LIVENESS)?,
    })
}

/// One resource's request and limit, each checked, and the request checked to fit the limit:
/// Kubernetes refuses a Deployment whose request exceeds its limit, but only once it is applied.
fn quantities(
    src: &Source,
    resource: &Resource,
    request: Option<Spanned<String>>,
    limit: Option<Spanned<String>>,
) -> Result<(String, String)> {
    let memory = resource.name == "memory";
    let value = |quantity: &Option<Spanned<String>>, default: &str| -> Result<f64> {
        match quantity {
            None => Ok(parse_quantity(default).expect("valid default quantity")),
            Some(q) => {
                src.check(q, |text| validate_quantity(text, memory))?;
                Ok(parse_quantity(q.get_ref()).expect("validated quantity"))
            }
        }
    };
    let too_much = value(&request, resource.request)? > value(&limit, resource.limit)?;
    let span = request.as_ref().or(limit.as_ref()).map(Spanned::span);
    let request = request.map_or_else(|| resource.request.to_string(), Spanned::into_inner);
    let limit = limit.map_or_else(|| resource.limit.to_string(), Spanned::into_inner);
    if too_much {
        return Err(src.error(
            &span.unwrap_or(0..0),
            format!(
                "the {} request {request} is more than its limit {limit}: Kubernetes refuses that",
                resource.name
            ),
        ));
    }
    Ok((request, limit))
}

fn parse_probe(src: &Source, raw: RawProbe, default: Probe) -> Result<Probe> {
    let seconds = |value: Option<Spanned<String>>, default: u64, min: u64| -> Result<u64> {
        let Some(value) = value else {
            return Ok(default);
        };
        let duration = humantime::parse_duration(value.get_ref()).map_err(|e| {
            src.error(
                &value.span(),
                format!("{:?} is not a duration like \"10s\": {e}", value.get_ref()),
            )
        })?;
        src.check(&value, |_| whole_seconds(duration, min))?;
        Ok(duration.as_secs())
    };
    Ok(Probe {
        initial_delay_seconds: seconds(raw.initial_delay, default.initial_delay_seconds, 0)?,
        period_seconds: seconds(raw.period, default.period_seconds, 1)?,
    })
}

/// Probe timings are whole seconds in the Kubernetes API.
fn whole_seconds(duration: Duration, min: u64) -> Result<(), String> {
    if duration.subsec_nanos() != 0 {
        Err("Kubernetes probe timings are whole seconds".into())
    } else if duration.as_secs() < min {
        Err(format!("must be at least {min}s"))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------

/// An image reference: `[registry[:port]/]path[:tag][@sha256:…]`, as docker and Kubernetes
/// accept it.
fn validate_image(image: &str) -> Result<(), String> {
    let invalid = || {
        format!("invalid image {image:?}: use a reference like registry.example.com/team/app:1.4.2")
    };
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let digest_ok = digest.is_none_or(|d| {
        d.strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
    });
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (path, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    let tag_ok = tag.is_none_or(|t| {
        (1..=128).contains(&t.len())
            && !t.starts_with(['.', '-'])
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    });
    let mut components: Vec<&str> = path.split('/').collect();
    let registry_ok = if components.len() > 1
        && (components[0].contains(['.', ':']) || components[0] == "localhost")
    {
        let registry = components.remove(0);
        let (host, port) = registry.split_once(':').unwrap_or((registry, "1"));
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    } else {
        true
    };
    let path_ok = components.iter().all(|c| {
        !c.is_empty()
            && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
    });
    if digest_ok && tag_ok && registry_ok && path_ok && name.len() <= 255 {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// A namespace is a DNS label (RFC 1123).
fn validate_namespace(namespace: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&namespace.len())
        && namespace.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && namespace.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && namespace
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid namespace {namespace:?}: use 1-63 lowercase letters, digits and '-', \
             starting and ending with a letter or digit"
        ))
    }
}

fn validate_quantity(quantity: &str, memory: bool) -> Result<(), String> {
    let example = if memory { "128Mi or 1Gi" } else { "100m or 2" };
    if parse_quantity(quantity).is_none() {
        return Err(format!(
            "{quantity:?} is not a Kubernetes quantity like {example}"
        ));
    }
    // "128m" of memory is 0.128 bytes: a classic slip for 128Mi.
    if memory && quantity.ends_with(['m', 'u', 'n']) {
        return Err(format!(
            "{quantity:?} is a fraction of a byte: use Mi or Gi (like {example})"
        ));
    }
    Ok(())
}

/// A quantity's value, for comparing a request with its limit; None when it is not one.
fn parse_quantity(quantity: &str) -> Option<f64> {
    let split = quantity
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let number_ok = !number.is_empty()
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.matches('.').count() <= 1;
    if !number_ok {
        return None;
    }
    let multiplier = match suffix {
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let digits_only = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if digits_only.is_empty() || !digits_only.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            10f64.powi(digits.parse().ok()?)
        }
    };
    Some(number.parse::<f64>().ok()? * multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for ok in [
            "hello-go:latest",
            "hello-go",
            "registry.example.com/team/app:1.4.2",
            "localhost:5000/app",
            "ghcr.io/org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "docker.io/library/alpine:3.22",
        ] {
            assert!(validate_image(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Hello",
            "app:",
            "app:-x",
            "app name",
            "registry:99999/app",
            "app@sha256:short",
            "a//b",
            "app\"",
        ] {
            assert!(validate_image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("128Mi"), Some(128.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        for bad in ["", "lots", "1GB", "-1", ".5", "1.", "1e", "Mi", "1 Gi"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
        assert!(validate_quantity("128m", true).is_err());
        assert!(validate_quantity("128Mi", true).is_ok());
        assert!(validate_quantity("250m", false).is_ok());
    }

    #[test]
    fn namespaces() {
        assert!(validate_namespace("shop-prod").is_ok());
        for bad in ["", "Prod", "-a", "a-", "a_b", &"a".repeat(64)] {
            assert!(validate_namespace(bad).is_err(), "{bad}");
        }
    }
}
