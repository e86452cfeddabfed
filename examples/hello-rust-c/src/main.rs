//! hello-rust-c: shipit's example of a Rust service with C code. `build.rs` compiles
//! `src/native.c` with the `cc` crate; `/health` reports what the C code answers, checked
//! against the same hash in Rust, and the architecture it was compiled for.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::raw::c_int;
use std::process::ExitCode;

extern "C" {
    fn native_machine() -> c_int;
    fn native_fnv1a(data: *const u8, len: usize) -> u32;
}

/// Stamped at build time: shipit sets SHIPIT_VERSION and SHIPIT_BUILD_TIME for cargo.
const VERSION: &str = match option_env!("SHIPIT_VERSION") {
    Some(v) => v,
    None => "dev",
};
const BUILD_TIME: &str = match option_env!("SHIPIT_BUILD_TIME") {
    Some(t) => t,
    None => "unknown",
};

fn main() -> ExitCode {
    let port = match parse_port(std::env::args().skip(1)) {
        Ok(port) => port,
        Err(err) => {
            eprintln!("hello-rust-c: {err}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("hello-rust-c: listening on 0.0.0.0:{port}: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("hello-rust-c {VERSION} (built {BUILD_TIME}) listening on :{port}");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
    ExitCode::SUCCESS
}

/// `--port N` (default 8080).
fn parse_port(mut args: impl Iterator<Item = String>) -> Result<u16, String> {
    let mut port = 8080;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                port = value
                    .parse()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or(format!("invalid --port {value:?}: must be 1..65535"))?;
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(port)
}

fn serve(mut stream: TcpStream) {
    let mut request_line = String::new();
    if BufReader::new(&stream)
        .read_line(&mut request_line)
        .is_err()
    {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if path == "/health" {
        health()
    } else {
        ("404 Not Found", "not found\n".to_string())
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

fn health() -> (&'static str, String) {
    let native = check_native();
    let (status, code) = if native.starts_with("UP") {
        ("UP", "200 OK")
    } else {
        ("DOWN", "503 Service Unavailable")
    };
    let body = format!(
        "{{\"status\":\"{status}\",\"version\":\"{VERSION}\",\"buildTime\":\"{BUILD_TIME}\",\
         \"checks\":{{\"native\":\"{native}\"}}}}\n"
    );
    (code, body)
}

/// Calls the C code and checks its answer against Rust's: "UP (C on x86_64)" when they agree.
fn check_native() -> String {
    let probe = b"shipit";
    // SAFETY: native_fnv1a reads exactly len bytes of data; native_machine reads nothing.
    let (got, machine) = unsafe { (native_fnv1a(probe.as_ptr(), probe.len()), native_machine()) };
    let arch = match machine {
        62 => "x86_64",
        183 => "aarch64",
        _ => "an unknown machine",
    };
    let want = probe.iter().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(16_777_619)
    });
    if got == want {
        format!("UP (C on {arch})")
    } else {
        format!("DOWN: C on {arch} computed fnv1a {got:08x}, want {want:08x}")
    }
}
