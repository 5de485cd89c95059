//! An in-process stand-in for the Kubernetes API server, faithful to exchanges recorded from a
//! Kubernetes 1.36 API server (see `shared/k8s-recordings`): discovery, CRUD, lists, watches,
//! server-side apply with field ownership, CRDs installed the real way, garbage collection and
//! stand-in controllers that report workloads ready.
//!
//! Like a real API server, it refuses changes to immutable fields with the real messages
//! (StatefulSet spec outside `replicas`, `ordinals`, `template`, `updateStrategy`,
//! `revisionHistoryLimit`, `persistentVolumeClaimRetentionPolicy`, `minReadySeconds`;
//! Deployment and ReplicaSet selectors; allocated Service cluster IPs; PersistentVolumeClaim
//! specs except a bound claim's storage request; data of Secrets and ConfigMaps marked
//! `immutable`), owner references with more than one controller, and claim growth unless the
//! StorageClass allows expansion (403 from the resize admission plugin). A default
//! StorageClass `standard` (expandable) exists from the start; new claims without a class get
//! it. Deployments, ReplicaSets and StatefulSets serve the `scale` subresource.
//!
//! Simplified compared with a real API server: no authentication, authorization or admission
//! webhooks; JSON only (protobuf and Table requests get JSON); one storage version per CRD
//! (conversion `None`: only `apiVersion` changes between versions); scale subresources are
//! listed in legacy discovery only; list pages after the first show the current state rather
//! than a snapshot at the first page's resourceVersion, and an `Exact` list at an uncompacted
//! past resourceVersion answers the current state; server-side apply tracks field ownership
//! without per-type schemas for built-ins beyond the list and map markers that matter (merge
//! keys of containers, env, ports, volumes, conditions, owner references, finalizers; atomic
//! selectors); the stand-in controllers report workloads without creating Pods or
//! ReplicaSets; built-in validation covers names, labels and annotations, owner references,
//! Deployment and StatefulSet essentials, the immutable fields above, Events and MicroTime
//! fields. The diff a real server appends to the PVC spec message is abbreviated. Watch
//! history holds each resource's events of the last 75 s (the watch cache's window), at most
//! 4,096 of them: a real server's cache may hold more, or older ones while it is not full, so
//! a client resuming from an older resourceVersion gets 410 Expired here where a real server
//! might still answer.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use e2e::apiserver::{ApiServer, ServerOptions};
//! let server = ApiServer::start(ServerOptions::default()).await?;
//! println!("serving at {}", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod builtin;
mod cel;
mod controllers;
mod discovery;
mod engine;
mod fieldset;
mod http;
mod immutable;
mod kubelet;
mod patch;
mod quantity;
mod resources;
mod schema;
mod selector;
mod shape;
mod ssa;
pub(crate) mod status;

use engine::{Note, State};
pub use kubelet::ImageBehaviour;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Run the stand-in cluster controllers: workload status, garbage collection, namespace
    /// lifecycle. CRDs become Established either way (the API server itself does that).
    pub controllers: bool,
    /// How long before a Deployment/StatefulSet reports available.
    pub workload_ready_delay: Duration,
    /// Garbage-collection delay (about 0.3 s was recorded).
    pub gc_delay: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            controllers: true,
            workload_ready_delay: Duration::from_millis(200),
            gc_delay: Duration::from_millis(300),
        }
    }
}

pub use crate::faults::Faults;

