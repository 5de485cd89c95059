//! Behaviour of the built-in kinds: the Go zero values the API server serialises, defaulting,
//! create/update strategies, validation, and the `events.k8s.io/v1` view of core Events.

use super::status::{ApiError, Cause, bad_request};
use serde_json::{Map, Value, json};

/// The Go zero value of a kind as the API server serialises it (without metadata). It is the
/// baseline an Update operation that creates an object is compared with, the status a
/// create starts from, and the body of watch bookmarks.
pub fn zero(kind: &str) -> Value {
    match kind {
        "Deployment" => json!({"spec": {"replicas": 0, "selector": null,
            "template": {"metadata": {}, "spec": {"containers": null}}, "strategy": {}}, "status": {}}),
        "ReplicaSet" => json!({"spec": {"selector": null,
            "template": {"metadata": {}, "spec": {"containers": null}}}, "status": {"replicas": 0}}),
        "StorageClass" => json!({"provisioner": ""}),
        "StatefulSet" => json!({"spec": {"selector": null,
            "template": {"metadata": {}, "spec": {"containers": null}}, "updateStrategy": {}},
            "status": {"replicas": 0, "availableReplicas": 0}}),
        "HorizontalPodAutoscaler" => {
            json!({"spec": {"scaleTargetRef": {"kind": "", "name": ""}, "maxReplicas": 0},
            "status": {"desiredReplicas": 0, "currentMetrics": null}})
        }
        "PodDisruptionBudget" => json!({"spec": {}, "status": {"disruptionsAllowed": 0,
            "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}}),
        "Service" | "Ingress" => json!({"spec": {}, "status": {"loadBalancer": {}}}),
        "Namespace" | "PersistentVolumeClaim" => json!({"spec": {}, "status": {}}),
        "Pod" => json!({"spec": {"containers": null}, "status": {}}),
        "Lease" => json!({"spec": {}}),
        "Event" => json!({"involvedObject": {}, "reportingComponent": "", "reportingInstance": "",
            "source": {}, "firstTimestamp": null, "lastTimestamp": null, "eventTime": null}),
        "Event.events.k8s.io" => json!({"eventTime": null, "regarding": {}, "deprecatedSource": {},
            "deprecatedFirstTimestamp": null, "deprecatedLastTimestamp": null}),
        "CustomResourceDefinition" => {
            json!({"spec": {"group": "", "names": {"plural": "", "kind": ""},
            "scope": "", "versions": null},
            "status": {"conditions": null, "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": null}})
        }
        _ => json!({}),
    }
}

fn obj(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("object")
}

fn set_default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

fn default_probe(p: &mut Value) {
    let Some(m) = p.as_object_mut() else { return };
    set_default(m, "timeoutSeconds", json!(1));
    set_default(m, "periodSeconds", json!(10));
    set_default(m, "successThreshold", json!(1));
    set_default(m, "failureThreshold", json!(3));
    if let Some(h) = m.get_mut("httpGet").and_then(Value::as_object_mut) {
        set_default(h, "scheme", json!("HTTP"));
        if !h.contains_key("path") {
            h.insert("path".into(), json!("/"));
        }
    }
}

fn default_container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    set_default(m, "resources", json!({}));
    set_default(m, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(m, "terminationMessagePolicy", json!("File"));
    if !m.contains_key("imagePullPolicy") {
        let image = m.get("image").and_then(Value::as_str).unwrap_or("");
        let tail = image.rsplit('/').next().unwrap_or("");
        let tag = tail.split_once(':').map(|(_, t)| t);
        let digest = image.contains('@');
        let policy = if digest || tag.is_some_and(|t| t != "latest") {
            "IfNotPresent"
        } else {
            "Always"
        };
        m.insert("imagePullPolicy".into(), json!(policy));
    }
    if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if let Some(p) = p.as_object_mut() {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    }
    if let Some(env) = m.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if let Some(f) = e
                .pointer_mut("/valueFrom/fieldRef")
                .and_then(Value::as_object_mut)
            {
                set_default(f, "apiVersion", json!("v1"));
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = m.get_mut(probe) {
            default_probe(p);
        }
    }
}

/// Defaults of a pod spec (also inside workload templates).
pub fn default_pod_spec(spec: &mut Value) {
    let m = obj(spec);
    set_default(m, "restartPolicy", json!("Always"));
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "securityContext", json!({}));
    set_default(m, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(default_container);
        }
    }
    if let Some(vols) = m.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols {
            for src in ["secret", "configMap", "projected", "downwardAPI"] {
                if let Some(s) = v.get_mut(src).and_then(Value::as_object_mut) {
                    set_default(s, "defaultMode", json!(420));
                }
            }
        }
    }
}

