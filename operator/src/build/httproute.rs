//! The Gateway API HTTPRoute of a gateway with `parentRefs`.

use super::{Ctx, labels};
use crate::{
    api::validate::{GatewayKind, GatewayModel, RouteModel},
    external::httproutes::{
        HttpRoute, HttpRouteParentRefs, HttpRouteRules, HttpRouteRulesBackendRefs,
        HttpRouteRulesMatches, HttpRouteRulesMatchesPath, HttpRouteRulesMatchesPathType,
        HttpRouteSpec,
    },
};

/// One rule per backend (Service and port), in the order the routes first name them, each
/// matching every path routed there: Gateway API allows at most 16 rules (validation keeps the
/// backends within that) and 64 matches per rule (the Application allows 64 routes). Routing is
/// the same as one rule per path, since Gateway API picks the longest matching prefix across
/// rules.
fn rules(routes: &[RouteModel]) -> Vec<HttpRouteRules> {
    let mut rules: Vec<(&RouteModel, Vec<HttpRouteRulesMatches>)> = Vec::new();
    for r in routes {
        let matches = HttpRouteRulesMatches {
            path: Some(HttpRouteRulesMatchesPath {
                r#type: Some(HttpRouteRulesMatchesPathType::PathPrefix),
                value: Some(r.path.clone()),
            }),
            ..HttpRouteRulesMatches::default()
        };
        match rules
            .iter_mut()
            .find(|(b, _)| b.backend == r.backend && b.port_number == r.port_number)
        {
            Some((_, m)) => m.push(matches),
            None => rules.push((r, vec![matches])),
        }
    }
    rules
        .into_iter()
        .map(|(r, matches)| HttpRouteRules {
            matches: Some(matches),
            backend_refs: Some(vec![HttpRouteRulesBackendRefs {
                name: r.backend.clone(),
                port: Some(r.port_number),
                ..HttpRouteRulesBackendRefs::default()
            }]),
            ..HttpRouteRules::default()
        })
        .collect()
}

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
            rules: Some(rules(&gw.routes)),
        },
        status: None,
    })
}
