//! The scale subresource (`autoscaling/v1` Scale) of Deployments, ReplicaSets and
//! StatefulSets: reads present `spec.replicas`; writes change only `spec.replicas` of the
//! parent, recorded in managedFields with `subresource: scale`.

use super::super::patch::{JsonPatchError, json_patch, merge_patch};
use super::super::resources::ResourceDef;
use super::super::status::{ApiError, Cause, Res, bad_request};
use super::{Ctx, State, Write, Written, meta_str, to_view};
use serde_json::{Value, json};
use std::sync::Arc;

/// Whether the resource serves `/scale`.
pub fn serves_scale(def: &ResourceDef) -> bool {
    def.builtin
        && matches!(
            def.kind.as_str(),
            "Deployment" | "ReplicaSet" | "StatefulSet"
        )
}

/// The Scale of a stored Deployment, ReplicaSet or StatefulSet.
pub fn scale_view(obj: &Value) -> Value {
    let md = &obj["metadata"];
    let mut meta = serde_json::Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = md.get(k) {
            meta.insert(k.into(), v.clone());
        }
    }
    let mut status =
        json!({"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0))});
    if let Some(sel) = obj.pointer("/spec/selector") {
        status["selector"] = json!(selector_string(sel));
    }
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": meta,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": status})
}

/// A label selector in its text form (`app=web,tier in (a,b)`), requirements sorted by key
/// (apimachinery `FormatLabelSelector`).
pub fn selector_string(sel: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or("").to_string();
        let mut values: Vec<&str> = e["values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        values.sort_unstable();
        let text = match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        reqs.push((key, text));
    }
    reqs.sort();
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

impl State {
    /// GET `.../<name>/scale`.
    pub fn scale_get(&self, def: &ResourceDef, ns: &str, name: &str) -> Result<Value, ApiError> {
        let obj = self
            .get_stored(def, ns, name)
            .ok_or_else(|| def.res().not_found(name))?;
        Ok(scale_view(&obj))
    }

    /// PUT or PATCH of `.../<name>/scale`.
    pub fn scale_write(
        &mut self,
        def: &Arc<ResourceDef>,
        ns: &str,
        name: &str,
        op: Write,
        ctx: &Ctx,
    ) -> Result<Written, ApiError> {
        let live = self
            .get_stored(def, ns, name)
            .ok_or_else(|| def.res().not_found(name))?;
        let current = scale_view(&live);
        let scale_res = Res {
            group: "autoscaling",
            plural: "scale",
        };
        let replicas = |s: &Value| -> Result<i64, ApiError> {
            let r = s.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
            match r.as_i64() {
                Some(n) if n >= 0 => Ok(n),
                Some(n) => Err(scale_res.invalid(
                    "Scale",
                    name,
                    vec![Cause::invalid(
                        "spec.replicas",
                        &json!(n),
                        "must be greater than or equal to 0",
                    )],
                )),
                None => Err(bad_request(format!(
                    "Scale in version \"v1\" cannot be handled as a Scale: json: cannot unmarshal {} into Go struct field ScaleSpec.spec.replicas of type int32",
                    r
                ))),
            }
        };
        let mut ctx = Ctx {
            manager: ctx.manager.clone(),
            subresource: Some("scale".into()),
            dry_run: ctx.dry_run,
            now: ctx.now.clone(),
        };
        let parent_write = match op {
            Write::Apply { cfg, force } => {
                let n = replicas(&cfg)?;
                let cfg = json!({"apiVersion": def.api_version(), "kind": def.kind,
                    "metadata": {"name": name}, "spec": {"replicas": n}});
                Write::Apply { cfg, force }
            }
            other => {
                let wanted = match other {
                    Write::Replace(body) => {
                        if let Some(rv) =
                            meta_str(&body, "resourceVersion").filter(|r| !r.is_empty())
                            && Some(rv) != meta_str(&live, "resourceVersion")
                        {
                            return Err(def.res().conflict_modified(name));
                        }
                        body
                    }
                    Write::MergePatch(p) | Write::StrategicPatch(p) => {
                        let mut s = current.clone();
                        merge_patch(&mut s, &p);
                        s
                    }
                    Write::JsonPatch(p) => {
                        let mut s = current.clone();
                        json_patch(&mut s, &p).map_err(|e| match e {
                            JsonPatchError::BadRequest(m) | JsonPatchError::Invalid(m) => {
                                bad_request(m)
                            }
                        })?;
                        s
                    }
                    Write::Create(_) | Write::Apply { .. } => {
                        return Err(super::super::status::method_not_allowed());
                    }
                };
                let n = replicas(&wanted)?;
                let mut body = to_view(def, &live);
                body["spec"]["replicas"] = json!(n);
                if let Some(md) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                    md.remove("managedFields");
                }
                Write::Replace(body)
            }
        };
        ctx.subresource = Some("scale".into());
        let written = self.write(def, ns, name, parent_write, &ctx)?;
        Ok(Written {
            code: 200,
            obj: scale_view(&written.obj),
        })
    }
}
