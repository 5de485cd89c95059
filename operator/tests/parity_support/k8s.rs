//! Kubernetes' own validation for the fields Keelson fills from an Application, ported from the
//! Kubernetes sources (`apimachinery/pkg/util/validation/validation.go`,
//! `apimachinery/pkg/api/validation/objectmeta.go`, `pkg/apis/core/validation/validation.go`,
//! `pkg/apis/apps/validation`, `pkg/apis/networking/validation`, `pkg/apis/autoscaling/validation`,
//! `pkg/apis/policy/validation`). Written apart from Keelson's product rules, so that each checks
//! the other.
//!
//! Every check walks the built object as JSON and reports a [`Violation`]: the object's kind, the
//! field (list indices as `[]`, so one family is one field and one rule) and the rule's name.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::quantity;

/// One rule an object breaks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// The family: `Kind field: rule`.
    pub family: String,
    /// The offending value, shortened.
    pub value: String,
}

/// The checker of one object.
pub struct Check<'a> {
    kind: &'a str,
    out: &'a mut Vec<Violation>,
}

impl Check<'_> {
    fn fail(&mut self, field: &str, rule: &str, value: &str) {
        let mut v: String = value.chars().take(80).collect();
        if value.chars().count() > 80 {
            v.push_str(&format!("... ({} bytes)", value.len()));
        }
        // Pods are checked alike in Deployments and StatefulSets; requests and limits alike.
        let (kind, field) = match field.strip_prefix("spec.template.spec.") {
            Some(f) if self.kind == "Deployment" || self.kind == "StatefulSet" => {
                ("Pod", f.to_string())
            }
            _ => (self.kind, field.to_string()),
        };
        let field = field
            .replace("livenessProbe", "*Probe")
            .replace("readinessProbe", "*Probe")
            .replace("startupProbe", "*Probe");
        let field = if field.starts_with("containers[].resources.") {
            field
                .replace(".requests.", ".requests|limits.")
                .replace(".limits.", ".requests|limits.")
        } else {
            field
        };
        self.out.push(Violation {
            family: format!("{kind} {field}: {rule}"),
            value: v,
        });
    }

    fn rule(&mut self, field: &str, rule: &str, value: &str, ok: bool) {
        if !ok {
            self.fail(field, rule, value);
        }
    }
}

// ---- apimachinery/pkg/util/validation ----

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// IsDNS1123Label: at most 63 characters, `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && is_alnum_lower(b[0])
        && is_alnum_lower(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
}

/// IsDNS1123Subdomain: at most 253 characters, DNS-1123 labels (without their length limit)
/// joined by dots.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && !s.is_empty()
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && is_alnum_lower(b[0])
                && is_alnum_lower(b[b.len() - 1])
                && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
        })
}

/// IsWildcardDNS1123Subdomain: `*.` followed by a DNS-1123 subdomain, at most 253 in all.
pub fn is_wildcard_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.strip_prefix("*.").is_some_and(is_dns1123_subdomain)
}

/// IsDNS1035Label: at most 63 characters, `[a-z]([-a-z0-9]*[a-z0-9])?`.
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && b.len() <= 63
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter()
            .all(|&c| alnum(c) || c == b'-' || c == b'_' || c == b'.')
}

/// IsQualifiedName: an optional DNS-1123 subdomain prefix and `/`, then a name of at most 63
/// characters, `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
pub fn is_qualified_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [name] => is_qualified_name_part(name),
        [prefix, name] => {
            !prefix.is_empty() && is_dns1123_subdomain(prefix) && is_qualified_name_part(name)
        }
        _ => false,
    }
}

/// IsValidLabelValue: empty, or at most 63 characters, `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
pub fn is_valid_label_value(s: &str) -> bool {
    s.is_empty() || is_qualified_name_part(s)
}

/// IsValidPortName (IANA_SVC_NAME): at most 15 characters of `[-a-z0-9]`, at least one letter,
/// no `--`, no leading or trailing `-`.
pub fn is_valid_port_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
        && b.iter().any(|c| c.is_ascii_lowercase())
        && !s.contains("--")
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// IsEnvVarName as Kubernetes checked it before relaxed names (`[-._a-zA-Z][-._a-zA-Z0-9]*`),
/// the rule every supported version accepts.
pub fn is_env_var_name(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_';
    !b.is_empty() && !b[0].is_ascii_digit() && b.iter().all(|&c| ok(c))
}

