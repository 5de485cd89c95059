//! What every generated pod shares: the restricted Pod Security Standard and env plumbing.

use k8s_openapi::{
    api::core::v1::{
        Capabilities, EnvVar, EnvVarSource, PodSecurityContext, ResourceRequirements,
        SeccompProfile, SecretKeySelector, SecurityContext,
    },
    apimachinery::pkg::api::resource::Quantity,
};
use std::collections::BTreeMap;

use crate::api::{self, validate::DatabaseRef};

/// The pod-level security context: non-root, RuntimeDefault seccomp.
pub fn pod_security(run_as_user: Option<i64>, fs_group: Option<i64>) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user,
        run_as_group: fs_group,
        fs_group,
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// The container-level security context: no privilege escalation, every capability dropped.
pub fn container_security(read_only_root: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        read_only_root_filesystem: Some(read_only_root),
        run_as_non_root: Some(true),
        ..SecurityContext::default()
    }
}

/// An env var read from a key of a Secret.
pub fn secret_env(name: impl Into<String>, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The connection env vars of the databases a service uses, in a stable order.
pub fn database_env(uses: &[DatabaseRef]) -> Vec<EnvVar> {
    uses.iter()
        .flat_map(|db| {
            api::validate::injected_env_keys(db.engine)
                .iter()
                .map(move |(suffix, key)| {
                    secret_env(format!("{}_{suffix}", db.env_prefix), &db.secret_name, key)
                })
        })
        .collect()
}

/// Container resources from the spec's amounts.
pub fn resources(r: Option<&api::ResourcesSpec>) -> Option<ResourceRequirements> {
    let r = r?;
    let list = |a: &Option<api::ResourceAmounts>| {
        let a = a.as_ref()?;
        let mut m = BTreeMap::new();
        if let Some(cpu) = &a.cpu {
            m.insert("cpu".to_string(), Quantity(cpu.clone()));
        }
        if let Some(mem) = &a.memory {
            m.insert("memory".to_string(), Quantity(mem.clone()));
        }
        (!m.is_empty()).then_some(m)
    };
    let out = ResourceRequirements {
        requests: list(&r.requests),
        limits: list(&r.limits),
        ..ResourceRequirements::default()
    };
    (out.requests.is_some() || out.limits.is_some()).then_some(out)
}
