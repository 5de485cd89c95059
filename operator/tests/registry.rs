//! The registry of child kinds is the one list the controller works from: every registered kind
//! is built by some sample, pruned when no longer wanted, watched, and granted in `keelson rbac`
//! (and so in the Helm chart) with exactly the verbs its write needs.

mod support;

use std::collections::BTreeSet;

use keelson::{
    build::{ApiCapabilities, Credentials},
    controller::rbac::{Rule, required_rules},
    kinds::{self, KindInfo},
};
use serde_json::{Value, json};
use support::{Harness, UID, application, stored_children, writes};

/// The URL path of a namespaced collection of `kind`.
fn collection(kind: &KindInfo, namespace: &str) -> String {
    let KindInfo {
        group,
        version,
        plural,
        ..
    } = kind;
    if group.is_empty() {
        format!("/api/{version}/namespaces/{namespace}/{plural}")
    } else {
        format!("/apis/{group}/{version}/namespaces/{namespace}/{plural}")
    }
}

/// One rendered object of every kind any sample renders.
fn one_object_per_kind() -> Vec<Value> {
    let dir = format!("{}/../samples", env!("CARGO_MANIFEST_DIR"));
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let objects =
            keelson::render::render_values(&text, ApiCapabilities::ALL, |db| Credentials {
                password: format!("pw-{db}"),
                admin_password: format!("admin-{db}"),
            })
            .unwrap();
        for o in objects {
            if seen.insert(o["kind"].as_str().unwrap().to_string()) {
                out.push(o);
            }
        }
    }
    out
}

#[test]
fn the_samples_build_exactly_the_registered_kinds() {
    let built: BTreeSet<String> = one_object_per_kind()
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    let registered: BTreeSet<String> = kinds::all().iter().map(|k| k.kind.to_string()).collect();
    assert_eq!(built, registered);
}

#[tokio::test]
async fn every_registered_kind_is_pruned_when_no_longer_wanted() {
    let app = application("shop.yaml");
    let h = Harness::new(&app);
    let mut objects = stored_children(&app);
    // One child of every kind that the shop's spec does not want, owned by the shop.
    for mut stale in one_object_per_kind() {
        let meta = &mut stale["metadata"];
        meta["name"] = json!("shop-stale");
        meta["namespace"] = json!("shop");
        meta["labels"]["keelson.dev/application"] = json!("shop");
        meta["ownerReferences"] = json!([{"apiVersion": "keelson.dev/v1alpha1",
            "kind": "Application", "name": "shop", "uid": UID, "controller": true}]);
        objects.push(stale);
    }
    h.preload(&objects);
    let calls = h.reconcile(&app).await;
    let deletes: BTreeSet<String> = writes(&calls)
        .into_iter()
        .filter(|w| w.starts_with("DELETE "))
        .collect();
    let wanted: BTreeSet<String> = kinds::all()
        .iter()
        .map(|k| format!("DELETE {}/shop-stale", collection(k, "shop")))
        .collect();
    assert_eq!(deletes, wanted);
}

#[tokio::test]
async fn every_registered_kind_is_watched() {
    let app = application("shop.yaml");
    let h = Harness::new(&app);
    h.ctx.start_watches(ApiCapabilities::ALL);
    let all = kinds::all();
    let listed = |calls: &[support::Call]| -> BTreeSet<String> {
        calls
            .iter()
            .filter(|c| c.method == "GET")
            .map(|c| c.path.clone())
            .collect()
    };
    let wanted: BTreeSet<String> = all
        .iter()
        .map(|k| {
            let path = collection(k, "x");
            let (api, rest) = path.split_once("/namespaces/x/").unwrap();
            format!("{api}/{rest}")
        })
        .collect();
    // The watches list in the background: wait for every kind's first list.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let seen = listed(&h.calls.lock().unwrap());
        if wanted.is_subset(&seen) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not listed: {:?}",
            wanted.difference(&seen).collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The optional APIs' watches wait for their API: without it, only the others start.
    let h = Harness::new(&app);
    h.ctx.start_watches(ApiCapabilities {
        service_monitors: false,
        http_routes: false,
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let seen = listed(&h.calls.lock().unwrap());
    for k in &all {
        let path = collection(k, "x").replace("/namespaces/x", "");
        assert_eq!(seen.contains(&path), k.api.is_none(), "{}", k.kind);
    }
}

#[test]
fn rbac_grants_exactly_the_registered_kinds_verbs() {
    let rules = required_rules();
    let child_rules: BTreeSet<&Rule> = rules
        .iter()
        .filter(|r| {
            ![
                "applications",
                "applications/status",
                "events",
                "leases",
                "persistentvolumeclaims",
                "pods",
            ]
            .contains(&r.resources[0].as_str())
        })
        .collect();
    let wanted: Vec<Rule> = kinds::all()
        .iter()
        .map(|k| Rule {
            api_groups: vec![k.group.to_string()],
            resources: vec![k.plural.to_string()],
            verbs: {
                let mut verbs: Vec<String> =
                    k.write.verbs().iter().map(|v| v.to_string()).collect();
                if k.read_by_name {
                    verbs.push("get".into());
                    verbs.sort();
                }
                verbs
            },
        })
        .collect();
    assert_eq!(child_rules, wanted.iter().collect::<BTreeSet<_>>());
    // The chart grants what `keelson rbac` prints (its tests compare the chart to this file).
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../charts/tests/expected_rbac.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(serde_json::to_value(&rules).unwrap(), expected);
}

#[tokio::test]
async fn a_kind_set_aside_this_pass_is_not_pruned() {
    let app = application("shop.yaml");
    let h = Harness::new(&app);
    // The watch saw the shop's ServiceMonitors; then the cluster stopped serving their API.
    h.preload(&stored_children(&app));
    h.ctx.set_caps(ApiCapabilities {
        service_monitors: false,
        http_routes: true,
    });
    let calls = h.reconcile(&app).await;
    let w = writes(&calls);
    assert!(!w.iter().any(|c| c.starts_with("DELETE")), "{w:#?}");
    assert!(!w.iter().any(|c| c.contains("servicemonitors")), "{w:#?}");
}
