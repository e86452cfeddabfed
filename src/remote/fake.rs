//! A [`Remote`] for unit tests of logic no real host can exercise deterministically (a host
//! failing in one phase of a rollout, a Ctrl-C at an exact point): it records every step and
//! answers each from a rule for its [`Kind`], or with what a healthy host says.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;

use super::{Answer, ExecOutput, HttpAnswer, Kind, Remote, Step, TimeLimit, When};

/// What a fake host answers to a step: its stdout and exit status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub stdout: String,
    pub status: i32,
    pub stderr: String,
}

impl Reply {
    pub fn ok(stdout: &str) -> Reply {
        Reply {
            stdout: stdout.to_string(),
            status: 0,
            stderr: String::new(),
        }
    }

    pub fn exit(status: i32, stderr: &str) -> Reply {
        Reply {
            stdout: String::new(),
            status,
            stderr: stderr.to_string(),
        }
    }

    pub fn with_stdout(mut self, stdout: &str) -> Reply {
        self.stdout = stdout.to_string();
        self
    }
}

/// Something a rule does as its step starts (ask for an interruption, say).
pub type Effect = Arc<dyn Fn() + Send + Sync>;

/// A rule: a step of `kind` gets `reply` (the first `times` times, or always), and may run
/// `effect` when it does.
pub struct Rule {
    pub kind: Kind,
    pub reply: Reply,
    pub times: Option<usize>,
    pub effect: Option<Effect>,
}

/// How one fake host behaves; shared by every connection to it.
#[derive(Default)]
pub struct Host {
    pub rules: Vec<Rule>,
    /// The release running: what the last switch step switched to.
    pub current: String,
    /// Versions whose `/health` answers 503.
    pub unhealthy: Vec<String>,
    /// Every step run on it, in order: (kind, script, stdin).
    pub log: Vec<(Kind, String, Vec<u8>)>,
    pub round_trips: u32,
    pub gets: u32,
}

impl Host {
    /// A host running `old-aaaaaaaaaaaa`, whose every release answers `/health` with its
    /// version.
    pub fn healthy() -> Host {
        Host {
            current: "old-aaaaaaaaaaaa".into(),
            ..Host::default()
        }
    }

    /// `version` answers `/health` with 503.
    pub fn unhealthy(mut self, version: &str) -> Host {
        self.unhealthy.push(version.to_string());
        self
    }

    pub fn on(mut self, kind: Kind, reply: Reply) -> Host {
        self.rules.push(Rule {
            kind,
            reply,
            times: None,
            effect: None,
        });
        self
    }

    pub fn once(mut self, kind: Kind, reply: Reply) -> Host {
        self.rules.push(Rule {
            kind,
            reply,
            times: Some(1),
            effect: None,
        });
        self
    }

    /// Runs `effect` whenever a step of `kind` starts.
    pub fn when(mut self, kind: Kind, effect: impl Fn() + Send + Sync + 'static) -> Host {
        self.rules.push(Rule {
            kind,
            reply: Reply::ok(""),
            times: Some(0),
            effect: Some(Arc::new(effect)),
        });
        self
    }

    /// The kinds of the steps run, in order.
    pub fn steps(&self) -> Vec<Kind> {
        self.log.iter().map(|(kind, _, _)| *kind).collect()
    }

    /// Runs the effects of the rules for `kind`, as the step starts.
    fn start(&self, kind: Kind) {
        for rule in &self.rules {
            if rule.kind == kind
                && let Some(effect) = &rule.effect
            {
                effect();
            }
        }
    }

    fn reply(&mut self, kind: Kind) -> Reply {
        let rule = self
            .rules
            .iter_mut()
            .find(|r| r.kind == kind && r.times != Some(0) && r.effect.is_none());
        if let Some(rule) = rule {
            if let Some(times) = &mut rule.times {
                *times -= 1;
            }
            return rule.reply.clone();
        }
        Reply::ok(default_stdout(kind))
    }
}

/// What a healthy host with release `old-aaaaaaaaaaaa` running says to each step.
fn default_stdout(kind: Kind) -> &'static str {
    match kind {
        Kind::Check => "booted=yes\npid1=systemd\nsystemd=systemd 252 (252.39-1)\nmachine=x86_64\n",
        Kind::Lock => "now=1000\n",
        Kind::Survey | Kind::Releases => {
            "upload=0\nnow=1000\ndevice=1\ndevice=1\nfree=10000000\nfree=10000000\n\
             current=old-aaaaaaaaaaaa\nhistory=old-aaaaaaaaaaaa\nfailed=no old-aaaaaaaaaaaa\n\
             mtime=100 old-aaaaaaaaaaaa\n"
        }
        Kind::Switch | Kind::UnitState => {
            "ActiveState=active\nSubState=running\nMainPID=42\nNRestarts=0\n"
        }
        Kind::Unlock => "released\n",
        Kind::Disarm => "disarmed\n",
        Kind::Journal => "-- the journal --\n",
        _ => "",
    }
}

