//! The HTTP surface: routing, content negotiation, fault injection, statistics and watch
//! streams.

use super::engine::{
    Ctx, DeleteOpts, EventType, ListQuery, MetaJson, Past, State, Write, now, serves_scale,
    to_view, view_kind,
};
use super::resources::{ResourceDef, View};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{
    ApiError, Cause, bad_request, invalid_options, method_not_allowed, not_found_resource,
    unsupported_media_type,
};
use super::{Shared, builtin, discovery};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use bytes::Bytes;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

pub async fn serve(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(shared.clone());
    let mut shutdown = shared.shutdown.subscribe();
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await;
}

fn json_response(code: u16, body: &impl Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from(bytes))
        .expect("response")
}

fn error_response(e: &ApiError) -> Response<Body> {
    if e.plain_text {
        return Response::builder()
            .status(e.code)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache, private")
            .header("x-content-type-options", "nosniff")
            .body(Body::from(e.body.as_str().unwrap_or("").to_string()))
            .expect("response");
    }
    let mut r = json_response(e.code, &e.body);
    if let Some(s) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// A stored object as an endpoint serialises it, without copying it.
struct Out<'a> {
    obj: &'a Value,
    api_version: Option<&'a str>,
    strip_type_meta: bool,
}

impl Serialize for Out<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(m) = self.obj.as_object() else {
            return self.obj.serialize(s);
        };
        let mut map = s.serialize_map(None)?;
        for (k, v) in m {
            match k.as_str() {
                "apiVersion" | "kind" if self.strip_type_meta => continue,
                "apiVersion" if self.api_version.is_some() => {
                    map.serialize_entry(k, &self.api_version)?;
                }
                "metadata" => map.serialize_entry(k, &MetaJson(v))?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

/// Serialises stored objects through an endpoint's view.
fn present(def: &ResourceDef, obj: &Value, in_list: bool) -> Value {
    let strip = in_list && def.builtin;
    if def.view == View::EventsV1 {
        let mut v = to_view(def, obj);
        if strip && let Some(m) = v.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
        return v;
    }
    let av = def.api_version();
    serde_json::to_value(Out {
        obj,
        api_version: if def.builtin { None } else { Some(&av) },
        strip_type_meta: strip,
    })
    .unwrap_or(Value::Null)
}

/// The metadata-only form clients ask for with `as=PartialObjectMetadata[List]`.
fn meta_only(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
    "metadata": obj.get("metadata").map_or_else(|| json!({}), |m| {
        serde_json::to_value(MetaJson(m)).unwrap_or_else(|_| json!({}))
    })})
}

fn wants_metadata(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata") && a.contains("g=meta.k8s.io"))
}

enum Route {
    Version,
    ApiVersions,
    ApiGroupList,
    ApiGroup(String),
    ResourceList(String, String),
    Resource {
        def: Arc<ResourceDef>,
        ns: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
}

fn route(st: &State, path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["api"] => return Ok(Route::ApiVersions),
        ["apis"] => return Ok(Route::ApiGroupList),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g] => {
            return if st.defs.keys().any(|(dg, _, _)| dg == g) {
                Ok(Route::ApiGroup(g.to_string()))
            } else {
                Err(ApiError::page_not_found())
            };
        }
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::page_not_found()),
    };
    if !st.serves_group_version(group, version) {
        return Err(ApiError::page_not_found());
    }
    if rest.is_empty() {
        return Ok(Route::ResourceList(group.into(), version.into()));
    }
    let lookup = |plural: &str| {
        st.def(group, version, plural)
            .ok_or_else(not_found_resource)
    };
    let r = |def, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| Route::Resource {
        def,
        ns: ns.map(String::from),
        name: name.map(String::from),
        sub: sub.map(String::from),
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..]
            if !(group.is_empty()
                && matches!(*plural, "status" | "finalize")
                && tail.is_empty()) =>
        {
            let def = lookup(plural)?;
            if !def.namespaced {
                return Err(not_found_resource());
            }
            match tail {
                [] => Ok(r(def, Some(ns), None, None)),
                [name] => Ok(r(def, Some(ns), Some(name), None)),
                [name, sub] => Ok(r(def, Some(ns), Some(name), Some(sub))),
                _ => Err(not_found_resource()),
            }
        }
        [plural, tail @ ..] => {
            let def = lookup(plural)?;
            match tail {
                [] => Ok(r(def, None, None, None)),
                [name] if !def.namespaced => Ok(r(def, None, Some(name), None)),
                [name, sub] if !def.namespaced => Ok(r(def, None, Some(name), Some(sub))),
                _ => Err(not_found_resource()),
            }
        }
        [] => unreachable!("handled above"),
    }
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn is_true(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1"))
}

