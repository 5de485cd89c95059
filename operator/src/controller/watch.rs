//! Watches of the children: one compact index per kind (and per watched namespace), and a stream
//! of the Applications whose children changed, so a child that is edited or deleted is restored
//! at once.
//!
//! The index keeps, per child, only what the controller reads: its resourceVersion and generation,
//! hashes of its labels, annotations and owner references, its controller owner, a hash of its
//! spec for kinds without a generation, and the replica counts of Deployments and StatefulSets.
//! Watched objects are reduced to that as they arrive and never stored whole, which keeps the
//! operator's memory small with thousands of Applications; an index by owner makes "the children
//! of this Application" a lookup instead of a scan.

use std::{
    collections::HashMap,
    fmt::Debug,
    hash::{Hash, Hasher},
    marker::PhantomData,
    sync::{Arc, OnceLock, RwLock},
};

use futures::{Stream, StreamExt, channel::mpsc::UnboundedSender};
use kube::{
    Api, Client, Resource,
    api::ObjectMeta,
    core::{NamespaceResourceScope, PartialObjectMeta},
    runtime::{WatchStreamExt, reflector::ObjectRef, watcher},
};
use serde::{Serialize, de::DeserializeOwned};

pub use crate::kinds::Child;
use crate::{
    api::Application,
    build::labels,
    kinds::{WatchMode, kind_name},
};

/// Which namespaces the controller watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace.
    All,
    /// Only these.
    Namespaces(Vec<String>),
}

impl Scope {
    /// The keys of the per-namespace stores: `None` for all namespaces.
    pub fn keys(&self) -> Vec<Option<String>> {
        match self {
            Scope::All => vec![None],
            Scope::Namespaces(ns) => ns.iter().cloned().map(Some).collect(),
        }
    }

    /// An API of `K` for one key of [`Scope::keys`].
    pub fn api<K>(client: &Client, key: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match key {
            None => Api::all(client.clone()),
            Some(ns) => Api::namespaced(client.clone(), ns),
        }
    }
}