fn default_template(spec: &mut Map<String, Value>) {
    if let Some(t) = spec.get_mut("template") {
        let t = obj(t);
        t.entry("metadata").or_insert_with(|| json!({}));
        if let Some(Value::Object(meta)) = t.get_mut("metadata")
            && meta.get("creationTimestamp").is_some_and(Value::is_null)
        {
            meta.remove("creationTimestamp");
        }
        default_pod_spec(t.entry("spec").or_insert_with(|| json!({})));
    }
}

/// Applies the defaults the API server fills in for a built-in kind. Idempotent.
pub fn default_object(kind: &str, o: &mut Value) {
    match kind {
        "Deployment" => {
            let spec = obj(o
                .as_object_mut()
                .expect("object")
                .entry("spec")
                .or_insert_with(|| json!({})));
            set_default(spec, "replicas", json!(1));
            let strategy = obj(spec.entry("strategy").or_insert_with(|| json!({})));
            set_default(strategy, "type", json!("RollingUpdate"));
            if strategy.get("type") == Some(&json!("RollingUpdate")) {
                let ru = obj(strategy.entry("rollingUpdate").or_insert_with(|| json!({})));
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            default_template(spec);
        }
        "StatefulSet" => {
            let spec = obj(o
                .as_object_mut()
                .expect("object")
                .entry("spec")
                .or_insert_with(|| json!({})));
            set_default(spec, "replicas", json!(1));
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            let us = obj(spec.entry("updateStrategy").or_insert_with(|| json!({})));
            set_default(us, "type", json!("RollingUpdate"));
            if us.get("type") == Some(&json!("RollingUpdate")) {
                let ru = obj(us.entry("rollingUpdate").or_insert_with(|| json!({})));
                set_default(ru, "partition", json!(0));
            }
            set_default(spec, "revisionHistoryLimit", json!(10));
            let rp = obj(spec
                .entry("persistentVolumeClaimRetentionPolicy")
                .or_insert_with(|| json!({})));
            set_default(rp, "whenDeleted", json!("Retain"));
            set_default(rp, "whenScaled", json!("Retain"));
            if let Some(vcts) = spec
                .get_mut("volumeClaimTemplates")
                .and_then(Value::as_array_mut)
            {
                for t in vcts {
                    let t = obj(t);
                    set_default(t, "kind", json!("PersistentVolumeClaim"));
                    set_default(t, "apiVersion", json!("v1"));
                    t.entry("metadata").or_insert_with(|| json!({}));
                    let s = obj(t.entry("spec").or_insert_with(|| json!({})));
                    set_default(s, "volumeMode", json!("Filesystem"));
                    let st = obj(t.entry("status").or_insert_with(|| json!({})));
                    set_default(st, "phase", json!("Pending"));
                }
            }
            default_template(spec);
        }
        "ReplicaSet" => {
            let spec = obj(o
                .as_object_mut()
                .expect("object")
                .entry("spec")
                .or_insert_with(|| json!({})));
            set_default(spec, "replicas", json!(1));
            default_template(spec);
        }
        "StorageClass" => {
            let m = o.as_object_mut().expect("object");
            set_default(m, "reclaimPolicy", json!("Delete"));
            set_default(m, "volumeBindingMode", json!("Immediate"));
        }
        "Pod" => {
            let m = o.as_object_mut().expect("object");
            let spec = m.entry("spec").or_insert_with(|| json!({}));
            default_pod_spec(spec);
            let s = obj(spec);
            set_default(s, "enableServiceLinks", json!(true));
        }
        "Service" => {
            let spec = obj(o
                .as_object_mut()
                .expect("object")
                .entry("spec")
                .or_insert_with(|| json!({})));
            set_default(spec, "type", json!("ClusterIP"));
            let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
            if ty != "ExternalName" {
                set_default(spec, "sessionAffinity", json!("None"));
                set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            if ty == "NodePort" || ty == "LoadBalancer" {
                set_default(spec, "externalTrafficPolicy", json!("Cluster"));
            }
            if ty == "LoadBalancer" {
                set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
            }
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    let p = obj(p);
                    set_default(p, "protocol", json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        set_default(p, "targetPort", port);
                    }
                }
            }
        }
        "Secret" => {
            let m = o.as_object_mut().expect("object");
            set_default(m, "type", json!("Opaque"));
        }
        "PersistentVolumeClaim" => {
            let spec = obj(o
                .as_object_mut()
                .expect("object")
                .entry("spec")
                .or_insert_with(|| json!({})));
            set_default(spec, "volumeMode", json!("Filesystem"));
        }
        "Namespace" => {
            let name = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let meta = obj(o
                .as_object_mut()
                .expect("object")
                .entry("metadata")
                .or_insert_with(|| json!({})));
            let labels = obj(meta.entry("labels").or_insert_with(|| json!({})));
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
        "CustomResourceDefinition" => {
            let spec = obj(o
                .as_object_mut()
                .expect("object")
                .entry("spec")
                .or_insert_with(|| json!({})));
            set_default(spec, "conversion", json!({"strategy": "None"}));
        }
        // Go zero values that are always serialised (`source: {}`, `firstTimestamp: null`...).
        "Event" | "Event.events.k8s.io" => {
            let m = o.as_object_mut().expect("object");
            for (k, v) in zero(kind).as_object().expect("object") {
                if !m.contains_key(k) {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        _ => {}
    }
}

/// Strategy-time changes on create that managedFields do not record.
pub fn prepare_for_create(kind: &str, o: &mut Value, cluster_ip: &mut dyn FnMut() -> String) {
    let m = obj(o);
    match kind {
        "Namespace" => {
            let spec = obj(m.entry("spec").or_insert_with(|| json!({})));
            set_default(spec, "finalizers", json!(["kubernetes"]));
            m.insert("status".into(), json!({"phase": "Active"}));
        }
        "PersistentVolumeClaim" => {
            m.insert("status".into(), json!({"phase": "Pending"}));
        }
        "Pod" => {
            m.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": "BestEffort"}),
            );
        }
        "Service" => {
            let spec = obj(m.entry("spec").or_insert_with(|| json!({})));
            let ty = spec
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP")
                .to_string();
            if ty != "ExternalName" {
                let ip = match spec.get("clusterIP").and_then(Value::as_str) {
                    Some(ip) if !ip.is_empty() => ip.to_string(),
                    _ => cluster_ip(),
                };
                spec.insert("clusterIP".into(), json!(ip));
                spec.insert("clusterIPs".into(), json!([ip]));
                set_default(spec, "ipFamilies", json!(["IPv4"]));
                set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
            }
        }
        "CustomResourceDefinition" => {
            let storage = m
                .get("spec")
                .and_then(|s| s.get("versions"))
                .and_then(Value::as_array)
                .and_then(|vs| vs.iter().find(|v| v["storage"].as_bool() == Some(true)))
                .and_then(|v| v["name"].as_str())
                .unwrap_or("")
                .to_string();
            m.insert(
                "status".into(),
                json!({"conditions": null, "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": [storage]}),
            );
        }
        _ => {}
    }
    secret_string_data(kind, o);
}

/// Strategy-time changes on update: immutable allocations survive writes that omit them.
pub fn prepare_for_update(kind: &str, old: &Value, new: &mut Value) {
    match kind {
        "Service" => {
            let spec = obj(obj(new).entry("spec").or_insert_with(|| json!({})));
            for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                if spec.get(f).is_none_or(Value::is_null)
                    && let Some(v) = old.pointer(&format!("/spec/{f}"))
                {
                    spec.insert(f.into(), v.clone());
                }
            }
            super::immutable::normalize_service_update(old, new);
        }
        "Namespace" => {
            if let Some(f) = old.pointer("/spec/finalizers") {
                let spec = obj(obj(new).entry("spec").or_insert_with(|| json!({})));
                spec.insert("finalizers".into(), f.clone());
            }
        }
        "CustomResourceDefinition" => {
            if let Some(s) = old.get("status")
                && new.get("status").is_none()
            {
                obj(new).insert("status".into(), s.clone());
            }
        }
        _ => {}
    }
    secret_string_data(kind, new);
}

/// `stringData` is written into `data` (base64) and never stored.
fn secret_string_data(kind: &str, o: &mut Value) {
    if kind != "Secret" {
        return;
    }
    let m = obj(o);
    if let Some(Value::Object(sd)) = m.remove("stringData") {
        use base64::Engine;
        let data = obj(m.entry("data").or_insert_with(|| json!({})));
        for (k, v) in sd {
            let s = v.as_str().unwrap_or_default();
            data.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(s)),
            );
        }
    }
}

