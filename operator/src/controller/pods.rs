//! Why a workload is not ready, in its pods' words.
//!
//! There is no watch of pods: at thousands of Applications it would hold every pod of the
//! cluster. Instead, once a workload has not been ready for [`GRACE`], its pods are listed by
//! the workload's selector (at most [`LIST_LIMIT`], a few KiB each, dropped right after) and
//! reduced to one sentence, kept for [`TTL`]: a container waiting with a reason that does not
//! fix itself (`CreateContainerConfigError`, `ImagePullBackOff`, `ErrImagePull`,
//! `CrashLoopBackOff` with the last exit code, ...), or a pod the scheduler cannot place (its
//! message, which also names unbound volume claims). Only workloads that are not ready have an
//! entry; a ready workload's entry is dropped. The cost is one list per not-ready workload every
//! [`TTL`], and one short string each.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::{Api, Client, ResourceExt, api::ListParams};

use super::{Context, status};
use crate::{
    api::{Application, Model},
    build::labels,
};

/// How long a workload may be not ready before its pods are looked at: long enough for a
/// rollout's new pods to pull their image and start.
pub const GRACE: Duration = Duration::from_secs(10);
/// How long what was found in a workload's pods is kept before they are listed again.
pub const TTL: Duration = Duration::from_secs(10);
/// The most pods listed per workload.
pub const LIST_LIMIT: u32 = 10;
/// The shortest wait before an Application with a workload that is not ready is looked at
/// again, however soon a look falls due (a look just missed by a few milliseconds is not worth
/// a reconcile of its own).
pub const MIN_RECHECK: Duration = Duration::from_secs(1);

/// Container waiting reasons that do not resolve by waiting a little longer.
const STUCK_REASONS: &[&str] = &[
    "CreateContainerConfigError",
    "CreateContainerError",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
    "RunContainerError",
];

/// What the kubelet says when an image would run as root in a pod that forbids it.
const RUN_AS_ROOT: &str = "runAsNonRoot and image will run as root";

/// (namespace, workload name).
type Key = (String, String);

/// What was found in the pods of the workloads that are not ready.
#[derive(Default)]
pub struct PodReasons {
    found: Mutex<HashMap<Key, (Instant, Option<String>)>>,
}

/// One workload to look at: its object name and the component (service or database) whose
/// pods it runs.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The Deployment's or StatefulSet's name.
    pub object_name: &'a str,
    /// The service's or database's name (its pods' `app.kubernetes.io/name`).
    pub component: &'a str,
}

impl PodReasons {
    /// The reason found in the pods of `object_name` in `namespace`, if any.
    pub fn get(&self, namespace: &str, object_name: &str) -> Option<String> {
        let found = self.found.lock().expect("lock");
        found
            .get(&(namespace.to_string(), object_name.to_string()))
            .and_then(|(_, r)| r.clone())
    }

    /// Forget what was found for a workload that is ready again.
    pub fn forget(&self, namespace: &str, object_name: &str) {
        let mut found = self.found.lock().expect("lock");
        if !found.is_empty() {
            found.remove(&(namespace.to_string(), object_name.to_string()));
        }
    }

