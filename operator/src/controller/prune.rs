//! Prune: delete the children this Application owns (controller owner reference and labels)
//! that the spec no longer wants. Runs only after a valid spec was fully applied, so an invalid
//! edit or a failed apply never deletes anything.

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use kube::{Api, api::DeleteParams};

use super::{
    Context,
    apply::Report,
    error::{Error, Result, is_not_found},
    watch::{Child, KindStores},
};
use crate::kinds::{Children, KindVisitor, Registered, for_each_kind, kind_name};

/// Deletes owned children that were not applied this pass.
pub struct Pruner<'a> {
    ctx: &'a Context,
    app_uid: &'a str,
    namespace: &'a str,
    desired: &'a Report,
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

    /// Prune kind `K` among the children its watch in `stores` sees owned by this Application.
    /// Returns what was deleted, as `Kind/name`, and the first failure (which ends the pass).
    pub async fn prune<K: Child>(&self, stores: &KindStores<K>) -> (Vec<String>, Result<()>) {
        let owned = stores.owned_by(self.namespace, self.app_uid);
        let kind = kind_name::<K>();
        let empty = BTreeSet::new();
        let keep = self.desired.desired.get(kind).unwrap_or(&empty);
        let api: Api<K> = Api::namespaced(self.ctx.client.clone(), self.namespace);
        let mut pruned = Vec::new();
        for name in owned {
            if keep.contains(&name) {
                continue;
            }
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    let source = e.into();
                    return (pruned, Err(Error::Prune { kind, name, source }));
                }
            }
            self.ctx.applied.remove(self.app_uid, &(kind, name.clone()));
            self.ctx
                .metrics
                .pruned
                .get_or_create(&crate::runtime::metrics::KindLabel { kind })
                .inc();
            pruned.push(format!("{kind}/{name}"));
        }
        (pruned, Ok(()))
    }
}

/// What one pass of prune deleted, and its failure.
#[derive(Debug)]
pub struct Pruned {
    /// What was deleted, as `Kind/name`.
    pub pruned: Vec<String>,
    /// The failure that ended the pass.
    pub result: Result<()>,
}

/// Prune every kind, in registry order, except a kind set aside this pass (its API is not
/// served) or whose watch has not listed everything yet: what such a watch lacks may still
/// exist. Stops at the first failure.
pub async fn prune_all(p: &Pruner<'_>, c: &Children) -> Pruned {
    type PruneJob<'a> = BoxFuture<'a, (Vec<String>, Result<()>)>;
    struct Jobs<'a>(&'a Pruner<'a>, &'a Children, Vec<PruneJob<'a>>);
    impl KindVisitor for Jobs<'_> {
        fn visit<K: Registered>(&mut self) {
            let stores = K::stores(&self.0.context().stores);
            if stores.synced() && !self.1.skipped_kind::<K>() {
                self.2.push(Box::pin(self.0.prune(stores)));
            }
        }
    }
    let mut jobs = Jobs(p, c, Vec::new());
    for_each_kind(&mut jobs);
    let mut pruned = Vec::new();
    for job in jobs.2 {
        let (names, result) = job.await;
        pruned.extend(names);
        if result.is_err() {
            return Pruned { pruned, result };
        }
    }
    Pruned {
        pruned,
        result: Ok(()),
    }
}
