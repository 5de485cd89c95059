//! Replica hand-over: a service switching from a fixed `replicas` count to `scaling` keeps its
//! running replicas.
//!
//! With fixed replicas Keelson's apply owns the Deployment's `spec.replicas`. Under autoscaling it
//! stops sending the field, and server-side apply removes a field its last owner stops sending:
//! the Deployment would fall back to the default of 1 until the autoscaler acts. So, following
//! the procedure Kubernetes documents for transferring ownership of a field under server-side
//! apply, before its first apply without the field Keelson applies `spec.replicas` alone with a
//! second field manager, [`HANDOVER_MANAGER`], at the current count clamped into
//! `[minReplicas, maxReplicas]`. That manager keeps the field after Keelson lets go of it, and
//! the HorizontalPodAutoscaler's writes through the scale subresource take it from there.
//! Switching back to fixed replicas is an ordinary forced apply: it takes the field back and sets
//! exactly the fixed count.
//!
//! Whether Keelson still owns the field is read from the Deployment's managed fields as its
//! watch reduces it ([`applies_replicas`]), so the hand-over write happens once, survives a
//! restart of the operator, and a steady pass writes nothing.

use k8s_openapi::{api::apps::v1::Deployment, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{
    Api,
    api::{Patch, PatchParams},
};

use super::{
    Context, FIELD_MANAGER,
    error::{Error, Result},
};
use crate::api::{Model, validate::Replicas};

/// The field manager that holds `spec.replicas` between Keelson and the autoscaler.
pub const HANDOVER_MANAGER: &str = "keelson-handover";

/// Whether Keelson's apply (field manager [`FIELD_MANAGER`]) owns `spec.replicas` of an object
/// with this metadata.
pub fn applies_replicas(meta: &ObjectMeta) -> bool {
    meta.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(FIELD_MANAGER)
            && m.operation.as_deref() == Some("Apply")
            && m.subresource.is_none()
            && m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:spec"].get("f:replicas").is_some())
    })
}

/// The count to hand over: the current one, clamped into the autoscaler's bounds (never below
/// what runs when that is within bounds, never below `min`).
pub fn handover_count(current: Option<i32>, min: i32, max: i32) -> i32 {
    current.unwrap_or(min).clamp(min, max.max(min))
}

/// Hand `spec.replicas` over to [`HANDOVER_MANAGER`] for every autoscaled service whose
/// Deployment's replicas Keelson still owns (it was switched from fixed replicas). One write per
/// switch; none on a steady pass.
pub async fn hand_over(ctx: &Context, model: &Model) -> Result<()> {
    for svc in &model.services {
        let Replicas::Autoscaled { min, max, .. } = svc.replicas else {
            continue;
        };
        let Some(live) = ctx
            .stores
            .deployments
            .get(&model.namespace, &svc.object_name)
        else {
            continue;
        };
        let Some(w) = live
            .workload
            .as_deref()
            .copied()
            .filter(|w| w.applies_replicas)
        else {
            continue;
        };
        let count = handover_count(w.replicas, min, max);
        let patch = serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": svc.object_name, "namespace": model.namespace},
            "spec": {"replicas": count},
        });
        let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &model.namespace);
        api.patch(
            &svc.object_name,
            &PatchParams::apply(HANDOVER_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|e| Error::Apply {
            kind: "Deployment",
            name: svc.object_name.clone(),
            source: e.into(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_handed_over_count_never_drops_below_what_runs_or_the_minimum() {
        assert_eq!(handover_count(Some(4), 3, 6), 4);
        assert_eq!(handover_count(Some(2), 3, 6), 3);
        assert_eq!(handover_count(Some(9), 3, 6), 6);
        assert_eq!(handover_count(None, 3, 6), 3);
    }

    #[test]
    fn only_keelsons_own_apply_of_replicas_counts() {
        let meta = |managers: serde_json::Value| -> ObjectMeta {
            serde_json::from_value(json!({"managedFields": managers})).unwrap()
        };
        let entry = |manager: &str, op: &str, fields: serde_json::Value| {
            json!({"manager": manager, "operation": op, "apiVersion": "apps/v1",
                "fieldsType": "FieldsV1", "fieldsV1": fields})
        };
        let replicas = json!({"f:spec": {"f:replicas": {}, "f:template": {}}});
        let template = json!({"f:spec": {"f:template": {}}});
        assert!(applies_replicas(&meta(json!([entry(
            "keelson",
            "Apply",
            replicas.clone()
        )]))));
        assert!(!applies_replicas(&meta(json!([entry(
            "keelson", "Apply", template
        )]))));
        assert!(!applies_replicas(&meta(json!([
            entry("keelson-handover", "Apply", replicas.clone()),
            entry("kube-controller-manager", "Update", replicas)
        ]))));
    }
}
