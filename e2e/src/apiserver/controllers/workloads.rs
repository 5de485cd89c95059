//! Workload controllers, scheduler and kubelets: Deployments roll out through ReplicaSets,
//! ReplicaSets and StatefulSets keep their Pods, the scheduler binds Pods to the stand-in
//! nodes and the kubelets run them (see [`super::super::kubelet`] for how a Pod's state follows
//! from its spec). Status is computed from the Pods, as the real controllers do.

use super::super::builtin::selector_matches;
use super::super::engine::{DeleteOpts, State, Write, now};
use super::super::kubelet::{self, Images, Run, World};
use super::super::resources::ResourceDef;
use super::{MANAGER, condition, ctx, short_hash, write_status};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// What a job decided beyond its writes: run again after this long.
pub type Requeue = Option<Duration>;

fn meta_str<'a>(v: &'a Value, k: &str) -> &'a str {
    v["metadata"][k].as_str().unwrap_or("")
}

fn deleting(v: &Value) -> bool {
    v["metadata"].get("deletionTimestamp").is_some()
}

/// Objects of `store_key` whose controller reference is `owner_uid`.
fn controlled(st: &State, store_key: &str, owner_uid: &str) -> Vec<Arc<Value>> {
    let Some(deps) = st.dependents.get(owner_uid) else {
        return Vec::new();
    };
    let Some(def) = st.def_for_store(store_key) else {
        return Vec::new();
    };
    deps.iter()
        .filter(|(k, _, _)| k == store_key)
        .filter_map(|(_, ns, name)| st.get_stored(&def, ns, name))
        .filter(|o| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["controller"] == true && r["uid"] == owner_uid)
        })
        .collect()
}

