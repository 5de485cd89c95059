//! The end-to-end harness: a cluster (a real one when `KEELSON_E2E_KUBECONFIG` or `KUBECONFIG`
//! names one, otherwise the in-process API server), a fresh namespace per test with Keelson's CRD
//! installed, and the real Keelson operator started through the library's entry point.
//!
//! Scenarios are written once against the `kube::Client` and run the same way in both modes;
//! the few things only the in-process server can do (inject faults, count writes) are reached
//! through [`Env::server`].

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinition, CustomResourceValidation, JSONSchemaProps,
    },
};
use keelson::{
    api::Application,
    controller::{ControllerConfig, watch::Scope},
    runtime::{
        admin::AdminState,
        leader::LeaseSettings,
        metrics::{KindLabel, Metrics, RESULTS, ResultLabel},
    },
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::{
    apiserver::{ApiServer, ServerOptions},
    faults::{FaultLayer, Faults},
};

/// The field manager of the harness's own writes (a user's `kubectl apply`).
pub const USER_MANAGER: &str = "e2e-user";

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The upstream third-party CRDs' files (as pinned in `e2e/third-party-crds.tsv`).
pub const SERVICE_MONITORS_CRD: &str = "monitoring.coreos.com_servicemonitors.yaml";
/// See [`SERVICE_MONITORS_CRD`].
pub const HTTP_ROUTES_CRD: &str = "gateway.networking.k8s.io_httproutes.yaml";

/// How to get the upstream third-party CRDs, for messages.
pub const FETCH_THIRD_PARTY_CRDS: &str = "e2e/fetch-third-party-crds.sh, then export \
     KEELSON_THIRD_PARTY_CRDS=e2e/third-party-crds";

/// The folder holding the upstream third-party CRDs: `KEELSON_THIRD_PARTY_CRDS` (relative to the
/// repository root when relative), or `None` when it is unset. `e2e/fetch-third-party-crds.sh`
/// downloads and verifies them.
pub fn third_party_crds_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("KEELSON_THIRD_PARTY_CRDS").filter(|v| !v.is_empty())?;
    Some(repo_root().join(dir))
}

/// The text of one upstream third-party CRD file; an error naming the fix when the folder is
/// not configured or lacks the file.
pub fn third_party_crd_text(file: &str) -> anyhow::Result<String> {
    let Some(dir) = third_party_crds_dir() else {
        bail!("{file}: KEELSON_THIRD_PARTY_CRDS is not set; run {FETCH_THIRD_PARTY_CRDS}");
    };
    let path = dir.join(file);
    std::fs::read_to_string(&path).with_context(|| {
        format!(
            "read {} (KEELSON_THIRD_PARTY_CRDS): run {FETCH_THIRD_PARTY_CRDS}",
            path.display()
        )
    })
}

/// A stand-in for an upstream CRD that only serves its API: group, version, names, scope and
/// status subresource from the checked-in kopium types (`keelson::external`), a schema that
/// keeps every field. It has none of the upstream schema's defaults, validation or CEL rules.
/// `None` for a file Keelson has no types of.
pub fn stand_in_crd(file: &str) -> Option<CustomResourceDefinition> {
    use keelson::external::{httproutes::HttpRoute, servicemonitors::ServiceMonitor};
    use kube::CustomResourceExt;
    let mut crd = match file {
        SERVICE_MONITORS_CRD => ServiceMonitor::crd(),
        HTTP_ROUTES_CRD => HttpRoute::crd(),
        _ => return None,
    };
    let schema: JSONSchemaProps = serde_json::from_value(json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        },
    }))
    .expect("a valid schema");
    for v in &mut crd.spec.versions {
        v.schema = Some(CustomResourceValidation {
            open_api_v3_schema: Some(schema.clone()),
        });
    }
    Some(crd)
}

/// The CRD of `file`: the upstream one from [`third_party_crds_dir`], or, when that is not
/// configured and `stand_in` allows it, [`stand_in_crd`].
pub fn third_party_crd(file: &str, stand_in: bool) -> anyhow::Result<CustomResourceDefinition> {
    if third_party_crds_dir().is_none()
        && stand_in
        && let Some(crd) = stand_in_crd(file)
    {
        return Ok(crd);
    }
    Ok(serde_norway::from_str(&third_party_crd_text(file)?)?)
}