/// Replica counts of a Deployment or StatefulSet, as its controller reports them, reduced to
/// what readiness and rollout progress need, and a StatefulSet's claim templates (40 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    /// `spec.replicas` (`None` when unset: an autoscaler's, or the default 1).
    pub replicas: Option<i32>,
    /// `status.observedGeneration`.
    pub observed_generation: Option<i64>,
    /// `status.replicas`: pods of every revision, not counting terminating ones.
    pub current: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.updatedReplicas`: pods of the latest revision.
    pub updated: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// `status.terminatingReplicas` (Deployments, Kubernetes 1.33+; 0 when not reported).
    pub terminating: i32,
    /// A Deployment's `Progressing` condition is `False` with reason `ProgressDeadlineExceeded`;
    /// for a StatefulSet, `currentRevision` differs from `updateRevision`.
    pub flag: WorkloadFlag,
    /// Whether Keelson's apply owns `spec.replicas` (see [`super::handover`]).
    pub applies_replicas: bool,
    /// A StatefulSet's [`super::volumes::claims_fingerprint`] (0 for Deployments).
    pub claims: u64,
}

/// The one fact about a workload's rollout that its counts do not show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorkloadFlag {
    /// Nothing more to say.
    #[default]
    None,
    /// A Deployment's rollout exceeded `spec.progressDeadlineSeconds` (condition `Progressing`
    /// `False`, reason `ProgressDeadlineExceeded`).
    DeadlineExceeded,
    /// A StatefulSet's `currentRevision` is not yet its `updateRevision`.
    RevisionPending,
}

/// The controller owner of a child, when it is an Application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The Application's uid.
    pub uid: String,
    /// The Application's name.
    pub name: String,
}

/// What is known of a child that no Application controls (kept only for such children, so the
/// common case costs one pointer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unowned {
    /// Its controller owner reference as `Kind/name`, when something else controls it.
    pub controller: Option<String>,
    /// The value of its `keelson.dev/adopt` annotation: the Application allowed to take it over.
    pub adopt: Option<String>,
    /// The value of its `keelson.dev/application` label: the Application it was made for (a
    /// retained credentials Secret keeps it after its owner went).
    pub application: Option<String>,
    /// Whether it carries `app.kubernetes.io/managed-by: keelson`.
    pub keelson_made: bool,
}

/// A `metadata.resourceVersion`, kept in 8 bytes and compared for equality only. The API
/// server's are decimal numbers (etcd revisions), kept as the number; the contract calls them
/// opaque, so any other text is kept as a hash of it, with the top bit set, apart from every
/// number (Kubernetes API conventions, "Concurrency Control and Consistency").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Revision(u64);

/// The bit that marks a [`Revision`] kept as a hash of its text.
const HASHED: u64 = 1 << 63;

impl Revision {
    /// The revision a resourceVersion's text names.
    pub fn parse(text: &str) -> Revision {
        let canonical = !text.starts_with('+') && (text.len() == 1 || !text.starts_with('0'));
        match text.parse::<u64>() {
            Ok(n) if canonical && n & HASHED == 0 => Revision(n),
            _ => Revision(hash_one(text) | HASHED),
        }
    }

    /// [`Revision::parse`] of an optional text.
    pub fn of(text: Option<&str>) -> Option<Revision> {
        text.map(Revision::parse)
    }

    /// The resourceVersion as the API server wrote it, when it was a number (`None` for one
    /// kept as a hash: its text is gone).
    pub fn text(self) -> Option<String> {
        (self.0 & HASHED == 0).then(|| self.0.to_string())
    }
}

/// What the controller remembers of one child (96 bytes, and its metadata hashes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// `metadata.resourceVersion`.
    pub resource_version: Option<Revision>,
    /// `metadata.generation`, for kinds that have one.
    pub generation: Option<i64>,
    /// Sorted hashes of each label, each annotation and each owner reference, for kinds with a
    /// generation or a spec hash (the only ones whose apply is skipped on them, see
    /// [`Observed::has_metadata`]); empty otherwise.
    pub metadata: Box<[u64]>,
    /// [`Child::spec_hash`], for kinds watched whole that have one (an HPA's spec, a
    /// Deployment's without its replicas).
    pub spec: Option<u64>,
    /// Replica counts, for Deployments and StatefulSets.
    pub workload: Option<Box<Workload>>,
    /// The replicas an autoscaler wants (`status.desiredReplicas` of an HPA).
    pub scale_to: Option<i32>,
    /// The controller owner, if it is an Application (one allocation shared by every child of
    /// that Application in an index).
    pub owner: Option<Arc<Owner>>,
    /// Who controls it otherwise (`None` when an Application does).
    pub unowned: Option<Box<Unowned>>,
}

fn hash_one(value: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// The hashes [`Observed::metadata`] holds for `meta`: one per label, annotation and owner
/// reference, so a child's metadata can be checked for containing what Keelson applied whatever
/// others added to it.
pub fn metadata_hashes(meta: &ObjectMeta) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for (k, v) in meta.labels.iter().flatten() {
        out.push(hash_one(("label", k, v)));
    }
    for (k, v) in meta.annotations.iter().flatten() {
        out.push(hash_one(("annotation", k, v)));
    }
    for r in meta.owner_references.iter().flatten() {
        out.push(hash_one((
            "owner",
            &r.api_version,
            &r.kind,
            &r.name,
            &r.uid,
            r.controller,
            r.block_owner_deletion,
        )));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A hash of any serializable value: XXH3 (64 bits, seed 0) of its compact JSON, streamed into
/// the hasher. The algorithm is specified, so the hashes Keelson keeps in `status.inventory`
/// mean the same to every build of it (the standard library's `DefaultHasher` may change
/// between Rust releases).
pub fn hash_value<T: Serialize>(value: &T) -> u64 {
    struct HashWriter(xxhash_rust::xxh3::Xxh3Default);
    impl std::io::Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = HashWriter(xxhash_rust::xxh3::Xxh3Default::new());
    serde_json::to_writer(&mut w, value).expect("objects serialize");
    w.0.digest()
}

impl Observed {
    /// What the metadata alone tells.
    pub fn of_meta(meta: &ObjectMeta) -> Self {
        let owner = owner_of_meta(meta);
        let unowned = owner.is_none().then(|| Box::new(unowned_of_meta(meta)));
        Observed {
            resource_version: Revision::of(meta.resource_version.as_deref()),
            generation: meta.generation,
            metadata: match meta.generation {
                Some(_) => metadata_hashes(meta).into_boxed_slice(),
                None => Box::default(),
            },
            spec: None,
            workload: None,
            scale_to: None,
            owner,
            unowned,
        }
    }

    /// What is kept of an object without Keelson's label: only who controls it (its
    /// resourceVersion, generation and metadata hashes are of no use for an object Keelson does
    /// not write).
    pub fn of_foreign(meta: &ObjectMeta) -> Self {
        let Observed { owner, unowned, .. } = Observed::of_meta(meta);
        Observed {
            owner,
            unowned,
            ..Observed::default()
        }
    }

    /// What the controller remembers of `obj`.
    pub fn of<K: Child>(obj: &K) -> Self {
        let mut seen = Observed::of_meta(obj.meta());
        let spec = obj.spec_hash();
        if spec.is_some() && seen.metadata.is_empty() {
            seen.metadata = metadata_hashes(obj.meta()).into_boxed_slice();
        }
        Observed {
            spec,
            workload: obj.workload().map(Box::new),
            scale_to: obj.scale_to(),
            ..seen
        }
    }

    /// Whether every hash of `wanted` (from [`metadata_hashes`]) is in this child's metadata.
    pub fn has_metadata(&self, wanted: &[u64]) -> bool {
        wanted
            .iter()
            .all(|h| self.metadata.binary_search(h).is_ok())
    }

    /// Whether a change from `self` to `new` can matter to the controller: anything but the
    /// resourceVersion differs, or the kind shows neither a generation nor a spec hash (so a new
    /// resourceVersion is all there is to see). Entries of unlabelled objects
    /// ([`Observed::of_foreign`]) have no resourceVersion: who controls them is all they compare.
    fn differs(&self, new: &Observed) -> bool {
        if new.generation.is_none() && new.spec.is_none() && new.resource_version.is_some() {
            return self.resource_version != new.resource_version;
        }
        self.generation != new.generation
            || self.metadata != new.metadata
            || self.spec != new.spec
            || self.workload != new.workload
            || self.scale_to != new.scale_to
            || self.owner != new.owner
            || self.unowned != new.unowned
    }

    /// The Application to wake when this child changes: its controller owner, or for a child
    /// no Application controls, the Application its label names, else the one its adoption
    /// annotation names.
    fn wakes(&self) -> Option<Arc<Owner>> {
        self.owner.clone().or_else(|| {
            let u = self.unowned.as_ref()?;
            let name = u.application.clone().or_else(|| u.adopt.clone())?;
            Some(Arc::new(Owner {
                uid: String::new(),
                name,
            }))
        })
    }
}

/// What [`Unowned`] keeps of `meta`: its controller owner reference, if any, its adoption
/// annotation and its Application label.
pub fn unowned_of_meta(meta: &ObjectMeta) -> Unowned {
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| format!("{}/{}", r.kind, r.name));
    Unowned {
        controller,
        adopt: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(labels::ADOPT_ANNOTATION).cloned()),
        application: meta
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::APPLICATION_LABEL).cloned()),
        keelson_made: meta
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::MANAGED_BY_LABEL))
            .is_some_and(|v| v == labels::MANAGED_BY),
    }
}

fn owner_of_meta(meta: &ObjectMeta) -> Option<Arc<Owner>> {
    let r = meta.owner_references.as_ref()?.iter().find(|r| {
        r.controller == Some(true)
            && r.kind == "Application"
            && r.api_version == "keelson.dev/v1alpha1"
    })?;
    Some(Arc::new(Owner {
        uid: r.uid.clone(),
        name: r.name.clone(),
    }))
}

/// (namespace, name), as a watch event names a child.
type Key = (String, String);

/// The children of one kind in one watched scope. Each namespace and each name is held once
/// (`Arc<str>`), shared by the index by owner, and each owner once, shared by its children.
#[derive(Default)]
struct Index {
    /// Namespace → name → what is known.
    objects: HashMap<Arc<str>, HashMap<Arc<str>, Observed>>,
    /// Owner uid → the owner and the children it controls.
    by_owner: HashMap<String, Owned>,
    /// How many children `objects` holds.
    len: usize,
}

/// The children one Application controls, as (namespace, name).
struct Owned {
    owner: Arc<Owner>,
    children: Vec<(Arc<str>, Arc<str>)>,
}

impl Index {
    fn get(&self, namespace: &str, name: &str) -> Option<&Observed> {
        self.objects.get(namespace)?.get(name)
    }

    fn insert(&mut self, namespace: &str, name: &str, mut obs: Observed) -> Option<Observed> {
        let ns = match self.objects.get_key_value(namespace) {
            Some((ns, _)) => ns.clone(),
            None => Arc::from(namespace),
        };
        let names = self.objects.entry(ns.clone()).or_default();
        let name = match names.get_key_value(name) {
            Some((name, _)) => name.clone(),
            None => Arc::from(name),
        };
        if let Some(o) = &mut obs.owner {
            let owned = self.by_owner.entry(o.uid.clone()).or_insert_with(|| Owned {
                owner: o.clone(),
                children: Vec::new(),
            });
            if owned.owner == *o {
                *o = owned.owner.clone();
            } else {
                owned.owner = o.clone();
            }
            if !owned
                .children
                .iter()
                .any(|(n, c)| **n == *ns && **c == *name)
            {
                owned.children.push((ns.clone(), name.clone()));
            }
        }
        let new_uid = obs.owner.as_ref().map(|o| o.uid.clone());
        let old = names.insert(name.clone(), obs);
        match old.as_ref().and_then(|o| o.owner.as_ref()) {
            None if old.is_none() => self.len += 1,
            Some(old_owner) if Some(&old_owner.uid) != new_uid.as_ref() => {
                self.unlink(&old_owner.uid, &ns, &name);
            }
            _ => {}
        }
        old
    }

    fn remove(&mut self, namespace: &str, name: &str) -> Option<Observed> {
        let names = self.objects.get_mut(namespace)?;
        let old = names.remove(name)?;
        if names.is_empty() {
            self.objects.remove(namespace);
        }
        self.len -= 1;
        if let Some(o) = &old.owner {
            self.unlink(&o.uid, namespace, name);
        }
        Some(old)
    }

    fn unlink(&mut self, uid: &str, namespace: &str, name: &str) {
        if let Some(owned) = self.by_owner.get_mut(uid) {
            owned
                .children
                .retain(|(n, c)| !(**n == *namespace && **c == *name));
            if owned.children.is_empty() {
                self.by_owner.remove(uid);
            }
        }
    }

    /// Every (namespace, name) held.
    fn keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.objects
            .iter()
            .flat_map(|(ns, names)| names.keys().map(move |n| (&**ns, &**n)))
    }

    fn clear(&mut self) {
        *self = Index::default();
    }
}

/// One scope's index, and whether its first list is complete.
struct ScopeIndex {
    index: RwLock<Index>,
    ready: tokio::sync::watch::Sender<bool>,
    /// Why the watch last failed, in words, until it lists again.
    failure: std::sync::Mutex<Option<String>>,
}

impl ScopeIndex {
    fn new() -> Arc<Self> {
        Arc::new(ScopeIndex {
            index: RwLock::default(),
            ready: tokio::sync::watch::Sender::new(false),
            failure: std::sync::Mutex::default(),
        })
    }

    fn set_failure(&self, failure: Option<String>) {
        *self.failure.lock().expect("failure lock") = failure;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().expect("index lock")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().expect("index lock")
    }
}

/// The watched children of kind `K`, set once its watch starts (at start-up, or for an optional
/// API once the cluster serves it).
pub struct KindStores<K> {
    scopes: OnceLock<Scopes>,
    /// Objects of the kind without Keelson's label (made by hand or by another tool), reduced to
    /// who controls them: what lets [`KindStores::lookup`] answer for a name the labelled
    /// index does not know without asking the API server.
    foreign: OnceLock<Scopes>,
    kind: PhantomData<fn() -> K>,
}

/// One index per watched scope (key: `None` for every namespace).
type Scopes = HashMap<Option<String>, Arc<ScopeIndex>>;

/// The index of `scopes` that holds `namespace`.
fn scope_of<'a>(scopes: &'a Scopes, namespace: &str) -> Option<&'a Arc<ScopeIndex>> {
    scopes
        .get(&None)
        .or_else(|| scopes.get(&Some(namespace.to_string())))
}

/// What the watches know of one name (see [`KindStores::lookup`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// An object of this name exists: what is known of it.
    Exists(Observed),
    /// Both watches have listed and neither holds the name: it does not exist (as far as the
    /// watches have seen).
    Absent,
    /// A watch has not listed yet: only the API server can say.
    Unknown,
}

impl<K> Default for KindStores<K> {
    fn default() -> Self {
        KindStores {
            scopes: OnceLock::new(),
            foreign: OnceLock::new(),
            kind: PhantomData,
        }
    }
}

impl<K: Child> KindStores<K> {
    /// Whether the watch of this kind has started.
    pub fn started(&self) -> bool {
        self.scopes.get().is_some()
    }

    fn scope(&self, namespace: &str) -> Option<&Arc<ScopeIndex>> {
        scope_of(self.scopes.get()?, namespace)
    }

    /// What is known of the child `name` in `namespace`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Observed> {
        self.scope(namespace)?.read().get(namespace, name).cloned()
    }

    /// What the watches know of the name `name` in `namespace`, labelled by Keelson or not: an
    /// object Keelson's watch holds, else one the watch of unlabelled objects holds, else
    /// [`Lookup::Absent`] once both have listed, else [`Lookup::Unknown`].
    pub fn lookup(&self, namespace: &str, name: &str) -> Lookup {
        if let Some(o) = self.get(namespace, name) {
            return Lookup::Exists(o);
        }
        let foreign = self.foreign.get().and_then(|s| scope_of(s, namespace));
        match (self.scope(namespace), foreign) {
            (Some(own), Some(foreign)) if *own.ready.borrow() && *foreign.ready.borrow() => {
                match foreign.read().get(namespace, name) {
                    Some(o) => Lookup::Exists(o.clone()),
                    None => Lookup::Absent,
                }
            }
            _ => Lookup::Unknown,
        }
    }

    /// The names of the children in `namespace` whose controller owner is the Application with
    /// `owner_uid`.
    pub fn owned_by(&self, namespace: &str, owner_uid: &str) -> Vec<String> {
        let Some(scope) = self.scope(namespace) else {
            return Vec::new();
        };
        scope
            .read()
            .by_owner
            .get(owner_uid)
            .map(|owned| {
                owned
                    .children
                    .iter()
                    .filter(|(ns, _)| **ns == *namespace)
                    .map(|(_, name)| name.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many children are known, over every scope.
    pub fn len(&self) -> usize {
        self.scopes
            .get()
            .map(|s| s.values().map(|i| i.read().len).sum())
            .unwrap_or(0)
    }

    /// Whether no child is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill the indexes with fixed objects, for every namespace, instead of watching (Keelson's
    /// labelled objects into its index, the others into the index of unlabelled objects), in
    /// place of what an earlier preload put there. For tests and offline tools; has no effect
    /// once the watch is set.
    pub fn preload(&self, objects: &[K]) {
        let (mut own, mut foreign) = (HashMap::new(), HashMap::new());
        for o in objects {
            let key = key_of(o.meta());
            if unowned_of_meta(o.meta()).keelson_made {
                own.insert(key, Observed::of(o));
            } else {
                foreign.insert(key, Observed::of_foreign(o.meta()));
            }
        }
        for (scopes, fresh) in [(&self.scopes, own), (&self.foreign, foreign)] {
            let scopes = scopes.get_or_init(|| HashMap::from([(None, ScopeIndex::new())]));
            if let Some(scope) = scopes.get(&None) {
                replace_all(scope, fresh);
                scope.ready.send_replace(true);
            }
        }
    }

    /// Whether the watch has started and every scope has finished its first list, so that what
    /// the index lacks is not in the cluster (prune relies on it).
    pub fn synced(&self) -> bool {
        self.scopes
            .get()
            .is_some_and(|s| s.values().all(|i| *i.ready.borrow()))
    }

    /// Why the watch of a scope (of either watch) that has not finished its first list last
    /// failed, in words (the first such scope), e.g. `could not list: deployments.apps is forbidden: ...`.
    pub fn start_failure(&self) -> Option<String> {
        let own = self.scopes.get()?.values();
        let foreign = self.foreign.get().into_iter().flat_map(|s| s.values());
        own.chain(foreign)
            .filter(|i| !*i.ready.borrow())
            .find_map(|i| i.failure.lock().expect("failure lock").clone())
    }

    /// Wait until every scope of both watches has finished its first list (at once when the
    /// watch has not started).
    pub async fn wait_until_ready(&self) {
        let own = self.scopes.get().into_iter().flat_map(|s| s.values());
        let foreign = self.foreign.get().into_iter().flat_map(|s| s.values());
        for s in own.chain(foreign) {
            let mut rx = s.ready.subscribe();
            let _ = rx.wait_for(|ready| *ready).await;
        }
    }

    /// Start watching: fill the index and send the owning Application of every child that
    /// changed in a way that matters to `owners`.
    pub fn watch(
        &self,
        client: &Client,
        scope: &Scope,
        owners: UnboundedSender<ObjectRef<Application>>,
    ) {
        let (mut map, mut foreign_map) = (HashMap::new(), HashMap::new());
        for key in scope.keys() {
            let index = ScopeIndex::new();
            let kind = kind_name::<K>();
            if K::WATCH == WatchMode::Whole {
                let observe = |o: K| (key_of(o.meta()), Observed::of(&o));
                spawn_follow(
                    Scope::api(client, &key),
                    watcher_config(),
                    index.clone(),
                    owners.clone(),
                    kind,
                    observe,
                );
            } else {
                let observe =
                    |o: PartialObjectMeta<K>| (key_of(&o.metadata), Observed::of_meta(&o.metadata));
                spawn_follow(
                    Scope::api(client, &key),
                    watcher_config(),
                    index.clone(),
                    owners.clone(),
                    kind,
                    observe,
                );
            }
            let foreign = ScopeIndex::new();
            let observe =
                |o: PartialObjectMeta<K>| (key_of(&o.metadata), Observed::of_foreign(&o.metadata));
            spawn_follow(
                Scope::api(client, &key),
                foreign_config(),
                foreign.clone(),
                owners.clone(),
                kind,
                observe,
            );
            foreign_map.insert(key.clone(), foreign);
            map.insert(key, index);
        }
        let _ = self.scopes.set(map);
        let _ = self.foreign.set(foreign_map);
    }
}

/// Follow the watch of `api` with `config` into `index` in a task of its own (metadata-only
/// requests when `T` is a `PartialObjectMeta`).
fn spawn_follow<T>(
    api: Api<T>,
    config: watcher::Config,
    index: Arc<ScopeIndex>,
    owners: UnboundedSender<ObjectRef<Application>>,
    kind: &'static str,
    observe: fn(T) -> (Key, Observed),
) where
    T: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let stream = watcher(api, config).default_backoff();
    tokio::spawn(follow(stream, index, owners, kind, observe));
}

fn key_of(meta: &ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Objects per page of a watch's list: small pages keep the memory a (re)list needs small, as
/// each page is reduced before the next one is read.
pub const LIST_PAGE_SIZE: u32 = 100;

/// The watch of the objects Keelson labels as its own, in small pages.
fn watcher_config() -> watcher::Config {
    selected(labels::MANAGED_BY_LABEL, "=")
}

/// The watch of the objects Keelson's label does not mark.
fn foreign_config() -> watcher::Config {
    selected(labels::MANAGED_BY_LABEL, "!=")
}

/// A watch of the objects whose `label` is (`=`) or is not (`!=`) Keelson's, in small pages.
fn selected(label: &str, op: &str) -> watcher::Config {
    watcher::Config::default()
        .labels(&format!("{label}{op}{}", labels::MANAGED_BY))
        .page_size(LIST_PAGE_SIZE)
}

fn owner_ref(namespace: &str, owner: &Owner) -> ObjectRef<Application> {
    ObjectRef::new(&owner.name).within(namespace)
}

/// Put `obs` in `index` as `key`: the (namespace, owner) to wake, if what changed matters, and
/// the former owner of a child whose owner changed (at most two, without an allocation for the
/// list).
fn put(index: &mut Index, key: &Key, obs: Observed) -> [Option<(String, Option<Arc<Owner>>)>; 2] {
    let (ns, name) = key;
    let owner = obs.wakes();
    let old = index.insert(ns, name, obs);
    let changed = match (&old, index.get(ns, name)) {
        (Some(old), Some(new)) => old.differs(new),
        _ => true,
    };
    let former = old
        .and_then(|o| o.wakes())
        .filter(|old_owner| Some(old_owner) != owner.as_ref());
    [
        changed.then(|| (ns.clone(), owner)),
        former.map(|o| (ns.clone(), Some(o))),
    ]
}

/// Replace the index of `scope` with a complete list; returns the (namespace, owner) of every
/// child that went, came or changed in a way that matters, and of the former owner of a child
/// whose owner changed.
fn replace_all(
    scope: &ScopeIndex,
    fresh: HashMap<Key, Observed>,
) -> Vec<(String, Option<Arc<Owner>>)> {
    let mut touched = Vec::new();
    let mut index = scope.write();
    let gone: Vec<Key> = index
        .keys()
        .filter(|(ns, name)| !fresh.contains_key(&(ns.to_string(), name.to_string())))
        .map(|(ns, name)| (ns.to_string(), name.to_string()))
        .collect();
    for (ns, name) in gone {
        if let Some(old) = index.remove(&ns, &name) {
            touched.push((ns, old.wakes()));
        }
    }
    for (key, obs) in fresh {
        touched.extend(put(&mut index, &key, obs).into_iter().flatten());
    }
    touched
}

/// Apply a watch's events to `scope`, and tell `owners` which Applications to reconcile. The
/// first list fills the index as its pages come (nothing reads an index before its first list
/// is complete, and every Application is reconciled at start anyway); a relist after a dropped
/// watch is gathered apart and reports what changed or went while the watch was down.
async fn follow<T, S>(
    stream: S,
    scope: Arc<ScopeIndex>,
    owners: UnboundedSender<ObjectRef<Application>>,
    kind: &'static str,
    observe: impl Fn(T) -> (Key, Observed),
) where
    S: Stream<Item = Result<watcher::Event<T>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut relist: Option<HashMap<Key, Observed>> = None;
    let notify = |ns: &str, owner: Option<&Arc<Owner>>| match owner {
        Some(o) => owners.unbounded_send(owner_ref(ns, o)).is_ok(),
        None => true,
    };
    let notify_all = |touched: Vec<(String, Option<Arc<Owner>>)>| {
        touched.iter().all(|(ns, owner)| notify(ns, owner.as_ref()))
    };
    while let Some(event) = stream.next().await {
        let first = !*scope.ready.borrow();
        let open = match event {
            Ok(watcher::Event::Init) if first => {
                scope.write().clear();
                true
            }
            Ok(watcher::Event::Init) => {
                relist = Some(HashMap::new());
                true
            }
            Ok(watcher::Event::InitApply(o)) if first => {
                let ((ns, name), obs) = observe(o);
                scope.write().insert(&ns, &name, obs);
                true
            }
            Ok(watcher::Event::InitApply(o)) => {
                let (key, obs) = observe(o);
                relist.get_or_insert_default().insert(key, obs);
                true
            }
            Ok(watcher::Event::InitDone) => {
                let touched = match relist.take() {
                    Some(fresh) if !first => replace_all(&scope, fresh),
                    _ => Vec::new(),
                };
                scope.set_failure(None);
                scope.ready.send_replace(true);
                notify_all(touched)
            }
            Ok(watcher::Event::Apply(o)) => {
                let (key, obs) = observe(o);
                let touched = put(&mut scope.write(), &key, obs);
                touched
                    .into_iter()
                    .flatten()
                    .all(|(ns, owner)| notify(&ns, owner.as_ref()))
            }
            Ok(watcher::Event::Delete(o)) => {
                let ((ns, name), obs) = observe(o);
                scope.write().remove(&ns, &name);
                notify(&ns, obs.wakes().as_ref())
            }
            Err(e) => {
                let error = super::error::watch_failure(&e);
                tracing::warn!(kind, %error, "watch of children failed; retrying");
                scope.set_failure(Some(error));
                true
            }
        };
        if !open {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::channel::mpsc;
    use k8s_openapi::api::{
        apps::v1::{Deployment, DeploymentStatus},
        core::v1::Service,
    };
    use serde_json::json;

    use super::*;

    fn deployment(name: &str, owner: &str, rv: &str, generation: i64, ready: i32) -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": name, "namespace": "ns", "resourceVersion": rv, "generation": generation,
                "labels": {"app.kubernetes.io/managed-by": "keelson"},
                "ownerReferences": [{
                    "apiVersion": "keelson.dev/v1alpha1", "kind": "Application",
                    "name": owner, "uid": format!("uid-{owner}"), "controller": true
                }]
            },
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": generation, "readyReplicas": ready}
        }))
        .unwrap()
    }

    /// Runs `follow` over `events` and returns the Applications it asked to reconcile.
    async fn follow_events(
        scope: &Arc<ScopeIndex>,
        events: Vec<watcher::Event<Deployment>>,
    ) -> Vec<String> {
        let (tx, mut rx) = mpsc::unbounded();
        let stream = futures::stream::iter(events.into_iter().map(Ok));
        follow(stream, scope.clone(), tx, "Deployment", |o: Deployment| {
            (key_of(o.meta()), Observed::of(&o))
        })
        .await;
        let mut out = Vec::new();
        while let Ok(r) = rx.try_recv() {
            out.push(r.name);
        }
        out
    }

    /// The events of a (re)list of `objects`.
    fn list<const N: usize>(objects: [Deployment; N]) -> Vec<watcher::Event<Deployment>> {
        let mut events = vec![watcher::Event::Init];
        events.extend(objects.into_iter().map(watcher::Event::InitApply));
        events.push(watcher::Event::InitDone);
        events
    }

    #[tokio::test]
    async fn the_index_follows_a_watch_and_wakes_owners_only_for_changes_that_matter() {
        use watcher::Event::*;
        let scope = ScopeIndex::new();
        // The first list fills the index without waking anyone: every Application is
        // reconciled at start anyway.
        let first = [
            deployment("a-web", "a", "1", 1, 0),
            deployment("b-web", "b", "2", 1, 0),
        ];
        let woken = follow_events(&scope, list(first)).await;
        assert!(woken.is_empty(), "{woken:?}");
        assert!(*scope.ready.borrow());
        assert_eq!(scope.read().len, 2);
        assert_eq!(scope.read().by_owner["uid-a"].children.len(), 1);

        // A status write that changes no count, then one that does, then a spec edit.
        let mut same = deployment("a-web", "a", "3", 1, 0);
        same.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            ready_replicas: Some(0),
            ..Default::default()
        });
        let woken = follow_events(
            &scope,
            vec![
                Apply(same),
                Apply(deployment("a-web", "a", "4", 1, 2)),
                Apply(deployment("b-web", "b", "5", 2, 0)),
            ],
        )
        .await;
        assert_eq!(woken, ["a", "b"]);

        // A relist after a dropped watch: b-web went, a-web is unchanged, c-web is new.
        let again = [
            deployment("a-web", "a", "4", 1, 2),
            deployment("c-web", "c", "9", 1, 0),
        ];
        let woken = follow_events(&scope, list(again)).await;
        let mut woken = woken;
        woken.sort();
        assert_eq!(woken, ["b", "c"]);
        assert_eq!(scope.read().len, 2);
        assert!(!scope.read().by_owner.contains_key("uid-b"));

        // A deletion wakes the owner and unlinks the child.
        let woken = follow_events(&scope, vec![Delete(deployment("a-web", "a", "10", 1, 2))]).await;
        assert_eq!(woken, ["a"]);
        assert!(!scope.read().by_owner.contains_key("uid-a"));
    }

    #[tokio::test]
    async fn children_of_one_application_share_its_owner_and_a_first_list_begun_again_starts_empty()
    {
        use watcher::Event::*;
        let scope = ScopeIndex::new();
        // A first list that broke after one page, then began again without `gone`.
        let events = vec![
            Init,
            InitApply(deployment("gone", "a", "1", 1, 0)),
            Init,
            InitApply(deployment("a-web", "a", "2", 1, 0)),
            InitApply(deployment("a-api", "a", "3", 1, 0)),
            InitDone,
        ];
        let woken = follow_events(&scope, events).await;
        assert!(woken.is_empty(), "{woken:?}");
        {
            let index = scope.read();
            assert_eq!(index.len, 2);
            assert!(index.get("ns", "gone").is_none());
            let (web, api) = (
                index.get("ns", "a-web").unwrap(),
                index.get("ns", "a-api").unwrap(),
            );
            let (web, api) = (web.owner.as_ref().unwrap(), api.owner.as_ref().unwrap());
            assert!(
                Arc::ptr_eq(web, api),
                "one allocation for the owner of both"
            );
            assert!(Arc::ptr_eq(web, &index.by_owner["uid-a"].owner));
        }

        // A child handed to another owner leaves the first owner's list.
        let woken = follow_events(&scope, vec![Apply(deployment("a-api", "b", "4", 1, 0))]).await;
        assert_eq!(woken, ["b", "a"]);
        let index = scope.read();
        assert_eq!(index.by_owner["uid-a"].children.len(), 1);
        assert_eq!(index.by_owner["uid-b"].children.len(), 1);
        assert_eq!(index.len, 2);
    }

    #[test]
    fn a_hash_is_xxh3_of_the_compact_json_so_every_build_agrees() {
        let value = serde_json::json!({"kind": "Service", "spec": {"ports": [80, "http"]}});
        assert_eq!(
            hash_value(&value),
            xxhash_rust::xxh3::xxh3_64(br#"{"kind":"Service","spec":{"ports":[80,"http"]}}"#)
        );
        // XXH3-64 with seed 0 of no input, as its specification gives it.
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2D06_8005_38D3_94C2);
    }

    #[test]
    fn a_resource_version_is_kept_as_its_number_and_any_other_text_as_a_hash_of_it() {
        let n = Revision::parse("18446744");
        assert_eq!(n, Revision::parse("18446744"));
        assert_ne!(n, Revision::parse("18446745"));
        assert_eq!(n.text().as_deref(), Some("18446744"));
        assert_eq!(Revision::parse("0").text().as_deref(), Some("0"));
        // Texts that read as the same number but are not the same text stay apart.
        for other in [
            "018446744",
            "+18446744",
            "18446744a",
            "",
            "9223372036854775808",
        ] {
            let r = Revision::parse(other);
            assert_ne!(r, n, "{other:?}");
            assert_eq!(r, Revision::parse(other), "{other:?}");
            assert_eq!(r.text(), None, "{other:?}");
        }
        assert_eq!(Revision::of(None), None);
    }

    fn service(name: &str, metadata: serde_json::Value) -> Service {
        let mut meta = json!({"name": name, "namespace": "ns", "resourceVersion": "7"});
        meta.as_object_mut()
            .unwrap()
            .extend(metadata.as_object().unwrap().clone());
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta}))
            .unwrap()
    }

    #[test]
    fn a_name_is_looked_up_in_both_watches_and_is_unknown_until_both_have_listed() {
        let stores = KindStores::<Service>::default();
        assert_eq!(stores.lookup("ns", "web"), Lookup::Unknown);

        let ours = service(
            "web",
            json!({"labels": {"app.kubernetes.io/managed-by": "keelson"}}),
        );
        let by_hand = service("db", json!({"labels": {"app": "db"}}));
        let other = service(
            "api",
            json!({"ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController",
                "name": "rc", "uid": "u", "controller": true}]}),
        );
        stores.preload(&[ours, by_hand, other]);

        // Keelson's own object is in its labelled index, whole.
        let Lookup::Exists(web) = stores.lookup("ns", "web") else {
            panic!("web is known")
        };
        assert_eq!(web.resource_version, Some(Revision::parse("7")));
        // Objects without the label are known by who controls them, and by nothing else.
        let Lookup::Exists(db) = stores.lookup("ns", "db") else {
            panic!("db is known")
        };
        assert_eq!(db.unowned.as_deref(), Some(&Unowned::default()));
        assert_eq!(db.resource_version, None);
        assert!(db.metadata.is_empty());
        let Lookup::Exists(api) = stores.lookup("ns", "api") else {
            panic!("api is known")
        };
        assert_eq!(
            api.unowned.and_then(|u| u.controller).as_deref(),
            Some("ReplicationController/rc")
        );
        // Listed by both and held by neither: absent, in this namespace only.
        assert_eq!(stores.lookup("ns", "cache"), Lookup::Absent);
        assert_eq!(stores.lookup("other", "db"), Lookup::Absent);
        assert_eq!(stores.len(), 1, "only Keelson's objects count as children");
    }

    #[tokio::test]
    async fn an_unlabelled_object_wakes_only_the_application_it_names_when_who_controls_it_changes()
    {
        use watcher::Event::*;
        let scope = ScopeIndex::new();
        let (tx, mut rx) = mpsc::unbounded();
        let events = vec![
            Init,
            InitApply(service("shop-web", json!({}))),
            InitDone,
            // Another write that changes nothing about who controls it: nobody to wake.
            Apply(service(
                "shop-web",
                json!({"resourceVersion": "8", "labels": {"x": "y"}}),
            )),
            // Annotated for adoption by the Application shop: shop is woken at once.
            Apply(service(
                "shop-web",
                json!({"resourceVersion": "9", "annotations": {"keelson.dev/adopt": "shop"}}),
            )),
            // Deleted: shop is woken again (its name is free).
            Delete(service(
                "shop-web",
                json!({"resourceVersion": "9", "annotations": {"keelson.dev/adopt": "shop"}}),
            )),
        ];
        let stream = futures::stream::iter(events.into_iter().map(Ok));
        follow(stream, scope.clone(), tx, "Service", |o: Service| {
            (key_of(o.meta()), Observed::of_foreign(o.meta()))
        })
        .await;
        let mut woken = Vec::new();
        while let Ok(r) = rx.try_recv() {
            woken.push(r.name);
        }
        assert_eq!(woken, ["shop", "shop"]);
        assert!(scope.read().objects.is_empty());
    }

    #[test]
    fn a_kind_without_generation_or_spec_hash_differs_on_every_new_resource_version() {
        let svc: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "namespace": "ns", "resourceVersion": "1"}
        }))
        .unwrap();
        let a = Observed::of(&svc);
        let b = Observed {
            resource_version: Some(Revision::parse("2")),
            ..a.clone()
        };
        assert!(a.differs(&b));
        assert!(!a.differs(&a));
    }

    #[test]
    fn metadata_containment_ignores_what_others_add() {
        let mine: ObjectMeta = serde_json::from_value(json!({
            "labels": {"app": "web"}, "annotations": {"team": "a"}
        }))
        .unwrap();
        let live: ObjectMeta = serde_json::from_value(json!({
            "generation": 2,
            "labels": {"app": "web", "extra": "x"},
            "annotations": {"team": "a", "deployment.kubernetes.io/revision": "3"}
        }))
        .unwrap();
        let edited: ObjectMeta = serde_json::from_value(json!({
            "generation": 2,
            "labels": {"app": "api"}, "annotations": {"team": "a"}
        }))
        .unwrap();
        let wanted = metadata_hashes(&mine);
        assert!(Observed::of_meta(&live).has_metadata(&wanted));
        assert!(!Observed::of_meta(&edited).has_metadata(&wanted));
        // A label's value is not mistaken for an annotation with the same key and value.
        let swapped: ObjectMeta = serde_json::from_value(json!({
            "generation": 2,
            "labels": {"team": "a"}, "annotations": {"app": "web"}
        }))
        .unwrap();
        assert!(!Observed::of_meta(&swapped).has_metadata(&wanted));
    }

    #[test]
    fn metadata_hashes_are_kept_only_for_kinds_whose_apply_is_skipped_on_them() {
        use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
        let meta = json!({
            "name": "x", "namespace": "ns", "resourceVersion": "1",
            "labels": {"app": "web"}
        });
        // A Service has no generation: its apply is skipped on its resourceVersion alone.
        let svc: Service = serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": meta}),
        )
        .unwrap();
        assert!(Observed::of(&svc).metadata.is_empty());
        // A Deployment has a generation; an HPA has a spec hash.
        let deployment = deployment("x", "a", "1", 1, 0);
        assert!(!Observed::of(&deployment).metadata.is_empty());
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta,
            "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "x"}}
        }))
        .unwrap();
        let seen = Observed::of(&hpa);
        assert!(seen.spec.is_some());
        assert!(seen.has_metadata(&metadata_hashes(&hpa.metadata)));
    }
}
