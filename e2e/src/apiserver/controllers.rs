//! Stand-ins for the cluster's controllers: workload status (Deployments, StatefulSets and
//! their PVCs, HPAs), garbage collection by owner references, namespace lifecycle, and CRD
//! establishment (which the API server itself does).

use super::Shared;
use super::engine::{Ctx, DeleteOpts, Note, State, Write, now, owner_uids};
use super::resources::ResourceDef;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

mod index;
mod storage;
mod workloads;

const MANAGER: &str = "kube-controller-manager";

/// How soon controllers act on a change of what they watch (their own work is quick; what
/// takes time, a container starting, uses `workload_ready_delay`).
const REACT: Duration = Duration::from_millis(5);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Job {
    Workload(String, String, String),
    Establish(String),
    /// Dependents of a deleted owner, by the owner's uid.
    OwnerGone(String),
    /// A dependent whose owners may not exist.
    Dependent(String, String, String),
    /// An owner deleted with propagation Foreground or Orphan.
    Owner(String, String, String),
    Namespace(String),
    /// The scheduler and kubelet of one Pod.
    Pod(String, String),
    /// The binder and resizer of one PersistentVolumeClaim.
    Claim(String, String),
}

struct Ctl {
    shared: Arc<Shared>,
    pending: Mutex<HashMap<Job, tokio::time::Instant>>,
    index: Mutex<index::Index>,
}