fn rfc1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn rfc1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(rfc1123_label)
}

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// Validates the object name (all kinds).
pub fn validate_name(kind: &str, name: &str) -> Vec<Cause> {
    if name.is_empty() {
        return vec![Cause::required_msg(
            "metadata.name",
            "name or generateName is required",
        )];
    }
    let label_only = matches!(kind, "Namespace" | "Service");
    if label_only && !rfc1123_label(name) {
        return vec![Cause::invalid("metadata.name", &json!(name), LABEL_MSG)];
    }
    if !label_only && !rfc1123_subdomain(name) && !name.contains(':') {
        return vec![Cause::invalid("metadata.name", &json!(name), SUBDOMAIN_MSG)];
    }
    Vec::new()
}

const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Errors of a qualified name (`prefix/name`) used as a label or annotation key.
fn qualified_name_errors(field: &str, key: &str, out: &mut Vec<Cause>) {
    let v = json!(key);
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if name.is_empty() {
        out.push(Cause::invalid(field, &v, "name part must be non-empty"));
    } else if name.len() > 63 {
        out.push(Cause::invalid(
            field,
            &v,
            "name part must be no more than 63 characters",
        ));
    } else if !name_part_ok(name) {
        out.push(Cause::invalid(field, &v, NAME_PART_MSG));
    }
    if let Some(p) = prefix
        && !rfc1123_subdomain(p)
    {
        out.push(Cause::invalid(
            field,
            &v,
            &format!("prefix part {SUBDOMAIN_MSG}"),
        ));
    }
}

