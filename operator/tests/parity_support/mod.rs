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
/// when installed), (b) ported field rules, (c) upstream CRDs.
pub struct Checker {
    pub core: schemas::CoreSchemas,
    /// kubernetes-validate's schemas, or why they are not here.
    pub official: Result<schemas::OfficialSchemas, String>,
    /// The upstream CRDs, or why they are not here.
    pub third_party: Result<schemas::ThirdParty, String>,
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
    pub fn new() -> Self {
        Checker {
            core: schemas::CoreSchemas::new(),
            official: schemas::official_dir().map(schemas::OfficialSchemas::load),
            third_party: schemas::third_party_dir().map(schemas::ThirdParty::load),
        }
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
            if let Ok(official) = &self.official {
                official.check(o, &mut out);
            }
            if !core && let Ok(tp) = &self.third_party {
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
