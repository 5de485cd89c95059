//! Keelson's scale benchmark.
//!
//! Runs the `keelson` binary as a separate process (so its own peak RSS and CPU time can be read
//! from `/proc`) against the in-process API server stand-in, or against a real cluster when
//! `KEELSON_E2E_KUBECONFIG` or `KUBECONFIG` names one, and measures for each N:
//!
//! 1. converge: N copies of `samples/shop.yaml` (`shop-0` .. `shop-<N-1>`, all in one namespace)
//!    applied by a client, from the first apply until every Application is `Ready=True` for its
//!    current generation (real cluster: until every Application has a status for its
//!    generation, and Ready separately);
//! 2. baseline: a bare client server-side applies the same Applications and the children
//!    `keelson::render::render_values` builds for them (owned by the stored Application), with
//!    the same parallelism, on a fresh stand-in or in a second namespace of the real cluster,
//!    and waits for the same end point;
//! 3. no-op resync: API requests and writes during one full resync of the converged state;
//! 4. drift repair: hand edits of a random child Deployment's image, time until restored;
//! 5. pod reasons (in-process only): the stand-in runs Pods, K Applications get one service's
//!    image from an unresolvable registry, until each one's Ready condition names the pods'
//!    reason; the operator's requests while they stay stuck; the images put back;
//! 6. the operator's peak RSS and CPU seconds, and a restart on the converged state.
//!
//! `cargo run --release -p e2e --bin bench -- --help` prints the options.

/// The in-process API server allocates and frees a copy of every object it touches; jemalloc
/// (as in the operator) keeps that cost lower and steadier than the C library's allocator.
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod cluster;
mod measurement;
mod operator;
mod options;
mod phases;
mod report;
mod workload;

use std::{path::Path, process::ExitCode, time::Instant};

use anyhow::{Context as _, bail};
use clap::Parser as _;
use e2e::harness::real_cluster_kubeconfig;

use crate::{
    cluster::{Cluster, NAMESPACE, STAND_IN_CAPABILITIES, capabilities},
    measurement::status_field,
    operator::OperatorStart,
    options::Opts,
    phases::{Ctx, DISCOVERY_SECONDS, bench_n},
    report::{Report, Settings, machine, print_report, targets},
    workload::children_per_app,
};

fn main() -> ExitCode {
    let opts = Opts::parse();
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

/// The operator's command line as the report shows it.
fn sample_args(opts: &Opts, keelson_bin: &Path, real: bool) -> anyhow::Result<Vec<String>> {
    let start = OperatorStart {
        bin: keelson_bin,
        kubeconfig: Path::new(""),
        namespace: if real {
            "keelson-bench-<N>-op-<random>"
        } else {
            NAMESPACE
        },
        resync: 0,
        discovery: DISCOVERY_SECONDS,
        concurrency: opts.concurrency(),
        log: Path::new(""),
        env: &[],
    };
    Ok(start
        .args(&"127.0.0.1:0".parse()?)
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
        .collect())
}

async fn run(opts: Opts) -> anyhow::Result<()> {
    let keelson_bin = opts.keelson_bin();
    if !keelson_bin.is_file() {
        bail!(
            "the operator binary {} does not exist: build it first with `cargo build --release -p keelson` (or pass --keelson-bin PATH)",
            keelson_bin.display()
        );
    }
    let machine = machine(&keelson_bin)?;
    let real = real_cluster_kubeconfig();
    let caps = match &real {
        Some(p) => {
            eprintln!(
                "bench: running against the real cluster of {} (KEELSON_E2E_KUBECONFIG / KUBECONFIG); the baseline runs in a second namespace; API request counts need the in-process server and are skipped",
                p.display()
            );
            let (cluster, client) = Cluster::real(p).await?;
            capabilities(&cluster, &client).await?
        }
        None => STAND_IN_CAPABILITIES,
    };
    let workdir = std::env::temp_dir().join(format!("keelson-bench-{}", std::process::id()));
    std::fs::create_dir_all(&workdir)?;
    eprintln!(
        "bench: operator logs and kubeconfigs in {}",
        workdir.display()
    );
    let settings = Settings {
        mode: if real.is_some() {
            "real cluster"
        } else {
            "in-process API server stand-in"
        },
        namespace_layout: if real.is_some() {
            "per round one namespace holding N Applications shop-0..shop-<N-1> for the operator, and a second one for the bare client"
        } else {
            "one namespace holding N Applications shop-0..shop-<N-1>"
        },
        end_point: if real.is_some() {
            "every object written and every Application's status observed for its generation with Degraded=False (Ready reported separately)"
        } else {
            "every Application Ready (baseline: every workload available)"
        },
        children_per_app: children_per_app(caps)?,
        concurrency: opts.concurrency(),
        workload_ready_delay_ms: real
            .is_none()
            .then_some(opts.ready_delay().as_millis() as u64),
        drift_edits: opts.drift_edits,
        discovery_seconds: DISCOVERY_SECONDS,
        operator_args: sample_args(&opts, &keelson_bin, real.is_some())?,
        operator_env: opts
            .operator_env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
    };
    let cx = Ctx {
        opts: &opts,
        keelson_bin: &keelson_bin,
        workdir: &workdir,
        real: real.as_deref(),
    };
    let mut runs = Vec::new();
    for n in opts.apps() {
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
