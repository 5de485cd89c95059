//! Schema checks of built objects.
//!
//! (a) The Kubernetes OpenAPI schemas of the core kinds, as k8s-openapi generates them from the
//!     Kubernetes release's `swagger.json` (the same source as `kubectl`'s and
//!     `kubernetes-validate`'s schemas), made strict about unknown fields like `kubectl`'s
//!     default `--validate=strict`.
//! (c) The upstream CRDs of HTTPRoute and ServiceMonitor: their OpenAPI schema and their CEL
//!     rules (`x-kubernetes-validations`), read from `KEELSON_THIRD_PARTY_CRDS`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{Secret, Service},
    networking::v1::Ingress,
    policy::v1::PodDisruptionBudget,
};
use kube::core::cel;
use serde_json::Value;

use super::k8s::Violation;

/// `additionalProperties: false` wherever an object schema lists its properties.
fn strict(schema: &mut Value) {
    if let Some(o) = schema.as_object_mut() {
        let preserve = o.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if o.contains_key("properties") && !o.contains_key("additionalProperties") && !preserve {
            o.insert("additionalProperties".into(), Value::Bool(false));
        }
        if o.get("nullable") == Some(&Value::Bool(true))
            && let Some(Value::String(t)) = o.get("type").cloned()
        {
            o.insert("type".into(), serde_json::json!([t, "null"]));
        }
        if o.remove("x-kubernetes-int-or-string") == Some(Value::Bool(true))
            && !o.contains_key("anyOf")
        {
            o.remove("type");
            o.insert(
                "anyOf".into(),
                serde_json::json!([{"type": "integer"}, {"type": "string"}]),
            );
        }
        for (_, v) in o.iter_mut() {
            strict(v);
        }
    } else if let Some(a) = schema.as_array_mut() {
        a.iter_mut().for_each(strict);
    }
}

fn validator(mut schema: Value) -> jsonschema::Validator {
    strict(&mut schema);
    jsonschema::options()
        .should_validate_formats(false)
        .build(&schema)
        .expect("a valid JSON schema")
}

fn core_schema<T: schemars::JsonSchema>() -> jsonschema::Validator {
    validator(serde_json::to_value(schemars::schema_for!(T)).expect("schema serializes"))
}