/// The kubeconfig of a real cluster to run against, if one is configured.
pub fn real_cluster_kubeconfig() -> Option<PathBuf> {
    ["KEELSON_E2E_KUBECONFIG", "KUBECONFIG"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .find(|p| !p.as_os_str().is_empty() && p.exists())
}

/// How long a scenario waits for convergence: a real cluster pulls images and starts pods.
/// In-process it is generous too: a deadline only bounds a failure, and a loaded machine is slow.
pub fn converge_timeout(real: bool) -> Duration {
    if real {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(60)
    }
}

/// One test's cluster and namespace.
pub struct Env {
    /// A client for the cluster (the test's own: a user, `kubectl`).
    pub client: Client,
    /// The configuration the operator's clients are made from.
    pub config: kube::Config,
    /// The in-process server, when not on a real cluster.
    pub server: Option<ApiServer>,
    /// The test's namespace.
    pub namespace: String,
    /// Upstream CRDs this test installed (removed on cleanup in a real cluster).
    installed_crds: Vec<String>,
    /// StorageClasses this test created (removed on cleanup, also after a failure).
    storage_classes: std::sync::Mutex<Vec<String>>,
    /// Whether [`Env::cleanup`] ran; if not, dropping the Env cleans up (a failed test).
    cleaned: bool,
}

/// Options of [`Env::start`].
#[derive(Clone, Debug)]
pub struct EnvOptions {
    /// Install the ServiceMonitor CRD (in-process mode; a real cluster keeps what it has): the
    /// upstream one from [`third_party_crds_dir`], or else its [`stand_in_crd`].
    pub service_monitors: bool,
    /// Install the Gateway API HTTPRoute CRD (likewise).
    pub http_routes: bool,
    /// In-process server options.
    pub server: ServerOptions,
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions {
            service_monitors: true,
            http_routes: true,
            server: ServerOptions::default(),
        }
    }
}

