//! Where the benchmark runs: the in-process API server stand-in or a real cluster, and the
//! client calls both share.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use e2e::{
    apiserver::{ApiServer, ServerOptions},
    harness::{self, child_kinds, repo_root},
};
use k8s_openapi::api::core::v1::Namespace;
use keelson::build::ApiCapabilities;
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, ListParams, PostParams},
    core::{ApiResource, GroupVersion, GroupVersionKind},
    discovery,
};
use serde_json::{Value, json};

use crate::options::Opts;

/// The namespace of the Applications on the in-process server.
pub const NAMESPACE: &str = "bench";

/// Where the benchmark runs.
pub enum Cluster {
    InProcess(ApiServer),
    /// A real cluster, by its kubeconfig.
    Real(PathBuf),
}

impl Cluster {
    /// The in-process server, whose state and request counts the benchmark reads directly.
    pub fn server(&self) -> Option<&ApiServer> {
        match self {
            Cluster::InProcess(s) => Some(s),
            Cluster::Real(_) => None,
        }
    }

    pub fn is_real(&self) -> bool {
        matches!(self, Cluster::Real(_))
    }

    /// A fresh in-process API server and a client of it.
    pub async fn in_process(opts: &Opts) -> anyhow::Result<(Cluster, Client)> {
        let server = ApiServer::start(ServerOptions {
            workload_ready_delay: opts.ready_delay(),
            ..ServerOptions::default()
        })
        .await
        .context("start the in-process API server")?;
        let cfg = kube::Config::new(server.url().parse()?);
        Ok((Cluster::InProcess(server), Client::try_from(cfg)?))
    }

    /// The real cluster of a kubeconfig and a client of it.
    pub async fn real(kubeconfig: &Path) -> anyhow::Result<(Cluster, Client)> {
        let kc = kube::config::Kubeconfig::read_from(kubeconfig)
            .with_context(|| format!("read kubeconfig {}", kubeconfig.display()))?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        Ok((
            Cluster::Real(kubeconfig.to_path_buf()),
            Client::try_from(cfg)?,
        ))
    }

    /// The kubeconfig an operator process uses (in-process: written into `dir`).
    pub fn kubeconfig(&self, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
        match self {
            Cluster::InProcess(s) => {
                let p = dir.join(name);
                s.write_kubeconfig(&p)?;
                Ok(p)
            }
            Cluster::Real(p) => Ok(p.clone()),
        }
    }

    /// In-process: stops the server. A real cluster is left as it is.
    pub async fn shutdown(self) {
        if let Cluster::InProcess(s) = self {
            s.shutdown().await;
        }
    }

    /// The API server's request counters start again at zero (in-process only).
    pub fn reset_stats(&self) {
        if let Some(s) = self.server() {
            s.reset_stats();
        }
    }

    /// One Application (in-process: read straight from the stand-in's store, without a request).
    pub async fn get_app(&self, client: &Client, ns: &str, name: &str) -> Option<Value> {
        match self {
            Cluster::InProcess(s) => {
                s.get_object("keelson.dev", "v1alpha1", "applications", Some(ns), name)
            }
            Cluster::Real(_) => apps_api(client, ns)
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|o| serde_json::to_value(o).ok()),
        }
    }

    /// Every object of one resource in `ns` (in-process: straight from the stand-in's store).
    pub async fn list(
        &self,
        client: &Client,
        ns: &str,
        (api_version, kind): (&str, &str),
    ) -> anyhow::Result<Vec<Value>> {
        match self {
            Cluster::InProcess(s) => {
                let r = resource(api_version, kind);
                Ok(s.list_objects(&r.group, &r.version, &r.plural, Some(ns)))
            }
            Cluster::Real(_) => Ok(dynamic_api(client, ns, api_version, kind)
                .list(&ListParams::default())
                .await
                .with_context(|| format!("list {kind} in {ns}"))?
                .items
                .into_iter()
                .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
                .collect()),
        }
    }

    /// One Deployment (in-process: straight from the stand-in's store).
    pub async fn get_deployment(
        &self,
        api: &Api<DynamicObject>,
        ns: &str,
        name: &str,
    ) -> anyhow::Result<Option<Value>> {
        match self {
            Cluster::InProcess(s) => Ok(s.get_object("apps", "v1", "deployments", Some(ns), name)),
            Cluster::Real(_) => Ok(api
                .get_opt(name)
                .await?
                .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))),
        }
    }
}

