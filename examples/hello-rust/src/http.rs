//! Just enough HTTP/1.1: read one request head, write one response, close.

use std::fmt;
use std::io::{self, BufRead, Read, Write};

/// Upper bound on the request head (request line plus headers).
const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without query string, e.g. `/health`.
    pub path: String,
    /// What follows the `?`, without a fragment; empty without one.
    pub query: String,
}

#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    /// Malformed request; answered with 400.
    Bad(&'static str),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::InvalidData => Error::Bad("request head is not UTF-8"),
            _ => Error::Io(e),
        }
    }
}

/// Parses `METHOD SP request-target SP HTTP/1.x`.
pub fn parse_request_line(line: &str) -> Result<Request, &'static str> {
    let line = line.trim_end_matches(['\r', '\n']);
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(proto), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("malformed method");
    }
    if !matches!(proto, "HTTP/1.0" | "HTTP/1.1") {
        return Err("unsupported protocol version");
    }
    if !target.starts_with('/') {
        return Err("request target must be an absolute path");
    }
    let target = target.split('#').next().unwrap_or(target);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
    })
}

/// Reads the request line and skips the headers. `Ok(None)` if the peer
/// closed the connection before sending anything.
pub fn read_request(r: &mut impl BufRead) -> Result<Option<Request>, Error> {
    let mut total = 0;
    let mut line = String::new();
    let mut request = None;
    loop {
        line.clear();
        let limit = (MAX_HEAD - total) as u64 + 1;
        let n = Read::take(&mut *r, limit).read_line(&mut line)?;
        total += n;
        if total > MAX_HEAD {
            return Err(Error::Bad("request head too large"));
        }
        if n == 0 {
            return match request {
                None if total == 0 => Ok(None),
                _ => Err(Error::Bad("connection closed mid-request")),
            };
        }
        // Tolerate empty lines before the request line (RFC 9112 2.2).
        if request.is_none() {
            if line.trim().is_empty() {
                continue;
            }
            request = Some(parse_request_line(&line).map_err(Error::Bad)?);
        } else if line == "\r\n" || line == "\n" {
            return Ok(request);
        }
    }
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub extra_headers: Vec<(&'static str, &'static str)>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: String) -> Self {
        Response {
            status,
            content_type,
            body,
            extra_headers: Vec::new(),
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body.into())
    }

    pub fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.extra_headers.push((name, value));
        self
    }

    pub fn write_to(&self, w: &mut impl Write, head_only: bool) -> io::Result<()> {
        let mut out = self.to_string().into_bytes();
        if !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        w.write_all(&out)?;
        w.flush()
    }
}

/// Formats the status line and headers (not the body).
impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status))?;
        write!(f, "Content-Type: {}\r\n", self.content_type)?;
        write!(f, "Content-Length: {}\r\n", self.body.len())?;
        for (name, value) in &self.extra_headers {
            write!(f, "{name}: {value}\r\n")?;
        }
        f.write_str("Connection: close\r\n\r\n")
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str) -> Request {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
        }
    }

    #[test]
    fn parses_request_lines() {
        assert_eq!(
            parse_request_line("GET / HTTP/1.1\r\n"),
            Ok(req("GET", "/"))
        );
        assert_eq!(
            parse_request_line("GET /health?verbose=1#top HTTP/1.0"),
            Ok(req("GET", "/health?verbose=1"))
        );
        assert_eq!(
            parse_request_line("HEAD /metrics HTTP/1.1\n"),
            Ok(req("HEAD", "/metrics"))
        );
        for bad in [
            "",
            "GET",
            "GET /",
            "GET / HTTP/1.1 extra",
            "GET  / HTTP/1.1",
            "get / HTTP/1.1",
            "GET / HTTP/2.0",
            "GET http://example.com/ HTTP/1.1",
            "GET * HTTP/1.1",
        ] {
            assert!(
                parse_request_line(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn reads_request_head() {
        let mut input: &[u8] = b"\r\nGET /x HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\nrest";
        assert_eq!(read_request(&mut input).unwrap(), Some(req("GET", "/x")));
        let mut empty: &[u8] = b"";
        assert_eq!(read_request(&mut empty).unwrap(), None);
        let mut truncated: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n";
        assert!(matches!(read_request(&mut truncated), Err(Error::Bad(_))));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(
            read_request(&mut big.as_bytes()),
            Err(Error::Bad(_))
        ));
    }

    #[test]
    fn writes_response() {
        let mut out = Vec::new();
        Response::text(404, "not found\n")
            .write_to(&mut out, false)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n"
        );
        let mut head = Vec::new();
        Response::text(200, "hi").write_to(&mut head, true).unwrap();
        assert!(String::from_utf8(head)
            .unwrap()
            .ends_with("Content-Length: 2\r\nConnection: close\r\n\r\n"));
    }
}
