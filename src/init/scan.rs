//! What `shipit init` can learn from a project's source about how the service listens: a port
//! flag (and its default), a literal listen address, or the PORT variable. Only what is written
//! in the source counts; each finding keeps its file and line for the comment init writes.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use crate::project::Language;

/// Where something was found: "main.go:47".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found<T> {
    pub value: T,
    pub at: String,
}

/// A command-line flag that sets where the service listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListenFlag {
    /// As typed on the command line: "--port", "--addr".
    pub flag: String,
    /// The flag's default as written ("8080", ":8080"), when the source has a literal one.
    pub default: Option<String>,
    /// Whether it takes an address (host:port) rather than a bare port.
    pub address: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Listening {
    pub flag: Option<Found<ListenFlag>>,
    /// A port in a literal listen address (`ListenAndServe(":8080", …)`, `bind("0.0.0.0:8080")`).
    pub literal_port: Option<Found<u16>>,
    /// The service reads PORT from the environment, with this default when one is written.
    pub port_env: Option<Found<Option<u16>>>,
}

/// Source files looked at, at most; a service's flags and listener are near its top.
const MAX_FILES: usize = 400;
const MAX_DEPTH: usize = 4;

pub(super) fn scan(root: &Path, language: Language) -> Listening {
    let extension = match language {
        Language::Go => "go",
        Language::Rust => "rs",
    };
    let mut files = Vec::new();
    collect(root, extension, 0, &mut files);
    // Shallow files first (the main package, src/main.rs), then by name: stable answers.
    files.sort_by_key(|f| (f.components().count(), f.clone()));
    let mut found = Listening::default();
    for file in files.into_iter().take(MAX_FILES) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let name = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .display()
            .to_string();
        let at = |offset: usize| format!("{name}:{}", text[..offset].lines().count().max(1));
        let text = text.as_str();
        if found.flag.is_none() {
            found.flag = match language {
                Language::Go => go_flag(text),
                Language::Rust => rust_flag(text),
            }
            .map(|(value, offset)| Found {
                value,
                at: at(offset),
            });
        }
        if found.literal_port.is_none() {
            found.literal_port = literal_port(text, language).map(|(value, offset)| Found {
                value,
                at: at(offset),
            });
        }
        if found.port_env.is_none() {
            found.port_env = port_env(text).map(|(value, offset)| Found {
                value,
                at: at(offset),
            });
        }
    }
    found
}

fn collect(dir: &Path, extension: &str, depth: usize, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let skipped = name.starts_with('.')
            || [
                "vendor",
                "testdata",
                "target",
                "tests",
                "examples",
                "node_modules",
            ]
            .contains(&name.as_str());
        if skipped {
            continue;
        }
        if path.is_dir() {
            if depth < MAX_DEPTH {
                collect(&path, extension, depth + 1, files);
            }
        } else if path.extension().is_some_and(|e| e == extension) && !name.ends_with("_test.go") {
            files.push(path);
        }
    }
}

/// "port", "http-port", "listen_port" set a port; "addr", "listen", "bind" an address.
fn flag_kind(name: &str) -> Option<bool> {
    let name = name.to_ascii_lowercase();
    if name.contains("port") {
        Some(false)
    } else if ["addr", "address", "listen", "bind"]
        .iter()
        .any(|w| name == *w || name.ends_with(&format!("-{w}")) || name.ends_with(&format!("_{w}")))
        || name.starts_with("listen")
    {
        Some(true)
    } else {
        None
    }
}

/// Go's flag package and pflag: `flag.Int("port", 8080, …)`, `fs.StringVar(&a, "addr", ":8080",
/// …)`, `flags.IntP("port", "p", 8080, …)`.
fn go_flag(text: &str) -> Option<(ListenFlag, usize)> {
    static FLAG: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"\b\w+\.(?:Int|Uint|Int64|Uint64|String)(?:Var)?(P?)\(\s*(?:&[\w.\[\]]+\s*,\s*)?"([A-Za-z][\w.-]*)"\s*,"#,
        )
        .expect("valid regex")
    });
    FLAG.captures_iter(text).find_map(|c| {
        let name = c.get(2)?.as_str();
        let address = flag_kind(name)?;
        let whole = c.get(0)?;
        let mut rest = &text[whole.end()..];
        if !c[1].is_empty() {
            // pflag's …P functions take the shorthand ("p") before the default.
            rest = &rest[rest.find(',')? + 1..];
        }
        Some((
            ListenFlag {
                flag: format!("--{name}"),
                default: first_literal(rest),
                address,
            },
            whole.start(),
        ))
    })
}