/// IsConfigMapKey (also Secret keys): at most 253 characters of `[-._a-zA-Z0-9]`, not `.` or
/// `..`, not starting with `..`.
pub fn is_config_map_key(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_')
        && s != "."
        && !s.starts_with("..")
}

/// IsValidPathSegmentName (names of referenced objects such as an HPA's target).
pub fn is_valid_path_segment_name(s: &str) -> bool {
    s != "." && s != ".." && !s.contains('/') && !s.contains('%')
}

/// Go's strings.TrimSpace: Unicode White_Space.
fn has_surrounding_space(s: &str) -> bool {
    s.trim() != s
}

/// The annotations' total size limit (TotalAnnotationSizeLimitB).
pub const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

// ---- walking the objects ----

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn obj(v: &Value) -> Option<&serde_json::Map<String, Value>> {
    v.as_object()
}

/// Check one built object (as sent to the API server) against the rules of its kind.
pub fn check_object(o: &Value, out: &mut Vec<Violation>) {
    let kind = s(&o["kind"]).to_string();
    let mut c = Check { kind: &kind, out };
    object_meta(&mut c, &o["metadata"], &kind);
    let spec = &o["spec"];
    match kind.as_str() {
        "Deployment" => {
            c.rule(
                "spec.replicas",
                "ValidateNonnegativeField",
                "",
                spec["replicas"].as_i64().is_none_or(|r| r >= 0),
            );
            selector_matches(&mut c, &spec["selector"], &spec["template"]);
            pod_template(&mut c, &spec["template"], "spec.template");
        }
        "StatefulSet" => {
            selector_matches(&mut c, &spec["selector"], &spec["template"]);
            pod_template(&mut c, &spec["template"], "spec.template");
            if let Some(n) = spec["serviceName"].as_str() {
                c.rule(
                    "spec.serviceName",
                    "ValidateServiceName (IsDNS1035Label)",
                    n,
                    is_dns1035_label(n),
                );
            }
            for pvc in arr(&spec["volumeClaimTemplates"]) {
                let f = "spec.volumeClaimTemplates[]";
                let n = s(&pvc["metadata"]["name"]);
                c.rule(
                    &format!("{f}.metadata.name"),
                    "IsDNS1123Subdomain",
                    n,
                    is_dns1123_subdomain(n),
                );
                labels(
                    &mut c,
                    &pvc["metadata"]["labels"],
                    &format!("{f}.metadata.labels"),
                );
                let ps = &pvc["spec"];
                c.rule(
                    &format!("{f}.spec.accessModes"),
                    "Required",
                    "",
                    !arr(&ps["accessModes"]).is_empty(),
                );
                if let Some(sc) = ps["storageClassName"].as_str()
                    && !sc.is_empty()
                {
                    c.rule(
                        &format!("{f}.spec.storageClassName"),
                        "ValidateClassName (IsDNS1123Subdomain)",
                        sc,
                        is_dns1123_subdomain(sc),
                    );
                }
                match ps["resources"]["requests"]["storage"].as_str() {
                    None => c.fail(
                        &format!("{f}.spec.resources.requests.storage"),
                        "Required",
                        "",
                    ),
                    Some(q) => quantity_rules(
                        &mut c,
                        &format!("{f}.spec.resources.requests.storage"),
                        q,
                        QuantityUse::Storage,
                    ),
                }
            }
        }
        "Service" => service(&mut c, spec),
        "Secret" => {
            let mut size = 0;
            for (field, map) in [("data", &o["data"]), ("stringData", &o["stringData"])] {
                if let Some(m) = obj(map) {
                    for (k, v) in m {
                        c.rule(
                            &format!("{field}[]"),
                            "IsConfigMapKey",
                            k,
                            is_config_map_key(k),
                        );
                        size += s(v).len();
                    }
                }
            }
            c.rule("data", "MaxSecretSize (1 MiB)", "", size <= 1024 * 1024);
        }
        "HorizontalPodAutoscaler" => {
            let t = &spec["scaleTargetRef"];
            c.rule(
                "spec.scaleTargetRef.name",
                "IsValidPathSegmentName",
                s(&t["name"]),
                !s(&t["name"]).is_empty() && is_valid_path_segment_name(s(&t["name"])),
            );
            let min = spec["minReplicas"].as_i64().unwrap_or(1);
            let max = spec["maxReplicas"].as_i64().unwrap_or(0);
            c.rule(
                "spec.minReplicas",
                "must be greater than or equal to 1",
                &min.to_string(),
                min >= 1,
            );
            c.rule(
                "spec.maxReplicas",
                "must be greater than or equal to minReplicas",
                &max.to_string(),
                max >= min && max >= 1,
            );
            for m in arr(&spec["metrics"]) {
                if let Some(u) = m["resource"]["target"]["averageUtilization"].as_i64() {
                    c.rule(
                        "spec.metrics[].resource.target.averageUtilization",
                        "must be greater than 0",
                        &u.to_string(),
                        u > 0,
                    );
                }
            }
        }
        "PodDisruptionBudget" => {
            label_selector(&mut c, &spec["selector"], "spec.selector");
            for f in ["maxUnavailable", "minAvailable"] {
                if let Some(i) = spec[f].as_i64() {
                    c.rule(
                        &format!("spec.{f}"),
                        "ValidateNonnegativeField",
                        &i.to_string(),
                        i >= 0,
                    );
                }
            }
        }
        "Ingress" => ingress(&mut c, spec),
        "HTTPRoute" | "ServiceMonitor" => {
            // Their schemas and CEL rules are checked against the upstream CRDs; here only the
            // generic object rules (metadata) and the ServiceMonitor's label selector apply.
            if kind == "ServiceMonitor" {
                label_selector(&mut c, &spec["selector"], "spec.selector");
            }
        }
        other => c.fail("kind", "a kind the parity checks know", other),
    }
}

