//! Proof by generation: random Applications that Keelson accepts must build objects the API
//! server accepts, checked against (a) the Kubernetes OpenAPI schemas of the core kinds, (b)
//! Kubernetes' field rules ported from its sources, (c) the upstream HTTPRoute and ServiceMonitor
//! CRDs (schema and CEL), and `keelson render`'s output must read back as the same objects.
//!
//! Two tests: one checks (a) and (b) and always runs; its `_upstream_crds` twin checks (a), (b)
//! and (c) on other Applications and is ignored, with the reason, unless `KEELSON_THIRD_PARTY_CRDS`
//! names the upstream CRDs (see `operator/build.rs`). kubernetes-validate's schemas join (a) when
//! `KEELSON_K8S_SCHEMAS` names them; each test prints what it checked.
//!
//! `KEELSON_PARITY_CASES` (or `PROPTEST_CASES`) sets how many Applications each test generates
//! (default 2,000); `KEELSON_PARITY_SEED` varies the otherwise fixed seeds;
//! `KEELSON_PARITY_REPORT=FILE` writes every family found, with its smallest example, and fails
//! only on a family outside [`KNOWN_GAPS`]. Long run (every check, see the README's Reliability
//! section): `KEELSON_PARITY_CASES=1000000 cargo test --release -p keelson --test parity_generated
//! -- upstream_crds`.

mod parity_support;

use std::{collections::BTreeMap, io::Write, sync::Mutex, time::Instant};

use parity_support::{Checker, Outcome, generate};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// Families of faults Keelson has today: Applications it accepts whose objects the API server (or
/// the target CRD) rejects. Each entry is one family as the checks name it. The test fails when a
/// family appears that is not listed, and when a listed family no longer occurs (then delete it
/// here: the gap is closed).
const KNOWN_GAPS: &[&str] = &[];

const DEFAULT_CASES: u32 = 2_000;

/// Why Applications of one family fail, with the smallest example seen.
#[derive(Default)]
struct Family {
    count: u64,
    value: String,
    /// The size of the example's spec as JSON, and the example as YAML.
    example: Option<(usize, String)>,
}

#[derive(Default)]
struct Stats {
    generated: u64,
    accepted: u64,
    objects: u64,
    rejected_by: BTreeMap<String, (u64, String)>,
    families: BTreeMap<String, Family>,
}

fn cases() -> u32 {
    ["KEELSON_PARITY_CASES", "PROPTEST_CASES"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The seed: `KEELSON_PARITY_SEED` or a fixed one, and `test` so that the two tests generate
/// different Applications.
fn seed(test: u8) -> [u8; 32] {
    let n: u64 = std::env::var("KEELSON_PARITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x006b_6565_6c73_6f6e);
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&n.to_le_bytes());
    s[8] = test;
    s
}

/// Written to the process's stderr, which the test harness does not capture: skips and figures
/// are visible in every run.
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

fn app_yaml(app: &generate::GeneratedApp) -> String {
    let doc = serde_json::json!({
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": app.name, "namespace": app.namespace},
        "spec": app.spec,
    });
    keelson::render::to_yaml_stream(&[doc])
}

#[test]
fn accepted_applications_build_objects_the_api_server_accepts() {
    property(&Checker::new(), 0);
}

#[test]
#[cfg_attr(
    not(third_party_crds),
    ignore = "needs the upstream HTTPRoute and ServiceMonitor CRDs: run e2e/fetch-third-party-crds.sh and set KEELSON_THIRD_PARTY_CRDS"
)]
fn accepted_applications_build_objects_the_api_server_accepts_upstream_crds() {
    property(&Checker::with_crds(), 1);
}

