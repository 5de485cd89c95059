//! Tier 2: the real reconcile with the real `kube::Client`, against a mocked API server
//! (tower-test) that answers like Kubernetes and records every request.

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{Secret, Service},
    networking::v1::Ingress,
    policy::v1::PodDisruptionBudget,
};
use keelson::{
    api::Application,
    build::{ApiCapabilities, Credentials},
    controller::{
        self, Context, ControllerConfig,
        watch::{Child, KindStores},
    },
    external::{httproutes::HttpRoute, servicemonitors::ServiceMonitor},
    runtime::metrics::Metrics,
};
use kube::{Client, client::Body};
use serde_json::{Value, json};

const UID: &str = "6d5c1a9e-3f7b-4c2a-9d8e-1b2c3d4e5f60";

#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    body: Value,
}

impl Call {
    fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

/// Answers like an API server would for the calls a reconcile makes, and records them.
async fn api_server(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    app: Value,
    calls: Arc<Mutex<Vec<Call>>>,
) {
    while let Some((req, send)) = handle.next_request().await {
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let method = parts.method.to_string();
        let path = parts.uri.path().to_string();
        calls.lock().unwrap().push(Call {
            method: method.clone(),
            path: path.clone(),
            body: body.clone(),
        });
        let stored = |mut obj: Value| {
            obj["metadata"]["resourceVersion"] = json!("1");
            obj["metadata"]["uid"] = json!("child-uid");
            obj["metadata"]["generation"] = json!(1);
            obj
        };
        let (code, resp) = match method.as_str() {
            "PATCH" if path.ends_with("/status") => {
                let mut a = app.clone();
                a["status"] = body["status"].clone();
                (StatusCode::OK, a)
            }
            "PATCH" => (StatusCode::OK, stored(body)),
            "POST" => (StatusCode::CREATED, stored(body)),
            "GET" => (
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "not found", "reason": "NotFound", "code": 404}),
            ),
            "DELETE" => (
                StatusCode::OK,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"unexpected": path}),
            ),
        };
        send.send_response(
            Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&resp).unwrap()))
                .unwrap(),
        );
    }
}