pub async fn run(shared: Arc<Shared>, mut rx: UnboundedReceiver<Note>) {
    let ctl = Arc::new(Ctl {
        shared: shared.clone(),
        pending: Mutex::new(HashMap::new()),
        index: Mutex::default(),
    });
    let controllers = shared.opts.controllers;
    while let Some(note) = rx.recv().await {
        match note {
            Note::Changed { store_key, obj } => {
                let md = &obj["metadata"];
                let ns = md["namespace"].as_str().unwrap_or("").to_string();
                let name = md["name"].as_str().unwrap_or("").to_string();
                if store_key == "apiextensions.k8s.io/customresourcedefinitions" {
                    ctl.schedule(Job::Establish(name.clone()), Duration::from_millis(30));
                }
                if !controllers {
                    continue;
                }
                ctl.index.lock().expect("index").changed(&store_key, &obj);
                let pods = shared.pods.load(Ordering::SeqCst);
                for (job, delay) in ctl.jobs_for_change(&store_key, &obj, pods) {
                    ctl.schedule(job, delay);
                }
                let deleting = md.get("deletionTimestamp").is_some();
                let fins: Vec<&str> = md["finalizers"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if deleting
                    && fins
                        .iter()
                        .any(|f| *f == "foregroundDeletion" || *f == "orphan")
                {
                    ctl.schedule(
                        Job::Owner(store_key.clone(), ns.clone(), name.clone()),
                        shared.opts.gc_delay,
                    );
                }
                let owners = owner_uids(&obj);
                if !owners.is_empty() {
                    let dangling = {
                        let st = shared.state.lock().expect("state");
                        owners.iter().any(|u| !st.uids.contains_key(u))
                    };
                    if dangling {
                        ctl.schedule(Job::Dependent(store_key, ns, name), shared.opts.gc_delay);
                    }
                }
            }
            Note::Deleted { obj } => {
                if !controllers {
                    continue;
                }
                if let Some(key) = indexed_store_key(&obj) {
                    ctl.index.lock().expect("index").deleted(key, &obj);
                }
                // A Pod or ReplicaSet gone: its controller makes up for it.
                let md = &obj["metadata"];
                let ns = md["namespace"].as_str().unwrap_or("").to_string();
                for r in md["ownerReferences"].as_array().into_iter().flatten() {
                    let Some(key) = workload_store_key(r) else {
                        continue;
                    };
                    let name = r["name"].as_str().unwrap_or("").to_string();
                    ctl.schedule(Job::Workload(key.into(), ns.clone(), name), REACT);
                }
                if let Some(uid) = obj["metadata"]["uid"].as_str() {
                    ctl.schedule(Job::OwnerGone(uid.to_string()), shared.opts.gc_delay);
                }
                // A foreground owner waits for this dependent: look at it again soon.
                let owners = owner_uids(&obj);
                let st = shared.state.lock().expect("state");
                let refs: Vec<_> = owners
                    .iter()
                    .filter_map(|u| st.uids.get(u).cloned())
                    .collect();
                drop(st);
                for (k, ns, name) in refs {
                    ctl.schedule(Job::Owner(k, ns, name), Duration::from_millis(50));
                }
            }
            Note::WorkloadsReadyChanged => {
                if !controllers {
                    continue;
                }
                let st = shared.state.lock().expect("state");
                let mut jobs = Vec::new();
                for key in ["apps/deployments", "apps/statefulsets"] {
                    if let Some(b) = st.bucket(key) {
                        for (ns, name) in b.objects.keys() {
                            jobs.push(Job::Workload(key.into(), ns.clone(), name.clone()));
                        }
                    }
                }
                if let Some(b) = st.bucket("pods") {
                    for (ns, name) in b.objects.keys() {
                        jobs.push(Job::Pod(ns.clone(), name.clone()));
                    }
                }
                drop(st);
                for j in jobs {
                    ctl.schedule(j, Duration::from_millis(10));
                }
            }
        }
    }
}

impl Ctl {
    /// Runs `job` after `delay`, or sooner if it is already due sooner; one run per job at
    /// a time.
    fn schedule(self: &Arc<Self>, job: Job, delay: Duration) {
        let due = tokio::time::Instant::now() + delay;
        {
            let mut pending = self.pending.lock().expect("pending");
            match pending.get(&job) {
                Some(d) if *d <= due => return,
                _ => {
                    pending.insert(job.clone(), due);
                }
            }
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            {
                let mut pending = me.pending.lock().expect("pending");
                // Rescheduled sooner (or later) by someone else: theirs to run.
                if pending.get(&job) != Some(&due) {
                    return;
                }
                pending.remove(&job);
            }
            if let Some(again) = me.run_job(&job) {
                me.schedule(job, again);
            }
        });
    }

    /// What to run when an object of `store_key` changed.
    fn jobs_for_change(&self, store_key: &str, obj: &Value, pods: bool) -> Vec<(Job, Duration)> {
        let shared = &self.shared;
        let md = &obj["metadata"];
        let ns = md["namespace"].as_str().unwrap_or("").to_string();
        let name = md["name"].as_str().unwrap_or("").to_string();
        let deleting = md.get("deletionTimestamp").is_some();
        let delay = if pods {
            REACT
        } else {
            shared.opts.workload_ready_delay
        };
        let mut jobs = Vec::new();
        let owner_job = |jobs: &mut Vec<(Job, Duration)>| {
            for r in md["ownerReferences"].as_array().into_iter().flatten() {
                let Some(key) = workload_store_key(r) else {
                    continue;
                };
                let owner = r["name"].as_str().unwrap_or("").to_string();
                jobs.push((Job::Workload(key.into(), ns.clone(), owner), REACT));
            }
        };
        match store_key {
            "apps/deployments" | "apps/statefulsets" | "autoscaling/horizontalpodautoscalers" => {
                jobs.push((
                    Job::Workload(store_key.into(), ns.clone(), name.clone()),
                    delay,
                ));
                let kind = obj["kind"].as_str().unwrap_or("");
                let hpas = self
                    .index
                    .lock()
                    .expect("index")
                    .hpas_targeting(&ns, kind, &name);
                for h in hpas {
                    jobs.push((
                        Job::Workload("autoscaling/horizontalpodautoscalers".into(), ns.clone(), h),
                        shared.opts.workload_ready_delay,
                    ));
                }
            }
            "apps/replicasets" if pods => {
                jobs.push((
                    Job::Workload(store_key.into(), ns.clone(), name.clone()),
                    REACT,
                ));
                owner_job(&mut jobs);
            }
            "pods" if pods => {
                let started = obj["status"].get("containerStatuses").is_some()
                    || obj["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
                let wait = if deleting {
                    shared.opts.gc_delay
                } else if started {
                    REACT
                } else {
                    // The container runtime takes a moment.
                    shared.opts.workload_ready_delay
                };
                jobs.push((Job::Pod(ns.clone(), name.clone()), wait));
                owner_job(&mut jobs);
            }
            "namespaces" if deleting => {
                jobs.push((Job::Namespace(name.clone()), shared.opts.gc_delay));
            }
            "persistentvolumeclaims" => {
                // Provisioning takes a moment.
                jobs.push((
                    Job::Claim(ns.clone(), name.clone()),
                    shared.opts.workload_ready_delay,
                ));
                // Pods waiting for this claim to bind.
                jobs.extend(self.waiting_pods(&ns));
            }
            "secrets" | "configmaps" if pods => {
                // Containers waiting for their configuration.
                jobs.extend(self.waiting_pods(&ns));
            }
            _ => {}
        }
        jobs
    }

    /// One run of the controller of a Deployment, ReplicaSet, StatefulSet or HPA.
    fn run_workload(
        &self,
        key: &str,
        ns: &str,
        name: &str,
        orphans: &[String],
        ready: bool,
        pods: bool,
    ) -> Option<Duration> {
        self.shared.with_state_ctrl(|st| match key {
            "apps/deployments" if pods => workloads::deployment(st, ns, name, orphans),
            "apps/deployments" => {
                deployment(st, ns, name, ready);
                None
            }
            "apps/statefulsets" if pods => workloads::statefulset(st, ns, name, orphans),
            "apps/statefulsets" => {
                statefulset(st, ns, name, ready);
                None
            }
            "apps/replicasets" => workloads::replicaset(st, ns, name, orphans),
            _ => {
                hpa(st, ns, name);
                None
            }
        })
    }

    /// Jobs for the Pods of `ns` that wait for a node or their configuration.
    fn waiting_pods(&self, ns: &str) -> Vec<(Job, Duration)> {
        let names = self.index.lock().expect("index").waiting_pods(ns);
        names
            .into_iter()
            .map(|p| (Job::Pod(ns.to_string(), p), REACT))
            .collect()
    }

    /// Runs one job; `Some(delay)` asks for another run.
    fn run_job(&self, job: &Job) -> Option<Duration> {
        let shared = &self.shared;
        let ready = shared.workloads_ready.load(Ordering::SeqCst);
        let pods = shared.pods.load(Ordering::SeqCst);
        match job {
            Job::Workload(key, ns, name) => {
                // What a workload may adopt (the Deployment controller adopts ReplicaSets,
                // the others Pods).
                let orphans = if !pods {
                    Vec::new()
                } else {
                    let of = if key == "apps/deployments" {
                        "apps/replicasets"
                    } else {
                        "pods"
                    };
                    self.index.lock().expect("index").orphans(of, ns)
                };
                self.run_workload(key, ns, name, &orphans, ready, pods)
            }
            Job::Pod(ns, name) => {
                let images = shared.images.lock().expect("images").clone();
                let grace = shared.opts.workload_ready_delay;
                shared.with_state_ctrl(|st| workloads::pod(st, ns, name, &images, ready, grace))
            }
            Job::Claim(ns, name) => {
                shared.with_state_ctrl(|st| storage::claim(st, ns, name, !pods))
            }
            Job::Establish(name) => {
                shared.with_state_ctrl(|st| establish(st, name));
                None
            }
            Job::OwnerGone(uid) => {
                shared.with_state_ctrl(|st| {
                    let deps: Vec<_> = st
                        .dependents
                        .get(uid)
                        .map(|d| d.iter().cloned().collect())
                        .unwrap_or_default();
                    for (k, ns, name) in deps {
                        check_dependent(st, &k, &ns, &name);
                    }
                });
                None
            }
            Job::Dependent(k, ns, name) => {
                shared.with_state_ctrl(|st| check_dependent(st, k, ns, name));
                None
            }
            Job::Owner(k, ns, name) => {
                shared.with_state_ctrl(|st| owner_deleting(st, k, ns, name));
                None
            }
            Job::Namespace(name) => {
                let done = shared.with_state_ctrl(|st| namespace(st, name));
                if done {
                    None
                } else {
                    Some(shared.opts.gc_delay / 2)
                }
            }
        }
    }
}

fn ctx(manager: &str) -> Ctx {
    Ctx {
        manager: manager.into(),
        subresource: Some("status".into()),
        dry_run: false,
        now: now(),
    }
}

fn short_hash(v: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = h.finish();
    (0..10)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Conditions that keep their times unless their status (or text) changes.
fn condition(
    old: &Value,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    with_update: bool,
) -> Value {
    let now = now();
    let prev = old["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty));
    let transition = prev
        .filter(|p| p["status"] == status)
        .and_then(|p| p["lastTransitionTime"].as_str())
        .unwrap_or(&now)
        .to_string();
    let mut c = json!({"type": ty, "status": status});
    if with_update {
        let same = prev.is_some_and(|p| {
            p["status"] == status && p["reason"] == reason && p["message"] == message
        });
        let update = if same {
            prev.and_then(|p| p["lastUpdateTime"].as_str())
                .unwrap_or(&now)
                .to_string()
        } else {
            now.clone()
        };
        c["lastUpdateTime"] = json!(update);
    }
    c["lastTransitionTime"] = json!(transition);
    c["reason"] = json!(reason);
    c["message"] = json!(message);
    c
}

fn write_status(
    st: &mut State,
    group: &str,
    version: &str,
    plural: &str,
    obj: &Value,
    status: Value,
) {
    if obj.get("status") == Some(&status) {
        return;
    }
    let Some(def) = st.def(group, version, plural) else {
        return;
    };
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let mut body = obj.clone();
    body["status"] = status;
    if let Err(e) = st.write(&def, &ns, &name, Write::Replace(body), &ctx(MANAGER)) {
        tracing::debug!(error = ?e.message(), "status write of {plural} {ns}/{name}");
    }
}

fn deployment(st: &mut State, ns: &str, name: &str, ready: bool) {
    let Some(def) = st.def("apps", "v1", "deployments") else {
        return;
    };
    let Some(obj) = st.get_stored(&def, ns, name) else {
        return;
    };
    if obj["metadata"].get("deletionTimestamp").is_some() {
        return;
    }
    let desired = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    let old = &obj["status"];
    let rs = format!("{name}-{}", short_hash(&obj["spec"]["template"]));
    let mut s = json!({"observedGeneration": obj["metadata"]["generation"]});
    let put = |s: &mut Value, k: &str, n: i64| {
        if n != 0 {
            s[k] = json!(n);
        }
    };
    put(&mut s, "replicas", desired);
    put(&mut s, "updatedReplicas", desired);
    if ready {
        put(&mut s, "readyReplicas", desired);
        put(&mut s, "availableReplicas", desired);
    } else {
        put(&mut s, "unavailableReplicas", desired);
    }
    s["terminatingReplicas"] = json!(0);
    let available = if ready || desired == 0 {
        condition(
            old,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            true,
        )
    } else {
        condition(
            old,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            true,
        )
    };
    let progressing = if ready {
        condition(
            old,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet {rs:?} has successfully progressed."),
            true,
        )
    } else {
        condition(
            old,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet {rs:?} is progressing."),
            true,
        )
    };
    s["conditions"] = json!([available, progressing]);
    write_status(st, "apps", "v1", "deployments", &obj, s);
}

fn statefulset(st: &mut State, ns: &str, name: &str, ready: bool) {
    let Some(def) = st.def("apps", "v1", "statefulsets") else {
        return;
    };
    let Some(obj) = st.get_stored(&def, ns, name) else {
        return;
    };
    if obj["metadata"].get("deletionTimestamp").is_some() {
        return;
    }
    let desired = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    ensure_pvcs(st, &obj, desired);
    let rev = format!("{name}-{}", short_hash(&obj["spec"]["template"]));
    let mut s = json!({"observedGeneration": obj["metadata"]["generation"], "replicas": desired});
    if ready && desired > 0 {
        s["readyReplicas"] = json!(desired);
    }
    if desired > 0 {
        s["currentReplicas"] = json!(desired);
        s["updatedReplicas"] = json!(desired);
    }
    s["currentRevision"] = json!(rev);
    s["updateRevision"] = json!(rev);
    s["collisionCount"] = json!(0);
    s["availableReplicas"] = json!(if ready { desired } else { 0 });
    write_status(st, "apps", "v1", "statefulsets", &obj, s);
}

/// The store key of a deleted object the controllers index (see [`index`]).
fn indexed_store_key(obj: &Value) -> Option<&'static str> {
    match obj["kind"].as_str()? {
        "Pod" => Some("pods"),
        "ReplicaSet" => Some("apps/replicasets"),
        "HorizontalPodAutoscaler" => Some("autoscaling/horizontalpodautoscalers"),
        _ => None,
    }
}

/// The store key of the workload an owner reference names, when it is one the stand-ins run.
fn workload_store_key(owner_ref: &Value) -> Option<&'static str> {
    match owner_ref["kind"].as_str()? {
        "ReplicaSet" => Some("apps/replicasets"),
        "StatefulSet" => Some("apps/statefulsets"),
        "Deployment" => Some("apps/deployments"),
        _ => None,
    }
}

/// PVCs `<template>-<statefulset>-<ordinal>`; owned by the StatefulSet only when its
/// retention policy deletes them with it. Like the real controller (StatefulSetAutoDeletePVC,
/// GA in 1.32), it brings the owner references of existing claims in line with the policy, so a
/// StatefulSet re-created after an orphaning delete owns its claims again.
pub(super) fn ensure_pvcs(st: &mut State, sts: &Value, replicas: i64) {
    let Some(templates) = sts["spec"]["volumeClaimTemplates"].as_array() else {
        return;
    };
    let Some(pvc_def) = st.def("", "v1", "persistentvolumeclaims") else {
        return;
    };
    let ns = sts["metadata"]["namespace"].as_str().unwrap_or("");
    let name = sts["metadata"]["name"].as_str().unwrap_or("");
    let owned = sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete";
    for t in templates {
        let tname = t["metadata"]["name"].as_str().unwrap_or("");
        for ordinal in 0..replicas {
            let pvc = format!("{tname}-{name}-{ordinal}");
            if let Some(existing) = st.get_stored(&pvc_def, ns, &pvc) {
                claim_owner_per_policy(st, &pvc_def, sts, &existing, owned);
                continue;
            }
            let mut labels = t["metadata"]["labels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            if let Some(ml) = sts["spec"]["selector"]["matchLabels"].as_object() {
                labels.extend(ml.clone());
            }
            let mut body = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": pvc, "namespace": ns, "labels": labels},
                "spec": t["spec"].clone()});
            if owned {
                body["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1",
                    "kind": "StatefulSet", "name": name, "uid": sts["metadata"]["uid"],
                    "controller": true, "blockOwnerDeletion": true}]);
            }
            let mut c = ctx(MANAGER);
            c.subresource = None;
            if let Err(e) = st.write(&pvc_def, ns, "", Write::Create(body), &c) {
                tracing::debug!(error = ?e.message(), "creating PVC {ns}/{pvc}");
            }
        }
    }
}