    /// How long until the pods of one of `targets` in `namespace` are due for a look, for
    /// workloads that have not been ready for `not_ready_for` (`None`: not reported as not ready
    /// yet): the rest of [`GRACE`], else the time until the oldest entry is [`TTL`] old (an
    /// entry that is missing is due now). At least [`MIN_RECHECK`], at most [`TTL`].
    ///
    /// Reconciling again at exactly that moment is what keeps a stuck workload's reason at most
    /// about [`TTL`] old: a fixed requeue of [`TTL`] after each reconcile lands a moment before
    /// the grace period ends or the entry expires whenever anything else (a resync, a change of a
    /// child) reconciled the Application in between, and the look then waits a whole further
    /// [`TTL`].
    pub fn due_in(
        &self,
        namespace: &str,
        targets: &[Target<'_>],
        not_ready_for: Option<Duration>,
        now: Instant,
    ) -> Duration {
        let due = match not_ready_for {
            None => GRACE,
            Some(d) if d < GRACE => GRACE - d,
            Some(_) => {
                let found = self.found.lock().expect("lock");
                targets
                    .iter()
                    .map(|t| {
                        found
                            .get(&(namespace.to_string(), t.object_name.to_string()))
                            .map_or(Duration::ZERO, |(at, _)| {
                                TTL.saturating_sub(now.saturating_duration_since(*at))
                            })
                    })
                    .min()
                    .unwrap_or(TTL)
            }
        };
        due.clamp(MIN_RECHECK, TTL)
    }

    /// How many workloads have an entry.
    pub fn len(&self) -> usize {
        self.found.lock().expect("lock").len()
    }

    /// Whether no workload has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// List the pods of each target of `app` in `namespace` whose entry is missing or older
    /// than [`TTL`]. A failed list (say, no permission) is logged and remembered as nothing
    /// found, so it is not retried before [`TTL`].
    pub async fn refresh(
        &self,
        client: &Client,
        namespace: &str,
        app: &str,
        targets: &[Target<'_>],
    ) {
        let now = Instant::now();
        let due: Vec<Target> = {
            let mut found = self.found.lock().expect("lock");
            // Entries of workloads nobody asked about for a while (their Application is gone).
            found.retain(|_, (at, _)| now.duration_since(*at) < TTL * 6);
            targets
                .iter()
                .filter(|t| {
                    found
                        .get(&(namespace.to_string(), t.object_name.to_string()))
                        .is_none_or(|(at, _)| now.duration_since(*at) >= TTL)
                })
                .copied()
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        for t in due {
            let selector = labels::selector_labels(app, t.component)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let lp = ListParams::default().labels(&selector).limit(LIST_LIMIT);
            let reason = match api.list(&lp).await {
                Ok(list) => first_reason(&list.items, t.component),
                Err(e) => {
                    tracing::debug!(error = %e, workload = t.object_name, "could not list pods");
                    None
                }
            };
            self.found.lock().expect("lock").insert(
                (namespace.to_string(), t.object_name.to_string()),
                (now, reason),
            );
        }
    }
}

/// Look at the pods of the workloads of `app` that have not been ready for longer than
/// [`GRACE`] (measured from the Application's `Ready` condition turning `False`), so that
/// status can say why. Returns, when any workload is not ready, how soon the Application should
/// be reconciled again for its next look (see [`PodReasons::due_in`]): a stuck pod changes
/// nothing Keelson watches.
pub async fn inspect(ctx: &Context, app: &Application, model: &Model) -> Option<Duration> {
    let ns = &model.namespace;
    let services = model.services.iter().map(|s| {
        let r = status::service_rollout(ctx, ns, s);
        (r.ready(), s.object_name.as_str(), s.spec.name.as_str())
    });
    let databases = model.databases.iter().map(|d| {
        let r = status::database_rollout(ctx, ns, d);
        (r.ready(), d.object_name.as_str(), d.spec.name.as_str())
    });
    let targets: Vec<Target> = services
        .chain(databases)
        .filter(|(ready, ..)| !ready)
        .map(|(_, object_name, component)| Target {
            object_name,
            component,
        })
        .collect();
    if targets.is_empty() {
        return None;
    }
    let not_ready_since = app
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == status::READY))
        .filter(|c| c.status == "False")
        .map(|c| c.last_transition_time.0);
    // The condition's time has whole seconds (rounded down), so this errs towards looking early.
    let not_ready_for = not_ready_since.map(|t| {
        Duration::try_from(k8s_openapi::jiff::Timestamp::now().duration_since(t))
            .unwrap_or(Duration::ZERO)
    });
    if not_ready_for.is_some_and(|d| d >= GRACE) {
        ctx.pods
            .refresh(&ctx.client, ns, &model.name, &targets)
            .await;
    }
    Some(ctx.pods.due_in(ns, &targets, not_ready_for, Instant::now()))
}

/// The first reason any of `pods` (of `component`) gives for not running, in words.
pub fn first_reason(pods: &[Pod], component: &str) -> Option<String> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .find_map(|p| pod_reason(p, component))
}

/// Why one pod is not running: a container waiting for a reason that does not go away by
/// itself, or the scheduler's message when it cannot place the pod.
pub fn pod_reason(pod: &Pod, component: &str) -> Option<String> {
    let name = pod.name_any();
    let status = pod.status.as_ref()?;
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in containers {
        if let Some(text) = container_reason(c, component) {
            return Some(format!("pod {name}: {text}"));
        }
    }
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
        .map(|c| {
            let msg = c.message.as_deref().unwrap_or("no node fits it");
            format!("pod {name} cannot be scheduled: {msg}")
        })
}

