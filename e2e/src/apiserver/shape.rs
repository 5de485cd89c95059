//! How server-side apply treats each list and map of an object: associative lists and their
//! keys, sets, atomic lists and maps. Built-in kinds follow the list-type markers of the
//! Kubernetes API types; custom resources follow `x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys` and `x-kubernetes-map-type` in their CRD schema.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub enum ListKind {
    Atomic,
    Set,
    /// An associative list; `atomic_items` when each element is replaced as a whole
    /// (owner references).
    Map {
        keys: Vec<String>,
        defaults: Vec<(String, Value)>,
        atomic_items: bool,
    },
}

#[derive(Clone, Debug)]
pub enum Shape<'a> {
    /// A built-in kind, identified by its Kind, at a path of field names (`[]` marks list items).
    Builtin { kind: &'a str, path: String },
    /// A custom resource schema node (`None`: unknown, lists atomic and maps granular).
    Schema { node: Option<&'a Value>, root: bool },
    /// Inside an atomic element: everything is replaced as a whole.
    Atomic,
}

impl<'a> Shape<'a> {
    pub fn builtin(kind: &'a str) -> Self {
        Shape::Builtin {
            kind,
            path: String::new(),
        }
    }

    pub fn schema(root: Option<&'a Value>) -> Self {
        Shape::Schema {
            node: root,
            root: true,
        }
    }

    pub fn child(&self, field: &str) -> Shape<'a> {
        match self {
            Shape::Builtin { kind, path } => Shape::Builtin {
                kind,
                path: if path.is_empty() {
                    field.to_string()
                } else {
                    format!("{path}.{field}")
                },
            },
            Shape::Schema { node, root } => {
                if *root && field == "metadata" {
                    return Shape::Builtin {
                        kind: "",
                        path: "metadata".into(),
                    };
                }
                let next = node.and_then(|n| {
                    n.get("properties")
                        .and_then(|p| p.get(field))
                        .or_else(|| n.get("additionalProperties").filter(|a| a.is_object()))
                });
                Shape::Schema {
                    node: next,
                    root: false,
                }
            }
            Shape::Atomic => Shape::Atomic,
        }
    }

    pub fn item(&self) -> Shape<'a> {
        match self {
            Shape::Builtin { kind, path } => {
                if let ListKind::Map {
                    atomic_items: true, ..
                } = self.list_kind()
                {
                    return Shape::Atomic;
                }
                Shape::Builtin {
                    kind,
                    path: format!("{path}[]"),
                }
            }
            Shape::Schema { node, .. } => Shape::Schema {
                node: node.and_then(|n| n.get("items")),
                root: false,
            },
            Shape::Atomic => Shape::Atomic,
        }
    }

    pub fn list_kind(&self) -> ListKind {
        match self {
            Shape::Builtin { kind, path } => builtin_list_kind(kind, path),
            Shape::Schema { node: Some(n), .. } => {
                match n.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("set") => ListKind::Set,
                    Some("map") => {
                        let keys: Vec<String> = n
                            .get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(|k| k.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let defaults = keys
                            .iter()
                            .filter_map(|k| {
                                n.get("items")
                                    .and_then(|i| i.get("properties"))
                                    .and_then(|p| p.get(k))
                                    .and_then(|p| p.get("default"))
                                    .map(|d| (k.clone(), d.clone()))
                            })
                            .collect();
                        ListKind::Map {
                            keys,
                            defaults,
                            atomic_items: false,
                        }
                    }
                    _ => ListKind::Atomic,
                }
            }
            _ => ListKind::Atomic,
        }
    }

    pub fn map_atomic(&self) -> bool {
        match self {
            Shape::Builtin { kind, path } => builtin_map_atomic(kind, path),
            Shape::Schema { node: Some(n), .. } => {
                n.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
            }
            Shape::Schema { node: None, .. } => false,
            Shape::Atomic => true,
        }
    }
}

fn last_segment(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

fn keyed(keys: &[&str]) -> ListKind {
    ListKind::Map {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        defaults: Vec::new(),
        atomic_items: false,
    }
}

fn builtin_list_kind(kind: &str, path: &str) -> ListKind {
    match path {
        "metadata.ownerReferences" => {
            return ListKind::Map {
                keys: vec!["uid".into()],
                defaults: Vec::new(),
                atomic_items: true,
            };
        }
        "metadata.finalizers" => return ListKind::Set,
        _ => {}
    }
    let tcp = || vec![("protocol".to_string(), Value::String("TCP".into()))];
    match last_segment(path) {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => keyed(&["name"]),
        "ports" if kind == "Service" && path == "spec.ports" => ListKind::Map {
            keys: vec!["port".into(), "protocol".into()],
            defaults: tcp(),
            atomic_items: false,
        },
        "ports" if path.ends_with("ontainers[].ports") => ListKind::Map {
            keys: vec!["containerPort".into(), "protocol".into()],
            defaults: tcp(),
            atomic_items: false,
        },
        "volumeMounts" => keyed(&["mountPath"]),
        "volumeDevices" => keyed(&["devicePath"]),
        "conditions" => keyed(&["type"]),
        "hostAliases" => keyed(&["ip"]),
        "topologySpreadConstraints" => keyed(&["topologyKey", "whenUnsatisfiable"]),
        _ => ListKind::Atomic,
    }
}

fn builtin_map_atomic(_kind: &str, path: &str) -> bool {
    matches!(
        last_segment(path),
        "selector"
            | "nodeSelector"
            | "labelSelector"
            | "namespaceSelector"
            | "regarding"
            | "involvedObject"
            | "related"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ports_are_keyed_with_a_protocol_default() {
        let s = Shape::builtin("Deployment")
            .child("spec")
            .child("template")
            .child("spec")
            .child("containers")
            .item()
            .child("ports");
        assert!(
            matches!(s.list_kind(), ListKind::Map { ref keys, .. } if keys == &["containerPort", "protocol"])
        );
        let svc = Shape::builtin("Service").child("spec").child("ports");
        assert!(
            matches!(svc.list_kind(), ListKind::Map { ref keys, .. } if keys == &["port", "protocol"])
        );
        assert!(
            Shape::builtin("Deployment")
                .child("spec")
                .child("selector")
                .map_atomic()
        );
    }
}