fn record(shared: &Shared, verb: &str, resource: Option<&str>, code: u16, wrote: bool) {
    let mut s = shared.stats.lock().expect("stats");
    s.requests += 1;
    if !verb.is_empty() {
        *s.by_verb.entry(verb.to_string()).or_default() += 1;
    }
    if let Some(r) = resource {
        *s.by_resource.entry(r.to_string()).or_default() += 1;
    }
    *s.by_status.entry(code).or_default() += 1;
    if wrote {
        s.writes += 1;
    }
}

async fn handle(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    req: Request<Body>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let q = parse_query(parts.uri.query());
    let routed = {
        let st = shared.state.lock().expect("state");
        route(&st, &path)
    };
    let route = match routed {
        Ok(r) => r,
        Err(e) => {
            record(&shared, "", None, e.code, false);
            return error_response(&e);
        }
    };
    let Route::Resource { def, ns, name, sub } = route else {
        let resp = discovery_response(&shared, route, &parts.headers);
        record(&shared, "", None, resp.status().as_u16(), false);
        return resp;
    };
    let verb = match (&parts.method, name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if is_true(&q, "watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "",
    };
    let res_key = def.stats_key();
    let full = match sub.as_deref() {
        Some(sub) => format!("{verb} {res_key}/{sub}"),
        None => format!("{verb} {res_key}"),
    };
    if !verb.is_empty() {
        let agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut stats = shared.stats.lock().expect("stats");
        *stats
            .by_agent
            .entry(agent)
            .or_default()
            .entry(full.clone())
            .or_default() += 1;
        *stats.by_verb_resource.entry(full.clone()).or_default() += 1;
    }
    let sub_served = |s: &str| {
        let scale_verb = matches!(verb, "get" | "update" | "patch");
        (s == "status" && def.status) || (s == "scale" && serves_scale(&def) && scale_verb)
    };
    if verb.is_empty() || sub.as_deref().is_some_and(|s| !sub_served(s)) {
        let e = if verb.is_empty() {
            method_not_allowed()
        } else {
            not_found_resource()
        };
        record(&shared, verb, Some(&res_key), e.code, false);
        return error_response(&e);
    }
    if verb != "watch"
        && let Some(e) = shared.faults.injected_error()
    {
        record(&shared, verb, Some(&res_key), e.code, false);
        return error_response(&e);
    }
    let bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => {
            let e = bad_request(format!("reading the body: {e}"));
            record(&shared, verb, Some(&res_key), e.code, false);
            return error_response(&e);
        }
    };
    let req = Req {
        def,
        ns: ns.unwrap_or_default(),
        name: name.unwrap_or_default(),
        sub,
        q,
        headers: parts.headers,
        body: bytes,
    };
    if verb == "watch" {
        return match watch(&shared, &req) {
            Ok(resp) => {
                record(&shared, verb, Some(&res_key), 200, false);
                resp
            }
            Err(e) => {
                record(&shared, verb, Some(&res_key), e.code, false);
                error_response(&e)
            }
        };
    }
    if verb == "list" {
        return match list(&shared, &req) {
            Ok(resp) => {
                record(&shared, verb, Some(&res_key), 200, false);
                resp
            }
            Err(e) => {
                record(&shared, verb, Some(&res_key), e.code, false);
                error_response(&e)
            }
        };
    }
    Shared::take_held();
    let (result, wrote) = dispatch(&shared, verb, &req);
    let held = Shared::take_held().as_secs_f64();
    *shared
        .stats
        .lock()
        .expect("stats")
        .lock_seconds
        .entry(full)
        .or_default() += held;
    match result {
        Ok((code, body)) => {
            record(&shared, verb, Some(&res_key), code, wrote);
            let mut resp = json_response(code, &body);
            if let Some(kind) = body.get("kind").and_then(Value::as_str)
                && kind.starts_with("PartialObjectMetadata")
            {
                let ct = format!("application/json;as={kind};g=meta.k8s.io;v=v1");
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_str(&ct).expect("header"),
                );
            }
            resp
        }
        Err(e) => {
            record(&shared, verb, Some(&res_key), e.code, wrote);
            error_response(&e)
        }
    }
}

