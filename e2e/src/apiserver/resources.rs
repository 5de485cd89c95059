//! The resources the server knows: built-in kinds and those that installed CRDs add.

use serde_json::Value;
use std::sync::Arc;

/// How stored objects are presented through an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Stored as served.
    Plain,
    /// `events.k8s.io/v1` Events, stored as core `v1` Events.
    EventsV1,
}

#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    /// The status subresource is enabled.
    pub status: bool,
    /// Objects carry `metadata.generation`.
    pub generation: bool,
    /// Storage bucket (objects are shared by all versions and views of a resource).
    pub store_key: String,
    pub view: View,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub storage_version_hash: String,
    pub builtin: bool,
    /// `openAPIV3Schema` of a custom resource version.
    pub schema: Option<Arc<Value>>,
    /// The schema carries `x-kubernetes-validations` rules.
    pub has_cel: bool,
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The key used in statistics: `apps/deployments`, `configmaps`.
    pub fn stats_key(&self) -> String {
        resource_key(&self.group, &self.plural)
    }

    pub fn res(&self) -> super::status::Res<'_> {
        super::status::Res {
            group: &self.group,
            plural: &self.plural,
        }
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        if !self.builtin {
            return vec![
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch",
            ];
        }
        if self.plural == "namespaces" {
            return vec![
                "create", "delete", "get", "list", "patch", "update", "watch",
            ];
        }
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

pub fn resource_key(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{group}/{plural}")
    }
}

struct B {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
    generation: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
    hash: &'static str,
}

const BUILTINS: &[B] = &[
    B {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        status: false,
        generation: false,
        short: &["cm"],
        categories: &[],
        hash: "qFsyl6wFWjQ=",
    },
    B {
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        status: false,
        generation: false,
        short: &["ev"],
        categories: &[],
        hash: "r2yiGXH7wu8=",
    },
    B {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        status: true,
        generation: false,
        short: &["ns"],
        categories: &[],
        hash: "Q3oi5N2YM8M=",
    },
    B {
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        status: true,
        generation: false,
        short: &["pvc"],
        categories: &[],
        hash: "QWTyNDq0dC4=",
    },
    B {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
        status: true,
        generation: false,
        short: &["po"],
        categories: &["all"],
        hash: "xPOwRZ+Yhw8=",
    },
    B {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        status: false,
        generation: false,
        short: &[],
        categories: &[],
        hash: "S6u1pOWzb84=",
    },
    B {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
        status: false,
        generation: false,
        short: &["sa"],
        categories: &[],
        hash: "pbx9ZvyFpBE=",
    },
    B {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
        status: true,
        generation: false,
        short: &["svc"],
        categories: &["all"],
        hash: "0/CO1lhkEBI=",
    },
    B {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
        status: true,
        generation: true,
        short: &["deploy"],
        categories: &["all"],
        hash: "8aSe+NMegvE=",
    },
    B {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        kind: "ReplicaSet",
        namespaced: true,
        status: true,
        generation: true,
        short: &["rs"],
        categories: &["all"],
        hash: "P1RzHs8/mWQ=",
    },
    B {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        kind: "StatefulSet",
        namespaced: true,
        status: true,
        generation: true,
        short: &["sts"],
        categories: &["all"],
        hash: "H+vl74LkKdo=",
    },
    B {
        group: "autoscaling",
        version: "v2",
        plural: "horizontalpodautoscalers",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        status: true,
        generation: false,
        short: &["hpa"],
        categories: &["all"],
        hash: "qwQve8ut294=",
    },
    B {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        kind: "PodDisruptionBudget",
        namespaced: true,
        status: true,
        generation: true,
        short: &["pdb"],
        categories: &[],
        hash: "EVWiDmWqyJw=",
    },
    B {
        group: "storage.k8s.io",
        version: "v1",
        plural: "storageclasses",
        kind: "StorageClass",
        namespaced: false,
        status: false,
        generation: false,
        short: &["sc"],
        categories: &[],
        hash: "K+m6uJwbjGY=",
    },
    B {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingressclasses",
        kind: "IngressClass",
        namespaced: false,
        status: false,
        generation: true,
        short: &[],
        categories: &[],
        hash: "l/iqIbDgFyQ=",
    },
    B {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        kind: "Ingress",
        namespaced: true,
        status: true,
        generation: true,
        short: &["ing"],
        categories: &[],
        hash: "39NQlfNR+bo=",
    },
    B {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        namespaced: true,
        status: false,
        generation: false,
        short: &[],
        categories: &[],
        hash: "gqkMMb/YqFM=",
    },
    B {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        status: false,
        generation: false,
        short: &["ev"],
        categories: &[],
        hash: "r2yiGXH7wu8=",
    },
    B {
        group: "apiextensions.k8s.io",
        version: "v1",
        plural: "customresourcedefinitions",
        kind: "CustomResourceDefinition",
        namespaced: false,
        status: true,
        generation: true,
        short: &["crd", "crds"],
        categories: &["api-extensions"],
        hash: "jfWCUB31mvA=",
    },
];

