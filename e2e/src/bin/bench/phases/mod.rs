//! The benchmark's phases for one N: converge, baseline (in rounds), no-op resync, drift
//! repair, pod reasons (in-process), restart.

mod baseline;
mod converge;
mod steady;
mod stuck;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use kube::Client;

use crate::{
    cluster::{Cluster, NAMESPACE, create_namespace, delete_namespace, install_crds},
    measurement::self_cpu,
    operator::{OperatorProcess, OperatorStart},
    options::Opts,
    report::{Rounds, Run, Stuck},
    workload::create_sample_inputs,
};

/// The operator's `--discovery-seconds`: no rediscovery during a run.
pub const DISCOVERY_SECONDS: u64 = 3600;

/// How long a real cluster may take to delete a namespace (its pods stopping) before the next
/// measurement starts anyway.
const NAMESPACE_DELETION: Duration = Duration::from_secs(600);

/// Seconds a phase may take before the benchmark gives up.
fn converge_timeout(n: usize, real: bool) -> Duration {
    let per_app = if real { 2.0 } else { 0.5 };
    Duration::from_secs_f64(120.0 + per_app * n as f64)
}

/// What every phase needs.
pub struct Ctx<'a> {
    pub opts: &'a Opts,
    /// The operator binary.
    pub keelson_bin: &'a Path,
    /// Operator logs and kubeconfigs.
    pub workdir: &'a Path,
    /// The kubeconfig of the real cluster, if the benchmark runs against one.
    pub real: Option<&'a Path>,
}

impl Ctx<'_> {
    /// How the operator is started for N Applications.
    pub fn operator_start<'a>(
        &'a self,
        n: usize,
        kubeconfig: &'a Path,
        ns: &'a str,
        log: &'a Path,
    ) -> OperatorStart<'a> {
        OperatorStart {
            bin: self.keelson_bin,
            kubeconfig,
            namespace: ns,
            resync: self.opts.resync_for(n),
            discovery: DISCOVERY_SECONDS,
            concurrency: self.opts.concurrency(),
            log,
            env: &self.opts.operator_env,
        }
    }
}

/// A place for one measurement: in-process a fresh API server with the CRDs and the `bench`
/// namespace; on a real cluster a fresh namespace of its own.
pub struct Fresh {
    pub cluster: Cluster,
    pub client: Client,
    pub ns: String,
}

impl Fresh {
    /// `role` tells the namespaces of a real cluster apart (`op`, `bare`).
    pub async fn new(cx: &Ctx<'_>, n: usize, role: &str) -> anyhow::Result<Fresh> {
        let (cluster, client, ns) = match cx.real {
            Some(path) => {
                let (cluster, client) = Cluster::real(path).await?;
                let ns = format!(
                    "keelson-bench-{n}-{role}-{:06x}",
                    rand::random::<u32>() & 0xffffff
                );
                (cluster, client, ns)
            }
            None => {
                let (cluster, client) = Cluster::in_process(cx.opts).await?;
                (cluster, client, NAMESPACE.to_string())
            }
        };
        // A real cluster keeps the optional APIs it has; Keelson's CRD is applied (unchanged
        // after the first time).
        install_crds(&client, !cluster.is_real()).await?;
        create_namespace(&client, &ns).await?;
        // What the sample's teams create before applying it (its services' Secret).
        create_sample_inputs(&client, &ns, cluster.is_real()).await?;
        Ok(Fresh {
            cluster,
            client,
            ns,
        })
    }

    /// In-process: stops the server. Real cluster: deletes the namespace and waits until it is
    /// gone, so that its pods do not compete with the next measurement.
    pub async fn release(self) {
        if self.cluster.is_real() {
            delete_namespace(&self.client, &self.ns, NAMESPACE_DELETION).await;
        }
        self.cluster.shutdown().await;
    }
}

/// Every phase for N Applications.
pub async fn bench_n(cx: &Ctx<'_>, n: usize) -> anyhow::Result<Run> {
    let bench_cpu0 = self_cpu();
    let mut run = if cx.opts.converge_only {
        converge_rounds_only(cx, n).await?
    } else {
        full_run(cx, n).await?
    };
    run.bench_process_cpu_seconds = self_cpu() - bench_cpu0;
    Ok(run)
}

