//! The Ingress of a gateway without `parentRefs`.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::{Ctx, labels};
use crate::api::validate::{GatewayKind, GatewayModel};

/// The Ingress, when the gateway is one.
pub fn build(ctx: &Ctx, gw: &GatewayModel) -> Option<Ingress> {
    let GatewayKind::Ingress {
        class_name,
        tls_secret,
    } = &gw.kind
    else {
        return None;
    };
    let paths: Vec<HTTPIngressPath> = gw
        .routes
        .iter()
        .map(|r| HTTPIngressPath {
            path: Some(r.path.clone()),
            path_type: "Prefix".into(),
            backend: IngressBackend {
                service: Some(IngressServiceBackend {
                    name: r.backend.clone(),
                    port: Some(ServiceBackendPort {
                        name: Some(r.port_name.clone()),
                        number: None,
                    }),
                }),
                resource: None,
            },
        })
        .collect();
    let rule = |host: Option<&String>| IngressRule {
        host: host.cloned(),
        http: Some(HTTPIngressRuleValue {
            paths: paths.clone(),
        }),
    };
    let rules = if gw.hosts.is_empty() {
        vec![rule(None)]
    } else {
        gw.hosts.iter().map(|h| rule(Some(h))).collect()
    };
    let mut metadata = ctx.meta(&ctx.model.name, "gateway", labels::Role::Gateway);
    if !gw.annotations.is_empty() {
        metadata.annotations = Some(gw.annotations.clone());
    }
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: class_name.clone(),
            tls: tls_secret.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: (!gw.hosts.is_empty()).then(|| gw.hosts.clone()),
                    secret_name: Some(secret.clone()),
                }]
            }),
            rules: Some(rules),
            default_backend: None,
        }),
        status: None,
    })
}