/// Adds the StatefulSet's owner reference to an existing claim when its policy deletes claims
/// with it, or removes it when the policy retains them.
fn claim_owner_per_policy(
    st: &mut State,
    pvc_def: &Arc<ResourceDef>,
    sts: &Value,
    claim: &Value,
    owned: bool,
) {
    let uid = &sts["metadata"]["uid"];
    let refs: Vec<Value> = claim["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has = refs.iter().any(|r| &r["uid"] == uid);
    if has == owned || claim["metadata"].get("deletionTimestamp").is_some() {
        return;
    }
    let mut body = claim.clone();
    let refs: Vec<Value> = if owned {
        let mut r = refs;
        r.push(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "name": sts["metadata"]["name"], "uid": uid,
            "controller": true, "blockOwnerDeletion": true}));
        r
    } else {
        refs.into_iter().filter(|r| &r["uid"] != uid).collect()
    };
    let md = body["metadata"].as_object_mut().expect("metadata");
    md.remove("managedFields");
    if refs.is_empty() {
        md.remove("ownerReferences");
    } else {
        md.insert("ownerReferences".into(), Value::Array(refs));
    }
    let ns = claim["metadata"]["namespace"].as_str().unwrap_or("");
    let name = claim["metadata"]["name"].as_str().unwrap_or("");
    let mut c = ctx(MANAGER);
    c.subresource = None;
    if let Err(e) = st.write(pvc_def, ns, name, Write::Replace(body), &c) {
        tracing::debug!(error = ?e.message(), "updating the owners of PVC {ns}/{name}");
    }
}

