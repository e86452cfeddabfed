//! Reads the samples `bench/run` collected (one `KEY<TAB>VALUE` line per repetition) and writes
//! the results table (Markdown, also printed) and the fleet scaling plot (PNG).
//!
//! Usage: shipit-bench-report SAMPLES RESULTS.md FLEET.png [--quick]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

mod drops;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// Every sample of every key, in the order they were taken.
struct Samples {
    values: BTreeMap<String, Vec<f64>>,
    notes: BTreeMap<String, String>,
}

impl Samples {
    fn parse(text: &str) -> Result<Samples, String> {
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut notes = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(3, '\t');
            let (Some(kind), Some(key), Some(value)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("line {}: expected 3 tab-separated fields", n + 1));
            };
            match kind {
                "sample" => {
                    let value = value
                        .trim()
                        .parse()
                        .map_err(|e| format!("line {}: {value:?}: {e}", n + 1))?;
                    values.entry(key.to_string()).or_default().push(value);
                }
                "note" => {
                    notes.insert(key.to_string(), value.to_string());
                }
                other => return Err(format!("line {}: unknown kind {other:?}", n + 1)),
            }
        }
        Ok(Samples { values, notes })
    }

    fn median(&self, key: &str) -> Option<f64> {
        let mut v = self.values.get(key)?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        Some(if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        })
    }

    fn count(&self, key: &str) -> usize {
        self.values.get(key).map_or(0, Vec::len)
    }

    fn max(&self, key: &str) -> Option<f64> {
        self.values.get(key)?.iter().copied().reduce(f64::max)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Verdict {
    Pass,
    Fail,
    Info,
}

struct Row {
    what: String,
    measured: String,
    anchor: String,
    ratio: String,
    target: String,
    verdict: Verdict,
}

fn secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.3} s")
    } else {
        format!("{s:.1} s")
    }
}

fn mb_per_s(bytes: Option<f64>, s: f64) -> String {
    bytes.map_or(String::new(), |b| format!(" ({:.0} MB/s)", b / 1e6 / s))
}

fn judge(ok: bool) -> Verdict {
    if ok { Verdict::Pass } else { Verdict::Fail }
}

