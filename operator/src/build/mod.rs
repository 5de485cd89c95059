//! Build: a validated [`Model`] in, every desired child out. Pure: no client, no clock, no
//! randomness (new database credentials are passed in), so the same model always builds the
//! same objects, and `keelson render` shows exactly what the controller applies.

pub mod database;
pub mod deployment;
pub mod hpa;
pub mod httproute;
pub mod ingress;
pub mod labels;
pub mod pdb;
pub mod pod;
pub mod service;
pub mod servicemonitor;

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, StatefulSet},
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{Secret, Service},
        networking::v1::Ingress,
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use serde::Serialize;

use crate::{
    api::Model,
    external::{httproutes::HttpRoute, servicemonitors::ServiceMonitor},
};
pub use database::Credentials;

/// Which optional APIs the cluster serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiCapabilities {
    /// monitoring.coreos.com/v1 ServiceMonitor.
    pub service_monitors: bool,
    /// gateway.networking.k8s.io/v1 HTTPRoute.
    pub http_routes: bool,
}

impl ApiCapabilities {
    /// Every optional API served (what `keelson render` assumes by default).
    pub const ALL: ApiCapabilities = ApiCapabilities {
        service_monitors: true,
        http_routes: true,
    };
}

/// A child that was not built because the cluster lacks its API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The kind, e.g. `ServiceMonitor`.
    pub kind: &'static str,
    /// The API group/version the cluster lacks.
    pub api: &'static str,
    /// The names of the objects that were skipped.
    pub names: Vec<String>,
}

/// The inputs of a build besides the model.
pub struct Ctx<'a> {
    /// The validated application.
    pub model: &'a Model,
    /// The controller owner reference every child carries.
    pub owner: &'a OwnerReference,
}

impl Ctx<'_> {
    /// The metadata of a child.
    pub fn meta(&self, name: &str, component: &str, role: labels::Role) -> ObjectMeta {
        labels::child_meta(self.model, self.owner, name, component, role)
    }
}

/// A database's credentials Secret: created once, then never written again.
#[derive(Clone, Debug, PartialEq)]
pub struct CredentialSecret {
    /// The Secret's name.
    pub name: String,
    /// The Secret to create when it does not exist yet; `None` when it already exists.
    pub create: Option<Secret>,
}

/// Every desired child of one Application.
///
/// `apply` destructures this without `..`, so a kind that is built but never applied does not
/// compile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Children {
    /// Credentials Secrets of the databases.
    pub secrets: Vec<CredentialSecret>,
    /// Services of the databases and of the services with ports.
    pub services: Vec<Service>,
    /// Database StatefulSets.
    pub stateful_sets: Vec<StatefulSet>,
    /// Service Deployments.
    pub deployments: Vec<Deployment>,
    /// Autoscalers.
    pub hpas: Vec<HorizontalPodAutoscaler>,
    /// Disruption budgets.
    pub pdbs: Vec<PodDisruptionBudget>,
    /// ServiceMonitors.
    pub service_monitors: Vec<ServiceMonitor>,
    /// The Ingress.
    pub ingresses: Vec<Ingress>,
    /// The HTTPRoute.
    pub http_routes: Vec<HttpRoute>,
    /// What the cluster's missing APIs kept out.
    pub skipped: Vec<Skipped>,
}

/// Build every child of `model`.
///
/// `new_credentials` holds credentials for each database whose Secret does not exist yet; a
/// database missing from it keeps its existing Secret untouched.
pub fn build(
    model: &Model,
    owner: &OwnerReference,
    caps: ApiCapabilities,
    new_credentials: &BTreeMap<String, Credentials>,
) -> Children {
    let ctx = Ctx { model, owner };
    let mut c = Children::default();

    for db in &model.databases {
        c.secrets.push(CredentialSecret {
            name: db.secret_name.clone(),
            create: new_credentials
                .get(&db.spec.name)
                .map(|creds| database::secret(&ctx, db, creds)),
        });
        c.services.push(database::service(&ctx, db));
        c.stateful_sets.push(database::stateful_set(&ctx, db));
    }

    let mut skipped_monitors = Vec::new();
    for svc in &model.services {
        c.deployments.push(deployment::build(&ctx, svc));
        c.services.extend(service::build(&ctx, svc));
        c.hpas.extend(hpa::build(&ctx, svc));
        c.pdbs.extend(pdb::build(&ctx, svc));
        if let Some(sm) = servicemonitor::build(&ctx, svc) {
            if caps.service_monitors {
                c.service_monitors.push(sm);
            } else {
                skipped_monitors.push(svc.object_name.clone());
            }
        }
    }
    if !skipped_monitors.is_empty() {
        c.skipped.push(Skipped {
            kind: "ServiceMonitor",
            api: "monitoring.coreos.com/v1",
            names: skipped_monitors,
        });
    }

    if let Some(gw) = &model.gateway {
        c.ingresses.extend(ingress::build(&ctx, gw));
        if let Some(route) = httproute::build(&ctx, gw) {
            if caps.http_routes {
                c.http_routes.push(route);
            } else {
                c.skipped.push(Skipped {
                    kind: "HTTPRoute",
                    api: "gateway.networking.k8s.io/v1",
                    names: vec![model.name.clone()],
                });
            }
        }
    }
    c
}

impl Children {
    /// Every object to write, as JSON, in apply order: Secrets to create first, then Services,
    /// StatefulSets, Deployments, autoscalers, budgets, monitors and the gateway.
    pub fn to_values(&self) -> Vec<serde_json::Value> {
        let Children {
            secrets,
            services,
            stateful_sets,
            deployments,
            hpas,
            pdbs,
            service_monitors,
            ingresses,
            http_routes,
            skipped: _,
        } = self;
        let mut out = Vec::new();
        out.extend(
            secrets
                .iter()
                .filter_map(|s| s.create.as_ref())
                .map(typed_value),
        );
        out.extend(services.iter().map(typed_value));
        out.extend(stateful_sets.iter().map(typed_value));
        out.extend(deployments.iter().map(typed_value));
        out.extend(hpas.iter().map(typed_value));
        out.extend(pdbs.iter().map(typed_value));
        out.extend(service_monitors.iter().map(typed_value));
        out.extend(ingresses.iter().map(typed_value));
        out.extend(http_routes.iter().map(typed_value));
        out
    }
}

/// An object as JSON with its `apiVersion` and `kind`.
pub fn typed_value<K>(obj: &K) -> serde_json::Value
where
    K: kube::Resource<DynamicType = ()> + Serialize,
{
    let mut v = serde_json::to_value(obj).expect("objects serialize");
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), K::api_version(&()).into());
        m.insert("kind".into(), K::kind(&()).into());
    }
    v
}
