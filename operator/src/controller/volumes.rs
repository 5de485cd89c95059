//! Database volumes that grow.
//!
//! A StatefulSet's `volumeClaimTemplates` are immutable, so a larger `storage.size` cannot be
//! applied to the StatefulSet in place. When the desired claim templates differ from the live
//! StatefulSet's, Keelson, before apply:
//!
//! 1. refuses what cannot be done without losing data (a smaller size, another StorageClass,
//!    which the CRD's transition rules already refuse at admission): the StatefulSet is held
//!    back and status says which field to set back;
//! 2. expands each existing volume claim (`<template>-<statefulset>-<ordinal>`) whose request is
//!    below the new size (a JSON merge patch of `spec.resources.requests.storage` alone). When
//!    the API server refuses (the StorageClass does not allow volume expansion, the claim is not
//!    bound), the StatefulSet is held back (the database keeps running on its volume) and status
//!    carries the server's answer and the fix; the pass after the class allows expansion grows it;
//! 3. deletes the StatefulSet with `propagationPolicy: Orphan` (its pod keeps running, its
//!    claims and revisions stay) and, once it is gone, apply creates it again from the new
//!    templates; the StatefulSet controller adopts the running pod, whose template did not change,
//!    so it is not restarted.
//!
//! A database added back with a larger size than its retained claim gets the claim expanded
//! the same way before its StatefulSet is created.
//!
//! Which StatefulSets need a look comes from the watch ([`claims_fingerprint`] of the live
//! templates), so a steady pass sends no request.

use std::hash::{Hash, Hasher};

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::PersistentVolumeClaim};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
};

use super::{
    Context,
    apply::Report,
    error::{ApiError, Error, Result},
    events::Note,
    held::{Held, HeldStatefulSets},
};
use crate::{
    api::{Model, quantity, validate::DatabaseModel},
    build::Children,
};

/// What matters of one claim template: its name, its size (the canonical amount, so `1024Mi`
/// and `1Gi` are equal) and its StorageClass.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClaimShape {
    name: String,
    size: Option<quantity::Amount>,
    class: Option<String>,
}

fn request(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.as_str())
}

fn shape(claim: &PersistentVolumeClaim) -> ClaimShape {
    ClaimShape {
        name: claim.metadata.name.clone().unwrap_or_default(),
        size: request(claim).and_then(|s| quantity::parse(s).ok()),
        class: claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone()),
    }
}

fn shapes(sts: &StatefulSet) -> Vec<ClaimShape> {
    sts.spec
        .volume_claim_templates
        .iter()
        .flatten()
        .map(shape)
        .collect()
}

/// A hash of a StatefulSet's claim templates (names, sizes, classes), kept by its watch: a
/// change of the desired templates is noticed without a request.
pub fn claims_fingerprint(sts: &StatefulSet) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    shapes(sts).hash(&mut h);
    h.finish()
}

/// What to do about the databases' volumes this pass.
#[derive(Debug, Default)]
pub struct Plan {
    /// Databases whose volume change is refused, reported in status.
    pub held: Vec<Held>,
    /// StatefulSets left alone this pass (refused, or being replaced).
    held_stateful_sets: HeldStatefulSets,
    /// Whether a StatefulSet is being replaced: look again soon.
    pub replacing: bool,
    /// Normal Events of what was done.
    pub notes: Vec<Note>,
}

impl Plan {
    /// Take the held StatefulSets out of what is applied.
    pub fn hold(&self, children: &mut Children) {
        self.held_stateful_sets.hold(children);
    }

    /// Keep the held StatefulSets from prune.
    pub fn keep(&self, report: &mut Report) {
        self.held_stateful_sets.keep(report);
    }

    fn hold_back(&mut self, sts: &str, reason: Option<Held>) {
        self.held_stateful_sets.push(sts);
        if let Some(h) = reason {
            self.held.push(h);
        }
    }
}

/// The reason of a refused change of a database's volume.
pub const STORAGE_CHANGE_REFUSED: &str = "StorageChangeRefused";
/// The reason of a volume claim the API server would not expand.
pub const VOLUME_EXPANSION_REFUSED: &str = "VolumeExpansionRefused";