fn controller_ref(owner: &Value) -> Value {
    json!({"apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true})
}

/// Takes over objects that match the owner's selector and have no controller (a workload
/// re-created after an orphaning delete finds its Pods or ReplicaSets again). `orphans`: the
/// names of the objects of that kind in the owner's namespace without a controller (see
/// [`super::index`]); each is checked again here.
fn adopt(st: &mut State, def: &Arc<ResourceDef>, owner: &Value, orphans: &[String]) {
    if orphans.is_empty() {
        return;
    }
    let ns = meta_str(owner, "namespace").to_string();
    let Some(sel) = owner.pointer("/spec/selector") else {
        return;
    };
    let adoptable: Vec<Arc<Value>> = orphans
        .iter()
        .filter_map(|n| st.get_stored(def, &ns, n))
        .filter(|o| {
            !deleting(o)
                && !o["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["controller"] == true)
                && selector_matches(sel, &o["metadata"]["labels"])
        })
        .collect();
    for o in adoptable {
        let mut body = (*o).clone();
        let refs = body["metadata"]
            .as_object_mut()
            .expect("metadata")
            .entry("ownerReferences")
            .or_insert_with(|| json!([]));
        if let Some(a) = refs.as_array_mut() {
            a.push(controller_ref(owner));
        }
        replace(st, def, &ns, &body);
    }
}

fn replace(st: &mut State, def: &Arc<ResourceDef>, ns: &str, body: &Value) {
    let mut c = ctx(MANAGER);
    c.subresource = None;
    let name = meta_str(body, "name").to_string();
    let mut body = body.clone();
    if let Some(md) = body["metadata"].as_object_mut() {
        md.remove("managedFields");
    }
    if let Err(e) = st.write(def, ns, &name, Write::Replace(body), &c) {
        tracing::debug!(error = ?e.message(), "updating {} {ns}/{name}", def.plural);
    }
}

fn create(st: &mut State, def: &Arc<ResourceDef>, ns: &str, body: Value) {
    let mut c = ctx(MANAGER);
    c.subresource = None;
    if let Err(e) = st.write(def, ns, "", Write::Create(body), &c) {
        tracing::debug!(error = ?e.message(), "creating {} in {ns}", def.plural);
    }
}

/// A graceful DELETE, as a controller sends it.
fn delete(st: &mut State, def: &Arc<ResourceDef>, obj: &Value) {
    let opts = DeleteOpts {
        propagation: Some("Background".into()),
        ..Default::default()
    };
    let _ = st.delete(
        def,
        meta_str(obj, "namespace"),
        meta_str(obj, "name"),
        &opts,
        &now(),
    );
}

/// Pod readiness, as controllers count it.
fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn pod_running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
}

/// `maxSurge`/`maxUnavailable`: an absolute number or a percentage of `of` (surge rounds up,
/// unavailable down).
fn int_or_percent(v: &Value, of: i64, round_up: bool, default: &str) -> i64 {
    let v = if v.is_null() {
        json!(default)
    } else {
        v.clone()
    };
    if let Some(n) = v.as_i64() {
        return n;
    }
    let p: f64 = v
        .as_str()
        .unwrap_or(default)
        .trim_end_matches('%')
        .parse()
        .unwrap_or(25.0);
    let x = p * of as f64 / 100.0;
    if round_up {
        x.ceil() as i64
    } else {
        x.floor() as i64
    }
}

fn pod_template_hash(template: &Value) -> String {
    short_hash(template)
}

/// A Pod made from a template: labels, owner, and the template's spec.
fn pod_from_template(
    template: &Value,
    owner: &Value,
    name: Option<&str>,
    prefix: &str,
    extra_labels: &[(&str, &str)],
) -> Value {
    let mut labels: Map<String, Value> = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (k, v) in extra_labels {
        labels.insert((*k).into(), json!(v));
    }
    let mut md = json!({"namespace": owner["metadata"]["namespace"], "labels": labels,
        "ownerReferences": [controller_ref(owner)]});
    match name {
        Some(n) => md["name"] = json!(n),
        None => md["generateName"] = json!(format!("{prefix}-")),
    }
    if let Some(a) = template["metadata"].get("annotations") {
        md["annotations"] = a.clone();
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": template["spec"].clone()})
}

// ---- Deployments -------------------------------------------------------------------------

/// The Deployment controller: one ReplicaSet per pod template, rolled over by the strategy;
/// status from the Pods; `Progressing=False, ProgressDeadlineExceeded` past the deadline.
pub fn deployment(st: &mut State, ns: &str, name: &str, orphans: &[String]) -> Requeue {
    let def = st.def("apps", "v1", "deployments")?;
    let rs_def = st.def("apps", "v1", "replicasets")?;
    let d = st.get_stored(&def, ns, name)?;
    if deleting(&d) {
        return None;
    }
    let spec = &d["spec"];
    let desired = spec["replicas"].as_i64().unwrap_or(1);
    let uid = meta_str(&d, "uid").to_string();
    adopt(st, &rs_def, &d, orphans);
    let hash = pod_template_hash(&spec["template"]);
    let new_name = format!("{name}-{hash}");
    let sets = controlled(st, "apps/replicasets", &uid);
    let new_rs = sets
        .iter()
        .find(|r| meta_str(r, "name") == new_name)
        .cloned();
    let old: Vec<Arc<Value>> = sets
        .iter()
        .filter(|r| meta_str(r, "name") != new_name)
        .cloned()
        .collect();
    let paused = spec["paused"] == true;
    let recreate = spec.pointer("/strategy/type").and_then(Value::as_str) == Some("Recreate");
    let surge = int_or_percent(
        spec.pointer("/strategy/rollingUpdate/maxSurge")
            .unwrap_or(&Value::Null),
        desired,
        true,
        "25%",
    );
    let max_unavailable = int_or_percent(
        spec.pointer("/strategy/rollingUpdate/maxUnavailable")
            .unwrap_or(&Value::Null),
        desired,
        false,
        "25%",
    )
    .max(if surge == 0 { 1 } else { 0 });
    let pods_of = |st: &State, rs: &Value| controlled(st, "pods", meta_str(rs, "uid"));
    let old_replicas: i64 = old
        .iter()
        .map(|r| r["spec"]["replicas"].as_i64().unwrap_or(0))
        .sum();
    if !paused {
        let new_replicas = new_rs
            .as_ref()
            .map_or(0, |r| r["spec"]["replicas"].as_i64().unwrap_or(0));
        // Scale up the new ReplicaSet within the surge (Recreate: once the old Pods are gone).
        let old_pods_left = old.iter().any(|r| !pods_of(st, r).is_empty());
        let target = if recreate {
            if old_replicas == 0 && !old_pods_left {
                desired
            } else {
                0
            }
        } else if old_replicas == 0 {
            desired
        } else {
            desired.min((desired + surge - old_replicas).max(new_replicas))
        };
        match &new_rs {
            None => {
                let mut template = spec["template"].clone();
                template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                let mut selector = spec["selector"].clone();
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let mut labels = template["metadata"]["labels"].clone();
                labels["pod-template-hash"] = json!(hash);
                let revision = sets
                    .iter()
                    .filter_map(|r| {
                        r.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse::<i64>().ok())
                    })
                    .max()
                    .unwrap_or(0)
                    + 1;
                let body = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": new_name, "namespace": ns, "labels": labels,
                        "annotations": {"deployment.kubernetes.io/desired-replicas": desired.to_string(),
                            "deployment.kubernetes.io/max-replicas": (desired + surge).to_string(),
                            "deployment.kubernetes.io/revision": revision.to_string()},
                        "ownerReferences": [controller_ref(&d)]},
                    "spec": {"replicas": target, "selector": selector, "template": template,
                        "minReadySeconds": spec["minReadySeconds"].as_i64().unwrap_or(0)}});
                create(st, &rs_def, ns, body);
            }
            Some(rs) if new_replicas != target => {
                let mut body = (**rs).clone();
                body["spec"]["replicas"] = json!(target);
                replace(st, &rs_def, ns, &body);
            }
            _ => {}
        }
        // Scale down old ReplicaSets as far as availability allows (Recreate: at once).
        let available = |st: &State, rs: &Value| {
            pods_of(st, rs)
                .iter()
                .filter(|p| !deleting(p) && pod_ready(p))
                .count() as i64
        };
        let new_available = new_rs.as_ref().map_or(0, |r| available(st, r));
        let old_available: i64 = old.iter().map(|r| available(st, r)).sum();
        let mut can_remove = if recreate {
            old_replicas
        } else {
            (old_available + new_available - (desired - max_unavailable)).max(0)
        };
        for rs in &old {
            let r = rs["spec"]["replicas"].as_i64().unwrap_or(0);
            // Old Pods that are not available may go at once.
            let unavailable = r - available(st, rs);
            let down = (can_remove + unavailable.max(0)).min(r);
            if down > 0 {
                can_remove -= (down - unavailable.max(0)).max(0);
                let mut body = (**rs).clone();
                body["spec"]["replicas"] = json!(r - down);
                replace(st, &rs_def, ns, &body);
            }
        }
    }
    deployment_status(st, &def, ns, name, &new_name, desired, max_unavailable)
}

