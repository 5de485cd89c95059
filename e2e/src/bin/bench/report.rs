//! The benchmark's results: what is recorded, the targets, and the table on stdout.

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::Context as _;
use e2e::{apiserver::Stats, harness::repo_root};
use serde::Serialize;

use crate::{
    measurement::median,
    operator::{OpMetrics, Usage},
};

#[derive(Debug, Serialize)]
pub struct Machine {
    pub date: String,
    pub nproc: usize,
    pub cpu_model: String,
    pub memory_mib: u64,
    pub kernel: String,
    /// `/proc/loadavg` when the benchmark started: other work on the machine skews the figures.
    pub load_average: String,
    pub keelson_bin: String,
    pub keelson_bin_mib: f64,
    /// The size without debug information (`strip`), when `strip` is installed.
    pub keelson_bin_stripped_mib: Option<f64>,
    pub git_commit: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Settings {
    pub mode: &'static str,
    pub namespace_layout: &'static str,
    /// Where the converge and baseline clocks stop.
    pub end_point: &'static str,
    pub children_per_app: usize,
    pub concurrency: usize,
    /// The stand-in's workload ready delay (none on a real cluster).
    pub workload_ready_delay_ms: Option<u64>,
    pub drift_edits: usize,
    pub discovery_seconds: u64,
    pub operator_args: Vec<String>,
    pub operator_env: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct ApiCounts {
    pub requests: u64,
    pub writes: u64,
    pub controller_writes: u64,
    pub watch_events: u64,
    pub by_verb: BTreeMap<String, u64>,
    pub by_resource: BTreeMap<String, u64>,
    /// Seconds the in-process server held its state lock: the server's busy time, in total
    /// and per verb and resource.
    pub lock_seconds: f64,
    pub lock_seconds_by: BTreeMap<String, f64>,
}

impl ApiCounts {
    /// The biggest holders of the server's lock, for `--timeline`.
    pub fn lock_summary(&self) -> String {
        let mut by: Vec<(&String, &f64)> = self.lock_seconds_by.iter().collect();
        by.sort_by(|a, b| b.1.total_cmp(a.1));
        let top: Vec<String> = by
            .iter()
            .take(6)
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        format!("lock held {:.2} s: {}", self.lock_seconds, top.join(", "))
    }
}

impl From<Stats> for ApiCounts {
    fn from(s: Stats) -> Self {
        ApiCounts {
            requests: s.requests,
            writes: s.writes,
            controller_writes: s.controller_writes,
            watch_events: s.watch_events,
            by_verb: s.by_verb,
            by_resource: s.by_resource,
            lock_seconds: s.lock_seconds.values().sum(),
            lock_seconds_by: s.lock_seconds,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Converge {
    /// Seconds from the first apply to the end point (`Settings::end_point`).
    pub seconds: f64,
    /// Seconds from the first apply until every Application was Ready for its generation
    /// (in-process the end point itself; on a real cluster when it came within the wait).
    pub ready_seconds: Option<f64>,
    pub applies_sent_seconds: f64,
    pub operator_cpu_seconds: f64,
    pub bench_process_cpu_seconds: f64,
    pub resync_ticks_during: u64,
    pub operator: OpMetrics,
    pub api: Option<ApiCounts>,
    /// Time the benchmark spent checking for readiness (in-process: inside the stand-in).
    pub poll_seconds: f64,
    /// CPU seconds used by every other process of the machine meanwhile (noise).
    pub other_processes_cpu_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Baseline {
    pub namespace: String,
    /// Seconds from the first apply to the end point (`Settings::end_point`).
    pub seconds: f64,
    /// Seconds from the first apply until every workload was available (in-process the end
    /// point itself; on a real cluster when it came within the wait).
    pub ready_seconds: Option<f64>,
    pub applies_sent_seconds: f64,
    pub bench_process_cpu_seconds: f64,
    /// The in-process server's request counts (a real cluster's are not seen).
    pub api: Option<ApiCounts>,
    /// Time the benchmark spent checking for readiness.
    pub poll_seconds: f64,
    /// CPU seconds used by every other process of the machine meanwhile (noise).
    pub other_processes_cpu_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Rounds {
    pub converge_seconds: Vec<f64>,
    pub baseline_seconds: Vec<f64>,
    pub converge_median: f64,
    pub baseline_median: f64,
    /// Each round's converge over the same round's baseline.
    pub ratios: Vec<f64>,
}

impl Rounds {
    pub fn new(converge: Vec<f64>, base: Vec<f64>) -> Rounds {
        Rounds {
            converge_median: median(&converge),
            baseline_median: median(&base),
            ratios: converge.iter().zip(&base).map(|(c, b)| c / b).collect(),
            converge_seconds: converge,
            baseline_seconds: base,
        }
    }

    /// Median converge time over median baseline time.
    pub fn ratio(&self) -> f64 {
        self.converge_median / self.baseline_median
    }
}

#[derive(Debug, Serialize)]
pub struct Resync {
    pub resync_seconds: u64,
    pub window_seconds: f64,
    pub reconciles: f64,
    pub requests: Option<u64>,
    pub writes: Option<u64>,
    pub controller_writes: Option<u64>,
    pub operator_cpu_seconds: f64,
    pub api: Option<ApiCounts>,
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Drift {
    pub edits: usize,
    pub poll_interval_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub operator_cpu_seconds: f64,
    pub drift_repairs_metric: f64,
}

/// The pod-reasons phase: Applications whose pods cannot pull their image.
#[derive(Debug, Serialize)]
pub struct Stuck {
    /// How many Applications had one service's image moved to an unresolvable registry.
    pub apps: usize,
    /// Seconds from turning the stand-in's Pods on until every Application was Ready again and
    /// everything had been quiet for 2 s.
    pub pods_on_settled_seconds: f64,
    /// Seconds from each edit's apply until that Application's Ready condition named the
    /// pods' reason: the median and the slowest.
    pub named_p50_seconds: f64,
    pub named_max_seconds: f64,
    /// While they stayed stuck.
    pub hold: Hold,
    /// Seconds from putting the images back until every Application was Ready and everything
    /// quiet for 2 s.
    pub restored_seconds: f64,
    /// The operator's peak RSS (VmHWM) before the phase and at its end.
    pub peak_rss_before_mib: f64,
    pub peak_rss_after_mib: f64,
}

/// What the operator sent while Applications stayed stuck.
#[derive(Debug, Serialize)]
pub struct Hold {
    pub seconds: f64,
    pub requests_per_minute: f64,
    pub pod_lists_per_minute: f64,
    pub writes_per_minute: f64,
    /// The API server's counts over the hold.
    pub api: ApiCounts,
}

#[derive(Debug, Serialize)]
pub struct Restart {
    pub ready_seconds: f64,
    pub reconciled_seconds: f64,
    pub reconciles: f64,
    pub requests: Option<u64>,
    pub writes: Option<u64>,
    pub peak_rss_mib: f64,
    pub cpu_seconds: f64,
    pub api: Option<ApiCounts>,
}

#[derive(Debug, Serialize)]
pub struct Run {
    pub apps: usize,
    pub namespace: String,
    pub operator_log: String,
    pub converge: Option<Converge>,
    pub baseline: Option<Baseline>,
    /// Median converge time over median baseline time, over every round.
    pub operator_over_baseline: Option<f64>,
    /// Real cluster: the first round's time to Ready over the baseline's time to available
    /// workloads, when both came.
    pub ready_over_baseline: Option<f64>,
    /// Every round's converge and baseline seconds (the first from the full run above).
    pub rounds: Option<Rounds>,
    pub resync: Option<Resync>,
    pub drift: Option<Drift>,
    /// In-process only.
    pub stuck: Option<Stuck>,
    pub operator: Usage,
    pub restart: Option<Restart>,
    pub bench_process_cpu_seconds: f64,
    pub skipped: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub settings: Settings,
    pub runs: Vec<Run>,
    pub bench_process_peak_rss_mib: f64,
    pub targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub apps: usize,
    pub what: String,
    pub goal: String,
    pub value: Option<f64>,
    pub met: Option<bool>,
}

pub fn machine(bin: &Path) -> anyhow::Result<Machine> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let memory_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb / 1024);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let size = std::fs::metadata(bin)
        .with_context(|| format!("stat {}", bin.display()))?
        .len();
    let git_commit = Command::new("git")
        .args([
            "-C",
            &repo_root().display().to_string(),
            "describe",
            "--always",
            "--dirty",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    Ok(Machine {
        date: chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        memory_mib,
        kernel,
        load_average,
        keelson_bin: bin.display().to_string(),
        keelson_bin_mib: size as f64 / (1024.0 * 1024.0),
        keelson_bin_stripped_mib: stripped_size(bin).map(|s| s as f64 / (1024.0 * 1024.0)),
        git_commit,
    })
}

/// The binary's size once stripped of debug information (a release build keeps line tables).
pub fn stripped_size(bin: &Path) -> Option<u64> {
    let out = std::env::temp_dir().join(format!("keelson-bench-stripped-{}", std::process::id()));
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(bin)
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    let size = std::fs::metadata(&out).ok().map(|m| m.len());
    let _ = std::fs::remove_file(&out);
    size.filter(|_| ok)
}

pub fn targets(runs: &[Run]) -> Vec<Target> {
    let mut out = Vec::new();
    for r in runs {
        let mut t = |what: &str, goal: &str, value: Option<f64>, ok: fn(f64) -> bool| {
            out.push(Target {
                apps: r.apps,
                what: what.into(),
                goal: goal.into(),
                value,
                met: value.map(ok),
            })
        };
        // Ten times the scale, tighter: the operator's fixed costs are spread thinner.
        let large = r.apps >= 10_000;
        if large {
            t(
                "operator / baseline converge time",
                "<= 1.25",
                r.operator_over_baseline,
                |v| v <= 1.25,
            );
        } else {
            t(
                "operator / baseline converge time",
                "<= 1.5",
                r.operator_over_baseline,
                |v| v <= 1.5,
            );
        }
        t(
            "API writes during a no-op resync",
            "0",
            r.resync.as_ref().and_then(|s| s.writes).map(|w| w as f64),
            |v| v == 0.0,
        );
        t(
            "drift repair p99 (ms)",
            "< 1000",
            r.drift.as_ref().map(|d| d.p99_ms),
            |v| v < 1000.0,
        );
        t(
            "API writes of a restarted operator",
            "0",
            r.restart.as_ref().and_then(|x| x.writes).map(|w| w as f64),
            |v| v == 0.0,
        );
        if large {
            t(
                "operator peak RSS (MiB)",
                "< 256",
                Some(r.operator.peak_rss_mib),
                |v| v < 256.0,
            );
        } else if r.apps >= 1000 {
            t(
                "operator peak RSS (MiB)",
                "< 100",
                Some(r.operator.peak_rss_mib),
                |v| v < 100.0,
            );
        }
    }
    out
}

pub fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        Some(_) => "n/a".into(),
        None => "-".into(),
    }
}

pub fn print_report(report: &Report) {
    let m = &report.machine;
    println!();
    println!("Keelson scale benchmark, {}", m.date);
    println!(
        "machine: {} x {} ({} MiB RAM, Linux {}, load average {} at start); commit {}",
        m.nproc,
        m.cpu_model,
        m.memory_mib,
        m.kernel,
        m.load_average,
        m.git_commit.as_deref().unwrap_or("unknown")
    );
    println!(
        "keelson binary: {} ({:.1} MiB; {} stripped)",
        m.keelson_bin,
        m.keelson_bin_mib,
        m.keelson_bin_stripped_mib
            .map_or("?".to_string(), |s| format!("{s:.1} MiB"))
    );
    let s = &report.settings;
    println!(
        "mode: {}; {}; end point: {}; {} children per Application; concurrency {}; {}; discovery every {} s",
        s.mode,
        s.namespace_layout,
        s.end_point,
        s.children_per_app,
        s.concurrency,
        s.workload_ready_delay_ms
            .map_or("workloads start for real".to_string(), |ms| format!(
                "stand-in workloads ready {ms} ms after a change"
            )),
        s.discovery_seconds
    );
    println!(
        "operator: {}keelson {}",
        s.operator_env
            .iter()
            .map(|e| format!("{e} "))
            .collect::<String>(),
        s.operator_args.join(" ")
    );
    println!();

    let rows = rows();
    let label_w = rows.iter().map(|r| r.0.len()).max().unwrap_or(10) + 2;
    // Every column as wide as its widest cell, and at least 12.
    let col_w = rows
        .iter()
        .flat_map(|(_, f, _)| report.runs.iter().map(|r| f(r).len() + 2))
        .max()
        .unwrap_or(0)
        .max(12);
    print!("{:<label_w$}", "");
    for r in &report.runs {
        print!("{:>col_w$}", format!("N={}", r.apps));
    }
    println!("   target");
    for (label, f, target) in &rows {
        print!("{label:<label_w$}");
        for r in &report.runs {
            print!("{:>col_w$}", f(r));
        }
        println!("   {target}");
    }
    println!();
    for r in &report.runs {
        for s in &r.skipped {
            println!("N={}: skipped: {s}", r.apps);
        }
        if let Some(note) = r.resync.as_ref().and_then(|x| x.note.as_ref()) {
            println!("N={}: resync: {note}", r.apps);
        }
    }
    let met = report
        .targets
        .iter()
        .filter(|t| t.met == Some(true))
        .count();
    let known = report.targets.iter().filter(|t| t.met.is_some()).count();
    println!("targets met: {met} of {known}");
    for t in report.targets.iter().filter(|t| t.met == Some(false)) {
        println!(
            "  MISSED at N={}: {} = {} (target {})",
            t.apps,
            t.what,
            fmt_opt(t.value, 2),
            t.goal
        );
    }
    println!(
        "bench process peak RSS: {:.1} MiB",
        report.bench_process_peak_rss_mib
    );
}

/// A row of the table: its label, its cell for a run, its target.
type Row = (&'static str, Box<dyn Fn(&Run) -> String>, &'static str);

/// The table's rows.
fn rows() -> Vec<Row> {
    let mut rows = converge_rows();
    rows.extend(stuck_rows());
    rows.extend(usage_rows());
    rows
}

/// The pod-reasons phase's rows.
fn stuck_rows() -> Vec<Row> {
    let pair = |f: fn(&Stuck) -> (f64, f64), digits: usize| {
        move |r: &Run| {
            r.stuck.as_ref().map_or("-".into(), |s| {
                let (a, b) = f(s);
                format!("{a:.digits$} / {b:.digits$}")
            })
        }
    };
    vec![
        (
            "pod reasons: stuck Applications",
            Box::new(|r: &Run| fmt_opt(r.stuck.as_ref().map(|s| s.apps as f64), 0)),
            "",
        ),
        (
            "  Pods on, all Ready again (s)",
            Box::new(|r: &Run| fmt_opt(r.stuck.as_ref().map(|s| s.pods_on_settled_seconds), 1)),
            "",
        ),
        (
            "  reason named after p50 / max (s)",
            Box::new(pair(|s| (s.named_p50_seconds, s.named_max_seconds), 1)),
            "",
        ),
        (
            "  requests / pod lists per min, stuck",
            Box::new(pair(
                |s| (s.hold.requests_per_minute, s.hold.pod_lists_per_minute),
                0,
            )),
            "",
        ),
        (
            "  peak RSS before / after (MiB)",
            Box::new(pair(|s| (s.peak_rss_before_mib, s.peak_rss_after_mib), 1)),
            "",
        ),
        (
            "  images back, all Ready (s)",
            Box::new(|r: &Run| fmt_opt(r.stuck.as_ref().map(|s| s.restored_seconds), 1)),
            "",
        ),
    ]
}

/// The rows from convergence to drift repair.
fn converge_rows() -> Vec<Row> {
    vec![
        (
            "converge (s)",
            Box::new(|r: &Run| fmt_opt(r.converge.as_ref().map(|c| c.seconds), 2)),
            "",
        ),
        (
            "  all Ready (s)",
            Box::new(|r: &Run| fmt_opt(r.converge.as_ref().and_then(|c| c.ready_seconds), 2)),
            "",
        ),
        (
            "  all applies sent (s)",
            Box::new(|r: &Run| fmt_opt(r.converge.as_ref().map(|c| c.applies_sent_seconds), 2)),
            "",
        ),
        (
            "  reconciles",
            Box::new(|r: &Run| fmt_opt(r.converge.as_ref().map(|c| c.operator.reconciles), 0)),
            "",
        ),
        (
            "  status writes: new / inventory / conditions / progress",
            Box::new(|r: &Run| {
                r.converge.as_ref().map_or("-".into(), |c| {
                    c.operator
                        .status_writes_by_cause
                        .map(|v| format!("{v:.0}"))
                        .join(" / ")
                })
            }),
            "",
        ),
        (
            "  mean reconcile (ms)",
            Box::new(|r: &Run| {
                fmt_opt(
                    r.converge.as_ref().map(|c| {
                        1000.0 * c.operator.reconcile_seconds_sum
                            / c.operator.reconcile_seconds_count.max(1.0)
                    }),
                    1,
                )
            }),
            "",
        ),
        (
            "  API requests",
            Box::new(|r: &Run| {
                fmt_opt(
                    r.converge
                        .as_ref()
                        .and_then(|c| c.api.as_ref())
                        .map(|a| a.requests as f64),
                    0,
                )
            }),
            "",
        ),
        (
            "  API server busy (s)",
            Box::new(|r: &Run| {
                fmt_opt(
                    r.converge
                        .as_ref()
                        .and_then(|c| c.api.as_ref())
                        .map(|a| a.lock_seconds),
                    2,
                )
            }),
            "",
        ),
        (
            "  API writes (client)",
            Box::new(|r: &Run| {
                fmt_opt(
                    r.converge
                        .as_ref()
                        .and_then(|c| c.api.as_ref())
                        .map(|a| a.writes as f64),
                    0,
                )
            }),
            "",
        ),
        (
            "  resync ticks during",
            Box::new(|r: &Run| {
                fmt_opt(r.converge.as_ref().map(|c| c.resync_ticks_during as f64), 0)
            }),
            "",
        ),
        (
            "  operator CPU (s)",
            Box::new(|r: &Run| fmt_opt(r.converge.as_ref().map(|c| c.operator_cpu_seconds), 1)),
            "",
        ),
        (
            "  bench process CPU (s)",
            Box::new(|r: &Run| {
                fmt_opt(r.converge.as_ref().map(|c| c.bench_process_cpu_seconds), 1)
            }),
            "",
        ),
        (
            "  readiness polling (s)",
            Box::new(|r: &Run| fmt_opt(r.converge.as_ref().map(|c| c.poll_seconds), 2)),
            "",
        ),
        (
            "  other processes' CPU (s)",
            Box::new(|r: &Run| {
                fmt_opt(
                    r.converge.as_ref().map(|c| c.other_processes_cpu_seconds),
                    1,
                )
            }),
            "",
        ),
        (
            "baseline (s)",
            Box::new(|r: &Run| fmt_opt(r.baseline.as_ref().map(|b| b.seconds), 2)),
            "",
        ),
        (
            "  workloads available (s)",
            Box::new(|r: &Run| fmt_opt(r.baseline.as_ref().and_then(|b| b.ready_seconds), 2)),
            "",
        ),
        (
            "  API requests",
            Box::new(|r: &Run| {
                fmt_opt(
                    r.baseline
                        .as_ref()
                        .and_then(|b| b.api.as_ref())
                        .map(|a| a.requests as f64),
                    0,
                )
            }),
            "",
        ),
        (
            "  API server busy (s)",
            Box::new(|r: &Run| {
                fmt_opt(
                    r.baseline
                        .as_ref()
                        .and_then(|b| b.api.as_ref())
                        .map(|a| a.lock_seconds),
                    2,
                )
            }),
            "",
        ),
        (
            "  bench process CPU (s)",
            Box::new(|r: &Run| {
                fmt_opt(r.baseline.as_ref().map(|b| b.bench_process_cpu_seconds), 1)
            }),
            "",
        ),
        (
            "  readiness polling (s)",
            Box::new(|r: &Run| fmt_opt(r.baseline.as_ref().map(|b| b.poll_seconds), 2)),
            "",
        ),
        (
            "  other processes' CPU (s)",
            Box::new(|r: &Run| {
                fmt_opt(
                    r.baseline.as_ref().map(|b| b.other_processes_cpu_seconds),
                    1,
                )
            }),
            "",
        ),
        (
            "converge, median of rounds (s)",
            Box::new(|r: &Run| fmt_opt(r.rounds.as_ref().map(|x| x.converge_median), 2)),
            "",
        ),
        (
            "baseline, median of rounds (s)",
            Box::new(|r: &Run| fmt_opt(r.rounds.as_ref().map(|x| x.baseline_median), 2)),
            "",
        ),
        (
            "operator / baseline (medians)",
            Box::new(|r: &Run| fmt_opt(r.operator_over_baseline, 2)),
            "<= 1.5 (1.25 @10000)",
        ),
        (
            "  per round",
            Box::new(|r: &Run| {
                r.rounds.as_ref().map_or("-".into(), |x| {
                    x.ratios
                        .iter()
                        .map(|v| format!("{v:.2}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
            }),
            "",
        ),
        (
            "operator / baseline, Ready",
            Box::new(|r: &Run| fmt_opt(r.ready_over_baseline, 2)),
            "",
        ),
        (
            "resync: reconciles",
            Box::new(|r: &Run| fmt_opt(r.resync.as_ref().map(|x| x.reconciles), 0)),
            "N",
        ),
        (
            "resync: API requests",
            Box::new(|r: &Run| {
                fmt_opt(
                    r.resync.as_ref().and_then(|x| x.requests).map(|v| v as f64),
                    0,
                )
            }),
            "",
        ),
        (
            "resync: API writes",
            Box::new(|r: &Run| {
                fmt_opt(
                    r.resync.as_ref().and_then(|x| x.writes).map(|v| v as f64),
                    0,
                )
            }),
            "0",
        ),
        (
            "resync: operator CPU (s)",
            Box::new(|r: &Run| fmt_opt(r.resync.as_ref().map(|x| x.operator_cpu_seconds), 2)),
            "",
        ),
        (
            "drift repair p50 (ms)",
            Box::new(|r: &Run| fmt_opt(r.drift.as_ref().map(|d| d.p50_ms), 1)),
            "",
        ),
        (
            "drift repair p99 (ms)",
            Box::new(|r: &Run| fmt_opt(r.drift.as_ref().map(|d| d.p99_ms), 1)),
            "< 1000",
        ),
        (
            "drift repair max (ms)",
            Box::new(|r: &Run| fmt_opt(r.drift.as_ref().map(|d| d.max_ms), 1)),
            "",
        ),
    ]
}

/// The operator's memory and CPU, and the restart.
fn usage_rows() -> Vec<Row> {
    vec![
        (
            "operator peak RSS (MiB)",
            Box::new(|r: &Run| fmt_opt(Some(r.operator.peak_rss_mib), 1)),
            "< 100 @1000, < 256 @10000",
        ),
        (
            "  after converge (MiB)",
            Box::new(|r: &Run| fmt_opt(Some(r.operator.peak_rss_after_converge_mib), 1)),
            "",
        ),
        (
            "  RSS at end: heap / file (MiB)",
            Box::new(|r: &Run| {
                format!(
                    "{:.0} / {:.0}",
                    r.operator.rss_anon_mib, r.operator.rss_file_mib
                )
            }),
            "",
        ),
        (
            "operator CPU total (s)",
            Box::new(|r: &Run| fmt_opt(Some(r.operator.cpu_seconds), 1)),
            "",
        ),
        (
            "restart: ready (s)",
            Box::new(|r: &Run| fmt_opt(r.restart.as_ref().map(|x| x.ready_seconds), 2)),
            "",
        ),
        (
            "restart: all reconciled (s)",
            Box::new(|r: &Run| fmt_opt(r.restart.as_ref().map(|x| x.reconciled_seconds), 2)),
            "",
        ),
        (
            "restart: API requests",
            Box::new(|r: &Run| {
                fmt_opt(
                    r.restart
                        .as_ref()
                        .and_then(|x| x.requests)
                        .map(|v| v as f64),
                    0,
                )
            }),
            "",
        ),
        (
            "restart: API writes",
            Box::new(|r: &Run| {
                fmt_opt(
                    r.restart.as_ref().and_then(|x| x.writes).map(|v| v as f64),
                    0,
                )
            }),
            "0",
        ),
        (
            "restart: peak RSS (MiB)",
            Box::new(|r: &Run| fmt_opt(r.restart.as_ref().map(|x| x.peak_rss_mib), 1)),
            "",
        ),
        (
            "restart: CPU (s)",
            Box::new(|r: &Run| fmt_opt(r.restart.as_ref().map(|x| x.cpu_seconds), 1)),
            "",
        ),
        (
            "bench process CPU (s)",
            Box::new(|r: &Run| fmt_opt(Some(r.bench_process_cpu_seconds), 1)),
            "",
        ),
    ]
}