fn discovery_response(shared: &Shared, route: Route, headers: &HeaderMap) -> Response<Body> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let aggregated = accept
        .split(',')
        .map(str::trim)
        .find(|a| a.contains("as=APIGroupDiscoveryList") && a.contains("g=apidiscovery.k8s.io"))
        .map(|a| {
            if a.contains("v=v2beta1") {
                "v2beta1"
            } else {
                "v2"
            }
        });
    let st = shared.state.lock().expect("state");
    let body = match (&route, aggregated) {
        (Route::Version, _) => discovery::version(),
        (Route::ApiVersions, Some(v)) | (Route::ApiGroupList, Some(v)) => {
            let av = format!("apidiscovery.k8s.io/{v}");
            let body = discovery::aggregated(&st, matches!(route, Route::ApiVersions), &av);
            drop(st);
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            return Response::builder()
                .status(200)
                .header(
                    header::CONTENT_TYPE,
                    format!(
                        "application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"
                    ),
                )
                .header(header::CACHE_CONTROL, "public")
                .header(header::ETAG, format!("\"{:016X}\"", h.finish()))
                .header(header::VARY, "Accept")
                .body(Body::from(bytes))
                .expect("response");
        }
        (Route::ApiVersions, None) => discovery::api_versions(&shared.addr.to_string()),
        (Route::ApiGroupList, None) => discovery::api_group_list(&st),
        (Route::ApiGroup(g), _) => match discovery::api_group(&st, g) {
            Some(b) => b,
            None => return error_response(&ApiError::page_not_found()),
        },
        (Route::ResourceList(g, v), _) => match discovery::resource_list(&st, g, v) {
            Some(b) => b,
            None => return error_response(&ApiError::page_not_found()),
        },
        (Route::Resource { .. }, _) => unreachable!("not discovery"),
    };
    json_response(200, &body)
}

struct Req {
    def: Arc<ResourceDef>,
    ns: String,
    name: String,
    sub: Option<String>,
    q: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Req {
    fn content_type(&self) -> String {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    fn manager(&self) -> String {
        if let Some(m) = self.q.get("fieldManager").filter(|m| !m.is_empty()) {
            return m.clone();
        }
        let ua = self
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let prefix = ua.split('/').next().unwrap_or("").trim();
        if prefix.is_empty() {
            "unknown".into()
        } else {
            prefix.to_string()
        }
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            manager: self.manager(),
            subresource: self.sub.clone(),
            dry_run: self.q.get("dryRun").is_some_and(|d| d == "All"),
            now: now(),
        }
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let snippet: String = String::from_utf8_lossy(&self.body).chars().take(30).collect();
            let what = if e.is_eof() {
                "unexpected end of JSON input".to_string()
            } else {
                e.to_string()
            };
            bad_request(format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {what} ({snippet} ...)",
                self.def.kind
            ))
        })
    }

    fn namespace(&self) -> Option<&str> {
        if self.def.namespaced && !self.ns.is_empty() {
            Some(&self.ns)
        } else {
            None
        }
    }
}