/// Generate Applications with the seed `test`, check what Keelson builds from each it accepts.
fn property(checker: &Checker, test: u8) {
    for what in checker.describe() {
        say!("parity checks {what}");
    }
    let report = std::env::var("KEELSON_PARITY_REPORT").ok();
    let cases = cases();
    let stats = Mutex::new(Stats::default());
    let started = Instant::now();
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed(test)),
    );
    let result = runner.run(&generate::application(), |app| {
        let spec = serde_json::to_value(&app.spec).expect("spec serializes");
        let outcome = checker.run(&app.name, &app.namespace, &spec);
        let mut st = stats.lock().unwrap();
        st.generated += 1;
        if st.generated % 10_000 == 0 {
            say!(
                "parity: {} generated, {} accepted, {} objects, {} families, {:.0} s",
                st.generated,
                st.accepted,
                st.objects,
                st.families.len(),
                started.elapsed().as_secs_f64()
            );
        }
        let (objects, violations) = match outcome {
            Outcome::Rejected(fields) => {
                for (f, message) in fields {
                    let generic: String = f.split('[').map(|p| p.split(']').next_back().unwrap_or(p)).collect::<Vec<_>>().join("[]");
                    let e = st.rejected_by.entry(generic).or_insert((0, message));
                    e.0 += 1;
                }
                return Ok(());
            }
            Outcome::Accepted { objects, violations } => (objects, violations),
        };
        st.accepted += 1;
        st.objects += objects as u64;
        let mut new = Vec::new();
        let size = serde_json::to_string(&spec).map_or(0, |s| s.len());
        for v in violations {
            let known = KNOWN_GAPS.contains(&v.family.as_str());
            if !known && report.is_none() {
                new.push(format!("{} (value {:?})", v.family, v.value));
            }
            let f = st.families.entry(v.family).or_default();
            f.count += 1;
            if f.example.as_ref().is_none_or(|(s, _)| size < *s) {
                f.example = Some((size, app_yaml(&app)));
                f.value = v.value;
            }
        }
        if new.is_empty() {
            Ok(())
        } else {
            Err(TestCaseError::fail(format!(
                "Keelson accepts this Application, but the API server would reject what it builds:\n  {}\n{}",
                new.join("\n  "),
                app_yaml(&app)
            )))
        }
    });
    let elapsed = started.elapsed();
    let st = stats.into_inner().unwrap();
    say!(
        "parity: {} Applications generated, {} accepted by Keelson ({} objects checked), {} families of faults, in {:.1} s",
        st.generated,
        st.accepted,
        st.objects,
        st.families.len(),
        elapsed.as_secs_f64()
    );
    if std::env::var("KEELSON_PARITY_REJECTIONS").is_ok() {
        let mut r: Vec<_> = st.rejected_by.iter().collect();
        r.sort_by_key(|e| std::cmp::Reverse(e.1.0));
        for (field, (n, message)) in r.iter().take(40) {
            say!("parity rejected ({n}): {field}: e.g. {message}");
        }
    }
    for (name, f) in &st.families {
        say!(
            "parity family ({} cases): {name}  e.g. {:?}",
            f.count,
            f.value
        );
    }
    if let Some(path) = &report {
        let mut out = String::from("# Families found by the parity property test\n\n");
        out.push_str(&format!(
            "{} Applications generated, {} accepted, {} objects checked, {:.1} s.\n\n",
            st.generated,
            st.accepted,
            st.objects,
            elapsed.as_secs_f64()
        ));
        for (name, f) in &st.families {
            out.push_str(&format!(
                "## {name}\n\n{} accepted Applications; value {:?}. Smallest example:\n\n```yaml\n{}```\n\n",
                f.count,
                f.value,
                f.example.as_ref().map_or("", |(_, y)| y.as_str())
            ));
        }
        std::fs::write(path, out).expect("write the report");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        st.accepted * 10 >= st.generated,
        "only {} of {} generated Applications were accepted: the generators test too little",
        st.accepted,
        st.generated
    );
    if cases >= DEFAULT_CASES && report.is_none() {
        let gone: Vec<&&str> = KNOWN_GAPS
            .iter()
            .filter(|g| !st.families.contains_key(**g))
            .collect();
        assert!(
            gone.is_empty(),
            "these known gaps no longer occur: remove them from KNOWN_GAPS: {gone:#?}"
        );
    }
}
