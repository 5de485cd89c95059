//! The Gateway API HTTPRoute of a gateway with `parentRefs`.

use super::{Ctx, labels};
use crate::{
    api::validate::{GatewayKind, GatewayModel},
    external::httproutes::{
        HttpRoute, HttpRouteParentRefs, HttpRouteRules, HttpRouteRulesBackendRefs,
        HttpRouteRulesMatches, HttpRouteRulesMatchesPath, HttpRouteRulesMatchesPathType,
        HttpRouteSpec,
    },
};

/// The HTTPRoute, when the gateway is one. Fields the Gateway API CRD defaults (parent group and
/// kind, backend group, kind and weight) are left to the API server, so a re-apply of the same
/// route changes nothing.
pub fn build(ctx: &Ctx, gw: &GatewayModel) -> Option<HttpRoute> {
    let GatewayKind::HttpRoute { parent_refs } = &gw.kind else {
        return None;
    };
    let mut metadata = ctx.meta(&ctx.model.name, "gateway", labels::Role::Gateway);
    if !gw.annotations.is_empty() {
        metadata.annotations = Some(gw.annotations.clone());
    }
    Some(HttpRoute {
        metadata,
        spec: HttpRouteSpec {
            hostnames: (!gw.hosts.is_empty()).then(|| gw.hosts.clone()),
            parent_refs: Some(
                parent_refs
                    .iter()
                    .map(|p| HttpRouteParentRefs {
                        name: p.name.clone(),
                        namespace: p.namespace.clone(),
                        section_name: p.section_name.clone(),
                        ..HttpRouteParentRefs::default()
                    })
                    .collect(),
            ),
            rules: Some(
                gw.routes
                    .iter()
                    .map(|r| HttpRouteRules {
                        matches: Some(vec![HttpRouteRulesMatches {
                            path: Some(HttpRouteRulesMatchesPath {
                                r#type: Some(HttpRouteRulesMatchesPathType::PathPrefix),
                                value: Some(r.path.clone()),
                            }),
                            ..HttpRouteRulesMatches::default()
                        }]),
                        backend_refs: Some(vec![HttpRouteRulesBackendRefs {
                            name: r.backend.clone(),
                            port: Some(r.port_number),
                            ..HttpRouteRulesBackendRefs::default()
                        }]),
                        ..HttpRouteRules::default()
                    })
                    .collect(),
            ),
        },
        status: None,
    })
}
