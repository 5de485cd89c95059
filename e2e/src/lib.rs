//! End-to-end support for Keelson.

pub mod apiserver;
