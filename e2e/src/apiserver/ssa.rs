//! Server-side apply: field sets of applied configurations, merging an applied configuration
//! into the live object, comparing objects, pruning fields a manager stopped applying, and the
//! `metadata.managedFields` bookkeeping shared by apply and update operations.

use super::fieldset::{FieldSet, path_string, pe_field};
use super::shape::{ListKind, Shape};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The path element of one list item, or `None` when it has no usable key.
pub fn item_pe(item: &Value, kind: &ListKind, index: usize) -> String {
    match kind {
        ListKind::Set => format!("v:{}", serde_json::to_string(item).unwrap_or_default()),
        ListKind::Map { keys, defaults, .. } => {
            let mut m = Map::new();
            for k in keys {
                let v = item.get(k).cloned().or_else(|| {
                    defaults
                        .iter()
                        .find(|(dk, _)| dk == k)
                        .map(|(_, d)| d.clone())
                });
                if let Some(v) = v {
                    m.insert(k.clone(), v);
                }
            }
            if m.is_empty() {
                format!("i:{index}")
            } else {
                format!("k:{}", Value::Object(m))
            }
        }
        ListKind::Atomic => format!("i:{index}"),
    }
}

fn is_granular_list(shape: &Shape) -> Option<ListKind> {
    match shape.list_kind() {
        ListKind::Atomic => None,
        k => Some(k),
    }
}

/// The set of fields an applied configuration specifies.
pub fn applied_set(cfg: &Value, shape: &Shape) -> FieldSet {
    let mut set = FieldSet::new();
    let mut path = Vec::new();
    walk_applied(cfg, shape, &mut path, &mut set);
    set
}

fn walk_applied(v: &Value, shape: &Shape, path: &mut Vec<String>, set: &mut FieldSet) {
    match v {
        Value::Object(m) if !shape.map_atomic() => {
            for (k, c) in m {
                path.push(pe_field(k));
                walk_applied(c, &shape.child(k), path, set);
                path.pop();
            }
        }
        Value::Array(items) if is_granular_list(shape).is_some() => {
            let kind = shape.list_kind();
            let item_shape = shape.item();
            for (i, item) in items.iter().enumerate() {
                path.push(item_pe(item, &kind, i));
                set.insert(path);
                if matches!(kind, ListKind::Map { .. }) {
                    walk_applied(item, &item_shape, path, set);
                }
                path.pop();
            }
        }
        _ => set.insert(path),
    }
}

/// Inserts the path and every node below it (used for added and removed subtrees).
fn walk_all(v: &Value, shape: &Shape, path: &mut Vec<String>, set: &mut FieldSet) {
    set.insert(path);
    match v {
        Value::Object(m) if !shape.map_atomic() => {
            for (k, c) in m {
                path.push(pe_field(k));
                walk_all(c, &shape.child(k), path, set);
                path.pop();
            }
        }
        Value::Array(items) if is_granular_list(shape).is_some() => {
            let kind = shape.list_kind();
            let item_shape = shape.item();
            for (i, item) in items.iter().enumerate() {
                path.push(item_pe(item, &kind, i));
                if matches!(kind, ListKind::Map { .. }) {
                    walk_all(item, &item_shape, path, set);
                } else {
                    set.insert(path);
                }
                path.pop();
            }
        }
        _ => {}
    }
}

