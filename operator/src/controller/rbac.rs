//! The RBAC rules the operator needs: exactly the resources and verbs its code uses. The Helm
//! chart grants these and nothing else (its tests compare the two), and the e2e suite checks
//! every request the operator makes against them.

use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{PersistentVolumeClaim, Pod},
    events::v1::Event,
};
use kube::Resource;
use serde::Serialize;

use crate::{
    api::Application,
    kinds::{self, KindVisitor, Registered},
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

/// Verbs on the Application: watched (its status is applied through `applications/status`).
pub const APPLICATION_VERBS: &[&str] = &["list", "watch"];
/// Verbs on Events (events.k8s.io/v1): created, then patched as a series repeats.
pub const EVENT_VERBS: &[&str] = &["create", "patch"];
/// Verbs on Pods: listed by a workload's selector while it is not ready, to say why
/// (see [`super::pods`]); never watched, never written.
pub const POD_VERBS: &[&str] = &["list"];
/// Verbs on PersistentVolumeClaims: a database's claim is read to tell whether its data exists
/// when its credentials Secret is missing, and patched to grow (see [`super::volumes`]).
pub const CLAIM_VERBS: &[&str] = &["get", "patch"];
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

/// Every rule, with where it applies: the Application, every registered child kind with the
/// verbs of how it is written ([`kinds::Write::verbs`]) and `get` where it is read by name
/// ([`kinds::Child::READ_BY_NAME`]), Events, Pods and the Lease.
pub fn rules_with_place() -> Vec<(Rule, Place)> {
    struct ChildRules(Vec<(Rule, Place)>);
    impl KindVisitor for ChildRules {
        fn visit<K: Registered>(&mut self) {
            let mut verbs = K::WRITE.verbs().to_vec();
            if K::READ_BY_NAME {
                verbs.push("get");
                verbs.sort_unstable();
            }
            self.0.push((rule::<K>(None, &verbs), Place::Watched));
        }
    }
    let mut children = ChildRules(Vec::new());
    kinds::for_each_kind(&mut children);
    let mut out = vec![
        (rule::<Application>(None, APPLICATION_VERBS), Place::Watched),
        (
            rule::<Application>(Some("status"), &["patch"]),
            Place::Watched,
        ),
        (rule::<Event>(None, EVENT_VERBS), Place::Watched),
        (rule::<Pod>(None, POD_VERBS), Place::Watched),
        (
            rule::<PersistentVolumeClaim>(None, CLAIM_VERBS),
            Place::Watched,
        ),
        (rule::<Lease>(None, LEASE_VERBS), Place::LeaseNamespace),
    ];
    out.extend(children.0);
    out.sort();
    out
}

/// Every rule, sorted.
pub fn required_rules() -> Vec<Rule> {
    rules_with_place().into_iter().map(|(r, _)| r).collect()
}
