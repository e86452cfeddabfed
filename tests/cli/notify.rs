//! `[notify]` on real hosts: the command hears of every deploy and rollback, however it ended,
//! with the report on its stdin; the webhook gets the same report over TLS that shipit verifies;
//! and a notifier that fails never changes shipit's exit code.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::support::app::*;
use crate::support::sandbox::Sandbox;
use crate::support::*;

/// Writes what it was told into `$NOTICES`, by command, then fails: its failure must change
/// nothing.
const RECORD: &str = r#"["sh", "-c", "env | grep ^SHIPIT_ | sort > \"$NOTICES/$SHIPIT_COMMAND.env\" && cat > \"$NOTICES/$SHIPIT_COMMAND.json\"; exit 1"]"#;

/// What the command was told about one command: its `SHIPIT_*` variables and its stdin.
struct Notice {
    env: BTreeMap<String, String>,
    report: serde_json::Value,
}

/// The notice of `command` (`deploy` or `rollback`), taken away so the next one is fresh.
fn take_notice(notices: &Path, command: &str) -> Option<Notice> {
    let env_path = notices.join(format!("{command}.env"));
    let json_path = notices.join(format!("{command}.json"));
    let env = std::fs::read_to_string(&env_path).ok()?;
    let report = std::fs::read_to_string(&json_path).unwrap();
    std::fs::remove_file(env_path).unwrap();
    std::fs::remove_file(json_path).unwrap();
    Some(Notice {
        env: env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        report: serde_json::from_str(&report).unwrap_or_else(|e| panic!("{e}: {report:?}")),
    })
}

fn deploy(
    sandbox: &Sandbox,
    project: &Path,
    ssh_config: &str,
    version: &str,
    env: &[(&str, &str)],
) -> (Run, serde_json::Value) {
    let args = [
        "deploy",
        "web",
        "-F",
        ssh_config,
        "--json",
        "--version-override",
        version,
    ];
    let mut shipit = sandbox.project(project).shipit(&args);
    for (key, value) in env {
        shipit = shipit.env(key, value);
    }
    let run = shipit.run();
    let summary = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    (run, summary)
}