/// Built-in API groups in the order `/apis` lists them.
pub const BUILTIN_GROUPS: &[&str] = &[
    "apps",
    "events.k8s.io",
    "autoscaling",
    "networking.k8s.io",
    "policy",
    "storage.k8s.io",
    "apiextensions.k8s.io",
    "coordination.k8s.io",
];

pub fn builtin_defs() -> Vec<ResourceDef> {
    BUILTINS
        .iter()
        .map(|b| {
            let singular = b.kind.to_lowercase();
            let events_v1 = b.group == "events.k8s.io";
            ResourceDef {
                group: b.group.into(),
                version: b.version.into(),
                plural: b.plural.into(),
                singular,
                kind: b.kind.into(),
                list_kind: format!("{}List", b.kind),
                namespaced: b.namespaced,
                status: b.status,
                generation: b.generation,
                store_key: if events_v1 {
                    "events".into()
                } else {
                    resource_key(b.group, b.plural)
                },
                view: if events_v1 {
                    View::EventsV1
                } else {
                    View::Plain
                },
                short_names: b.short.iter().map(|s| s.to_string()).collect(),
                categories: b.categories.iter().map(|s| s.to_string()).collect(),
                storage_version_hash: b.hash.into(),
                builtin: true,
                schema: None,
                has_cel: false,
            }
        })
        .collect()
}

/// The resource definitions a CustomResourceDefinition serves, one per served version.
pub fn crd_defs(crd: &Value) -> Vec<ResourceDef> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let plural = s(&names["plural"]);
    let kind = s(&names["kind"]);
    let singular = names["singular"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = names["listKind"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("{kind}List"));
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let version = s(&v["name"]);
        let schema = v
            .pointer("/schema/openAPIV3Schema")
            .or_else(|| spec.pointer("/validation/openAPIV3Schema"))
            .cloned();
        let has_cel = schema
            .as_ref()
            .map(|s| s.to_string().contains("x-kubernetes-validations"))
            .unwrap_or(false);
        out.push(ResourceDef {
            group: group.clone(),
            version: version.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            list_kind: list_kind.clone(),
            namespaced,
            status: v.pointer("/subresources/status").is_some(),
            generation: true,
            store_key: resource_key(&group, &plural),
            view: View::Plain,
            short_names: strs(&names["shortNames"]),
            categories: strs(&names["categories"]),
            storage_version_hash: version_hash(&group, &version, &kind),
            builtin: false,
            schema: schema.map(Arc::new),
            has_cel,
        });
    }
    out
}

fn version_hash(group: &str, version: &str, kind: &str) -> String {
    use base64::Engine;
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (group, version, kind).hash(&mut h);
    base64::engine::general_purpose::STANDARD.encode(h.finish().to_be_bytes())
}