/// A snapshot of the request counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Every HTTP request, discovery included.
    pub requests: u64,
    /// Client requests that changed stored state.
    pub writes: u64,
    /// Stored-state changes made by the stand-in controllers (status, garbage collection, ...).
    pub controller_writes: u64,
    /// Requests per verb: get, list, watch, create, patch, update, delete, deletecollection.
    pub by_verb: BTreeMap<String, u64>,
    /// Requests per resource (`apps/deployments`, `configmaps`).
    pub by_resource: BTreeMap<String, u64>,
    /// Requests per verb and resource, e.g. `patch apps/deployments` or
    /// `patch keelson.dev/applications/status` (what RBAC authorizes).
    pub by_verb_resource: BTreeMap<String, u64>,
    /// The same, per User-Agent.
    pub by_agent: BTreeMap<String, BTreeMap<String, u64>>,
    /// Answers per HTTP status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Watch events sent (bookmarks included).
    pub watch_events: u64,
    /// Seconds the state lock was held, per verb and resource (as in `by_verb_resource`) and for
    /// the stand-in controllers: the server does one thing at a time under that lock, so this
    /// is where its capacity goes.
    pub lock_seconds: BTreeMap<String, f64>,
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub opts: ServerOptions,
    pub faults: Arc<Faults>,
    pub stats: Mutex<Stats>,
    pub notes_tx: mpsc::UnboundedSender<Note>,
    pub workloads_ready: AtomicBool,
    /// Workloads run Pods (through ReplicaSets for Deployments).
    pub pods: AtomicBool,
    /// What images do when the stand-in kubelets run them.
    pub images: Mutex<kubelet::Images>,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub addr: SocketAddr,
}

thread_local! {
    /// How long this thread has held the state lock since [`Shared::take_held`].
    static HELD: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

impl Shared {
    /// Runs `f` with the state locked; hands the changes it made to the controllers.
    /// Returns whether stored state changed.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> (R, u64) {
        let (r, notes, writes) = {
            let mut st = self.state.lock().expect("state lock");
            let locked = std::time::Instant::now();
            let before = st.writes;
            let r = f(&mut st);
            let out = (r, std::mem::take(&mut st.notes), st.writes - before);
            HELD.set(HELD.get() + locked.elapsed());
            out
        };
        for n in notes {
            let _ = self.notes_tx.send(n);
        }
        (r, writes)
    }

    /// Like [`Shared::with_state`], counting the changes as controller writes.
    pub fn with_state_ctrl<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        Self::take_held();
        let (r, writes) = self.with_state(f);
        let held = Self::take_held();
        let mut stats = self.stats.lock().expect("stats");
        stats.controller_writes += writes;
        *stats
            .lock_seconds
            .entry("stand-in controllers".into())
            .or_default() += held.as_secs_f64();
        r
    }

    /// How long this thread held the state lock since the last call.
    pub fn take_held() -> Duration {
        HELD.replace(Duration::ZERO)
    }
}

