//! The one registry of child kinds.
//!
//! Every kind of object Keelson creates for an Application is declared here, once: a [`Child`]
//! impl says how it is written ([`Write`]), what its watch keeps ([`WatchMode`]) and which
//! optional API it needs ([`OptionalApi`]); one line of the list at the bottom registers it. From
//! that line come the desired-children struct ([`Children`]), the watch stores ([`Stores`]) and
//! every pass over the kinds ([`for_each_kind`], in apply order): starting the watches and
//! waiting for their first list, apply, prune, the RBAC rules `keelson rbac` prints, the metric
//! labels and the kind names in Events.
//!
//! Adding a kind is its builder under `build/`, its `Child` impl and its line in the list.

use std::{borrow::Cow, collections::BTreeSet, fmt::Debug, sync::Mutex};

use k8s_openapi::api::{
    apps::v1::{Deployment, DeploymentSpec, StatefulSet},
    autoscaling::v2::{HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec},
    core::v1::{Secret, Service},
    networking::v1::Ingress,
    policy::v1::PodDisruptionBudget,
};
use kube::{Resource, core::NamespaceResourceScope};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    build::Skipped,
    controller::watch::{KindStores, Workload, WorkloadFlag, hash_value},
    external::{httproutes::HttpRoute, servicemonitors::ServiceMonitor},
};

/// How Keelson writes the children of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Server-side apply with the `keelson` field manager, forced, on every change (RBAC verbs:
    /// create, delete, list, patch, watch).
    Apply,
    /// Created when missing, never written again (RBAC verbs: create, delete, list, watch), e.g.
    /// credentials that must survive any change of the spec.
    CreateOnly,
}

impl Write {
    /// The RBAC verbs the controller needs on a kind written this way: its writes, its watches
    /// (list, watch; they also answer the ownership check, so no name is read with a get) and
    /// its prune (delete). An apply that creates its object is authorized as a create.
    pub const fn verbs(self) -> &'static [&'static str] {
        match self {
            Write::Apply => &["create", "delete", "list", "patch", "watch"],
            Write::CreateOnly => &["create", "delete", "list", "watch"],
        }
    }
}

/// What the watch of a kind keeps of each child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchMode {
    /// Metadata only (`PartialObjectMeta`): resourceVersion, generation, labels, annotations,
    /// owner references.
    Metadata,
    /// Whole objects, reduced on arrival to what [`Child::spec_hash`] and [`Child::workload`]
    /// read.
    Whole,
}

/// An API that not every cluster serves. Children that need it are built, then set aside as
/// [`Skipped`] (and reported in status) while the cluster does not serve it; its watch starts
/// once discovery finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OptionalApi {
    /// monitoring.coreos.com/v1 (Prometheus Operator).
    ServiceMonitors,
    /// gateway.networking.k8s.io/v1 (Gateway API).
    HttpRoutes,
}

/// One desired child of kind `K`, as build produces it.
pub trait DesiredChild<K> {
    /// The child's name.
    fn name(&self) -> &str;
    /// The object to write this pass; `None` when a create-only child needs no write.
    fn object(&self) -> Option<&K>;
}

impl<K: Child> DesiredChild<K> for K {
    fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    fn object(&self) -> Option<&K> {
        Some(self)
    }
}

/// A desired child of a [`Write::CreateOnly`] kind: its name, kept from prune, and the object
/// to create when the child does not exist yet.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateOnly<K> {
    /// The child's name.
    pub name: String,
    /// The object to create when the child does not exist; `None` when it exists.
    pub create: Option<K>,
}

impl<K: Child> DesiredChild<K> for CreateOnly<K> {
    fn name(&self) -> &str {
        &self.name
    }

    fn object(&self) -> Option<&K> {
        self.create.as_ref()
    }
}

/// What the API server answered to an apply, as apply remembers it (see [`Child::answered`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "AnsweredObject")]
pub struct Answered {
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// [`Child::spec_hash`] of the object answered.
    pub spec: Option<u64>,
}

