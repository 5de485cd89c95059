//! Fault injection, switchable at run time.
//!
//! The same [`Faults`] drive two injectors:
//! - the in-process API server answers a share of requests with errors and ends watch streams
//!   early (see [`crate::apiserver::ApiServer::faults`]);
//! - [`FaultLayer`], a client-side middleware in the operator's own `kube::Client`, does the same
//!   in front of any API server, so the fault scenario also runs against a real cluster. Its
//!   answers are the API server's own `Status` bodies; a dropped watch is the response stream
//!   ending after a number of events, as when a connection to the API server is cut.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt as _;
use kube::client::{Body, DynBody};
use serde_json::json;
use tower::{BoxError, Layer, Service};

use crate::apiserver::status::{ApiError, internal, too_many_requests};

/// Runtime-switchable faults.
#[derive(Debug, Default)]
pub struct Faults {
    error_rate: AtomicU64,
    apply_conflict_rate: AtomicU64,
    /// 0: off; n + 1: end watch streams after n events.
    watch_drop_after: AtomicU64,
    errors: AtomicU64,
    conflicts: AtomicU64,
    dropped_watches: AtomicU64,
    /// An API group whose discovery answers 404, as when an aggregated API or a CRD's group is
    /// briefly not served.
    undiscovered: std::sync::Mutex<Option<String>>,
    /// A resource (plural, e.g. `deployments`) every request of which is refused 403, as RBAC
    /// refuses an identity without a grant.
    forbidden: std::sync::Mutex<Option<String>>,
    /// A resource whose writes wait (see [`Faults::set_held`]).
    held: std::sync::Mutex<Option<String>>,
    /// Wakes the held writes when the hold ends.
    unheld: tokio::sync::Notify,
    /// Writes waiting now.
    waiting: AtomicU64,
    /// Held writes sent on once the hold ended.
    sent_after_hold: AtomicU64,
}

/// How many faults were injected, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Injected {
    /// Requests answered 500 or 429.
    pub errors: u64,
    /// Applies answered 409 Conflict.
    pub conflicts: u64,
    /// Watch streams ended early.
    pub dropped_watches: u64,
}

impl Injected {
    /// Every fault, whatever its kind.
    pub fn total(&self) -> u64 {
        self.errors + self.conflicts + self.dropped_watches
    }
}

