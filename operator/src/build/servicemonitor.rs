//! The ServiceMonitor (Prometheus Operator) of a service with `metrics`.

use super::{Ctx, labels};
use crate::{
    api::validate::ServiceModel,
    external::servicemonitors::{
        ServiceMonitor, ServiceMonitorEndpoints, ServiceMonitorSelector, ServiceMonitorSpec,
    },
};

/// The ServiceMonitor of `svc`, when it declares metrics. It selects the service's Kubernetes
/// Service by its labels and scrapes the named port.
pub fn build(ctx: &Ctx, svc: &ServiceModel) -> Option<ServiceMonitor> {
    let m = svc.metrics.as_ref()?;
    Some(ServiceMonitor {
        metadata: ctx.meta(&svc.object_name, &svc.spec.name, labels::Role::Service),
        spec: ServiceMonitorSpec {
            endpoints: vec![ServiceMonitorEndpoints {
                port: Some(m.port.clone()),
                path: Some(m.path.clone()),
                interval: Some(m.interval.clone()),
                ..ServiceMonitorEndpoints::default()
            }],
            selector: ServiceMonitorSelector {
                match_labels: Some(labels::selector_labels(&ctx.model.name, &svc.spec.name)),
                ..ServiceMonitorSelector::default()
            },
            ..ServiceMonitorSpec::default()
        },
        status: None,
    })
}