fn a_notify_command_hears_of_each_deploy_and_rollback_and_never_changes_the_exit_code() {
    let hosts = ["nt-1"];
    let sandbox = Sandbox::up(&hosts);
    let notices = tempfile::tempdir().unwrap();
    let notices_dir = notices.path().to_str().unwrap();
    // Nothing listens there: a webhook that fails on every run, besides the command.
    let notify = format!(
        "\n[notify]\ncommand = {RECORD}\nwebhook = \"http://127.0.0.1:{}/hook\"\n",
        free_port()
    );
    let (good, ssh_config) = fleet_project(&sandbox, &hosts, &notify);
    let (unhealthy, _) = fleet_project(
        &sandbox,
        &hosts,
        &format!("\n[hosts.nt-1.env]\nHELLO_HEALTH_DOWN = \"1\"\n{notify}"),
    );
    let (hook_fails, _) = fleet_project(
        &sandbox,
        &hosts,
        &format!("{notify}\n[hooks]\nbefore_switch = [\"false\"]\n"),
    );
    let env = [("NOTICES", notices_dir)];
    let notice = |command: &str| {
        take_notice(notices.path(), command)
            .unwrap_or_else(|| panic!("the notify command heard nothing of the {command}"))
    };
    let assert_warned = |run: &Run| {
        for says in [
            "warning: [notify] command `sh -c",
            "failed (exit status: 1)",
            "warning: [notify] webhook http://127.0.0.1:",
            "could not be reached",
        ] {
            assert!(run.stderr.contains(says), "{says}:\n{}", run.stderr);
        }
    };

    // A plan touches nothing, so it tells nobody.
    let plan = sandbox
        .project(good.path())
        .shipit(&[
            "deploy",
            "web",
            "-F",
            &ssh_config,
            "--dry-run",
            "--version-override",
            "1.0.0",
        ])
        .env("NOTICES", notices_dir)
        .run();
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(take_notice(notices.path(), "deploy").is_none());

    // A success: the same report as --json, and the variables.
    let (run, summary) = deploy(&sandbox, good.path(), &ssh_config, "1.0.0", &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_warned(&run);
    let told = notice("deploy");
    assert_eq!(told.report, summary);
    let release = summary["release"].as_str().unwrap();
    for (key, value) in [
        ("SHIPIT_APP", "hello-go"),
        ("SHIPIT_COMMAND", "deploy"),
        ("SHIPIT_ENVIRONMENT", ""),
        ("SHIPIT_OUTCOME", "deployed"),
        ("SHIPIT_RELEASE", release),
        ("SHIPIT_VERSION", "1.0.0"),
    ] {
        assert_eq!(told.env.get(key).map(String::as_str), Some(value), "{key}");
    }
    let user = &told.env["SHIPIT_USER"];
    let history = sandbox
        .project(good.path())
        .shipit(&["history", "nt-1", "-F", &ssh_config, "--json"])
        .run()
        .success()
        .stdout;
    assert!(
        history.contains(&format!("\"by\": \"{user}\"")),
        "{user}: {history}"
    );

    // `shipit rollback` tells it too, with a report of the rollback.
    deploy(&sandbox, good.path(), &ssh_config, "1.1.0", &env)
        .0
        .success();
    notice("deploy");
    let rollback = sandbox
        .project(good.path())
        .shipit(&["rollback", "nt-1", "-F", &ssh_config])
        .env("NOTICES", notices_dir)
        .run()
        .success();
    assert_warned(&rollback);
    let told = notice("rollback");
    assert_eq!(told.env["SHIPIT_COMMAND"], "rollback");
    assert_eq!(told.env["SHIPIT_OUTCOME"], "rolled-back");
    assert_eq!(told.env["SHIPIT_VERSION"], "1.0.0");
    assert_eq!(told.env["SHIPIT_RELEASE"], release);
    assert_eq!(told.report["host"], "nt-1");
    assert_eq!(told.report["ok"], true);
    assert_eq!(told.report["to"], release);
    let previous = told.report["from"].as_str().unwrap();
    assert!(previous.starts_with("1.1.0-"), "{}", told.report);

    // A release that fails its health gate is rolled back: exit 6 whatever the notifiers say.
    let (run, summary) = deploy(&sandbox, unhealthy.path(), &ssh_config, "2.0.0", &env);
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert_warned(&run);
    let told = notice("deploy");
    assert_eq!(told.report, summary);
    assert_eq!(told.report["hosts"][0]["outcome"], "rolled-back");
    assert_eq!(told.env["SHIPIT_OUTCOME"], "rolled-back");
    assert_eq!(told.env["SHIPIT_VERSION"], "2.0.0");

    // A hook failing before the switch: the deploy failed, and the notifiers hear of it.
    let (run, summary) = deploy(&sandbox, hook_fails.path(), &ssh_config, "3.0.0", &env);
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert_warned(&run);
    let told = notice("deploy");
    assert_eq!(told.report, summary);
    assert_eq!(told.report["hosts"][0]["outcome"], "failed");
    assert_eq!(told.env["SHIPIT_OUTCOME"], "failed");
    assert_eq!(health_version(&sandbox, "nt-1"), "1.0.0");
}

/// A CA, a second CA, and a certificate for 127.0.0.1 signed by the first, as PEM files in
/// `dir`: `ca.pem`, `other.pem`, `server.pem` and `server.key`.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for ca in ["ca", "other"] {
        let (key_file, cert, subject) = (
            format!("{ca}.key"),
            format!("{ca}.pem"),
            format!("/CN={ca}"),
        );
        openssl(
            &[
                &["req", "-x509"][..],
                &key,
                &[
                    "-keyout", &key_file, "-out", &cert, "-days", "2", "-subj", &subject,
                ],
                &["-addext", "basicConstraints=critical,CA:TRUE"],
                &["-addext", "keyUsage=critical,keyCertSign"],
            ]
            .concat(),
        );
    }
    openssl(
        &[
            &["req"][..],
            &key,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

/// An HTTPS server on 127.0.0.1 that writes each POST (path, headers, body) as `N.json` into
/// its directory and answers 204; killed when dropped.
const WEBHOOK_SERVER: &str = r#"
import http.server, json, os, ssl, sys
out, cert, key = sys.argv[1:4]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        record = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                  "body": body.decode()}
        with open(os.path.join(out, "%d.json" % len(os.listdir(out))), "w") as f:
            json.dump(record, f)
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

struct WebhookServer {
    child: Child,
    port: u16,
    received: tempfile::TempDir,
}

impl WebhookServer {
    fn start(certs: &Path) -> WebhookServer {
        let received = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .args(["-c", WEBHOOK_SERVER])
            .arg(received.path())
            .arg(certs.join("server.pem"))
            .arg(certs.join("server.key"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{e}: {line:?}"));
        WebhookServer {
            child,
            port,
            received,
        }
    }

    /// The POSTs received so far, in order.
    fn received(&self) -> Vec<serde_json::Value> {
        let count = std::fs::read_dir(self.received.path()).unwrap().count();
        (0..count)
            .map(|n| {
                let text = std::fs::read_to_string(self.received.path().join(format!("{n}.json")))
                    .unwrap();
                serde_json::from_str(&text).unwrap()
            })
            .collect()
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn a_webhook_gets_the_report_and_its_header_over_tls_that_shipit_verifies() {
    let hosts = ["nw-1"];
    let sandbox = Sandbox::up(&hosts);
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let server = WebhookServer::start(certs.path());
    let notify = format!(
        "\n[notify]\nwebhook = \"https://127.0.0.1:{}/hooks/T0/SECRET-PATH\"\n\
         webhook_header = \"Authorization\"\nwebhook_header_env = \"NOTIFY_TEST_TOKEN\"\n\
         timeout = \"5s\"\n",
        server.port
    );
    let (project, ssh_config) = fleet_project(&sandbox, &hosts, &notify);
    let ca = certs.path().join("ca.pem");
    let other = certs.path().join("other.pem");
    let token = "Bearer s3cret-token";
    let no_secret = |run: &Run| {
        for secret in ["s3cret", "SECRET-PATH"] {
            assert!(
                !run.stderr.contains(secret) && !run.stdout.contains(secret),
                "{secret} shown:\n{}",
                run.stderr
            );
        }
    };

    // Trusted through SSL_CERT_FILE: the same body as --json, the header from the environment.
    let (run, summary) = deploy(
        &sandbox,
        project.path(),
        &ssh_config,
        "1.0.0",
        &[
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
            ("NOTIFY_TEST_TOKEN", token),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    no_secret(&run);
    let received = server.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let post = &received[0];
    assert_eq!(post["path"], "/hooks/T0/SECRET-PATH");
    assert_eq!(post["headers"]["content-type"], "application/json");
    assert_eq!(post["headers"]["authorization"], token);
    let agent = post["headers"]["user-agent"].as_str().unwrap();
    assert!(agent.starts_with("shipit/"), "{agent}");
    let body: serde_json::Value = serde_json::from_str(post["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, summary);

    // A CA shipit does not trust: refused, said so, and the deploy still succeeds. Without the
    // token's variable, the header is left out, with a warning.
    let (run, _) = deploy(
        &sandbox,
        project.path(),
        &ssh_config,
        "1.0.0",
        &[("SSL_CERT_FILE", other.to_str().unwrap())],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    no_secret(&run);
    let webhook = format!(
        "warning: [notify] webhook https://127.0.0.1:{}",
        server.port
    );
    for says in [
        webhook.as_str(),
        "TLS failed",
        "help: a certificate from a private CA is trusted once SSL_CERT_FILE",
        "$NOTIFY_TEST_TOKEN is not set here",
    ] {
        assert!(run.stderr.contains(says), "{says}:\n{}", run.stderr);
    }
    assert_eq!(server.received().len(), 1, "nothing got past TLS");
}

pub fn tests() -> Vec<crate::harness::Test> {
    vec![
        crate::test!(
            Hosts,
            60,
            a_notify_command_hears_of_each_deploy_and_rollback_and_never_changes_the_exit_code
        ),
        crate::test!(
            Hosts,
            20,
            a_webhook_gets_the_report_and_its_header_over_tls_that_shipit_verifies
        ),
    ]
}
