//! Convergence: N Applications applied, until the operator has reconciled every one.

use std::time::{Duration, Instant};

use anyhow::bail;
use kube::Client;
use serde_json::Value;

use super::{Ctx, Fresh, converge_timeout};
use crate::{
    cluster::{Cluster, NAMESPACE},
    measurement::{machine_busy_cpu, self_cpu, status_field},
    operator::{OperatorProcess, Usage},
    report::{ApiCounts, Converge},
    workload::{app_applied, app_ready, apply_apps, brief_status, name_of, shop_apps},
};

/// The Applications not yet done (Ready, or observed). In-process they are checked one
/// `get_object` at a time, so a check never holds the stand-in's lock for long, and forgotten
/// once done; a real cluster is listed.
pub struct PendingApps {
    names: Vec<String>,
    done: fn(&Value) -> bool,
    pub poll_time: Duration,
}

impl PendingApps {
    pub fn new(apps: &[Value], done: fn(&Value) -> bool) -> Self {
        PendingApps {
            names: apps.iter().map(|a| name_of(a).to_string()).collect(),
            done,
            poll_time: Duration::ZERO,
        }
    }

    /// Checks again; returns how many are still pending.
    ///
    /// In-process, the check walks the pending Applications in order and stops at the first
    /// that is not done: readiness does not go back during convergence, so the walk only has
    /// to reach the end once every Application is done, and the whole convergence costs about
    /// one `get_object` per Application plus one per poll.
    pub async fn check(
        &mut self,
        cluster: &Cluster,
        client: &Client,
        ns: &str,
    ) -> anyhow::Result<usize> {
        let started = Instant::now();
        match cluster {
            Cluster::InProcess(s) => {
                let done = self
                    .names
                    .iter()
                    .take_while(|name| {
                        s.get_object("keelson.dev", "v1alpha1", "applications", Some(ns), name)
                            .is_some_and(|a| (self.done)(&a))
                    })
                    .count();
                self.names.drain(..done);
            }
            Cluster::Real(_) => {
                let listed = cluster
                    .list(client, ns, ("keelson.dev/v1alpha1", "Application"))
                    .await?;
                let done: std::collections::HashSet<&str> = listed
                    .iter()
                    .filter(|a| (self.done)(a))
                    .map(name_of)
                    .collect();
                self.names.retain(|n| !done.contains(n.as_str()));
            }
        }
        self.poll_time += started.elapsed();
        Ok(self.names.len())
    }

    /// The status of one pending Application, for an error message.
    pub async fn example(&self, cluster: &Cluster, client: &Client, ns: &str) -> String {
        let Some(name) = self.names.first() else {
            return String::new();
        };
        cluster
            .get_app(client, ns, name)
            .await
            .map(|a| brief_status(&a))
            .unwrap_or_else(|| format!("{name} does not exist"))
    }
}