fn object_meta(c: &mut Check, m: &Value, kind: &str) {
    let name = s(&m["name"]);
    // ValidateObjectMeta with the kind's name function.
    let (rule, ok) = match kind {
        "Service" => ("IsDNS1035Label", is_dns1035_label(name)),
        _ => ("IsDNS1123Subdomain", is_dns1123_subdomain(name)),
    };
    c.rule("metadata.name", rule, name, ok);
    let ns = s(&m["namespace"]);
    c.rule(
        "metadata.namespace",
        "IsDNS1123Label",
        ns,
        is_dns1123_label(ns),
    );
    labels(c, &m["labels"], "metadata.labels");
    annotations(c, &m["annotations"], "metadata.annotations");
    for o in arr(&m["ownerReferences"]) {
        c.rule(
            "metadata.ownerReferences[].name",
            "Required",
            "",
            !s(&o["name"]).is_empty(),
        );
        c.rule(
            "metadata.ownerReferences[].uid",
            "Required",
            "",
            !s(&o["uid"]).is_empty(),
        );
    }
}

fn labels(c: &mut Check, l: &Value, field: &str) {
    if let Some(m) = obj(l) {
        for (k, v) in m {
            c.rule(
                &format!("{field} key"),
                "IsQualifiedName",
                k,
                is_qualified_name(k),
            );
            c.rule(
                &format!("{field} value"),
                "IsValidLabelValue",
                s(v),
                is_valid_label_value(s(v)),
            );
        }
    }
}

fn annotations(c: &mut Check, a: &Value, field: &str) {
    if let Some(m) = obj(a) {
        let mut total = 0;
        for (k, v) in m {
            c.rule(
                &format!("{field} key"),
                "IsQualifiedName (lower-cased)",
                k,
                is_qualified_name(&k.to_lowercase()),
            );
            total += k.len() + s(v).len();
        }
        c.rule(
            field,
            "TotalAnnotationSizeLimitB (262144 bytes)",
            &total.to_string(),
            total <= TOTAL_ANNOTATION_SIZE,
        );
    }
}

