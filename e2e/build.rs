//! Tells the tests, at build time, which of them can run here, so that what cannot is reported
//! by the test harness as `ignored` with its reason (never as a pass):
//!
//! - `cfg(third_party_crds)`: `KEELSON_THIRD_PARTY_CRDS` names the folder of the upstream
//!   third-party CRDs (see `e2e/third-party-crds.tsv`); tests that need them are ignored without.
//! - `cfg(real_cluster)`: `KEELSON_E2E_KUBECONFIG` or `KUBECONFIG` names an existing kubeconfig,
//!   so the scenarios run against that cluster; tests that only the in-process API server can
//!   run are ignored there. `harness::Env::start` checks that the run agrees with the build.
//!
//! Cargo rebuilds the tests whenever one of these variables changes.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(third_party_crds)");
    println!("cargo::rustc-check-cfg=cfg(real_cluster)");
    for var in [
        "KEELSON_THIRD_PARTY_CRDS",
        "KEELSON_E2E_KUBECONFIG",
        "KUBECONFIG",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if std::env::var_os("KEELSON_THIRD_PARTY_CRDS").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=third_party_crds");
    }
    // The same rule as `harness::real_cluster_kubeconfig`.
    let real = ["KEELSON_E2E_KUBECONFIG", "KUBECONFIG"]
        .iter()
        .filter_map(std::env::var_os)
        .any(|p| !p.is_empty() && std::path::Path::new(&p).exists());
    if real {
        println!("cargo::rustc-cfg=real_cluster");
    }
}