type Answer = Result<(u16, Value), ApiError>;

fn dispatch(shared: &Shared, verb: &str, req: &Req) -> (Answer, bool) {
    let def = req.def.clone();
    let (answer, writes) = match verb {
        "get" => (get(shared, req), 0),
        "create" => match req.json_body() {
            Ok(body) => {
                let ctx = req.ctx();
                shared.with_state(|st| {
                    st.write(&def, &req.ns, "", Write::Create(body), &ctx)
                        .map(|w| (w.code, w.obj))
                })
            }
            Err(e) => (Err(e), 0),
        },
        "update" => match req.json_body() {
            Ok(body) => write(shared, req, Write::Replace(body)),
            Err(e) => (Err(e), 0),
        },
        "patch" => patch(shared, req),
        "delete" => delete(shared, req),
        "deletecollection" => delete_collection(shared, req),
        _ => (Err(method_not_allowed()), 0),
    };
    (answer, writes > 0)
}

/// PUT or PATCH of an object, its status or its scale.
fn write(shared: &Shared, req: &Req, op: Write) -> (Answer, u64) {
    let ctx = req.ctx();
    let def = &req.def;
    shared.with_state(|st| {
        let written = if req.sub.as_deref() == Some("scale") {
            st.scale_write(def, &req.ns, &req.name, op, &ctx)
        } else {
            st.write(def, &req.ns, &req.name, op, &ctx)
        };
        written.map(|w| (w.code, w.obj))
    })
}

fn get(shared: &Shared, req: &Req) -> Answer {
    if req.sub.as_deref() == Some("scale") {
        let st = shared.state.lock().expect("state");
        return st.scale_get(&req.def, &req.ns, &req.name).map(|s| (200, s));
    }
    let st = shared.state.lock().expect("state");
    let obj = st
        .get_stored(&req.def, &req.ns, &req.name)
        .ok_or_else(|| req.def.res().not_found(&req.name))?;
    drop(st);
    if wants_metadata(&req.headers) {
        return Ok((200, meta_only(&obj)));
    }
    Ok((200, present(&req.def, &obj, false)))
}

fn list_query(q: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let label = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(bad_request)?;
    let field = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(bad_request)?;
    Ok(ListQuery {
        label,
        field,
        limit: q.get("limit").and_then(|l| l.parse().ok()),
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
        resource_version: q
            .get("resourceVersion")
            .filter(|r| !r.is_empty())
            .map(|r| r.parse::<u64>())
            .transpose()
            .map_err(|_| bad_request("resourceVersion: Invalid value: not a number"))?,
        rv_match: q.get("resourceVersionMatch").cloned(),
    })
}

/// A list item: borrowed from the store where the stored form is served as is.
enum Item<'a> {
    Stored(Out<'a>),
    Owned(Value),
}

impl Serialize for Item<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Item::Stored(o) => o.serialize(s),
            Item::Owned(v) => v.serialize(s),
        }
    }
}

#[derive(Serialize)]
struct ListOut<'a> {
    kind: &'a str,
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    metadata: serde_json::Map<String, Value>,
    items: Vec<Item<'a>>,
}