fn label_selector(c: &mut Check, sel: &Value, field: &str) {
    labels(c, &sel["matchLabels"], &format!("{field}.matchLabels"));
}

fn selector_matches(c: &mut Check, sel: &Value, template: &Value) {
    label_selector(c, sel, "spec.selector");
    let want = obj(&sel["matchLabels"]).cloned().unwrap_or_default();
    let have = obj(&template["metadata"]["labels"])
        .cloned()
        .unwrap_or_default();
    c.rule(
        "spec.selector",
        "Required (non-empty)",
        "",
        !want.is_empty(),
    );
    let ok = want.iter().all(|(k, v)| have.get(k) == Some(v));
    c.rule(
        "spec.template.metadata.labels",
        "selector does not match template labels",
        "",
        ok,
    );
}

#[derive(Clone, Copy, PartialEq)]
enum QuantityUse {
    Cpu,
    Memory,
    Storage,
}

fn quantity_rules(c: &mut Check, field: &str, q: &str, usage: QuantityUse) {
    let Some(p) = quantity::parse(q) else {
        c.fail(
            field,
            "ParseQuantity (quantities must match the regular expression)",
            q,
        );
        return;
    };
    let zero = num_bigint::BigInt::from(0);
    if usage == QuantityUse::Storage {
        c.rule(
            field,
            "ValidatePositiveQuantityValue (must be greater than zero)",
            q,
            p.nanos > zero,
        );
    } else {
        c.rule(field, "ValidateNonnegativeQuantity", q, p.nanos >= zero);
    }
    // Not Kubernetes' rejections but the limits the parity promise sets: no accepted quantity is
    // expensive for the API server to parse, and the obvious unit slips are refused.
    c.rule(
        field,
        "policy: quantity exponent within 100 digits (API-server parse cost)",
        q,
        p.magnitude <= 100,
    );
    match usage {
        QuantityUse::Memory | QuantityUse::Storage => c.rule(
            field,
            "policy: memory and storage of at least 1Mi (did you mean Mi?)",
            q,
            p.nanos == zero || p.nanos >= quantity::mebibyte_nanos(),
        ),
        QuantityUse::Cpu => c.rule(
            field,
            "policy: CPU of at most 1000 cores",
            q,
            p.nanos <= quantity::thousand_cores_nanos(),
        ),
    }
}