impl Faults {
    /// Share of non-watch requests answered 500 (half) or 429 with `Retry-After: 1` (half).
    pub fn set_error_rate(&self, ratio: f64) {
        self.error_rate
            .store(ratio.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    /// Share of apply PATCHes answered 409 Conflict.
    pub fn set_apply_conflict_rate(&self, ratio: f64) {
        self.apply_conflict_rate
            .store(ratio.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    /// End each watch stream after this many events (the client must re-watch).
    pub fn set_watch_drop_after(&self, events: Option<u32>) {
        self.watch_drop_after
            .store(events.map(|n| n as u64 + 1).unwrap_or(0), Ordering::Relaxed);
    }

    /// Turn every fault off.
    pub fn clear(&self) {
        self.set_error_rate(0.0);
        self.set_apply_conflict_rate(0.0);
        self.set_watch_drop_after(None);
    }

    /// Answer discovery of API group `group` (`GET /apis/<group>` and `/apis/<group>/<version>`)
    /// with 404 until called again with `None`; its objects stay served.
    pub fn set_undiscovered(&self, group: Option<&str>) {
        *self.undiscovered.lock().expect("lock") = group.map(str::to_string);
    }

    /// Refuse every request on resource `resource` (plural, any group, e.g. `applications`)
    /// with RBAC's 403 until called again with `None`, as a real API server answers an identity
    /// that lacks the grant (recorded in `errors/403-sa-without-roles-*.json`). Only the
    /// [`FaultLayer`] (the operator's own client) applies it.
    pub fn set_forbidden(&self, resource: Option<&str>) {
        *self.forbidden.lock().expect("lock") = resource.map(str::to_string);
    }

    /// Hold every write (any method but GET) of resource `resource` (plural, e.g.
    /// `deployments`) in the client, unsent, until called again with `None`, which sends the
    /// held writes on: a slow API server, as the client sees one. A held write whose caller
    /// gives up (drops its request) is never sent. Only the [`FaultLayer`] applies it.
    pub fn set_held(&self, resource: Option<&str>) {
        *self.held.lock().expect("lock") = resource.map(str::to_string);
        if resource.is_none() {
            self.unheld.notify_waiters();
        }
    }

    /// How many writes are held now.
    pub fn held_now(&self) -> u64 {
        self.waiting.load(Ordering::SeqCst)
    }

    /// How many held writes were sent on when their hold ended.
    pub fn sent_after_hold(&self) -> u64 {
        self.sent_after_hold.load(Ordering::SeqCst)
    }

    fn holds<B>(&self, req: &Request<B>) -> bool {
        let held = self.held.lock().expect("lock");
        held.as_deref().is_some_and(|resource| {
            req.method() != Method::GET && Target::of(req).is_some_and(|t| t.resource == resource)
        })
    }

    /// RBAC's 403 for a request on the forbidden resource.
    fn forbidden_answer<B>(&self, req: &Request<B>) -> Option<ApiError> {
        let resource = self.forbidden.lock().expect("lock").clone()?;
        let target = Target::of(req)?;
        if target.resource != resource {
            return None;
        }
        let verb = match (req.method().as_str(), target.name.is_some()) {
            ("GET", _) if is_watch(req) => "watch",
            ("GET", true) => "get",
            ("GET", false) => "list",
            ("POST", _) => "create",
            ("PATCH", _) => "patch",
            ("PUT", _) => "update",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            _ => return None,
        };
        let qualified = if target.group.is_empty() {
            resource.clone()
        } else {
            format!("{resource}.{}", target.group)
        };
        let name = target
            .name
            .as_deref()
            .map(|n| format!(" {n:?}"))
            .unwrap_or_default();
        let place = match &target.namespace {
            Some(ns) => format!(" in the namespace {ns:?}"),
            None => " at the cluster scope".to_string(),
        };
        let message = format!(
            "{qualified}{name} is forbidden: User \"{FORBIDDEN_USER}\" cannot {verb} resource \
             {resource:?} in API group {:?}{place}",
            target.group
        );
        let mut e = ApiError::status(
            403,
            "Forbidden",
            &message,
            Some(json!({"group": target.group, "kind": resource})),
        );
        if let Some(n) = &target.name {
            e.body["details"]["name"] = json!(n);
        }
        Some(e)
    }

    /// A 404 for a discovery request of the undiscovered group.
    fn undiscovered_answer<B>(&self, req: &Request<B>) -> Option<ApiError> {
        let group = self.undiscovered.lock().expect("lock").clone()?;
        let path = req.uri().path().strip_prefix("/apis/")?;
        let mut parts = path.trim_end_matches('/').split('/');
        let discovery = req.method() == Method::GET
            && parts.next() == Some(group.as_str())
            && parts.nth(1).is_none();
        discovery.then(|| {
            ApiError::status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                None,
            )
        })
    }

    /// The faults injected so far.
    pub fn injected(&self) -> Injected {
        Injected {
            errors: self.errors.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            dropped_watches: self.dropped_watches.load(Ordering::Relaxed),
        }
    }

    /// Count a watch stream ended early.
    pub(crate) fn count_dropped_watch(&self) {
        self.dropped_watches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn watch_drop_after(&self) -> Option<u64> {
        match self.watch_drop_after.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n - 1),
        }
    }

    fn roll(rate: &AtomicU64) -> bool {
        let rate = f64::from_bits(rate.load(Ordering::Relaxed));
        rate > 0.0 && rand::random::<f64>() < rate
    }

    /// A 500 or 429 answer for a request (not a watch), at the error rate; counted.
    pub(crate) fn injected_error(&self) -> Option<ApiError> {
        if !Self::roll(&self.error_rate) {
            return None;
        }
        self.errors.fetch_add(1, Ordering::Relaxed);
        Some(if rand::random::<bool>() {
            internal("injected fault")
        } else {
            too_many_requests()
        })
    }

    /// A 409 field-manager conflict for an apply, at the conflict rate; counted.
    pub(crate) fn injected_conflict(&self) -> Option<ApiError> {
        if !Self::roll(&self.apply_conflict_rate) {
            return None;
        }
        self.conflicts.fetch_add(1, Ordering::Relaxed);
        Some(ApiError::status(
            409,
            "Conflict",
            "Apply failed with 1 conflict: conflict with \"fault-injection\": .metadata.labels",
            Some(json!({"causes": [{"reason": "FieldManagerConflict",
                "message": "conflict with \"fault-injection\"", "field": ".metadata.labels"}]})),
        ))
    }
}

/// A `kube::Client` middleware that injects [`Faults`] into the requests passing through it.
///
/// ```no_run
/// # async fn demo(config: kube::Config) -> anyhow::Result<()> {
/// use std::sync::Arc;
/// use e2e::faults::{FaultLayer, Faults};
/// let faults = Arc::new(Faults::default());
/// faults.set_error_rate(0.1);
/// let client = kube::client::ClientBuilder::try_from(config)?
///     .with_layer(&FaultLayer::new(faults.clone()))
///     .build();
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct FaultLayer {
    faults: Arc<Faults>,
}

impl FaultLayer {
    /// A layer injecting these faults.
    pub fn new(faults: Arc<Faults>) -> Self {
        FaultLayer { faults }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = FaultService<S>;

    fn layer(&self, inner: S) -> FaultService<S> {
        FaultService {
            inner,
            faults: self.faults.clone(),
        }
    }
}

/// The service [`FaultLayer`] makes.
#[derive(Clone, Debug)]
pub struct FaultService<S> {
    inner: S,
    faults: Arc<Faults>,
}

type Answer = Response<Box<DynBody>>;

impl<S> Service<Request<Body>> for FaultService<S>
where
    S: Service<Request<Body>, Response = Answer, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Answer;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let watch = is_watch(&req);
        let apply = req.method() == Method::PATCH
            && req
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
        if let Some(e) = self
            .faults
            .undiscovered_answer(&req)
            .or_else(|| self.faults.forbidden_answer(&req))
        {
            return Box::pin(std::future::ready(Ok(error_answer(&e))));
        }
        let injected = match (watch, apply) {
            (true, _) => None,
            (false, true) => self
                .faults
                .injected_error()
                .or_else(|| self.faults.injected_conflict()),
            (false, false) => self.faults.injected_error(),
        };
        if let Some(e) = injected {
            return Box::pin(std::future::ready(Ok(error_answer(&e))));
        }
        let drop_after = watch.then(|| self.faults.watch_drop_after()).flatten();
        let faults = self.faults.clone();
        let held = self.faults.holds(&req);
        // The inner future sends nothing until it is first polled (hyper connects and writes
        // the request then), so a held write is only sent once released.
        let fut = self.inner.call(req);
        Box::pin(async move {
            if held {
                wait_for_release(&faults).await;
            }
            let res = fut.await?;
            Ok(match drop_after {
                Some(events) if res.status().is_success() => res.map(|body| {
                    Box::new(Truncated {
                        inner: Some(body),
                        lines_left: events,
                        faults,
                    }) as Box<DynBody>
                }),
                _ => res,
            })
        })
    }
}

/// Wait until the hold of [`Faults::set_held`] ends; counted as waiting meanwhile.
async fn wait_for_release(faults: &Arc<Faults>) {
    struct Waiting<'a>(&'a Faults);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }
    faults.waiting.fetch_add(1, Ordering::SeqCst);
    let _waiting = Waiting(faults);
    loop {
        let released = faults.unheld.notified();
        if faults.held.lock().expect("lock").is_none() {
            break;
        }
        released.await;
    }
    faults.sent_after_hold.fetch_add(1, Ordering::SeqCst);
}

