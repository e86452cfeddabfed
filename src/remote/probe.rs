//! HTTP GET from the host itself, for hosts whose sshd refuses the direct-tcpip tunnel
//! (`AllowTcpForwarding no`, a CIS benchmark item): one step in the host's shell, with the
//! first of curl, wget or bash's `/dev/tcp` the host has.

use std::time::Duration;

use anyhow::Result;

use super::http::parse_http;
use super::{Answer, Exit, HttpAnswer, Kind, Remote, Step};
use crate::shell::quote;

/// sshd refused to open a tunnel at all (`AllowTcpForwarding no`), as opposed to the service
/// not answering behind it.
#[derive(Debug)]
pub struct TunnelRefused;

impl std::fmt::Display for TunnelRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sshd refused to open a tunnel (administratively prohibited)"
        )
    }
}

impl std::error::Error for TunnelRefused {}

pub fn is_refused(error: &anyhow::Error) -> bool {
    crate::error::find::<TunnelRefused>(error).is_some()
}

/// A host that refuses tunnels and has nothing to probe with itself.
#[derive(Debug)]
pub struct NoProbeTool {
    pub host: String,
    pub url: String,
}

impl std::fmt::Display for NoProbeTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{host} refuses TCP forwarding (AllowTcpForwarding no) and has none of curl, wget or \
             bash to fetch {url} from the host itself\n  \
             help: install curl on {host} (Debian: apt-get install curl), or let its sshd forward \
             to the host's own ports with `AllowTcpForwarding local`",
            host = self.host,
            url = self.url
        )
    }
}

impl std::error::Error for NoProbeTool {}

/// GET `path` from `host:port` on the remote host with its own tools. Returns the tool used
/// (None when there was none) and the answer.
pub fn get(
    remote: &mut dyn Remote,
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
) -> (Option<String>, Result<HttpAnswer>) {
    let url = url(host, port, path);
    let script = script(host, port, path, &url, timeout);
    let step = Step::new(Kind::Probe, script);
    let output = match remote.run(vec![step]).map(|mut a| a.pop()) {
        Ok(Some(Answer::Ran { output, .. })) => output,
        Ok(_) => return (None, Err(anyhow::anyhow!("the probe did not run"))),
        Err(e) => return (None, Err(e)),
    };
    let (tool, response) = match output.stdout.split_once('\n') {
        Some((first, rest)) if first.starts_with("tool=") => {
            (Some(first["tool=".len()..].to_string()), rest)
        }
        _ => (None, output.stdout.as_str()),
    };
    let answer = match Exit::of_status(output.status) {
        Exit::Success => parse_http(response.as_bytes()),
        Exit::NoProbeTool => Err(anyhow::Error::new(NoProbeTool {
            host: remote.label().to_string(),
            url,
        })),
        _ => Err(anyhow::anyhow!(
            "{}",
            output
                .stderr
                .trim()
                .lines()
                .last()
                .unwrap_or("the probe failed")
        )),
    };
    (tool, answer)
}

fn url(host: &str, port: u16, path: &str) -> String {
    if host.contains(':') {
        format!("http://[{host}]:{port}{path}")
    } else {
        format!("http://{host}:{port}{path}")
    }
}

/// `probe.sh`: GET `$url` (`$host`, `$port`, `$path`, `$t` seconds at most) with what the host
/// has; deploy's pre-flight runs it too, as a function.
pub const SCRIPT: &str = include_str!("probe.sh");

/// `probe.sh` as a shell function named `name`, for a script that probes from the host with
/// values of its own (deploy's pre-flight).
pub fn function(name: &str) -> String {
    format!("{name}() {{\n{SCRIPT}}}\n")
}

/// [`probe.sh`](probe.sh) with its values.
pub fn script(host: &str, port: u16, path: &str, url: &str, timeout: Duration) -> String {
    format!(
        "host={host}\nport={port}\npath={path}\nurl={url}\nt={t:.3}\nno_probe_tool={code}\n{}",
        SCRIPT,
        host = quote(host),
        path = quote(path),
        url = quote(url),
        t = timeout.as_secs_f64().max(0.1),
        code = Exit::NoProbeTool.code(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::process::Command;

    /// Serves one request with a fixed answer.
    fn serve_once(answer: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                // Like a real server: the whole request head, then the answer.
                let mut request = Vec::new();
                let mut byte = [0; 1];
                while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    request.push(byte[0]);
                }
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        port
    }

    /// The script with PATH limited to a directory holding only `tools` (and what they need).
    fn run_with(tools: &[&str], port: u16) -> std::process::Output {
        let bin = tempfile::tempdir().unwrap();
        for tool in tools
            .iter()
            .chain(&["sed", "tail", "mktemp", "cat", "rm", "timeout"])
        {
            if let Ok(path) = which(tool) {
                std::os::unix::fs::symlink(path, bin.path().join(tool)).unwrap();
            }
        }
        let script = script(
            "127.0.0.1",
            port,
            "/health",
            &url("127.0.0.1", port, "/health"),
            Duration::from_secs(5),
        );
        Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .env("PATH", bin.path())
            .output()
            .unwrap()
    }

    fn which(tool: &str) -> std::io::Result<std::path::PathBuf> {
        ["/usr/bin", "/bin", "/usr/local/bin"]
            .iter()
            .map(|dir| std::path::Path::new(dir).join(tool))
            .find(|p| p.exists())
            .ok_or_else(|| std::io::Error::other(format!("{tool} not installed")))
    }

    #[test]
    fn each_tool_fetches_status_and_body() {
        for tool in ["curl", "wget", "bash"] {
            if which(tool).is_err() {
                eprintln!("{tool} is not installed here; skipping it");
                continue;
            }
            let port = serve_once(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 15\r\n\r\n{\"status\":\"UP\"}",
            );
            let output = run_with(&[tool], port);
            let stdout = String::from_utf8_lossy(&output.stdout);
            let (first, response) = stdout.split_once('\n').unwrap();
            assert_eq!(first, format!("tool={tool}"));
            let answer = parse_http(response.as_bytes()).unwrap_or_else(|e| {
                panic!(
                    "{tool}: {e}; stderr: {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
            assert_eq!(answer.status, 503, "{tool}: {stdout}");
            assert_eq!(answer.body, "{\"status\":\"UP\"}", "{tool}");
        }
    }

    #[test]
    fn a_host_without_tools_says_so() {
        let output = run_with(&[], 1);
        assert_eq!(output.status.code(), Some(Exit::NoProbeTool.code()));
    }
}
