//! Fetch: what a reconcile needs from the cluster besides the Application: which optional APIs
//! are served (the databases' credentials: [`super::credentials`]).

use kube::{Client, discovery};

use super::error::{Error, Result, is_not_found};
use crate::{
    build::{ApiCapabilities, OptionalApi},
    kinds::{self, KindVisitor, Registered},
};

/// Ask the API server which optional APIs it serves: whether it serves the kinds that need them.
pub async fn capabilities(client: &Client) -> Result<ApiCapabilities> {
    type Check<'a> = (OptionalApi, futures::future::BoxFuture<'a, Result<bool>>);
    struct Checks<'a>(&'a Client, Vec<Check<'a>>);
    impl KindVisitor for Checks<'_> {
        fn visit<K: Registered>(&mut self) {
            if let Some(api) = K::API {
                self.1.push((api, Box::pin(serves::<K>(self.0))));
            }
        }
    }
    let mut checks = Checks(client, Vec::new());
    kinds::for_each_kind(&mut checks);
    let mut caps = ApiCapabilities::ALL;
    for (api, served) in checks.1 {
        caps.set(api, served.await?);
    }
    Ok(caps)
}

async fn serves<K: kube::Resource<DynamicType = ()>>(client: &Client) -> Result<bool> {
    let gv = kube::core::GroupVersion::gv(&K::group(&()), &K::version(&()));
    match discovery::oneshot::pinned_group(client, &gv).await {
        Ok(group) => Ok(group
            .resources_by_stability()
            .iter()
            .any(|(r, _)| r.plural == K::plural(&()))),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(Error::Discovery {
            api: gv.api_version(),
            source: e.into(),
        }),
    }
}
