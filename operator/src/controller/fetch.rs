//! Fetch: what a reconcile needs from the cluster besides the Application: which optional APIs
//! are served, and which databases still lack their credentials Secret.

use std::collections::BTreeMap;

use kube::{Client, discovery};

use super::{
    Context,
    error::{Error, Result, is_not_found},
};
use crate::{
    api::Model,
    build::{ApiCapabilities, Credentials},
    external::{httproutes::HttpRoute, servicemonitors::ServiceMonitor},
};

/// Ask the API server which optional APIs it serves.
pub async fn capabilities(client: &Client) -> Result<ApiCapabilities> {
    Ok(ApiCapabilities {
        service_monitors: serves::<ServiceMonitor>(client).await?,
        http_routes: serves::<HttpRoute>(client).await?,
    })
}

async fn serves<K: kube::Resource<DynamicType = ()>>(client: &Client) -> Result<bool> {
    let gv = kube::core::GroupVersion::gv(&K::group(&()), &K::version(&()));
    match discovery::oneshot::pinned_group(client, &gv).await {
        Ok(group) => Ok(group
            .resources_by_stability()
            .iter()
            .any(|(r, _)| r.plural == K::plural(&()))),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(Error::kube(format!("discover {}", gv.api_version()), e)),
    }
}

/// Fresh credentials for every database of `model` whose Secret the watch has not seen. The
/// Secret is then created, never replaced: when it exists after all (made by hand without
/// Keelson's labels, or not seen yet), the create is refused and the fresh credentials are
/// dropped, so a Secret that exists, whoever made it, keeps its credentials.
pub fn missing_credentials(ctx: &Context, model: &Model) -> BTreeMap<String, Credentials> {
    model
        .databases
        .iter()
        .filter(|db| {
            ctx.stores
                .secrets
                .get(&model.namespace, &db.secret_name)
                .is_none()
        })
        .map(|db| (db.spec.name.clone(), Credentials::generate()))
        .collect()
}
