//! Labels and metadata every child carries.
//!
//! Children never carry `app.kubernetes.io/instance` or any `argocd.argoproj.io/*` key: Argo CD
//! tracks what it owns with those, and would prune children that carried them. Nothing is copied
//! from the Application's own labels or annotations, so they cannot leak onto children.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use crate::api::Model;

/// The label that names the Application a child belongs to.
pub const APPLICATION_LABEL: &str = "keelson.dev/application";
/// The annotation that lets an Application take over an existing object of the same name that
/// nothing controls: its value is the Application's name (`keelson.dev/adopt: shop`). Without
/// it, Keelson never writes an object it does not control.
pub const ADOPT_ANNOTATION: &str = "keelson.dev/adopt";
/// The standard label that says Keelson manages a child.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "keelson";
/// The standard label naming the component (service or database) a child belongs to.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The standard label naming the application a child is part of.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// The standard label naming the component's role.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// The role of a child's component, the value of `app.kubernetes.io/component`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A stateless service.
    Service,
    /// A database.
    Database,
    /// The gateway.
    Gateway,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Service => "service",
            Role::Database => "database",
            Role::Gateway => "gateway",
        }
    }
}

/// The label selector that finds every child of an Application.
pub fn children_selector(app: &str) -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY},{APPLICATION_LABEL}={app}")
}

/// The labels that select one component's pods. They never change once created, because a
/// Deployment's and StatefulSet's selector is immutable.
pub fn selector_labels(app: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APPLICATION_LABEL.to_string(), app.to_string()),
        (NAME_LABEL.to_string(), component.to_string()),
    ])
}

/// A label selector for one component's pods.
pub fn selector(app: &str, component: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(app, component)),
        ..LabelSelector::default()
    }
}

/// All labels of a child (and of its pods).
pub fn labels(app: &str, component: &str, role: Role) -> BTreeMap<String, String> {
    let mut l = selector_labels(app, component);
    l.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    l.insert(PART_OF_LABEL.into(), app.into());
    l.insert(COMPONENT_LABEL.into(), role.as_str().into());
    l
}

/// The controller owner reference every child carries. No `blockOwnerDeletion`: the garbage
/// collector removes children after their Application either way, and setting it would need
/// permission to update the Application's finalizers.
pub fn owner_reference(app_name: &str, app_uid: &str) -> OwnerReference {
    use kube::Resource;
    OwnerReference {
        api_version: crate::api::Application::api_version(&()).into_owned(),
        kind: crate::api::Application::kind(&()).into_owned(),
        name: app_name.to_string(),
        uid: app_uid.to_string(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// The metadata of a child: name, namespace, labels and the controller owner reference.
pub fn child_meta(
    model: &Model,
    owner: &OwnerReference,
    name: &str,
    component: &str,
    role: Role,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(model.namespace.clone()),
        labels: Some(labels(&model.name, component, role)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}
