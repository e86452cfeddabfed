//! Every script shipit runs on a host, as the host gets it, for the integration tests to put
//! through shellcheck (`scripts::every_host_script_passes_shellcheck`, where shellcheck's absence
//! is reported as an ignored test): one of each [`Kind`] (a match with no catch-all, so a new kind
//! cannot go unchecked), the functions made for a script (pre-flight's `start_on_socket`, a
//! hook's transient unit), the dead-man timer's own script, and the commands `exec` and `logs`
//! run. shellcheck's SC2154 ("referenced but not assigned") also proves each script's
//! `: "${name:?}"` inputs are in its preamble.

use std::time::Duration;

use crate::actions::ArmedPolicy;
use crate::actions::deadman::{ArmTimer, DisarmTimer, heal_script};
use crate::actions::hooks::hook_script;
use crate::actions::lock::{HeldLock, ReadLock, ReleaseLock, TakeLock};
use crate::actions::preflight::Preflight;
use crate::actions::release::UnpackRelease;
use crate::actions::survey::SurveyHost;
use crate::actions::switch::{
    FinishRelease, Listen, MarkRelease, ReadJournal, ReadUnitState, StopService, SwitchTo,
};
use crate::actions::upload::SendPackage;
use crate::build::Target as Platform;
use crate::config::Health;
use crate::hosts::check::{CheckHost, HostUnit};
use crate::hosts::deployed::ReadDeployed;
use crate::hosts::log::{Entry, ReadLog, RecordLog};
use crate::hosts::releases::ListReleases;
use crate::hosts::{Layout, Script};
use crate::names::{AppName, ReleaseId};
use crate::package::Package;
use crate::remote::Kind;
use crate::rollout::dry_run::ReadInstalled;
use crate::service_run::{self, ServiceRun};

const UNIT: &str = "[Unit]\nDescription=app\n\n[Service]\nType=simple\nUser=app\n\
    WorkingDirectory=/opt/app/current\nExecStart=/opt/app/current/app --port 8080\n\
    EnvironmentFile=-/etc/app/app.env\nEnvironment=\"LOG_LEVEL=info\"\nLimitNOFILE=65536\n\
    ProtectSystem=strict\n\n[Install]\nWantedBy=multi-user.target\n";

fn layout() -> Layout {
    Layout {
        app: AppName::parse("app").expect("a valid app name"),
        user: "app".into(),
        release: ReleaseId::from_host("1.0.0-0123456789ab"),
        sha256: "0".repeat(64),
        environment: None,
    }
}

fn package() -> Package {
    let mut package = crate::package::fixture(
        "app-1.0.0-linux-amd64.tar.gz".as_ref(),
        "1.0.0",
        1000,
        5000,
        UNIT,
    );
    package.socket = Some("[Socket]\nListenStream=8080\n".into());
    package
}

fn host_unit() -> HostUnit {
    HostUnit {
        systemd: 247,
        adapted: Some(UNIT.replace("ProtectSystem", "# left out: ProtectSystem")),
        socket_adapted: None,
    }
}

fn health() -> Health {
    Health {
        check: crate::config::Check::Url {
            url: "http://127.0.0.1:8080/health".into(),
            expect_status: 200,
        },
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        retries: 3,
        settle: Duration::from_secs(3),
        check_version: true,
    }
}

fn run<'a>(argv: &'a [String], env: &'a [(String, String)]) -> ServiceRun<'a> {
    ServiceRun {
        app: "app",
        purpose: "exec",
        unit: UNIT,
        systemd: 252,
        working_directory: "/opt/app/releases/1.0.0-0123456789ab",
        env_files: None,
        env,
        argv,
        terminal: false,
    }
}