/// The HPA controller without a metrics API (as recorded): it brings the target's replicas
/// into `[minReplicas, maxReplicas]` through the scale subresource (manager
/// `kube-controller-manager`, subresource `scale`); inside that range it cannot compute a
/// replica count and says so in `ScalingActive`, keeping its last `desiredReplicas`.
fn hpa(st: &mut State, ns: &str, name: &str) {
    let Some(def) = st.def("autoscaling", "v2", "horizontalpodautoscalers") else {
        return;
    };
    let Some(obj) = st.get_stored(&def, ns, name) else {
        return;
    };
    let old = &obj["status"];
    let target_ref = &obj["spec"]["scaleTargetRef"];
    let target_name = target_ref["name"].as_str().unwrap_or("");
    let group = target_ref["apiVersion"]
        .as_str()
        .and_then(|a| a.split_once('/'))
        .map_or("", |(g, _)| g);
    let plural = match target_ref["kind"].as_str().unwrap_or("") {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "ReplicaSet" => "replicasets",
        _ => "",
    };
    let target_def = st.def(group, "v1", plural);
    let target = target_def
        .as_ref()
        .and_then(|d| st.get_stored(d, ns, target_name));
    let (Some(target_def), Some(target)) = (target_def, target) else {
        let what = if plural.is_empty() {
            format!("{:?}", target_ref["kind"].as_str().unwrap_or(""))
        } else {
            format!("{plural}.{group} {target_name:?} not found")
        };
        let s = json!({"desiredReplicas": old["desiredReplicas"].as_i64().unwrap_or(0),
            "currentMetrics": null,
            "conditions": [condition(old, "AbleToScale", "False", "FailedGetScale",
                &format!("the HPA controller was unable to get the target's current scale: {what}"), false)]});
        write_status(st, "autoscaling", "v2", "horizontalpodautoscalers", &obj, s);
        return;
    };
    let current = target["spec"]["replicas"].as_i64().unwrap_or(1);
    let min = obj["spec"]["minReplicas"].as_i64().unwrap_or(1);
    let max = obj["spec"]["maxReplicas"].as_i64().unwrap_or(min);
    let previous = old["desiredReplicas"].as_i64().unwrap_or(0);
    let mut conditions = Vec::new();
    let mut status = json!({"currentReplicas": current});
    let desired = if current == 0 && min != 0 {
        conditions.push(condition(
            old,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
            false,
        ));
        conditions.push(condition(
            old,
            "ScalingActive",
            "False",
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
            false,
        ));
        0
    } else if current > max || current < min {
        let desired = current.clamp(min, max);
        let mut c = ctx(MANAGER);
        c.subresource = Some("scale".into());
        let patch = json!({"spec": {"replicas": desired}});
        if let Err(e) = st.scale_write(&target_def, ns, target_name, Write::MergePatch(patch), &c) {
            tracing::debug!(error = ?e.message(), "HPA scaling {ns}/{target_name}");
        }
        status["lastScaleTime"] = json!(now());
        conditions.push(condition(
            old,
            "AbleToScale",
            "True",
            "SucceededRescale",
            &format!("the HPA controller was able to update the target scale to {desired}"),
            false,
        ));
        if let Some(c) = old["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "ScalingActive"))
        {
            conditions.push(c.clone());
        }
        desired
    } else {
        conditions.push(condition(
            old,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
            false,
        ));
        let resource = obj["spec"]["metrics"][0]["resource"]["name"]
            .as_str()
            .unwrap_or("cpu");
        conditions.push(condition(old, "ScalingActive", "False", "FailedGetResourceMetric",
            &format!("the HPA was unable to compute the replica count: failed to get {resource} utilization: unable to get metrics for resource {resource}: unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)"), false));
        status["currentMetrics"] = json!([{"type": ""}]);
        previous
    };
    if status.get("lastScaleTime").is_none()
        && let Some(t) = old.get("lastScaleTime")
    {
        status["lastScaleTime"] = t.clone();
    }
    status["desiredReplicas"] = json!(desired);
    if status.get("currentMetrics").is_none() {
        status["currentMetrics"] = old.get("currentMetrics").cloned().unwrap_or(Value::Null);
    }
    status["conditions"] = Value::Array(conditions);
    write_status(
        st,
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        &obj,
        status,
    );
}

fn establish(st: &mut State, name: &str) {
    let Some(def) = st.def("apiextensions.k8s.io", "v1", "customresourcedefinitions") else {
        return;
    };
    let Some(obj) = st.get_stored(&def, "", name) else {
        return;
    };
    let names = &obj["spec"]["names"];
    let kind = names["kind"].as_str().unwrap_or("");
    let mut accepted = names.clone();
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(kind.to_lowercase());
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    let old = &obj["status"];
    let status = json!({
        "conditions": [
            condition(old, "NamesAccepted", "True", "NoConflicts", "no conflicts found", false),
            condition(old, "Established", "True", "InitialNamesAccepted", "the initial names have been accepted", false),
        ],
        "acceptedNames": accepted,
        "storedVersions": old["storedVersions"].clone(),
    });
    let mut body = (*obj).clone();
    body["status"] = status;
    if obj.get("status") != body.get("status") {
        let _ = st.write(&def, "", name, Write::Replace(body), &ctx("kube-apiserver"));
    }
}

fn background() -> DeleteOpts {
    DeleteOpts {
        propagation: Some("Background".into()),
        ..Default::default()
    }
}

/// Deletes a dependent whose owners are all gone; drops references to owners that are gone.
fn check_dependent(st: &mut State, key: &str, ns: &str, name: &str) {
    let Some(def) = st.def_for_store(key) else {
        return;
    };
    let Some(obj) = st.get_stored(&def, ns, name) else {
        return;
    };
    if obj["metadata"].get("deletionTimestamp").is_some() {
        return;
    }
    let refs: Vec<Value> = obj["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (alive, gone): (Vec<Value>, Vec<Value>) = refs
        .into_iter()
        .partition(|r| r["uid"].as_str().is_some_and(|u| st.uids.contains_key(u)));
    if gone.is_empty() {
        return;
    }
    if alive.is_empty() {
        let _ = st.delete(&def, ns, name, &background(), &now());
    } else {
        let mut body = (*obj).clone();
        body["metadata"]["ownerReferences"] = Value::Array(alive);
        let mut c = ctx(MANAGER);
        c.subresource = None;
        let _ = st.write(&def, ns, name, Write::Replace(body), &c);
    }
}

fn remove_finalizer(st: &mut State, key: &str, ns: &str, name: &str, finalizer: &str) {
    let Some(def) = st.def_for_store(key) else {
        return;
    };
    let Some(obj) = st.get_stored(&def, ns, name) else {
        return;
    };
    let mut body = (*obj).clone();
    if let Some(f) = body["metadata"]["finalizers"].as_array_mut() {
        f.retain(|x| x != finalizer);
    }
    let mut c = ctx(MANAGER);
    c.subresource = None;
    let _ = st.write(&def, ns, name, Write::Replace(body), &c);
}

/// An owner deleted with propagation Foreground or Orphan.
fn owner_deleting(st: &mut State, key: &str, ns: &str, name: &str) {
    let Some(def) = st.def_for_store(key) else {
        return;
    };
    let Some(owner) = st.get_stored(&def, ns, name) else {
        return;
    };
    if owner["metadata"].get("deletionTimestamp").is_none() {
        return;
    }
    let fins: Vec<String> = owner["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let uid = owner["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let deps: Vec<_> = st
        .dependents
        .get(&uid)
        .map(|d| d.iter().cloned().collect())
        .unwrap_or_default();
    if fins.iter().any(|f| f == "orphan") {
        for (dk, dns, dname) in &deps {
            let Some(ddef) = st.def_for_store(dk) else {
                continue;
            };
            let Some(dep) = st.get_stored(&ddef, dns, dname) else {
                continue;
            };
            let mut body = (*dep).clone();
            let refs: Vec<Value> = body["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r["uid"] != uid.as_str())
                .collect();
            if refs.is_empty() {
                body["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("ownerReferences"));
            } else {
                body["metadata"]["ownerReferences"] = Value::Array(refs);
            }
            let mut c = ctx(MANAGER);
            c.subresource = None;
            let _ = st.write(&ddef, dns, dname, Write::Replace(body), &c);
        }
        remove_finalizer(st, key, ns, name, "orphan");
        return;
    }
    if fins.iter().any(|f| f == "foregroundDeletion") {
        let mut blocked = false;
        for (dk, dns, dname) in &deps {
            let Some(ddef) = st.def_for_store(dk) else {
                continue;
            };
            let Some(dep) = st.get_stored(&ddef, dns, dname) else {
                continue;
            };
            if dep["metadata"].get("deletionTimestamp").is_none() {
                let _ = st.delete(&ddef, dns, dname, &background(), &now());
            }
            let still = st.get_stored(&ddef, dns, dname);
            let blocks = still.is_some_and(|d| {
                d["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|rs| {
                        rs.iter()
                            .any(|r| r["uid"] == uid.as_str() && r["blockOwnerDeletion"] == true)
                    })
            });
            blocked |= blocks;
        }
        if !blocked {
            remove_finalizer(st, key, ns, name, "foregroundDeletion");
        }
    }
}

/// Namespace termination: deletes the content, then the namespace once it is empty.
/// Returns true when nothing is left to do.
fn namespace(st: &mut State, name: &str) -> bool {
    let Some(ns_obj) = st.namespace(name) else {
        return true;
    };
    if ns_obj["metadata"].get("deletionTimestamp").is_none() {
        return true;
    }
    let mut remaining = 0;
    // resource -> count, finalizer -> count
    let mut resources: std::collections::BTreeMap<String, usize> = Default::default();
    let mut finalizers: std::collections::BTreeMap<String, usize> = Default::default();
    for def in st.namespaced_defs() {
        let names: Vec<(String, Arc<Value>)> = st
            .bucket(&def.store_key)
            .map(|b| {
                b.objects
                    .range((name.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == name)
                    .map(|((_, o), v)| (o.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (oname, obj) in names {
            if obj["metadata"].get("deletionTimestamp").is_none() {
                let _ = st.delete(&def, name, &oname, &background(), &now());
            }
            if let Some(left) = st.get_stored(&def, name, &oname) {
                remaining += 1;
                *resources
                    .entry(format!("{}.{}", def.plural, def.group))
                    .or_default() += 1;
                for f in left["metadata"]["finalizers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if let Some(f) = f.as_str() {
                        *finalizers.entry(f.to_string()).or_default() += 1;
                    }
                }
            }
        }
    }
    if remaining == 0 {
        st.remove_namespace(name);
        return true;
    }
    // Conditions saying what holds the namespace, as the namespace controller reports them.
    let old = &ns_obj["status"];
    let join = |m: &std::collections::BTreeMap<String, usize>, sep: &str| {
        m.iter()
            .map(|(k, n)| format!("{k}{sep}{n} resource instances"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut conditions = vec![
        condition(
            old,
            "NamespaceDeletionDiscoveryFailure",
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered",
            false,
        ),
        condition(
            old,
            "NamespaceDeletionGroupVersionParsingFailure",
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
            false,
        ),
        condition(
            old,
            "NamespaceDeletionContentFailure",
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
            false,
        ),
        condition(
            old,
            "NamespaceContentRemaining",
            "True",
            "SomeResourcesRemain",
            &format!(
                "Some resources are remaining: {}",
                join(&resources, " has ")
            ),
            false,
        ),
    ];
    if finalizers.is_empty() {
        conditions.push(condition(
            old,
            "NamespaceFinalizersRemaining",
            "False",
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished",
            false,
        ));
    } else {
        conditions.push(condition(
            old,
            "NamespaceFinalizersRemaining",
            "True",
            "SomeFinalizersRemain",
            &format!(
                "Some content in the namespace has finalizers remaining: {}",
                join(&finalizers, " in ")
            ),
            false,
        ));
    }
    let status = json!({"phase": "Terminating", "conditions": conditions});
    write_status(st, "", "v1", "namespaces", &ns_obj, status);
    false
}
