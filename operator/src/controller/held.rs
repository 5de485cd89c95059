//! Children held back on purpose this pass: an object of their name that this Application does
//! not control ([`super::ownership`]), or a database whose credentials are gone while its data
//! is still there ([`super::credentials`]). Each is reported in status (`Ready=False`,
//! `Degraded=True`, with its reason) and as a Warning Event; every other child still converges.

use std::fmt;

use k8s_openapi::api::apps::v1::StatefulSet;

use super::apply::Report;
use crate::{build::Children, kinds::kind_name};

/// One child held back, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The condition and Event reason, e.g. `Conflict`.
    pub reason: &'static str,
    /// What is held back, why, and what to do, in words.
    pub message: String,
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The reason of a name conflict.
pub const CONFLICT: &str = "Conflict";
/// The reason of missing database credentials.
pub const CREDENTIALS_MISSING: &str = "CredentialsMissing";

/// The reason and message of a condition that reports `held`: the first one's reason, every
/// message; `None` when nothing is held.
pub fn summary(held: &[Held]) -> Option<(&'static str, String)> {
    let first = held.first()?;
    let message = held
        .iter()
        .map(|h| h.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Some((first.reason, message))
}

impl From<&super::ownership::Conflict> for Held {
    fn from(c: &super::ownership::Conflict) -> Self {
        Held {
            reason: CONFLICT,
            message: c.to_string(),
        }
    }
}

/// StatefulSets left alone this pass: taken out of what is applied, and kept from prune.
#[derive(Debug, Default)]
pub struct HeldStatefulSets(Vec<String>);

impl HeldStatefulSets {
    /// Hold back the StatefulSet `name`.
    pub fn push(&mut self, name: &str) {
        self.0.push(name.to_string());
    }

    /// Take the held StatefulSets out of what is applied.
    pub fn hold(&self, children: &mut Children) {
        children
            .stateful_sets
            .retain(|s| !self.0.iter().any(|h| s.metadata.name.as_deref() == Some(h)));
    }

    /// Keep the held StatefulSets from prune.
    pub fn keep(&self, report: &mut Report) {
        for name in &self.0 {
            report.keep(kind_name::<StatefulSet>(), name);
        }
    }
}
