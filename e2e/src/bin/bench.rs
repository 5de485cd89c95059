//! Keelson's scale benchmark.
//!
//! Runs the `keelson` binary as a separate process (so its own peak RSS and CPU time can be read
//! from `/proc`) against the in-process API server stand-in, or against a real cluster when
//! `KEELSON_E2E_KUBECONFIG` or `KUBECONFIG` names one, and measures for each N:
//!
//! 1. converge: N copies of `samples/shop.yaml` (`shop-0` .. `shop-<N-1>`, all in one namespace)
//!    applied by a client, from the first apply until every Application is `Ready=True` for its
//!    current generation;
//! 2. baseline: on a fresh stand-in, a bare client server-side applies the same Applications and
//!    the children `keelson::render::render_values` builds for them, then waits for the
//!    workloads to be available;
//! 3. no-op resync: API requests and writes during one full resync of the converged state;
//! 4. drift repair: hand edits of a random child Deployment's image, time until restored;
//! 5. the operator's peak RSS and CPU seconds.
//!
//! `cargo run --release -p e2e --bin bench -- --help` prints the options.

/// The in-process API server allocates and frees a copy of every object it touches; jemalloc
/// (as in the operator) keeps that cost lower and steadier than the C library's allocator.
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, bail};
use e2e::{
    apiserver::{ApiServer, ServerOptions, Stats},
    harness::{self, CHILD_KINDS, real_cluster_kubeconfig, repo_root},
};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use keelson::{
    build::{ApiCapabilities, Credentials},
    render::render_values,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use rand::Rng as _;
use serde::Serialize;
use serde_json::{Value, json};

/// The field manager of the Applications the benchmark applies (a user's `kubectl apply`).
const USER_MANAGER: &str = "bench-user";
/// The field manager of the baseline's child applies.
const BASELINE_MANAGER: &str = "bench-baseline";
/// The field manager of the drift edits.
const EDITOR_MANAGER: &str = "bench-editor";
/// The namespace of the Applications on the in-process server.
const NAMESPACE: &str = "bench";

const USAGE: &str = "\
bench: Keelson's scale benchmark

usage: cargo run --release -p e2e --bin bench -- [OPTIONS]

Runs the keelson binary as a separate process (`keelson run --leader-elect=false`) against the
in-process API server stand-in, or against a real cluster when KEELSON_E2E_KUBECONFIG or
KUBECONFIG names one (then the in-process-only figures are skipped). For each N it creates one
namespace with N copies of samples/shop.yaml (shop-0 .. shop-<N-1>) and reports:
  converge    seconds from the first apply until every Application is Ready for its generation
              (in-process also: how long the API server was busy, i.e. held its state lock)
  baseline    seconds for a bare client to server-side apply the same Applications and their
              rendered children and see the workloads available (in-process only)
  resync      API requests, writes and reconciles during one full no-op resync
  drift       time to restore a hand-edited Deployment image: p50, p99, max
  operator    peak RSS (VmHWM) and CPU seconds of the operator process
  restart     a second operator process started on the converged state: time until every
              Application was reconciled, API requests and writes, its peak RSS
as a table on stdout and, with --json, as JSON.

options:
  --apps LIST           comma-separated Application counts [default: 100,1000]
  --json PATH           also write the results as JSON to PATH
  --drift-edits N       hand edits for the drift figure [default: 200]
  --keelson-bin PATH    the operator binary, built beforehand with
                        `cargo build --release -p keelson`
                        [default: $CARGO_TARGET_DIR/release/keelson, else target/release/keelson
                        in the workspace]
  --concurrency N       the operator's --concurrency and the clients' parallel requests
                        [default: 16]
  --resync-seconds S    the operator's --resync-seconds [default: max(20, 0.12 x N), so that
                        no periodic resync falls into the convergence]
  --operator-env K=V    set an environment variable of the operator process (repeatable),
                        e.g. MALLOC_ARENA_MAX=2
  --ready-delay-ms MS   how long the stand-in takes to report a workload available [default: 50]
  --rounds K            in-process: measure convergence and the baseline K times each, in
                        turn, each on a fresh API server, and compare their medians; the two
                        share the machine's cores, so single runs vary by 10 % or more
                        [default: 5]
  --timeline            in-process: during each convergence, print every second how many
                        Applications have a status for their generation and how many are Ready
  --converge-only       in-process: only the convergence and baseline rounds (no resync, drift
                        or restart); the operator figures are those of the first round
  -h, --help            print this help
";

/// Command-line options.
#[derive(Clone, Debug)]
struct Opts {
    apps: Vec<usize>,
    json: Option<PathBuf>,
    drift_edits: usize,
    keelson_bin: PathBuf,
    concurrency: usize,
    resync_seconds: Option<u64>,
    ready_delay: Duration,
    operator_env: Vec<(String, String)>,
    rounds: usize,
    converge_only: bool,
    timeline: bool,
}

