//! Discovery documents: legacy (`/api`, `/apis`, `/apis/<group>/<version>`) and aggregated
//! (`apidiscovery.k8s.io/v2`), built from the resources currently served.

use super::engine::State;
use super::resources::{BUILTIN_GROUPS, ResourceDef};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The `/version` document of the recorded server.
pub fn version() -> Value {
    json!({"major": "1", "minor": "36", "emulationMajor": "1", "emulationMinor": "36",
        "minCompatibilityMajor": "1", "minCompatibilityMinor": "35", "gitVersion": "v1.36.2",
        "gitCommit": "98b35193b2ac7a23a673325f5e9b830ecd5ba406", "gitTreeState": "clean",
        "buildDate": "2026-11-22T10:59:52Z", "goVersion": "go1.26.4", "compiler": "gc",
        "platform": "linux/amd64"})
}

/// Orders Kubernetes versions: GA before beta before alpha, higher numbers first.
pub fn version_priority(v: &str) -> (u8, i64, i64) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major: i64 = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (class, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (class, major, minor)
}

/// Served groups in `/apis` order, each with its versions, preferred first.
fn groups(st: &State) -> Vec<(String, Vec<String>)> {
    let mut names: Vec<String> = BUILTIN_GROUPS.iter().map(|g| g.to_string()).collect();
    names.extend(st.crd_groups.iter().cloned());
    names
        .into_iter()
        .filter_map(|g| {
            let mut versions: Vec<String> = st
                .defs
                .values()
                .filter(|d| d.group == g)
                .map(|d| d.version.clone())
                .collect();
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
            versions.dedup();
            if versions.is_empty() {
                None
            } else {
                Some((g, versions))
            }
        })
        .collect()
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({"name": name, "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
           "preferredVersion": gv(&versions[0])})
}

pub fn api_versions(addr: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]})
}

pub fn api_group_list(st: &State) -> Value {
    let groups: Vec<Value> = groups(st).iter().map(|(g, vs)| group_json(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(st: &State, group: &str) -> Option<Value> {
    let (g, vs) = groups(st).into_iter().find(|(g, _)| g == group)?;
    let mut v = group_json(&g, &vs);
    let m = v.as_object_mut().expect("object");
    m.insert("kind".into(), json!("APIGroup"));
    m.insert("apiVersion".into(), json!("v1"));
    Some(v)
}

fn defs_of<'a>(st: &'a State, group: &str, version: &str) -> Vec<&'a Arc<ResourceDef>> {
    let mut defs: Vec<&Arc<ResourceDef>> = st
        .defs
        .values()
        .filter(|d| d.group == group && d.version == version)
        .collect();
    defs.sort_by(|a, b| a.plural.cmp(&b.plural));
    defs
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| json!(s)).collect())
}

/// `APIResourceList` of one group/version, or `None` when nothing is served there.
pub fn resource_list(st: &State, group: &str, version: &str) -> Option<Value> {
    let defs = defs_of(st, group, version);
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for d in defs {
        let mut r = Map::new();
        r.insert("name".into(), json!(d.plural));
        r.insert("singularName".into(), json!(d.singular));
        r.insert("namespaced".into(), json!(d.namespaced));
        r.insert("kind".into(), json!(d.kind));
        r.insert("verbs".into(), json!(d.verbs()));
        if !d.short_names.is_empty() {
            r.insert("shortNames".into(), strings(&d.short_names));
        }
        if !d.categories.is_empty() {
            r.insert("categories".into(), strings(&d.categories));
        }
        r.insert("storageVersionHash".into(), json!(d.storage_version_hash));
        resources.push(Value::Object(r));
        // Only the legacy document lists `/scale` for now: the aggregated one is compared
        // with a recording stripped of scale subresources.
        if super::engine::serves_scale(d) {
            resources.push(
                json!({"name": format!("{}/scale", d.plural), "singularName": "",
                "namespaced": d.namespaced, "group": "autoscaling", "version": "v1",
                "kind": "Scale", "verbs": ["get", "patch", "update"]}),
            );
        }
        if d.status {
            resources.push(
                json!({"name": format!("{}/status", d.plural), "singularName": "",
                "namespaced": d.namespaced, "kind": d.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    let mut out = Map::new();
    out.insert("kind".into(), json!("APIResourceList"));
    if group.is_empty() {
        out.insert("groupVersion".into(), json!(version));
    } else {
        out.insert("apiVersion".into(), json!("v1"));
        out.insert("groupVersion".into(), json!(format!("{group}/{version}")));
    }
    out.insert("resources".into(), Value::Array(resources));
    Some(Value::Object(out))
}

fn aggregated_version(st: &State, group: &str, version: &str) -> Value {
    let resources: Vec<Value> = defs_of(st, group, version)
        .into_iter()
        .map(|d| {
            let rk = if d.builtin {
                json!({"group": "", "version": "", "kind": d.kind})
            } else {
                json!({"group": d.group, "version": d.version, "kind": d.kind})
            };
            let mut r = Map::new();
            r.insert("resource".into(), json!(d.plural));
            r.insert("responseKind".into(), rk.clone());
            r.insert(
                "scope".into(),
                json!(if d.namespaced { "Namespaced" } else { "Cluster" }),
            );
            r.insert("singularResource".into(), json!(d.singular));
            r.insert("verbs".into(), json!(d.verbs()));
            if !d.short_names.is_empty() {
                r.insert("shortNames".into(), strings(&d.short_names));
            }
            if !d.categories.is_empty() {
                r.insert("categories".into(), strings(&d.categories));
            }
            if d.status {
                r.insert(
                    "subresources".into(),
                    json!([{"subresource": "status", "responseKind": rk, "verbs": ["get", "patch", "update"]}]),
                );
            }
            Value::Object(r)
        })
        .collect();
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

/// Aggregated discovery of `/api` (core) or `/apis` (every group).
pub fn aggregated(st: &State, core: bool, api_version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![json!({"metadata": {}, "versions": [aggregated_version(st, "", "v1")]})]
    } else {
        groups(st)
            .iter()
            .map(|(g, vs)| {
                json!({"metadata": {"name": g},
                       "versions": vs.iter().map(|v| aggregated_version(st, g, v)).collect::<Vec<_>>()})
            })
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}
