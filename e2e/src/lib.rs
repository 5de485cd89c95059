//! End-to-end support for Keelson.

pub mod apiserver;
pub mod faults;
pub mod harness;
