//! The tier-2 harness the controller tests share: the real reconcile with the real
//! `kube::Client`, against a mocked API server (tower-test) that answers like Kubernetes and
//! records every request.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use keelson::{
    api::Application,
    build::{ApiCapabilities, Credentials},
    controller::{self, Context, ControllerConfig},
    runtime::metrics::Metrics,
};
use kube::{Client, client::Body};
use serde_json::{Value, json};

pub const UID: &str = "6d5c1a9e-3f7b-4c2a-9d8e-1b2c3d4e5f60";

#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: Value,
}

impl Call {
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

/// An answer the mocked API server gives instead of success: to writes whose path contains
/// `path`, the HTTP `code` with a `Status` of that `reason` and `message`.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub path: String,
    pub code: u16,
    pub reason: String,
    pub message: String,
}

/// Answers like an API server would for the calls a reconcile makes, and records them.
async fn api_server(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    app: Value,
    calls: Arc<Mutex<Vec<Call>>>,
    refusals: Arc<Mutex<Vec<Refusal>>>,
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
        let refusal = refusals
            .lock()
            .unwrap()
            .iter()
            .find(|r| method != "GET" && path.contains(&r.path))
            .cloned();
        let (code, resp) = match method.as_str() {
            _ if refusal.is_some() => {
                let r = refusal.unwrap();
                (
                    StatusCode::from_u16(r.code).unwrap(),
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Failure", "message": r.message, "reason": r.reason,
                           "code": r.code}),
                )
            }
            "PATCH" if path.ends_with("/status") => {
                // A write moves the resourceVersion, as every write does.
                let mut a = app.clone();
                a["status"] = body["status"].clone();
                a["metadata"]["resourceVersion"] = json!("101");
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

pub fn application(sample: &str) -> Value {
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

pub struct Harness {
    pub ctx: Arc<Context>,
    pub calls: Arc<Mutex<Vec<Call>>>,
    /// Writes the mocked API server refuses.
    pub refusals: Arc<Mutex<Vec<Refusal>>>,
    /// Whether the child stores were filled.
    preloaded: std::sync::atomic::AtomicBool,
}

impl Harness {
    pub fn new(app: &Value) -> Self {
        let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let refusals = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(api_server(
            handle,
            app.clone(),
            calls.clone(),
            refusals.clone(),
        ));
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
            refusals,
            preloaded: Default::default(),
        }
    }

    /// Reconcile `app` once, expecting success; returns the requests it sent.
    pub async fn reconcile(&self, app: &Value) -> Vec<Call> {
        let (result, calls) = self.try_reconcile(app).await;
        result.expect("reconcile succeeds");
        calls
    }

    /// Reconcile `app` once; returns its result and the requests it sent.
    pub async fn try_reconcile(
        &self,
        app: &Value,
    ) -> (
        controller::Result<kube::runtime::controller::Action>,
        Vec<Call>,
    ) {
        self.calls.lock().unwrap().clear();
        // The watches have listed (nothing, unless `preload` filled them), as they have before
        // the operator's first reconcile.
        if !self
            .preloaded
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            self.ctx.stores.preload(&[]);
        }
        let app: Application = serde_json::from_value(app.clone()).unwrap();
        let result = controller::reconcile(Arc::new(app), self.ctx.clone()).await;
        (result, self.calls.lock().unwrap().clone())
    }

    /// Fill every child store with `objects` (as the watches would have seen them).
    pub fn preload(&self, objects: &[Value]) {
        self.preloaded
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.ctx.stores.preload(objects);
    }
}

/// The children of `app` as the API server stores them after the first apply.
pub fn stored_children(app: &Value) -> Vec<Value> {
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

pub fn writes(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.is_write())
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}