/// The operator's phases on one fresh place, then the baseline, then the further rounds.
async fn full_run(cx: &Ctx<'_>, n: usize) -> anyhow::Result<Run> {
    let fresh = Fresh::new(cx, n, "op").await?;
    let result = operator_phases(cx, n, &fresh).await;
    fresh.release().await;
    let mut run = result?;
    if cx.real.is_some() {
        run.skipped.push(
            "API request and write counts (a real cluster's are not seen), drift polling at 1 ms (a real cluster is polled with GET every 10 ms)"
                .into(),
        );
    }
    let b = baseline::baseline(cx, n).await?;
    let converge = run
        .converge
        .as_ref()
        .expect("the full run measures convergence");
    if let (Some(c), Some(r)) = (converge.ready_seconds, b.ready_seconds)
        && cx.real.is_some()
    {
        run.ready_over_baseline = Some(c / r);
    }
    let mut converge = vec![converge.seconds];
    let mut base = vec![b.seconds];
    for round in 2..=cx.opts.rounds(cx.real.is_some()) {
        let (c, _) = converge::converge_round(cx, n, round).await?;
        let b = baseline::baseline(cx, n).await?.seconds;
        eprintln!("[{n}] round {round}: converge {c:.2} s, baseline {b:.2} s");
        converge.push(c);
        base.push(b);
    }
    let rounds = Rounds::new(converge, base);
    run.operator_over_baseline = Some(rounds.ratio());
    run.rounds = Some(rounds);
    run.baseline = Some(b);
    Ok(run)
}

/// `--converge-only`: every round a convergence and a baseline, nothing else.
async fn converge_rounds_only(cx: &Ctx<'_>, n: usize) -> anyhow::Result<Run> {
    let (mut converge, mut base, mut usage) = (Vec::new(), Vec::new(), None);
    let mut baseline_first = None;
    for round in 1..=cx.opts.rounds(cx.real.is_some()) {
        let (c, u) = converge::converge_round(cx, n, round).await?;
        let b = baseline::baseline(cx, n).await?;
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
        ready_over_baseline: None,
        rounds: Some(rounds),
        resync: None,
        drift: None,
        stuck: None,
        operator: usage.unwrap_or_default(),
        restart: None,
        bench_process_cpu_seconds: 0.0,
        skipped: vec!["resync, drift, pod reasons and restart (--converge-only)".into()],
    })
}

/// One operator process through converge, resync, drift and (in-process) pod reasons, then a
/// second one restarted on the converged state.
async fn operator_phases(cx: &Ctx<'_>, n: usize, fresh: &Fresh) -> anyhow::Result<Run> {
    let (cluster, ns) = (&fresh.cluster, fresh.ns.as_str());
    let resync = cx.opts.resync_for(n);
    let kubeconfig = cluster.kubeconfig(cx.workdir, &format!("kubeconfig-{n}"))?;
    let log = cx.workdir.join(format!("operator-{n}.log"));
    let mut op = OperatorProcess::start(&cx.operator_start(n, &kubeconfig, ns, &log))?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let t_ready = Instant::now();
    eprintln!(
        "[{n}] operator pid {} ready (resync every {resync} s); applying {n} Applications",
        op.pid
    );

    let (converge, apps) = converge::converge_phase(cx, &mut op, fresh, n, t_ready).await?;
    let resync = steady::resync_phase(&mut op, cluster, n, resync, t_ready).await?;
    let drift = if cx.opts.drift_edits > 0 {
        Some(steady::drift_phase(cx, &mut op, fresh, n, &apps[0]).await?)
    } else {
        None
    };
    let (stuck, skipped) = stuck_or_why_not(cx, &mut op, fresh, &apps).await?;

    op.check_alive()?;
    let usage = op.usage()?;
    op.stop().await;

    let restart_log = cx.workdir.join(format!("operator-{n}-restart.log"));
    let restart = steady::restart_phase(
        cluster,
        n,
        &cx.operator_start(n, &kubeconfig, ns, &restart_log),
    )
    .await?;
    Ok(Run {
        apps: n,
        namespace: ns.to_string(),
        operator_log: log.display().to_string(),
        converge: Some(converge),
        baseline: None,
        operator_over_baseline: None,
        ready_over_baseline: None,
        rounds: None,
        resync: Some(resync),
        drift,
        stuck,
        operator: usage,
        restart: Some(restart),
        bench_process_cpu_seconds: 0.0,
        skipped,
    })
}

/// The pod-reasons phase, or why it is skipped.
async fn stuck_or_why_not(
    cx: &Ctx<'_>,
    op: &mut OperatorProcess,
    fresh: &Fresh,
    apps: &[serde_json::Value],
) -> anyhow::Result<(Option<Stuck>, Vec<String>)> {
    let why_not = if fresh.cluster.is_real() {
        "pod reasons (it turns on the in-process server's stand-in Pods and reads its request counts; a real cluster's kubelets and server are not steered or seen)"
    } else if cx.opts.stuck_apps_for(apps.len()) == 0 {
        "pod reasons (--stuck-apps 0)"
    } else {
        return Ok((
            Some(stuck::stuck_phase(cx, op, fresh, apps).await?),
            Vec::new(),
        ));
    };
    Ok((None, vec![why_not.into()]))
}
