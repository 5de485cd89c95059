//! The Kubernetes Service of a service or database.

use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{Ctx, deployment::protocol, labels};
use crate::api::validate::ServiceModel;

/// The Service of a service with ports; `None` without ports.
pub fn build(ctx: &Ctx, svc: &ServiceModel) -> Option<Service> {
    let s = &svc.spec;
    if s.ports.is_empty() {
        return None;
    }
    let ports = s
        .ports
        .iter()
        .map(|p| ServicePort {
            name: Some(p.name.clone()),
            port: p.port,
            target_port: Some(IntOrString::String(p.name.clone())),
            protocol: Some(protocol(p.protocol).into()),
            ..ServicePort::default()
        })
        .collect();
    Some(cluster_ip(
        ctx,
        &svc.object_name,
        &s.name,
        labels::Role::Service,
        ports,
    ))
}

/// A ClusterIP Service selecting one component's pods.
pub fn cluster_ip(
    ctx: &Ctx,
    name: &str,
    component: &str,
    role: labels::Role,
    ports: Vec<ServicePort>,
) -> Service {
    Service {
        metadata: ctx.meta(name, component, role),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(labels::selector_labels(&ctx.model.name, component)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}
