//! HTTP GET from the host itself, for hosts whose sshd refuses the direct-tcpip tunnel
//! (`AllowTcpForwarding no`, a CIS benchmark item): one exec on the open session, with the
//! first of curl, wget or bash's `/dev/tcp` the host has.

use std::time::Duration;

use anyhow::Result;

use super::{HttpAnswer, Remote, quote};

/// The script's exit status when the host has none of the tools (EX_UNAVAILABLE).
const NO_TOOL: i32 = 69;

/// Whether `error` is sshd refusing to open a tunnel at all, as opposed to the service not
/// answering behind it (libssh2 names the SSH reason code in its message).
pub fn is_refused(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.to_string().contains("administratively prohibited"))
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
    let output = match remote.exec(&format!("sh -c {}", quote(&script)), None, &|_| {}) {
        Ok(output) => output,
        Err(e) => return (None, Err(e)),
    };
    let (tool, response) = match output.stdout.split_once('\n') {
        Some((first, rest)) if first.starts_with("tool=") => {
            (Some(first["tool=".len()..].to_string()), rest)
        }
        _ => (None, output.stdout.as_str()),
    };
    let answer = if output.status == NO_TOOL {
        Err(anyhow::Error::new(NoProbeTool {
            host: remote.label().to_string(),
            url,
        }))
    } else if !output.success() {
        Err(anyhow::anyhow!(
            "{}",
            output
                .stderr
                .trim()
                .lines()
                .last()
                .unwrap_or("the probe failed")
        ))
    } else {
        super::ssh::parse_http(response.as_bytes())
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

/// Prints `tool=NAME`, then the raw HTTP response (status line, headers, body).
fn script(host: &str, port: u16, path: &str, url: &str, timeout: Duration) -> String {
    format!(
        "host={host} port={port} path={path} url={url} t={t:.3}\n\
         if command -v curl >/dev/null 2>&1; then\n\
           echo tool=curl\n\
           exec curl -sS -i --max-time \"$t\" -H 'User-Agent: shipit' \"$url\"\n\
         elif command -v wget >/dev/null 2>&1; then\n\
           echo tool=wget\n\
           headers=$(mktemp)\n\
           body=$(wget -q -S -O - -T \"$t\" --tries=1 --max-redirect=0 --content-on-error -U shipit \"$url\" 2>\"$headers\"); got=$?\n\
           status=$(sed -n 's/^ *HTTP\\/[0-9.]* \\([0-9][0-9][0-9]\\).*/\\1/p' \"$headers\" | tail -n 1)\n\
           if [ -z \"$status\" ]; then cat \"$headers\" >&2; rm -f \"$headers\"; exit \"$(( got == 0 ? 1 : got ))\"; fi\n\
           rm -f \"$headers\"\n\
           printf 'HTTP/1.0 %s -\\r\\n\\r\\n%s' \"$status\" \"$body\"\n\
         elif command -v bash >/dev/null 2>&1; then\n\
           echo tool=bash\n\
           command -v timeout >/dev/null 2>&1 && limit=\"timeout $t\" || limit=\n\
           exec $limit bash -c 'exec 3<>\"/dev/tcp/$0/$1\" || exit 7\n\
             printf -v request \"GET %s HTTP/1.0\\r\\nHost: %s\\r\\nUser-Agent: shipit\\r\\nConnection: close\\r\\n\\r\\n\" \"$2\" \"$0\"\n\
             printf %s \"$request\" >&3\n\
             cat <&3' \"$host\" \"$port\" \"$path\"\n\
         else\n\
           exit {NO_TOOL}\n\
         fi\n",
        host = quote(host),
        path = quote(path),
        url = quote(url),
        t = timeout.as_secs_f64().max(0.1),
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
            let answer = super::super::ssh::parse_http(response.as_bytes()).unwrap_or_else(|e| {
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
        assert_eq!(output.status.code(), Some(NO_TOOL));
    }
}
