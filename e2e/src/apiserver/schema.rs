//! Structural schemas of custom resources: pruning of unknown fields, defaulting and
//! OpenAPI validation, with the messages the API server produces.

use super::status::Cause;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

fn preserves_unknown(s: &Value) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn embedded(s: &Value) -> bool {
    s.get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Removes fields the schema does not know. The root keeps apiVersion, kind and metadata.
pub fn prune(v: &mut Value, s: &Value, root: bool) {
    match v {
        Value::Object(m) => {
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties");
            let keep_all =
                preserves_unknown(s) || additional.is_some_and(|a| a.as_bool() == Some(true));
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if (root || embedded(s)) && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    continue;
                }
                if let Some(ps) = props.and_then(|p| p.get(&k)) {
                    if let Some(child) = m.get_mut(&k) {
                        prune(child, ps, false);
                    }
                } else if let Some(a) = additional.filter(|a| a.is_object()) {
                    if let Some(child) = m.get_mut(&k) {
                        prune(child, a, false);
                    }
                } else if !keep_all {
                    m.remove(&k);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for it in items {
                    prune(it, is, false);
                }
            }
        }
        _ => {}
    }
}

/// Applies `default`s top-down; nulls in non-nullable fields are dropped or defaulted.
pub fn apply_defaults(v: &mut Value, s: &Value) {
    match v {
        Value::Object(m) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    let nullable = ps.get("nullable").and_then(Value::as_bool) == Some(true);
                    let is_null = m.get(k).is_some_and(Value::is_null);
                    if is_null && !nullable {
                        m.remove(k);
                    }
                    if !m.contains_key(k)
                        && let Some(d) = ps.get("default")
                    {
                        m.insert(k.clone(), d.clone());
                    }
                    if let Some(child) = m.get_mut(k) {
                        apply_defaults(child, ps);
                    }
                }
            } else if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for child in m.values_mut() {
                    apply_defaults(child, a);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for it in items {
                    apply_defaults(it, is);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) => {
            if n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                "integer"
            } else {
                "number"
            }
        }
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(expected: &str, v: &Value, int_or_string: bool) -> bool {
    let actual = type_name(v);
    if int_or_string {
        return matches!(actual, "integer" | "string");
    }
    match expected {
        "" => true,
        "number" => matches!(actual, "number" | "integer"),
        t => t == actual,
    }
}

fn regex_cached(pattern: &str) -> Option<regex::Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().expect("regex cache");
    c.entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .clone()
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Validates a custom resource against its schema (after pruning and defaulting); on an update,
/// fields equal to their old value are not checked again (ratcheting).
pub fn validate(v: &Value, old: Option<&Value>, s: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    if let (Some(props), Value::Object(m)) = (s.get("properties").and_then(Value::as_object), v) {
        let mut keys: Vec<&String> = props.keys().collect();
        keys.sort();
        for k in keys {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(child) = m.get(k) {
                validate_node(child, old.and_then(|o| o.get(k)), &props[k], k, &mut out);
            }
        }
        required(m, s, "", &mut out);
    }
    out
}

fn required(m: &serde_json::Map<String, Value>, s: &Value, path: &str, out: &mut Vec<Cause>) {
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = r.as_str()
            && !m.contains_key(r)
        {
            out.push(Cause::required(join(path, r)));
        }
    }
}

