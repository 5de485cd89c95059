//! Stand-ins for the cluster's controllers: workload status (Deployments, StatefulSets and
//! their PVCs, HPAs), garbage collection by owner references, namespace lifecycle, and CRD
//! establishment (which the API server itself does).

use super::Shared;
use super::engine::{Ctx, DeleteOpts, Note, State, Write, now, owner_uids};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

const MANAGER: &str = "kube-controller-manager";

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
}

struct Ctl {
    shared: Arc<Shared>,
    pending: Mutex<HashSet<Job>>,
}

pub async fn run(shared: Arc<Shared>, mut rx: UnboundedReceiver<Note>) {
    let ctl = Arc::new(Ctl {
        shared: shared.clone(),
        pending: Mutex::new(HashSet::new()),
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
                match store_key.as_str() {
                    "apps/deployments"
                    | "apps/statefulsets"
                    | "autoscaling/horizontalpodautoscalers" => {
                        ctl.schedule(
                            Job::Workload(store_key.clone(), ns.clone(), name.clone()),
                            shared.opts.workload_ready_delay,
                        );
                    }
                    "namespaces" if md.get("deletionTimestamp").is_some() => {
                        ctl.schedule(Job::Namespace(name.clone()), shared.opts.gc_delay);
                    }
                    _ => {}
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
                drop(st);
                for j in jobs {
                    ctl.schedule(j, Duration::from_millis(10));
                }
            }
        }
    }
}

impl Ctl {
    fn schedule(self: &Arc<Self>, job: Job, delay: Duration) {
        if !self.pending.lock().expect("pending").insert(job.clone()) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.pending.lock().expect("pending").remove(&job);
            if let Some(again) = me.run_job(&job) {
                me.schedule(job, again);
            }
        });
    }

    /// Runs one job; `Some(delay)` asks for another run.
    fn run_job(&self, job: &Job) -> Option<Duration> {
        let shared = &self.shared;
        let ready = shared.workloads_ready.load(Ordering::SeqCst);
        match job {
            Job::Workload(key, ns, name) => {
                shared.with_state_ctrl(|st| match key.as_str() {
                    "apps/deployments" => deployment(st, ns, name, ready),
                    "apps/statefulsets" => statefulset(st, ns, name, ready),
                    _ => hpa(st, ns, name),
                });
                None
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

/// PVCs `<template>-<statefulset>-<ordinal>`; owned by the StatefulSet only when its
/// retention policy deletes them with it.
fn ensure_pvcs(st: &mut State, sts: &Value, replicas: i64) {
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
            if st.get_stored(&pvc_def, ns, &pvc).is_some() {
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

/// The autoscaler without metrics, as a real one without a metrics server: it keeps its target
/// between `minReplicas` and `maxReplicas` (scaling it through `spec.replicas`, as its write to
/// the Deployment's scale subresource does) and reports that count as `desiredReplicas`.
fn hpa(st: &mut State, ns: &str, name: &str) {
    let Some(def) = st.def("autoscaling", "v2", "horizontalpodautoscalers") else {
        return;
    };
    let Some(obj) = st.get_stored(&def, ns, name) else {
        return;
    };
    let min = obj["spec"]["minReplicas"].as_i64().unwrap_or(1);
    let max = obj["spec"]["maxReplicas"].as_i64().unwrap_or(min).max(min);
    let target = &obj["spec"]["scaleTargetRef"];
    let deployments = st.def("apps", "v1", "deployments");
    let current = deployments
        .as_ref()
        .filter(|_| target["kind"] == "Deployment")
        .and_then(|d| st.get_stored(d, ns, target["name"].as_str().unwrap_or("")));
    let replicas = current
        .as_ref()
        .and_then(|d| d["spec"]["replicas"].as_i64())
        .unwrap_or(min);
    let desired = replicas.clamp(min, max);
    if let (Some(d), Some(dep)) = (&deployments, &current)
        && desired != replicas
    {
        let mut c = ctx(MANAGER);
        c.subresource = None;
        let patch = json!({"spec": {"replicas": desired}});
        let name = dep["metadata"]["name"].as_str().unwrap_or("").to_string();
        if let Err(e) = st.write(d, ns, &name, Write::MergePatch(patch), &c) {
            tracing::debug!(error = ?e.message(), "scaling deployment {ns}/{name}");
        }
    }
    let old = &obj["status"];
    let s = json!({"currentReplicas": replicas, "desiredReplicas": desired,
        "conditions": [condition(old, "AbleToScale", "True", "SucceededGetScale",
            "the HPA controller was able to get the target's current scale", false)]});
    write_status(st, "autoscaling", "v2", "horizontalpodautoscalers", &obj, s);
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
