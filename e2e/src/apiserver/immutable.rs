//! Update validation of built-in kinds: what may not change once an object exists, worded as
//! the API server words it (k8s.io/kubernetes `pkg/apis/*/validation`, the `Validate*Update`
//! functions), plus the Service strategy that derives `clusterIPs` from `clusterIP` on update.
//!
//! Values in `Invalid value: ...` print as JSON with Go's field order (Kubernetes 1.34 and later).

use super::quantity::Quantity;
use super::status::{Cause, go_value};
use serde_json::{Map, Value, json};

/// StatefulSet spec fields an update may change (apps validation `ValidateStatefulSetUpdate`).
const STATEFULSET_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

pub const STATEFULSET_FORBIDDEN: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

pub const PVC_SPEC_FORBIDDEN: &str = "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims";

const IMMUTABLE: &str = "field is immutable";

const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";

/// Errors of an update from `old` to `new` (both defaulted) of a built-in kind.
pub fn validate_update(kind: &str, old: &Value, new: &Value) -> Vec<Cause> {
    match kind {
        "StatefulSet" => statefulset(old, new),
        "Deployment" | "ReplicaSet" => selector(old, new),
        "Service" => service(old, new),
        "PersistentVolumeClaim" => pvc(old, new),
        "Secret" => {
            let mut out = Vec::new();
            if old.get("type") != new.get("type") {
                out.push(Cause::invalid(
                    "type",
                    new.get("type").unwrap_or(&Value::Null),
                    IMMUTABLE,
                ));
            }
            out.extend(immutable_data(old, new, &["data"]));
            out
        }
        "ConfigMap" => immutable_data(old, new, &["data", "binaryData"]),
        "Job" => {
            if old.pointer("/spec/template") != new.pointer("/spec/template") {
                vec![Cause::invalid(
                    "spec.template",
                    new.pointer("/spec/template").unwrap_or(&Value::Null),
                    IMMUTABLE,
                )]
            } else {
                Vec::new()
            }
        }
        "StorageClass" => {
            let mut out = Vec::new();
            for f in [
                "parameters",
                "provisioner",
                "reclaimPolicy",
                "volumeBindingMode",
            ] {
                if old.get(f) != new.get(f) {
                    out.push(Cause::forbidden(
                        f,
                        &format!("updates to {f} are forbidden."),
                    ));
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

fn statefulset(old: &Value, new: &Value) -> Vec<Cause> {
    let fixed = |v: &Value| -> Map<String, Value> {
        let mut spec = v
            .get("spec")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        spec.retain(|k, _| !STATEFULSET_MUTABLE.contains(&k.as_str()));
        spec
    };
    if fixed(old) != fixed(new) {
        vec![Cause::forbidden("spec", STATEFULSET_FORBIDDEN)]
    } else {
        Vec::new()
    }
}

/// `spec.selector` of apps/v1 Deployments (and ReplicaSets) is immutable.
fn selector(old: &Value, new: &Value) -> Vec<Cause> {
    let (o, n) = (old.pointer("/spec/selector"), new.pointer("/spec/selector"));
    if o == n {
        return Vec::new();
    }
    vec![Cause::invalid(
        "spec.selector",
        n.unwrap_or(&Value::Null),
        IMMUTABLE,
    )]
}

fn is_headless(v: &Value) -> bool {
    v.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None")
}

fn external_name(v: &Value) -> bool {
    v.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName")
}

fn cluster_ips(v: &Value) -> Vec<Value> {
    v.pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Allocated cluster IPs may not change (core validation `validateUpgradeDowngradeClusterIPs`).
fn service(old: &Value, new: &Value) -> Vec<Cause> {
    if external_name(old) || external_name(new) || (is_headless(old) && is_headless(new)) {
        return Vec::new();
    }
    let (o, n) = (cluster_ips(old), cluster_ips(new));
    let mut out = Vec::new();
    let shown = Value::Array(n.clone());
    if n.is_empty() && !o.is_empty() {
        out.push(Cause::invalid(
            "spec.clusterIPs[0]",
            &shown,
            "primary clusterIP can not be unset",
        ));
        return out;
    }
    for (i, ip) in o.iter().enumerate() {
        if n.get(i).is_some_and(|x| x != ip) {
            out.push(Cause::invalid(
                format!("spec.clusterIPs[{i}]"),
                &shown,
                "may not change once set",
            ));
        }
    }
    out
}

/// What the Service strategy does before validating an update: a `clusterIP` left out keeps
/// the allocated one; a changed `clusterIP` with unchanged `clusterIPs` replaces them
/// (`normalizeClusterIPs`), so validation sees what the user asked for.
pub fn normalize_service_update(old: &Value, new: &mut Value) {
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let old_ip = old.pointer("/spec/clusterIP").cloned();
    let old_ips = old.pointer("/spec/clusterIPs").cloned();
    let new_ip = spec.get("clusterIP").cloned();
    if new_ip.is_some() && new_ip != old_ip && spec.get("clusterIPs") == old_ips.as_ref() {
        match new_ip.as_ref().and_then(Value::as_str) {
            Some("") | None => {
                spec.remove("clusterIPs");
            }
            Some(ip) => {
                spec.insert("clusterIPs".into(), json!([ip]));
            }
        }
    }
}

fn storage(v: &Value, pointer: &str) -> Option<Quantity> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(Quantity::parse)
}

/// PersistentVolumeClaims (core validation `ValidatePersistentVolumeClaimUpdate`, with
/// RecoverVolumeExpansionFailure, GA since 1.34): the spec is fixed except, for a bound
/// claim, `resources.requests` and `volumeAttributesClassName`; the request may go down
/// only while it stays above `status.capacity`.
fn pvc(old: &Value, new: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let mut o = old.get("spec").cloned().unwrap_or(json!({}));
    let mut n = new.get("spec").cloned().unwrap_or(json!({}));
    // The binder sets volumeName once.
    if o.get("volumeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        && let Some(v) = n.get("volumeName")
    {
        o["volumeName"] = v.clone();
    }
    let bound = old.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
    if bound {
        for v in [&mut o, &mut n] {
            if let Some(m) = v.as_object_mut() {
                m.remove("volumeAttributesClassName");
            }
            if let Some(r) = v
                .pointer_mut("/resources/requests")
                .and_then(Value::as_object_mut)
            {
                r.remove("storage");
            }
        }
    }
    if o != n {
        out.push(Cause::forbidden(
            "spec",
            &format!("{PVC_SPEC_FORBIDDEN}\n{}", spec_diff(&o, &n)),
        ));
    }
    let path = "/spec/resources/requests/storage";
    if let (Some(before), Some(after)) = (storage(old, path), storage(new, path))
        && after < before
    {
        let capacity = storage(old, "/status/capacity/storage").unwrap_or_default();
        if after <= capacity {
            out.push(Cause::forbidden(
                "spec.resources.requests.storage",
                "field can not be less than status.capacity",
            ));
        }
    }
    out
}

/// A short description of what differs between two specs (the API server prints a Go
/// structure diff here; its layout is not stable, so only the changed fields are given).
fn spec_diff(old: &Value, new: &Value) -> String {
    let empty = Map::new();
    let (o, n) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut lines = vec!["  core.PersistentVolumeClaimSpec{".to_string()];
    for k in keys {
        let (a, b) = (o.get(k), n.get(k));
        if a == b {
            continue;
        }
        let show = |v: Option<&Value>| v.map_or("nil".to_string(), go_value);
        lines.push(format!("-   {k}: {},", show(a)));
        lines.push(format!("+   {k}: {},", show(b)));
    }
    lines.push("  }".into());
    lines.join("\n")
}

fn immutable_data(old: &Value, new: &Value, fields: &[&str]) -> Vec<Cause> {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return Vec::new();
    }
    let mut out = Vec::new();
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        out.push(Cause::forbidden("immutable", IMMUTABLE_WHEN_SET));
    }
    for f in fields {
        let empty_is_none = |v: Option<&Value>| {
            v.filter(|v| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()))
                .cloned()
        };
        if empty_is_none(old.get(*f)) != empty_is_none(new.get(*f)) {
            out.push(Cause::forbidden(*f, IMMUTABLE_WHEN_SET));
        }
    }
    out
}

/// Owner references (metadata validation `ValidateOwnerReferences`): each names its owner
/// fully, and at most one is the controller.
pub fn owner_references(meta: &Value) -> Vec<Cause> {
    let Some(refs) = meta.get("ownerReferences").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut first: Option<String> = None;
    let s = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    for r in refs {
        let api_version = s(r, "apiVersion");
        let version = api_version
            .rsplit_once('/')
            .map_or(api_version.as_str(), |(_, v)| v);
        for (field, value, empty, msg) in [
            (
                "apiVersion",
                api_version.clone(),
                version.is_empty(),
                "version must not be empty",
            ),
            (
                "kind",
                s(r, "kind"),
                s(r, "kind").is_empty(),
                "kind must not be empty",
            ),
            (
                "name",
                s(r, "name"),
                s(r, "name").is_empty(),
                "name must not be empty",
            ),
            (
                "uid",
                s(r, "uid"),
                s(r, "uid").is_empty(),
                "uid must not be empty",
            ),
        ] {
            if empty {
                out.push(Cause::invalid(
                    format!("metadata.ownerReferences.{field}"),
                    &json!(value),
                    msg,
                ));
            }
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let this = format!("{}/{}", s(r, "kind"), s(r, "name"));
            match &first {
                Some(f) => out.push(Cause::invalid(
                    "metadata.ownerReferences",
                    &Value::Array(refs.clone()),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {f} and {this}"
                    ),
                )),
                None => first = Some(this),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_order_of_owner_references() {
        let r =
            json!([{"uid": "u", "name": "a", "kind": "K", "apiVersion": "v1", "controller": true}]);
        assert_eq!(
            go_value(&r),
            r#"[{"apiVersion":"v1","kind":"K","name":"a","uid":"u","controller":true}]"#
        );
    }

    #[test]
    fn pvc_request_may_shrink_only_above_capacity() {
        let pvc = |req: &str, cap: &str| {
            json!({"spec": {"resources": {"requests": {"storage": req}}},
                "status": {"phase": "Bound", "capacity": {"storage": cap}}})
        };
        assert!(
            validate_update(
                "PersistentVolumeClaim",
                &pvc("2Gi", "1Gi"),
                &pvc("3Gi", "1Gi")
            )
            .is_empty()
        );
        assert!(
            validate_update(
                "PersistentVolumeClaim",
                &pvc("3Gi", "1Gi"),
                &pvc("2Gi", "1Gi")
            )
            .is_empty()
        );
        let e = validate_update(
            "PersistentVolumeClaim",
            &pvc("2Gi", "2Gi"),
            &pvc("1Gi", "2Gi"),
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            e[0].message,
            "Forbidden: field can not be less than status.capacity"
        );
    }
}