/// The API resource of one of Keelson's kinds (or the Application) by apiVersion and kind.
pub fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let plural = child_kinds()
        .into_iter()
        .find(|(g, v, k, _)| *g == group && *v == version && *k == kind)
        .map(|(_, _, _, p)| p.to_string())
        .unwrap_or_else(|| format!("{}s", kind.to_ascii_lowercase()));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural)
}

/// A namespaced `Api` for one of Keelson's kinds (or the Application) by apiVersion and kind.
pub fn dynamic_api(client: &Client, ns: &str, api_version: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource(api_version, kind))
}

/// The Applications of `ns`.
pub fn apps_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    dynamic_api(client, ns, "keelson.dev/v1alpha1", "Application")
}

/// Keelson's CRD, and on the stand-in the ServiceMonitor CRD (the upstream one from
/// `KEELSON_THIRD_PARTY_CRDS`, else a stand-in serving its API); a real cluster keeps what it has.
pub async fn install_crds(client: &Client, in_process: bool) -> anyhow::Result<()> {
    let path = repo_root().join("crds/keelson.dev_applications.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    harness::apply_crd(client, &serde_norway::from_str(&text)?).await?;
    if in_process {
        let crd = harness::third_party_crd(harness::SERVICE_MONITORS_CRD, true)?;
        harness::apply_crd(client, &crd).await?;
    }
    Ok(())
}

pub async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("create namespace {name}"))?;
    Ok(())
}

/// Deletes a namespace and waits up to `wait` until it is gone (its pods stopped), so that the
/// next measurement does not share the nodes with it. Returns whether it is gone.
pub async fn delete_namespace(client: &Client, name: &str, wait: Duration) -> bool {
    let api = Api::<Namespace>::all(client.clone());
    if let Err(e) = api.delete(name, &DeleteParams::background()).await {
        eprintln!("bench: delete namespace {name}: {e}");
        return false;
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok(None) = api.get_opt(name).await {
            return true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!("bench: namespace {name} was still terminating after {wait:?}; going on");
    false
}

/// The optional APIs of the stand-in: ServiceMonitors (its CRD is installed) but no Gateway API.
pub const STAND_IN_CAPABILITIES: ApiCapabilities = ApiCapabilities {
    service_monitors: true,
    http_routes: false,
};

/// Which optional APIs the cluster serves, as the operator discovers them: the baseline
/// renders the same children the operator builds.
pub async fn capabilities(cluster: &Cluster, client: &Client) -> anyhow::Result<ApiCapabilities> {
    if !cluster.is_real() {
        return Ok(STAND_IN_CAPABILITIES);
    }
    let serves = |group: &'static str, version: &'static str, plural: &'static str| async move {
        match discovery::oneshot::pinned_group(client, &GroupVersion::gv(group, version)).await {
            Ok(g) => Ok(g
                .resources_by_stability()
                .iter()
                .any(|(r, _)| r.plural == plural)),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
            Err(e) => Err(anyhow::Error::new(e).context(format!(
                "discover whether the cluster serves {group}/{version}"
            ))),
        }
    };
    Ok(ApiCapabilities {
        service_monitors: serves("monitoring.coreos.com", "v1", "servicemonitors").await?,
        http_routes: serves("gateway.networking.k8s.io", "v1", "httproutes").await?,
    })
}