fn deployment_status(
    st: &mut State,
    def: &Arc<ResourceDef>,
    ns: &str,
    name: &str,
    new_name: &str,
    desired: i64,
    max_unavailable: i64,
) -> Requeue {
    let d = st.get_stored(def, ns, name)?;
    let uid = meta_str(&d, "uid").to_string();
    let sets = controlled(st, "apps/replicasets", &uid);
    let (mut replicas, mut updated, mut ready, mut terminating) = (0, 0, 0, 0);
    for rs in &sets {
        let is_new = meta_str(rs, "name") == new_name;
        for p in controlled(st, "pods", meta_str(rs, "uid")) {
            if deleting(&p) {
                terminating += 1;
                continue;
            }
            replicas += 1;
            if is_new {
                updated += 1;
            }
            if pod_ready(&p) {
                ready += 1;
            }
        }
    }
    let available = ready;
    let old = &d["status"];
    let mut s = json!({"observedGeneration": d["metadata"]["generation"]});
    let put = |s: &mut Value, k: &str, n: i64| {
        if n != 0 {
            s[k] = json!(n);
        }
    };
    put(&mut s, "replicas", replicas);
    put(&mut s, "updatedReplicas", updated);
    put(&mut s, "readyReplicas", ready);
    put(&mut s, "availableReplicas", available);
    put(&mut s, "unavailableReplicas", (desired - available).max(0));
    s["terminatingReplicas"] = json!(terminating);
    let available_cond = if available >= desired - max_unavailable {
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
    let complete =
        updated == desired && replicas == desired && available == desired && terminating == 0;
    let deadline = d["spec"]["progressDeadlineSeconds"].as_i64().unwrap_or(600);
    let progressed = [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ]
    .iter()
    .any(|k| old.get(*k) != s.get(*k))
        || old["observedGeneration"] != s["observedGeneration"];
    let prev = old["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"));
    let since = prev
        .and_then(|p| p["lastUpdateTime"].as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds())
        .unwrap_or(0);
    let timed_out = prev.is_some_and(|p| p["reason"] == "ProgressDeadlineExceeded");
    let mut requeue = None;
    let progressing = if complete {
        condition(
            old,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet {new_name:?} has successfully progressed."),
            true,
        )
    } else if timed_out || (!progressed && since >= deadline * 1000) {
        condition(
            old,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            &format!("ReplicaSet {new_name:?} has timed out progressing."),
            true,
        )
    } else {
        let left = if progressed {
            deadline * 1000
        } else {
            deadline * 1000 - since
        };
        requeue = Some(Duration::from_millis(left.clamp(50, 60_000) as u64 + 10));
        let c = condition(
            old,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet {new_name:?} is progressing."),
            true,
        );
        if progressed {
            let mut c = c;
            c["lastUpdateTime"] = json!(now());
            c
        } else {
            c
        }
    };
    s["conditions"] = json!([available_cond, progressing]);
    write_status(st, "apps", "v1", "deployments", &d, s);
    requeue
}

