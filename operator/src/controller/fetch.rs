//! Fetch: what a reconcile needs from the cluster besides the Application: which optional APIs
//! are served, and which databases still lack their credentials Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, discovery};

use super::{
    Context,
    error::{Error, Result, is_not_found},
};
use crate::{
    api::Model,
    build::{Capabilities, Credentials},
    external::{httproutes::HttpRoute, servicemonitors::ServiceMonitor},
};

/// Ask the API server which optional APIs it serves.
pub async fn capabilities(client: &Client) -> Result<Capabilities> {
    Ok(Capabilities {
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

/// Fresh credentials for every database of `model` whose Secret does not exist yet. A Secret
/// that exists, whoever made it, is never replaced.
pub async fn missing_credentials(
    ctx: &Context,
    model: &Model,
) -> Result<BTreeMap<String, Credentials>> {
    let mut out = BTreeMap::new();
    for db in &model.databases {
        if ctx
            .stores
            .secrets
            .get(&model.namespace, &db.secret_name)
            .is_some()
        {
            continue;
        }
        // Not in the watch (new, not seen yet, or made by hand without Keelson's labels): ask.
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &model.namespace);
        match api.get_metadata(&db.secret_name).await {
            Ok(_) => continue,
            Err(e) if is_not_found(&e) => {
                out.insert(db.spec.name.clone(), Credentials::generate());
            }
            Err(e) => return Err(Error::kube(format!("get Secret {}", db.secret_name), e)),
        }
    }
    Ok(out)
}