impl Env {
    /// Connect, create a fresh namespace `<prefix>-<random>`, install Keelson's CRD.
    pub async fn start(prefix: &str, opts: EnvOptions) -> anyhow::Result<Env> {
        let kubeconfig = real_cluster_kubeconfig();
        if kubeconfig.is_some() != cfg!(real_cluster) {
            bail!(
                "these tests were built for {} but run with{} a kubeconfig: run them through \
                 `cargo test`, which rebuilds them when KUBECONFIG or KEELSON_E2E_KUBECONFIG changes",
                if cfg!(real_cluster) {
                    "a real cluster"
                } else {
                    "the in-process API server"
                },
                if kubeconfig.is_some() { "" } else { "out" },
            );
        }
        let (config, server) = match kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(&path)?;
                (
                    kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
                    None,
                )
            }
            None => {
                let server = ApiServer::start(opts.server.clone()).await?;
                (kube::Config::new(server.url().parse()?), Some(server))
            }
        };
        let client = Client::try_from(config.clone())?;
        let namespace = format!("{prefix}-{:08x}", rand::random::<u32>());
        let mut env = Env {
            client,
            config,
            server,
            namespace,
            installed_crds: Vec::new(),
            storage_classes: std::sync::Mutex::default(),
            cleaned: false,
        };
        let keelson_crd =
            std::fs::read_to_string(repo_root().join("crds/keelson.dev_applications.yaml"))?;
        apply_crd(&env.client, &serde_norway::from_str(&keelson_crd)?).await?;
        if env.server.is_some() {
            if opts.service_monitors {
                env.install_third_party_crd(SERVICE_MONITORS_CRD).await?;
            }
            if opts.http_routes {
                env.install_third_party_crd(HTTP_ROUTES_CRD).await?;
            }
        }
        // Keelson's workloads must pass the restricted Pod Security Standard: a real cluster
        // refuses their pods otherwise (the in-process server does not run admission).
        let ns: Namespace = serde_json::from_value(json!({"metadata": {
            "name": env.namespace,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        }}))?;
        Api::<Namespace>::all(env.client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(env)
    }

    /// Whether this runs against a real cluster.
    pub fn real(&self) -> bool {
        self.server.is_none()
    }

    /// Install one of the third-party CRDs (see [`third_party_crd`]; on a real cluster only the
    /// upstream one). Cleanup removes it again.
    pub async fn install_third_party_crd(&mut self, file: &str) -> anyhow::Result<()> {
        let crd = third_party_crd(file, !self.real())?;
        let name = crd.name_any();
        // Recorded first: a CRD that never becomes Established is still removed on cleanup.
        self.installed_crds.push(name);
        apply_crd(&self.client, &crd).await?;
        Ok(())
    }

    /// Whether the cluster already has a CRD.
    pub async fn has_crd(&self, name: &str) -> anyhow::Result<bool> {
        Ok(Api::<CustomResourceDefinition>::all(self.client.clone())
            .get_opt(name)
            .await?
            .is_some())
    }

    /// Start the Keelson operator, watching this test's namespace.
    pub fn start_operator(&self, opts: OperatorOptions) -> Operator {
        let config = keelson::runtime::operator_config(self.config.clone());
        let builder = kube::client::ClientBuilder::try_from(config).expect("operator client");
        let client = match &opts.faults {
            Some(f) => builder.with_layer(&FaultLayer::new(f.clone())).build(),
            None => builder.build(),
        };
        Operator::start(client, &self.namespace, opts)
    }

    /// Whether the cluster serves ServiceMonitors (in-process: whether this test installed
    /// them; a real cluster may have the Prometheus Operator).
    pub async fn serves_service_monitors(&self) -> anyhow::Result<bool> {
        self.has_crd("servicemonitors.monitoring.coreos.com").await
    }

    /// The children the shop sample has on this cluster: 23, or 20 without ServiceMonitors.
    pub async fn shop_children(&self) -> anyhow::Result<usize> {
        Ok(if self.serves_service_monitors().await? {
            23
        } else {
            20
        })
    }

    /// Applications in the namespace.
    pub fn apps(&self) -> Api<Application> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A sample's Application, moved into this namespace.
    pub fn sample(&self, file: &str) -> anyhow::Result<Value> {
        let text = std::fs::read_to_string(repo_root().join("samples").join(file))?;
        let mut v: Value = serde_norway::from_str(&text)?;
        v["metadata"]["namespace"] = json!(self.namespace);
        if self.real() {
            runnable_images(&mut v);
        }
        Ok(v)
    }

    /// Apply an Application as a user would (`kubectl apply --server-side`).
    pub async fn apply_app(&self, app: &Value) -> anyhow::Result<Application> {
        let name = app["metadata"]["name"].as_str().context("metadata.name")?;
        Ok(self
            .apps()
            .patch(
                name,
                &PatchParams::apply(USER_MANAGER).force(),
                &Patch::Apply(app),
            )
            .await?)
    }

    /// An API for any namespaced kind of this namespace.
    pub fn dynamic(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
    ) -> Api<DynamicObject> {
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        Api::namespaced_with(self.client.clone(), &self.namespace, &ar)
    }

    /// Wait until the Application's condition `type_` has `status`; returns the Application.
    pub async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        timeout: Duration,
    ) -> anyhow::Result<Application> {
        let apps = self.apps();
        let last = std::sync::Mutex::new(None);
        let result = wait_for(timeout, || async {
            let app = apps.get(name).await.ok()?;
            *last.lock().unwrap() = app.status.clone();
            let st = app.status.as_ref()?;
            let current = st.observed_generation == app.metadata.generation;
            let ok = st
                .conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == status);
            (current && ok).then_some(app)
        })
        .await;
        result.with_context(|| {
            let conditions: Vec<String> = last
                .lock()
                .unwrap()
                .iter()
                .flat_map(|s| s.conditions.iter())
                .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
                .collect();
            format!(
                "Application {name} never had {type_}={status} for its current generation within {timeout:?}; last conditions: {conditions:#?}"
            )
        })
    }

    /// Every object of Keelson's child kinds in the namespace with the Application's label, as
    /// `Kind/name` → object.
    pub async fn children(
        &self,
        app: &str,
    ) -> anyhow::Result<std::collections::BTreeMap<String, DynamicObject>> {
        let lp = ListParams::default().labels(&format!("keelson.dev/application={app}"));
        let mut out = std::collections::BTreeMap::new();
        for (g, v, k, p) in child_kinds() {
            let api = self.dynamic(g, v, k, p);
            match api.list(&lp).await {
                Ok(list) => {
                    for o in list.items {
                        out.insert(format!("{k}/{}", o.name_any()), o);
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {} // API not served
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Delete the namespace (and, in a real cluster, the upstream CRDs this test installed).
    /// A test that fails before calling this cleans up all the same, when its Env is dropped.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        let cluster = self.cluster_objects();
        delete_test_objects(&self.client, &self.namespace, &cluster).await;
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Have cleanup delete the StorageClass `name`, which the test creates (cluster-scoped: the
    /// namespace's deletion does not take it), also when the test fails.
    pub fn owns_storage_class(&self, name: &str) {
        self.storage_classes
            .lock()
            .expect("lock")
            .push(name.to_string());
    }

    /// The cluster-scoped objects cleanup removes, on a real cluster only (the in-process server
    /// goes away with its test): the CRDs and StorageClasses this test made.
    fn cluster_objects(&self) -> ClusterObjects {
        if !self.real() {
            return ClusterObjects::default();
        }
        ClusterObjects {
            crds: self.installed_crds.clone(),
            storage_classes: self.storage_classes.lock().expect("lock").clone(),
        }
    }
}

/// Cluster-scoped objects a test made, by kind.
#[derive(Clone, Debug, Default)]
struct ClusterObjects {
    crds: Vec<String>,
    storage_classes: Vec<String>,
}

impl Drop for Env {
    /// A test that panicked never reached [`Env::cleanup`]: on a real cluster, delete its
    /// namespace and CRDs anyway, on a runtime of its own (the test's may be unwinding), so a
    /// failed run leaves nothing behind. In-process there is nothing to leave behind.
    fn drop(&mut self) {
        if self.cleaned || !self.real() {
            return;
        }
        let (config, namespace, cluster) = (
            self.config.clone(),
            self.namespace.clone(),
            self.cluster_objects(),
        );
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                match Client::try_from(config) {
                    Ok(client) => {
                        let work = delete_test_objects(&client, &namespace, &cluster);
                        if tokio::time::timeout(Duration::from_secs(30), work)
                            .await
                            .is_err()
                        {
                            eprintln!("cleanup of namespace {namespace} timed out");
                        }
                    }
                    Err(e) => eprintln!("cleanup of namespace {namespace}: no client: {e}"),
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Delete a test's namespace and the given cluster-scoped objects; failures are printed, not
/// raised (cleanup must not hide the test's own result), and one already gone is no failure.
async fn delete_test_objects(client: &Client, namespace: &str, cluster: &ClusterObjects) {
    let deleted = Api::<Namespace>::all(client.clone())
        .delete(namespace, &DeleteParams::default())
        .await;
    if let Err(e) = deleted {
        eprintln!("cleanup: deleting namespace {namespace}: {e}");
    }
    delete_all::<CustomResourceDefinition>(client, &cluster.crds).await;
    delete_all::<k8s_openapi::api::storage::v1::StorageClass>(client, &cluster.storage_classes)
        .await;
}

/// Delete the cluster-scoped objects of kind `K` named `names`; a failure is printed, one
/// already gone is no failure.
async fn delete_all<K>(client: &Client, names: &[String])
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    for name in names {
        match Api::<K>::all(client.clone())
            .delete(name, &DeleteParams::default())
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => eprintln!("cleanup: deleting {} {name}: {e}", K::kind(&())),
            Ok(_) => {}
        }
    }
}

/// Server-side apply a CRD (as the harness's user) and wait until it is Established; returns
/// its name.
pub async fn apply_crd(client: &Client, crd: &CustomResourceDefinition) -> anyhow::Result<String> {
    let name = crd.name_any();
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply(USER_MANAGER).force(),
        &Patch::Apply(crd),
    )
    .await
    .with_context(|| format!("install CRD {name}"))?;
    wait_for(Duration::from_secs(30), || async {
        let c = api.get(&name).await.ok()?;
        let established = c
            .status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(())
    })
    .await
    .with_context(|| format!("CRD {name} never became Established"))?;
    Ok(name)
}

/// The kinds Keelson creates, from its registry: (group, version, kind, plural).
pub fn child_kinds() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    keelson::kinds::all()
        .into_iter()
        .map(|k| (k.group, k.version, k.kind, k.plural))
        .collect()
}

/// On a real cluster the samples' made-up images would never start: run a small real HTTP
/// server that answers the samples' probe paths, as a non-root user.
fn runnable_images(app: &mut Value) {
    if let Some(services) = app["spec"]["services"].as_array_mut() {
        for s in services {
            let port = s["ports"][0]["port"].as_i64().unwrap_or(8080);
            s["image"] = json!("registry.k8s.io/e2e-test-images/agnhost:2.53");
            s["args"] = json!(["netexec", format!("--http-port={port}")]);
            s["runAsUser"] = json!(65532);
            if let Some(p) = s.get_mut("probes").and_then(Value::as_object_mut) {
                for (_, probe) in p.iter_mut() {
                    if probe.get("httpGet").is_some() {
                        probe["httpGet"]["path"] = json!("/healthz");
                    }
                }
            }
        }
    }
}

/// Poll `f` every 50 ms until it returns `Some`, or fail after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Options of the operator under test.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    /// Full resync period.
    pub resync: Duration,
    /// Leader election on this Lease (in the test's namespace), with this identity.
    pub lease: Option<(String, String)>,
    /// Lease duration.
    pub lease_duration: Duration,
    /// Faults injected into the operator's own requests (in either mode).
    pub faults: Option<Arc<Faults>>,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        OperatorOptions {
            resync: Duration::from_secs(60),
            lease: None,
            lease_duration: Duration::from_secs(4),
            faults: None,
        }
    }
}

/// A running Keelson operator, on its own thread and single-threaded runtime, like a process of
/// its own: [`Operator::kill`] ends it at once, with no cleanup (the lease is not released, every
/// watch and task just stops), as a crashed pod would.
pub struct Operator {
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    stop: Option<oneshot::Sender<()>>,
    kill: Option<oneshot::Sender<()>>,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Its admin state (readiness).
    pub admin: AdminState,
}

impl Operator {
    /// Start the operator through `keelson::runtime::run_operator`.
    pub fn start(client: Client, namespace: &str, opts: OperatorOptions) -> Operator {
        let config = ControllerConfig {
            scope: Scope::Namespaces(vec![namespace.to_string()]),
            resync: opts.resync,
            discovery_interval: Duration::from_secs(1),
            concurrency: 8,
            instance: opts.lease.as_ref().map(|(_, id)| id.clone()),
            ..ControllerConfig::default()
        };
        let lease = opts.lease.map(|(name, identity)| LeaseSettings {
            name,
            namespace: namespace.to_string(),
            identity,
            duration: opts.lease_duration,
            grace: Duration::from_secs(1),
        });
        let metrics = Arc::new(Metrics::new());
        let admin = AdminState::new(metrics.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let (kill, killed) = oneshot::channel::<()>();
        let (m, a) = (metrics.clone(), admin.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let result = rt.block_on(async move {
                let run = keelson::runtime::run_operator(client, config, lease, m, a, async move {
                    let _ = stopped.await;
                });
                tokio::select! {
                    r = run => r,
                    _ = killed => Ok(()),
                }
            });
            // Nothing runs after block_on returns: shutting the runtime down drops every task
            // unpolled (and does not wait on blocking work).
            rt.shutdown_timeout(Duration::from_millis(500));
            result
        });
        Operator {
            thread: Some(thread),
            stop: Some(stop),
            kill: Some(kill),
            metrics,
            admin,
        }
    }

    /// Whether this replica leads (or runs without election).
    pub fn leading(&self) -> bool {
        self.metrics.leader.get() == 1
    }

    /// `keelson_reconciles_total`, over every result: reconciles that ended.
    pub fn reconciles(&self) -> u64 {
        RESULTS
            .iter()
            .map(|&result| {
                self.metrics
                    .reconciles
                    .get_or_create(&ResultLabel { result })
                    .get()
            })
            .sum()
    }

    /// `keelson_drift_repairs_total`, over every kind.
    pub fn drift_repairs(&self) -> u64 {
        keelson::kinds::all()
            .into_iter()
            .map(|k| {
                let label = KindLabel { kind: k.kind };
                self.metrics.drift_repairs.get_or_create(&label).get()
            })
            .sum()
    }

    /// Wait until at least `passes` more reconciles than `since` have ended (each a whole pass:
    /// fetch, apply, prune and status); returns the new count.
    pub async fn wait_reconciles(
        &self,
        since: u64,
        passes: u64,
        timeout: Duration,
    ) -> anyhow::Result<u64> {
        wait_for(timeout, || async {
            let now = self.reconciles();
            (now >= since + passes).then_some(now)
        })
        .await
        .with_context(|| {
            format!(
                "fewer than {passes} reconciles ended within {timeout:?} (from {since}, now {})",
                self.reconciles()
            )
        })
    }

    /// Shut down gracefully (in-flight reconciles finish, the lease is released).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let thread = self.thread.take().expect("running");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !thread.is_finished() {
            if tokio::time::Instant::now() > deadline {
                bail!("the operator did not shut down within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the operator panicked"))?
    }

    /// Kill it without any cleanup, as a crashed pod would end.
    pub fn kill(mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
    }
}

/// Assert that a text shown to users (a condition message, an Event note) is words: not empty,
/// and no Rust `Debug` dump of an answer (`Some(`, `None`, `Status {`, `ListMeta`,
/// `ErrorResponse`).
pub fn assert_words(what: &str, text: &str) {
    for dump in ["Some(", "None", "Status {", "ListMeta", "ErrorResponse"] {
        assert!(!text.contains(dump), "{what} contains `{dump}`: {text}");
    }
    assert!(!text.trim().is_empty(), "{what} is empty");
}
