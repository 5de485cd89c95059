//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

use super::shape::{ListKind, Shape};
use serde_json::Value;

pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Strategic merge patch for built-in kinds: maps merge, `null` deletes, lists with a patch
/// merge key (containers, env, ports, volumes, conditions, ...) merge item by item, set-like
/// lists (finalizers) take the union, other lists are replaced. Understands `$patch: delete`
/// and `$patch: replace`; other directives (`$setElementOrder`, `$retainKeys`, ...) are dropped.
pub fn strategic_merge(target: &mut Value, patch: &Value, shape: &Shape) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut v = patch.clone();
        strip_directives(&mut v);
        *target = v;
        return;
    }
    if !target.is_object() || shape.map_atomic() {
        *target = Value::Object(Default::default());
        if shape.map_atomic() {
            let mut v = patch.clone();
            strip_directives(&mut v);
            *target = v;
            return;
        }
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let child = shape.child(k);
        match (v, child.list_kind()) {
            (Value::Array(items), ListKind::Map { keys, .. }) if !keys.is_empty() => {
                let key = &keys[0];
                let mut list = match t.remove(k) {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                let item_shape = child.item();
                for item in items {
                    let directive = item.get("$patch").and_then(Value::as_str);
                    let pos = list
                        .iter()
                        .position(|l| item.get(key).is_some() && l.get(key) == item.get(key));
                    match (directive, pos) {
                        (Some("delete"), Some(i)) => {
                            list.remove(i);
                        }
                        (Some("delete"), None) => {}
                        (_, Some(i)) => strategic_merge(&mut list[i], item, &item_shape),
                        (_, None) => {
                            let mut n = Value::Null;
                            strategic_merge(&mut n, item, &item_shape);
                            list.push(n);
                        }
                    }
                }
                t.insert(k.clone(), Value::Array(list));
            }
            (Value::Array(items), ListKind::Set) => {
                let mut list = match t.remove(k) {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                for item in items {
                    if !list.contains(item) {
                        list.push(item.clone());
                    }
                }
                t.insert(k.clone(), Value::Array(list));
            }
            (Value::Object(_), _) => {
                strategic_merge(t.entry(k.clone()).or_insert(Value::Null), v, &child);
            }
            _ => {
                let mut v = v.clone();
                strip_directives(&mut v);
                t.insert(k.clone(), v);
            }
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Why a JSON patch could not be applied.
#[derive(Debug)]
pub enum JsonPatchError {
    /// The patch document is malformed.
    BadRequest(String),
    /// An operation could not be applied (missing path, failed test).
    Invalid(String),
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<Vec<String>, JsonPatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    if !path.starts_with('/') {
        return Err(JsonPatchError::BadRequest(format!(
            "JSON pointer {path:?} does not start with /"
        )));
    }
    Ok(path[1..].split('/').map(unescape).collect())
}

fn parent_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, JsonPatchError> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(t)
                .ok_or_else(|| JsonPatchError::Invalid(format!("missing path element {t:?}")))?,
            Value::Array(a) => {
                let i: usize = t
                    .parse()
                    .map_err(|_| JsonPatchError::Invalid(format!("invalid index {t:?}")))?;
                a.get_mut(i)
                    .ok_or_else(|| JsonPatchError::Invalid(format!("index {i} out of range")))?
            }
            _ => {
                return Err(JsonPatchError::Invalid(format!(
                    "cannot descend into {t:?}"
                )));
            }
        };
    }
    Ok(cur)
}

fn get<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get(t)?,
            Value::Array(a) => a.get(t.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn add(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), JsonPatchError> {
    let Some((last, parent)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| JsonPatchError::Invalid(format!("invalid index {last:?}")))?;
            if i > a.len() {
                return Err(JsonPatchError::Invalid(format!("index {i} out of range")));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(JsonPatchError::Invalid("cannot add to a scalar".into())),
    }
}

fn remove(doc: &mut Value, tokens: &[String]) -> Result<Value, JsonPatchError> {
    let Some((last, parent)) = tokens.split_last() else {
        return Err(JsonPatchError::Invalid(
            "cannot remove the whole document".into(),
        ));
    };
    match parent_mut(doc, parent)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| JsonPatchError::Invalid(format!("missing path element {last:?}"))),
        Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| JsonPatchError::Invalid(format!("invalid index {last:?}")))?;
            if i >= a.len() {
                return Err(JsonPatchError::Invalid(format!("index {i} out of range")));
            }
            Ok(a.remove(i))
        }
        _ => Err(JsonPatchError::Invalid(
            "cannot remove from a scalar".into(),
        )),
    }
}

pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| JsonPatchError::BadRequest("a JSON patch must be an array".into()))?;
    for op in ops {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| JsonPatchError::BadRequest("operation without op".into()))?;
        let path = split_pointer(op.get("path").and_then(Value::as_str).unwrap_or(""))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| JsonPatchError::BadRequest(format!("{name} needs a value")))
        };
        let from = || -> Result<Vec<String>, JsonPatchError> {
            split_pointer(op.get("from").and_then(Value::as_str).unwrap_or(""))
        };
        match name {
            "add" => add(doc, &path, value()?)?,
            "remove" => {
                remove(doc, &path)?;
            }
            "replace" => {
                let v = value()?;
                if path.is_empty() {
                    *doc = v;
                } else {
                    remove(doc, &path)?;
                    add(doc, &path, v)?;
                }
            }
            "move" => {
                let v = remove(doc, &from()?)?;
                add(doc, &path, v)?;
            }
            "copy" => {
                let v = get(doc, &from()?)
                    .cloned()
                    .ok_or_else(|| JsonPatchError::Invalid("copy from a missing path".into()))?;
                add(doc, &path, v)?;
            }
            "test" => {
                let v = value()?;
                if get(doc, &path) != Some(&v) {
                    return Err(JsonPatchError::Invalid(format!(
                        "testing value {} failed",
                        op.get("path").and_then(Value::as_str).unwrap_or("")
                    )));
                }
            }
            other => {
                return Err(JsonPatchError::BadRequest(format!(
                    "unexpected kind of operation: {other}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut doc = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "y"}]}}}});
        let patch =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "z"}]}}}});
        strategic_merge(&mut doc, &patch, &Shape::builtin("Deployment"));
        let cs = &doc["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            cs[0],
            json!({"name": "a", "image": "z", "ports": [{"containerPort": 80}]})
        );
        assert_eq!(cs[1]["name"], "b");
        let del = json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "$patch": "delete"}]}}}});
        strategic_merge(&mut doc, &del, &Shape::builtin("Deployment"));
        assert_eq!(
            doc["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn merge_patch_nulls_remove_fields() {
        let mut doc = json!({"spec": {"a": 1, "b": 2}});
        merge_patch(&mut doc, &json!({"spec": {"a": null, "c": 3}}));
        assert_eq!(doc, json!({"spec": {"b": 2, "c": 3}}));
    }

    #[test]
    fn json_patch_test_and_remove() {
        let mut doc = json!({"metadata": {"finalizers": ["x"]}});
        json_patch(
            &mut doc,
            &json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "x"},
                    {"op": "remove", "path": "/metadata/finalizers/0"}]),
        )
        .unwrap();
        assert_eq!(doc, json!({"metadata": {"finalizers": []}}));
        let failed = json_patch(
            &mut doc,
            &json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "x"}]),
        );
        assert!(matches!(failed, Err(JsonPatchError::Invalid(_))));
    }
}