fn rows(s: &Samples) -> Vec<Row> {
    let mut rows = Vec::new();
    let missing = |what: &str, why: &str| Row {
        what: what.to_string(),
        measured: why.to_string(),
        anchor: String::new(),
        ratio: String::new(),
        target: String::new(),
        verdict: Verdict::Info,
    };

    // 1. Upload throughput: time ratio anchor/shipit, so above 1 means shipit is faster.
    let size = s.notes.get("upload.size").cloned().unwrap_or_default();
    let bytes = s.median("upload.bytes");
    if let Some(shipit) = s.median("upload.shipit") {
        for (anchor, label, target) in [
            ("upload.scp", "scp over an open connection", Some(1.0)),
            ("upload.scp_new", "scp as run (new connection)", None),
            ("upload.rsync", "rsync over an open connection", None),
        ] {
            let what = format!("1. Upload {size}, shipit vs {label}");
            match s.median(anchor) {
                Some(a) => rows.push(Row {
                    what,
                    measured: format!("{}{}", secs(shipit), mb_per_s(bytes, shipit)),
                    anchor: format!("{}{}", secs(a), mb_per_s(bytes, a)),
                    ratio: format!("{:.2}× speed", a / shipit),
                    target: target.map_or("—".into(), |t| format!("≥ {t:.1}× speed")),
                    verdict: target.map_or(Verdict::Info, |t| judge(a / shipit >= t)),
                }),
                None => rows.push(missing(&what, "not installed: skipped")),
            }
        }
    }

    // 1b. Upload over a shaped link: time ratio shipit/scp.
    let size = s.notes.get("upload.size").cloned().unwrap_or_default();
    for rate in ["1gbit", "100mbit"] {
        let (Some(shipit), Some(scp)) = (
            s.median(&format!("shaped.{rate}.shipit")),
            s.median(&format!("shaped.{rate}.scp")),
        ) else {
            continue;
        };
        let ratio = shipit / scp;
        let link = rate.replace("gbit", " Gbit/s").replace("mbit", " Mbit/s");
        rows.push(Row {
            what: format!("1b. Upload {size} over a link shaped to {link} (tc tbf), shipit vs scp"),
            measured: format!("{}{}", secs(shipit), mb_per_s(bytes, shipit)),
            anchor: format!("{}{}", secs(scp), mb_per_s(bytes, scp)),
            ratio: format!("{ratio:.3}× time"),
            target: "≤ 1.02× time".into(),
            verdict: judge(ratio <= 1.02),
        });
    }

    // 2. Full deploy against the hand-written script.
    let size = s.notes.get("deploy.size").cloned().unwrap_or_default();
    if let Some(hand) = s.median("deploy.hand") {
        for (key, label, verdict_applies) in [
            ("deploy.fast", "settle 0s", true),
            ("deploy.default", "default settle 3s", false),
        ] {
            if let Some(shipit) = s.median(key) {
                let ratio = shipit / hand;
                rows.push(Row {
                    what: format!(
                        "2. Deploy {size} to 1 host, health-checked ({label}) vs hand script"
                    ),
                    measured: secs(shipit),
                    anchor: secs(hand),
                    ratio: format!("{ratio:.2}× time"),
                    target: if verdict_applies {
                        "≤ 0.50× time".into()
                    } else {
                        "— (waits 3 s by design)".into()
                    },
                    verdict: if verdict_applies {
                        judge(ratio <= 0.5)
                    } else {
                        Verdict::Info
                    },
                });
            }
        }
    }
    if let Some(trips) = s.median("deploy.fast_round_trips") {
        let redeploy = s
            .median("redeploy.fast_round_trips")
            .map_or(String::new(), |r| format!(", unchanged redeploy {r:.0}"));
        rows.push(Row {
            what: format!(
                "2. Round trips per deploy of {size} (waits for the host after connecting)"
            ),
            measured: format!("{trips:.0}{redeploy}"),
            anchor: "8 steps + health gate before".into(),
            ratio: String::new(),
            target: "≤ 4".into(),
            verdict: judge(trips <= 4.0),
        });
    }
    if let (Some(shipit), Some(hand)) = (
        s.median("deploy.fast_hosts_cpu"),
        s.median("deploy.hand_hosts_cpu"),
    ) {
        rows.push(Row {
            what: format!("2. Host CPU per deploy of {size} (settle 0s) vs hand script"),
            measured: secs(shipit),
            anchor: secs(hand),
            ratio: format!("{:.2}× CPU", shipit / hand),
            target: "—".into(),
            verdict: Verdict::Info,
        });
    }

    // 3. Unchanged redeploy: the overhead beyond restarting the service.
    if let Some(restart) = s.median("redeploy.restart") {
        for (key, label, verdict_applies) in [
            ("redeploy.fast", "settle 0s", true),
            ("redeploy.default", "default settle 3s", false),
        ] {
            if let Some(shipit) = s.median(key) {
                let overhead = shipit - restart;
                rows.push(Row {
                    what: format!("3. Unchanged redeploy ({label}) vs service restart"),
                    measured: secs(shipit),
                    anchor: format!("{} restart", secs(restart)),
                    ratio: format!("+{} overhead", secs(overhead)),
                    target: if verdict_applies {
                        "≤ 0.1 s + restart".into()
                    } else {
                        "— (+3 s settle)".into()
                    },
                    verdict: if verdict_applies {
                        judge(overhead <= 0.1)
                    } else {
                        Verdict::Info
                    },
                });
            }
        }
    }

    // 4. Packaging against tar czf at the same gzip level.
    for size in ["10", "100", "1"] {
        let (Some(shipit), Some(tar)) = (
            s.median(&format!("package.{size}.shipit")),
            s.median(&format!("package.{size}.tar")),
        ) else {
            continue;
        };
        let bytes = s.median(&format!("package.{size}.bytes"));
        rows.push(Row {
            what: format!("4. Package a {size} MB binary vs `tar czf` (gzip -6)"),
            measured: format!("{}{}", secs(shipit), mb_per_s(bytes, shipit)),
            anchor: format!("{}{}", secs(tar), mb_per_s(bytes, tar)),
            ratio: format!("{:.2}× speed", tar / shipit),
            target: "≥ 1.0× speed".into(),
            verdict: judge(tar / shipit >= 1.0),
        });
    }

    // 5. Fleet scaling, with shipit's and the hosts' CPU time beside the wall time.
    let fleet = fleet_points(s);
    let size = s.notes.get("fleet.size").cloned().unwrap_or_default();
    let cpu = |n: u32| {
        let shipit = s.median(&format!("fleet.{n}_cpu"));
        let hosts = s.median(&format!("fleet.{n}_hosts_cpu"));
        match (shipit, hosts) {
            (Some(c), Some(h)) => format!(" (shipit CPU {c:.2} s, hosts' CPU {h:.2} s)"),
            (Some(c), None) => format!(" (shipit CPU {c:.2} s)"),
            _ => String::new(),
        }
    };
    if let Some(&(first, one)) = fleet.first() {
        for &(hosts, t) in &fleet[1..] {
            let ratio = t / one;
            let last = Some(&(hosts, t)) == fleet.last();
            rows.push(Row {
                what: format!("5. Fleet deploy of the service ({size}) to {hosts} hosts vs 1 host"),
                measured: format!("{}{}", secs(t), cpu(hosts)),
                anchor: format!("{}{}", secs(one), cpu(first)),
                ratio: format!("{ratio:.2}× time"),
                target: if last {
                    "≤ 1.5× time".into()
                } else {
                    "—".into()
                },
                verdict: if last {
                    judge(ratio <= 1.5)
                } else {
                    Verdict::Info
                },
            });
        }
        if let Some(&(hosts, t)) = fleet.last()
            && hosts > 1
            && let (Some(cores), Some(floor)) = (cores(s), cpu_floor(s, hosts))
        {
            rows.push(Row {
                what: format!(
                    "5. Fleet deploy to {hosts} hosts vs the floor their CPU sets: all of \
                     it on these {cores} cores (or 1 host's time, if longer)"
                ),
                measured: secs(t),
                anchor: format!("{} floor", secs(floor)),
                ratio: format!("{:.2}× time", t / floor),
                target: "— (hosts share the cores)".into(),
                verdict: Verdict::Info,
            });
        }
    }

    // 5b. Host CPU per deploy of the service to one host: against another build of shipit
    // deployed alternately (SHIPIT_BASELINE), else against the 0.28 s measured before.
    if let Some(one) = s.median("fleet.1_hosts_cpu") {
        let (anchor, ratio, target, verdict) = match s.median("fleet.base_hosts_cpu") {
            Some(base) => (
                format!("{} (SHIPIT_BASELINE)", secs(base)),
                format!("{:.2}× CPU", one / base),
                "≤ 0.5× CPU".to_string(),
                judge(one / base <= 0.5),
            ),
            None => (
                "0.28–0.34 s before".to_string(),
                format!("{:.2}× CPU", one / 0.28),
                "≤ 0.14 s".to_string(),
                judge(one <= 0.14),
            ),
        };
        rows.push(Row {
            what: format!("5. Host CPU per deploy of the service ({size}) to 1 host"),
            measured: secs(one),
            anchor,
            ratio,
            target,
            verdict,
        });
    }

    // 6. Build overhead: shipit build against the plain tool plus packaging.
    for (lang, tool) in [("go", "go build"), ("rust", "cargo build")] {
        let key = |k: &str| format!("build.{lang}.{k}");
        let (Some(shipit), Some(plain), Some(package)) = (
            s.median(&key("shipit")),
            s.median(&key("plain")),
            s.median(&key("package")),
        ) else {
            continue;
        };
        let ratio = shipit / (plain + package);
        rows.push(Row {
            what: format!("6. `shipit build` ({lang}) vs `{tool}` + packaging"),
            measured: secs(shipit),
            anchor: format!("{} + {}", secs(plain), secs(package)),
            ratio: format!("{ratio:.2}× time"),
            target: "≤ 1.05× time".into(),
            verdict: judge(ratio <= 1.05),
        });
    }

    // Peak memory: the largest RSS of any repetition, in MB.
    for (key, label, limit) in [
        ("upload.shipit_rss", "upload", Some(30.0)),
        ("deploy.fast_rss", "deploy", None),
        ("package.100.shipit_rss", "packaging 100 MB", None),
        ("fleet.max_rss", "fleet deploy, most hosts", None),
        (
            "build.go.self_rss",
            "build (go; shipit itself, not go)",
            None,
        ),
    ] {
        let Some(kb) = s.max(key) else { continue };
        let mb = kb / 1024.0;
        let anchor = match key {
            "upload.shipit_rss" => s.max("upload.scp_rss"),
            "deploy.fast_rss" => s.max("deploy.hand_rss"),
            _ => None,
        };
        let what = if key == "upload.shipit_rss" {
            let size = s.notes.get("upload.size").cloned().unwrap_or_default();
            format!("Peak RSS of shipit, {label} of {size}")
        } else {
            format!("Peak RSS of shipit, {label}")
        };
        rows.push(Row {
            what,
            measured: format!("{mb:.1} MB"),
            anchor: anchor.map_or("—".into(), |a| {
                let tool = if key == "upload.shipit_rss" {
                    "scp"
                } else {
                    "script, largest process"
                };
                format!("{:.1} MB ({tool})", a / 1024.0)
            }),
            ratio: "—".into(),
            target: limit.map_or("—".into(), |l| format!("< {l:.0} MB")),
            verdict: limit.map_or(Verdict::Info, |l| judge(mb < l)),
        });
    }
    rows.extend(drops::rows(s));
    rows
}

