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
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};

use crate::api::Model;
pub use crate::kinds::{Children, CreateOnly, OptionalApi, typed_value};
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

    /// Whether the cluster serves `api`.
    pub fn serves(&self, api: OptionalApi) -> bool {
        *{ *self }.flag_mut(api)
    }

    /// Record whether the cluster serves `api`.
    pub fn set(&mut self, api: OptionalApi, served: bool) {
        *self.flag_mut(api) = served;
    }

    fn flag_mut(&mut self, api: OptionalApi) -> &mut bool {
        match api {
            OptionalApi::ServiceMonitors => &mut self.service_monitors,
            OptionalApi::HttpRoutes => &mut self.http_routes,
        }
    }
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
pub type CredentialSecret = CreateOnly<Secret>;

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

    for svc in &model.services {
        c.deployments.push(deployment::build(&ctx, svc));
        c.services.extend(service::build(&ctx, svc));
        c.hpas.extend(hpa::build(&ctx, svc));
        c.pdbs.extend(pdb::build(&ctx, svc));
        c.service_monitors.extend(servicemonitor::build(&ctx, svc));
    }

    if let Some(gw) = &model.gateway {
        c.ingresses.extend(ingress::build(&ctx, gw));
        c.http_routes.extend(httproute::build(&ctx, gw));
    }
    c.set_aside_unserved(|api| caps.serves(api));
    c
}