/// Merges an applied configuration into the live object.
pub fn merge(live: Option<&Value>, cfg: &Value, shape: &Shape) -> Value {
    match (cfg, live) {
        (Value::Object(c), live) if !shape.map_atomic() => {
            let mut out = match live {
                Some(Value::Object(l)) => l.clone(),
                _ => Map::new(),
            };
            for (k, cv) in c {
                if cv.is_null() {
                    out.remove(k);
                    continue;
                }
                let merged = merge(out.get(k), cv, &shape.child(k));
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(c), live) if is_granular_list(shape).is_some() => {
            let kind = shape.list_kind();
            let item_shape = shape.item();
            let l: &[Value] = match live {
                Some(Value::Array(l)) => l,
                _ => &[],
            };
            let atomic_items = matches!(
                kind,
                ListKind::Set
                    | ListKind::Map {
                        atomic_items: true,
                        ..
                    }
            );
            Value::Array(merge_list(l, c, &kind, |lv, rv| match (lv, atomic_items) {
                (Some(lv), false) => merge(Some(lv), rv, &item_shape),
                _ => rv.clone(),
            }))
        }
        _ => cfg.clone(),
    }
}

/// Merges associative list items keeping the order structured-merge-diff produces: applied items
/// in applied order, live-only items where they were.
fn merge_list(
    lhs: &[Value],
    rhs: &[Value],
    kind: &ListKind,
    merge_item: impl Fn(Option<&Value>, &Value) -> Value,
) -> Vec<Value> {
    let lpes: Vec<String> = lhs
        .iter()
        .enumerate()
        .map(|(i, v)| item_pe(v, kind, i))
        .collect();
    let rpes: Vec<String> = rhs
        .iter()
        .enumerate()
        .map(|(i, v)| item_pe(v, kind, i))
        .collect();
    let mut lidx: HashMap<&str, usize> = HashMap::new();
    for (i, p) in lpes.iter().enumerate() {
        lidx.entry(p.as_str()).or_insert(i);
    }
    let ridx: HashSet<&str> = rpes.iter().map(|s| s.as_str()).collect();
    let mut shared: std::collections::VecDeque<&str> = rpes
        .iter()
        .filter(|p| lidx.contains_key(p.as_str()))
        .map(|s| s.as_str())
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged: HashSet<&str> = HashSet::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            let pe = lpes[li].as_str();
            if pe == rpes[ri] {
                merged.insert(pe);
                out.push(merge_item(Some(&lhs[li]), &rhs[ri]));
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if ridx.contains(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            let pe = lpes[li].as_str();
            if !ridx.contains(pe) {
                out.push(lhs[li].clone());
                li += 1;
                continue;
            } else if merged.contains(pe) {
                li += 1;
                continue;
            }
        }
        if ri < rhs.len() {
            let pe = rpes[ri].as_str();
            merged.insert(pe);
            out.push(merge_item(lidx.get(pe).map(|&i| &lhs[i]), &rhs[ri]));
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

/// What changed between two versions of an object.
#[derive(Default, Debug)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

pub fn compare(old: &Value, new: &Value, shape: &Shape) -> Comparison {
    let mut c = Comparison::default();
    let mut path = Vec::new();
    cmp(old, new, shape, &mut path, &mut c);
    c
}

fn cmp(old: &Value, new: &Value, shape: &Shape, path: &mut Vec<String>, c: &mut Comparison) {
    // A null container (a Go nil slice or pointer serialised) counts as present and empty.
    let empty_list = Value::Array(Vec::new());
    let empty_map = Value::Object(Map::new());
    let old = match (old, new) {
        (Value::Null, Value::Array(_)) if is_granular_list(shape).is_some() => &empty_list,
        (Value::Null, Value::Object(_)) if !shape.map_atomic() => &empty_map,
        _ => old,
    };
    match (old, new) {
        (Value::Object(o), Value::Object(n)) if !shape.map_atomic() => {
            for (k, nv) in n {
                path.push(pe_field(k));
                match o.get(k) {
                    Some(ov) => cmp(ov, nv, &shape.child(k), path, c),
                    None => walk_all(nv, &shape.child(k), path, &mut c.added),
                }
                path.pop();
            }
            for (k, ov) in o {
                if !n.contains_key(k) {
                    path.push(pe_field(k));
                    walk_all(ov, &shape.child(k), path, &mut c.removed);
                    path.pop();
                }
            }
        }
        (Value::Array(o), Value::Array(n)) if is_granular_list(shape).is_some() => {
            let kind = shape.list_kind();
            let item_shape = shape.item();
            let keyed = matches!(kind, ListKind::Map { .. });
            let opes: BTreeMap<String, &Value> = o
                .iter()
                .enumerate()
                .map(|(i, v)| (item_pe(v, &kind, i), v))
                .collect();
            let npes: BTreeMap<String, &Value> = n
                .iter()
                .enumerate()
                .map(|(i, v)| (item_pe(v, &kind, i), v))
                .collect();
            for (pe, nv) in &npes {
                path.push(pe.clone());
                match opes.get(pe) {
                    Some(ov) if keyed => cmp(ov, nv, &item_shape, path, c),
                    Some(ov) => {
                        if ov != nv {
                            c.modified.insert(path);
                        }
                    }
                    None if keyed => walk_all(nv, &item_shape, path, &mut c.added),
                    None => c.added.insert(path),
                }
                path.pop();
            }
            for (pe, ov) in &opes {
                if !npes.contains_key(pe) {
                    path.push(pe.clone());
                    if keyed {
                        walk_all(ov, &item_shape, path, &mut c.removed);
                    } else {
                        c.removed.insert(path);
                    }
                    path.pop();
                }
            }
        }
        _ => {
            if old != new {
                c.modified.insert(path);
            }
        }
    }
}

/// Removes the field or list item at `path` from `obj`; containers left empty by the removal
/// go too.
pub fn remove_path(obj: &mut Value, path: &[String], shape: &Shape) -> bool {
    remove_path_at(obj, path, shape, true)
}

fn remove_path_at(obj: &mut Value, path: &[String], shape: &Shape, top: bool) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    if let Some(field) = first.strip_prefix("f:") {
        let Value::Object(m) = obj else { return false };
        if rest.is_empty() {
            return m.remove(field).is_some();
        }
        let child_shape = shape.child(field);
        let Some(child) = m.get_mut(field) else {
            return false;
        };
        let removed = remove_path_at(child, rest, &child_shape, false);
        if removed && !top && is_empty_container(child) {
            m.remove(field);
        }
        return removed;
    }
    let Value::Array(items) = obj else {
        return false;
    };
    let kind = shape.list_kind();
    let Some(pos) = items
        .iter()
        .enumerate()
        .position(|(i, v)| item_pe(v, &kind, i) == *first)
    else {
        return false;
    };
    if rest.is_empty() {
        items.remove(pos);
        return true;
    }
    let item_shape = shape.item();
    remove_path_at(&mut items[pos], rest, &item_shape, false)
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Paths the API server never records in managedFields.
pub fn strip_server_fields(set: &mut FieldSet) {
    for f in ["apiVersion", "kind"] {
        if let Some(c) = set.children.get_mut(&pe_field(f)) {
            c.member = false;
        }
    }
    if let Some(meta) = set.children.get_mut("f:metadata") {
        meta.member = false;
        for f in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            if let Some(c) = meta.children.get_mut(&pe_field(f)) {
                c.member = false;
            }
        }
        meta.children.remove("f:managedFields");
    }
    prune_empty(set);
}

fn prune_empty(set: &mut FieldSet) {
    set.children.retain(|_, c| {
        prune_empty(c);
        !c.is_empty()
    });
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub set: FieldSet,
}

impl ManagedEntry {
    pub fn same_identity(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// How conflict messages name a manager.
    pub fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == "Update" {
            s = format!("{s} using {} at {}", self.api_version, self.time);
        }
        s
    }

    /// The sort key of the encoded manager identity used by the API server.
    fn identity_key(&self) -> String {
        let mut m = Map::new();
        m.insert("manager".into(), Value::String(self.manager.clone()));
        m.insert("operation".into(), Value::String(self.operation.clone()));
        if self.operation == "Update" {
            m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        }
        if !self.subresource.is_empty() {
            m.insert(
                "subresource".into(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(m).to_string()
    }
}

pub fn decode_managed(obj: &Value) -> Vec<ManagedEntry> {
    let Some(items) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let manager = s("manager");
            if manager.is_empty() && e.get("fieldsV1").is_none() {
                return None;
            }
            Some(ManagedEntry {
                manager,
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                set: e
                    .get("fieldsV1")
                    .map(FieldSet::from_json)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Sorts entries the way the API server does (Apply before Update, then by time, manager and
/// subresource), drops managers left owning nothing, and serialises them.
pub fn encode_managed(entries: &mut Vec<ManagedEntry>) -> Value {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| a.time.cmp(&b.time))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    Value::Array(
        entries
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("manager".into(), json!(e.manager));
                m.insert("operation".into(), json!(e.operation));
                m.insert("apiVersion".into(), json!(e.api_version));
                m.insert("time".into(), json!(e.time));
                m.insert("fieldsType".into(), json!("FieldsV1"));
                m.insert("fieldsV1".into(), e.set.to_json());
                if !e.subresource.is_empty() {
                    m.insert("subresource".into(), json!(e.subresource));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// A field another manager owns with a different value than the applier asks for.
#[derive(Clone, Debug)]
pub struct Conflict {
    pub manager: String,
    pub sort_key: String,
    pub path: Vec<String>,
}

/// The 409 message and causes the API server gives for apply conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> (String, Vec<Value>) {
    let causes = conflicts
        .iter()
        .map(|c| {
            json!({"reason": "FieldManagerConflict",
                   "message": format!("conflict with {}", c.manager),
                   "field": path_string(&c.path)})
        })
        .collect();
    if conflicts.len() == 1 {
        let c = &conflicts[0];
        return (
            format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                c.manager,
                path_string(&c.path)
            ),
            causes,
        );
    }
    let mut lines = Vec::new();
    let mut last: Option<&str> = None;
    for c in conflicts {
        if last != Some(c.sort_key.as_str()) {
            lines.push(format!("conflicts with {}:", c.manager));
            last = Some(c.sort_key.as_str());
        }
        lines.push(format!("- {}", path_string(&c.path)));
    }
    (
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        ),
        causes,
    )
}

/// Finds the conflicts of `changed` with managers other than the applier, sorted by manager.
pub fn find_conflicts(
    entries: &[ManagedEntry],
    changed: &FieldSet,
    manager: &str,
    subresource: &str,
) -> Vec<Conflict> {
    let mut out = Vec::new();
    for e in entries {
        if e.same_identity(manager, "Apply", subresource) {
            continue;
        }
        let inter = e.set.intersection(changed);
        for p in inter.paths() {
            out.push(Conflict {
                manager: e.describe(),
                sort_key: e.identity_key(),
                path: p,
            });
        }
    }
    out.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy_shape() -> Shape<'static> {
        Shape::builtin("Deployment")
    }

    #[test]
    fn applied_set_matches_the_recorded_shape() {
        let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"a": "1"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "1"}},
              "template": {"spec": {"containers": [{"name": "web", "image": "nginx",
                 "ports": [{"name": "http", "containerPort": 8080}]}]}}}});
        let mut set = applied_set(&cfg, &deploy_shape());
        strip_server_fields(&mut set);
        assert_eq!(
            set.to_json(),
            json!({"f:metadata": {"f:labels": {"f:a": {}}},
                "f:spec": {"f:replicas": {}, "f:selector": {},
                  "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {},
                     "f:ports": {"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:name": {}}}}}}}}})
        );
    }

    #[test]
    fn merge_keeps_live_only_items_and_follows_applied_order() {
        let live = json!({"env": [{"name": "A", "value": "1"}, {"name": "X", "value": "x"}, {"name": "B", "value": "2"}]});
        let cfg = json!({"env": [{"name": "B", "value": "3"}, {"name": "A", "value": "1"}]});
        let shape = Shape::builtin("Pod")
            .child("spec")
            .child("containers")
            .item();
        let merged = merge(Some(&live), &cfg, &shape);
        let names: Vec<&str> = merged["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["X", "B", "A"]);
        assert_eq!(merged["env"][1]["value"], "3");
    }

    #[test]
    fn compare_reports_added_containers_as_members() {
        let old = json!({"spec": {}});
        let new = json!({"spec": {"strategy": {"type": "RollingUpdate"}, "replicas": 1}});
        let c = compare(&old, &new, &deploy_shape());
        assert_eq!(
            c.added.to_json(),
            json!({"f:spec": {"f:replicas": {}, "f:strategy": {".": {}, "f:type": {}}}})
        );
    }

    #[test]
    fn remove_path_drops_emptied_containers() {
        let mut obj = json!({"metadata": {"labels": {"a": "1"}}, "spec": {}});
        let shape = deploy_shape();
        assert!(remove_path(
            &mut obj,
            &["f:metadata".into(), "f:labels".into(), "f:a".into()],
            &shape
        ));
        assert_eq!(obj, json!({"metadata": {}, "spec": {}}));
    }
}
