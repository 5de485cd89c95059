//! `x-kubernetes-validations` rules of custom resources, evaluated with the `cel` crate and the
//! Kubernetes CEL libraries ported by `kube-cel` (quantity, IP, URL, regex, ...). Transition
//! rules (`oldSelf`) run where a real API server correlates the old value: object properties,
//! and the entries of `x-kubernetes-list-type: map` lists matched by their keys. A rule that
//! does not compile or evaluate here is skipped: the stand-in never rejects what a real server
//! would accept because of its own limits.

use super::status::Cause;
use cel::objects::{Key, Map};
use cel::{Context, Program, Value as Cel};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

thread_local! {
    static PROGRAMS: RefCell<HashMap<String, Option<Rc<Program>>>> = RefCell::new(HashMap::new());
    /// The standard functions, registered once: each evaluation adds its variables in a scope of
    /// its own on top.
    static ROOT: Context<'static> = {
        use kube_cel::KubeCelExt;
        Context::default().with_all()
    };
}

fn program(rule: &str) -> Option<Rc<Program>> {
    PROGRAMS.with(|p| {
        p.borrow_mut()
            .entry(rule.to_string())
            .or_insert_with(|| {
                // The parser may panic on input it does not support; treat that as skipped.
                std::panic::catch_unwind(|| Program::compile(rule).ok())
                    .ok()
                    .flatten()
                    .map(Rc::new)
            })
            .clone()
    })
}

fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            _ => Cel::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(a) => Cel::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(m) => Cel::Map(Map {
            map: Arc::new(
                m.iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                    .collect(),
            ),
        }),
    }
}

/// A node's value (and old value) as CEL values, converted once for all of its rules.
struct Node<'a> {
    this: &'a Value,
    old: Option<&'a Value>,
    cel: std::cell::OnceCell<(Cel, Option<Cel>)>,
}

impl Node<'_> {
    fn eval(&self, rule: &str, with_old: bool) -> Option<Cel> {
        let prog = program(rule)?;
        let (this, old) = self
            .cel
            .get_or_init(|| (to_cel(self.this), self.old.map(to_cel)));
        ROOT.with(|root| {
            let mut ctx = root.new_inner_scope();
            ctx.add_variable_from_value("self", this.clone());
            if let (true, Some(o)) = (with_old, old) {
                ctx.add_variable_from_value("oldSelf", o.clone());
            }
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| prog.execute(&ctx).ok()))
                .ok()
                .flatten()
        })
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Evaluates the rules of `schema` on `obj` (and `old` for transition rules), except on values
/// equal to their old value, whose errors a real server ratchets away.
pub fn validate(obj: &Value, old: Option<&Value>, schema: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    walk(obj, old, schema, "", &mut out);
    out
}