fn application(sample: &str) -> Value {
    let text = std::fs::read_to_string(format!(
        "{}/../samples/{sample}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut v: Value = serde_norway::from_str(&text).unwrap();
    // What the API server returns: the object in the namespace it was applied to.
    v["metadata"]["namespace"] = json!("shop");
    v["metadata"]["uid"] = json!(UID);
    v["metadata"]["generation"] = json!(1);
    v["metadata"]["resourceVersion"] = json!("100");
    v
}

struct Harness {
    ctx: Arc<Context>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Harness {
    fn new(app: &Value) -> Self {
        let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let calls = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(api_server(handle, app.clone(), calls.clone()));
        let client = Client::new(svc, "default");
        let (ctx, _owners) = Context::new(
            client,
            ControllerConfig::default(),
            Arc::new(Metrics::new()),
            ApiCapabilities::ALL,
        );
        Harness {
            ctx: Arc::new(ctx),
            calls,
        }
    }

    async fn reconcile(&self, app: &Value) -> Vec<Call> {
        self.calls.lock().unwrap().clear();
        let app: Application = serde_json::from_value(app.clone()).unwrap();
        controller::reconcile(Arc::new(app), self.ctx.clone())
            .await
            .expect("reconcile succeeds");
        self.calls.lock().unwrap().clone()
    }

    /// Fill every child store with `objects` (as the watches would have seen them).
    fn preload(&self, objects: &[Value]) {
        let s = &self.ctx.stores;
        preload::<Secret>(&s.secrets, objects);
        preload::<Service>(&s.services, objects);
        preload::<StatefulSet>(&s.stateful_sets, objects);
        preload::<Deployment>(&s.deployments, objects);
        preload::<HorizontalPodAutoscaler>(&s.hpas, objects);
        preload::<PodDisruptionBudget>(&s.pdbs, objects);
        preload::<ServiceMonitor>(&s.service_monitors, objects);
        preload::<Ingress>(&s.ingresses, objects);
        preload::<HttpRoute>(&s.http_routes, objects);
    }
}

fn preload<K: Child>(stores: &KindStores<K>, objects: &[Value]) {
    let typed: Vec<K> = objects
        .iter()
        .filter(|o| o["kind"] == K::kind(&()).as_ref())
        .map(|o| serde_json::from_value(o.clone()).unwrap())
        .collect();
    stores.preload(&typed);
}

/// The children of `app` as the API server stores them after the first apply.
fn stored_children(app: &Value) -> Vec<Value> {
    let yaml = serde_norway::to_string(app).unwrap();
    keelson::render::render_values(&yaml, ApiCapabilities::ALL, |db| Credentials {
        password: format!("pw-{db}"),
        admin_password: format!("admin-{db}"),
    })
    .unwrap()
    .into_iter()
    .map(|mut o| {
        o["metadata"]["resourceVersion"] = json!("1");
        o["metadata"]["generation"] = json!(1);
        o
    })
    .collect()
}

fn writes(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.is_write())
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

#[tokio::test]
async fn first_reconcile_creates_every_child_and_writes_status() {
    let app = application("shop.yaml");
    let h = Harness::new(&app);
    let calls = h.reconcile(&app).await;
    let w = writes(&calls);

    for (kind_path, name) in [
        ("/api/v1/namespaces/shop/services/", "shop-orders"),
        ("/api/v1/namespaces/shop/services/", "shop-orders-db"),
        (
            "/apis/apps/v1/namespaces/shop/statefulsets/",
            "shop-orders-db",
        ),
        ("/apis/apps/v1/namespaces/shop/statefulsets/", "shop-cache"),
        (
            "/apis/apps/v1/namespaces/shop/deployments/",
            "shop-storefront",
        ),
        ("/apis/apps/v1/namespaces/shop/deployments/", "shop-payment"),
        (
            "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/",
            "shop-orders",
        ),
        (
            "/apis/policy/v1/namespaces/shop/poddisruptionbudgets/",
            "shop-orders",
        ),
        (
            "/apis/monitoring.coreos.com/v1/namespaces/shop/servicemonitors/",
            "shop-orders",
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/",
            "shop",
        ),
    ] {
        let want = format!("PATCH {kind_path}{name}");
        assert!(w.contains(&want), "missing {want} in {w:#?}");
    }
    // Server-side apply with the one field manager, forced.
    let applies: Vec<&Call> = calls
        .iter()
        .filter(|c| c.method == "PATCH" && !c.path.ends_with("/status"))
        .collect();
    assert_eq!(applies.len(), 21, "{w:#?}");
    // Credentials Secrets are created (POST), never applied.
    let secret_posts: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/api/v1/namespaces/shop/secrets")
        .collect();
    assert_eq!(secret_posts.len(), 2);
    assert!(
        !w.iter()
            .any(|c| c.starts_with("PATCH /api/v1/namespaces/shop/secrets"))
    );
    assert!(
        !w.iter().any(|c| c.starts_with("DELETE")),
        "nothing to prune: {w:#?}"
    );
    // Every child carries the controller owner reference.
    for c in &applies {
        let owner = &c.body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], UID, "{}", c.path);
        assert_eq!(owner["controller"], true);
    }
    // Status: observedGeneration, conditions, roll-up.
    let status = &calls
        .iter()
        .find(|c| c.path.ends_with("/applications/shop/status"))
        .expect("status written")
        .body["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["servicesReady"], "0/4");
    assert_eq!(status["url"], "https://shop.example.com");
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "WaitingForWorkloads");
    // The Application itself is never written, only its status (Argo CD stays in sync).
    assert!(
        !w.iter()
            .any(|c| c.contains("/applications/") && !c.ends_with("/status")),
        "{w:#?}"
    );
    // An Event says what was created.
    assert!(calls.iter().any(|c| c.method == "POST"
        && c.path.contains("/events")
        && c.body["reason"] == "Created"));
}

#[tokio::test]
async fn unchanged_second_reconcile_sends_no_request() {
    let mut app = application("shop.yaml");
    let h = Harness::new(&app);
    let first = h.reconcile(&app).await;
    // What the API server now holds: the children, and the status the first pass wrote.
    h.preload(&stored_children(&app));
    app["status"] = first
        .iter()
        .find(|c| c.path.ends_with("/status"))
        .unwrap()
        .body["status"]
        .clone();

    let second = h.reconcile(&app).await;
    assert!(
        second.is_empty(),
        "a no-op reconcile sent {:#?}",
        writes(&second)
    );
}

#[tokio::test]
async fn a_removed_service_is_pruned_and_nothing_else() {
    let app = application("shop.yaml");
    let h = Harness::new(&app);
    // The cluster holds the shop's children plus the children of a service since removed, a
    // child of another Application, and an object of ours that lost its owner reference.
    let mut objects = stored_children(&app);
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
    ] {
        let mut legacy = objects.iter().find(|o| o["kind"] == kind).unwrap().clone();
        legacy["metadata"]["name"] = json!("shop-legacy");
        objects.push(legacy.clone());
        let mut foreign = legacy.clone();
        foreign["metadata"]["name"] = json!("other-app-web");
        foreign["metadata"]["ownerReferences"][0]["uid"] = json!("some-other-uid");
        objects.push(foreign);
        let mut orphan = legacy;
        orphan["metadata"]["name"] = json!("shop-orphan");
        orphan["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("ownerReferences");
        objects.push(orphan);
    }
    h.preload(&objects);
    let calls = h.reconcile(&app).await;
    let mut deletes: Vec<String> = writes(&calls)
        .into_iter()
        .filter(|w| w.starts_with("DELETE"))
        .collect();
    deletes.sort();
    assert_eq!(
        deletes,
        vec![
            "DELETE /api/v1/namespaces/shop/services/shop-legacy",
            "DELETE /apis/apps/v1/namespaces/shop/deployments/shop-legacy",
            "DELETE /apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/shop-legacy",
            "DELETE /apis/monitoring.coreos.com/v1/namespaces/shop/servicemonitors/shop-legacy",
            "DELETE /apis/policy/v1/namespaces/shop/poddisruptionbudgets/shop-legacy",
        ]
    );
    assert!(
        calls
            .iter()
            .any(|c| c.path.contains("/events") && c.body["reason"] == "Pruned")
    );
}

#[tokio::test]
async fn an_invalid_spec_deletes_and_applies_nothing() {
    let mut app = application("shop.yaml");
    let h = Harness::new(&app);
    h.preload(&stored_children(&app));
    // A bad edit: a route to a service that does not exist, and a removed database still used.
    app["spec"]["gateway"]["routes"][0]["service"] = json!("ordrs");
    app["metadata"]["generation"] = json!(2);
    let calls = h.reconcile(&app).await;
    let w = writes(&calls);
    assert!(!w.iter().any(|c| c.starts_with("DELETE")), "{w:#?}");
    assert!(
        !w.iter()
            .any(|c| c.starts_with("PATCH") && !c.ends_with("/status")),
        "{w:#?}"
    );
    let status = &calls
        .iter()
        .find(|c| c.path.ends_with("/status"))
        .expect("status written")
        .body["status"];
    assert_eq!(status["observedGeneration"], 2);
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    let msg = ready["message"].as_str().unwrap();
    assert!(msg.contains("spec.gateway.routes"), "{msg}");
    assert!(
        msg.contains("must name a service in spec.services"),
        "{msg}"
    );
    let degraded = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap();
    assert_eq!(degraded["status"], "True");
    assert!(
        calls
            .iter()
            .any(|c| c.path.contains("/events") && c.body["reason"] == "InvalidSpec")
    );
}

#[tokio::test]
async fn existing_credentials_are_never_replaced() {
    let app = application("shop.yaml");
    let h = Harness::new(&app);
    // The Secrets already exist (the watch sees them): no Secret is created or written.
    let secrets: Vec<Value> = stored_children(&app)
        .into_iter()
        .filter(|o| o["kind"] == "Secret")
        .collect();
    assert_eq!(secrets.len(), 2);
    h.preload(&secrets);
    let calls = h.reconcile(&app).await;
    assert!(
        !calls.iter().any(|c| c.path.contains("/secrets")),
        "{:#?}",
        writes(&calls)
    );
}

#[tokio::test]
async fn a_status_only_change_is_not_reapplied_but_a_spec_edit_is() {
    let mut app = application("shop.yaml");
    let h = Harness::new(&app);
    let first = h.reconcile(&app).await;
    app["status"] = first
        .iter()
        .find(|c| c.path.ends_with("/status"))
        .unwrap()
        .body["status"]
        .clone();
    // The Deployment controller wrote status (new resourceVersion, same generation) on every
    // Deployment; someone edited the spec of one (generation 2).
    let children: Vec<Value> = stored_children(&app)
        .into_iter()
        .map(|mut o| {
            if o["kind"] == "Deployment" {
                o["metadata"]["resourceVersion"] = json!("2");
                if o["metadata"]["name"] == "shop-payment" {
                    o["metadata"]["generation"] = json!(2);
                }
            }
            o
        })
        .collect();
    h.preload(&children);
    let second = h.reconcile(&app).await;
    assert_eq!(
        writes(&second),
        vec!["PATCH /apis/apps/v1/namespaces/shop/deployments/shop-payment"],
        "only the edited Deployment is applied again"
    );
}
