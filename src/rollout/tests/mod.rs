//! The rollout's logic against fake hosts ([`crate::remote::fake`]): batches, canaries,
//! max-fail, rollback-all, a host failing in each phase, Ctrl-C at each safe point, and the
//! exit code a fleet deploy ends with. No root, no network: the deploy path itself is tested
//! against real hosts in tests/cli.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;

use super::fleet::{self, Context, HostReport, Outcome};
use super::report::{outcome, passed};
use super::request::{Amount, Canary, Options, Rollout};
use super::targets::Target;
use crate::actions::{ArmedPolicy, OnFailure};
use crate::cancel::Cancel;
use crate::config::{Argv, Health, HookHosts, Hooks};
use crate::error::{Category, category_of};
use crate::events::Events;
use crate::hosts::{Connect, Layout};
use crate::names::{HostName, ReleaseId};
use crate::package::Package;
use crate::remote::destination::Destination;
use crate::remote::fake::{Host, Hosts, Reply};
use crate::remote::{Exit, Kind, Remote};
use crate::ui::Ui;

struct Fakes(Hosts);

impl Connect for Fakes {
    fn connect(&self, destination: &Destination) -> Result<Box<dyn Remote + Send>> {
        Ok(Box::new(self.0.connect(&destination.label)?))
    }
}

/// Fake hosts, a package of version 2.0.0 and what a deploy is given.
struct World {
    hosts: Hosts,
    host: Vec<Arc<Mutex<Host>>>,
    names: Vec<String>,
    package: Package,
    _dir: tempfile::TempDir,
    rollout: Rollout,
    options: Options,
    health: Health,
    env_file: Option<Vec<u8>>,
    preflight: bool,
    hooks: Hooks,
    /// What a Ctrl-C sets, as the rollout sees it.
    cancel: Cancel,
}

fn world(hosts: Vec<(&str, Host)>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app-2.0.0-linux-amd64.tar.gz");
    std::fs::write(&path, vec![7u8; 3000]).unwrap();
    let fakes = Hosts::default();
    let mut host = Vec::new();
    let mut names = Vec::new();
    for (name, fake) in hosts {
        host.push(fakes.add(name, fake));
        names.push(name.to_string());
    }
    World {
        hosts: fakes,
        host,
        names,
        package: crate::package::fixture(
            &path,
            "2.0.0",
            3000,
            5000,
            "[Service]\nExecStart=/opt/app/current/app\n",
        ),
        _dir: dir,
        rollout: Rollout {
            parallel: 4,
            batch: Amount::Percent(100),
            canary: None,
            max_fail: Amount::Count(0),
            rollback_all_on_failure: false,
        },
        options: Options {
            dry_run: false,
            on_failure: OnFailure::RollBack,
            lock_wait: Duration::ZERO,
            confirm_timeout: None,
            armed: ArmedPolicy::Refuse,
        },
        health: Health {
            check: crate::config::Check::Url {
                url: "http://127.0.0.1:8080/health".into(),
                expect_status: 200,
            },
            interval: Duration::from_millis(5),
            timeout: Duration::from_millis(5),
            retries: 2,
            settle: Duration::ZERO,
            check_version: true,
        },
        env_file: None,
        preflight: false,
        hooks: Hooks::default(),
        cancel: Cancel::new(),
    }
}

fn healthy(names: &[&'static str]) -> Vec<(&'static str, Host)> {
    names.iter().map(|n| (*n, Host::healthy())).collect()
}

fn destination(name: &str, index: usize) -> Destination {
    Destination {
        label: name.to_string(),
        hostname: HostName::parse(&format!("10.0.0.{}", index + 1)).unwrap(),
        port: 22,
        user: "root".into(),
        identity_files: Vec::new(),
        known_hosts: Vec::new(),
        hash_known_hosts: false,
        host_key_alias: None,
        proxy: None,
        sandbox: false,
    }
}

impl World {
    fn layout(&self) -> Layout {
        Layout {
            app: "app".into(),
            user: "app".into(),
            release: ReleaseId::of("2.0.0", &self.package.sha256),
            sha256: self.package.sha256.clone(),
            environment: None,
        }
    }

    fn deploy(&self) -> Vec<(HostReport, Option<anyhow::Error>)> {
        let layout = self.layout();
        let targets: Vec<Target> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| Target {
                destination: destination(name, i),
                env_file: self.env_file.clone(),
                health: Some(self.health.clone()),
            })
            .collect();
        let connector = Fakes(self.hosts.clone());
        let ui = Ui::new(true);
        let context = Context {
            package: &self.package,
            layout: &layout,
            options: &self.options,
            rollout: &self.rollout,
            keep_releases: 5,
            preflight: self.preflight,
            hooks: &self.hooks,
            connector: &connector,
            cancel: &self.cancel,
            events: &Events::off(),
            ui: &ui,
        };
        fleet::deploy(&context, &targets)
    }

    fn outcomes(&self) -> Vec<Outcome> {
        self.deploy().iter().map(|(r, _)| r.outcome).collect()
    }

    fn steps(&self, host: usize) -> Vec<Kind> {
        let host = self.host[host].lock().unwrap();
        host.steps()
    }

    fn current(&self, host: usize) -> String {
        self.host[host].lock().unwrap().current.clone()
    }

    fn round_trips(&self, host: usize) -> u32 {
        self.host[host].lock().unwrap().round_trips
    }
}

/// One host, `web1`.
fn lone(host: Host) -> World {
    world(vec![("web1", host)])
}

/// One host whose `step` ends with `exit`, printing `stdout` (the facts its Rust side reads).
fn lone_failing_at(step: Kind, exit: Exit, stdout: &str) -> World {
    lone(Host::healthy().on(step, Reply::exit(exit.code(), "").with_stdout(stdout)))
}

/// The first host's error, with its causes.
fn error_of(result: &[(HostReport, Option<anyhow::Error>)]) -> String {
    format!("{:#}", result[0].1.as_ref().expect("an error"))
}

/// One host whose step of `kind` fails with `exit`, saying `stderr`: the world after the
/// deploy, and the error.
fn failing(kind: Kind, exit: Exit, stderr: &str) -> (World, String, Option<Category>) {
    let w = lone(Host::healthy().on(kind, Reply::exit(exit.code(), stderr)));
    let result = w.deploy();
    let error = error_of(&result);
    (w, error, self::exit(result))
}

fn count(steps: &[Kind], kind: Kind) -> usize {
    steps.iter().filter(|s| **s == kind).count()
}

fn exit(result: Vec<(HostReport, Option<anyhow::Error>)>) -> Option<Category> {
    outcome(result)
        .err()
        .map(|e| category_of(&e).unwrap_or(Category::Remote))
}

fn hook(words: &[&str]) -> Option<Argv> {
    Some(Argv {
        words: words.iter().map(|w| w.to_string()).collect(),
        location: "shipit.toml:2:17".into(),
    })
}

const HOOK: Kind = Kind::Hook;

fn hook_reports(result: &[(HostReport, Option<anyhow::Error>)]) -> Vec<(&str, &str)> {
    result
        .iter()
        .map(|(r, _)| (r.before_switch, r.after_switch))
        .collect()
}

mod exit_code;
mod fleets;
mod hooks;
mod interrupts;
mod one_host;
mod preflight;
