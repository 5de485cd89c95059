//! Credentials live as long as the data.
//!
//! A database's credentials Secret is created once and never written again. With
//! `deletionPolicy: Retain` (the default) it carries no owner reference: removing the database
//! from the spec, or deleting the Application, leaves it in place (still labelled), and when the
//! database comes back its retained volume is reattached with the password it knows. With
//! `Delete` the Secret is owned by the Application and goes with the database.
//!
//! When a database's Secret is missing but its volume claim (`data-<statefulset>-0`) exists, the
//! data was initialised with a password nobody can recover from the cluster: Keelson does not
//! invent a new one. The database is held back ([`held::CREDENTIALS_MISSING`]): no Secret is
//! created and its StatefulSet is left as it is, until the Secret is restored or the claim is
//! deleted.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;

use super::{
    Context,
    apply::Report,
    error::{Error, Result},
    held::{self, Held, HeldStatefulSets},
};
use crate::{
    api::Model,
    build::{Children, Credentials},
};

/// The volume claim the StatefulSet controller creates for a database's only replica.
pub fn claim_name(object_name: &str) -> String {
    format!("data-{object_name}-0")
}

/// What to do about the databases' credentials this pass.
#[derive(Debug, Default)]
pub struct Plan {
    /// Fresh credentials, by database name, for each database with neither a Secret nor data.
    pub new: BTreeMap<String, Credentials>,
    /// Databases whose Secret is gone while their data is still there.
    pub held: Vec<Held>,
    /// The StatefulSets of those databases: left alone this pass.
    held_stateful_sets: HeldStatefulSets,
}

/// For each database whose Secret the watch has not seen: fresh credentials when it has no
/// volume claim either, or a [`Held`] when its claim exists. One GET per such database (only
/// while its Secret is missing, so never on a steady pass).
pub async fn plan(ctx: &Context, model: &Model) -> Result<Plan> {
    let mut plan = Plan::default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &model.namespace);
    for db in &model.databases {
        if ctx
            .stores
            .secrets
            .get(&model.namespace, &db.secret_name)
            .is_some()
        {
            continue;
        }
        let claim = claim_name(&db.object_name);
        let found = claims
            .get_metadata_opt(&claim)
            .await
            .map_err(Error::read("PersistentVolumeClaim", &claim))?;
        if found.is_some() {
            plan.held.push(Held {
                reason: held::CREDENTIALS_MISSING,
                message: format!(
                    "Secret {} of database {} is missing but its volume claim {claim} still holds data initialised with its password; Keelson does not generate a new one and leaves the database alone: restore the Secret (from a backup), or delete the claim to start the database empty",
                    db.secret_name, db.spec.name
                ),
            });
            plan.held_stateful_sets.push(&db.object_name);
        } else {
            plan.new
                .insert(db.spec.name.clone(), Credentials::generate());
        }
    }
    Ok(plan)
}

impl Plan {
    /// Take the held databases' StatefulSets out of what is applied.
    pub fn hold(&self, children: &mut Children) {
        self.held_stateful_sets.hold(children);
    }

    /// Keep the held StatefulSets from prune.
    pub fn keep(&self, report: &mut Report) {
        self.held_stateful_sets.keep(report);
    }
}