/// The size of a claim template as written in `sts`, e.g. `10Gi`.
fn show(sts: &StatefulSet, template: &ClaimShape) -> String {
    template_request(sts, template).unwrap_or_else(|| "no size".into())
}

fn class_text(class: &Option<String>) -> String {
    match class {
        Some(c) => format!("StorageClass {c}"),
        None => "the default StorageClass".into(),
    }
}

/// For each desired database StatefulSet: nothing when its live claim templates match; else
/// refuse, expand and replace as the module says. Requests only when something changed.
pub async fn plan(ctx: &Context, model: &Model, children: &Children) -> Result<Plan> {
    let mut plan = Plan::default();
    for desired in &children.stateful_sets {
        let name = desired.name_any();
        let Some((index, db)) = model
            .databases
            .iter()
            .enumerate()
            .find(|(_, d)| d.object_name == name)
        else {
            continue;
        };
        let field = format!("spec.databases[{index}].storage");
        let observed = ctx.stores.stateful_sets.get(&model.namespace, &name);
        let volume = Volume {
            ctx,
            namespace: &model.namespace,
            db,
            desired,
            field,
        };
        match observed {
            None => {
                // Not created yet. A database coming back to its retained claim (its Secret
                // outlived it too) may want the claim larger.
                let retained = ctx
                    .stores
                    .secrets
                    .get(&model.namespace, &db.secret_name)
                    .is_some();
                if retained {
                    volume.grow_claims(&mut plan).await?;
                }
            }
            Some(o)
                if o.workload.as_ref().map(|w| w.claims) == Some(claims_fingerprint(desired)) => {}
            Some(_) => volume.replace(&mut plan).await?,
        }
    }
    Ok(plan)
}

/// One database's volume, as this pass wants it.
struct Volume<'a> {
    ctx: &'a Context,
    namespace: &'a str,
    db: &'a DatabaseModel,
    desired: &'a StatefulSet,
    /// `spec.databases[<index>].storage`, for messages.
    field: String,
}

