//! A [`Remote`] for unit tests of logic no real host can exercise deterministically (a host
//! failing in one phase of a rollout, a Ctrl-C at an exact point): it records every step and
//! answers each from a rule for its name, or with what a healthy host says.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;

use super::{Answer, ExecOutput, HttpAnswer, Remote, Step, When};

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

/// A rule: the step whose name starts with `prefix` gets `reply` (the first `times` times, or
/// always), and may run `effect` (to ask for an interruption, say) when it does.
pub struct Rule {
    pub prefix: String,
    pub reply: Reply,
    pub times: Option<usize>,
    pub effect: Option<fn()>,
}

/// How one fake host behaves; shared by every connection to it.
#[derive(Default)]
pub struct Host {
    pub rules: Vec<Rule>,
    /// The release running: what the last switch step switched to.
    pub current: String,
    /// Versions whose `/health` answers 503.
    pub unhealthy: Vec<String>,
    /// Every step run on it, in order: (name, script, stdin).
    pub log: Vec<(String, String, Vec<u8>)>,
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

    pub fn on(mut self, prefix: &str, reply: Reply) -> Host {
        self.rules.push(Rule {
            prefix: prefix.to_string(),
            reply,
            times: None,
            effect: None,
        });
        self
    }

    pub fn once(mut self, prefix: &str, reply: Reply) -> Host {
        self.rules.push(Rule {
            prefix: prefix.to_string(),
            reply,
            times: Some(1),
            effect: None,
        });
        self
    }

    /// Runs `effect` whenever a step starting with `prefix` runs.
    pub fn when(mut self, prefix: &str, effect: fn()) -> Host {
        self.rules.push(Rule {
            prefix: prefix.to_string(),
            reply: Reply::ok(""),
            times: Some(0),
            effect: Some(effect),
        });
        self
    }

    /// The names of the steps run, in order.
    pub fn steps(&self) -> Vec<&str> {
        self.log.iter().map(|(name, _, _)| name.as_str()).collect()
    }

    /// Runs the effects of the rules for `name`, as the step starts.
    fn start(&self, name: &str) {
        for rule in &self.rules {
            if name.starts_with(&rule.prefix)
                && let Some(effect) = rule.effect
            {
                effect();
            }
        }
    }

    fn reply(&mut self, name: &str) -> Reply {
        let rule = self
            .rules
            .iter_mut()
            .find(|r| name.starts_with(&r.prefix) && r.times != Some(0) && r.effect.is_none());
        if let Some(rule) = rule {
            if let Some(times) = &mut rule.times {
                *times -= 1;
            }
            return rule.reply.clone();
        }
        Reply::ok(default_stdout(name))
    }
}

/// What a healthy host with release `old-aaaaaaaaaaaa` running says to each step.
fn default_stdout(name: &str) -> &'static str {
    match name {
        n if n.starts_with("checking the host") => {
            "booted=yes\npid1=systemd\nsystemd=systemd 252 (252.39-1)\nmachine=x86_64\n"
        }
        n if n.starts_with("taking the deploy lock") => "now=1000\n",
        n if n.starts_with("looking at the host") || n.starts_with("listing releases") => {
            "upload=0\nnow=1000\ndevice=1\ndevice=1\nfree=10000000\nfree=10000000\n\
             current=old-aaaaaaaaaaaa\nhistory=old-aaaaaaaaaaaa\nfailed=no old-aaaaaaaaaaaa\n\
             mtime=100 old-aaaaaaaaaaaa\n"
        }
        n if n.starts_with("switching") || n.starts_with("reading the unit state") => {
            "ActiveState=active\nSubState=running\nMainPID=42\nNRestarts=0\n"
        }
        n if n.starts_with("releasing the deploy lock") => "released\n",
        n if n.starts_with("disarming") => "disarmed\n",
        n if n.starts_with("reading the journal") => "-- the journal --\n",
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
            host.start(&step.name);
            let mut stdin = Vec::new();
            if let Some(mut input) = step.input {
                // Read as the shell does, so an interrupted upload fails here.
                let mut buffer = vec![0; 64 * 1024];
                while (stdin.len() as u64) < input.len {
                    let n = input.data.read(&mut buffer).map_err(|e| {
                        if crate::interrupt::requested() {
                            crate::interrupt::interrupted()
                        } else {
                            anyhow::Error::new(e)
                        }
                    })?;
                    if n == 0 {
                        break;
                    }
                    stdin.extend_from_slice(&buffer[..n]);
                    (input.progress)(stdin.len() as u64);
                }
            }
            host.log
                .push((step.name.clone(), step.script.clone(), stdin));
            let reply = host.reply(&step.name);
            if reply.status == 0 && step.name.starts_with("switching") {
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

    /// Logged as a step named "streaming a command" (its script: the command), answered by
    /// the rules for that name: the reply's stdout goes to `sink`.
    fn exec_streaming(
        &mut self,
        command: &str,
        sink: &mut dyn std::io::Write,
    ) -> Result<ExecOutput> {
        let mut host = self.host.lock().expect("fake host");
        host.round_trips += 1;
        let name = "streaming a command";
        host.start(name);
        host.log.push((name.into(), command.into(), Vec::new()));
        let reply = host.reply(name);
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
        let version = host
            .current
            .rsplit_once('-')
            .map_or(host.current.as_str(), |(v, _)| v)
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