fn container_reason(c: &ContainerStatus, component: &str) -> Option<String> {
    let waiting = c.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    if !STUCK_REASONS.contains(&reason) {
        return None;
    }
    let mut text = format!("container {} is waiting: {reason}", c.name);
    if let Some(m) = waiting.message.as_deref().filter(|m| !m.is_empty()) {
        text.push_str(" (");
        text.push_str(m);
        text.push(')');
    }
    if reason == "CrashLoopBackOff"
        && let Some(t) = c.last_state.as_ref().and_then(|s| s.terminated.as_ref())
    {
        text.push_str(&format!("; it last exited with code {}", t.exit_code));
        if let Some(r) = t.reason.as_deref() {
            text.push_str(&format!(" ({r})"));
        }
        text.push_str(&format!(" after {} restarts", c.restart_count));
    }
    if waiting
        .message
        .as_deref()
        .is_some_and(|m| m.contains(RUN_AS_ROOT))
    {
        text.push_str(&format!(
            "; fix: set runAsUser on {component} to a non-root UID (for example 65532), or use an \
             image whose USER is a numeric non-root UID"
        ));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "shop-orders-5d4f-x2x9z", "namespace": "ns"},
            "spec": {"containers": [{"name": "orders", "image": "x"}]},
            "status": status
        }))
        .unwrap()
    }

    fn waiting(reason: &str, message: &str) -> Pod {
        pod(json!({"phase": "Pending", "containerStatuses": [{
            "name": "orders", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": reason, "message": message}}
        }]}))
    }

    #[test]
    fn the_next_look_falls_due_when_the_grace_period_ends_or_the_oldest_entry_expires() {
        let reasons = PodReasons::default();
        let t = |object_name| Target {
            object_name,
            component: "web",
        };
        let targets = [t("shop-web"), t("shop-api")];
        let now = Instant::now();
        let due = |not_ready_for: Option<u64>| {
            reasons.due_in("ns", &targets, not_ready_for.map(Duration::from_secs), now)
        };
        // Not reported as not ready yet, or within the grace period: when the grace period ends.
        assert_eq!(due(None), GRACE);
        assert_eq!(due(Some(3)), GRACE - Duration::from_secs(3));
        assert_eq!(due(Some(GRACE.as_secs() - 1)), MIN_RECHECK);
        // Past it, a workload never looked at is due now (soonest: MIN_RECHECK).
        assert_eq!(due(Some(30)), MIN_RECHECK);
        // Looked at 4 s and 7 s ago: due when the older look is TTL old, not a full TTL from now
        // (a reconcile in between must not push the next look back).
        let ago = |s| now - Duration::from_secs(s);
        for (object, secs) in [("shop-web", 4), ("shop-api", 7)] {
            reasons
                .found
                .lock()
                .unwrap()
                .insert(("ns".into(), object.into()), (ago(secs), None));
        }
        assert_eq!(due(Some(30)), TTL - Duration::from_secs(7));
        // Just looked at: a whole TTL.
        for object in ["shop-web", "shop-api"] {
            reasons
                .found
                .lock()
                .unwrap()
                .insert(("ns".into(), object.into()), (now, None));
        }
        assert_eq!(due(Some(30)), TTL);
        // Another namespace's entries do not count.
        assert_eq!(
            reasons.due_in("other", &targets, Some(Duration::from_secs(30)), now),
            MIN_RECHECK
        );
    }

    #[test]
    fn a_waiting_container_is_named_with_its_reason_and_message() {
        let p = waiting(
            "CreateContainerConfigError",
            "secret \"orders-api-key\" not found",
        );
        assert_eq!(
            pod_reason(&p, "orders").unwrap(),
            "pod shop-orders-5d4f-x2x9z: container orders is waiting: CreateContainerConfigError \
             (secret \"orders-api-key\" not found)"
        );
        let p = waiting(
            "ImagePullBackOff",
            "Back-off pulling image \"registry.invalid/x:1\"",
        );
        assert!(
            pod_reason(&p, "orders")
                .unwrap()
                .contains("ImagePullBackOff (Back-off pulling")
        );
        // Starting up is not a reason.
        assert_eq!(
            pod_reason(&waiting("ContainerCreating", ""), "orders"),
            None
        );
    }

    #[test]
    fn run_as_root_gets_its_fix() {
        let p = waiting(
            "CreateContainerConfigError",
            "container has runAsNonRoot and image will run as root (pod: \"x\", container: orders)",
        );
        let text = pod_reason(&p, "orders").unwrap();
        assert!(text.contains("fix: set runAsUser on orders"), "{text}");
        assert!(text.contains("numeric non-root UID"), "{text}");
    }

    #[test]
    fn a_crash_loop_names_the_last_exit_code() {
        let p = pod(json!({"phase": "Running", "containerStatuses": [{
            "name": "orders", "image": "x", "imageID": "", "ready": false, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                "message": "back-off 40s restarting failed container=orders"}},
            "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}
        }]}));
        let text = pod_reason(&p, "orders").unwrap();
        assert!(text.contains("CrashLoopBackOff"), "{text}");
        assert!(
            text.contains("last exited with code 3 (Error) after 4 restarts"),
            "{text}"
        );
    }

    #[test]
    fn an_unschedulable_pod_gets_the_schedulers_message() {
        let p = pod(json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."
        }]}));
        assert_eq!(
            pod_reason(&p, "orders").unwrap(),
            "pod shop-orders-5d4f-x2x9z cannot be scheduled: 0/3 nodes are available: pod has \
             unbound immediate PersistentVolumeClaims."
        );
        // A pod on its way out is not looked at.
        let mut gone = p.clone();
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        assert_eq!(first_reason(&[gone], "orders"), None);
        assert!(first_reason(&[waiting("ContainerCreating", ""), p], "orders").is_some());
    }
}
