//! Field sets as server-side apply records them in `metadata.managedFields[].fieldsV1`.
//!
//! A set is a tree whose edges are path elements serialised the way the API server does:
//! `f:<field>`, `k:<json object of key fields>`, `v:<json value>` and `i:<index>`. A node is a
//! member when the path that ends there is owned; a node with children and membership carries
//! `".": {}` in the serialised form.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    pub member: bool,
    pub children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Parses a `fieldsV1` value.
    pub fn from_json(v: &Value) -> FieldSet {
        let mut set = FieldSet::new();
        if let Value::Object(map) = v {
            for (k, child) in map {
                if k == "." {
                    set.member = true;
                    continue;
                }
                let mut c = FieldSet::from_json(child);
                if c.children.is_empty() {
                    c.member = true;
                }
                set.children.insert(k.clone(), c);
            }
        }
        set
    }

    /// Serialises as `fieldsV1`.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            if c.is_empty() {
                continue;
            }
            map.insert(k.clone(), c.to_json());
        }
        Value::Object(map)
    }

    pub fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for pe in path {
            node = node.children.entry(pe.clone()).or_default();
        }
        node.member = true;
    }

    #[cfg(test)]
    pub fn contains(&self, path: &[String]) -> bool {
        let mut node = self;
        for pe in path {
            match node.children.get(pe) {
                Some(c) => node = c,
                None => return false,
            }
        }
        node.member
    }

    /// True when the path itself or anything below it is a member.
    pub fn has_at_or_below(&self, path: &[String]) -> bool {
        let mut node = self;
        for pe in path {
            match node.children.get(pe) {
                Some(c) => node = c,
                None => return false,
            }
        }
        !node.is_empty()
    }

    pub fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, c) in &other.children {
            self.children.entry(k.clone()).or_default().union_with(c);
        }
    }

    /// Members of `self` that are not members of `other` (the structure of `other` does not matter).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let d = match other.children.get(k) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(k.clone(), d);
            }
        }
        out
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(o) = other.children.get(k) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    out.children.insert(k.clone(), i);
                }
            }
        }
        out
    }

    /// Removes the subtree at `prefix` entirely.
    pub fn remove_subtree(&mut self, prefix: &[String]) {
        if prefix.is_empty() {
            *self = FieldSet::new();
            return;
        }
        if let Some(c) = self.children.get_mut(&prefix[0]) {
            c.remove_subtree(&prefix[1..]);
            if c.is_empty() {
                self.children.remove(&prefix[0]);
            }
        }
    }

    /// Keeps only the subtree at `prefix` (used to restrict a set to `status`).
    pub fn only_subtree(&self, prefix: &str) -> FieldSet {
        let mut out = FieldSet::new();
        if let Some(c) = self.children.get(prefix) {
            out.children.insert(prefix.to_string(), c.clone());
        }
        out
    }

    /// All member paths, in sorted (depth-first) order.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        self.collect(&mut cur, &mut out);
        out
    }

    fn collect(&self, cur: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member {
            out.push(cur.clone());
        }
        for (k, c) in &self.children {
            cur.push(k.clone());
            c.collect(cur, out);
            cur.pop();
        }
    }
}

/// The path element of a named field.
pub fn pe_field(name: &str) -> String {
    format!("f:{name}")
}

/// Renders a path the way conflict messages do: `.spec.template.spec.containers[name="web"].image`.
pub fn path_string(path: &[String]) -> String {
    let mut s = String::new();
    for pe in path {
        if let Some(f) = pe.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            let parsed: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            let parts: Vec<String> = parsed
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            s.push('[');
            s.push_str(&parts.join(","));
            s.push(']');
        } else if let Some(v) = pe.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = pe.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_fields_v1() {
        let v = json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}},
                       "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}}});
        let s = FieldSet::from_json(&v);
        assert_eq!(s.to_json(), v);
        assert!(s.contains(&["f:metadata".into(), "f:labels".into()]));
        assert!(!s.contains(&["f:metadata".into()]));
    }

    #[test]
    fn renders_paths_like_conflict_messages() {
        let p = vec![
            "f:spec".to_string(),
            "f:template".into(),
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"web\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(
            path_string(&p),
            ".spec.template.spec.containers[name=\"web\"].image"
        );
    }

    #[test]
    fn difference_and_intersection() {
        let a = FieldSet::from_json(&json!({"f:a": {}, "f:b": {"f:c": {}, "f:d": {}}}));
        let b = FieldSet::from_json(&json!({"f:b": {"f:c": {}}}));
        assert_eq!(
            a.difference(&b).to_json(),
            json!({"f:a": {}, "f:b": {"f:d": {}}})
        );
        assert_eq!(a.intersection(&b).to_json(), json!({"f:b": {"f:c": {}}}));
    }
}