/// The fields of an answer [`Answered`] reads; serde skips the rest without keeping it.
#[derive(serde::Deserialize)]
struct AnsweredObject {
    #[serde(default)]
    metadata: AnsweredMeta,
}

#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnsweredMeta {
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
}

/// The fields of an answer [`Child::answered_with_spec`] reads: [`AnsweredMeta`] and a spec of
/// type `S`.
#[derive(serde::Deserialize)]
struct AnsweredWithSpec<S: Default> {
    #[serde(default)]
    metadata: AnsweredMeta,
    #[serde(default)]
    spec: S,
}

/// Read an apply's answer with its spec (of type `S`), hashed by `hash`; managed fields and
/// status are skipped without being kept.
fn answered_with<S: DeserializeOwned + Default>(
    text: &str,
    hash: impl FnOnce(&S) -> u64,
) -> serde_json::Result<Answered> {
    let o: AnsweredWithSpec<S> = serde_json::from_str(text)?;
    Ok(Answered {
        resource_version: o.metadata.resource_version,
        generation: o.metadata.generation,
        spec: Some(hash(&o.spec)),
    })
}

/// A hash of a Deployment's spec without `spec.replicas`: what Keelson applies to a Deployment
/// whose replicas an autoscaler sets (each scale moves the replicas and the generation, nothing
/// else).
pub fn deployment_spec_hash(spec: &DeploymentSpec) -> u64 {
    if spec.replicas.is_none() {
        return hash_value(spec);
    }
    let mut spec = spec.clone();
    spec.replicas = None;
    hash_value(&spec)
}

impl From<AnsweredObject> for Answered {
    fn from(o: AnsweredObject) -> Self {
        Answered {
            resource_version: o.metadata.resource_version,
            generation: o.metadata.generation,
            spec: None,
        }
    }
}

/// The declaration of a child kind. The defaults suit a kind that is applied, watched as
/// metadata, and served by every cluster.
pub trait Child:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Serialize
    + DeserializeOwned
    + Clone
    + Debug
    + Send
    + Sync
    + 'static
{
    /// What build produces for one child: the object itself for [`Write::Apply`], a
    /// [`CreateOnly`] for [`Write::CreateOnly`].
    type Desired: DesiredChild<Self> + Clone + Debug + PartialEq + Send + Sync;

    /// How the children are written.
    const WRITE: Write = Write::Apply;

    /// What the watch keeps: whole objects when [`Child::spec_hash`] or [`Child::workload`]
    /// read more than metadata.
    const WATCH: WatchMode = WatchMode::Metadata;

    /// The optional API the kind belongs to; `None` when every cluster serves it.
    const API: Option<OptionalApi> = None;

    /// Whether the controller reads single objects of the kind by name (RBAC verb `get`), beyond
    /// what its watches list: StatefulSets, read whole before one is replaced to grow a
    /// database's volume (see [`crate::controller::volumes`]).
    const READ_BY_NAME: bool = false;

    /// A hash of the spec, or of the part of it that Keelson alone writes, for kinds watched
    /// whole: an HPA (no generation), a Deployment (all but `spec.replicas`).
    fn spec_hash(&self) -> Option<u64> {
        None
    }

    /// Whether apply tells that this child's spec moved since it was applied by its
    /// [`Child::spec_hash`] rather than by its generation: for kinds without a generation, and
    /// for children whose generation others move (a Deployment whose replicas an autoscaler
    /// scales: Keelson does not apply its `spec.replicas`, so an apply on every scale would be
    /// a wasted request).
    fn compares_spec(&self) -> bool {
        false
    }

    /// What apply keeps of the API server's answer to an apply (the object as it now is, in
    /// JSON): its resourceVersion and generation. Read without the rest of the object (its
    /// managed fields are most of it).
    ///
    /// Errors: the answer is not an object of the kind.
    fn answered(text: &str) -> serde_json::Result<Answered> {
        serde_json::from_str(text)
    }

    /// [`Child::answered`] and the [`Child::spec_hash`] of the answer, for a child that
    /// [`Child::compares_spec`]. The default reads no spec.
    ///
    /// Errors: the answer is not an object of the kind.
    fn answered_with_spec(text: &str) -> serde_json::Result<Answered> {
        Self::answered(text)
    }

    /// Replica counts, for workloads.
    fn workload(&self) -> Option<Workload> {
        None
    }

    /// The replicas an autoscaler wants, for autoscalers.
    fn scale_to(&self) -> Option<i32> {
        None
    }
}

