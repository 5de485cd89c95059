//! Shared by the API server stand-in tests: a small HTTP client, the recorded exchanges and
//! JSON normalisation for comparing answers with the recordings.
#![allow(dead_code)]

use bytes::Bytes;
use e2e::apiserver::{ApiServer, ServerOptions};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The recorded exchanges of a real Kubernetes 1.36 API server (`e2e/tests/recordings`, with
/// their README).
pub fn recordings_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/recordings")
}

/// One recorded exchange.
#[derive(Clone, Debug)]
pub struct Rec {
    pub file: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub body: Value,
    pub status: u16,
    pub headers: Map<String, Value>,
    pub resp: Value,
}

pub fn rec(file: &str) -> Rec {
    let path = recordings_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).expect("recording is JSON");
    let r = &v["request"];
    let s = &v["response"];
    Rec {
        file: file.into(),
        method: r["method"].as_str().unwrap_or("GET").into(),
        path: r["path"].as_str().unwrap_or("/").into(),
        query: r["query"].as_str().unwrap_or("").into(),
        content_type: r["content_type"].as_str().map(String::from),
        accept: r["accept"].as_str().map(String::from),
        body: r["body"].clone(),
        status: s["status"].as_u64().unwrap_or(0) as u16,
        headers: s["headers"].as_object().cloned().unwrap_or_default(),
        resp: s["body"].clone(),
    }
}

/// An upstream third-party CRD (see `e2e::harness::third_party_crds_dir`) as JSON. Tests that
/// call this are ignored when `KEELSON_THIRD_PARTY_CRDS` is not set (see `e2e/build.rs`).
pub fn third_party_crd(file: &str) -> Value {
    let text = e2e::harness::third_party_crd_text(file).unwrap_or_else(|e| panic!("{e:#}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {}", self.text))
    }
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).map(String::as_str)
    }
}

/// A test server and a client for it. Recorded uids are mapped to the uids this server gave
/// the same objects, so recorded bodies that refer to them stay meaningful.
pub struct Api {
    pub server: ApiServer,
    client: Client<HttpConnector, Full<Bytes>>,
    uids: Mutex<HashMap<String, String>>,
}

pub fn quick_options() -> ServerOptions {
    ServerOptions {
        controllers: true,
        workload_ready_delay: Duration::from_millis(100),
        gc_delay: Duration::from_millis(150),
    }
}

impl Api {
    pub async fn start(opts: ServerOptions) -> Api {
        let server = ApiServer::start(opts).await.expect("server starts");
        let client = Client::builder(TokioExecutor::new()).build_http();
        Api {
            server,
            client,
            uids: Mutex::new(HashMap::new()),
        }
    }

    /// With namespace `rec` created as recorded.
    pub async fn with_rec(opts: ServerOptions) -> Api {
        let api = Api::start(opts).await;
        let r = api.replay(&rec("misc/create-namespace-rec.json")).await;
        assert_eq!(r.status, 201, "{}", r.text);
        api
    }

    pub async fn request(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
        accept: Option<&str>,
    ) -> Resp {
        let uri = format!("{}{}", self.server.url(), path_and_query);
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("user-agent", "curl/8.5.0")
            .header("accept", accept.unwrap_or("application/json"));
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let resp = self.client.request(req).await.expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        Resp {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request("GET", path, None, None, None).await
    }

    pub async fn send_json(&self, method: &str, path: &str, ct: &str, body: &Value) -> Resp {
        let text = self.map_uids(&body.to_string());
        self.request(method, path, Some(ct), Some(text.into_bytes()), None)
            .await
    }

    pub async fn apply(&self, path: &str, manager: &str, body: &Value) -> Resp {
        self.send_json(
            "PATCH",
            &format!("{path}?fieldManager={manager}&force=true"),
            "application/apply-patch+yaml",
            body,
        )
        .await
    }

    fn map_uids(&self, text: &str) -> String {
        let mut t = text.to_string();
        for (from, to) in self.uids.lock().unwrap().iter() {
            t = t.replace(from, to);
        }
        t
    }

    /// Sends a recorded request (bodies with recorded uids mapped) and learns the uid of
    /// what it created.
    pub async fn replay(&self, r: &Rec) -> Resp {
        let pq = if r.query.is_empty() {
            r.path.clone()
        } else {
            format!("{}?{}", r.path, r.query)
        };
        let body = match &r.body {
            Value::Null => None,
            Value::String(s) => Some(self.map_uids(s).into_bytes()),
            v => Some(self.map_uids(&v.to_string()).into_bytes()),
        };
        let resp = self
            .request(
                &r.method,
                &pq,
                r.content_type.as_deref(),
                body,
                r.accept.as_deref(),
            )
            .await;
        if let (Some(rec_uid), Ok(v)) = (
            r.resp.pointer("/metadata/uid").and_then(Value::as_str),
            serde_json::from_str::<Value>(&resp.text),
        ) && let Some(uid) = v.pointer("/metadata/uid").and_then(Value::as_str)
        {
            self.uids
                .lock()
                .unwrap()
                .insert(rec_uid.to_string(), uid.to_string());
        }
        resp
    }

    /// Replays and checks the status code and the normalised body against the recording.
    pub async fn replay_check(&self, file: &str) -> Resp {
        let r = rec(file);
        let resp = self.replay(&r).await;
        assert_eq!(resp.status, r.status, "{file}: status; body {}", resp.text);
        if r.resp.is_string() {
            assert_eq!(resp.text, r.resp.as_str().unwrap(), "{file}");
        } else {
            assert_json_eq(&resp.json(), &r.resp, file);
        }
        resp
    }

    /// Lines of a watch, until the stream ends, `max` lines arrived or `limit` passed.
    pub async fn watch(
        &self,
        path_and_query: impl Into<String>,
        max: usize,
        limit: Duration,
    ) -> Vec<(Duration, Value)> {
        self.watch_accept(path_and_query, "application/json", max, limit)
            .await
    }

    pub async fn watch_accept(
        &self,
        path_and_query: impl Into<String>,
        accept: &str,
        max: usize,
        limit: Duration,
    ) -> Vec<(Duration, Value)> {
        let uri = format!("{}{}", self.server.url(), path_and_query.into());
        let req = hyper::Request::builder()
            .uri(uri)
            .header("accept", accept)
            .body(Full::new(Bytes::new()))
            .expect("request");
        let start = Instant::now();
        let resp = self.client.request(req).await.expect("watch");
        assert_eq!(resp.status().as_u16(), 200, "watch status");
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let left = limit.saturating_sub(start.elapsed());
            let frame = match tokio::time::timeout(left, body.frame()).await {
                Ok(Some(Ok(f))) => f,
                _ => break,
            };
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let l: Vec<u8> = buf.drain(..=pos).collect();
                    let v: Value = serde_json::from_slice(&l).expect("watch line is JSON");
                    out.push((start.elapsed(), v));
                    if out.len() >= max {
                        return out;
                    }
                }
            }
        }
        out
    }
}

