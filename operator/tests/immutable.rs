//! No spec edit reaches a field Kubernetes refuses to change, except a database's volume claim
//! templates, which Keelson changes by replacing the StatefulSet (see `controller::volumes`) and
//! whose changes that would lose data the CRD's transition rules refuse.

use std::collections::BTreeMap;

mod support;

use keelson::kinds;
use serde_json::{Value, json};

/// The fields the API server refuses to change on update, per kind Keelson writes (Kubernetes
/// `ValidateDeploymentUpdate`, `ValidateStatefulSetUpdate`, `ValidateServiceUpdate`; Secrets are
/// create-only for Keelson, so never updated at all). Kinds without any: every field may change.
const IMMUTABLE: &[(&str, &[&str])] = &[
    ("Deployment", &["/spec/selector"]),
    (
        "StatefulSet",
        &[
            "/spec/selector",
            "/spec/serviceName",
            "/spec/podManagementPolicy",
            "/spec/volumeClaimTemplates",
        ],
    ),
    ("Service", &["/spec/clusterIP", "/spec/clusterIPs"]),
    ("Secret", &[]),
    ("HorizontalPodAutoscaler", &[]),
    ("PodDisruptionBudget", &[]),
    ("Ingress", &[]),
    ("HTTPRoute", &[]),
    ("ServiceMonitor", &[]),
];

/// Changing these is a different kind of change, handled elsewhere: the claim templates of a
/// database whose storage changes.
const HANDLED: &[(&str, &str)] = &[("StatefulSet", "/spec/volumeClaimTemplates")];

fn sample() -> Value {
    let text = std::fs::read_to_string(format!(
        "{}/../samples/shop.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_norway::from_str(&text).unwrap()
}

fn render(app: &Value) -> BTreeMap<(String, String), Value> {
    support::stored_children(app)
        .into_iter()
        .map(|o| {
            let key = (
                o["kind"].as_str().unwrap().to_string(),
                o["metadata"]["name"].as_str().unwrap().to_string(),
            );
            (key, o)
        })
        .collect()
}

type Edit = (&'static str, fn(&mut Value));

/// Every kind of edit a team makes to a running Application's spec.
fn edits() -> Vec<Edit> {
    vec![
        ("a new image", |a| {
            a["spec"]["services"][0]["image"] = json!("ghcr.io/acme/storefront:2.4.0")
        }),
        ("fixed replicas", |a| {
            a["spec"]["services"][2]["replicas"] = json!(3)
        }),
        ("autoscaling instead of replicas", |a| {
            let s = a["spec"]["services"][3].as_object_mut().unwrap();
            s.remove("replicas");
            s.insert(
                "scaling".into(),
                json!({"minReplicas": 2, "maxReplicas": 4}),
            );
        }),
        ("another port", |a| {
            a["spec"]["services"][0]["ports"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "admin", "port": 9090}))
        }),
        ("env", |a| {
            a["spec"]["services"][1]["env"] = json!([{"name": "LOG_LEVEL", "value": "debug"}])
        }),
        (
            "resources",
            |a| {
                a["spec"]["services"][1]["resources"] =
                    json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}})
            },
        ),
        ("probes", |a| {
            a["spec"]["services"][0]["probes"] =
                json!({"readiness": {"tcpSocket": {"port": "http"}}})
        }),
        ("metrics removed", |a| {
            a["spec"]["services"][0]
                .as_object_mut()
                .unwrap()
                .remove("metrics");
        }),
        ("uses", |a| a["spec"]["services"][2]["uses"] = json!([])),
        ("hosts and routes", |a| {
            a["spec"]["gateway"]["hosts"] = json!(["www.example.com"]);
            a["spec"]["gateway"]["routes"] = json!([{"path": "/", "service": "storefront"}]);
        }),
        ("the database's version", |a| {
            a["spec"]["databases"][0]["version"] = json!("17")
        }),
        ("the database's resources", |a| {
            a["spec"]["databases"][0]["resources"] = json!({"requests": {"memory": "512Mi"}})
        }),
        ("the database's deletion policy", |a| {
            a["spec"]["databases"][0]["deletionPolicy"] = json!("Delete")
        }),
        ("the database's size", |a| {
            a["spec"]["databases"][0]["storage"]["size"] = json!("20Gi")
        }),
        ("default scaling", |a| {
            a["spec"]["scaling"] = json!({"minReplicas": 2, "maxReplicas": 3})
        }),
    ]
}

#[test]
fn every_kind_keelson_writes_has_its_immutable_fields_listed() {
    let mut registered: Vec<&str> = kinds::all().iter().map(|k| k.kind).collect();
    let mut listed: Vec<&str> = IMMUTABLE.iter().map(|(k, _)| *k).collect();
    registered.sort_unstable();
    listed.sort_unstable();
    assert_eq!(
        registered, listed,
        "list the immutable fields of a new kind"
    );
}

#[test]
fn no_spec_edit_changes_an_immutable_field() {
    let base = render(&sample());
    let immutable: BTreeMap<&str, &[&str]> = IMMUTABLE.iter().copied().collect();
    let mut handled = Vec::new();
    for (what, edit) in edits() {
        let mut app = sample();
        edit(&mut app);
        let after = render(&app);
        assert_ne!(base, after, "the edit {what} changes nothing");
        for (key, new) in &after {
            let Some(old) = base.get(key) else { continue };
            for pointer in immutable[key.0.as_str()] {
                if old.pointer(pointer) == new.pointer(pointer) {
                    continue;
                }
                let field = (key.0.as_str(), *pointer);
                assert!(
                    HANDLED.contains(&field),
                    "the edit {what} changes {pointer} of {}/{}, which Kubernetes refuses to change",
                    key.0,
                    key.1
                );
                handled.push(what);
            }
        }
    }
    // The one edit that reaches an immutable field is the one the volume step handles.
    assert_eq!(handled, ["the database's size"]);
}