fn default_keelson_bin() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("release").join("keelson"),
        None => repo_root().join("target").join("release").join("keelson"),
    }
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Opts>, String> {
    let mut opts = Opts {
        apps: vec![100, 1000],
        json: None,
        drift_edits: 200,
        keelson_bin: default_keelson_bin(),
        concurrency: 16,
        resync_seconds: None,
        ready_delay: Duration::from_millis(50),
        operator_env: Vec::new(),
        rounds: 5,
        converge_only: false,
        timeline: false,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |s: String| -> Result<u64, String> {
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a whole number: {s:?}"))
        };
        match flag.as_str() {
            "--apps" => {
                opts.apps = value()?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| number(s.to_string()).map(|n| n as usize))
                    .collect::<Result<_, _>>()?;
                if opts.apps.is_empty() || opts.apps.contains(&0) {
                    return Err("--apps: give one or more counts above zero, e.g. 100,1000".into());
                }
            }
            "--json" => opts.json = Some(value()?.into()),
            "--drift-edits" => opts.drift_edits = number(value()?)? as usize,
            "--keelson-bin" => opts.keelson_bin = value()?.into(),
            "--concurrency" => opts.concurrency = number(value()?)?.clamp(1, 1000) as usize,
            "--resync-seconds" => opts.resync_seconds = Some(number(value()?)?.max(5)),
            "--ready-delay-ms" => opts.ready_delay = Duration::from_millis(number(value()?)?),
            "--rounds" => opts.rounds = number(value()?)?.clamp(1, 20) as usize,
            "--converge-only" => opts.converge_only = true,
            "--timeline" => opts.timeline = true,
            "--operator-env" => {
                let v = value()?;
                let (k, v) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--operator-env: expected KEY=VALUE, got {v:?}"))?;
                opts.operator_env.push((k.to_string(), v.to_string()));
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(Some(opts))
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Debug, Serialize)]
struct Machine {
    date: String,
    nproc: usize,
    cpu_model: String,
    memory_mib: u64,
    kernel: String,
    /// `/proc/loadavg` when the benchmark started: other work on the machine skews the figures.
    load_average: String,
    keelson_bin: String,
    keelson_bin_mib: f64,
    /// The size without debug information (`strip`), when `strip` is installed.
    keelson_bin_stripped_mib: Option<f64>,
    git_commit: Option<String>,
}

#[derive(Debug, Serialize)]
struct Settings {
    mode: &'static str,
    namespace_layout: &'static str,
    children_per_app: usize,
    concurrency: usize,
    /// The stand-in's workload ready delay (none on a real cluster).
    workload_ready_delay_ms: Option<u64>,
    drift_edits: usize,
    discovery_seconds: u64,
    operator_args: Vec<String>,
    operator_env: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
struct ApiCounts {
    requests: u64,
    writes: u64,
    controller_writes: u64,
    watch_events: u64,
    by_verb: BTreeMap<String, u64>,
    by_resource: BTreeMap<String, u64>,
    /// Seconds the in-process server held its state lock: the server's busy time, in total
    /// and per verb and resource.
    lock_seconds: f64,
    lock_seconds_by: BTreeMap<String, f64>,
}

impl ApiCounts {
    /// The biggest holders of the server's lock, for `--timeline`.
    fn lock_summary(&self) -> String {
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

#[derive(Debug, Default, Clone, Copy, Serialize)]
struct OpMetrics {
    reconciles: f64,
    reconcile_errors: f64,
    status_writes: f64,
    children_applied: f64,
    drift_repairs: f64,
    reconcile_seconds_sum: f64,
    reconcile_seconds_count: f64,
}

impl OpMetrics {
    fn since(&self, before: &OpMetrics) -> OpMetrics {
        OpMetrics {
            reconciles: self.reconciles - before.reconciles,
            reconcile_errors: self.reconcile_errors - before.reconcile_errors,
            status_writes: self.status_writes - before.status_writes,
            children_applied: self.children_applied - before.children_applied,
            drift_repairs: self.drift_repairs - before.drift_repairs,
            reconcile_seconds_sum: self.reconcile_seconds_sum - before.reconcile_seconds_sum,
            reconcile_seconds_count: self.reconcile_seconds_count - before.reconcile_seconds_count,
        }
    }
}

#[derive(Debug, Serialize)]
struct Converge {
    seconds: f64,
    applies_sent_seconds: f64,
    operator_cpu_seconds: f64,
    bench_process_cpu_seconds: f64,
    resync_ticks_during: u64,
    operator: OpMetrics,
    api: Option<ApiCounts>,
    /// Time the benchmark spent checking for readiness (in-process: inside the stand-in).
    poll_seconds: f64,
    /// CPU seconds used by every other process of the machine meanwhile (noise).
    other_processes_cpu_seconds: f64,
}

#[derive(Debug, Serialize)]
struct Baseline {
    seconds: f64,
    applies_sent_seconds: f64,
    bench_process_cpu_seconds: f64,
    api: ApiCounts,
    /// Time the benchmark spent checking for readiness inside the stand-in.
    poll_seconds: f64,
    /// CPU seconds used by every other process of the machine meanwhile (noise).
    other_processes_cpu_seconds: f64,
}

#[derive(Debug, Serialize)]
struct Rounds {
    converge_seconds: Vec<f64>,
    baseline_seconds: Vec<f64>,
    converge_median: f64,
    baseline_median: f64,
    /// Each round's converge over the same round's baseline.
    ratios: Vec<f64>,
}

impl Rounds {
    fn new(converge: Vec<f64>, base: Vec<f64>) -> Rounds {
        Rounds {
            converge_median: median(&converge),
            baseline_median: median(&base),
            ratios: converge.iter().zip(&base).map(|(c, b)| c / b).collect(),
            converge_seconds: converge,
            baseline_seconds: base,
        }
    }

    /// Median converge time over median baseline time.
    fn ratio(&self) -> f64 {
        self.converge_median / self.baseline_median
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[derive(Debug, Serialize)]
struct Resync {
    resync_seconds: u64,
    window_seconds: f64,
    reconciles: f64,
    requests: Option<u64>,
    writes: Option<u64>,
    controller_writes: Option<u64>,
    operator_cpu_seconds: f64,
    api: Option<ApiCounts>,
    note: Option<String>,
}

#[derive(Debug, Serialize)]
struct Drift {
    edits: usize,
    poll_interval_ms: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    mean_ms: f64,
    operator_cpu_seconds: f64,
    drift_repairs_metric: f64,
}

#[derive(Debug, Serialize)]
struct Restart {
    ready_seconds: f64,
    reconciled_seconds: f64,
    reconciles: f64,
    requests: Option<u64>,
    writes: Option<u64>,
    peak_rss_mib: f64,
    cpu_seconds: f64,
    api: Option<ApiCounts>,
}

#[derive(Debug, Default, Serialize)]
struct Usage {
    peak_rss_mib: f64,
    rss_at_end_mib: f64,
    cpu_seconds: f64,
    peak_rss_after_converge_mib: f64,
    /// Of the RSS at the end: anonymous memory (the heap) and file pages (the binary's code).
    rss_anon_mib: f64,
    rss_file_mib: f64,
    threads: u64,
}

#[derive(Debug, Serialize)]
struct Run {
    apps: usize,
    namespace: String,
    operator_log: String,
    converge: Option<Converge>,
    baseline: Option<Baseline>,
    /// Median converge time over median baseline time, over every round.
    operator_over_baseline: Option<f64>,
    /// Every round's converge and baseline seconds (the first from the full run above).
    rounds: Option<Rounds>,
    resync: Option<Resync>,
    drift: Option<Drift>,
    operator: Usage,
    restart: Option<Restart>,
    bench_process_cpu_seconds: f64,
    skipped: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    settings: Settings,
    runs: Vec<Run>,
    bench_process_peak_rss_mib: f64,
    targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
struct Target {
    apps: usize,
    what: String,
    goal: String,
    value: Option<f64>,
    met: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// /proc

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU seconds (user + system) of a process.
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is f[0]: utime (14) is f[11], stime (15) is f[12].
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(f.get(i)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / clk_tck())
}

/// A `kB` field of `/proc/<pid>/status` in MiB (or a count for `Threads`).
fn status_field(pid: &str, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .ok_or_else(|| anyhow!("/proc/{pid}/status has no {field}"))?;
    let n: f64 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("empty {field}"))?
        .parse()?;
    Ok(if line.ends_with("kB") { n / 1024.0 } else { n })
}

/// CPU seconds every process of the machine has used since boot (`/proc/stat`: all but idle
/// and iowait), to tell how much other work competed with the benchmark.
fn machine_busy_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return f64::NAN;
    };
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    let busy: f64 = f
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy / clk_tck()
}

fn self_cpu() -> f64 {
    cpu_seconds("self").unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------------------------------------
// The operator process

struct OperatorProcess {
    child: Child,
    pid: String,
    admin: SocketAddr,
    log: PathBuf,
    peak_rss_after_converge: f64,
}

struct OperatorStart<'a> {
    bin: &'a Path,
    kubeconfig: &'a Path,
    namespace: &'a str,
    resync: u64,
    discovery: u64,
    concurrency: usize,
    log: &'a Path,
    env: &'a [(String, String)],
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(l.local_addr()?.port())
}

fn operator_args(s: &OperatorStart<'_>, admin: &SocketAddr) -> Vec<String> {
    vec![
        "run".into(),
        "--leader-elect=false".into(),
        format!("--admin-addr={admin}"),
        "--log-level=warn".into(),
        format!("--namespaces={}", s.namespace),
        format!("--resync-seconds={}", s.resync),
        format!("--discovery-seconds={}", s.discovery),
        format!("--concurrency={}", s.concurrency),
    ]
}

impl OperatorProcess {
    fn start(s: &OperatorStart<'_>) -> anyhow::Result<OperatorProcess> {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let log =
            std::fs::File::create(s.log).with_context(|| format!("create {}", s.log.display()))?;
        let child = Command::new(s.bin)
            .args(operator_args(s, &admin))
            .env("KUBECONFIG", s.kubeconfig)
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .env_remove("KEELSON_NAMESPACES")
            .env_remove("KEELSON_LEADER_ELECT")
            .env_remove("KEELSON_ADMIN_ADDR")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", s.bin.display()))?;
        Ok(OperatorProcess {
            pid: child.id().to_string(),
            child,
            admin,
            log: s.log.to_path_buf(),
            peak_rss_after_converge: 0.0,
        })
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() {
            format!("(its log {} is empty)", self.log.display())
        } else {
            format!("last lines of {}:\n{tail}", self.log.display())
        }
    }

    /// Fails when the process has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the operator exited ({status}); {}", self.log_tail());
        }
        Ok(())
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if let Ok((200, _)) = http_get(self.admin, "/readyz").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the operator's /readyz on {} did not answer 200 within {timeout:?}; {}",
                    self.admin,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn metrics(&mut self) -> anyhow::Result<OpMetrics> {
        self.check_alive()?;
        let (code, body) = http_get(self.admin, "/metrics").await?;
        if code != 200 {
            bail!("GET /metrics answered {code}");
        }
        let sum = |name: &str| sum_metric(&body, name);
        Ok(OpMetrics {
            reconciles: sum("keelson_reconciles_total"),
            reconcile_errors: sum("keelson_reconcile_errors_total"),
            status_writes: sum("keelson_status_writes_total"),
            children_applied: sum("keelson_children_applied_total"),
            drift_repairs: sum("keelson_drift_repairs_total"),
            reconcile_seconds_sum: sum("keelson_reconcile_duration_seconds_sum"),
            reconcile_seconds_count: sum("keelson_reconcile_duration_seconds_count"),
        })
    }

    fn cpu(&self) -> f64 {
        cpu_seconds(&self.pid).unwrap_or(f64::NAN)
    }

    fn usage(&self) -> anyhow::Result<Usage> {
        Ok(Usage {
            peak_rss_mib: status_field(&self.pid, "VmHWM")?,
            rss_at_end_mib: status_field(&self.pid, "VmRSS")?,
            cpu_seconds: cpu_seconds(&self.pid)?,
            peak_rss_after_converge_mib: self.peak_rss_after_converge,
            rss_anon_mib: status_field(&self.pid, "RssAnon")?,
            rss_file_mib: status_field(&self.pid, "RssFile")?,
            threads: status_field(&self.pid, "Threads")? as u64,
        })
    }

    /// SIGTERM, then SIGKILL after 15 s.
    async fn stop(mut self) {
        if let Ok(pid) = self.pid.parse::<i32>() {
            // SAFETY: kill has no memory-safety preconditions; pid is our own child.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("bench: the operator did not stop within 15 s of SIGTERM; killing it");
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sum of every sample of a metric (all label sets).
fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A plain HTTP/1.1 GET on 127.0.0.1 (the operator's admin port).
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<(u16, String)> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow!("malformed HTTP answer from {addr}"))?;
        let code: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("malformed HTTP status line from {addr}"))?;
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok((code, body))
    })
    .await?
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Cluster helpers

/// Where the benchmark runs.
enum Cluster {
    InProcess(ApiServer),
    Real(PathBuf),
}

impl Cluster {
    fn server(&self) -> Option<&ApiServer> {
        match self {
            Cluster::InProcess(s) => Some(s),
            Cluster::Real(_) => None,
        }
    }
}

fn server_options(opts: &Opts) -> ServerOptions {
    ServerOptions {
        workload_ready_delay: opts.ready_delay,
        ..ServerOptions::default()
    }
}

async fn in_process(opts: &Opts) -> anyhow::Result<(ApiServer, Client)> {
    let server = ApiServer::start(server_options(opts))
        .await
        .context("start the in-process API server")?;
    let cfg = kube::Config::new(server.url().parse()?);
    Ok((server.clone(), Client::try_from(cfg)?))
}

async fn real_client(path: &Path) -> anyhow::Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("read kubeconfig {}", path.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(Client::try_from(cfg)?)
}

async fn install_crd(client: &Client, path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let crd: CustomResourceDefinition = serde_norway::from_str(&text)?;
    let name = crd.name_any();
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply(USER_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .with_context(|| format!("install CRD {name}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let established = api.get(&name).await.ok().and_then(|c| {
            c.status?
                .conditions?
                .iter()
                .find(|c| c.type_ == "Established")
                .map(|c| c.status == "True")
        });
        if established == Some(true) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("CRD {name} did not become Established within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Keelson's CRD, and on the stand-in the ServiceMonitor CRD (a real cluster keeps what it has).
async fn install_crds(client: &Client, in_process: bool) -> anyhow::Result<()> {
    install_crd(
        client,
        &repo_root().join("crds/keelson.dev_applications.yaml"),
    )
    .await?;
    if in_process {
        let crd = harness::third_party_crd(harness::SERVICE_MONITORS_CRD, true)?;
        harness::apply_crd(client, &crd).await?;
    }
    Ok(())
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("create namespace {name}"))?;
    Ok(())
}

fn dynamic_api(client: &Client, ns: &str, api_version: &str, kind: &str) -> Api<DynamicObject> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let plural = CHILD_KINDS
        .iter()
        .find(|(g, v, k, _)| *g == group && *v == version && *k == kind)
        .map(|(_, _, _, p)| p.to_string())
        .unwrap_or_else(|| format!("{}s", kind.to_ascii_lowercase()));
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural);
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn apps_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    dynamic_api(client, ns, "keelson.dev/v1alpha1", "Application")
}

/// The shop sample, `n` times: `shop-0` .. `shop-<n-1>` in `ns`.
fn shop_apps(n: usize, ns: &str, real: bool) -> anyhow::Result<Vec<Value>> {
    let path = repo_root().join("samples/shop.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut base: Value = serde_norway::from_str(&text)?;
    base["metadata"]["namespace"] = json!(ns);
    if real {
        runnable_images(&mut base);
    }
    Ok((0..n)
        .map(|i| {
            let mut v = base.clone();
            v["metadata"]["name"] = json!(format!("shop-{i}"));
            v
        })
        .collect())
}

/// On a real cluster the sample's made-up images would never start: run a small HTTP server that
/// answers the probe paths, as a non-root user (as the e2e harness does).
fn runnable_images(app: &mut Value) {
    if let Some(services) = app["spec"]["services"].as_array_mut() {
        for s in services {
            let port = s["ports"][0]["port"].as_i64().unwrap_or(8080);
            s["image"] = json!("registry.k8s.io/e2e-test-images/agnhost:2.53");
            s["args"] = json!(["netexec", format!("--http-port={port}")]);
            s["runAsUser"] = json!(65532);
            if let Some(p) = s.get_mut("probes").and_then(Value::as_object_mut) {
                for (_, probe) in p.iter_mut() {
                    if probe.get("httpGet").is_some() {
                        probe["httpGet"]["path"] = json!("/healthz");
                    }
                }
            }
        }
    }
}

/// Apply every Application as a user would (`kubectl apply --server-side`), `concurrency` at once.
async fn apply_apps(
    client: &Client,
    ns: &str,
    apps: &[Value],
    concurrency: usize,
) -> anyhow::Result<()> {
    let api = apps_api(client, ns);
    stream::iter(apps)
        .map(|app| {
            let api = api.clone();
            async move {
                let name = app["metadata"]["name"].as_str().unwrap_or_default();
                api.patch(
                    name,
                    &PatchParams::apply(USER_MANAGER).force(),
                    &Patch::Apply(app),
                )
                .await
                .with_context(|| format!("apply Application {name}"))
                .map(|_| ())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Whether an Application is Ready=True for its current generation.
fn app_ready(app: &Value) -> bool {
    let generation = &app["metadata"]["generation"];
    let status = &app["status"];
    !generation.is_null()
        && status["observedGeneration"] == *generation
        && status["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// `--timeline`: how far the convergence is.
fn timeline_line(server: &ApiServer, n: usize, apps: &[Value], at: Duration) {
    let (mut exists, mut reconciled, mut ready) = (0, 0, 0);
    for name in apps.iter().filter_map(|a| a["metadata"]["name"].as_str()) {
        let Some(a) = server.get_object(
            "keelson.dev",
            "v1alpha1",
            "applications",
            Some(NAMESPACE),
            name,
        ) else {
            continue;
        };
        exists += 1;
        if a["status"]["observedGeneration"] == a["metadata"]["generation"] {
            reconciled += 1;
        }
        if app_ready(&a) {
            ready += 1;
        }
    }
    eprintln!(
        "[{n}]   {:5.1} s: {exists} applied, {reconciled} with status, {ready} Ready",
        at.as_secs_f64()
    );
}

/// The Applications not yet Ready for their generation. In-process they are checked one
/// `get_object` at a time, so a check never holds the stand-in's lock for long, and forgotten
/// once Ready; a real cluster is listed.
struct PendingApps {
    names: Vec<String>,
    poll_time: Duration,
}

impl PendingApps {
    fn new(apps: &[Value]) -> Self {
        PendingApps {
            names: apps
                .iter()
                .filter_map(|a| a["metadata"]["name"].as_str().map(String::from))
                .collect(),
            poll_time: Duration::ZERO,
        }
    }

    /// Checks again; returns how many are still pending.
    ///
    /// In-process, the check walks the pending Applications in order and stops at the first
    /// that is not Ready: readiness does not go back during convergence, so the walk only has
    /// to reach the end once every Application is Ready, and the whole convergence costs about
    /// one `get_object` per Application plus one per poll.
    async fn check(
        &mut self,
        cluster: &Cluster,
        client: &Client,
        ns: &str,
    ) -> anyhow::Result<usize> {
        let started = Instant::now();
        match cluster {
            Cluster::InProcess(s) => {
                let ready = self
                    .names
                    .iter()
                    .take_while(|name| {
                        s.get_object("keelson.dev", "v1alpha1", "applications", Some(ns), name)
                            .is_some_and(|a| app_ready(&a))
                    })
                    .count();
                self.names.drain(..ready);
            }
            Cluster::Real(_) => {
                let listed = list_apps(cluster, client, ns).await?;
                let ready: std::collections::HashSet<&str> = listed
                    .iter()
                    .filter(|a| app_ready(a))
                    .filter_map(|a| a["metadata"]["name"].as_str())
                    .collect();
                self.names.retain(|n| !ready.contains(n.as_str()));
            }
        }
        self.poll_time += started.elapsed();
        Ok(self.names.len())
    }

    /// The status of one pending Application, for an error message.
    async fn example(&self, cluster: &Cluster, client: &Client, ns: &str) -> String {
        let Some(name) = self.names.first() else {
            return String::new();
        };
        let app = match cluster {
            Cluster::InProcess(s) => {
                s.get_object("keelson.dev", "v1alpha1", "applications", Some(ns), name)
            }
            Cluster::Real(_) => apps_api(client, ns)
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|o| serde_json::to_value(o).ok()),
        };
        app.map(|a| brief_status(&a))
            .unwrap_or_else(|| format!("{name} does not exist"))
    }
}

async fn list_apps(cluster: &Cluster, client: &Client, ns: &str) -> anyhow::Result<Vec<Value>> {
    match cluster {
        Cluster::InProcess(s) => {
            Ok(s.list_objects("keelson.dev", "v1alpha1", "applications", Some(ns)))
        }
        Cluster::Real(_) => Ok(apps_api(client, ns)
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
            .collect()),
    }
}

fn brief_status(app: &Value) -> String {
    let ready = app["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| format!("Ready={} ({}: {})", c["status"], c["reason"], c["message"]))
        .unwrap_or_else(|| "no Ready condition".into());
    format!(
        "{} generation {} observedGeneration {}: {ready}",
        app["metadata"]["name"].as_str().unwrap_or("?"),
        app["metadata"]["generation"],
        app["status"]["observedGeneration"]
    )
}

/// Whether a Deployment or StatefulSet is rolled out and available, as Keelson's status reads it.
fn workload_available(o: &Value, stateful: bool) -> bool {
    let desired = o["spec"]["replicas"].as_i64().unwrap_or(1);
    let st = &o["status"];
    let current = st["observedGeneration"].as_i64().unwrap_or(-1)
        >= o["metadata"]["generation"].as_i64().unwrap_or(0);
    let n = |k: &str| st[k].as_i64().unwrap_or(0);
    if stateful {
        current && n("readyReplicas") >= desired
    } else {
        current && n("updatedReplicas") >= desired && n("availableReplicas") >= desired
    }
}

// ---------------------------------------------------------------------------------------------
// One N

fn resync_for(opts: &Opts, n: usize) -> u64 {
    opts.resync_seconds
        .unwrap_or_else(|| ((n as f64 * 0.12).ceil() as u64).max(20))
}

/// Seconds a phase may take before the benchmark gives up.
fn converge_timeout(n: usize, real: bool) -> Duration {
    let per_app = if real { 2.0 } else { 0.5 };
    Duration::from_secs_f64(120.0 + per_app * n as f64)
}

const DISCOVERY_SECONDS: u64 = 3600;

struct Ctx<'a> {
    opts: &'a Opts,
    workdir: &'a Path,
    real: Option<&'a Path>,
}

async fn bench_n(cx: &Ctx<'_>, n: usize) -> anyhow::Result<Run> {
    let real = cx.real.is_some();
    let bench_cpu0 = self_cpu();
    let (cluster, client, ns) = match cx.real {
        Some(path) => {
            let ns = format!("keelson-bench-{n}-{:06x}", rand::random::<u32>() & 0xffffff);
            (
                Cluster::Real(path.to_path_buf()),
                real_client(path).await?,
                ns,
            )
        }
        None => {
            let (server, client) = in_process(cx.opts).await?;
            (Cluster::InProcess(server), client, NAMESPACE.to_string())
        }
    };
    if cx.opts.converge_only && !real {
        if let Cluster::InProcess(s) = &cluster {
            s.clone().shutdown().await;
        }
        return converge_rounds_only(cx, n, bench_cpu0).await;
    }
    install_crds(&client, !real).await?;
    create_namespace(&client, &ns).await?;
    let result = operator_phases(cx, n, &cluster, &client, &ns).await;
    match &cluster {
        Cluster::Real(_) => {
            let _ = Api::<Namespace>::all(client.clone())
                .delete(&ns, &DeleteParams::default())
                .await;
        }
        Cluster::InProcess(s) => s.clone().shutdown().await,
    }
    let mut run = result?;

    if real {
        run.skipped.push(
            "baseline (needs a fresh in-process API server), resync request and write counts, drift polling at 1 ms (a real cluster is polled with GET every 10 ms)"
                .into(),
        );
    } else {
        let b = baseline(cx.opts, n).await?;
        let mut converge = vec![run.converge.as_ref().map_or(f64::NAN, |c| c.seconds)];
        let mut base = vec![b.seconds];
        for round in 2..=cx.opts.rounds {
            let (c, _) = converge_round(cx, n, round).await?;
            let b = baseline(cx.opts, n).await?.seconds;
            eprintln!("[{n}] round {round}: converge {c:.2} s, baseline {b:.2} s");
            converge.push(c);
            base.push(b);
        }
        run.rounds = Some(Rounds::new(converge, base));
        run.operator_over_baseline = run.rounds.as_ref().map(Rounds::ratio);
        run.baseline = Some(b);
    }
    run.bench_process_cpu_seconds = self_cpu() - bench_cpu0;
    Ok(run)
}

/// `--converge-only`: every round a convergence and a baseline, nothing else.
async fn converge_rounds_only(cx: &Ctx<'_>, n: usize, bench_cpu0: f64) -> anyhow::Result<Run> {
    let (mut converge, mut base, mut usage) = (Vec::new(), Vec::new(), None);
    let mut baseline_first = None;
    for round in 1..=cx.opts.rounds {
        let (c, u) = converge_round(cx, n, round).await?;
        let b = baseline(cx.opts, n).await?;
        eprintln!(
            "[{n}] round {round}: converge {c:.2} s, baseline {:.2} s",
            b.seconds
        );
        converge.push(c);
        base.push(b.seconds);
        usage.get_or_insert(u);
        baseline_first.get_or_insert(b);
    }
    let rounds = Rounds::new(converge, base);
    Ok(Run {
        apps: n,
        namespace: NAMESPACE.into(),
        operator_log: cx.workdir.display().to_string(),
        converge: None,
        baseline: baseline_first,
        operator_over_baseline: Some(rounds.ratio()),
        rounds: Some(rounds),
        resync: None,
        drift: None,
        operator: usage.unwrap_or_default(),
        restart: None,
        bench_process_cpu_seconds: self_cpu() - bench_cpu0,
        skipped: vec!["resync, drift and restart (--converge-only)".into()],
    })
}

/// One more measurement of convergence alone: a fresh in-process API server, a fresh operator
/// process, N Applications applied, until every one is Ready. The seconds, and the operator's
/// memory and CPU from its start until then.
async fn converge_round(cx: &Ctx<'_>, n: usize, round: usize) -> anyhow::Result<(f64, Usage)> {
    let opts = cx.opts;
    let (server, client) = in_process(opts).await?;
    install_crds(&client, true).await?;
    create_namespace(&client, NAMESPACE).await?;
    let cluster = Cluster::InProcess(server.clone());
    let kubeconfig = cx.workdir.join(format!("kubeconfig-{n}-round-{round}"));
    server.write_kubeconfig(&kubeconfig)?;
    let log = cx.workdir.join(format!("operator-{n}-round-{round}.log"));
    let mut op = OperatorProcess::start(&OperatorStart {
        bin: &opts.keelson_bin,
        kubeconfig: &kubeconfig,
        namespace: NAMESPACE,
        resync: resync_for(opts, n),
        discovery: DISCOVERY_SECONDS,
        concurrency: opts.concurrency,
        log: &log,
        env: &opts.operator_env,
    })?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let apps = shop_apps(n, NAMESPACE, false)?;
    server.reset_stats();
    let t0 = Instant::now();
    apply_apps(&client, NAMESPACE, &apps, opts.concurrency).await?;
    let timeout = converge_timeout(n, false);
    let mut pending = PendingApps::new(&apps);
    let mut next_line = Duration::from_secs(1);
    let result = loop {
        if opts.timeline && t0.elapsed() >= next_line {
            next_line += Duration::from_secs(1);
            timeline_line(&server, n, &apps, t0.elapsed());
        }
        if pending.check(&cluster, &client, NAMESPACE).await? == 0 {
            let seconds = t0.elapsed().as_secs_f64();
            if opts.timeline {
                let api: ApiCounts = server.stats().into();
                eprintln!("[{n}]   converge {}", api.lock_summary());
            }
            break op.usage().map(|u| (seconds, u));
        }
        if t0.elapsed() > timeout {
            break Err(anyhow::anyhow!(
                "converge round {round}: not every Application was Ready after {timeout:?}; {}",
                op.log_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    op.stop().await;
    server.shutdown().await;
    result
}

async fn operator_phases(
    cx: &Ctx<'_>,
    n: usize,
    cluster: &Cluster,
    client: &Client,
    ns: &str,
) -> anyhow::Result<Run> {
    let opts = cx.opts;
    let resync = resync_for(opts, n);
    let kubeconfig = match cluster {
        Cluster::InProcess(s) => {
            let p = cx.workdir.join(format!("kubeconfig-{n}"));
            s.write_kubeconfig(&p)?;
            p
        }
        Cluster::Real(p) => p.clone(),
    };
    let log = cx.workdir.join(format!("operator-{n}.log"));
    let mut op = OperatorProcess::start(&OperatorStart {
        bin: &opts.keelson_bin,
        kubeconfig: &kubeconfig,
        namespace: ns,
        resync,
        discovery: DISCOVERY_SECONDS,
        concurrency: opts.concurrency,
        log: &log,
        env: &opts.operator_env,
    })?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let t_ready = Instant::now();
    eprintln!(
        "[{n}] operator pid {} ready (resync every {resync} s); applying {n} Applications",
        op.pid
    );

    // 1. converge
    let apps = shop_apps(n, ns, cluster.server().is_none())?;
    let m0 = op.metrics().await?;
    let op_cpu0 = op.cpu();
    let bench_cpu0 = self_cpu();
    let machine0 = machine_busy_cpu();
    if let Some(s) = cluster.server() {
        s.reset_stats();
    }
    let t0 = Instant::now();
    apply_apps(client, ns, &apps, opts.concurrency).await?;
    let applies_sent = t0.elapsed();
    eprintln!(
        "[{n}] all applies sent after {:.2} s; waiting for Ready",
        applies_sent.as_secs_f64()
    );
    let timeout = converge_timeout(n, cluster.server().is_none());
    let poll = if cluster.server().is_some() {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    let mut last_report = Instant::now();
    let mut pending = PendingApps::new(&apps);
    let converged = loop {
        let ready = n - pending.check(cluster, client, ns).await?;
        if ready == n {
            break t0.elapsed();
        }
        if t0.elapsed() > timeout {
            let example = pending.example(cluster, client, ns).await;
            bail!(
                "converge: only {ready} of {n} Applications were Ready for their generation {timeout:?} after the first apply; e.g. {example}; {}",
                op.log_tail()
            );
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "[{n}]   shop-0..shop-{} Ready after {:.0} s",
                ready.saturating_sub(1),
                t0.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
            op.check_alive()?;
        }
        tokio::time::sleep(poll).await;
    };
    let (op_cpu, bench_cpu) = (op.cpu() - op_cpu0, self_cpu() - bench_cpu0);
    let other = machine_busy_cpu() - machine0 - op_cpu - bench_cpu;
    let m1 = op.metrics().await?;
    let converge = Converge {
        seconds: converged.as_secs_f64(),
        applies_sent_seconds: applies_sent.as_secs_f64(),
        operator_cpu_seconds: op_cpu,
        bench_process_cpu_seconds: bench_cpu,
        other_processes_cpu_seconds: other.max(0.0),
        resync_ticks_during: ((t0 + converged).duration_since(t_ready).as_secs_f64()
            / resync as f64)
            .floor() as u64,
        operator: m1.since(&m0),
        api: cluster.server().map(|s| s.stats().into()),
        poll_seconds: pending.poll_time.as_secs_f64(),
    };
    op.peak_rss_after_converge = status_field(&op.pid, "VmHWM").unwrap_or(f64::NAN);
    eprintln!(
        "[{n}] converged in {:.2} s ({} reconciles, operator CPU {:.1} s, bench process CPU {:.1} s)",
        converge.seconds,
        converge.operator.reconciles,
        converge.operator_cpu_seconds,
        converge.bench_process_cpu_seconds
    );

    // 3. no-op resync
    let resync_result = resync_phase(&mut op, cluster, n, resync, t_ready).await?;
    eprintln!(
        "[{n}] resync: {} reconciles, {:?} requests, {:?} writes in {:.1} s",
        resync_result.reconciles,
        resync_result.requests,
        resync_result.writes,
        resync_result.window_seconds
    );

    // 4. drift repair
    let drift = if opts.drift_edits > 0 {
        let d = drift_phase(
            &mut op,
            cluster,
            client,
            ns,
            n,
            DriftPlan {
                edits: opts.drift_edits,
                sample: &apps[0],
                gap: opts.ready_delay + Duration::from_millis(20),
            },
        )
        .await?;
        eprintln!(
            "[{n}] drift: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            d.p50_ms, d.p99_ms, d.max_ms
        );
        Some(d)
    } else {
        None
    };

    // 5. the operator's memory and CPU
    op.check_alive()?;
    let usage = op.usage()?;
    op.stop().await;

    // 6. a restart on the converged state
    let restart_log = cx.workdir.join(format!("operator-{n}-restart.log"));
    let restart = restart_phase(
        cluster,
        n,
        &OperatorStart {
            bin: &opts.keelson_bin,
            kubeconfig: &kubeconfig,
            namespace: ns,
            resync,
            discovery: DISCOVERY_SECONDS,
            concurrency: opts.concurrency,
            log: &restart_log,
            env: &opts.operator_env,
        },
    )
    .await?;
    eprintln!(
        "[{n}] restart: ready after {:.2} s, every Application reconciled after {:.2} s, {:?} requests, {:?} writes, peak RSS {:.1} MiB",
        restart.ready_seconds,
        restart.reconciled_seconds,
        restart.requests,
        restart.writes,
        restart.peak_rss_mib
    );
    Ok(Run {
        apps: n,
        namespace: ns.to_string(),
        operator_log: log.display().to_string(),
        converge: Some(converge),
        baseline: None,
        operator_over_baseline: None,
        rounds: None,
        resync: Some(resync_result),
        drift,
        operator: usage,
        restart: Some(restart),
        bench_process_cpu_seconds: 0.0,
        skipped: Vec::new(),
    })
}

/// Starts a second operator process on the converged state and waits until it has reconciled
/// every Application once and gone quiet.
async fn restart_phase(
    cluster: &Cluster,
    n: usize,
    start: &OperatorStart<'_>,
) -> anyhow::Result<Restart> {
    if let Some(s) = cluster.server() {
        s.reset_stats();
    }
    let t0 = Instant::now();
    let mut op = OperatorProcess::start(start)?;
    op.wait_ready(Duration::from_secs(120)).await?;
    let ready = t0.elapsed();
    let timeout = converge_timeout(n, cluster.server().is_none());
    let mut last = op.metrics().await?.reconciles;
    let mut changed = t0.elapsed();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let m = op.metrics().await?;
        if m.reconciles != last {
            last = m.reconciles;
            changed = t0.elapsed();
        }
        if last >= n as f64 && t0.elapsed() - changed >= Duration::from_secs(2) {
            break;
        }
        if t0.elapsed() > timeout {
            bail!(
                "restart: the restarted operator reconciled {last} of {n} Applications within {timeout:?}; {}",
                op.log_tail()
            );
        }
    }
    let usage = op.usage()?;
    let stats = cluster.server().map(|s| s.stats());
    op.stop().await;
    Ok(Restart {
        ready_seconds: ready.as_secs_f64(),
        reconciled_seconds: changed.as_secs_f64(),
        reconciles: last,
        requests: stats.as_ref().map(|s| s.requests),
        writes: stats.as_ref().map(|s| s.writes),
        peak_rss_mib: usage.peak_rss_mib,
        cpu_seconds: usage.cpu_seconds,
        api: stats.map(Into::into),
    })
}

/// Waits until neither the operator reconciles nor (in-process) anyone sends a request for
/// `quiet`; fails after `timeout`.
async fn quiesce(
    op: &mut OperatorProcess,
    cluster: &Cluster,
    quiet: Duration,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = (
        op.metrics().await?.reconciles,
        cluster.server().map(|s| s.stats().requests),
    );
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = (
            op.metrics().await?.reconciles,
            cluster.server().map(|s| s.stats().requests),
        );
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the operator never went quiet for {quiet:?} within {timeout:?} after convergence (reconciles {}, requests {:?})",
                now.0,
                now.1
            );
        }
    }
}

async fn resync_phase(
    op: &mut OperatorProcess,
    cluster: &Cluster,
    n: usize,
    resync: u64,
    t_ready: Instant,
) -> anyhow::Result<Resync> {
    quiesce(
        op,
        cluster,
        Duration::from_secs(2),
        Duration::from_secs(120),
    )
    .await?;
    let period = Duration::from_secs(resync);
    let since_ready = t_ready.elapsed();
    let next_tick =
        period - Duration::from_nanos((since_ready.as_nanos() % period.as_nanos()) as u64);
    eprintln!(
        "[{n}] quiet; waiting for the next full resync (due in about {:.1} s)",
        next_tick.as_secs_f64()
    );
    if let Some(s) = cluster.server() {
        s.reset_stats();
    }
    let t0 = Instant::now();
    let m0 = op.metrics().await?;
    let cpu0 = op.cpu();
    let deadline = t0 + period + Duration::from_secs(60) + Duration::from_millis(20 * n as u64);
    let mut last = m0.reconciles;
    let mut since = Instant::now();
    let mut note = None;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let m = op.metrics().await?;
        if m.reconciles != last {
            last = m.reconciles;
            since = Instant::now();
        }
        let seen = m.reconciles - m0.reconciles;
        if seen >= n as f64 && since.elapsed() >= Duration::from_secs(2) {
            break;
        }
        if Instant::now() > deadline {
            if seen == 0.0 {
                bail!(
                    "resync: no reconcile within {:?} although --resync-seconds={resync}; {}",
                    deadline - t0,
                    op.log_tail()
                );
            }
            note = Some(format!(
                "only {seen} of {n} Applications were reconciled by the resync within {:?}",
                deadline - t0
            ));
            break;
        }
    }
    let window = t0.elapsed();
    let m = op.metrics().await?.since(&m0);
    let stats = cluster.server().map(|s| s.stats());
    Ok(Resync {
        resync_seconds: resync,
        window_seconds: window.as_secs_f64(),
        reconciles: m.reconciles,
        requests: stats.as_ref().map(|s| s.requests),
        writes: stats.as_ref().map(|s| s.writes),
        controller_writes: stats.as_ref().map(|s| s.controller_writes),
        operator_cpu_seconds: op.cpu() - cpu0,
        api: stats.map(Into::into),
        note,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn get_deployment(
    cluster: &Cluster,
    api: &Api<DynamicObject>,
    ns: &str,
    name: &str,
) -> anyhow::Result<Option<Value>> {
    match cluster {
        Cluster::InProcess(s) => Ok(s.get_object("apps", "v1", "deployments", Some(ns), name)),
        Cluster::Real(_) => Ok(api
            .get_opt(name)
            .await?
            .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))),
    }
}

/// What the drift phase does.
struct DriftPlan<'a> {
    /// How many hand edits.
    edits: usize,
    /// The Application the shops were made from (service names and images).
    sample: &'a Value,
    /// The pause after each repair.
    gap: Duration,
}

async fn drift_phase(
    op: &mut OperatorProcess,
    cluster: &Cluster,
    client: &Client,
    ns: &str,
    n: usize,
    plan: DriftPlan<'_>,
) -> anyhow::Result<Drift> {
    let DriftPlan { edits, sample, gap } = plan;
    let services: Vec<(String, String)> = sample["spec"]["services"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or_default().to_string(),
                        s["image"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if services.is_empty() {
        bail!("drift: the sample has no services");
    }
    let api = dynamic_api(client, ns, "apps/v1", "Deployment");
    let poll = if cluster.server().is_some() {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(10)
    };
    let per_edit = if cluster.server().is_some() {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(60)
    };
    let m0 = op.metrics().await?;
    let cpu0 = op.cpu();
    let mut rng = rand::rng();
    let mut times = Vec::with_capacity(edits);
    for k in 0..edits {
        let i = rng.random_range(0..n);
        let (svc, image) = &services[rng.random_range(0..services.len())];
        let name = format!("shop-{i}-{svc}");
        let obj = get_deployment(cluster, &api, ns, &name)
            .await?
            .ok_or_else(|| anyhow!("drift: Deployment {ns}/{name} does not exist"))?;
        let mut containers = obj["spec"]["template"]["spec"]["containers"].clone();
        let current = containers[0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if current != *image {
            bail!("drift: Deployment {name} runs {current:?} before edit {k}, expected {image:?}");
        }
        containers[0]["image"] = json!(format!("registry.example/drift:{k}"));
        let edit = json!({"spec": {"template": {"spec": {"containers": containers}}}});
        let pp = PatchParams {
            field_manager: Some(EDITOR_MANAGER.into()),
            ..Default::default()
        };
        let started = Instant::now();
        api.patch(&name, &pp, &Patch::Strategic(&edit))
            .await
            .with_context(|| format!("drift: edit Deployment {name}"))?;
        loop {
            let o = get_deployment(cluster, &api, ns, &name).await?;
            let img = o
                .as_ref()
                .and_then(|o| o["spec"]["template"]["spec"]["containers"][0]["image"].as_str());
            if img == Some(image.as_str()) {
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if started.elapsed() > per_edit {
                bail!(
                    "drift: edit {k} of Deployment {ns}/{name} was not repaired within {per_edit:?} (image now {img:?}); {}",
                    op.log_tail()
                );
            }
            tokio::time::sleep(poll).await;
        }
        // Let the status write for the new generation (and the reconcile it triggers) pass
        // before the next edit, so edits do not overlap.
        tokio::time::sleep(gap).await;
        if (k + 1) % 50 == 0 {
            op.check_alive()?;
        }
    }
    let m = op.metrics().await?.since(&m0);
    // The last repair's status writes land before the operator is stopped, so the restart that
    // follows starts from a settled state.
    quiesce(op, cluster, Duration::from_secs(1), Duration::from_secs(60)).await?;
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    times.sort_by(f64::total_cmp);
    Ok(Drift {
        edits,
        poll_interval_ms: poll.as_secs_f64() * 1000.0,
        p50_ms: percentile(&times, 0.50),
        p90_ms: percentile(&times, 0.90),
        p99_ms: percentile(&times, 0.99),
        max_ms: times.last().copied().unwrap_or(f64::NAN),
        mean_ms: mean,
        operator_cpu_seconds: op.cpu() - cpu0,
        drift_repairs_metric: m.drift_repairs,
    })
}

/// Deterministic credentials for the baseline's Secrets.
fn bench_credentials(db: &str) -> Credentials {
    let pad = |prefix: &str| {
        let mut s: String = format!("{prefix}{db}")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        while s.len() < 32 {
            s.push('0');
        }
        s.truncate(32);
        s
    };
    Credentials {
        password: pad("bench"),
        admin_password: pad("benchadmin"),
    }
}

fn bench_capabilities() -> ApiCapabilities {
    ApiCapabilities {
        service_monitors: true,
        http_routes: false,
    }
}

/// How many children Keelson builds for one shop.
fn children_per_app() -> anyhow::Result<usize> {
    let app = &shop_apps(1, NAMESPACE, false)?[0];
    Ok(render_values(
        &serde_json::to_string(app)?,
        bench_capabilities(),
        bench_credentials,
    )?
    .len())
}

async fn baseline(opts: &Opts, n: usize) -> anyhow::Result<Baseline> {
    let (server, client) = in_process(opts).await?;
    install_crds(&client, true).await?;
    create_namespace(&client, NAMESPACE).await?;
    let apps = shop_apps(n, NAMESPACE, false)?;
    let per_app = children_per_app()?;
    eprintln!("[{n}] baseline: a bare client applies {n} Applications and {per_app} children each");
    let bench_cpu0 = self_cpu();
    let machine0 = machine_busy_cpu();
    server.reset_stats();
    let t0 = Instant::now();
    let api = apps_api(&client, NAMESPACE);
    stream::iter(&apps)
        .map(|app| {
            let (api, client) = (api.clone(), client.clone());
            async move {
                let name = app["metadata"]["name"].as_str().unwrap_or_default();
                let stored = api
                    .patch(
                        name,
                        &PatchParams::apply(USER_MANAGER).force(),
                        &Patch::Apply(app),
                    )
                    .await
                    .with_context(|| format!("baseline: apply Application {name}"))?;
                let mut with_uid = app.clone();
                with_uid["metadata"]["uid"] = json!(stored.uid());
                let children = render_values(
                    &serde_json::to_string(&with_uid)?,
                    bench_capabilities(),
                    bench_credentials,
                )?;
                for c in &children {
                    let (av, kind, cname) = (
                        c["apiVersion"].as_str().unwrap_or_default(),
                        c["kind"].as_str().unwrap_or_default(),
                        c["metadata"]["name"].as_str().unwrap_or_default(),
                    );
                    dynamic_api(&client, NAMESPACE, av, kind)
                        .patch(
                            cname,
                            &PatchParams::apply(BASELINE_MANAGER).force(),
                            &Patch::Apply(c),
                        )
                        .await
                        .with_context(|| format!("baseline: apply {kind} {cname}"))?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(opts.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let applies_sent = t0.elapsed();
    let services = apps[0]["spec"]["services"].as_array().map_or(0, Vec::len) * n;
    let databases = apps[0]["spec"]["databases"].as_array().map_or(0, Vec::len) * n;
    let timeout = converge_timeout(n, false);
    // Every workload, checked one object at a time (never a long hold of the stand-in's lock)
    // and forgotten once available.
    let mut pending: Vec<(&str, String)> = Vec::with_capacity(services + databases);
    for app in &apps {
        let name = app["metadata"]["name"].as_str().unwrap_or_default();
        for (list, plural) in [("services", "deployments"), ("databases", "statefulsets")] {
            for c in app["spec"][list].as_array().into_iter().flatten() {
                let component = c["name"].as_str().unwrap_or_default();
                pending.push((plural, format!("{name}-{component}")));
            }
        }
    }
    let mut poll_time = Duration::ZERO;
    loop {
        // As for the Applications: in order, up to the first one not available.
        let started = Instant::now();
        let available = pending
            .iter()
            .take_while(|(plural, name)| {
                server
                    .get_object("apps", "v1", plural, Some(NAMESPACE), name)
                    .is_some_and(|o| workload_available(&o, *plural == "statefulsets"))
            })
            .count();
        pending.drain(..available);
        poll_time += started.elapsed();
        if pending.is_empty() {
            break;
        }
        if t0.elapsed() > timeout {
            bail!(
                "baseline: {} of {} Deployments and StatefulSets were not available {timeout:?} after the first apply, e.g. {}",
                pending.len(),
                services + databases,
                pending[0].1
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let bench_cpu = self_cpu() - bench_cpu0;
    let result = Baseline {
        seconds,
        applies_sent_seconds: applies_sent.as_secs_f64(),
        bench_process_cpu_seconds: bench_cpu,
        other_processes_cpu_seconds: (machine_busy_cpu() - machine0 - bench_cpu).max(0.0),
        api: server.stats().into(),
        poll_seconds: poll_time.as_secs_f64(),
    };
    server.shutdown().await;
    eprintln!("[{n}] baseline: {seconds:.2} s");
    if opts.timeline {
        eprintln!("[{n}]   baseline {}", result.api.lock_summary());
    }
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// Machine, report

fn machine(bin: &Path) -> anyhow::Result<Machine> {
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
fn stripped_size(bin: &Path) -> Option<u64> {
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

fn targets(runs: &[Run]) -> Vec<Target> {
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
        t(
            "operator / baseline converge time",
            "<= 1.5",
            r.operator_over_baseline,
            |v| v <= 1.5,
        );
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
        if r.apps >= 1000 {
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

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        Some(_) => "n/a".into(),
        None => "-".into(),
    }
}

fn print_report(report: &Report) {
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
        "mode: {}; {}; {} children per Application; concurrency {}; {}; discovery every {} s",
        s.mode,
        s.namespace_layout,
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

    type Row = (&'static str, Box<dyn Fn(&Run) -> String>, &'static str);
    let rows: Vec<Row> = vec![
        (
            "converge (s)",
            Box::new(|r: &Run| fmt_opt(r.converge.as_ref().map(|c| c.seconds), 2)),
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
            "  API requests",
            Box::new(|r: &Run| fmt_opt(r.baseline.as_ref().map(|b| b.api.requests as f64), 0)),
            "",
        ),
        (
            "  API server busy (s)",
            Box::new(|r: &Run| fmt_opt(r.baseline.as_ref().map(|b| b.api.lock_seconds), 2)),
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
            "<= 1.5",
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
        (
            "operator peak RSS (MiB)",
            Box::new(|r: &Run| fmt_opt(Some(r.operator.peak_rss_mib), 1)),
            "< 100 @1000",
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
            "",
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
    ];
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

async fn run(opts: Opts) -> anyhow::Result<()> {
    if !opts.keelson_bin.is_file() {
        bail!(
            "the operator binary {} does not exist: build it first with `cargo build --release -p keelson` (or pass --keelson-bin PATH)",
            opts.keelson_bin.display()
        );
    }
    let machine = machine(&opts.keelson_bin)?;
    let real = real_cluster_kubeconfig();
    if let Some(p) = &real {
        eprintln!(
            "bench: running against the real cluster of {} (KEELSON_E2E_KUBECONFIG / KUBECONFIG); the baseline and the API request counts need the in-process server and are skipped",
            p.display()
        );
    }
    let workdir = std::env::temp_dir().join(format!("keelson-bench-{}", std::process::id()));
    std::fs::create_dir_all(&workdir)?;
    eprintln!(
        "bench: operator logs and kubeconfigs in {}",
        workdir.display()
    );
    let sample_args = operator_args(
        &OperatorStart {
            bin: &opts.keelson_bin,
            kubeconfig: Path::new(""),
            namespace: if real.is_some() {
                "keelson-bench-<N>-<random>"
            } else {
                NAMESPACE
            },
            resync: 0,
            discovery: DISCOVERY_SECONDS,
            concurrency: opts.concurrency,
            log: Path::new(""),
            env: &[],
        },
        &"127.0.0.1:0".parse()?,
    )
    .into_iter()
    .skip(1)
    .map(|a| match a.split_once('=') {
        Some(("--resync-seconds", _)) => match opts.resync_seconds {
            Some(s) => format!("--resync-seconds={s}"),
            None => "--resync-seconds=max(20,0.12*N)".into(),
        },
        Some(("--admin-addr", _)) => "--admin-addr=127.0.0.1:<free port>".into(),
        _ => a,
    })
    .collect();
    let settings = Settings {
        mode: if real.is_some() {
            "real cluster"
        } else {
            "in-process API server stand-in"
        },
        namespace_layout: "one namespace holding N Applications shop-0..shop-<N-1>",
        children_per_app: children_per_app()?,
        concurrency: opts.concurrency,
        workload_ready_delay_ms: real
            .is_none()
            .then_some(opts.ready_delay.as_millis() as u64),
        drift_edits: opts.drift_edits,
        discovery_seconds: DISCOVERY_SECONDS,
        operator_args: sample_args,
        operator_env: opts
            .operator_env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
    };
    let cx = Ctx {
        opts: &opts,
        workdir: &workdir,
        real: real.as_deref(),
    };
    let mut runs = Vec::new();
    for &n in &opts.apps {
        let started = Instant::now();
        let r = bench_n(&cx, n).await.with_context(|| format!("N={n}"))?;
        eprintln!("[{n}] done in {:.0} s", started.elapsed().as_secs_f64());
        runs.push(r);
    }
    let report = Report {
        targets: targets(&runs),
        machine,
        settings,
        runs,
        bench_process_peak_rss_mib: status_field("self", "VmHWM").unwrap_or(f64::NAN),
    };
    print_report(&report);
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &opts.json {
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("write {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
}
