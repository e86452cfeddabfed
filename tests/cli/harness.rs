//! The test harness (libtest-mimic): each module lists its tests with what they need, and a test
//! whose need this machine lacks is reported as ignored with the reason, not as passed.
//!
//! A test is a private `fn` named only in its module's `tests()` list, so one left out of the list
//! is dead code, which `clippy -D warnings` refuses. `#[test]` means nothing in a binary without
//! libtest, so [`no_test_attributes_left`] refuses it.

use std::path::Path;
use std::process::{Command, Stdio};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// What a test needs from the machine beyond what `scripts/setup --tests` installs.
#[derive(Clone, Copy)]
pub enum Needs {
    Nothing,
    /// Sandbox hosts: root and systemd-nspawn.
    Hosts,
    Shellcheck,
    /// No running docker or podman, whose absence the test observes.
    NoContainerEngine,
    /// Sandbox hosts, and a real Prometheus with promtool to read what shipit generates.
    Prometheus,
}

/// Set in CI, where every test must run: a test that would be ignored for lack of root (or of
/// systemd-nspawn) fails instead.
const NEED_ROOT: &str = "SHIPIT_TESTS_NEED_ROOT";
/// Likewise for shellcheck.
const REQUIRE_SHELLCHECK: &str = "SHIPIT_REQUIRE_SHELLCHECK";

impl Needs {
    /// Why this machine cannot run a test with this need, if it cannot.
    fn missing(self) -> Option<&'static str> {
        match self {
            Needs::Nothing => None,
            Needs::Hosts => hosts_missing(),
            Needs::Shellcheck => (!runs("shellcheck", &["--version"]))
                .then_some("shellcheck is not installed (scripts/setup --tests installs it)"),
            Needs::NoContainerEngine => (runs("docker", &["info"]) || runs("podman", &["info"]))
                .then_some("a container engine runs here, so its absence cannot be observed"),
            Needs::Prometheus => hosts_missing().or_else(|| {
                (!runs("prometheus", &["--version"]) || !runs("promtool", &["--version"]))
                    .then_some("prometheus is not installed (scripts/setup --tests installs it)")
            }),
        }
    }

    /// The variable that says this need must be met, where one does.
    fn required_by(self) -> Option<&'static str> {
        let variable = match self {
            Needs::Hosts | Needs::Prometheus => NEED_ROOT,
            Needs::Shellcheck => REQUIRE_SHELLCHECK,
            Needs::Nothing | Needs::NoContainerEngine => return None,
        };
        std::env::var_os(variable).is_some().then_some(variable)
    }
}

fn hosts_missing() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("it boots sandbox hosts, which needs root");
    }
    let nspawn = ["/usr/bin/systemd-nspawn", "/bin/systemd-nspawn"]
        .iter()
        .any(|p| Path::new(p).exists());
    (!nspawn).then_some("systemd-nspawn is not installed (scripts/setup --tests installs it)")
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One registered test: see [`crate::test`].
pub struct Test {
    pub name: String,
    pub needs: Needs,
    /// About how long it takes, in seconds: the longest start first, so none starts last.
    pub seconds: u32,
    pub run: fn(),
}

/// Registers `$test`, a private fn of the calling module, under `module::name` as libtest named
/// it: `test!(Hosts, 60, fn_name)` (needs, about how many seconds it takes, the fn).
#[macro_export]
macro_rules! test {
    ($needs:ident, $seconds:expr, $test:ident) => {
        $crate::harness::Test {
            name: $crate::harness::test_name(module_path!(), stringify!($test)),
            needs: $crate::harness::Needs::$needs,
            seconds: $seconds,
            run: $test,
        }
    };
}

/// `cli::deploy` + `go_service_lifecycle` → `deploy::go_service_lifecycle`.
pub fn test_name(module: &str, test: &str) -> String {
    let module = module.split_once("::").map_or("", |(_, rest)| rest);
    if module.is_empty() {
        test.to_string()
    } else {
        format!("{module}::{test}")
    }
}

/// Sandbox tests wait far more than they compute (boots, health gates, settle periods), so more
/// run at once than there are cores; builds take turns (see `support::builds`).
const DEFAULT_THREADS: usize = 8;