impl Child for Secret {
    // Credentials: generated once, never replaced while they exist.
    type Desired = CreateOnly<Secret>;
    const WRITE: Write = Write::CreateOnly;
}

impl Child for Service {
    type Desired = Self;
}

impl Child for StatefulSet {
    type Desired = Self;
    const WATCH: WatchMode = WatchMode::Whole;
    const READ_BY_NAME: bool = true;
    fn workload(&self) -> Option<Workload> {
        let st = self.status.as_ref();
        let revision_pending = st.is_some_and(|s| {
            s.update_revision.is_some() && s.current_revision != s.update_revision
        });
        Some(Workload {
            replicas: self.spec.replicas,
            observed_generation: st.and_then(|s| s.observed_generation),
            current: st.map_or(0, |s| s.replicas),
            ready: st.and_then(|s| s.ready_replicas).unwrap_or(0),
            updated: st.and_then(|s| s.updated_replicas).unwrap_or(0),
            available: st.and_then(|s| s.available_replicas).unwrap_or(0),
            terminating: 0,
            applies_replicas: crate::controller::handover::applies_replicas(&self.metadata),
            claims: crate::controller::volumes::claims_fingerprint(self),
            flag: if revision_pending {
                WorkloadFlag::RevisionPending
            } else {
                WorkloadFlag::None
            },
        })
    }
}

impl Child for Deployment {
    type Desired = Self;
    const WATCH: WatchMode = WatchMode::Whole;
    fn spec_hash(&self) -> Option<u64> {
        Some(deployment_spec_hash(&self.spec))
    }
    // Unset replicas: an autoscaler's (see `controller::handover`).
    fn compares_spec(&self) -> bool {
        self.spec.replicas.is_none()
    }
    fn answered_with_spec(text: &str) -> serde_json::Result<Answered> {
        answered_with(text, deployment_spec_hash)
    }
    fn workload(&self) -> Option<Workload> {
        let st = self.status.as_ref();
        let deadline_exceeded = st
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| {
                c.type_.as_deref() == Some("Progressing")
                    && c.status.as_deref() == Some("False")
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            });
        Some(Workload {
            replicas: self.spec.replicas,
            observed_generation: st.and_then(|s| s.observed_generation),
            current: st.and_then(|s| s.replicas).unwrap_or(0),
            ready: st.and_then(|s| s.ready_replicas).unwrap_or(0),
            updated: st.and_then(|s| s.updated_replicas).unwrap_or(0),
            available: st.and_then(|s| s.available_replicas).unwrap_or(0),
            terminating: st.and_then(|s| s.terminating_replicas).unwrap_or(0),
            applies_replicas: crate::controller::handover::applies_replicas(&self.metadata),
            claims: 0,
            flag: if deadline_exceeded {
                WorkloadFlag::DeadlineExceeded
            } else {
                WorkloadFlag::None
            },
        })
    }
}

impl Child for HorizontalPodAutoscaler {
    type Desired = Self;
    // An HPA has no generation, and its controller writes its status every few seconds: compare
    // the spec instead of the resourceVersion.
    const WATCH: WatchMode = WatchMode::Whole;
    fn spec_hash(&self) -> Option<u64> {
        Some(hash_value(&self.spec))
    }
    fn compares_spec(&self) -> bool {
        true
    }
    fn answered_with_spec(text: &str) -> serde_json::Result<Answered> {
        answered_with(text, hash_value::<Option<HorizontalPodAutoscalerSpec>>)
    }
    fn scale_to(&self) -> Option<i32> {
        self.status
            .as_ref()
            .map(|s| s.desired_replicas)
            .filter(|n| *n > 0)
    }
}