fn walk(v: &Value, old: Option<&Value>, s: &Value, path: &str, out: &mut Vec<Cause>) {
    // Validation ratcheting (GA in Kubernetes 1.33): errors of a value equal to its old value
    // are dropped, so rules on an unchanged subtree (the spec, on a status write) need no run.
    if old == Some(v) {
        return;
    }
    if let Some(rules) = s.get("x-kubernetes-validations").and_then(Value::as_array) {
        let node = Node {
            this: v,
            old,
            cel: std::cell::OnceCell::new(),
        };
        for r in rules {
            let Some(rule) = r.get("rule").and_then(Value::as_str) else {
                continue;
            };
            let transition = rule.contains("oldSelf");
            if transition && (old.is_none() || r.get("optionalOldSelf") == Some(&Value::Bool(true)))
            {
                continue;
            }
            if let Some(Cel::Bool(false)) = node.eval(rule, transition) {
                let message = r
                    .get("messageExpression")
                    .and_then(Value::as_str)
                    .and_then(|e| match node.eval(e, true) {
                        Some(Cel::String(s)) => Some(s.to_string()),
                        _ => None,
                    })
                    .or_else(|| r.get("message").and_then(Value::as_str).map(String::from))
                    .unwrap_or_else(|| format!("failed rule: {rule}"));
                let field = match r.get("fieldPath").and_then(Value::as_str) {
                    Some(fp) => format!("{path}{fp}"),
                    None if path.is_empty() => "<nil>".to_string(),
                    None => path.to_string(),
                };
                let reason = match r.get("reason").and_then(Value::as_str) {
                    Some("FieldValueForbidden") => "FieldValueForbidden",
                    Some("FieldValueRequired") => "FieldValueRequired",
                    Some("FieldValueDuplicate") => "FieldValueDuplicate",
                    _ => "FieldValueInvalid",
                };
                let prefix = match reason {
                    "FieldValueForbidden" => "Forbidden",
                    "FieldValueRequired" => "Required value",
                    "FieldValueDuplicate" => "Duplicate value",
                    _ => "Invalid value",
                };
                out.push(Cause {
                    reason,
                    message: format!("{prefix}: {message}"),
                    field,
                });
            }
        }
    }
    match v {
        Value::Object(m) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    if let Some(child) = m.get(k) {
                        walk(child, old.and_then(|o| o.get(k)), ps, &join(path, k), out);
                    }
                }
            } else if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in m {
                    walk(child, old.and_then(|o| o.get(k)), a, &join(path, k), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                let keys = map_list_keys(s);
                for (i, it) in items.iter().enumerate() {
                    let old_item = keys
                        .as_ref()
                        .and_then(|k| old.and_then(|o| correlated(o, it, k)));
                    walk(it, old_item, is, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The keys of a `x-kubernetes-list-type: map` list, whose entries a real API server matches
/// with their old values for transition rules and ratcheting.
fn map_list_keys(schema: &Value) -> Option<Vec<String>> {
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    let keys = schema.get("x-kubernetes-list-map-keys")?.as_array()?;
    Some(
        keys.iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
    )
}

/// The entry of the old list with the same key values as `item`.
fn correlated<'a>(old: &'a Value, item: &Value, keys: &[String]) -> Option<&'a Value> {
    old.as_array()?
        .iter()
        .find(|o| keys.iter().all(|k| o.get(k) == item.get(k)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_rules_and_skips_what_it_cannot() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.replicas <= self.maxReplicas", "message": "replicas must be less than or equal to maxReplicas"},
                {"rule": "self.name.isFancyK8sThing()", "message": "never reported"}]}}});
        let bad = json!({"spec": {"replicas": 10, "maxReplicas": 5}});
        let causes = validate(&bad, None, &schema);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec");
        assert_eq!(
            causes[0].message,
            "Invalid value: replicas must be less than or equal to maxReplicas"
        );
        let ok = json!({"spec": {"replicas": 1, "maxReplicas": 5}});
        assert!(validate(&ok, None, &schema).is_empty());
    }

    #[test]
    fn rules_on_unchanged_values_are_ratcheted() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.replicas <= self.maxReplicas", "message": "too many"}],
            "properties": {"replicas": {"type": "integer",
                "x-kubernetes-validations": [{"rule": "self >= 0", "message": "negative"}]}}}}});
        let old = json!({"spec": {"replicas": -10, "maxReplicas": 5}, "status": {"n": 1}});
        let status_write = json!({"spec": {"replicas": -10, "maxReplicas": 5}, "status": {"n": 2}});
        assert!(validate(&status_write, Some(&old), &schema).is_empty());
        // The spec changed, so its own rule runs; replicas did not, so its rule does not.
        let changed = json!({"spec": {"replicas": -10, "maxReplicas": 4}});
        assert!(validate(&changed, Some(&old), &schema).is_empty());
        let worse = json!({"spec": {"replicas": 10, "maxReplicas": 4}});
        let causes = validate(&worse, Some(&old), &schema);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].message, "Invalid value: too many");
        assert_eq!(validate(&status_write, None, &schema).len(), 1);
    }

    /// Entries of a map list meet their old values by key, whatever their position; a new
    /// entry has none, so its transition rules do not run. Quantities compare by value.
    #[test]
    fn transition_rules_on_map_list_entries_with_quantities() {
        let schema = json!({"type": "object", "properties": {"dbs": {"type": "array",
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "x-kubernetes-validations": [
                {"rule": "quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",
                 "message": "cannot shrink", "fieldPath": ".size"}]}}}});
        let old = json!({"dbs": [{"name": "a", "size": "2Gi"}, {"name": "b", "size": "1Gi"}]});
        let grown = json!({"dbs": [{"name": "b", "size": "1025Mi"}, {"name": "a", "size": "2048Mi"},
            {"name": "c", "size": "1Mi"}]});
        assert!(validate(&grown, Some(&old), &schema).is_empty());
        let shrunk =
            json!({"dbs": [{"name": "b", "size": "1Gi"}, {"name": "a", "size": "2000Mi"}]});
        let causes = validate(&shrunk, Some(&old), &schema);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "dbs[1].size");
        assert_eq!(causes[0].message, "Invalid value: cannot shrink");
    }
}