// ---- ReplicaSets ---------------------------------------------------------------------------

/// The ReplicaSet controller: as many Pods as `spec.replicas` (surplus: not-ready first,
/// newest first); status from the Pods.
pub fn replicaset(st: &mut State, ns: &str, name: &str, orphans: &[String]) -> Requeue {
    let def = st.def("apps", "v1", "replicasets")?;
    let pod_def = st.def("", "v1", "pods")?;
    let rs = st.get_stored(&def, ns, name)?;
    if deleting(&rs) {
        return None;
    }
    adopt(st, &pod_def, &rs, orphans);
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1);
    let pods: Vec<Arc<Value>> = controlled(st, "pods", meta_str(&rs, "uid"))
        .into_iter()
        .filter(|p| !deleting(p))
        .collect();
    let have = pods.len() as i64;
    if have < want {
        let hash = rs["metadata"]["labels"]["pod-template-hash"]
            .as_str()
            .unwrap_or("")
            .to_string();
        for _ in have..want {
            let extra: Vec<(&str, &str)> = if hash.is_empty() {
                Vec::new()
            } else {
                vec![("pod-template-hash", hash.as_str())]
            };
            let body = pod_from_template(&rs["spec"]["template"], &rs, None, name, &extra);
            create(st, &pod_def, ns, body);
        }
    } else if have > want {
        let mut victims = pods.clone();
        victims.sort_by_key(|p| {
            (
                pod_ready(p),
                std::cmp::Reverse(meta_str(p, "creationTimestamp").to_string()),
            )
        });
        for p in victims.iter().take((have - want) as usize) {
            delete(st, &pod_def, p);
        }
    }
    let pods = controlled(st, "pods", meta_str(&rs, "uid"));
    let live: Vec<&Arc<Value>> = pods.iter().filter(|p| !deleting(p)).collect();
    let ready = live.iter().filter(|p| pod_ready(p)).count() as i64;
    let mut s = json!({"replicas": live.len(), "fullyLabeledReplicas": live.len(),
        "observedGeneration": rs["metadata"]["generation"]});
    if ready > 0 {
        s["readyReplicas"] = json!(ready);
        s["availableReplicas"] = json!(ready);
    }
    s["terminatingReplicas"] = json!(pods.len() - live.len());
    if live.is_empty() {
        s.as_object_mut().map(|m| m.remove("fullyLabeledReplicas"));
    }
    write_status(st, "apps", "v1", "replicasets", &rs, s);
    None
}

// ---- StatefulSets --------------------------------------------------------------------------