fn pod_template(c: &mut Check, t: &Value, field: &str) {
    labels(
        c,
        &t["metadata"]["labels"],
        &format!("{field}.metadata.labels"),
    );
    let p = &t["spec"];
    if let Some(sa) = p["serviceAccountName"].as_str() {
        c.rule(
            &format!("{field}.spec.serviceAccountName"),
            "ValidateServiceAccountName (IsDNS1123Subdomain)",
            sa,
            sa.is_empty() || is_dns1123_subdomain(sa),
        );
    }
    for u in ["runAsUser", "runAsGroup", "fsGroup"] {
        if let Some(v) = p["securityContext"][u].as_i64() {
            c.rule(
                &format!("{field}.spec.securityContext.{u}"),
                "between 0 and 2147483647",
                &v.to_string(),
                (0..=2147483647).contains(&v),
            );
        }
    }
    let volumes: BTreeSet<&str> = arr(&p["volumes"]).iter().map(|v| s(&v["name"])).collect();
    for v in &volumes {
        c.rule(
            &format!("{field}.spec.volumes[].name"),
            "IsDNS1123Label",
            v,
            is_dns1123_label(v),
        );
    }
    let claims: BTreeSet<&str> = BTreeSet::new();
    let containers = arr(&p["containers"]);
    c.rule(
        &format!("{field}.spec.containers"),
        "Required",
        "",
        !containers.is_empty(),
    );
    let mut names = BTreeSet::new();
    for ct in containers {
        let f = format!("{field}.spec.containers[]");
        let name = s(&ct["name"]);
        c.rule(
            &format!("{f}.name"),
            "IsDNS1123Label",
            name,
            is_dns1123_label(name),
        );
        c.rule(&format!("{f}.name"), "Duplicate", name, names.insert(name));
        let image = s(&ct["image"]);
        c.rule(
            &format!("{f}.image"),
            "Required (pods)",
            image,
            !image.is_empty(),
        );
        c.rule(
            &format!("{f}.image"),
            "must not have leading or trailing whitespace",
            image,
            !has_surrounding_space(image),
        );
        let mut port_names = BTreeSet::new();
        for port in arr(&ct["ports"]) {
            let n = s(&port["name"]);
            if !n.is_empty() {
                c.rule(
                    &format!("{f}.ports[].name"),
                    "IsValidPortName",
                    n,
                    is_valid_port_name(n),
                );
                c.rule(
                    &format!("{f}.ports[].name"),
                    "Duplicate",
                    n,
                    port_names.insert(n),
                );
            }
            let num = port["containerPort"].as_i64().unwrap_or(0);
            c.rule(
                &format!("{f}.ports[].containerPort"),
                "IsValidPortNum",
                &num.to_string(),
                (1..=65535).contains(&num),
            );
            let proto = s(&port["protocol"]);
            c.rule(
                &format!("{f}.ports[].protocol"),
                "supported values TCP, UDP, SCTP",
                proto,
                ["TCP", "UDP", "SCTP", ""].contains(&proto),
            );
        }
        for e in arr(&ct["env"]) {
            let n = s(&e["name"]);
            c.rule(
                &format!("{f}.env[].name"),
                "IsEnvVarName",
                n,
                is_env_var_name(n),
            );
            let vf = &e["valueFrom"];
            for (r, name_rule) in [
                ("secretKeyRef", "ValidateSecretName (IsDNS1123Subdomain)"),
                (
                    "configMapKeyRef",
                    "ValidateConfigMapName (IsDNS1123Subdomain)",
                ),
            ] {
                if vf[r].is_object() {
                    let rn = s(&vf[r]["name"]);
                    let key = s(&vf[r]["key"]);
                    c.rule(
                        &format!("{f}.env[].valueFrom.{r}.name"),
                        name_rule,
                        rn,
                        is_dns1123_subdomain(rn),
                    );
                    c.rule(
                        &format!("{f}.env[].valueFrom.{r}.key"),
                        "IsConfigMapKey",
                        key,
                        is_config_map_key(key),
                    );
                }
            }
            if e["value"].is_string() && vf.is_object() {
                c.fail(
                    &format!("{f}.env[].valueFrom"),
                    "may not be specified when `value` is not empty",
                    n,
                );
            }
        }
        resources(c, &ct["resources"], &format!("{f}.resources"));
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            let pr = &ct[probe];
            if !pr.is_object() {
                continue;
            }
            let pf = format!("{f}.{probe}");
            let handlers = ["httpGet", "tcpSocket", "exec", "grpc"]
                .iter()
                .filter(|h| pr[**h].is_object())
                .count();
            c.rule(
                &pf,
                "must specify exactly one handler type",
                "",
                handlers == 1,
            );
            for h in ["httpGet", "tcpSocket"] {
                let port = &pr[h]["port"];
                if pr[h].is_object() {
                    match port {
                        Value::String(n) => c.rule(
                            &format!("{pf}.{h}.port"),
                            "ValidatePortNumOrName (IsValidPortName)",
                            n,
                            is_valid_port_name(n),
                        ),
                        Value::Number(n) => c.rule(
                            &format!("{pf}.{h}.port"),
                            "ValidatePortNumOrName (IsValidPortNum)",
                            &n.to_string(),
                            n.as_i64().is_some_and(|n| (1..=65535).contains(&n)),
                        ),
                        _ => c.fail(&format!("{pf}.{h}.port"), "Required", ""),
                    }
                }
            }
            if pr["httpGet"].is_object() {
                c.rule(
                    &format!("{pf}.httpGet.path"),
                    "Required",
                    "",
                    !s(&pr["httpGet"]["path"]).is_empty(),
                );
            }
            if pr["exec"].is_object() {
                c.rule(
                    &format!("{pf}.exec.command"),
                    "Required",
                    "",
                    !arr(&pr["exec"]["command"]).is_empty(),
                );
            }
            for (n, min) in [
                ("initialDelaySeconds", 0),
                ("periodSeconds", 0),
                ("timeoutSeconds", 0),
                ("failureThreshold", 0),
                ("successThreshold", 0),
            ] {
                if let Some(v) = pr[n].as_i64() {
                    c.rule(
                        &format!("{pf}.{n}"),
                        "ValidateNonnegativeField",
                        &v.to_string(),
                        v >= min,
                    );
                }
            }
        }
        for m in arr(&ct["volumeMounts"]) {
            let n = s(&m["name"]);
            c.rule(
                &format!("{f}.volumeMounts[].name"),
                "not found (a volume or claim template)",
                n,
                volumes.contains(n) || claims.contains(n) || n == "data",
            );
            c.rule(
                &format!("{f}.volumeMounts[].mountPath"),
                "Required",
                "",
                !s(&m["mountPath"]).is_empty(),
            );
        }
        if let Some(p) = ct["imagePullPolicy"].as_str() {
            c.rule(
                &format!("{f}.imagePullPolicy"),
                "supported values Always, IfNotPresent, Never",
                p,
                ["Always", "IfNotPresent", "Never"].contains(&p),
            );
        }
    }
}

