//! The HorizontalPodAutoscaler of an autoscaled service.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

use super::{Ctx, labels};
use crate::api::validate::{Replicas, ServiceModel};

/// The autoscaler of `svc`, when it autoscales.
pub fn build(ctx: &Ctx, svc: &ServiceModel) -> Option<HorizontalPodAutoscaler> {
    let Replicas::Autoscaled {
        min,
        max,
        target_cpu,
    } = svc.replicas
    else {
        return None;
    };
    Some(HorizontalPodAutoscaler {
        metadata: ctx.meta(&svc.object_name, &svc.spec.name, labels::Role::Service),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: svc.object_name.clone(),
            },
            min_replicas: Some(min),
            max_replicas: max,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(target_cpu),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: None,
        },
        status: None,
    })
}
