//! Prune: delete the children this Application owns (controller owner reference and labels)
//! that the spec no longer wants. Runs only after a valid spec was fully applied, so an invalid
//! edit or a failed apply never deletes anything.

use std::{collections::BTreeSet, fmt::Debug};

use kube::{
    Api, Resource, ResourceExt,
    api::DeleteParams,
    core::{NamespaceResourceScope, PartialObjectMeta},
};
use serde::de::DeserializeOwned;

use super::{
    Context,
    apply::{Report, kind_name},
    error::{Error, Result, is_not_found},
    watch::KindStores,
};

/// Deletes owned children that were not applied this pass.
pub struct Pruner<'a> {
    ctx: &'a Context,
    app_uid: &'a str,
    namespace: &'a str,
    desired: &'a Report,
    /// What was deleted, as `Kind/name`.
    pub pruned: Vec<String>,
}

impl<'a> Pruner<'a> {
    /// A pruner that keeps what `desired` applied.
    pub fn new(
        ctx: &'a Context,
        app_uid: &'a str,
        namespace: &'a str,
        desired: &'a Report,
    ) -> Self {
        Pruner {
            ctx,
            app_uid,
            namespace,
            desired,
            pruned: Vec::new(),
        }
    }

    /// The shared context.
    pub fn context(&self) -> &'a Context {
        self.ctx
    }

    /// The Application's namespace.
    pub fn namespace(&self) -> &'a str {
        self.namespace
    }

    /// The Application's uid.
    pub fn app_uid(&self) -> &'a str {
        self.app_uid
    }

    /// Prune kind `K`, whose objects the metadata watch in `stores` sees.
    pub async fn prune<K>(&mut self, stores: &KindStores<PartialObjectMeta<K>>) -> Result<()>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let names = stores
            .owned_by(self.namespace, self.app_uid)
            .iter()
            .map(|o| o.name_any())
            .collect();
        self.prune_names::<K>(names).await
    }

    /// Prune kind `K` among `owned`, the names of its objects this Application owns.
    pub async fn prune_names<K>(&mut self, owned: Vec<String>) -> Result<()>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let kind = kind_name::<K>();
        let empty = BTreeSet::new();
        let keep = self.desired.desired.get(kind).unwrap_or(&empty);
        let api: Api<K> = Api::namespaced(self.ctx.client.clone(), self.namespace);
        for name in owned {
            if keep.contains(&name) {
                continue;
            }
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(Error::kube(format!("prune {kind} {name}"), e)),
            }
            self.ctx
                .metrics
                .pruned
                .get_or_create(&crate::runtime::metrics::KindLabel { kind })
                .inc();
            self.pruned.push(format!("{kind}/{name}"));
        }
        Ok(())
    }
}