/// The core kinds' schemas, by kind.
pub struct CoreSchemas(BTreeMap<&'static str, jsonschema::Validator>);

impl CoreSchemas {
    pub fn new() -> Self {
        CoreSchemas(BTreeMap::from([
            ("Deployment", core_schema::<Deployment>()),
            ("StatefulSet", core_schema::<StatefulSet>()),
            ("Service", core_schema::<Service>()),
            ("Secret", core_schema::<Secret>()),
            (
                "HorizontalPodAutoscaler",
                core_schema::<HorizontalPodAutoscaler>(),
            ),
            ("PodDisruptionBudget", core_schema::<PodDisruptionBudget>()),
            ("Ingress", core_schema::<Ingress>()),
        ]))
    }

    /// Check `o` when it is a core kind; `false` when its kind is not one.
    pub fn check(&self, o: &Value, out: &mut Vec<Violation>) -> bool {
        let kind = o["kind"].as_str().unwrap_or("");
        let Some(v) = self.0.get(kind) else {
            return false;
        };
        for e in v.iter_errors(o) {
            out.push(Violation {
                family: format!(
                    "{kind} {}: OpenAPI schema ({})",
                    generic_path(&e.instance_path().to_string()),
                    short(&e.to_string().replace(&e.instance().to_string(), "value"))
                ),
                value: String::new(),
            });
        }
        true
    }
}

/// A JSON pointer with list indices as `[]`.
fn generic_path(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        if seg.chars().all(|c| c.is_ascii_digit()) {
            out.push_str("[]");
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

fn short(s: &str) -> String {
    s.chars().take(90).collect()
}

/// An upstream CRD's version: its schema, compiled CEL rules and the rules that failed to compile.
struct CrdVersion {
    schema: jsonschema::Validator,
    cel: cel::CompiledSchema,
}

/// HTTPRoute and ServiceMonitor as their upstream CRDs define them.
pub struct ThirdParty {
    by_api: BTreeMap<(String, String), CrdVersion>,
    /// The directory the CRDs were read from.
    pub dir: PathBuf,
    /// CEL rules that do not compile here, with why.
    pub uncompiled: Vec<String>,
}

/// The repository's root: relative folders in the variables below are read from there.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// How to get the upstream CRDs, for messages.
pub const FETCH_THIRD_PARTY_CRDS: &str =
    "run e2e/fetch-third-party-crds.sh, then export KEELSON_THIRD_PARTY_CRDS=e2e/third-party-crds";

/// Where the upstream CRDs are: `KEELSON_THIRD_PARTY_CRDS` (relative to the repository root
/// when relative), as for the end-to-end tests; an error naming the fix when it is unset or
/// lacks the files.
pub fn third_party_dir() -> Result<PathBuf, String> {
    let Some(d) = std::env::var_os("KEELSON_THIRD_PARTY_CRDS").filter(|v| !v.is_empty()) else {
        return Err(format!(
            "KEELSON_THIRD_PARTY_CRDS is not set: {FETCH_THIRD_PARTY_CRDS}"
        ));
    };
    let p = repo_root().join(d);
    for f in [HTTPROUTE_FILE, SERVICEMONITOR_FILE] {
        if !p.join(f).is_file() {
            return Err(format!(
                "KEELSON_THIRD_PARTY_CRDS={} has no {f}: {FETCH_THIRD_PARTY_CRDS}",
                p.display()
            ));
        }
    }
    Ok(p)
}

const HTTPROUTE_FILE: &str = "gateway.networking.k8s.io_httproutes.yaml";
const SERVICEMONITOR_FILE: &str = "monitoring.coreos.com_servicemonitors.yaml";

fn collect_uncompiled(c: &cel::CompiledSchema, path: &str, out: &mut Vec<String>) {
    for e in c.compilation_errors() {
        out.push(format!("{path}: {e}"));
    }
    for (k, v) in &c.properties {
        collect_uncompiled(v, &format!("{path}.{k}"), out);
    }
    if let Some(i) = &c.items {
        collect_uncompiled(i, &format!("{path}[]"), out);
    }
    if let Some(a) = &c.additional_properties {
        collect_uncompiled(a, &format!("{path}{{}}"), out);
    }
    for s in c.all_of.iter().chain(&c.one_of).chain(&c.any_of) {
        collect_uncompiled(s, path, out);
    }
}

impl ThirdParty {
    pub fn load(dir: PathBuf) -> Self {
        let mut by_api = BTreeMap::new();
        let mut uncompiled = Vec::new();
        for file in [HTTPROUTE_FILE, SERVICEMONITOR_FILE] {
            let text =
                std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            let crd: Value =
                serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
            let group = crd["spec"]["group"].as_str().expect("group").to_string();
            let kind = crd["spec"]["names"]["kind"]
                .as_str()
                .expect("kind")
                .to_string();
            for v in crd["spec"]["versions"].as_array().expect("versions") {
                let name = v["name"].as_str().expect("version name");
                let schema = v["schema"]["openAPIV3Schema"].clone();
                let compiled = cel::compile_schema(&schema);
                collect_uncompiled(&compiled, &format!("{kind} {name}"), &mut uncompiled);
                by_api.insert(
                    (format!("{group}/{name}"), kind.clone()),
                    CrdVersion {
                        schema: validator(schema),
                        cel: compiled,
                    },
                );
            }
        }
        ThirdParty {
            by_api,
            dir,
            uncompiled,
        }
    }

    /// Check `o` when the CRDs define its kind; `false` otherwise.
    pub fn check(&self, o: &Value, out: &mut Vec<Violation>) -> bool {
        let api = o["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = o["kind"].as_str().unwrap_or("").to_string();
        let Some(v) = self.by_api.get(&(api, kind.clone())) else {
            return false;
        };
        // The API server drops nulls before it validates a custom resource.
        let mut o = o.clone();
        drop_nulls(&mut o);
        for e in v.schema.iter_errors(&o) {
            out.push(Violation {
                family: format!(
                    "{kind} {}: CRD schema ({})",
                    generic_path(&e.instance_path().to_string()),
                    short(&e.to_string().replace(&e.instance().to_string(), "value"))
                ),
                value: e.instance().to_string().chars().take(80).collect(),
            });
        }
        if let Err(errs) = cel::Validator::new().validate_compiled(&v.cel, &o, None) {
            for e in errs.into_vec() {
                let path: String = e
                    .field_path
                    .split('[')
                    .map(|p| p.split(']').next_back().unwrap_or(p))
                    .collect::<Vec<_>>()
                    .join("[]");
                out.push(Violation {
                    family: format!(
                        "{kind} {}: CEL {:?} ({})",
                        path.trim_start_matches('.'),
                        e.kind,
                        e.message.chars().take(90).collect::<String>()
                    ),
                    value: String::new(),
                });
            }
        }
        true
    }
}

fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The version of kubernetes-validate's schemas the checks read: the Kubernetes release Keelson
/// is judged on.
const K8S_SCHEMA_VERSION: &str = "v1.36.0-local-strict";

const OFFICIAL_FILES: [(&str, &str); 7] = [
    ("Deployment", "deployment-apps-v1.json"),
    ("StatefulSet", "statefulset-apps-v1.json"),
    ("Service", "service-v1.json"),
    ("Secret", "secret-v1.json"),
    (
        "HorizontalPodAutoscaler",
        "horizontalpodautoscaler-autoscaling-v2.json",
    ),
    ("PodDisruptionBudget", "poddisruptionbudget-policy-v1.json"),
    ("Ingress", "ingress-networking-v1.json"),
];

/// Where kubernetes-validate's strict JSON schemas are: `KEELSON_K8S_SCHEMAS` (relative to the
/// repository root when relative), the folder `kubernetes_validate/kubernetes-json-schema/`
/// `v1.36.0-local-strict` of an installed kubernetes-validate (`.ci/run` sets it from its `.venv`);
/// an error naming the fix when it is unset or lacks the schemas.
pub fn official_dir() -> Result<PathBuf, String> {
    let fix = format!(
        "`.venv/bin/pip install -r charts/tests/requirements.txt`, then export KEELSON_K8S_SCHEMAS=$(echo .venv/lib/python3*/site-packages/kubernetes_validate/kubernetes-json-schema/{K8S_SCHEMA_VERSION})"
    );
    let Some(d) = std::env::var_os("KEELSON_K8S_SCHEMAS").filter(|v| !v.is_empty()) else {
        return Err(format!("KEELSON_K8S_SCHEMAS is not set: {fix}"));
    };
    let p = repo_root().join(d);
    if p.join("_definitions.json").is_file() {
        Ok(p)
    } else {
        Err(format!(
            "KEELSON_K8S_SCHEMAS={} has no _definitions.json: {fix}",
            p.display()
        ))
    }
}

/// (a) kubernetes-validate's strict schemas (no unknown fields) of the core kinds.
pub struct OfficialSchemas {
    pub dir: PathBuf,
    by_kind: BTreeMap<&'static str, jsonschema::Validator>,
}

fn local_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref")
                && let Some(rest) = r.strip_prefix("/api/_definitions.json")
            {
                *r = rest.to_string();
            }
            m.values_mut().for_each(local_refs);
        }
        Value::Array(a) => a.iter_mut().for_each(local_refs),
        _ => {}
    }
}

impl OfficialSchemas {
    pub fn load(dir: PathBuf) -> Self {
        let read = |f: &str| -> Value {
            let text = std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"))
        };
        let defs = read("_definitions.json")["$defs"].clone();
        let by_kind = OFFICIAL_FILES
            .iter()
            .map(|(kind, file)| {
                let mut s = read(file);
                local_refs(&mut s);
                s.as_object_mut()
                    .expect("a schema object")
                    .insert("$defs".into(), defs.clone());
                let v = jsonschema::options()
                    .should_validate_formats(false)
                    .build(&s)
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                (*kind, v)
            })
            .collect();
        OfficialSchemas { dir, by_kind }
    }

    pub fn check(&self, o: &Value, out: &mut Vec<Violation>) {
        let kind = o["kind"].as_str().unwrap_or("");
        if let Some(v) = self.by_kind.get(kind) {
            for e in v.iter_errors(o) {
                out.push(Violation {
                    family: format!(
                        "{kind} {}: kubernetes-validate schema ({})",
                        generic_path(&e.instance_path().to_string()),
                        short(&e.to_string().replace(&e.instance().to_string(), "value"))
                    ),
                    value: e.instance().to_string().chars().take(80).collect(),
                });
            }
        }
    }
}