/// LIST, serialised straight from the stored objects.
fn list(shared: &Shared, req: &Req) -> Result<Response<Body>, ApiError> {
    let query = list_query(&req.q)?;
    let def = &req.def;
    let result = {
        let st = shared.state.lock().expect("state");
        st.list(def, req.namespace(), &query)?
    };
    let meta = wants_metadata(&req.headers);
    let av = def.api_version();
    let items: Vec<Item> = result
        .items
        .iter()
        .map(|o| {
            if meta {
                Item::Owned(meta_only(o))
            } else if def.view == View::EventsV1 {
                Item::Owned(present(def, o, true))
            } else {
                Item::Stored(Out {
                    obj: o,
                    api_version: if def.builtin { None } else { Some(&av) },
                    strip_type_meta: def.builtin,
                })
            }
        })
        .collect();
    let mut md = serde_json::Map::new();
    md.insert("resourceVersion".into(), json!(result.rv.to_string()));
    match &result.continue_token {
        Some(c) => {
            md.insert("continue".into(), json!(c));
        }
        None if !def.builtin => {
            md.insert("continue".into(), json!(""));
        }
        None => {}
    }
    if let Some(r) = result.remaining {
        md.insert("remainingItemCount".into(), json!(r));
    }
    let (kind, api_version) = if meta {
        ("PartialObjectMetadataList", "meta.k8s.io/v1")
    } else {
        (def.list_kind.as_str(), av.as_str())
    };
    let mut resp = json_response(
        200,
        &ListOut {
            kind,
            api_version,
            metadata: md,
            items,
        },
    );
    if meta {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            ),
        );
    }
    Ok(resp)
}

fn parse_body(req: &Req) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(&req.body).map_err(|e| bad_request(e.to_string()))?;
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    serde_norway::from_str::<Value>(text)
        .map_err(|e| bad_request(format!("error decoding YAML: {e}")))
}

fn patch(shared: &Shared, req: &Req) -> (Answer, u64) {
    let def = req.def.clone();
    let ct = req.content_type();
    let op = match ct.as_str() {
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            if !req.q.contains_key("fieldManager") || req.q["fieldManager"].is_empty() {
                return (
                    Err(invalid_options(
                        "PatchOptions",
                        Cause::required_msg("fieldManager", "is required for apply patch"),
                    )),
                    0,
                );
            }
            if let Some(e) = shared.faults.injected_conflict() {
                return (Err(e), 0);
            }
            match parse_body(req) {
                Ok(cfg) => Write::Apply {
                    cfg,
                    force: is_true(&req.q, "force"),
                },
                Err(e) => return (Err(e), 0),
            }
        }
        "application/merge-patch+json" => match serde_json::from_slice(&req.body) {
            Ok(p) => Write::MergePatch(p),
            Err(e) => return (Err(bad_request(format!("error decoding patch: {e}"))), 0),
        },
        "application/strategic-merge-patch+json" if def.builtin => {
            match serde_json::from_slice(&req.body) {
                Ok(p) => Write::StrategicPatch(p),
                Err(e) => return (Err(bad_request(format!("error decoding patch: {e}"))), 0),
            }
        }
        "application/strategic-merge-patch+json" => {
            return (
                Err(ApiError::status(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                    Some(json!({})),
                )),
                0,
            );
        }
        "application/json-patch+json" => match serde_json::from_slice(&req.body) {
            Ok(p) => Write::JsonPatch(p),
            Err(e) => return (Err(bad_request(format!("error decoding patch: {e}"))), 0),
        },
        _ => return (Err(unsupported_media_type()), 0),
    };
    write(shared, req, op)
}

fn delete_opts(req: &Req) -> Result<DeleteOpts, ApiError> {
    let mut opts = DeleteOpts {
        propagation: req.q.get("propagationPolicy").cloned(),
        grace: req.q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()),
        dry_run: req.q.get("dryRun").is_some_and(|d| d == "All"),
        ..Default::default()
    };
    if !req.body.is_empty() {
        let b: Value = serde_json::from_slice(&req.body)
            .map_err(|e| bad_request(format!("error decoding DeleteOptions: {e}")))?;
        if let Some(g) = b.get("gracePeriodSeconds").and_then(Value::as_i64) {
            opts.grace = Some(g);
        }
        if let Some(p) = b.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation = Some(p.to_string());
        }
        if b.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            opts.propagation = Some("Orphan".into());
        }
        if let Some(pre) = b.get("preconditions") {
            opts.uid = pre.get("uid").and_then(Value::as_str).map(String::from);
            opts.rv = pre
                .get("resourceVersion")
                .and_then(Value::as_str)
                .map(String::from);
        }
        if b.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| !d.is_empty())
        {
            opts.dry_run = true;
        }
    }
    if let Some(p) = &opts.propagation
        && !matches!(p.as_str(), "Background" | "Foreground" | "Orphan")
    {
        return Err(ApiError::status(
            422,
            "Invalid",
            format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
            ),
            Some(json!({"group": "meta.k8s.io", "kind": "DeleteOptions"})),
        ));
    }
    Ok(opts)
}