pub fn run(mut tests: Vec<Test>) -> std::process::ExitCode {
    let (mut args, filters) = arguments();
    if filters.len() > 1 {
        tests.retain(|test| {
            filters.iter().any(|filter| match args.exact {
                true => test.name == *filter,
                false => test.name.contains(filter.as_str()),
            })
        });
    }
    if args.test_threads.is_none() {
        args.test_threads = Some(
            std::env::var("RUST_TEST_THREADS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(DEFAULT_THREADS),
        );
    }
    tests.sort_by_key(|test| std::cmp::Reverse(test.seconds));
    let asked_for_ignored = args.ignored || args.include_ignored;
    let trials = tests
        .into_iter()
        .map(|test| trial(test, asked_for_ignored))
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    crate::support::builds::clean_up();
    conclusion.exit_code()
}

/// libtest's arguments, and its filters: libtest-mimic takes one, libtest any number (`cargo test
/// -- deploy:: fleet::`), so with more than one they are applied here.
fn arguments() -> (Arguments, Vec<String>) {
    let taking_a_value = [
        "--test-threads",
        "--logfile",
        "--skip",
        "--color",
        "--format",
        "-Z",
    ];
    let mut options = Vec::new();
    let mut filters = Vec::new();
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        if taking_a_value.contains(&arg.as_str()) {
            options.push(arg);
            options.extend(argv.next());
        } else if arg.starts_with('-') {
            options.push(arg);
        } else {
            filters.push(arg);
        }
    }
    if let [filter] = filters.as_slice() {
        options.push(filter.clone());
    }
    let program = std::env::args().next().unwrap_or_default();
    (
        Arguments::from_iter(std::iter::once(program).chain(options)),
        filters,
    )
}

/// A test whose need is missing: failed where a variable requires it, ignored with the reason
/// otherwise, and run anyway under `--ignored` or `--include-ignored`.
fn trial(test: Test, asked_for_ignored: bool) -> Trial {
    let Test {
        name, needs, run, ..
    } = test;
    let Some(why) = needs.missing() else {
        return Trial::test(name.clone(), move || {
            timed(&name, run);
            Ok(())
        });
    };
    if let Some(variable) = needs.required_by() {
        let message = format!("cannot run here: {why}, and {variable} says it must");
        return Trial::test(name, move || Err(Failed::from(message)));
    }
    if asked_for_ignored {
        return Trial::test(name, move || {
            run();
            Ok(())
        })
        .with_ignored_flag(true);
    }
    Trial::ignorable_test(name, move || Ok(Completion::ignored_with(why)))
}

/// Where `SHIPIT_TEST_TIMES` names a file, each test that ran appends `SECONDS NAME` to it: the
/// figures the `seconds` of [`crate::test`] come from.
fn timed(name: &str, run: fn()) {
    let start = std::time::Instant::now();
    run();
    if let Some(path) = std::env::var_os("SHIPIT_TEST_TIMES") {
        use std::io::Write;
        let line = format!("{:.1} {name}\n", start.elapsed().as_secs_f64());
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        file.and_then(|mut f| f.write_all(line.as_bytes()))
            .expect("append to SHIPIT_TEST_TIMES");
    }
}

/// Guards registration: a `#[test]` fn in this binary would be compiled out without a word.
fn no_test_attributes_left() {
    let root = crate::support::repo_root().join("tests/cli");
    let mut found = Vec::new();
    visit_sources(&root, &mut |path, text| {
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[test]") {
                found.push(format!("{}:{}", path.display(), number + 1));
            }
        }
    });
    assert!(
        found.is_empty(),
        "#[test] does nothing here; list the fn in its module's tests(): {found:?}"
    );
}

fn visit_sources(dir: &Path, visit: &mut dyn FnMut(&Path, &str)) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit_sources(&path, visit);
        } else if path.extension().is_some_and(|e| e == "rs") {
            visit(&path, &std::fs::read_to_string(&path).unwrap());
        }
    }
}

pub fn tests() -> Vec<Test> {
    vec![crate::test!(Nothing, 0, no_test_attributes_left)]
}