/// clap's derive (`#[arg(long, default_value_t = 8080)] port: u16`), its builder
/// (`.long("port")`), or a hand-written parser matching `"--port"`.
fn rust_flag(text: &str) -> Option<(ListenFlag, usize)> {
    static DERIVE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"#\[(?:arg|clap)\(([^\]]*)\)\]\s*(?:(?:///[^\n]*|#\[[^\]]*\])\s*)*(?:pub(?:\([^)]*\))?\s+)?(\w+)\s*:"#,
        )
        .expect("valid regex")
    });
    static LONG_NAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"\blong\s*=\s*"([\w-]+)""#).expect("valid regex"));
    static LONG: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"\blong\b"#).expect("valid regex"));
    static DEFAULT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"\bdefault_value(?:_t)?\s*=\s*("[^"]*"|\d+)"#).expect("valid regex")
    });
    static BUILDER_OR_LITERAL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?:\.long\(\s*"([\w-]+)"\s*\)|"--([\w-]+)")"#).expect("valid regex")
    });
    let derived = DERIVE.captures_iter(text).find_map(|c| {
        let attribute = c.get(1)?.as_str();
        if !LONG.is_match(attribute) {
            return None;
        }
        let name = LONG_NAME
            .captures(attribute)
            .and_then(|l| l.get(1))
            .map_or_else(|| c[2].replace('_', "-"), |l| l.as_str().to_string());
        let address = flag_kind(&name)?;
        let default = DEFAULT
            .captures(attribute)
            .map(|d| d[1].trim_matches('"').to_string());
        Some((
            ListenFlag {
                flag: format!("--{name}"),
                default,
                address,
            },
            c.get(0)?.start(),
        ))
    });
    derived.or_else(|| {
        BUILDER_OR_LITERAL.captures_iter(text).find_map(|c| {
            let name = c.get(1).or_else(|| c.get(2))?.as_str();
            let address = flag_kind(name)?;
            let whole = c.get(0)?;
            let after = &text[whole.end()..];
            let default = default_nearby(after).or_else(|| port_variable(text));
            Some((
                ListenFlag {
                    flag: format!("--{name}"),
                    default,
                    address,
                },
                whole.start(),
            ))
        })
    })
}

/// clap builder's `.default_value("8080")` in the same chain.
fn default_nearby(after: &str) -> Option<String> {
    static DEFAULT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"^[^;]{0,300}?\.default_value\(\s*"([^"]*)"\s*\)"#).expect("valid regex")
    });
    DEFAULT.captures(after).map(|c| c[1].to_string())
}

/// A port variable given a literal: `let mut port = 8080;`, `port: u16 = 8080`.
fn port_variable(text: &str) -> Option<String> {
    static VARIABLE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"\b\w*port\w*\s*(?::\s*u16\s*)?=\s*(\d{1,5})\s*;"#).expect("valid regex")
    });
    VARIABLE
        .captures(text)
        .map(|c| c[1].to_string())
        .filter(|p| port_of(p).is_some())
}

/// The literal that starts `rest`: a string's contents or a number.
fn first_literal(rest: &str) -> Option<String> {
    let rest = rest.trim_start();
    if let Some(string) = rest.strip_prefix('"') {
        return string.find('"').map(|end| string[..end].to_string());
    }
    let number: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let next = rest[number.len()..].trim_start();
    (!number.is_empty() && (next.starts_with(',') || next.starts_with(')'))).then_some(number)
}

/// The port of "8080", ":8080", "0.0.0.0:8080" or "[::]:8080".
pub(super) fn port_of(value: &str) -> Option<u16> {
    let port = value.rsplit(':').next()?;
    port.parse().ok().filter(|p| *p != 0)
}

fn literal_port(text: &str, language: Language) -> Option<(u16, usize)> {
    static GO: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"(?:ListenAndServe(?:TLS)?\(|\bListen\(\s*"tcp[46]?"\s*,|\bAddr\s*:|\.Run\()\s*"((?:[\w.-]*|\[[:\w]*\]):\d{1,5})""#,
        )
        .expect("valid regex")
    });
    static RUST: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"\bbind\(\s*(?:&?"((?:[\w.-]*|\[[:\w]*\]):\d{1,5})"|\(\s*(?:"[\w.:]*"|\[[\d,\s]*\])\s*,\s*(\d{1,5})\s*\))"#,
        )
        .expect("valid regex")
    });
    let pattern = match language {
        Language::Go => &GO,
        Language::Rust => &RUST,
    };
    pattern.captures_iter(text).find_map(|c| {
        let value = c.get(1).or_else(|| c.get(2))?.as_str();
        Some((port_of(value)?, c.get(0)?.start()))
    })
}