/// A running server. Cheap to clone.
#[derive(Clone)]
pub struct ApiServer {
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl ApiServer {
    /// Serves on 127.0.0.1 at a random port.
    pub async fn start(opts: ServerOptions) -> std::io::Result<ApiServer> {
        Self::start_on(opts, 0).await
    }

    /// Serves on 127.0.0.1 at the given port (0: random).
    pub async fn start_on(opts: ServerOptions, port: u16) -> std::io::Result<ApiServer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let (notes_tx, notes_rx) = mpsc::unbounded_channel();
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            opts,
            faults: Arc::default(),
            stats: Mutex::new(Stats::default()),
            notes_tx,
            workloads_ready: AtomicBool::new(true),
            pods: AtomicBool::new(false),
            images: Mutex::default(),
            shutdown,
            addr,
        });
        let tasks = vec![
            tokio::spawn(controllers::run(shared.clone(), notes_rx)),
            tokio::spawn(http::serve(shared.clone(), listener)),
        ];
        Ok(ApiServer {
            shared,
            tasks: Arc::new(Mutex::new(tasks)),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The faults this server injects.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The same, shared.
    pub fn faults_handle(&self) -> Arc<Faults> {
        self.shared.faults.clone()
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().expect("stats").clone()
    }

    pub fn reset_stats(&self) {
        *self.shared.stats.lock().expect("stats") = Stats::default();
    }

    /// Whether the stand-in controllers report workloads available.
    pub fn set_workloads_ready(&self, ready: bool) {
        self.shared.workloads_ready.store(ready, Ordering::SeqCst);
        let _ = self.shared.notes_tx.send(Note::WorkloadsReadyChanged);
    }

    /// Declares what an image does when the stand-in kubelets run it: what a real kubelet
    /// learns from the image itself (its user, its exit, its readiness), for example
    /// `set_image("nginx:1.27", ImageBehaviour::RunsAsUser(0))`. A key ending in `*` covers
    /// every image with that prefix. Test-only: nothing on a real cluster reads it, so a
    /// scenario that relies on it states the same fact about the real image it uses. Pods
    /// already running are re-evaluated.
    pub fn set_image(&self, image: &str, behaviour: ImageBehaviour) {
        self.shared
            .images
            .lock()
            .expect("images")
            .set(image, behaviour);
        let _ = self.shared.notes_tx.send(Note::WorkloadsReadyChanged);
    }

    /// Whether workloads run Pods, as on a real cluster: ReplicaSets, Pods scheduled and run
    /// by the stand-in kubelets (see the `kubelet` module for the states they produce), status
    /// computed from the Pods. Off by default for now: without, the stand-ins report
    /// Deployments and StatefulSets from their spec alone (fewer objects, for load tests, and
    /// what scenarios written before Pods existed expect).
    pub fn set_pods(&self, pods: bool) {
        self.shared.pods.store(pods, Ordering::SeqCst);
        let _ = self.shared.notes_tx.send(Note::WorkloadsReadyChanged);
    }

    /// Forgets the watch history: every resourceVersion up to now counts as compacted, so
    /// watches and exact lists from older resourceVersions get 410 Expired.
    pub fn compact(&self) {
        self.shared.with_state(|st| st.compact());
    }

    /// Sets how long each resource keeps past events for watches that resume from a
    /// resourceVersion, and at most how many (defaults: 75 s, as kube-apiserver's watch
    /// cache, and 4,096 events). A watch resuming from a version whose successors left the
    /// history gets 410 Expired, and its client lists again.
    pub fn set_watch_history(&self, window: Duration, cap: usize) {
        self.shared.with_state(|st| {
            st.history_window = window;
            st.history_cap = cap.max(1);
        });
    }

    /// How many past events `group/version/plural` holds for resuming watches now (after
    /// dropping those older than the history window).
    pub fn watch_history_len(&self, group: &str, version: &str, plural: &str) -> usize {
        self.shared
            .with_state(|st| {
                let Some(def) = st.def(group, version, plural) else {
                    return 0;
                };
                st.prune_history(&def.store_key);
                st.history_len(&def.store_key)
            })
            .0
    }

    /// The current resourceVersion of the whole server.
    pub fn resource_version(&self) -> u64 {
        self.shared.state.lock().expect("state").rv
    }

    /// Stops serving; open watches end.
    pub async fn shutdown(self) {
        let _ = self.shared.shutdown.send(true);
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.tasks.lock().expect("tasks"));
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    }

    /// The stored object as a GET through `group/version/plural` would return it.
    pub fn get_object(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let st = self.shared.state.lock().expect("state");
        let def = st.def(group, version, plural)?;
        let o = st.get_stored(&def, namespace.unwrap_or(""), name)?;
        Some(engine::to_view(&def, &o))
    }

    /// Stored objects of a resource (one namespace or all), in namespace/name order.
    pub fn list_objects(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> Vec<Value> {
        let st = self.shared.state.lock().expect("state");
        let Some(def) = st.def(group, version, plural) else {
            return Vec::new();
        };
        let Some(b) = st.bucket(&def.store_key) else {
            return Vec::new();
        };
        b.objects
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, o)| engine::to_view(&def, o))
            .collect()
    }

    /// Writes a kubeconfig that points at this server (no credentials) and returns its path.
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        let cfg = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        );
        std::fs::write(path, cfg)
    }
}