/// Validates label keys and values and annotation keys (all kinds).
pub fn validate_metadata(o: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    if let Some(labels) = o.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            qualified_name_errors("metadata.labels", k, &mut out);
            let value = v.as_str().unwrap_or("");
            if value.len() > 63 {
                out.push(Cause::invalid(
                    "metadata.labels",
                    v,
                    "must be no more than 63 characters",
                ));
            } else if !value.is_empty() && !name_part_ok(value) {
                out.push(Cause::invalid("metadata.labels", v, LABEL_VALUE_MSG));
            }
        }
    }
    if let Some(ann) = o
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let mut total = 0;
        for (k, v) in ann {
            qualified_name_errors("metadata.annotations", &k.to_ascii_lowercase(), &mut out);
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            out.push(Cause {
                reason: "FieldValueTooLong",
                message: "Too long: may not be more than 262144 bytes".into(),
                field: "metadata.annotations".into(),
            });
        }
    }
    out
}

fn validate_pod_template(spec: &Value, base: &str, out: &mut Vec<Cause>) {
    let containers = spec.pointer("/template/spec/containers");
    match containers.and_then(Value::as_array) {
        None => out.push(Cause::required(format!("{base}.template.spec.containers"))),
        Some(cs) if cs.is_empty() => {
            out.push(Cause::required(format!("{base}.template.spec.containers")))
        }
        Some(cs) => {
            for (i, c) in cs.iter().enumerate() {
                let p = format!("{base}.template.spec.containers[{i}]");
                match c.get("name").and_then(Value::as_str) {
                    None | Some("") => out.push(Cause::required(format!("{p}.name"))),
                    Some(n) if !rfc1123_label(n) => {
                        out.push(Cause::invalid(format!("{p}.name"), &json!(n), LABEL_MSG))
                    }
                    _ => {}
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    out.push(Cause::required(format!("{p}.image")));
                }
            }
        }
    }
}

/// Whether labels match a LabelSelector (`matchLabels` and `matchExpressions`).
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let empty = Map::new();
    let labels = labels.as_object().unwrap_or(&empty);
    let ml_ok = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|ml| ml.iter().all(|(k, v)| labels.get(k) == Some(v)))
        .unwrap_or(true);
    let me_ok = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(|exprs| {
            exprs.iter().all(|e| {
                let key = e["key"].as_str().unwrap_or("");
                let vals: Vec<&Value> = e["values"]
                    .as_array()
                    .map(|a| a.iter().collect())
                    .unwrap_or_default();
                let v = labels.get(key);
                match e["operator"].as_str().unwrap_or("") {
                    "In" => v.is_some_and(|v| vals.contains(&v)),
                    "NotIn" => !v.is_some_and(|v| vals.contains(&v)),
                    "Exists" => v.is_some(),
                    "DoesNotExist" => v.is_none(),
                    _ => false,
                }
            })
        })
        .unwrap_or(true);
    ml_ok && me_ok
}