/// The identity [`Faults::set_forbidden`] refuses, as the operator's ServiceAccount is named.
pub const FORBIDDEN_USER: &str = "system:serviceaccount:keelson:keelson";

/// What a resource request's path names.
struct Target {
    group: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
}

impl Target {
    /// `/api/v1/...` or `/apis/<group>/<version>/...`, then `[namespaces/<ns>/]<resource>[/<name>]`.
    fn of<B>(req: &Request<B>) -> Option<Target> {
        let parts: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
        let (group, rest) = match parts.as_slice() {
            ["api", _version, rest @ ..] => (String::new(), rest),
            ["apis", group, _version, rest @ ..] => (group.to_string(), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            rest => (None, rest),
        };
        let (resource, name) = match rest {
            [resource] => (resource.to_string(), None),
            [resource, name, ..] => (resource.to_string(), Some(name.to_string())),
            _ => return None,
        };
        Some(Target {
            group,
            namespace,
            resource,
            name,
        })
    }
}

fn is_watch<B>(req: &Request<B>) -> bool {
    req.uri().query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "watch" && (v == "true" || v == "1"))
    })
}

fn error_answer(e: &ApiError) -> Answer {
    let bytes = Bytes::from(serde_json::to_vec(&e.body).unwrap_or_default());
    let mut res = Response::new(Box::new(
        http_body_util::Full::new(bytes).map_err(|never| -> BoxError { match never {} }),
    ) as Box<DynBody>);
    *res.status_mut() = http::StatusCode::from_u16(e.code).expect("a status code");
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(s) = e.retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    res
}

/// A watch response body that ends after a number of events (lines), as a cut connection does.
struct Truncated {
    inner: Option<Box<DynBody>>,
    lines_left: u64,
    faults: Arc<Faults>,
}