fn validate_node(v: &Value, old: Option<&Value>, s: &Value, path: &str, out: &mut Vec<Cause>) {
    // Ratcheting (Kubernetes 1.33+): the errors of a value equal to its old value are dropped,
    // so an unchanged field (the spec, on a status write) is not checked again. Object fields
    // are matched with their old values; list items are not (stricter than a real server only
    // for list items that a tightened schema now rejects).
    if old == Some(v) {
        return;
    }
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
    let int_or_string = s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    if v.is_null() {
        if s.get("nullable").and_then(Value::as_bool) == Some(true) {
            return;
        }
        if !ty.is_empty() {
            out.push(Cause::type_invalid(
                path,
                &json!("null"),
                &format!("{path} in body must be of type {ty}: \"null\""),
            ));
        }
        return;
    }
    if !type_ok(ty, v, int_or_string) {
        let actual = type_name(v);
        out.push(Cause::type_invalid(
            path,
            &json!(actual),
            &format!("{path} in body must be of type {ty}: \"{actual}\""),
        ));
        return;
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        out.push(Cause::not_supported(path, v, allowed));
    }
    match v {
        Value::String(st) => {
            let len = st.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                out.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body should be at least {min} chars long"),
                ));
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                out.push(Cause::too_long(path, max));
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str)
                && let Some(re) = regex_cached(p)
                && !re.is_match(st)
            {
                out.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body should match '{p}'"),
                ));
            }
            if s.get("format").and_then(Value::as_str) == Some("date-time")
                && chrono::DateTime::parse_from_rfc3339(st).is_err()
            {
                out.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body must be of type date-time: {:?}", st),
                ));
            }
        }
        Value::Number(_) => {
            let x = num(v).unwrap_or_default();
            let excl_min = s.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
            let excl_max = s.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
            if let Some(min) = s.get("minimum") {
                let m = num(min).unwrap_or_default();
                if (excl_min && x <= m) || (!excl_min && x < m) {
                    let rel = if excl_min {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    out.push(Cause::invalid(
                        path,
                        v,
                        &format!("{path} in body should be {rel} {min}"),
                    ));
                }
            }
            if let Some(max) = s.get("maximum") {
                let m = num(max).unwrap_or_default();
                if (excl_max && x >= m) || (!excl_max && x > m) {
                    let rel = if excl_max {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    out.push(Cause::invalid(
                        path,
                        v,
                        &format!("{path} in body should be {rel} {max}"),
                    ));
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                out.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                out.push(Cause::too_many(path, items.len(), max));
            }
            if let Some(is) = s.get("items") {
                for (i, it) in items.iter().enumerate() {
                    validate_node(it, None, is, &format!("{path}[{i}]"), out);
                }
            }
            match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    for (i, it) in items.iter().enumerate() {
                        if items[..i].contains(it) {
                            out.push(Cause {
                                reason: "FieldValueDuplicate",
                                message: format!(
                                    "Duplicate value: {}",
                                    super::status::go_value(it)
                                ),
                                field: format!("{path}[{i}]"),
                            });
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<&str> = s
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let key_of = |it: &Value| -> Vec<Value> {
                        keys.iter()
                            .map(|k| it.get(*k).cloned().unwrap_or(Value::Null))
                            .collect()
                    };
                    for (i, it) in items.iter().enumerate() {
                        let k = key_of(it);
                        if items[..i].iter().any(|o| key_of(o) == k) {
                            let shown: serde_json::Map<String, Value> = keys
                                .iter()
                                .zip(k.iter())
                                .map(|(a, b)| (a.to_string(), b.clone()))
                                .collect();
                            out.push(Cause {
                                reason: "FieldValueDuplicate",
                                message: format!("Duplicate value: {}", Value::Object(shown)),
                                field: format!("{path}[{i}]"),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        Value::Object(m) => {
            if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
                && m.len() as u64 > max
            {
                out.push(Cause::too_many(path, m.len(), max));
            }
            if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
                && (m.len() as u64) < min
            {
                out.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body should have at least {min} properties"),
                ));
            }
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                let mut keys: Vec<&String> = props.keys().collect();
                keys.sort();
                for k in keys {
                    if let Some(child) = m.get(k) {
                        let was = old.and_then(|o| o.get(k));
                        validate_node(child, was, &props[k], &join(path, k), out);
                    }
                }
            } else if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for k in keys {
                    validate_node(&m[k], old.and_then(|o| o.get(k)), a, &join(path, k), out);
                }
            }
            required(m, s, path, out);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget_schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["maxReplicas"],
            "properties": {"replicas": {"type": "integer", "format": "int32", "minimum": 0, "default": 1},
                           "maxReplicas": {"type": "integer", "minimum": 1},
                           "image": {"type": "string"}}}}})
    }

    #[test]
    fn prunes_defaults_and_validates_in_the_recorded_order() {
        let s = widget_schema();
        let mut v = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "a"},
            "spec": {"replicas": -1, "image": 5, "unknown": true}});
        prune(&mut v, &s, true);
        apply_defaults(&mut v, &s);
        assert!(v["spec"].get("unknown").is_none());
        let causes = validate(&v, None, &s);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.image", "spec.replicas", "spec.maxReplicas"]);
        assert_eq!(
            causes[0].message,
            "Invalid value: \"integer\": spec.image in body must be of type string: \"integer\""
        );
        assert_eq!(
            causes[1].message,
            "Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
        );
        let mut ok = json!({"spec": {"maxReplicas": 3}});
        apply_defaults(&mut ok, &s);
        assert_eq!(ok["spec"]["replicas"], 1);
    }

    #[test]
    fn unchanged_values_are_ratcheted() {
        let s = widget_schema();
        // Stored before the schema was tightened: replicas below the minimum.
        let old = json!({"spec": {"replicas": -1, "maxReplicas": 3}, "status": {"ready": 0}});
        let status_write =
            json!({"spec": {"replicas": -1, "maxReplicas": 3}, "status": {"ready": 1}});
        assert!(validate(&status_write, Some(&old), &s).is_empty());
        let other_field = json!({"spec": {"replicas": -1, "maxReplicas": 4}});
        assert!(validate(&other_field, Some(&old), &s).is_empty());
        let same_field = json!({"spec": {"replicas": -2, "maxReplicas": 3}});
        let causes = validate(&same_field, Some(&old), &s);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.replicas");
        assert_eq!(
            validate(&status_write, None, &s).len(),
            1,
            "a create checks everything"
        );
    }
}
