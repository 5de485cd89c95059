//! What the stand-in controllers look up often, kept up to date from the stream of changes (as
//! the real controllers keep informer indexes), so that one object's change costs the same with
//! ten objects in a namespace or ten thousand:
//!
//! - orphans: Pods and ReplicaSets without a controller reference (what a workload whose
//!   selector matches them adopts);
//! - waiting Pods: not scheduled yet (a claim may bind) or with a container waiting for its
//!   configuration (a Secret or ConfigMap may appear);
//! - HPAs by their scale target.
//!
//! Changes arrive in the order they were stored, and every job is scheduled while (or after)
//! the change that caused it is indexed, so a job never misses what caused it. Entries may be
//! stale (a later change is not indexed yet): whoever reads one checks the stored object.

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// (namespace, name).
type Key = (String, String);

#[derive(Default)]
pub struct Index {
    orphans: HashMap<&'static str, BTreeSet<Key>>,
    waiting_pods: BTreeSet<Key>,
    /// (namespace, target kind, target name) -> HPA names.
    hpa_targets: HashMap<(String, String, String), BTreeSet<String>>,
    /// HPA (namespace, name) -> its target's (kind, name), to drop the old entry on a change.
    hpa_target_of: HashMap<Key, (String, String)>,
}

/// The store keys whose orphans a workload adopts.
const ADOPTABLE: [&str; 2] = ["pods", "apps/replicasets"];

fn key_of(obj: &Value) -> Key {
    let md = &obj["metadata"];
    (
        md["namespace"].as_str().unwrap_or("").to_string(),
        md["name"].as_str().unwrap_or("").to_string(),
    )
}

fn has_controller(obj: &Value) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["controller"] == true)
}

/// Whether a Pod waits for something other than itself: a node (its claims binding) or its
/// configuration (a Secret or ConfigMap, or a key in one).
pub fn pod_waits_outside(p: &Value) -> bool {
    if p["metadata"].get("deletionTimestamp").is_some() {
        return false;
    }
    p["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
        || p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c.pointer("/state/waiting/reason") == Some(&"CreateContainerConfigError".into())
            })
}

impl Index {
    /// An object of `store_key` was created or changed.
    pub fn changed(&mut self, store_key: &str, obj: &Value) {
        let key = key_of(obj);
        if let Some(k) = ADOPTABLE.iter().find(|k| **k == store_key) {
            let set = self.orphans.entry(k).or_default();
            if has_controller(obj) || obj["metadata"].get("deletionTimestamp").is_some() {
                set.remove(&key);
            } else {
                set.insert(key.clone());
            }
        }
        match store_key {
            "pods" if pod_waits_outside(obj) => {
                self.waiting_pods.insert(key);
            }
            "pods" => {
                self.waiting_pods.remove(&key);
            }
            "autoscaling/horizontalpodautoscalers" => {
                let t = &obj["spec"]["scaleTargetRef"];
                let target = (
                    t["kind"].as_str().unwrap_or("").to_string(),
                    t["name"].as_str().unwrap_or("").to_string(),
                );
                self.drop_hpa(&key);
                self.hpa_targets
                    .entry((key.0.clone(), target.0.clone(), target.1.clone()))
                    .or_default()
                    .insert(key.1.clone());
                self.hpa_target_of.insert(key, target);
            }
            _ => {}
        }
    }

    /// An object of `store_key` was deleted.
    pub fn deleted(&mut self, store_key: &str, obj: &Value) {
        let key = key_of(obj);
        if let Some(set) = self.orphans.get_mut(store_key) {
            set.remove(&key);
        }
        match store_key {
            "pods" => {
                self.waiting_pods.remove(&key);
            }
            "autoscaling/horizontalpodautoscalers" => self.drop_hpa(&key),
            _ => {}
        }
    }

    fn drop_hpa(&mut self, key: &Key) {
        if let Some((kind, name)) = self.hpa_target_of.remove(key) {
            let t = (key.0.clone(), kind, name);
            if let Some(set) = self.hpa_targets.get_mut(&t) {
                set.remove(&key.1);
                if set.is_empty() {
                    self.hpa_targets.remove(&t);
                }
            }
        }
    }

    /// Names of objects of `store_key` in `ns` without a controller.
    pub fn orphans(&self, store_key: &str, ns: &str) -> Vec<String> {
        in_namespace(self.orphans.get(store_key), ns)
    }

    /// Names of Pods in `ns` that wait for a node or their configuration.
    pub fn waiting_pods(&self, ns: &str) -> Vec<String> {
        in_namespace(Some(&self.waiting_pods), ns)
    }

    /// HPAs in `ns` whose scale target is `kind`/`name`.
    pub fn hpas_targeting(&self, ns: &str, kind: &str, name: &str) -> Vec<String> {
        self.hpa_targets
            .get(&(ns.to_string(), kind.to_string(), name.to_string()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn in_namespace(set: Option<&BTreeSet<Key>>, ns: &str) -> Vec<String> {
    let Some(set) = set else {
        return Vec::new();
    };
    set.range((ns.to_string(), String::new())..)
        .take_while(|(n, _)| n == ns)
        .map(|(_, name)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn orphans_waiting_pods_and_hpa_targets_follow_changes() {
        let mut ix = Index::default();
        let owned = json!({"metadata": {"namespace": "a", "name": "p1",
            "ownerReferences": [{"controller": true, "uid": "u"}]},
            "spec": {"nodeName": "node-1"}});
        let mut orphan = owned.clone();
        orphan["metadata"]["ownerReferences"] = json!([]);
        ix.changed("pods", &orphan);
        assert_eq!(ix.orphans("pods", "a"), ["p1"]);
        assert!(ix.orphans("pods", "b").is_empty());
        assert!(ix.waiting_pods("a").is_empty());
        ix.changed("pods", &owned);
        assert!(ix.orphans("pods", "a").is_empty());

        let mut unscheduled = owned.clone();
        unscheduled["spec"]["nodeName"] = json!("");
        ix.changed("pods", &unscheduled);
        assert_eq!(ix.waiting_pods("a"), ["p1"]);
        let mut config = owned.clone();
        config["status"] = json!({"containerStatuses": [{"state": {"waiting":
            {"reason": "CreateContainerConfigError"}}}]});
        ix.changed("pods", &config);
        assert_eq!(ix.waiting_pods("a"), ["p1"]);
        ix.deleted("pods", &config);
        assert!(ix.waiting_pods("a").is_empty());

        let hpa = |target: &str| {
            json!({"metadata": {"namespace": "a", "name": "h"},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": target}}})
        };
        ix.changed("autoscaling/horizontalpodautoscalers", &hpa("web"));
        assert_eq!(ix.hpas_targeting("a", "Deployment", "web"), ["h"]);
        ix.changed("autoscaling/horizontalpodautoscalers", &hpa("api"));
        assert!(ix.hpas_targeting("a", "Deployment", "web").is_empty());
        assert_eq!(ix.hpas_targeting("a", "Deployment", "api"), ["h"]);
        ix.deleted("autoscaling/horizontalpodautoscalers", &hpa("api"));
        assert!(ix.hpas_targeting("a", "Deployment", "api").is_empty());
    }
}
