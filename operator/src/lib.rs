//! Keelson: a Kubernetes operator that runs a whole application stack from one `Application`.
//!
//! One reconcile is fetch, validate, build, apply, prune, status: [`api`] holds the types and
//! the validation, [`build`] turns a validated model into the desired children (pure),
//! [`controller`] talks to the cluster, and [`kinds`] is the one registry of child kinds both
//! work from.

pub mod api;
pub mod build;
pub mod controller;
pub mod external;
pub mod kinds;
pub mod render;
pub mod runtime;