impl Child for PodDisruptionBudget {
    type Desired = Self;
}

impl Child for ServiceMonitor {
    type Desired = Self;
    const API: Option<OptionalApi> = Some(OptionalApi::ServiceMonitors);
}

impl Child for Ingress {
    type Desired = Self;
}

impl Child for HttpRoute {
    type Desired = Self;
    const API: Option<OptionalApi> = Some(OptionalApi::HttpRoutes);
}

/// A registered kind: where its desired children and its watch live. Implemented by the list
/// at the bottom of this file, for every kind in it and no other.
pub trait Registered: Child {
    /// This kind's desired children.
    fn desired(children: &Children) -> &Vec<Self::Desired>;
    /// This kind's desired children, to fill or set aside.
    fn desired_mut(children: &mut Children) -> &mut Vec<Self::Desired>;
    /// This kind's watch.
    fn stores(stores: &Stores) -> &KindStores<Self>;
}

/// Something done once per registered kind; see [`for_each_kind`].
pub trait KindVisitor {
    /// Do it for kind `K`.
    fn visit<K: Registered>(&mut self);
}

macro_rules! child_kinds {
    ($( $(#[$doc:meta])* $field:ident: $kind:ty, )*) => {
        /// Every desired child of one Application, by kind, in apply order.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct Children {
            $( $(#[$doc])* pub $field: Vec<<$kind as Child>::Desired>, )*
            /// What the cluster's missing APIs kept out.
            pub skipped: Vec<Skipped>,
        }

        /// The watch of every child kind.
        #[derive(Default)]
        pub struct Stores {
            $( $(#[$doc])* pub $field: KindStores<$kind>, )*
        }

        $(
            impl Registered for $kind {
                fn desired(children: &Children) -> &Vec<Self::Desired> {
                    &children.$field
                }
                fn desired_mut(children: &mut Children) -> &mut Vec<Self::Desired> {
                    &mut children.$field
                }
                fn stores(stores: &Stores) -> &KindStores<Self> {
                    &stores.$field
                }
            }
        )*

        /// Visit every registered kind, in apply order.
        pub fn for_each_kind(visitor: &mut impl KindVisitor) {
            $( visitor.visit::<$kind>(); )*
        }
    };
}

// The registry, in apply order: what a workload needs (its credentials, its Services) before the
// workload, the workloads before what refers to them.
child_kinds! {
    /// Credentials Secrets of the databases.
    secrets: Secret,
    /// Services of the databases and of the services with ports.
    services: Service,
    /// Database StatefulSets.
    stateful_sets: StatefulSet,
    /// Service Deployments.
    deployments: Deployment,
    /// Autoscalers.
    hpas: HorizontalPodAutoscaler,
    /// Disruption budgets.
    pdbs: PodDisruptionBudget,
    /// ServiceMonitors.
    service_monitors: ServiceMonitor,
    /// The Ingress.
    ingresses: Ingress,
    /// The HTTPRoute.
    http_routes: HttpRoute,
}

/// A string of a kind's `Resource` impl as `'static` (k8s-openapi and kube's derive hand out
/// constants; anything else is interned once).
fn leak_once(s: Cow<'static, str>) -> &'static str {
    static INTERNED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    match s {
        Cow::Borrowed(s) => s,
        Cow::Owned(s) => {
            let mut names = INTERNED.lock().expect("lock");
            if let Some(k) = names.get(s.as_str()) {
                return k;
            }
            let leaked: &'static str = Box::leak(s.into_boxed_str());
            names.insert(leaked);
            leaked
        }
    }
}

/// The kind's name, e.g. `Deployment`: the `kind` label of metrics, and the kind in Events.
pub fn kind_name<K: Resource<DynamicType = ()>>() -> &'static str {
    leak_once(K::kind(&()))
}

/// The kind's API group/version, e.g. `apps/v1`.
pub fn api_version<K: Resource<DynamicType = ()>>() -> &'static str {
    leak_once(K::api_version(&()))
}

/// What identifies a registered kind to the API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// The API group (`""` for core).
    pub group: &'static str,
    /// The version.
    pub version: &'static str,
    /// The kind.
    pub kind: &'static str,
    /// The resource (plural).
    pub plural: &'static str,
    /// How Keelson writes it.
    pub write: Write,
    /// Whether single objects are read by name ([`Child::READ_BY_NAME`]).
    pub read_by_name: bool,
    /// The optional API it belongs to.
    pub api: Option<OptionalApi>,
}

/// Every registered kind, in apply order.
pub fn all() -> Vec<KindInfo> {
    struct Collect(Vec<KindInfo>);
    impl KindVisitor for Collect {
        fn visit<K: Registered>(&mut self) {
            self.0.push(KindInfo {
                group: leak_once(K::group(&())),
                version: leak_once(K::version(&())),
                kind: kind_name::<K>(),
                plural: leak_once(K::plural(&())),
                write: K::WRITE,
                read_by_name: K::READ_BY_NAME,
                api: K::API,
            });
        }
    }
    let mut c = Collect(Vec::new());
    for_each_kind(&mut c);
    c.0
}

impl Children {
    /// Set aside the children whose optional API the cluster does not serve, as [`Skipped`].
    pub fn set_aside_unserved(&mut self, serves: impl Fn(OptionalApi) -> bool) {
        struct SetAside<'a, F> {
            children: &'a mut Children,
            serves: F,
        }
        impl<F: Fn(OptionalApi) -> bool> KindVisitor for SetAside<'_, F> {
            fn visit<K: Registered>(&mut self) {
                if K::API.is_none_or(|api| (self.serves)(api)) {
                    return;
                }
                let unserved = std::mem::take(K::desired_mut(self.children));
                if !unserved.is_empty() {
                    self.children.skipped.push(Skipped {
                        kind: kind_name::<K>(),
                        api: api_version::<K>(),
                        names: unserved.iter().map(|d| d.name().to_string()).collect(),
                    });
                }
            }
        }
        for_each_kind(&mut SetAside {
            children: self,
            serves,
        });
    }

    /// Whether the children of kind `K` were set aside this pass.
    pub fn skipped_kind<K: Registered>(&self) -> bool {
        let kind = kind_name::<K>();
        self.skipped.iter().any(|s| s.kind == kind)
    }

    /// Every object to write, as JSON with its `apiVersion` and `kind`, in apply order.
    pub fn to_values(&self) -> Vec<serde_json::Value> {
        struct Values<'a>(&'a Children, Vec<serde_json::Value>);
        impl KindVisitor for Values<'_> {
            fn visit<K: Registered>(&mut self) {
                let objects = K::desired(self.0).iter().filter_map(|d| d.object());
                self.1.extend(objects.map(typed_value));
            }
        }
        let mut v = Values(self, Vec::new());
        for_each_kind(&mut v);
        v.1
    }
}

impl Stores {
    /// Fill every kind's index with the objects of `objects` of that kind (JSON, as the API
    /// server returns them) instead of watching. For tests and offline tools.
    ///
    /// Panics when an object of a registered kind does not deserialize as that kind.
    pub fn preload(&self, objects: &[serde_json::Value]) {
        struct Preload<'a>(&'a Stores, &'a [serde_json::Value]);
        impl KindVisitor for Preload<'_> {
            fn visit<K: Registered>(&mut self) {
                let kind = kind_name::<K>();
                let typed: Vec<K> = self
                    .1
                    .iter()
                    .filter(|o| o["kind"] == kind)
                    .map(|o| serde_json::from_value(o.clone()).expect("an object of its kind"))
                    .collect();
                K::stores(self.0).preload(&typed);
            }
        }
        for_each_kind(&mut Preload(self, objects));
    }
}

/// An object as JSON with its `apiVersion` and `kind`.
pub fn typed_value<K>(obj: &K) -> serde_json::Value
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let mut v = serde_json::to_value(obj).expect("objects serialize");
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), K::api_version(&()).into());
        m.insert("kind".into(), K::kind(&()).into());
    }
    v
}
