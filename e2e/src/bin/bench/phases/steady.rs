//! The converged state: a no-op resync, drift repair, and a restart of the operator.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use kube::api::{Patch, PatchParams};
use rand::Rng as _;
use serde_json::{Value, json};

use super::{Ctx, Fresh, converge_timeout};
use crate::{
    cluster::{Cluster, dynamic_api},
    measurement::percentile,
    operator::{OperatorProcess, OperatorStart},
    report::{Drift, Restart, Resync},
    workload::EDITOR_MANAGER,
};

/// Starts a second operator process on the converged state and waits until it has reconciled
/// every Application once and gone quiet.
pub async fn restart_phase(
    cluster: &Cluster,
    n: usize,
    start: &OperatorStart<'_>,
) -> anyhow::Result<Restart> {
    cluster.reset_stats();
    let t0 = Instant::now();
    let mut op = OperatorProcess::start(start)?;
    // Ready once every watch has listed: at 10,000 Applications, 230,000 children in pages.
    let timeout = converge_timeout(n, cluster.server().is_none());
    op.wait_ready(timeout).await?;
    let ready = t0.elapsed();
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
    let restart = Restart {
        ready_seconds: ready.as_secs_f64(),
        reconciled_seconds: changed.as_secs_f64(),
        reconciles: last,
        requests: stats.as_ref().map(|s| s.requests),
        writes: stats.as_ref().map(|s| s.writes),
        peak_rss_mib: usage.peak_rss_mib,
        cpu_seconds: usage.cpu_seconds,
        api: stats.map(Into::into),
    };
    eprintln!(
        "[{n}] restart: ready after {:.2} s, every Application reconciled after {:.2} s, {:?} requests, {:?} writes, peak RSS {:.1} MiB",
        restart.ready_seconds,
        restart.reconciled_seconds,
        restart.requests,
        restart.writes,
        restart.peak_rss_mib
    );
    Ok(restart)
}

/// Waits until neither the operator reconciles nor (in-process) anyone sends a request or a
/// stand-in controller writes for `quiet`; fails after `timeout`. A `/metrics` that does not
/// answer in time (a busy operator, or the stand-in in this process keeping its threads) counts
/// as activity.
pub async fn quiesce(
    op: &mut OperatorProcess,
    cluster: &Cluster,
    quiet: Duration,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let activity = |reconciles: f64| {
        let stats = cluster.server().map(|s| s.stats());
        (
            reconciles,
            stats.as_ref().map(|s| s.requests),
            stats.map(|s| s.controller_writes),
        )
    };
    let mut last = None;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = op.metrics().await.ok().map(|m| activity(m.reconciles));
        if now.is_some() && now == last {
            if since.elapsed() >= quiet {
                return Ok(());
            }
        } else {
            op.check_alive()?;
            last = now;
            since = Instant::now();
        }
        if Instant::now() > deadline {
            bail!(
                "the operator never went quiet for {quiet:?} within {timeout:?}; last (reconciles, requests, stand-in writes): {last:?}"
            );
        }
    }
}

/// Waits for quiet, then measures the next full resync of the unchanged state.
pub async fn resync_phase(
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
    cluster.reset_stats();
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
    let result = Resync {
        resync_seconds: resync,
        window_seconds: window.as_secs_f64(),
        reconciles: m.reconciles,
        requests: stats.as_ref().map(|s| s.requests),
        writes: stats.as_ref().map(|s| s.writes),
        controller_writes: stats.as_ref().map(|s| s.controller_writes),
        operator_cpu_seconds: op.cpu() - cpu0,
        api: stats.map(Into::into),
        note,
    };
    let by_verb = result
        .api
        .as_ref()
        .map(|a| format!(" ({:?})", a.by_verb))
        .unwrap_or_default();
    eprintln!(
        "[{n}] resync: {} reconciles, {:?} requests{by_verb}, {:?} writes in {:.1} s",
        result.reconciles, result.requests, result.writes, result.window_seconds
    );
    Ok(result)
}

/// Hand edits of a random child Deployment's image (`--drift-edits`), one at a time, each timed
/// until the operator has restored it. `sample` is the Application the shops were made from
/// (service names and images).
pub async fn drift_phase(
    cx: &Ctx<'_>,
    op: &mut OperatorProcess,
    fresh: &Fresh,
    n: usize,
    sample: &Value,
) -> anyhow::Result<Drift> {
    let Fresh {
        cluster,
        client,
        ns,
    } = fresh;
    let edits = cx.opts.drift_edits;
    // The pause after each repair: the stand-in's workload delay and the status write.
    let gap = cx.opts.ready_delay() + Duration::from_millis(20);
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
        let obj = cluster
            .get_deployment(&api, ns, &name)
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
            let o = cluster.get_deployment(&api, ns, &name).await?;
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
    let drift = Drift {
        edits,
        poll_interval_ms: poll.as_secs_f64() * 1000.0,
        p50_ms: percentile(&times, 0.50),
        p90_ms: percentile(&times, 0.90),
        p99_ms: percentile(&times, 0.99),
        max_ms: times.last().copied().unwrap_or(f64::NAN),
        mean_ms: mean,
        operator_cpu_seconds: op.cpu() - cpu0,
        drift_repairs_metric: m.drift_repairs,
    };
    eprintln!(
        "[{n}] drift: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        drift.p50_ms, drift.p99_ms, drift.max_ms
    );
    Ok(drift)
}