/// Validates a built-in object (after defaulting). `view_kind` distinguishes the
/// `events.k8s.io/v1` rules for Events.
pub fn validate(view_kind: &str, o: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    match view_kind {
        "StorageClass"
            if o.get("provisioner")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty) =>
        {
            out.push(Cause::required("provisioner"));
        }
        "Deployment" | "StatefulSet" | "ReplicaSet" => {
            let spec = &o["spec"];
            if let Some(r) = spec.get("replicas").and_then(Value::as_i64)
                && r < 0
            {
                out.push(Cause::invalid(
                    "spec.replicas",
                    &json!(r),
                    "must be greater than or equal to 0",
                ));
            }
            match spec.get("selector") {
                None | Some(Value::Null) => out.push(Cause::required("spec.selector")),
                Some(sel) => {
                    let empty = sel
                        .get("matchLabels")
                        .and_then(Value::as_object)
                        .is_none_or(Map::is_empty)
                        && sel
                            .get("matchExpressions")
                            .and_then(Value::as_array)
                            .is_none_or(Vec::is_empty);
                    let labels = spec
                        .pointer("/template/metadata/labels")
                        .cloned()
                        .unwrap_or(json!({}));
                    if empty {
                        out.push(Cause::invalid(
                            "spec.selector",
                            sel,
                            "empty selector is invalid for deployment",
                        ));
                    } else if !selector_matches(sel, &labels) {
                        out.push(Cause::invalid(
                            "spec.template.metadata.labels",
                            &labels,
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
            }
            validate_pod_template(spec, "spec", &mut out);
        }
        "Event.events.k8s.io" => {
            if o.get("eventTime").is_none_or(Value::is_null) {
                return vec![Cause::required("eventTime")];
            }
            let rc = o
                .get("reportingController")
                .and_then(Value::as_str)
                .unwrap_or("");
            if rc.is_empty() {
                out.push(Cause::required("reportingController"));
                out.push(Cause::invalid(
                    "reportingController",
                    &json!(""),
                    "name part must be non-empty",
                ));
                out.push(Cause::invalid("reportingController", &json!(""), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
            }
            if o.get("reportingInstance")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                out.push(Cause::required("reportingInstance"));
            }
            if o.get("action")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                out.push(Cause::required("action"));
            }
        }
        _ => {}
    }
    out
}

/// Checks MicroTime fields (exactly six fractional digits) as the decoder does: 400 otherwise.
pub fn check_micro_times(view_kind: &str, o: &Value) -> Result<(), ApiError> {
    let (kind, paths): (&str, &[&str]) = match view_kind {
        "Lease" => ("Lease", &["/spec/acquireTime", "/spec/renewTime"]),
        "Event" | "Event.events.k8s.io" => ("Event", &["/eventTime", "/series/lastObservedTime"]),
        _ => return Ok(()),
    };
    for p in paths {
        let Some(Value::String(t)) = o.pointer(p) else {
            continue;
        };
        if let Some(rest) = micro_time_error(t) {
            return Err(bad_request(format!(
                "{kind} in version \"v1\" cannot be handled as a {kind}: parsing time {t:?} as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse {rest:?} as \".000000\""
            )));
        }
    }
    Ok(())
}

/// The unparsable remainder of a MicroTime, if it is not `YYYY-MM-DDTHH:MM:SS.ffffff<zone>`.
fn micro_time_error(t: &str) -> Option<String> {
    if t.len() < 19 || !t.is_char_boundary(19) {
        return Some(t.to_string());
    }
    let rest = &t[19..];
    let frac_ok = rest.len() > 7
        && rest.starts_with('.')
        && rest[1..7].bytes().all(|b| b.is_ascii_digit())
        && !rest.as_bytes()[7].is_ascii_digit();
    if frac_ok {
        None
    } else {
        Some(rest.to_string())
    }
}

/// The `events.k8s.io/v1` view of a stored core Event.
pub fn event_to_v1(core: &Value) -> Value {
    let mut out = Map::new();
    let get = |k: &str| core.get(k).cloned();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    if let Some(m) = get("metadata") {
        out.insert("metadata".into(), m);
    }
    out.insert("eventTime".into(), get("eventTime").unwrap_or(Value::Null));
    for (from, to) in [
        ("series", "series"),
        ("action", "action"),
        ("reason", "reason"),
        ("related", "related"),
    ] {
        if let Some(v) = get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v);
        }
    }
    for (from, to) in [
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
    ] {
        if let Some(v) = get(from).filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
            out.insert(to.into(), v);
        }
    }
    out.insert(
        "regarding".into(),
        get("involvedObject").unwrap_or(json!({})),
    );
    if let Some(v) = get("message") {
        out.insert("note".into(), v);
    }
    if let Some(v) = get("type") {
        out.insert("type".into(), v);
    }
    out.insert(
        "deprecatedSource".into(),
        get("source").unwrap_or(json!({})),
    );
    out.insert(
        "deprecatedFirstTimestamp".into(),
        get("firstTimestamp").unwrap_or(Value::Null),
    );
    out.insert(
        "deprecatedLastTimestamp".into(),
        get("lastTimestamp").unwrap_or(Value::Null),
    );
    if let Some(c) = get("count").filter(|c| c.as_i64().is_some_and(|n| n != 0)) {
        out.insert("deprecatedCount".into(), c);
    }
    Value::Object(out)
}