impl Volume<'_> {
    /// The live StatefulSet's templates differ from the desired ones.
    async fn replace(&self, plan: &mut Plan) -> Result<()> {
        let (db, desired, field) = (self.db, self.desired, &self.field);
        let name = desired.name_any();
        let api: Api<StatefulSet> = Api::namespaced(self.ctx.client.clone(), self.namespace);
        let live = api
            .get_opt(&name)
            .await
            .map_err(Error::read("StatefulSet", &name))?;
        let Some(live) = live else {
            // Gone since the watch saw it: apply creates it.
            return Ok(());
        };
        if live.metadata.deletion_timestamp.is_some() {
            plan.hold_back(&name, None);
            plan.replacing = true;
            return Ok(());
        }
        let (want, have) = (shapes(desired), shapes(&live));
        if want == have {
            return Ok(());
        }
        for w in &want {
            let Some(h) = have.iter().find(|h| h.name == w.name) else {
                continue;
            };
            let refusal = if w.class != h.class {
                Some(format!(
                    "database {} cannot move its volume from {} to {}: set {field}.storageClassName back, or add a database under a new name and move the data",
                    db.spec.name,
                    class_text(&h.class),
                    class_text(&w.class)
                ))
            } else if w.size < h.size {
                Some(format!(
                    "database {} cannot shrink its volume from {} to {}: volume claims only grow; set {field}.size back to at least the current size",
                    db.spec.name,
                    show(&live, h),
                    show(desired, w)
                ))
            } else {
                None
            };
            if let Some(message) = refusal {
                let held = Held {
                    reason: STORAGE_CHANGE_REFUSED,
                    message,
                };
                plan.hold_back(&name, Some(held));
                return Ok(());
            }
        }
        if !self.grow_claims(plan).await? {
            return Ok(());
        }
        let params = DeleteParams {
            propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
            preconditions: Some(Preconditions {
                uid: live.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                return Err(Error::Resize {
                    action: "replace",
                    kind: "StatefulSet",
                    name,
                    source: e.into(),
                });
            }
        }
        let text = format!(
            "replacing StatefulSet {name} with its new volume claim templates; its pod keeps running"
        );
        plan.notes.push(
            Note::normal("VolumeResized", "Resize", text).about(&format!("StatefulSet/{name}")),
        );
        plan.hold_back(&name, None);
        plan.replacing = true;
        Ok(())
    }

    /// Expand every existing claim of `desired`'s templates whose request is below the template's.
    /// `Ok(false)` when the API server refused (the StatefulSet is then held back with why).
    async fn grow_claims(&self, plan: &mut Plan) -> Result<bool> {
        let (db, desired, field) = (self.db, self.desired, &self.field);
        let name = desired.name_any();
        let replicas = desired.spec.replicas.unwrap_or(1);
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(self.ctx.client.clone(), self.namespace);
        for template in shapes(desired) {
            let (Some(want), Some(size_text)) =
                (template.size, template_request(desired, &template))
            else {
                continue;
            };
            for ordinal in 0..replicas {
                let claim_name = format!("{}-{name}-{ordinal}", template.name);
                let claim = api
                    .get_opt(&claim_name)
                    .await
                    .map_err(Error::read("PersistentVolumeClaim", &claim_name))?;
                let Some(claim) = claim else {
                    continue;
                };
                let have = request(&claim).and_then(|s| quantity::parse(s).ok());
                if have.is_some_and(|h| h >= want) {
                    continue;
                }
                let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": size_text}}}});
                let params = PatchParams::default();
                match api.patch(&claim_name, &params, &Patch::Merge(&patch)).await {
                    Ok(_) => {
                        let text = format!(
                            "expanding volume claim {claim_name} of database {} to {size_text}",
                            db.spec.name
                        );
                        let about = format!("PersistentVolumeClaim/{claim_name}");
                        plan.notes
                            .push(Note::normal("VolumeResized", "Resize", text).about(&about));
                    }
                    Err(e) => {
                        let answer = ApiError::of(&e);
                        if !answer.is_permanent() {
                            return Err(Error::Resize {
                                action: "expand",
                                kind: "PersistentVolumeClaim",
                                name: claim_name,
                                source: answer,
                            });
                        }
                        let held = Held {
                            reason: VOLUME_EXPANSION_REFUSED,
                            message: format!(
                                "volume claim {claim_name} of database {} cannot grow to {size_text} as {field}.size asks: {answer}. The database keeps running on its current volume. Volume sizes only grow, so the spec cannot go back down: allow volume expansion on {} (allowVolumeExpansion: true, where its provisioner can expand volumes) and Keelson grows the claim",
                                db.spec.name,
                                class_text(
                                    &claim
                                        .spec
                                        .as_ref()
                                        .and_then(|s| s.storage_class_name.clone())
                                )
                            ),
                        };
                        plan.hold_back(&name, Some(held));
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }
}

/// The size of `template` as written in the desired StatefulSet.
fn template_request(desired: &StatefulSet, template: &ClaimShape) -> Option<String> {
    desired
        .spec
        .volume_claim_templates
        .as_ref()?
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(template.name.as_str()))
        .and_then(request)
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::{
        api::{apps::v1::StatefulSetSpec, core::v1::PersistentVolumeClaimSpec},
        apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta},
    };

    fn sts(size: &str, class: Option<&str>) -> StatefulSet {
        StatefulSet {
            spec: StatefulSetSpec {
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some("data".into()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(PersistentVolumeClaimSpec {
                        storage_class_name: class.map(String::from),
                        resources: Some(k8s_openapi::api::core::v1::VolumeResourceRequirements {
                            requests: Some([("storage".into(), Quantity(size.into()))].into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    status: None,
                }]),
                ..StatefulSetSpec::default()
            },
            ..StatefulSet::default()
        }
    }

    #[test]
    fn the_fingerprint_follows_size_by_value_and_class() {
        let base = claims_fingerprint(&sts("1Gi", None));
        assert_eq!(base, claims_fingerprint(&sts("1024Mi", None)));
        assert_ne!(base, claims_fingerprint(&sts("2Gi", None)));
        assert_ne!(base, claims_fingerprint(&sts("1Gi", Some("fast"))));
        assert_ne!(base, claims_fingerprint(&StatefulSet::default()));
    }
}