fn uuid_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap()
    })
}

/// Replaces what legitimately differs between two servers: uids, resourceVersions, times,
/// allocated IPs, continue tokens, storage hashes.
pub fn norm(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                let key = uuid_re().replace_all(k, "<uid>").into_owned();
                let val = match (k.as_str(), x) {
                    ("resourceVersion", Value::String(_)) => json!("<rv>"),
                    ("uid", Value::String(_)) => json!("<uid>"),
                    (
                        "creationTimestamp" | "deletionTimestamp" | "time" | "lastTransitionTime"
                        | "lastUpdateTime",
                        Value::String(_),
                    ) => json!("<time>"),
                    ("clusterIP", Value::String(_)) => json!("<ip>"),
                    ("clusterIPs", Value::Array(_)) => json!(["<ip>"]),
                    ("continue", Value::String(s)) if !s.is_empty() => json!("<continue>"),
                    ("storageVersionHash", _) => json!("<hash>"),
                    ("serverAddress", _) => json!("<addr>"),
                    _ => norm(x),
                };
                out.insert(key, val);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(norm).collect()),
        Value::String(s) => Value::String(uuid_re().replace_all(s, "<uid>").into_owned()),
        other => other.clone(),
    }
}

pub fn assert_json_eq(actual: &Value, expected: &Value, what: &str) {
    let (a, e) = (norm(actual), norm(expected));
    if a != e {
        panic!(
            "{what}: answer differs from the recording\n--- actual\n{}\n--- recorded\n{}\n--- first difference: {}",
            serde_json::to_string_pretty(&a).unwrap(),
            serde_json::to_string_pretty(&e).unwrap(),
            first_diff(&a, &e, "")
        );
    }
}

fn first_diff(a: &Value, e: &Value, path: &str) -> String {
    match (a, e) {
        (Value::Object(am), Value::Object(em)) => {
            for (k, ev) in em {
                match am.get(k) {
                    None => return format!("{path}.{k} missing"),
                    Some(av) if av != ev => return first_diff(av, ev, &format!("{path}.{k}")),
                    _ => {}
                }
            }
            for k in am.keys() {
                if !em.contains_key(k) {
                    return format!("{path}.{k} unexpected");
                }
            }
            format!("{path}: ?")
        }
        (Value::Array(aa), Value::Array(ea)) if aa.len() == ea.len() => {
            for (i, (x, y)) in aa.iter().zip(ea).enumerate() {
                if x != y {
                    return first_diff(x, y, &format!("{path}[{i}]"));
                }
            }
            format!("{path}: ?")
        }
        _ => format!("{path}: {a} != {e}"),
    }
}

/// Removes what only the cluster's own controllers write (Deployment status, the revision
/// annotation, their managedFields entries) so objects compare without them.
pub fn without_controller(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(a) = md.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("deployment.kubernetes.io/revision");
            if a.is_empty() {
                md.remove("annotations");
            }
        }
        if let Some(mf) = md.get_mut("managedFields").and_then(Value::as_array_mut) {
            mf.retain(|e| e["manager"] != "kube-controller-manager");
        }
    }
    v
}

pub fn rv(v: &Value) -> u64 {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Polls until `f` holds or the deadline passes.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