fn resources(c: &mut Check, r: &Value, field: &str) {
    let mut parsed: BTreeMap<(&str, &str), num_bigint::BigInt> = BTreeMap::new();
    for part in ["requests", "limits"] {
        if let Some(m) = obj(&r[part]) {
            for (name, q) in m {
                let usage = match name.as_str() {
                    "cpu" => QuantityUse::Cpu,
                    "memory" => QuantityUse::Memory,
                    _ => {
                        c.fail(&format!("{field}.{part}"), "a standard resource name", name);
                        continue;
                    }
                };
                let f = format!("{field}.{part}.{name}");
                quantity_rules(c, &f, s(q), usage);
                if let Some(p) = quantity::parse(s(q)) {
                    parsed.insert((part, name.as_str()), p.nanos);
                }
            }
        }
    }
    for name in ["cpu", "memory"] {
        if let (Some(req), Some(lim)) = (
            parsed.get(&("requests", name)),
            parsed.get(&("limits", name)),
        ) {
            c.rule(
                &format!("{field}.requests.{name}"),
                "must be less than or equal to the limit (exact Quantity.Cmp)",
                "",
                req <= lim,
            );
        }
    }
}

fn service(c: &mut Check, spec: &Value) {
    let ports = arr(&spec["ports"]);
    let mut names = BTreeSet::new();
    let mut port_proto = BTreeSet::new();
    for p in ports {
        let n = s(&p["name"]);
        if ports.len() > 1 {
            c.rule(
                "spec.ports[].name",
                "Required (more than one port)",
                "",
                !n.is_empty(),
            );
        }
        if !n.is_empty() {
            c.rule(
                "spec.ports[].name",
                "IsDNS1123Label",
                n,
                is_dns1123_label(n),
            );
            c.rule("spec.ports[].name", "Duplicate", n, names.insert(n));
        }
        let num = p["port"].as_i64().unwrap_or(0);
        c.rule(
            "spec.ports[].port",
            "IsValidPortNum",
            &num.to_string(),
            (1..=65535).contains(&num),
        );
        c.rule(
            "spec.ports[]",
            "Duplicate (port, protocol)",
            &num.to_string(),
            port_proto.insert((num, s(&p["protocol"]).to_string())),
        );
        match &p["targetPort"] {
            Value::String(t) => c.rule(
                "spec.ports[].targetPort",
                "IsValidPortName",
                t,
                is_valid_port_name(t),
            ),
            Value::Number(t) => c.rule(
                "spec.ports[].targetPort",
                "IsValidPortNum",
                &t.to_string(),
                t.as_i64().is_some_and(|t| (1..=65535).contains(&t)),
            ),
            _ => {}
        }
    }
    labels(c, &spec["selector"], "spec.selector");
}