impl HttpBody for Truncated {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(other) => return Poll::Ready(Some(Ok(other))),
        };
        let mut end = (self.lines_left == 0).then_some(0);
        for (i, b) in data.iter().enumerate() {
            if end.is_some() {
                break;
            }
            if *b == b'\n' {
                self.lines_left -= 1;
                if self.lines_left == 0 {
                    end = Some(i + 1);
                }
            }
        }
        if let Some(end) = end {
            data.truncate(end);
            self.inner = None; // closes the stream
            self.faults.count_dropped_watch();
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body(chunks: &[&'static str]) -> Box<DynBody> {
        let stream = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from_static(c.as_bytes()))))
                .collect::<Vec<_>>(),
        );
        Box::new(http_body_util::StreamBody::new(stream))
    }

    async fn read(b: Truncated) -> String {
        let bytes = b.collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_watch_ends_after_the_set_number_of_events() {
        let faults = Arc::new(Faults::default());
        let t = Truncated {
            inner: Some(body(&[
                "{\"a\":1}\n{\"b\"",
                ":2}\n{\"c\":3}\n",
                "{\"d\":4}\n",
            ])),
            lines_left: 2,
            faults: faults.clone(),
        };
        assert_eq!(read(t).await, "{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(faults.injected().dropped_watches, 1);

        let whole = Truncated {
            inner: Some(body(&["{\"a\":1}\n", "{\"b\":2}\n"])),
            lines_left: 5,
            faults: faults.clone(),
        };
        assert_eq!(read(whole).await, "{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(
            faults.injected().dropped_watches,
            1,
            "a stream that ended by itself"
        );
    }

    #[test]
    fn errors_only_where_asked() {
        let f = Faults::default();
        assert!((0..1000).all(|_| f.injected_error().is_none() && f.injected_conflict().is_none()));
        f.set_apply_conflict_rate(1.0);
        assert_eq!(f.injected_conflict().map(|e| e.code), Some(409));
        assert!(f.injected_error().is_none(), "conflicts are not errors");
        f.set_error_rate(1.0);
        let codes: std::collections::BTreeSet<u16> = (0..200)
            .filter_map(|_| f.injected_error().map(|e| e.code))
            .collect();
        assert_eq!(codes, [429, 500].into_iter().collect());
        assert_eq!(
            f.injected(),
            Injected {
                errors: 200,
                conflicts: 1,
                dropped_watches: 0
            }
        );
        f.clear();
        assert!(f.injected_error().is_none() && f.injected_conflict().is_none());
    }

    #[test]
    fn a_forbidden_resource_is_refused_as_rbac_refuses_it() {
        let f = Faults::default();
        let r = |uri: &str| Request::get(uri).body(()).unwrap();
        let list = r("/apis/apps/v1/namespaces/rec/deployments");
        assert!(f.forbidden_answer(&list).is_none());
        f.set_forbidden(Some("deployments"));
        // As recorded from a real API server (errors/403-sa-without-roles-{list,watch}.json),
        // with this fault's user.
        let e = f.forbidden_answer(&list).unwrap();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.body["message"],
            "deployments.apps is forbidden: User \"system:serviceaccount:keelson:keelson\" \
             cannot list resource \"deployments\" in API group \"apps\" in the namespace \"rec\""
        );
        assert_eq!(e.body["reason"], "Forbidden");
        assert_eq!(
            e.body["details"],
            json!({"group": "apps", "kind": "deployments"})
        );
        let watch = r("/apis/apps/v1/namespaces/rec/deployments?watch=true");
        assert!(
            f.forbidden_answer(&watch).unwrap().body["message"]
                .as_str()
                .unwrap()
                .contains("cannot watch resource")
        );
        let core = f.forbidden_answer(&r("/api/v1/pods")).is_none();
        assert!(core, "another resource is served");
        f.set_forbidden(Some("pods"));
        let e = f.forbidden_answer(&r("/api/v1/pods")).unwrap();
        assert_eq!(
            e.body["message"],
            "pods is forbidden: User \"system:serviceaccount:keelson:keelson\" cannot list \
             resource \"pods\" in API group \"\" at the cluster scope"
        );
        f.set_forbidden(None);
        assert!(f.forbidden_answer(&r("/api/v1/pods")).is_none());
    }

    #[test]
    fn watch_requests_are_recognised() {
        let r = |uri: &str| Request::get(uri).body(()).unwrap();
        assert!(is_watch(&r("/api/v1/secrets?watch=true&resourceVersion=1")));
        assert!(is_watch(&r(
            "/api/v1/secrets?allowWatchBookmarks=true&watch=1"
        )));
        assert!(!is_watch(&r("/api/v1/secrets?limit=100")));
        assert!(!is_watch(&r("/api/v1/secrets")));
    }
}
