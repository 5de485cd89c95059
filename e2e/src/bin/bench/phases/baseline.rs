//! The baseline: a bare client writes what the operator writes, with the same parallelism, on
//! the same kind of server, and waits for the same end point.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _, stream};
use keelson::build::ApiCapabilities;
use kube::{
    Client, ResourceExt as _,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use super::{Ctx, Fresh, converge::PendingApps, converge_timeout};
use crate::{
    cluster::{Cluster, apps_api, capabilities, dynamic_api},
    measurement::{machine_busy_cpu, self_cpu},
    report::Baseline,
    workload::{
        BASELINE_MANAGER, USER_MANAGER, app_applied, children, children_per_app, name_of,
        shop_apps, workload_available, workloads,
    },
};

/// One baseline measurement in a fresh place: in-process a fresh API server; on a real cluster
/// a second namespace beside the operator's (deleted afterwards).
pub async fn baseline(cx: &Ctx<'_>, n: usize) -> anyhow::Result<Baseline> {
    let fresh = Fresh::new(cx, n, "bare").await?;
    let result = baseline_on(cx, &fresh, n).await;
    fresh.release().await;
    result
}

async fn baseline_on(cx: &Ctx<'_>, fresh: &Fresh, n: usize) -> anyhow::Result<Baseline> {
    let Fresh {
        cluster,
        client,
        ns,
    } = fresh;
    let real = cluster.is_real();
    let apps = shop_apps(n, ns, real)?;
    let caps = capabilities(cluster, client).await?;
    let per_app = children_per_app(caps)?;
    eprintln!("[{n}] baseline: a bare client applies {n} Applications and {per_app} children each");
    let bench_cpu0 = self_cpu();
    let machine0 = machine_busy_cpu();
    cluster.reset_stats();
    let t0 = Instant::now();
    write_all(cx, client, ns, &apps, caps, real).await?;
    let applies_sent = t0.elapsed();
    let timeout = converge_timeout(n, real);
    let mut poll_time = Duration::ZERO;
    let (end, ready) = if real {
        // Every object was written when the applies returned; the end point, as for the
        // operator, is every Application's status observed for its generation, saying so.
        let mut pending = PendingApps::new(&apps, app_applied);
        while pending.check(cluster, client, ns).await? > 0 {
            if t0.elapsed() > timeout {
                bail!(
                    "baseline: not every Application's status was observed {timeout:?} after the first apply, e.g. {}",
                    pending.example(cluster, client, ns).await
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        poll_time += pending.poll_time;
        let end = t0.elapsed();
        eprintln!(
            "[{n}] baseline: everything written after {:.2} s; waiting up to {:?} for the workloads",
            end.as_secs_f64(),
            cx.opts.ready_timeout()
        );
        let ready = workloads_available(
            cluster,
            client,
            ns,
            &apps,
            t0,
            end + cx.opts.ready_timeout(),
            &mut poll_time,
        )
        .await?;
        (end, ready)
    } else {
        let end = workloads_available(cluster, client, ns, &apps, t0, timeout, &mut poll_time)
            .await?
            .with_context(|| {
                format!("baseline: the Deployments and StatefulSets were not available {timeout:?} after the first apply")
            })?;
        (end, Some(end))
    };
    let seconds = end.as_secs_f64();
    let bench_cpu = self_cpu() - bench_cpu0;
    let result = Baseline {
        namespace: ns.clone(),
        seconds,
        ready_seconds: ready.map(|d| d.as_secs_f64()),
        applies_sent_seconds: applies_sent.as_secs_f64(),
        bench_process_cpu_seconds: bench_cpu,
        other_processes_cpu_seconds: (machine_busy_cpu() - machine0 - bench_cpu).max(0.0),
        api: cluster.server().map(|s| s.stats().into()),
        poll_seconds: poll_time.as_secs_f64(),
    };
    eprintln!("[{n}] baseline: {seconds:.2} s");
    if cx.opts.timeline
        && let Some(api) = &result.api
    {
        eprintln!("[{n}]   baseline {}", api.lock_summary());
    }
    Ok(result)
}

/// What the operator writes, written by a bare client, `--concurrency` Applications at a time:
/// each Application (as a user would), then its rendered children owned by the stored
/// Application's uid, in the order Keelson renders them. On a real cluster also the status the
/// operator writes after its first complete apply (the observed generation, `Degraded=False`),
/// so both end at the same point.
async fn write_all(
    cx: &Ctx<'_>,
    client: &Client,
    ns: &str,
    apps: &[Value],
    caps: ApiCapabilities,
    with_status: bool,
) -> anyhow::Result<()> {
    let api = apps_api(client, ns);
    stream::iter(apps)
        .map(|app| {
            let api = api.clone();
            async move {
                let name = name_of(app);
                let stored = api
                    .patch(
                        name,
                        &PatchParams::apply(USER_MANAGER).force(),
                        &Patch::Apply(app),
                    )
                    .await
                    .with_context(|| format!("baseline: apply Application {name}"))?;
                for c in &children(app, stored.uid(), caps)? {
                    let (av, kind, cname) = (
                        c["apiVersion"].as_str().unwrap_or_default(),
                        c["kind"].as_str().unwrap_or_default(),
                        name_of(c),
                    );
                    dynamic_api(client, ns, av, kind)
                        .patch(
                            cname,
                            &PatchParams::apply(BASELINE_MANAGER).force(),
                            &Patch::Apply(c),
                        )
                        .await
                        .with_context(|| format!("baseline: apply {kind} {cname}"))?;
                }
                if with_status {
                    let status = json!({
                        "apiVersion": "keelson.dev/v1alpha1",
                        "kind": "Application",
                        "status": {
                            "observedGeneration": stored.metadata.generation,
                            "conditions": [{
                                "type": "Degraded",
                                "status": "False",
                                "reason": "AsExpected",
                                "message": "every child was applied",
                                "lastTransitionTime": chrono::Utc::now()
                                    .format("%Y-%m-%dT%H:%M:%SZ")
                                    .to_string(),
                            }],
                        },
                    });
                    api.patch_status(
                        name,
                        &PatchParams::apply(BASELINE_MANAGER).force(),
                        &Patch::Apply(&status),
                    )
                    .await
                    .with_context(|| format!("baseline: write the status of Application {name}"))?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(cx.opts.concurrency())
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Waits until every Deployment and StatefulSet of the Applications is available: the time
/// since `t0`, or `None` after `timeout`. In-process each is checked one object at a time
/// (never a long hold of the stand-in's lock), in order up to the first one not available, and
/// forgotten once available; a real cluster is listed.
async fn workloads_available(
    cluster: &Cluster,
    client: &Client,
    ns: &str,
    apps: &[Value],
    t0: Instant,
    timeout: Duration,
    poll_time: &mut Duration,
) -> anyhow::Result<Option<Duration>> {
    let mut pending = workloads(apps);
    loop {
        let started = Instant::now();
        match cluster {
            Cluster::InProcess(server) => {
                let available = pending
                    .iter()
                    .take_while(|(plural, name)| {
                        server
                            .get_object("apps", "v1", plural, Some(ns), name)
                            .is_some_and(|o| workload_available(&o, *plural == "statefulsets"))
                    })
                    .count();
                pending.drain(..available);
            }
            Cluster::Real(_) => {
                let mut available = std::collections::HashSet::new();
                for (plural, kind) in [
                    ("deployments", "Deployment"),
                    ("statefulsets", "StatefulSet"),
                ] {
                    for o in cluster.list(client, ns, ("apps/v1", kind)).await? {
                        if workload_available(&o, plural == "statefulsets") {
                            available.insert((plural, name_of(&o).to_string()));
                        }
                    }
                }
                pending.retain(|w| !available.contains(w));
            }
        }
        *poll_time += started.elapsed();
        if pending.is_empty() {
            return Ok(Some(t0.elapsed()));
        }
        if t0.elapsed() > timeout {
            eprintln!(
                "baseline: {} Deployments and StatefulSets not available after {timeout:?}, e.g. {}",
                pending.len(),
                pending[0].1
            );
            return Ok(None);
        }
        tokio::time::sleep(if cluster.is_real() {
            Duration::from_millis(500)
        } else {
            Duration::from_millis(100)
        })
        .await;
    }
}
