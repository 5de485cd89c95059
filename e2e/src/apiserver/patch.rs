//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

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