/// `os.Getenv("PORT")` / `env::var("PORT")`, with a literal default written within a few lines
/// (`if port == "" { port = "8080" }`, `.unwrap_or("8080")`).
fn port_env(text: &str) -> Option<(Option<u16>, usize)> {
    static READ: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?:Getenv|LookupEnv|env::var|env::var_os|std::env::var)\(\s*"PORT"\s*\)"#)
            .expect("valid regex")
    });
    static DEFAULT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"(?s)^.{0,200}?"(\d{2,5})""#).expect("valid regex"));
    let read = READ.find(text)?;
    let default = DEFAULT
        .captures(&text[read.end()..])
        .and_then(|c| port_of(&c[1]));
    Some((default, read.start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(text: &str, language: Language) -> Option<(String, Option<String>, bool)> {
        match language {
            Language::Go => go_flag(text),
            Language::Rust => rust_flag(text),
        }
        .map(|(f, _)| (f.flag, f.default, f.address))
    }

    #[test]
    fn go_flags_with_their_defaults() {
        let go = |text| flag(text, Language::Go);
        let port = |d: &str| Some(("--port".to_string(), Some(d.to_string()), false));
        assert_eq!(go(r#"p := flag.Int("port", 8080, "port")"#), port("8080"));
        assert_eq!(go(r#"fs.String("port", "9090", "the port")"#), port("9090"));
        assert_eq!(
            go(r#"flag.IntVar(&cfg.Port, "port", 3000, "x")"#),
            port("3000")
        );
        assert_eq!(go(r#"pflag.IntP("port", "p", 7000, "x")"#), port("7000"));
        assert_eq!(
            go(r#"flag.StringVar(&addr, "http-addr", ":8081", "listen here")"#),
            Some(("--http-addr".into(), Some(":8081".into()), true))
        );
        assert_eq!(
            go(r#"flag.Int("port", defaultPort, "x")"#),
            Some(("--port".into(), None, false))
        );
        assert_eq!(go(r#"flag.String("config", "app.yaml", "x")"#), None);
        assert_eq!(go(r#"flag.Duration("timeout", 5, "x")"#), None);
    }

    #[test]
    fn rust_flags_from_clap_and_by_hand() {
        let rust = |text| flag(text, Language::Rust);
        assert_eq!(
            rust("#[arg(long, default_value_t = 8080)]\n    port: u16,"),
            Some(("--port".into(), Some("8080".into()), false))
        );
        assert_eq!(
            rust("#[arg(short, long, env = \"PORT\")]\n    /// Port.\n    pub http_port: u16,"),
            Some(("--http-port".into(), None, false))
        );
        assert_eq!(
            rust("#[clap(long = \"listen\", default_value = \"0.0.0.0:3000\")]\n addr: String,"),
            Some(("--listen".into(), Some("0.0.0.0:3000".into()), true))
        );
        assert_eq!(rust("#[arg(short)]\n port: u16,"), None);
        assert_eq!(
            rust("Arg::new(\"port\").long(\"port\").default_value(\"4000\")"),
            Some(("--port".into(), Some("4000".into()), false))
        );
        assert_eq!(
            rust("let mut port = 8080;\nmatch a { \"--port\" => {} }"),
            Some(("--port".into(), Some("8080".into()), false))
        );
        assert_eq!(rust("\"--verbose\" => {}"), None);
    }

    #[test]
    fn literal_listen_ports_and_the_port_variable() {
        let go = |t| literal_port(t, Language::Go).map(|(p, _)| p);
        assert_eq!(go(r#"http.ListenAndServe(":9000", mux)"#), Some(9000));
        assert_eq!(go(r#"net.Listen("tcp", "0.0.0.0:7070")"#), Some(7070));
        assert_eq!(
            go(r#"srv := &http.Server{Addr: "127.0.0.1:8088"}"#),
            Some(8088)
        );
        assert_eq!(go(r#"redis.Dial("tcp", "localhost:6379")"#), None);
        let rust = |t| literal_port(t, Language::Rust).map(|(p, _)| p);
        assert_eq!(rust(r#"TcpListener::bind("0.0.0.0:3000")"#), Some(3000));
        assert_eq!(
            rust(r#"HttpServer::new(f).bind(("127.0.0.1", 8080))"#),
            Some(8080)
        );
        assert_eq!(rust(r#"Connection::open("db:5432")"#), None);
        let env = |t| port_env(t).map(|(d, _)| d);
        assert_eq!(
            env("port := os.Getenv(\"PORT\")\nif port == \"\" {\n port = \"8080\"\n}"),
            Some(Some(8080))
        );
        assert_eq!(env("let p = std::env::var(\"PORT\")?;"), Some(None));
        assert_eq!(env("os.Getenv(\"HOST\")"), None);
    }

    #[test]
    fn findings_name_their_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.go"),
            "package main\n\nfunc main() {\n\tflag.Int(\"port\", 8080, \"p\")\n}\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("vendor")).unwrap();
        std::fs::write(
            dir.path().join("vendor/x.go"),
            "http.ListenAndServe(\":1\", nil)",
        )
        .unwrap();
        let found = scan(dir.path(), Language::Go);
        assert_eq!(found.flag.unwrap().at, "main.go:4");
        assert_eq!(
            found.literal_port, None,
            "vendor/ is not the project's code"
        );
    }
}
