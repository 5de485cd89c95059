//! Pod reasons (in-process only): the stand-in runs Pods, K Applications get one service's image
//! from a registry that cannot resolve, and the clock runs until each one's Ready condition names
//! the pods' reason; then what keeping them stuck costs, and the way back.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use e2e::apiserver::ApiServer;
use serde_json::{Value, json};

use super::{
    Ctx, Fresh,
    converge::{PendingApps, Wait, poll_interval},
    converge_timeout,
    steady::quiesce,
};
use crate::{
    measurement::{percentile, status_field},
    operator::OperatorProcess,
    report::{Hold, Stuck},
    workload::{app_observed, app_ready, apply_apps, brief_status, condition, name_of},
};

/// How long the stuck Applications are held while the operator's requests are counted.
pub const HOLD: Duration = Duration::from_secs(30);

/// How long everything must be quiet (operator, clients, stand-in controllers) to count as
/// settled.
const QUIET: Duration = Duration::from_secs(2);

/// How long an Application may take to name the reason: the operator's 10 s grace period and
/// its 10 s cache, with room for a busy machine (at 1,000 Applications the stand-in runs 8,000
/// Pods on the same cores).
const NAMED_TIMEOUT: Duration = Duration::from_secs(240);

/// The kubelet's waiting reasons for an image that cannot be pulled.
const PULL_REASONS: [&str; 2] = ["ImagePullBackOff", "ErrImagePull"];

/// The whole phase on the converged state of `apps` (the Applications as applied).
pub async fn stuck_phase(
    cx: &Ctx<'_>,
    op: &mut OperatorProcess,
    fresh: &Fresh,
    apps: &[Value],
) -> anyhow::Result<Stuck> {
    let n = apps.len();
    let server = fresh
        .cluster
        .server()
        .context("the pod-reasons phase needs the in-process API server")?;
    let peak_rss_before_mib = status_field(&op.pid, "VmHWM")?;
    server.set_pods(true);
    let pods_on = settle(op, fresh, apps).await?;
    eprintln!(
        "[{n}] pod reasons: Pods on, every Application Ready again after {:.1} s",
        pods_on.as_secs_f64()
    );
    let chosen: Vec<Value> = spread(n, cx.opts.stuck_apps_for(n))
        .into_iter()
        .map(|i| apps[i].clone())
        .collect();
    let edited = chosen
        .iter()
        .map(with_unpullable_image)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sent = apply_apps(&fresh.client, &fresh.ns, &edited, cx.opts.concurrency()).await?;
    let named = until_named(op, fresh, &edited, &sent).await?;
    let hold = hold(op, server).await?;
    apply_apps(&fresh.client, &fresh.ns, &chosen, cx.opts.concurrency()).await?;
    let restored = settle(op, fresh, apps).await?;
    let stuck = Stuck {
        apps: chosen.len(),
        pods_on_settled_seconds: pods_on.as_secs_f64(),
        named_p50_seconds: percentile(&named, 0.5),
        named_max_seconds: named.last().copied().unwrap_or(f64::NAN),
        restored_seconds: restored.as_secs_f64(),
        peak_rss_before_mib,
        peak_rss_after_mib: status_field(&op.pid, "VmHWM")?,
        hold,
    };
    eprintln!(
        "[{n}] pod reasons: {} stuck, named after p50 {:.1} s / max {:.1} s; {:.0} requests ({:.0} pod lists) per minute; peak RSS {:.1} -> {:.1} MiB",
        stuck.apps,
        stuck.named_p50_seconds,
        stuck.named_max_seconds,
        stuck.hold.requests_per_minute,
        stuck.hold.pod_lists_per_minute,
        stuck.peak_rss_before_mib,
        stuck.peak_rss_after_mib
    );
    Ok(stuck)
}

/// Waits until nothing has happened for [`QUIET`] (the stand-in's Pods started, the operator's
/// status written), then until every Application is Ready for its generation. The time taken.
async fn settle(
    op: &mut OperatorProcess,
    fresh: &Fresh,
    apps: &[Value],
) -> anyhow::Result<Duration> {
    let Fresh {
        cluster,
        client,
        ns,
    } = fresh;
    let t0 = Instant::now();
    let timeout = converge_timeout(apps.len(), cluster.is_real());
    quiesce(op, cluster, QUIET, timeout).await?;
    let wait = Wait {
        cluster,
        client,
        ns,
        apps,
        t0,
        poll: poll_interval(cluster),
        timeout,
        timeline: false,
    };
    let mut pending = PendingApps::new(apps, app_ready);
    match wait.until(&mut pending, op).await? {
        Some(at) => Ok(at),
        None => bail!(
            "pod reasons: not every Application was Ready within {timeout:?} with Pods on; e.g. {}; {}",
            pending.example(cluster, client, ns).await,
            op.log_tail()
        ),
    }
}

