//! The parity proof's support: generators of Applications, the Kubernetes rules ported from its
//! sources, and the schema checks, so that every object Keelson builds from an accepted
//! Application is checked the way the API server checks it.

#![allow(dead_code)]

pub mod generate;
pub mod k8s;
pub mod quantity;
pub mod schemas;

use std::collections::BTreeMap;

use keelson::{
    api::validate::validate_value,
    build::{self, ApiCapabilities, Credentials},
    render,
};
use serde_json::Value;

pub use k8s::Violation;

/// Every check of built objects: (a) core schemas (k8s-openapi's, always; kubernetes-validate's
/// when `KEELSON_K8S_SCHEMAS` names them), (b) ported field rules, (c) upstream CRDs (only for a
/// checker made [`Checker::with_crds`]).
pub struct Checker {
    pub core: schemas::CoreSchemas,
    /// kubernetes-validate's schemas, when `KEELSON_K8S_SCHEMAS` is set.
    pub official: Option<schemas::OfficialSchemas>,
    /// The upstream CRDs, when this checker checks them.
    pub third_party: Option<schemas::ThirdParty>,
}

/// What happened to one generated Application.
pub enum Outcome {
    /// Keelson refused it (nothing to check): the fields it named.
    Rejected(Vec<(String, String)>),
    /// Keelson accepted it: the objects it built and the rules they break.
    Accepted {
        objects: usize,
        violations: Vec<Violation>,
    },
}

fn fixed_creds(_: &str) -> Credentials {
    Credentials {
        password: "p".repeat(32),
        admin_password: "a".repeat(32),
    }
}

impl Checker {
    /// Checks (a) and (b). kubernetes-validate's schemas are read when `KEELSON_K8S_SCHEMAS` is
    /// set (panics when it names no schemas: a run that was asked for them must not pass
    /// without them).
    pub fn new() -> Self {
        let official = std::env::var_os("KEELSON_K8S_SCHEMAS")
            .filter(|v| !v.is_empty())
            .map(|_| {
                schemas::OfficialSchemas::load(
                    schemas::official_dir().unwrap_or_else(|e| panic!("{e}")),
                )
            });
        Checker {
            core: schemas::CoreSchemas::new(),
            official,
            third_party: None,
        }
    }

    /// Checks (a), (b) and (c); panics when `KEELSON_THIRD_PARTY_CRDS` names no CRDs (the
    /// tests that call this are ignored when it is unset, see `operator/build.rs`).
    pub fn with_crds() -> Self {
        let dir = schemas::third_party_dir().unwrap_or_else(|e| panic!("{e}"));
        let tp = schemas::ThirdParty::load(dir);
        // A rule that does not compile would go unchecked: (c) would be partial.
        assert!(
            tp.uncompiled.is_empty(),
            "CEL rules of the upstream CRDs that do not compile here: {:#?}",
            tp.uncompiled
        );
        Checker {
            third_party: Some(tp),
            ..Checker::new()
        }
    }

    /// What this checker checks, for the test's output.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![match &self.official {
            Some(o) => format!(
                "(a) k8s-openapi's schemas and kubernetes-validate's from {}",
                o.dir.display()
            ),
            None => "(a) k8s-openapi's schemas (kubernetes-validate's not read: KEELSON_K8S_SCHEMAS is not set)".into(),
        }];
        out.push("(b) Kubernetes' field rules (parity_support/k8s.rs)".into());
        match &self.third_party {
            Some(tp) => out.push(format!(
                "(c) upstream CRDs (schema and every CEL rule) from {}",
                tp.dir.display()
            )),
            None => out.push("(c) not by this test (see its _upstream_crds twin)".into()),
        }
        out
    }

    /// Validate and build as the controller does, then check every object.
    pub fn run(&self, name: &str, namespace: &str, spec: &Value) -> Outcome {
        let model = match validate_value(name, namespace, spec) {
            Ok(m) => m,
            Err(e) => {
                return Outcome::Rejected(
                    e.errors.into_iter().map(|e| (e.field, e.message)).collect(),
                );
            }
        };
        let owner = build::labels::owner_reference(name, "5f0c1c66-3a2b-4d7e-9c1a-0123456789ab");
        let creds: BTreeMap<String, Credentials> = model
            .databases
            .iter()
            .map(|d| (d.spec.name.clone(), fixed_creds(&d.spec.name)))
            .collect();
        let objects = build::build(&model, &owner, ApiCapabilities::ALL, &creds).to_values();
        let mut violations = self.check_objects(&objects);
        violations.extend(render_output(&objects));
        violations.sort();
        violations.dedup_by(|a, b| a.family == b.family);
        Outcome::Accepted {
            objects: objects.len(),
            violations,
        }
    }

    /// Check built objects against (a), (b) and (c).
    pub fn check_objects(&self, objects: &[Value]) -> Vec<Violation> {
        let mut out = Vec::new();
        for o in objects {
            let core = self.core.check(o, &mut out);
            if let Some(official) = &self.official {
                official.check(o, &mut out);
            }
            if !core && let Some(tp) = &self.third_party {
                tp.check(o, &mut out);
            }
            k8s::check_object(o, &mut out);
        }
        out
    }
}

/// `keelson render`'s output must read back as the same objects with a libyaml-based reader (the
/// parser family of kubectl's YAML reader).
pub fn render_output(objects: &[Value]) -> Vec<Violation> {
    let text = render::to_yaml_stream(objects);
    let mut back = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        match <Value as serde::Deserialize>::deserialize(doc) {
            Ok(v) => back.push(v),
            Err(e) => {
                return vec![Violation {
                    family: "render output: not readable as YAML".into(),
                    value: e.to_string().chars().take(80).collect(),
                }];
            }
        }
    }
    if back != objects {
        return vec![Violation {
            family: "render output: reads back as different objects".into(),
            value: String::new(),
        }];
    }
    Vec::new()
}