pub struct FakeRemote {
    label: String,
    host: Arc<Mutex<Host>>,
}

impl FakeRemote {
    pub fn new(label: &str, host: Arc<Mutex<Host>>) -> FakeRemote {
        FakeRemote {
            label: label.to_string(),
            host,
        }
    }
}

impl Remote for FakeRemote {
    fn label(&self) -> &str {
        &self.label
    }

    fn is_root(&self) -> bool {
        true
    }

    fn run(&mut self, steps: Vec<Step<'_>>) -> Result<Vec<Answer>> {
        let mut host = self.host.lock().expect("fake host");
        host.round_trips += 1;
        let mut answers = Vec::new();
        let mut last_ok = true;
        for (index, step) in steps.into_iter().enumerate() {
            if index > 0 && step.when == When::AfterSuccess && !last_ok {
                answers.push(Answer::Skipped);
                continue;
            }
            host.start(step.kind);
            let mut stdin = Vec::new();
            if let Some(mut input) = step.input {
                // Read as the shell does, so an interrupted upload fails here.
                let mut buffer = vec![0; 64 * 1024];
                while (stdin.len() as u64) < input.len {
                    let n = input
                        .data
                        .read(&mut buffer)
                        .map_err(crate::cancel::read_error)?;
                    if n == 0 {
                        break;
                    }
                    stdin.extend_from_slice(&buffer[..n]);
                    (input.progress)(stdin.len() as u64);
                }
            }
            host.log.push((step.kind, step.script.clone(), stdin));
            let reply = host.reply(step.kind);
            if reply.status == 0 && step.kind == Kind::Switch {
                let target = step.script.lines().find_map(|l| l.strip_prefix("target="));
                host.current = target.unwrap_or_default().trim_matches('\'').to_string();
            }
            last_ok = reply.status == 0;
            answers.push(Answer::Ran {
                output: ExecOutput {
                    status: reply.status,
                    signal: None,
                    stdout: reply.stdout,
                    stderr: reply.stderr,
                },
                after: Duration::from_millis(1),
            });
        }
        Ok(answers)
    }

    /// Logged as a step of `kind` (its script: the command), answered by the rules for it:
    /// the reply's stdout goes to `sink`.
    fn exec_streaming(
        &mut self,
        kind: Kind,
        command: &str,
        _limit: Option<&TimeLimit>,
        sink: &mut dyn std::io::Write,
    ) -> Result<ExecOutput> {
        let mut host = self.host.lock().expect("fake host");
        host.round_trips += 1;
        host.start(kind);
        host.log.push((kind, command.into(), Vec::new()));
        let reply = host.reply(kind);
        sink.write_all(reply.stdout.as_bytes())?;
        Ok(ExecOutput {
            status: reply.status,
            signal: None,
            stdout: String::new(),
            stderr: reply.stderr,
        })
    }

    fn http_get(
        &mut self,
        _host: &str,
        _port: u16,
        _path: &str,
        _timeout: Duration,
    ) -> Result<HttpAnswer> {
        let mut host = self.host.lock().expect("fake host");
        host.round_trips += 1;
        host.gets += 1;
        let version = crate::names::ReleaseId::from_host(&host.current)
            .version()
            .to_string();
        let status = if host.unhealthy.contains(&version) {
            503
        } else {
            200
        };
        Ok(HttpAnswer {
            status,
            body: format!("{{\"status\":\"UP\",\"version\":\"{version}\"}}"),
        })
    }

    fn round_trips(&self) -> u32 {
        self.host.lock().expect("fake host").round_trips
    }
}

/// Fake hosts by name, for tests that connect to several.
#[derive(Default, Clone)]
pub struct Hosts(pub Arc<Mutex<BTreeMap<String, Arc<Mutex<Host>>>>>);

impl Hosts {
    pub fn add(&self, name: &str, host: Host) -> Arc<Mutex<Host>> {
        let host = Arc::new(Mutex::new(host));
        self.0
            .lock()
            .expect("fake hosts")
            .insert(name.to_string(), Arc::clone(&host));
        host
    }

    pub fn connect(&self, name: &str) -> Result<FakeRemote> {
        let hosts = self.0.lock().expect("fake hosts");
        let host = hosts
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("no fake host {name}"))?;
        Ok(FakeRemote::new(name, Arc::clone(host)))
    }
}
