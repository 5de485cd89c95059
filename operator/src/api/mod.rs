//! The Application API: its types, its CEL rules and its validation.

pub mod k8s_rules;
pub mod quantity;
pub mod rules;
pub mod v1alpha1;
pub mod validate;

pub use v1alpha1::*;
pub use validate::{FieldError, InvalidSpec, Model, validate};
