//! Tells the parity tests, at build time, which of their checks can run here, so that what cannot
//! is reported by the test harness as `ignored` with its reason (never as a pass), as `e2e/build.rs`
//! does for the end-to-end tests:
//!
//! - `cfg(third_party_crds)`: `KEELSON_THIRD_PARTY_CRDS` names the folder of the upstream
//!   HTTPRoute and ServiceMonitor CRDs (see `e2e/third-party-crds.tsv`).
//! - `cfg(k8s_schemas)`: `KEELSON_K8S_SCHEMAS` names kubernetes-validate's strict JSON schemas of
//!   the Kubernetes release Keelson targets (`.ci/run` sets it from its `.venv`).
//!
//! Cargo rebuilds the tests whenever one of these variables changes.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for (var, cfg) in [
        ("KEELSON_THIRD_PARTY_CRDS", "third_party_crds"),
        ("KEELSON_K8S_SCHEMAS", "k8s_schemas"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