/// `--timeline`: how far the convergence is.
fn timeline_line(cluster: &Cluster, n: usize, apps: &[Value], at: Duration) {
    let Some(server) = cluster.server() else {
        return;
    };
    let (mut exists, mut reconciled, mut ready) = (0, 0, 0);
    for name in apps.iter().map(name_of) {
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

/// How one wait for the Applications goes.
pub struct Wait<'a> {
    pub cluster: &'a Cluster,
    pub client: &'a Client,
    pub ns: &'a str,
    pub apps: &'a [Value],
    pub t0: Instant,
    pub poll: Duration,
    pub timeout: Duration,
    pub timeline: bool,
}

impl Wait<'_> {
    /// Polls until no Application is pending: the time since `t0`, or `None` after the timeout.
    /// Every 10 s it says how far it is and checks that the operator still runs.
    pub async fn until(
        &self,
        pending: &mut PendingApps,
        op: &mut OperatorProcess,
    ) -> anyhow::Result<Option<Duration>> {
        let n = self.apps.len();
        let (mut next_line, mut last_report) = (Duration::from_secs(1), Instant::now());
        loop {
            if self.timeline && self.t0.elapsed() >= next_line {
                next_line += Duration::from_secs(1);
                timeline_line(self.cluster, n, self.apps, self.t0.elapsed());
            }
            let left = pending.check(self.cluster, self.client, self.ns).await?;
            if left == 0 {
                return Ok(Some(self.t0.elapsed()));
            }
            if self.t0.elapsed() > self.timeout {
                return Ok(None);
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "[{n}]   {} of {n} done after {:.0} s",
                    n - left,
                    self.t0.elapsed().as_secs_f64()
                );
                last_report = Instant::now();
                op.check_alive()?;
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// How often convergence is checked: the stand-in is read without a request, a real cluster is
/// listed.
pub fn poll_interval(cluster: &Cluster) -> Duration {
    if cluster.is_real() {
        Duration::from_millis(500)
    } else {
        Duration::from_millis(100)
    }
}

/// The clock of a convergence, up to its end point: in-process every Application Ready for its
/// generation; on a real cluster every Application's status observed for its generation saying
/// every child was applied (`Degraded=False`), then Ready separately, when it comes within
/// `--ready-timeout-seconds`.
struct Clock {
    end: Duration,
    ready: Option<Duration>,
    poll_time: Duration,
}

async fn converge_clock(
    cx: &Ctx<'_>,
    op: &mut OperatorProcess,
    wait: Wait<'_>,
) -> anyhow::Result<Clock> {
    let (cluster, client, ns, n) = (wait.cluster, wait.client, wait.ns, wait.apps.len());
    let end_point: fn(&Value) -> bool = if cluster.is_real() {
        app_applied
    } else {
        app_ready
    };
    let mut pending = PendingApps::new(wait.apps, end_point);
    let Some(end) = wait.until(&mut pending, op).await? else {
        let example = pending.example(cluster, client, ns).await;
        bail!(
            "converge: not every one of {n} Applications was {} {:?} after the first apply; e.g. {example}; {}",
            if cluster.is_real() {
                "reconciled (a status for its generation with Degraded=False)"
            } else {
                "Ready for its generation"
            },
            wait.timeout,
            op.log_tail()
        );
    };
    let mut poll_time = pending.poll_time;
    let ready = if cluster.is_real() {
        eprintln!(
            "[{n}] every Application reconciled after {:.2} s; waiting up to {:?} for Ready",
            end.as_secs_f64(),
            cx.opts.ready_timeout()
        );
        let mut ready = PendingApps::new(wait.apps, app_ready);
        let at = Wait {
            timeout: end + cx.opts.ready_timeout(),
            ..wait
        }
        .until(&mut ready, op)
        .await?;
        poll_time += ready.poll_time;
        if at.is_none() {
            let example = ready.example(cluster, client, ns).await;
            eprintln!("[{n}] not every Application was Ready in time; e.g. {example}");
        }
        at
    } else {
        Some(end)
    };
    Ok(Clock {
        end,
        ready,
        poll_time,
    })
}

/// The first round's convergence, on an operator already started and ready at `t_ready`, with
/// its CPU, counters and the API server's request counts.
pub async fn converge_phase(
    cx: &Ctx<'_>,
    op: &mut OperatorProcess,
    fresh: &Fresh,
    n: usize,
    t_ready: Instant,
) -> anyhow::Result<(Converge, Vec<Value>)> {
    let Fresh {
        cluster,
        client,
        ns,
    } = fresh;
    let resync = cx.opts.resync_for(n);
    let apps = shop_apps(n, ns, cluster.is_real())?;
    let m0 = op.metrics().await?;
    let op_cpu0 = op.cpu();
    let bench_cpu0 = self_cpu();
    let machine0 = machine_busy_cpu();
    cluster.reset_stats();
    let t0 = Instant::now();
    apply_apps(client, ns, &apps, cx.opts.concurrency()).await?;
    let applies_sent = t0.elapsed();
    eprintln!(
        "[{n}] all applies sent after {:.2} s; waiting for the operator",
        applies_sent.as_secs_f64()
    );
    let clock = converge_clock(
        cx,
        op,
        Wait {
            cluster,
            client,
            ns,
            apps: &apps,
            t0,
            poll: poll_interval(cluster),
            timeout: converge_timeout(n, cluster.is_real()),
            timeline: false,
        },
    )
    .await?;
    let (op_cpu, bench_cpu) = (op.cpu() - op_cpu0, self_cpu() - bench_cpu0);
    let other = machine_busy_cpu() - machine0 - op_cpu - bench_cpu;
    let m1 = op.metrics().await?;
    let converge = Converge {
        seconds: clock.end.as_secs_f64(),
        ready_seconds: clock.ready.map(|d| d.as_secs_f64()),
        applies_sent_seconds: applies_sent.as_secs_f64(),
        operator_cpu_seconds: op_cpu,
        bench_process_cpu_seconds: bench_cpu,
        other_processes_cpu_seconds: other.max(0.0),
        resync_ticks_during: ((t0 + clock.end).duration_since(t_ready).as_secs_f64()
            / resync as f64)
            .floor() as u64,
        operator: m1.since(&m0),
        api: cluster.server().map(|s| s.stats().into()),
        poll_seconds: clock.poll_time.as_secs_f64(),
    };
    op.peak_rss_after_converge = status_field(&op.pid, "VmHWM").unwrap_or(f64::NAN);
    eprintln!(
        "[{n}] converged in {:.2} s ({} reconciles, operator CPU {:.1} s, bench process CPU {:.1} s)",
        converge.seconds,
        converge.operator.reconciles,
        converge.operator_cpu_seconds,
        converge.bench_process_cpu_seconds
    );
    Ok((converge, apps))
}

/// One more measurement of convergence alone: a fresh API server (real cluster: a fresh
/// namespace), a fresh operator process, N Applications applied, until the end point. The
/// seconds, and the operator's memory and CPU from its start until then.
pub async fn converge_round(cx: &Ctx<'_>, n: usize, round: usize) -> anyhow::Result<(f64, Usage)> {
    let fresh = Fresh::new(cx, n, "op").await?;
    let result = converge_round_on(cx, &fresh, n, round).await;
    fresh.release().await;
    result
}

async fn converge_round_on(
    cx: &Ctx<'_>,
    fresh: &Fresh,
    n: usize,
    round: usize,
) -> anyhow::Result<(f64, Usage)> {
    let Fresh {
        cluster,
        client,
        ns,
    } = fresh;
    let kubeconfig = cluster.kubeconfig(cx.workdir, &format!("kubeconfig-{n}-round-{round}"))?;
    let log = cx.workdir.join(format!("operator-{n}-round-{round}.log"));
    let mut op = OperatorProcess::start(&cx.operator_start(n, &kubeconfig, ns, &log))?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let apps = shop_apps(n, ns, cluster.is_real())?;
    cluster.reset_stats();
    let t0 = Instant::now();
    apply_apps(client, ns, &apps, cx.opts.concurrency()).await?;
    let wait = Wait {
        cluster,
        client,
        ns,
        apps: &apps,
        t0,
        poll: poll_interval(cluster),
        timeout: converge_timeout(n, cluster.is_real()),
        timeline: cx.opts.timeline,
    };
    let mut pending = PendingApps::new(
        &apps,
        if cluster.is_real() {
            app_applied
        } else {
            app_ready
        },
    );
    let result = match wait.until(&mut pending, &mut op).await {
        Ok(Some(end)) => {
            if cx.opts.timeline
                && let Some(s) = cluster.server()
            {
                let api: ApiCounts = s.stats().into();
                eprintln!("[{n}]   converge {}", api.lock_summary());
            }
            op.usage().map(|u| (end.as_secs_f64(), u))
        }
        Ok(None) => Err(anyhow::anyhow!(
            "converge round {round}: not every Application was done after {:?}; e.g. {}; {}",
            wait.timeout,
            pending.example(cluster, client, ns).await,
            op.log_tail()
        )),
        Err(e) => Err(e),
    };
    op.stop().await;
    result
}