/// The stored core form of an `events.k8s.io/v1` Event.
pub fn event_from_v1(v1: &Value) -> Value {
    let mut out = Map::new();
    let get = |k: &str| v1.get(k).cloned();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!("v1"));
    if let Some(m) = get("metadata") {
        out.insert("metadata".into(), m);
    }
    out.insert(
        "involvedObject".into(),
        get("regarding").unwrap_or(json!({})),
    );
    for k in ["reason", "type", "action", "series", "related"] {
        if let Some(v) = get(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v);
        }
    }
    if let Some(v) = get("note") {
        out.insert("message".into(), v);
    }
    out.insert(
        "source".into(),
        get("deprecatedSource").unwrap_or(json!({})),
    );
    out.insert(
        "firstTimestamp".into(),
        get("deprecatedFirstTimestamp").unwrap_or(Value::Null),
    );
    out.insert(
        "lastTimestamp".into(),
        get("deprecatedLastTimestamp").unwrap_or(Value::Null),
    );
    out.insert("eventTime".into(), get("eventTime").unwrap_or(Value::Null));
    out.insert(
        "reportingComponent".into(),
        get("reportingController").unwrap_or(json!("")),
    );
    out.insert(
        "reportingInstance".into(),
        get("reportingInstance").unwrap_or(json!("")),
    );
    if let Some(c) = get("deprecatedCount").filter(|c| !c.is_null()) {
        out.insert("count".into(), c);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_and_values_are_validated() {
        let ok = json!({"metadata": {"labels": {"app.kubernetes.io/name": "web", "empty": ""},
            "annotations": {"example.dev/Note": "anything goes here"}}});
        assert!(validate_metadata(&ok).is_empty());
        let bad = json!({"metadata": {"labels": {"a b": "x", "ok": "has space", "long": "x".repeat(64)}}});
        let causes = validate_metadata(&bad);
        assert_eq!(causes.len(), 3, "{causes:?}");
        assert!(causes.iter().all(|c| c.field == "metadata.labels"));
    }

    #[test]
    fn micro_time_needs_six_digits() {
        assert!(micro_time_error("2026-11-22T11:24:13.627397Z").is_none());
        assert_eq!(micro_time_error("2026-11-22T11:30:00.5Z").unwrap(), ".5Z");
        assert_eq!(micro_time_error("2026-11-22T11:30:00Z").unwrap(), "Z");
        assert_eq!(
            micro_time_error("2026-11-22T11:30:00.123Z").unwrap(),
            ".123Z"
        );
    }

    #[test]
    fn deployment_defaults_are_idempotent() {
        let mut d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}});
        default_object("Deployment", &mut d);
        let once = d.clone();
        default_object("Deployment", &mut d);
        assert_eq!(d, once);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    }

    #[test]
    fn events_round_trip_between_views() {
        let v1 = json!({"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": {"name": "e"},
            "eventTime": "2026-11-22T11:24:30.431521Z", "reportingController": "c", "reportingInstance": "i",
            "action": "A", "reason": "R", "regarding": {"kind": "Deployment"}, "note": "n", "type": "Normal"});
        let core = event_from_v1(&v1);
        assert_eq!(core["involvedObject"]["kind"], "Deployment");
        assert_eq!(core["message"], "n");
        let back = event_to_v1(&core);
        assert_eq!(back["note"], "n");
        assert_eq!(back["deprecatedSource"], json!({}));
        assert_eq!(back["deprecatedFirstTimestamp"], Value::Null);
    }
}