fn delete(shared: &Shared, req: &Req) -> (Answer, u64) {
    let opts = match delete_opts(req) {
        Ok(o) => o,
        Err(e) => return (Err(e), 0),
    };
    let now = now();
    shared.with_state(|st| st.delete(&req.def, &req.ns, &req.name, &opts, &now))
}

fn delete_collection(shared: &Shared, req: &Req) -> (Answer, u64) {
    let opts = match delete_opts(req) {
        Ok(o) => o,
        Err(e) => return (Err(e), 0),
    };
    let query = match list_query(&req.q) {
        Ok(q) => q,
        Err(e) => return (Err(e), 0),
    };
    let now = now();
    let def = req.def.clone();
    shared.with_state(|st| {
        let listed = st.list(&def, req.namespace(), &query)?;
        let mut items = Vec::new();
        for o in listed.items {
            let ns = o["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
            if st.delete(&def, &ns, &name, &opts, &now).is_ok() {
                items.push(present(&def, &o, true));
            }
        }
        Ok((
            200,
            json!({"kind": def.list_kind, "apiVersion": def.api_version(),
                   "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
        ))
    })
}

/// Filters of one watch.
struct WatchFilter {
    /// Metadata-only objects (`as=PartialObjectMetadata`).
    meta: bool,
    ns: Option<String>,
    label: LabelSelector,
    field: FieldSelector,
    /// Neither a label nor a field selector was given.
    unselective: bool,
}

impl WatchFilter {
    /// Whether this watch sends objects in their stored form, byte for byte: full objects of
    /// a built-in kind, or of a custom resource through the version it is stored in.
    fn sends_stored_form(&self, def: &ResourceDef, obj: &Value) -> bool {
        !self.meta
            && def.view == View::Plain
            && (def.builtin
                || obj.get("apiVersion").and_then(Value::as_str) == Some(&def.api_version()))
    }

    /// One watch event line, serialised straight from the stored object, or made of `stored`
    /// (the object serialised once for every watch) where this watch sends the stored form.
    fn event(&self, ty: &str, def: &ResourceDef, obj: &Value, stored: Option<&Bytes>) -> Bytes {
        let stored = stored.filter(|_| self.sends_stored_form(def, obj));
        let mut buf = Vec::with_capacity(stored.map_or(2048, |j| j.len() + 32));
        buf.extend_from_slice(b"{\"type\":\"");
        buf.extend_from_slice(ty.as_bytes());
        buf.extend_from_slice(b"\",\"object\":");
        let written = if let Some(j) = stored {
            buf.extend_from_slice(j);
            Ok(())
        } else if self.meta {
            serde_json::to_writer(&mut buf, &meta_only(obj))
        } else if def.view == View::EventsV1 {
            serde_json::to_writer(&mut buf, &to_view(def, obj))
        } else {
            let av = def.api_version();
            serde_json::to_writer(
                &mut buf,
                &Out {
                    obj,
                    api_version: if def.builtin { None } else { Some(&av) },
                    strip_type_meta: false,
                },
            )
        };
        written.expect("serialising JSON values cannot fail");
        buf.extend_from_slice(b"}\n");
        Bytes::from(buf)
    }

    fn matches(&self, def: &ResourceDef, obj: &Value) -> bool {
        if let Some(ns) = &self.ns
            && obj["metadata"]["namespace"].as_str() != Some(ns)
        {
            return false;
        }
        if !self.label.matches(obj) {
            return false;
        }
        if self.field.is_empty() {
            return true;
        }
        if def.view == View::EventsV1 {
            return self.field.matches(&to_view(def, obj));
        }
        self.field.matches(obj)
    }
}

fn bookmark(def: &ResourceDef, rv: u64, initial_end: bool, meta: bool) -> Value {
    let mut md = serde_json::Map::new();
    md.insert("resourceVersion".into(), json!(rv.to_string()));
    if initial_end {
        md.insert(
            "annotations".into(),
            json!({"k8s.io/initial-events-end": "true"}),
        );
    }
    if meta {
        return json!({"type": "BOOKMARK", "object": {"kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1", "metadata": md}});
    }
    let mut obj = if def.builtin {
        builtin::zero(&view_kind(def))
    } else {
        json!({})
    };
    let m = obj.as_object_mut().expect("object");
    m.insert("kind".into(), json!(def.kind));
    m.insert("apiVersion".into(), json!(def.api_version()));
    m.insert("metadata".into(), Value::Object(md));
    json!({"type": "BOOKMARK", "object": obj})
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn watch(shared: &Arc<Shared>, req: &Req) -> Result<Response<Body>, ApiError> {
    let q = &req.q;
    let query = list_query(q)?;
    let def = req.def.clone();
    let filter = WatchFilter {
        meta: wants_metadata(&req.headers),
        ns: req.namespace().map(String::from),
        label: query.label,
        field: query.field,
        unselective: ["labelSelector", "fieldSelector"]
            .iter()
            .all(|k| q.get(*k).is_none_or(|v| v.trim().is_empty())),
    };
    let bookmarks = is_true(q, "allowWatchBookmarks");
    let send_initial = is_true(q, "sendInitialEvents");
    let rv_param = q.get("resourceVersion").filter(|r| !r.is_empty()).cloned();
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let start_rv: Option<u64> = match &rv_param {
        Some(r) => Some(
            r.parse()
                .map_err(|_| bad_request(format!("invalid resource version: {r}")))?,
        ),
        None => None,
    };

    let mut lines: Vec<Bytes> = Vec::new();
    let mut missed: Vec<Past> = Vec::new();
    let mut expired = false;
    let rx: broadcast::Receiver<Arc<super::engine::Event>>;
    {
        let mut st = shared.state.lock().expect("state");
        st.prune_history(&def.store_key);
        let bucket = st.bucket(&def.store_key).ok_or_else(not_found_resource)?;
        rx = bucket.tx.subscribe();
        let initial = send_initial || matches!(start_rv, None | Some(0));
        if initial {
            for obj in bucket.objects.values() {
                if filter.matches(&def, obj) {
                    lines.push(filter.event("ADDED", &def, obj, None));
                }
            }
            if bookmarks {
                lines.push(line(&bookmark(&def, st.rv, true, filter.meta)));
            }
        } else if let Some(from) = start_rv {
            if from < bucket.compacted_rv {
                expired = true;
                lines.push(line(&json!({"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("too old resource version: {from} ({})", bucket.compacted_rv + 1),
                    "reason": "Expired", "code": 410}})));
            } else {
                let first = bucket.history.partition_point(|e| e.rv <= from);
                missed.extend(bucket.history.range(first..).cloned());
            }
        }
    }

    let (tx, body_rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let shared2 = shared.clone();
    tokio::spawn(async move {
        let mut sent: u64 = 0;
        let drop_after = shared2.faults.watch_drop_after();
        let count = |n: u64| shared2.stats.lock().expect("stats").watch_events += n;
        // Missed events are parsed back outside the state lock (history holds JSON only).
        lines.extend(missed.iter().filter_map(|p| past_line(&def, &filter, p)));
        drop(missed);
        let synthetic = lines.len() as u64;
        for l in lines {
            if tx.send(Ok(l)).await.is_err() {
                return;
            }
        }
        count(synthetic);
        sent += synthetic;
        if expired {
            return;
        }
        run_watch(
            shared2.clone(),
            def,
            filter,
            rx,
            tx,
            timeout,
            bookmarks,
            sent,
            drop_after,
        )
        .await;
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(body_rx);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .expect("response"))
}

fn event_line(def: &ResourceDef, filter: &WatchFilter, ev: &super::engine::Event) -> Option<Bytes> {
    change_line(
        def,
        filter,
        ev.ty,
        &ev.obj,
        ev.prev.as_deref(),
        Some(&ev.json),
    )
}

/// A past event from history as this watch sees it.
fn past_line(def: &ResourceDef, filter: &WatchFilter, past: &Past) -> Option<Bytes> {
    let obj: Value = serde_json::from_slice(&past.json).expect("history holds JSON");
    // Without selectors the object matched before exactly when it matches now.
    let parsed: Option<Value> = match &past.prev_json {
        Some(j) if !filter.unselective => {
            Some(serde_json::from_slice(j).expect("history holds JSON"))
        }
        _ => None,
    };
    let prev = match &past.prev_json {
        Some(_) => Some(parsed.as_ref().unwrap_or(&obj)),
        None => None,
    };
    change_line(def, filter, past.ty, &obj, prev, Some(&past.json))
}

/// The line of one change for this watch, if it sees the change: an object entering the
/// selection is ADDED, one leaving it DELETED.
fn change_line(
    def: &ResourceDef,
    filter: &WatchFilter,
    ty: EventType,
    obj: &Value,
    prev: Option<&Value>,
    stored: Option<&Bytes>,
) -> Option<Bytes> {
    let now = filter.matches(def, obj);
    let before = prev.is_some_and(|p| filter.matches(def, p));
    let ty = match ty {
        EventType::Added if now => EventType::Added,
        EventType::Deleted if now || before => EventType::Deleted,
        EventType::Modified => match (before, now) {
            (true, true) => EventType::Modified,
            (false, true) => EventType::Added,
            (true, false) => EventType::Deleted,
            (false, false) => return None,
        },
        _ => return None,
    };
    Some(filter.event(ty.as_str(), def, obj, stored))
}

#[allow(clippy::too_many_arguments)]
async fn run_watch(
    shared: Arc<Shared>,
    def: Arc<ResourceDef>,
    filter: WatchFilter,
    mut rx: broadcast::Receiver<Arc<super::engine::Event>>,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    timeout: Duration,
    bookmarks: bool,
    mut sent: u64,
    drop_after: Option<u64>,
) {
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    // A bookmark about two seconds before the timeout (as recorded), and one a minute.
    let mut next_bookmark = if timeout >= Duration::from_secs(10) {
        (start + Duration::from_secs(60)).min(deadline - Duration::from_secs(2))
    } else {
        deadline + Duration::from_secs(1)
    };
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        if drop_after.is_some_and(|n| sent >= n) {
            shared.faults.count_dropped_watch();
            return;
        }
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    if let Some(l) = event_line(&def, &filter, &ev) {
                        if tx.send(Ok(l)).await.is_err() {
                            return;
                        }
                        sent += 1;
                        shared.stats.lock().expect("stats").watch_events += 1;
                    }
                }
                // Lagging behind or the resource went away: end the stream; clients re-watch.
                Err(_) => return,
            },
            _ = tokio::time::sleep_until(next_bookmark), if bookmarks => {
                let rv = shared.state.lock().expect("state").rv;
                if tx.send(Ok(line(&bookmark(&def, rv, false, filter.meta)))).await.is_err() {
                    return;
                }
                shared.stats.lock().expect("stats").watch_events += 1;
                next_bookmark = (tokio::time::Instant::now() + Duration::from_secs(60))
                    .min(deadline - Duration::from_secs(2).min(timeout / 2));
                if next_bookmark <= tokio::time::Instant::now() {
                    next_bookmark = deadline + Duration::from_secs(1);
                }
            }
            _ = tokio::time::sleep_until(deadline) => return,
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
            _ = tx.closed() => return,
        }
    }
}