fn ingress(c: &mut Check, spec: &Value) {
    if let Some(cls) = spec["ingressClassName"].as_str() {
        c.rule(
            "spec.ingressClassName",
            "ValidateIngressClassName (IsDNS1123Subdomain)",
            cls,
            is_dns1123_subdomain(cls),
        );
    }
    let host_ok = |h: &str| {
        let dns = if h.contains('*') {
            is_wildcard_dns1123_subdomain(h)
        } else {
            is_dns1123_subdomain(h)
        };
        (dns, h.parse::<std::net::IpAddr>().is_err())
    };
    for t in arr(&spec["tls"]) {
        for h in arr(&t["hosts"]) {
            let (dns, _) = host_ok(s(h));
            c.rule(
                "spec.tls[].hosts[]",
                "IsDNS1123Subdomain or wildcard",
                s(h),
                dns,
            );
        }
        if let Some(n) = t["secretName"].as_str() {
            c.rule(
                "spec.tls[].secretName",
                "ValidateSecretName (IsDNS1123Subdomain)",
                n,
                n.is_empty() || is_dns1123_subdomain(n),
            );
        }
    }
    for r in arr(&spec["rules"]) {
        if let Some(h) = r["host"].as_str() {
            let (dns, not_ip) = host_ok(h);
            c.rule(
                "spec.rules[].host",
                "IsDNS1123Subdomain or wildcard",
                h,
                dns,
            );
            c.rule(
                "spec.rules[].host",
                "must be a DNS name, not an IP address",
                h,
                not_ip,
            );
        }
        for p in arr(&r["http"]["paths"]) {
            let path = s(&p["path"]);
            let ty = s(&p["pathType"]);
            c.rule(
                "spec.rules[].http.paths[].pathType",
                "supported values Exact, Prefix, ImplementationSpecific",
                ty,
                ["Exact", "Prefix", "ImplementationSpecific"].contains(&ty),
            );
            if ty == "Exact" || ty == "Prefix" {
                c.rule(
                    "spec.rules[].http.paths[].path",
                    "must be an absolute path",
                    path,
                    path.starts_with('/'),
                );
                for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                    c.rule(
                        "spec.rules[].http.paths[].path",
                        "must not contain //, /./, /../, %2f or %2F",
                        path,
                        !path.contains(seq),
                    );
                }
                for suf in ["/..", "/."] {
                    c.rule(
                        "spec.rules[].http.paths[].path",
                        "cannot end with /.. or /.",
                        path,
                        !path.ends_with(suf),
                    );
                }
            }
            let svc = &p["backend"]["service"];
            let n = s(&svc["name"]);
            c.rule(
                "spec.rules[].http.paths[].backend.service.name",
                "ValidateServiceName (IsDNS1035Label)",
                n,
                is_dns1035_label(n),
            );
            let pn = s(&svc["port"]["name"]);
            let num = svc["port"]["number"].as_i64().unwrap_or(0);
            match (pn.is_empty(), num) {
                (false, 0) => c.rule(
                    "spec.rules[].http.paths[].backend.service.port.name",
                    "IsValidPortName",
                    pn,
                    is_valid_port_name(pn),
                ),
                (true, n) if n != 0 => c.rule(
                    "spec.rules[].http.paths[].backend.service.port.number",
                    "IsValidPortNum",
                    &n.to_string(),
                    (1..=65535).contains(&n),
                ),
                _ => c.fail(
                    "spec.rules[].http.paths[].backend.service.port",
                    "exactly one of name or number",
                    pn,
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_port_name("http") && is_valid_port_name("h2c-1"));
        for bad in [
            "8080",
            "admin--tls",
            "-a",
            "a-",
            "HTTP",
            "abcdefghijklmnop",
            "",
        ] {
            assert!(!is_valid_port_name(bad), "{bad}");
        }
        assert!(
            is_dns1123_subdomain("a.b-c.d")
                && !is_dns1123_subdomain("a..b")
                && !is_dns1123_subdomain("My_Secret")
        );
        assert!(
            is_qualified_name("example.com/a_B.c")
                && !is_qualified_name("/a")
                && !is_qualified_name("a/b/c")
                && !is_qualified_name("-a")
        );
        assert!(
            is_config_map_key("a.b_c-d")
                && !is_config_map_key("..a")
                && !is_config_map_key("a/b")
                && !is_config_map_key(".")
        );
        assert!(is_wildcard_dns1123_subdomain("*.a.b") && !is_wildcard_dns1123_subdomain("*a.b"));
    }
}