/// Polls the edited Applications until each one's Ready condition names the pull failure:
/// the seconds from each apply's answer (`sent`, in the order of `edited`), sorted.
async fn until_named(
    op: &mut OperatorProcess,
    fresh: &Fresh,
    edited: &[Value],
    sent: &[Instant],
) -> anyhow::Result<Vec<f64>> {
    let mut pending: Vec<(&str, Instant)> = edited
        .iter()
        .map(name_of)
        .zip(sent.iter().copied())
        .collect();
    let mut seconds = Vec::with_capacity(pending.len());
    let deadline = Instant::now() + NAMED_TIMEOUT;
    while let Some(&(first, _)) = pending.first() {
        if Instant::now() > deadline {
            let example = fresh
                .cluster
                .get_app(&fresh.client, &fresh.ns, first)
                .await
                .map(|a| brief_status(&a));
            bail!(
                "pod reasons: {} Applications did not name their pods' {PULL_REASONS:?} within {NAMED_TIMEOUT:?}; e.g. {example:?}; {}",
                pending.len(),
                op.log_tail()
            );
        }
        let mut still = Vec::with_capacity(pending.len());
        for (name, at) in pending {
            let app = fresh.cluster.get_app(&fresh.client, &fresh.ns, name).await;
            if app.as_ref().is_some_and(names_pull_failure) {
                seconds.push(at.elapsed().as_secs_f64());
            } else {
                still.push((name, at));
            }
        }
        pending = still;
        op.check_alive()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seconds.sort_by(f64::total_cmp);
    Ok(seconds)
}

/// Holds the stuck state for [`HOLD`] and counts what the operator sends meanwhile (the
/// benchmark reads the stand-in without requests).
async fn hold(op: &mut OperatorProcess, server: &ApiServer) -> anyhow::Result<Hold> {
    server.reset_stats();
    let t0 = Instant::now();
    tokio::time::sleep(HOLD).await;
    op.check_alive()?;
    let stats = server.stats();
    let held = t0.elapsed().as_secs_f64();
    let per_minute = |count: u64| count as f64 * 60.0 / held;
    Ok(Hold {
        seconds: held,
        requests_per_minute: per_minute(stats.requests),
        pod_lists_per_minute: per_minute(
            stats
                .by_verb_resource
                .get("list pods")
                .copied()
                .unwrap_or(0),
        ),
        writes_per_minute: per_minute(stats.writes),
        api: stats.into(),
    })
}

/// `k` of `n` indices, evenly spread (the first is 0).
fn spread(n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    (0..k).map(|j| j * n / k).collect()
}

/// The Application with its first service's image on a registry that never resolves (RFC 2606
/// reserves `.invalid`): its pods wait in `ErrImagePull`, then `ImagePullBackOff`.
fn with_unpullable_image(app: &Value) -> anyhow::Result<Value> {
    let mut edited = app.clone();
    let Some(image) = edited.pointer_mut("/spec/services/0/image") else {
        bail!("pod reasons: {} has no service image", name_of(app));
    };
    *image = json!(unpullable(image.as_str().unwrap_or_default()));
    Ok(edited)
}

/// The same image reference under the registry host `registry.invalid`.
fn unpullable(image: &str) -> String {
    // The first path segment is a registry host when it has a dot or a port, or is localhost
    // (the rule `docker pull` and the kubelet follow).
    let path = match image.split_once('/') {
        Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => path,
        _ => image,
    };
    format!("registry.invalid/{path}")
}

/// Whether an Application's status for its generation says it is not Ready because its pods
/// cannot pull their image.
fn names_pull_failure(app: &Value) -> bool {
    app_observed(app)
        && condition(app, "Ready").is_some_and(|c| {
            let message = c["message"].as_str().unwrap_or_default();
            c["status"] == "False" && PULL_REASONS.iter().any(|r| message.contains(r))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuck_applications_are_spread_over_all() {
        assert_eq!(spread(10, 3), [0, 3, 6]);
        assert_eq!(spread(1000, 100)[..3], [0, 10, 20]);
        assert_eq!(spread(1000, 100).last(), Some(&990));
        assert_eq!(spread(2, 5), [0, 1]);
        assert!(spread(5, 0).is_empty());
    }

    #[test]
    fn images_move_to_an_unresolvable_registry() {
        for (from, to) in [
            (
                "ghcr.io/acme/storefront:2.3.1",
                "registry.invalid/acme/storefront:2.3.1",
            ),
            ("localhost:5000/app:1", "registry.invalid/app:1"),
            ("localhost/app:1", "registry.invalid/app:1"),
            ("nginx:1.27", "registry.invalid/nginx:1.27"),
            ("library/nginx", "registry.invalid/library/nginx"),
        ] {
            assert_eq!(unpullable(from), to);
        }
        let app = json!({"metadata": {"name": "a"},
            "spec": {"services": [{"name": "web", "image": "ghcr.io/acme/web:1"},
                                  {"name": "api", "image": "ghcr.io/acme/api:1"}]}});
        let edited = with_unpullable_image(&app).unwrap();
        assert_eq!(
            edited["spec"]["services"][0]["image"],
            "registry.invalid/acme/web:1"
        );
        assert_eq!(edited["spec"]["services"][1], app["spec"]["services"][1]);
        assert!(with_unpullable_image(&json!({"spec": {}})).is_err());
    }

    #[test]
    fn only_a_current_ready_false_naming_the_pull_counts() {
        let status = |generation: i64, ready: &str, message: &str| {
            json!({"metadata": {"name": "a", "generation": 2},
                "status": {"observedGeneration": generation, "conditions": [
                    {"type": "Degraded", "status": "False", "message": "ImagePullBackOff"},
                    {"type": "Ready", "status": ready, "message": message}]}})
        };
        let backoff = "waiting for web (0/1 ready): pod web-1: container web is waiting: ImagePullBackOff (Back-off pulling image)";
        assert!(names_pull_failure(&status(2, "False", backoff)));
        assert!(names_pull_failure(&status(
            2,
            "False",
            "container web is waiting: ErrImagePull"
        )));
        assert!(!names_pull_failure(&status(1, "False", backoff)));
        assert!(!names_pull_failure(&status(2, "True", backoff)));
        assert!(!names_pull_failure(&status(
            2,
            "False",
            "waiting for web (0/1 ready)"
        )));
    }
}