/// (hosts, median seconds), sorted by hosts.
fn cores(s: &Samples) -> Option<f64> {
    s.notes.get("fleet.cores")?.trim().parse().ok()
}

/// How fast a fleet deploy could be on this machine at best: the sandbox hosts share its cores,
/// so all their CPU work spread over every core, and never less than one host's deploy.
fn cpu_floor(s: &Samples, hosts: u32) -> Option<f64> {
    let one = s.median("fleet.1")?;
    let work = s.median(&format!("fleet.{hosts}_hosts_cpu"))?;
    Some(one.max(work / cores(s)?))
}

fn fleet_points(s: &Samples) -> Vec<(u32, f64)> {
    let mut points: Vec<(u32, f64)> = s
        .values
        .keys()
        .filter_map(|k| k.strip_prefix("fleet.")?.parse::<u32>().ok())
        .filter_map(|n| Some((n, s.median(&format!("fleet.{n}"))?)))
        .collect();
    points.sort_by_key(|p| p.0);
    points
}

fn markdown(s: &Samples, rows: &[Row], quick: bool) -> String {
    let mut out = String::new();
    if quick {
        out.push_str(
            "**Quick mode** (tiny sizes, one repetition, two hosts): proves the benchmark runs; \
             the numbers are not measurements and the verdicts mean nothing.\n\n",
        );
    }
    out.push_str("| Benchmark | shipit | anchor | ratio | target | result |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for r in rows {
        let verdict = match r.verdict {
            Verdict::Pass => "**pass**",
            Verdict::Fail => "**FAIL**",
            Verdict::Info => "info",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {verdict} |",
            r.what, r.measured, r.anchor, r.ratio, r.target
        );
    }
    let reps: Vec<String> = [
        "upload.shipit",
        "deploy.fast",
        "fleet.1",
        "package.10.shipit",
    ]
    .iter()
    .filter(|k| s.count(k) > 0)
    .map(|k| format!("{k} {}", s.count(k)))
    .collect();
    let _ = writeln!(
        out,
        "\nMedians of alternating repetitions (repetitions: {}).",
        reps.join(", ")
    );
    for (key, note) in &s.notes {
        if key.starts_with("about.") {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

fn plot(s: &Samples, path: &str, quick: bool) -> Result<(), Box<dyn std::error::Error>> {
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        epaint_default_fonts::HACK_REGULAR,
    )
    .map_err(|_| "the embedded font does not load")?;
    let points = fleet_points(s);
    let one = points.first().map(|p| p.1).ok_or("no fleet samples")?;
    let ratios: Vec<(f64, f64)> = points.iter().map(|&(n, t)| (n as f64, t / one)).collect();
    let max_hosts = points.last().map_or(8, |p| p.0).max(2) as f64;
    let top = ratios.iter().map(|r| r.1).fold(1.6_f64, f64::max) * 1.15;

    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = if quick {
        "shipit fleet deploy: wall time vs 1 host (quick mode, not a measurement)"
    } else {
        "shipit fleet deploy: wall time vs 1 host (median)"
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..max_hosts + 1.5, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("sandbox hosts deployed to in parallel")
        .y_desc("time / time for 1 host")
        .x_labels((max_hosts as usize + 2) * 2)
        .light_line_style(WHITE)
        .x_label_formatter(&|x| {
            if x.fract() == 0.0 && points.iter().any(|p| p.0 as f64 == *x) {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.1}×"))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    let target = RGBColor(200, 60, 60);
    chart
        .draw_series(LineSeries::new(
            [(0.5, 1.5), (max_hosts + 1.5, 1.5)],
            target.stroke_width(2),
        ))?
        .label("target: 8 hosts ≤ 1.5×")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], target.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            [(0.5, 1.0), (max_hosts + 1.5, 1.0)],
            BLACK.mix(0.3).stroke_width(1),
        ))?
        .label("ideal: no slower than 1 host")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.3)));
    let floors: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|&(n, _)| Some((n as f64, cpu_floor(s, n)? / one)))
        .collect();
    if !floors.is_empty() {
        let grey = RGBColor(120, 120, 120);
        chart
            .draw_series(LineSeries::new(floors, grey.stroke_width(2)))?
            .label("floor: the hosts' CPU time over this machine's cores")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], grey.stroke_width(2)));
    }
    let blue = RGBColor(40, 90, 180);
    chart
        .draw_series(LineSeries::new(ratios.clone(), blue.stroke_width(3)))?
        .label("wall time of the deploy (settle 0s, 2 MB service)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], blue.stroke_width(3)));
    chart.draw_series(ratios.iter().zip(&points).map(|(&(x, r), &(_, t))| {
        EmptyElement::at((x, r))
            + Circle::new((0, 0), 5, blue.filled())
            + Text::new(
                format!("{r:.2}× ({t:.2} s)"),
                (-30, 12),
                ("sans-serif", 15).into_font(),
            )
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "load") {
        return drops::load(&args[1..]);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [samples, md, png] = paths[..] else {
        eprintln!("usage: shipit-bench-report SAMPLES RESULTS.md FLEET.png [--quick]");
        return ExitCode::from(2);
    };
    let samples = match std::fs::read_to_string(samples)
        .map_err(|e| format!("{samples}: {e}"))
        .and_then(|t| Samples::parse(&t))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let table = markdown(&samples, &rows(&samples), quick);
    print!("{table}");
    if let Err(e) = std::fs::write(md, &table) {
        eprintln!("error: {md}: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = plot(&samples, png, quick) {
        eprintln!("error: plotting {png}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_notes_parse() {
        let s = Samples::parse(
            "# comment\nsample\ta\t3\nsample\ta\t1\nsample\ta\t2\nsample\tb\t1\nsample\tb\t2\nnote\tx\thello world\n",
        )
        .unwrap();
        assert_eq!(s.median("a"), Some(2.0));
        assert_eq!(s.median("b"), Some(1.5));
        assert_eq!(s.max("a"), Some(3.0));
        assert_eq!(s.notes["x"], "hello world");
        assert!(Samples::parse("sample\ta\tnope\n").is_err());
    }

    #[test]
    fn verdicts_follow_the_targets() {
        let s = Samples::parse(
            "sample\tupload.shipit\t0.5\nsample\tupload.scp\t0.6\n\
             sample\tfleet.1\t1.0\nsample\tfleet.8\t1.6\n",
        )
        .unwrap();
        let rows = rows(&s);
        let upload = rows.iter().find(|r| r.what.contains("scp")).unwrap();
        assert!(upload.verdict == Verdict::Pass, "{}", upload.ratio);
        let fleet = rows.iter().find(|r| r.what.contains("8 hosts")).unwrap();
        assert!(fleet.verdict == Verdict::Fail, "{}", fleet.ratio);
    }

    #[test]
    fn the_fleet_floor_is_the_hosts_cpu_over_the_cores() {
        let s = Samples::parse(
            "note\tfleet.cores\t2\nsample\tfleet.1\t0.5\nsample\tfleet.8\t1.6\n\
             sample\tfleet.8_hosts_cpu\t2.8\nsample\tfleet.2_hosts_cpu\t0.6\n",
        )
        .unwrap();
        assert_eq!(cpu_floor(&s, 8), Some(1.4));
        // Two hosts' 0.6 s over 2 cores is less than one host's deploy: that is the floor.
        assert_eq!(cpu_floor(&s, 2), Some(0.5));
        let row = rows(&s)
            .into_iter()
            .find(|r| r.what.contains("floor"))
            .unwrap();
        assert_eq!(row.ratio, "1.14× time");
        assert!(row.verdict == Verdict::Info);
    }
}