/// The StatefulSet controller: claims and Pods `<name>-<ordinal>` (OrderedReady: one at a
/// time, each after the previous is Running and Ready; Parallel: all at once), rolling
/// updates from the highest ordinal down to the partition, scale-down from the highest
/// ordinal; current and update revisions.
pub fn statefulset(st: &mut State, ns: &str, name: &str, orphans: &[String]) -> Requeue {
    let def = st.def("apps", "v1", "statefulsets")?;
    let pod_def = st.def("", "v1", "pods")?;
    let sts = st.get_stored(&def, ns, name)?;
    if deleting(&sts) {
        return None;
    }
    let spec = &sts["spec"];
    let desired = spec["replicas"].as_i64().unwrap_or(1);
    super::ensure_pvcs(st, &sts, desired);
    adopt(st, &pod_def, &sts, orphans);
    let update_revision = format!("{name}-{}", short_hash(&spec["template"]));
    let uid = meta_str(&sts, "uid").to_string();
    let pods = controlled(st, "pods", &uid);
    let by_ordinal = |i: i64| {
        pods.iter()
            .find(|p| meta_str(p, "name") == format!("{name}-{i}"))
            .cloned()
    };
    let revision_of = |p: &Value| {
        p["metadata"]["labels"]["controller-revision-hash"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let parallel = spec["podManagementPolicy"] == "Parallel";
    let on_delete =
        spec.pointer("/updateStrategy/type").and_then(Value::as_str) == Some("OnDelete");
    let partition = spec
        .pointer("/updateStrategy/rollingUpdate/partition")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let current_revision = sts["status"]["currentRevision"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(&update_revision)
        .to_string();
    let mut busy = false;
    for i in 0..desired {
        match by_ordinal(i) {
            None => {
                if busy && !parallel {
                    break;
                }
                // Below the partition, a missing Pod comes back at the current revision.
                let (rev, template) = if i < partition && current_revision != update_revision {
                    (current_revision.clone(), spec["template"].clone())
                } else {
                    (update_revision.clone(), spec["template"].clone())
                };
                let pod_name = format!("{name}-{i}");
                let index = i.to_string();
                let mut body = pod_from_template(
                    &template,
                    &sts,
                    Some(&pod_name),
                    name,
                    &[
                        ("controller-revision-hash", &rev),
                        ("statefulset.kubernetes.io/pod-name", &pod_name),
                        ("apps.kubernetes.io/pod-index", &index),
                    ],
                );
                body["spec"]["hostname"] = json!(pod_name);
                if let Some(svc) = spec["serviceName"].as_str().filter(|s| !s.is_empty()) {
                    body["spec"]["subdomain"] = json!(svc);
                }
                let vols = body["spec"]
                    .as_object_mut()
                    .expect("spec")
                    .entry("volumes")
                    .or_insert_with(|| json!([]));
                for t in spec["volumeClaimTemplates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let tname = t["metadata"]["name"].as_str().unwrap_or("");
                    if let Some(a) = vols.as_array_mut() {
                        a.push(json!({"name": tname,
                            "persistentVolumeClaim": {"claimName": format!("{tname}-{name}-{i}")}}));
                    }
                }
                create(st, &pod_def, ns, body);
                busy = true;
            }
            Some(p) if deleting(&p) => busy = true,
            Some(p) if !(pod_running(&p) && pod_ready(&p)) => busy = true,
            Some(_) => {}
        }
    }
    // Scale down from the highest ordinal.
    let mut extra: Vec<Arc<Value>> = pods
        .iter()
        .filter(|p| {
            meta_str(p, "name")
                .rsplit('-')
                .next()
                .and_then(|n| n.parse::<i64>().ok())
                .is_some_and(|n| n >= desired)
        })
        .cloned()
        .collect();
    extra.sort_by_key(|p| std::cmp::Reverse(meta_str(p, "name").to_string()));
    for p in extra.iter().filter(|p| !deleting(p)) {
        delete(st, &pod_def, p);
        if !parallel {
            break;
        }
    }
    // Rolling update: the highest ordinal at the old revision goes once the rest is ready.
    if !on_delete && !busy && extra.is_empty() {
        for i in (partition..desired).rev() {
            if let Some(p) = by_ordinal(i)
                && revision_of(&p) != update_revision
            {
                delete(st, &pod_def, &p);
                break;
            }
        }
    }
    // Status.
    let pods = controlled(st, "pods", &uid);
    let live: Vec<&Arc<Value>> = pods.iter().filter(|p| !deleting(p)).collect();
    let count = |f: &dyn Fn(&Value) -> bool| live.iter().filter(|p| f(p)).count() as i64;
    let ready = count(&|p| pod_ready(p));
    let updated = count(&|p| revision_of(p) == update_revision);
    let current = count(&|p| revision_of(p) == current_revision);
    let done = updated == desired && live.len() as i64 == desired && ready == desired;
    let current_revision = if done || sts["status"]["currentRevision"].is_null() {
        update_revision.clone()
    } else {
        current_revision
    };
    let mut s = json!({"observedGeneration": sts["metadata"]["generation"], "replicas": live.len(),
        "availableReplicas": ready});
    if ready > 0 {
        s["readyReplicas"] = json!(ready);
    }
    let current = if current_revision == update_revision {
        updated
    } else {
        current
    };
    if current > 0 {
        s["currentReplicas"] = json!(current);
    }
    if updated > 0 {
        s["updatedReplicas"] = json!(updated);
    }
    s["currentRevision"] = json!(current_revision);
    s["updateRevision"] = json!(update_revision);
    s["collisionCount"] = json!(0);
    write_status(st, "apps", "v1", "statefulsets", &sts, s);
    None
}

// ---- Pods: scheduler and kubelet ----------------------------------------------------------

/// A stable address for a node (`172.18.0.x`) or a Pod (`10.244.x.y`).
fn ip(prefix: &str, name: &str) -> String {
    let h = name
        .bytes()
        .fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    if prefix.matches('.').count() >= 2 {
        format!("{prefix}.{}", h % 250 + 2)
    } else {
        format!("{prefix}.{}.{}", (h >> 8) % 250 + 1, h % 250 + 2)
    }
}

fn pod_condition(old: &Value, ty: &str, status: &str, reason: Option<(&str, &str)>) -> Value {
    let prev = old["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty));
    let t = prev
        .filter(|p| p["status"] == status)
        .and_then(|p| p["lastTransitionTime"].as_str())
        .map(String::from)
        .unwrap_or_else(now);
    let mut c =
        json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": t});
    if let Some((r, m)) = reason {
        c["reason"] = json!(r);
        if !m.is_empty() {
            c["message"] = json!(m);
        }
    }
    c
}

/// The scheduler and the kubelet for one Pod. Returns when to look again (a Pod waiting for
/// a Secret, or being pulled, or terminating).
pub fn pod(
    st: &mut State,
    ns: &str,
    name: &str,
    images: &Images,
    ready: bool,
    grace: Duration,
) -> Requeue {
    let def = st.def("", "v1", "pods")?;
    let p = st.get_stored(&def, ns, name)?;
    if deleting(&p) {
        // The kubelet stops the containers, then removes the Pod.
        let opts = DeleteOpts {
            grace: Some(0),
            ..Default::default()
        };
        let _ = st.delete(&def, ns, name, &opts, &now());
        return None;
    }
    let lookup = |plural: &str, n: &str| {
        st.def("", "v1", plural)
            .and_then(|d| st.get_stored(&d, ns, n))
            .map(|o| (*o).clone())
    };
    let secrets = |n: &str| lookup("secrets", n);
    let config_maps = |n: &str| lookup("configmaps", n);
    let claim_phase = |n: &str| {
        lookup("persistentvolumeclaims", n).map(|c| {
            c["status"]["phase"]
                .as_str()
                .unwrap_or("Pending")
                .to_string()
        })
    };
    let world = World {
        secrets: &secrets,
        config_maps: &config_maps,
        claim_phase: &claim_phase,
        images,
        workloads_ready: ready,
    };
    let old = &p["status"];
    let node = p["spec"]["nodeName"].as_str().unwrap_or("").to_string();
    if node.is_empty() {
        match kubelet::schedule(&p, &world) {
            Ok(n) => {
                let mut body = (*p).clone();
                body["spec"]["nodeName"] = json!(n);
                if let Some(md) = body["metadata"].as_object_mut() {
                    md.remove("managedFields");
                }
                let mut c = ctx("kube-scheduler");
                c.subresource = None;
                let _ = st.write(&def, ns, name, Write::Replace(body), &c);
                return Some(Duration::from_millis(1));
            }
            Err(message) => {
                let mut s = (*old).clone();
                s["phase"] = json!("Pending");
                s["conditions"] = json!([pod_condition(
                    old,
                    "PodScheduled",
                    "False",
                    Some(("Unschedulable", &message))
                )]);
                write_status(st, "", "v1", "pods", &p, s);
                // The scheduler tries again when a claim in the namespace changes (see
                // `super::index`); nothing else that decides where a Pod fits changes here.
                return None;
            }
        }
    }
    let mut statuses = Vec::new();
    let mut all_ready = true;
    let mut any_running = false;
    let mut again = None;
    let start = old["startTime"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(now);
    for c in p["spec"]["containers"].as_array().into_iter().flatten() {
        let cname = c["name"].as_str().unwrap_or("");
        let previous = old["containerStatuses"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == cname));
        let image = c["image"].as_str().unwrap_or("");
        let mut cs = json!({"name": cname, "image": image, "imageID": "", "lastState": {},
            "restartCount": 0, "ready": false, "started": false});
        let run = kubelet::run(&p, c, previous, &world);
        match run {
            Run::Ready | Run::NotReady => {
                let r = run == Run::Ready;
                let since = previous
                    .and_then(|x| x.pointer("/state/running/startedAt"))
                    .and_then(Value::as_str)
                    .map(String::from)
                    .unwrap_or_else(now);
                cs["state"] = json!({"running": {"startedAt": since}});
                cs["ready"] = json!(r);
                cs["started"] = json!(true);
                cs["containerID"] = json!(format!(
                    "containerd://{}",
                    short_hash(&json!([name, cname]))
                ));
                cs["imageID"] = json!(format!("{image}@sha256:{}", "0".repeat(64)));
                any_running = true;
                all_ready &= r;
            }
            Run::Waiting {
                reason,
                message,
                exit_code,
            } => {
                all_ready = false;
                cs["state"] = json!({"waiting": {"reason": reason, "message": message}});
                if let Some(code) = exit_code {
                    let t = now();
                    let kept = previous
                        .and_then(|x| x.pointer("/lastState/terminated"))
                        .filter(|t| t["exitCode"] == code);
                    cs["lastState"] = match kept {
                        Some(k) => json!({"terminated": k}),
                        None => json!({"terminated": {"exitCode": code, "reason": "Error",
                            "startedAt": t, "finishedAt": t,
                            "containerID": format!("containerd://{}", short_hash(&json!([name, cname])))}}),
                    };
                    cs["restartCount"] = json!(
                        previous
                            .and_then(|x| x["restartCount"].as_i64())
                            .unwrap_or(0)
                            .max(1)
                    );
                    any_running = true;
                } else if reason == "ErrImagePull" {
                    // Pull back-off follows a failed pull. A container waiting for its
                    // configuration is looked at again when a Secret or ConfigMap of the
                    // namespace changes (see `super::index`).
                    again = Some(grace.max(Duration::from_millis(200)));
                }
            }
        }
        statuses.push(cs);
    }
    let unready: Vec<String> = statuses
        .iter()
        .filter(|c| c["ready"] != true)
        .filter_map(|c| c["name"].as_str().map(|n| n.to_string()))
        .collect();
    let not_ready_msg = format!("containers with unready status: [{}]", unready.join(" "));
    let ready_cond = |ty: &str| {
        if all_ready {
            pod_condition(old, ty, "True", None)
        } else {
            pod_condition(
                old,
                ty,
                "False",
                Some(("ContainersNotReady", &not_ready_msg)),
            )
        }
    };
    let s = json!({
        "phase": if any_running { "Running" } else { "Pending" },
        "conditions": [
            pod_condition(old, "PodReadyToStartContainers", "True", None),
            pod_condition(old, "Initialized", "True", None),
            ready_cond("Ready"),
            ready_cond("ContainersReady"),
            pod_condition(old, "PodScheduled", "True", None),
        ],
        "hostIP": ip("172.18.0", &node),
        "hostIPs": [{"ip": ip("172.18.0", &node)}],
        "podIP": ip("10.244", name),
        "podIPs": [{"ip": ip("10.244", name)}],
        "startTime": start,
        "containerStatuses": statuses,
        "qosClass": old["qosClass"].as_str().unwrap_or("BestEffort"),
    });
    write_status(st, "", "v1", "pods", &p, s);
    again
}

/// Whether a Pod that is not terminating mounts the claim (a kubelet finishes a file system
/// resize only then).
pub fn claim_in_use(st: &State, ns: &str, claim: &str) -> bool {
    let Some(b) = st.bucket("pods") else {
        return false;
    };
    b.objects
        .range((ns.to_string(), String::new())..)
        .take_while(|((n, _), _)| n == ns)
        .any(|(_, p)| {
            !deleting(p)
                && pod_running(p)
                && p["spec"]["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|v| v.pointer("/persistentVolumeClaim/claimName") == Some(&json!(claim)))
        })
}
