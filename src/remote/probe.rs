//! HTTP GET from the host itself, for hosts whose sshd refuses the direct-tcpip tunnel
//! (`AllowTcpForwarding no`, a CIS benchmark item): one step in the host's shell, with the
//! first of curl, wget or bash's `/dev/tcp` the host has. And what every health answer is held
//! to, however it is fetched: it arrives whole within the timeout, and is at most
//! [`MAX_ANSWER`] bytes.

use std::time::Duration;

use anyhow::Result;

use super::http::parse_http;
use super::{Answer, Exit, HttpAnswer, Kind, Remote, Step};
use crate::shell::quote;

/// The most of a health answer shipit reads, headers and body: a health check answers in bytes,
/// and one that streams without end must not fill this machine's memory, or the host's shell's.
pub const MAX_ANSWER: usize = 1 << 20;

/// A health answer that had not arrived whole when the probe's timeout passed.
pub fn late(timeout: Duration) -> anyhow::Error {
    anyhow::anyhow!("no whole answer within {}s", seconds(timeout))
}

/// A health answer larger than [`MAX_ANSWER`].
pub fn too_large() -> anyhow::Error {
    anyhow::anyhow!(
        "the answer is larger than {MAX_ANSWER} bytes, the most shipit reads of a health answer"
    )
}

/// An HTTP response as fetched, refused when it is larger than [`MAX_ANSWER`] or shorter than
/// its `Content-Length`: a server that stopped halfway did not answer.
pub fn parse(response: &[u8]) -> Result<HttpAnswer> {
    if response.len() > MAX_ANSWER {
        return Err(too_large());
    }
    if let Some((announced, got)) = body_lengths(response)
        && got < announced
    {
        anyhow::bail!("the answer ended after {got} of the {announced} bytes it announced");
    }
    parse_http(response)
}

/// The body's length as its `Content-Length` header announces it, and as it came.
fn body_lengths(response: &[u8]) -> Option<(usize, usize)> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..end]);
    let announced = head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("content-length") {
            return None;
        }
        value.trim().parse().ok()
    })?;
    Some((announced, response.len() - end - 4))
}

