//! The RBAC rules the operator needs: exactly the resources and verbs its code uses. The Helm
//! chart grants these and nothing else (its tests compare the two), and the e2e suite checks
//! every request the operator makes against them.

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    autoscaling::v2::HorizontalPodAutoscaler,
    coordination::v1::Lease,
    core::v1::{Secret, Service},
    events::v1::Event,
    networking::v1::Ingress,
    policy::v1::PodDisruptionBudget,
};
use kube::Resource;
use serde::Serialize;

use crate::{
    api::Application,
    external::{httproutes::HttpRoute, servicemonitors::ServiceMonitor},
};

/// One RBAC rule: one group, one resource, its verbs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The API group (`""` for core).
    pub api_groups: Vec<String>,
    /// The resource (plural, or `plural/subresource`).
    pub resources: Vec<String>,
    /// Sorted verbs.
    pub verbs: Vec<String>,
}

/// Where a rule must be granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// In every watched namespace (or cluster-wide when watching all).
    Watched,
    /// Only in the namespace of the leader-election Lease.
    LeaseNamespace,
}

/// Verbs the controller uses on the children it server-side applies, watches and prunes.
/// `create` is needed because an apply that creates an object is authorized as a create.
pub const CHILD_VERBS: &[&str] = &["create", "delete", "list", "patch", "watch"];
/// Verbs on credentials Secrets: created once (never patched or read one by one), watched,
/// pruned.
pub const SECRET_VERBS: &[&str] = &["create", "delete", "list", "watch"];
/// Verbs on the Application: watched (its status is applied through `applications/status`).
pub const APPLICATION_VERBS: &[&str] = &["list", "watch"];
/// Verbs on Events (events.k8s.io/v1): created, then patched as a series repeats.
pub const EVENT_VERBS: &[&str] = &["create", "patch"];
/// Verbs on the leader-election Lease.
pub const LEASE_VERBS: &[&str] = &["create", "get", "patch"];

fn rule<K: Resource<DynamicType = ()>>(sub: Option<&str>, verbs: &[&str]) -> Rule {
    let plural = K::plural(&()).into_owned();
    Rule {
        api_groups: vec![K::group(&()).into_owned()],
        resources: vec![match sub {
            Some(s) => format!("{plural}/{s}"),
            None => plural,
        }],
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
    }
}

/// Every rule, with where it applies.
pub fn rules_with_place() -> Vec<(Rule, Place)> {
    use Place::*;
    let mut out = vec![
        (rule::<Application>(None, APPLICATION_VERBS), Watched),
        (rule::<Application>(Some("status"), &["patch"]), Watched),
        (rule::<Secret>(None, SECRET_VERBS), Watched),
        (rule::<Service>(None, CHILD_VERBS), Watched),
        (rule::<StatefulSet>(None, CHILD_VERBS), Watched),
        (rule::<Deployment>(None, CHILD_VERBS), Watched),
        (rule::<HorizontalPodAutoscaler>(None, CHILD_VERBS), Watched),
        (rule::<PodDisruptionBudget>(None, CHILD_VERBS), Watched),
        (rule::<ServiceMonitor>(None, CHILD_VERBS), Watched),
        (rule::<Ingress>(None, CHILD_VERBS), Watched),
        (rule::<HttpRoute>(None, CHILD_VERBS), Watched),
        (rule::<Event>(None, EVENT_VERBS), Watched),
        (rule::<Lease>(None, LEASE_VERBS), LeaseNamespace),
    ];
    out.sort();
    out
}

/// Every rule, sorted.
pub fn required_rules() -> Vec<Rule> {
    rules_with_place().into_iter().map(|(r, _)| r).collect()
}
