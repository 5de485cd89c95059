//! The PodDisruptionBudget of a service that runs two or more replicas.

use k8s_openapi::{
    api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{Ctx, labels};
use crate::api::validate::ServiceModel;

/// A budget that lets one pod at a time be evicted, when the service always runs two or more.
///
/// Pods that are not ready may always be evicted (`unhealthyPodEvictionPolicy: AlwaysAllow`,
/// GA since Kubernetes 1.31): a service whose pods crash-loop must never block a node drain.
pub fn build(ctx: &Ctx, svc: &ServiceModel) -> Option<PodDisruptionBudget> {
    if svc.replicas.min() < 2 {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: ctx.meta(&svc.object_name, &svc.spec.name, labels::Role::Service),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(labels::selector(&ctx.model.name, &svc.spec.name)),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}