/// Seconds as the host's tools take them (`timeout 2`, `curl --max-time 0.5`) and the probes'
/// messages say them: to the millisecond, without trailing zeros, at least 0.1.
pub fn seconds(duration: Duration) -> String {
    let text = format!("{:.3}", duration.as_secs_f64().max(0.1));
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

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
        Exit::Success => parse(response.as_bytes()),
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

/// `probe.sh`: GET `$url` (`$host`, `$port`, `$path`; `$t` seconds and `$cap` bytes at most)
/// with what the host has; deploy's pre-flight runs it too, as a function.
pub const SCRIPT: &str = include_str!("probe.sh");

/// `probe.sh` as a shell function named `name`, for a script that probes from the host with
/// values of its own (deploy's pre-flight).
pub fn function(name: &str) -> String {
    format!("{name}() {{\n{SCRIPT}}}\n")
}

/// [`probe.sh`](probe.sh) with its values.
pub fn script(host: &str, port: u16, path: &str, url: &str, timeout: Duration) -> String {
    format!(
        "host={host}\nport={port}\npath={path}\nurl={url}\nt={t}\ncap={MAX_ANSWER}\n\
         no_probe_tool={code}\n{}",
        SCRIPT,
        host = quote(host),
        path = quote(path),
        url = quote(url),
        t = seconds(timeout),
        code = Exit::NoProbeTool.code(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::process::Command;
    use std::time::Instant;

    const TOOLS: [&str; 3] = ["curl", "wget", "bash"];

    /// Serves one request: `head` at once, then `body`, a byte every `pace` (all at once for
    /// zero).
    fn serve(head: &str, body: Vec<u8>, pace: Duration) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let head = head.to_string();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                // Like a real server: the whole request head, then the answer.
                let mut request = Vec::new();
                let mut byte = [0; 1];
                while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    request.push(byte[0]);
                }
                let _ = stream.write_all(head.as_bytes());
                if pace.is_zero() {
                    let _ = stream.write_all(&body);
                    return;
                }
                for byte in body {
                    std::thread::sleep(pace);
                    if stream.write_all(&[byte]).is_err() {
                        return;
                    }
                }
            }
        });
        port
    }

    /// The script with PATH limited to a directory holding only `tools` (and what they need).
    fn run_with(tools: &[&str], port: u16, timeout: Duration) -> std::process::Output {
        let bin = tempfile::tempdir().unwrap();
        for tool in tools.iter().chain(&[
            "sed", "tail", "mktemp", "cat", "rm", "timeout", "head", "wc",
        ]) {
            if let Ok(path) = which(tool) {
                std::os::unix::fs::symlink(path, bin.path().join(tool)).unwrap();
            }
        }
        let script = script(
            "127.0.0.1",
            port,
            "/health",
            &url("127.0.0.1", port, "/health"),
            timeout,
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

    /// The tools this machine has, each with its name.
    fn installed_tools() -> impl Iterator<Item = &'static str> {
        TOOLS.into_iter().filter(|tool| {
            let there = which(tool).is_ok();
            if !there {
                eprintln!("{tool} is not installed here; skipping it");
            }
            there
        })
    }

    /// Stdout after the `tool=` line, which must name `tool`.
    fn response_of(tool: &str, output: &std::process::Output) -> String {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let (first, response) = stdout.split_once('\n').unwrap_or((&stdout, ""));
        assert_eq!(first, format!("tool={tool}"));
        response.to_string()
    }

    #[test]
    fn each_tool_fetches_status_and_body() {
        for tool in installed_tools() {
            let port = serve(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 15\r\n\r\n",
                b"{\"status\":\"UP\"}".to_vec(),
                Duration::ZERO,
            );
            let output = run_with(&[tool], port, Duration::from_secs(5));
            let response = response_of(tool, &output);
            let answer = parse(response.as_bytes()).unwrap_or_else(|e| {
                panic!(
                    "{tool}: {e}; stderr: {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
            assert_eq!(answer.status, 503, "{tool}: {response}");
            assert_eq!(answer.body, "{\"status\":\"UP\"}", "{tool}");
        }
    }

    /// Headers at once, then a byte every 200 ms: an idle timeout never fires, the deadline on
    /// the whole answer does, and nothing of the half answer is passed on.
    #[test]
    fn each_tool_gives_up_on_an_answer_that_trickles_at_the_deadline() {
        for tool in installed_tools() {
            let body = br#"{"status":"UP","version":"1.0.0"}"#.to_vec();
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let port = serve(&head, body, Duration::from_millis(200));
            let started = Instant::now();
            let output = run_with(&[tool], port, Duration::from_secs(1));
            let took = started.elapsed();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{tool}: {stderr}");
            assert!(
                stderr.trim_end().ends_with("no whole answer within 1s"),
                "{tool}: {stderr}"
            );
            assert_eq!(response_of(tool, &output), "", "{tool}");
            assert!(took < Duration::from_secs(4), "{tool} took {took:?}");
        }
    }

    #[test]
    fn each_tool_refuses_an_answer_over_the_cap() {
        for tool in installed_tools() {
            let body = vec![b'x'; MAX_ANSWER + 4096];
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let port = serve(&head, body, Duration::ZERO);
            let output = run_with(&[tool], port, Duration::from_secs(5));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{tool}: {stderr}");
            assert!(
                stderr.contains(&format!("the answer is larger than {MAX_ANSWER} bytes")),
                "{tool}: {stderr}"
            );
            assert_eq!(response_of(tool, &output), "", "{tool}");
        }
    }

    #[test]
    fn an_answer_over_the_cap_is_refused_here_too() {
        let mut response = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        response.resize(MAX_ANSWER, b'x');
        assert_eq!(parse(&response).unwrap().status, 200);
        response.push(b'x');
        let error = parse(&response).unwrap_err().to_string();
        assert!(error.contains("larger than 1048576 bytes"), "{error}");
    }

    #[test]
    fn an_answer_shorter_than_it_announced_is_refused() {
        let whole = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nUP\r\n";
        assert_eq!(parse(whole).unwrap().body, "UP\r\n");
        let error = parse(&whole[..whole.len() - 2]).unwrap_err().to_string();
        assert_eq!(
            error,
            "the answer ended after 2 of the 4 bytes it announced"
        );
        assert_eq!(
            parse(b"HTTP/1.0 200 OK\r\n\r\nno length").unwrap().status,
            200
        );
    }

    #[test]
    fn seconds_are_written_as_the_tools_read_them() {
        assert_eq!(seconds(Duration::from_secs(2)), "2");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5");
        assert_eq!(seconds(Duration::from_millis(1)), "0.1");
        assert_eq!(seconds(Duration::from_micros(2_000_400)), "2");
    }

    #[test]
    fn a_host_without_tools_says_so() {
        let output = run_with(&[], 1, Duration::from_secs(5));
        assert_eq!(output.status.code(), Some(Exit::NoProbeTool.code()));
    }
}