/// The script of `kind`, as a host gets it, from example inputs.
fn script_of(kind: Kind) -> String {
    let layout = layout();
    let entry = Entry::now(
        &layout,
        "deploy",
        "1.0.0",
        Some(&ReleaseId::from_host("0.9.0-aaaaaaaaaaaa")),
        "deployed",
        1.5,
    );
    let held = HeldLock {
        owner: None,
        age: Duration::from_secs(700),
    };
    match kind {
        Kind::Check => CheckHost {
            target: Platform::LinuxAmd64,
        }
        .assemble(&layout),
        Kind::Lock => TakeLock::first(&layout, ArmedPolicy::Refuse).assemble(&layout),
        Kind::Survey => SurveyHost.assemble(&layout),
        Kind::Upload => SendPackage {
            size: 1000,
            offset: 10,
        }
        .assemble(&layout),
        Kind::Release => {
            UnpackRelease::new(&layout, &package(), true, &host_unit()).assemble(&layout)
        }
        Kind::Preflight => Preflight::new(&layout, &package(), &host_unit(), &health())
            .expect("a pre-flight")
            .assemble(&layout),
        Kind::Arm => ArmTimer::new(
            &layout,
            Some(&ReleaseId::from_host("0.9.0-aaaaaaaaaaaa")),
            Duration::from_secs(90),
        )
        .assemble(&layout),
        Kind::Switch => SwitchTo {
            release: layout.release.clone(),
            listen: Listen {
                port: Some(8080),
                wait: Duration::from_secs(1),
            },
        }
        .assemble(&layout),
        Kind::UnitState => ReadUnitState.assemble(&layout),
        Kind::Mark => MarkRelease {
            release: layout.release.clone(),
            healthy: false,
        }
        .assemble(&layout),
        Kind::Stop => StopService.assemble(&layout),
        Kind::Journal => ReadJournal {
            since: 1_700_000_000,
        }
        .assemble(&layout),
        Kind::Finish => FinishRelease {
            release: layout.release.clone(),
            keep: 5,
        }
        .assemble(&layout),
        Kind::Log => RecordLog::new(&layout, &entry).assemble(&layout),
        Kind::Unlock => ReleaseLock::mine().assemble(&layout),
        Kind::RemoveLock => ReleaseLock::held(&held).assemble(&layout),
        Kind::LockStatus => ReadLock.assemble(&layout),
        Kind::Disarm => DisarmTimer::new(&layout).assemble(&layout),
        Kind::Releases => ListReleases.assemble(&layout),
        Kind::LogRead => ReadLog::new(&layout, 20).assemble(&layout),
        Kind::Socket => crate::ops::status::ReadSocket.assemble(&layout),
        Kind::Installed => ReadInstalled.assemble(&layout),
        Kind::Deployed => ReadDeployed.assemble(&layout),
        Kind::Drift => crate::ops::diff::ReadDrift {
            files: vec!["config/app.toml".into(), "static/it's.txt".into()],
        }
        .assemble(&layout),
        Kind::Probe => crate::remote::probe::script(
            "127.0.0.1",
            8080,
            "/health",
            "http://127.0.0.1:8080/health",
            Duration::from_secs(2),
        ),
        Kind::Hook => {
            let argv = ["./app".to_string(), "migrate".into()];
            let env = [("SHIPIT_VERSION".to_string(), "1.0.0".to_string())];
            hook_script(
                &service_run::prepare(&run(&argv, &env))
                    .expect("prepared")
                    .script,
            )
        }
    }
}

/// The scripts that are not steps: the dead-man timer's, and what `exec` and `logs` run.
fn other_scripts() -> Vec<(&'static str, String)> {
    let argv = ["./app".to_string(), "it's".into(), "$HOME".into()];
    let exec = service_run::prepare(&run(&argv, &[])).expect("prepared");
    let journalctl: Vec<String> = [
        "journalctl",
        "--unit",
        "app.service",
        "--output=json",
        "--grep=a b",
    ]
    .map(String::from)
    .to_vec();
    vec![
        (
            "heal",
            heal_script(&layout(), Some(&ReleaseId::from_host("0.9.0-aaaaaaaaaaaa"))),
        ),
        ("heal-first-release", heal_script(&layout(), None)),
        ("exec", exec.script.clone()),
        ("exec-stop", service_run::stop_script(&exec.unit_name)),
        (
            "logs-first-look",
            crate::logs::first_look_script(&journalctl),
        ),
        ("logs-follow", crate::logs::follow_script("", &journalctl)),
        (
            "preflight-command",
            Preflight::new(
                &layout(),
                &package(),
                &host_unit(),
                &Health {
                    check: crate::config::Check::Command {
                        argv: crate::config::Argv {
                            words: argv.to_vec(),
                            location: "shipit.toml:1:1".into(),
                        },
                    },
                    ..health()
                },
            )
            .expect("a pre-flight")
            .assemble(&layout()),
        ),
        (
            "check-tcp",
            crate::actions::check::TcpCheck {
                host: "127.0.0.1",
                port: 6379,
                send: Some("PING\r\n"),
                expect: Some("PONG"),
                timeout: Duration::from_secs(2),
            }
            .assemble(&layout()),
        ),
        (
            "check-command",
            crate::actions::check::CommandCheck::new(
                &layout(),
                &crate::hosts::deployed::Deployed {
                    systemd: 252,
                    release: "1.0.0-0123456789ab".into(),
                    version: "1.0.0".into(),
                    unit: UNIT.into(),
                },
                &argv,
                Duration::from_secs(2),
            )
            .expect("a command check")
            .assemble(&layout()),
        ),
        (
            "logs-follow-until",
            crate::logs::follow_script("1700000000", &journalctl),
        ),
    ]
}

/// Each script a host gets, named (a [`Kind`]'s name, or what the script is for), from example
/// inputs.
pub fn every_host_script() -> Vec<(String, String)> {
    let mut scripts: Vec<(String, String)> = Kind::ALL
        .iter()
        .map(|kind| (format!("{kind:?}"), script_of(*kind)))
        .collect();
    scripts.extend(other_scripts().into_iter().map(|(n, s)| (n.to_string(), s)));
    scripts
}

#[test]
fn every_kind_is_listed_once() {
    let mut kinds = Kind::ALL.to_vec();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), Kind::ALL.len());
    // The last variant is last in the list: a kind added below it is missed by neither.
    assert_eq!(Kind::ALL.last(), Some(&Kind::Hook));
    assert_eq!(Kind::Hook as usize + 1, Kind::ALL.len());
}
