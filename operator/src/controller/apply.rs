//! Apply: server-side apply of every desired child with one field manager and `force`, skipping
//! children that provably have not changed since Keelson last applied them.
//!
//! The skip is what makes a no-op resync free: Keelson remembers, per child, the hash of what it
//! applied and the resourceVersion (and generation, or spec hash) the API server answered. When
//! the desired object hashes the same and the watched child still carries that resourceVersion,
//! or the same generation (spec hash) with Keelson's labels, annotations and owner reference in
//! place, nobody has changed what Keelson applied and the apply is skipped. Anything else (a hand
//! edit, a deletion) leads to a real apply, which the API server turns
//! into a no-op when nothing differs.
//!
//! What is remembered is also written to the Application's `status.inventory` with its status, and
//! read back by a restarted operator ([`ApplyCache::restore`]): a restart re-applies only the
//! children that changed while no operator was watching.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt::Debug,
    sync::Mutex,
};

use futures::{StreamExt, future::BoxFuture};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};

use super::{
    Context, FIELD_MANAGER,
    error::{Error, Result, is_already_exists},
    watch::{Child, KindStores, Observed, Revision, hash_value, metadata_hashes},
};
use crate::{
    api::{ApplicationStatus, InventoryEntry},
    kinds::{Children, DesiredChild, KindVisitor, Registered, Write, for_each_kind, kind_name},
};

/// What Keelson last applied to one child (40 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    /// Hash of the applied object.
    hash: u64,
    /// The resourceVersion the API server answered.
    resource_version: Option<Revision>,
    /// What else it answered that says whether the spec moved since.
    mark: Mark,
}

/// What shows whether a child's spec changed since it was applied: its `metadata.generation`,
/// or for a kind without one that is watched whole, a hash of its spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    Generation(i64),
    Spec(u64),
    None,
}

impl Mark {
    /// The spec hash when there is one and `compares_spec` (see [`Child::compares_spec`]),
    /// else the generation, else the spec hash.
    fn of(generation: Option<i64>, spec: Option<u64>, compares_spec: bool) -> Mark {
        match (generation, spec) {
            (_, Some(s)) if compares_spec => Mark::Spec(s),
            (Some(g), _) => Mark::Generation(g),
            (None, Some(s)) => Mark::Spec(s),
            (None, None) => Mark::None,
        }
    }
}

impl Record {
    /// What apply remembers after applying `obj` (hashing to `hash`) and reading `text`, the API
    /// server's answer: its resourceVersion, and its spec hash when `obj`
    /// [`Child::compares_spec`], else its generation.
    ///
    /// Errors: the answer is not an object of the kind.
    fn answered<K: Child>(obj: &K, hash: u64, text: &str) -> serde_json::Result<Record> {
        let compares_spec = obj.compares_spec();
        let a = if compares_spec {
            K::answered_with_spec(text)?
        } else {
            K::answered(text)?
        };
        Ok(Record {
            hash,
            resource_version: Revision::of(a.resource_version.as_deref()),
            mark: Mark::of(a.generation, a.spec, compares_spec),
        })
    }

    /// Whether the live child is still what Keelson last applied: the same resourceVersion; or,
    /// for kinds with a generation (or a watched spec), the same generation (or spec) and every
    /// label, annotation and owner reference Keelson applied still in place, so only status or
    /// other managers' metadata moved (a Deployment's rollout progress, an HPA's status).
    fn matches(&self, live: &Observed, wanted_metadata: &[u64]) -> bool {
        if live.resource_version.is_some() && live.resource_version == self.resource_version {
            return true;
        }
        let same_spec = match self.mark {
            Mark::Generation(g) => live.generation == Some(g),
            Mark::Spec(s) => live.spec == Some(s),
            Mark::None => false,
        };
        same_spec && live.has_metadata(wanted_metadata)
    }
}

/// A child of one Application: (kind, name).
pub type ChildKey = (&'static str, String);

/// What is remembered of one Application.
#[derive(Default)]
struct Remembered {
    /// Whether anything was applied or restored (an Application whose children all went keeps
    /// this, so an old inventory is not restored over what this process did).
    known: bool,
    /// Per child, sorted by (kind, name): the last apply.
    children: Vec<(&'static str, Box<str>, Record)>,
    /// A hash of the inventory its stored status lists, when known.
    listed: Option<u64>,
    /// When this process last wrote its status.
    status_written: Option<std::time::Instant>,
    /// The status this process last wrote, until the Application's watch delivers it.
    unseen: Option<Box<Unseen>>,
}

/// A status this process wrote that the Application's watch has not delivered yet (see
/// [`ApplyCache::last_written`]).
struct Unseen {
    /// The resourceVersion the write answered.
    revision: Revision,
    /// The status written, without its inventory (remembered apart).
    status: ApplicationStatus,
}

/// How long a written status stands in for a store that has not delivered it, at most: past
/// this, the stored status is read again (a watch that relisted may never deliver that
/// revision; another writer's status is then the one to compare with).
pub const UNSEEN_FOR: std::time::Duration = std::time::Duration::from_secs(10);

impl Remembered {
    /// Whether the unseen written status is too old to stand in for the stored one.
    fn unseen_expired(&self) -> bool {
        self.status_written
            .is_none_or(|at| at.elapsed() >= UNSEEN_FOR)
    }

    fn find(&self, (kind, name): &ChildKey) -> Result<usize, usize> {
        self.children
            .binary_search_by(|(k, n, _)| (*k, &**n).cmp(&(*kind, name.as_str())))
    }
}

/// Per Application (by uid): per child, the last apply (about 40 bytes and its name), and a hash
/// of the inventory its stored status lists.
#[derive(Default)]
pub struct ApplyCache {
    apps: Mutex<HashMap<String, Remembered>>,
}

impl ApplyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Remembered>> {
        self.apps.lock().expect("apply cache lock")
    }

    fn get(&self, app: &str, key: &ChildKey) -> Option<Record> {
        let apps = self.lock();
        let r = apps.get(app)?;
        r.find(key).ok().map(|i| r.children[i].2)
    }

    fn put(&self, app: &str, key: ChildKey, record: Record) {
        let mut apps = self.lock();
        let r = apps.entry(app.to_string()).or_default();
        r.known = true;
        match r.find(&key) {
            Ok(i) => r.children[i].2 = record,
            Err(i) => {
                // Exactly as long as needed: kept for as long as the Application lives.
                r.children.reserve_exact(1);
                r.children
                    .insert(i, (key.0, key.1.into_boxed_str(), record));
            }
        }
    }

    /// Forget one child (failed to apply, or pruned).
    pub fn remove(&self, app: &str, key: &ChildKey) {
        if let Some(r) = self.lock().get_mut(app)
            && let Ok(i) = r.find(key)
        {
            r.children.remove(i);
        }
    }

    /// What is remembered of the Application `app`, as its status lists it, sorted by kind and
    /// name.
    pub fn inventory(&self, app: &str) -> Vec<InventoryEntry> {
        let apps = self.lock();
        let children = apps.get(app).map(|r| r.children.as_slice()).unwrap_or(&[]);
        children
            .iter()
            .map(|(kind, name, r)| InventoryEntry {
                kind: kind.to_string(),
                name: name.to_string(),
                applied: format!("{:016x}", r.hash),
                generation: match r.mark {
                    Mark::Generation(g) => Some(g),
                    _ => None,
                },
                resource_version: r.resource_version.and_then(Revision::text),
                spec: match r.mark {
                    Mark::Spec(h) => Some(format!("{h:016x}")),
                    _ => None,
                },
            })
            .collect()
    }

    /// Remember what the status of the Application `app` lists, unless something is remembered
    /// of it already (this process applied since). Entries of unknown kinds or unreadable hashes
    /// are left out: their children are applied again.
    pub fn restore(&self, app: &str, inventory: &[InventoryEntry]) {
        let mut apps = self.lock();
        if inventory.is_empty() || apps.get(app).is_some_and(|r| r.known) {
            return;
        }
        let kinds = crate::kinds::all();
        let mut children: Vec<_> = inventory
            .iter()
            .filter_map(|e| {
                let kind = kinds.iter().find(|k| k.kind == e.kind)?.kind;
                let spec = match &e.spec {
                    Some(h) => Some(u64::from_str_radix(h, 16).ok()?),
                    None => None,
                };
                let record = Record {
                    hash: u64::from_str_radix(&e.applied, 16).ok()?,
                    resource_version: Revision::of(e.resource_version.as_deref()),
                    mark: Mark::of(e.generation, spec, false),
                };
                Some((kind, Box::from(e.name.as_str()), record))
            })
            .collect();
        children.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        children.dedup_by(|a, b| (a.0, &a.1) == (b.0, &b.1));
        children.shrink_to_fit();
        let r = apps.entry(app.to_string()).or_default();
        r.known = true;
        r.children = children;
    }

    /// Take the inventory out of an Application's status as its watch delivers it: remember
    /// what it lists ([`ApplyCache::restore`]) and a hash of it ([`ApplyCache::lists`]), and
    /// leave the stored Application without it. At thousands of Applications the lists (23
    /// entries for the shop sample, about 7 KB in memory) would be a large part of the
    /// operator's memory, and nothing else reads them.
    ///
    /// While a status this process wrote is unseen (see [`ApplyCache::last_written`]), an
    /// Application of another revision is one from before that write: what it lists is not
    /// remembered over what was written. The write's own revision ends the wait.
    pub fn absorb(&self, app: &mut crate::api::Application) {
        let (Some(status), Some(uid)) = (app.status.as_mut(), app.metadata.uid.as_deref()) else {
            return;
        };
        let inventory = std::mem::take(&mut status.inventory);
        let revision = Revision::of(app.metadata.resource_version.as_deref());
        let earlier = {
            let mut apps = self.lock();
            match apps.get_mut(uid) {
                Some(r) if r.unseen.is_some() => {
                    let seen = r.unseen.as_ref().map(|u| Some(u.revision)) == Some(revision);
                    let earlier = !seen && !r.unseen_expired();
                    if !earlier {
                        r.unseen = None;
                    }
                    earlier
                }
                _ => false,
            }
        };
        if !earlier {
            self.listed(uid, &inventory);
        }
        self.restore(uid, &inventory);
    }

    /// The status this process last wrote for the Application `app`, when the Application at
    /// hand, of resourceVersion `stored`, does not show it yet: its store lags the write (the
    /// watch has not delivered it), and comparing with the older status it holds would write
    /// the same status again. `None` once the watch delivered the write, for the write's own
    /// revision, or [`UNSEEN_FOR`] after it.
    pub fn last_written(&self, app: &str, stored: Option<&str>) -> Option<ApplicationStatus> {
        let mut apps = self.lock();
        let r = apps.get_mut(app)?;
        if r.unseen_expired() {
            r.unseen = None;
        }
        let unseen = r.unseen.as_ref()?;
        (Some(unseen.revision) != Revision::of(stored)).then(|| unseen.status.clone())
    }

    /// Whether `new` is the inventory the status of the Application `app` lists: `stored` when
    /// the Application at hand still carries it, else what [`ApplyCache::absorb`] took out of it
    /// or [`ApplyCache::wrote`] last wrote, whichever came last (an empty list when neither is
    /// known).
    pub fn lists(&self, app: &str, stored: &[InventoryEntry], new: &[InventoryEntry]) -> bool {
        let listed = match self.lock().get(app).and_then(|r| r.listed) {
            Some(h) if stored.is_empty() => h,
            _ => hash_value(&stored),
        };
        listed == hash_value(&new)
    }

    /// Remember that the status of the Application `app` now lists `inventory` (as its watch
    /// delivered it, or as this process wrote it: see [`ApplyCache::status_written`]).
    pub fn listed(&self, app: &str, inventory: &[InventoryEntry]) {
        let hash = hash_value(&inventory);
        self.lock().entry(app.to_string()).or_default().listed = Some(hash);
    }

    /// Remember that this process wrote `status` (listing `inventory`) as the status of the
    /// Application `app` now, and the resourceVersion the write answered: until the watch
    /// delivers that revision, [`ApplyCache::last_written`] gives `status`.
    pub fn wrote(
        &self,
        app: &str,
        inventory: &[InventoryEntry],
        status: ApplicationStatus,
        revision: Option<&str>,
    ) {
        let hash = hash_value(&inventory);
        let mut apps = self.lock();
        let r = apps.entry(app.to_string()).or_default();
        r.listed = Some(hash);
        r.status_written = Some(std::time::Instant::now());
        r.unseen = Revision::of(revision).map(|revision| Box::new(Unseen { revision, status }));
    }

    /// When this process last wrote the status of the Application `app`.
    pub fn status_written(&self, app: &str) -> Option<std::time::Instant> {
        self.lock().get(app)?.status_written
    }

    /// Forget every Application whose uid `keep` rejects.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|uid, _| keep(uid));
    }

    /// How many children are remembered.
    pub fn len(&self) -> usize {
        self.lock().values().map(|r| r.children.len()).sum()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What applying one child changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing: skipped, or the API server found nothing to change.
    None,
    /// The child did not exist and was created.
    Created,
    /// The desired state changed and the child was updated.
    Updated,
    /// Someone else changed or deleted the child; it was restored.
    Repaired,
    /// An object of that name exists that this Application does not control: left alone.
    Conflict(Box<super::ownership::Conflict>),
}

/// What one pass of apply did.
#[derive(Debug, Default)]
pub struct Report {
    /// Children created, as `Kind/name`.
    pub created: Vec<String>,
    /// Children whose desired state changed and were updated.
    pub updated: Vec<String>,
    /// Children restored after someone else changed or deleted them.
    pub repaired: Vec<String>,
    /// Objects left alone because this Application does not control them.
    pub conflicts: Vec<super::ownership::Conflict>,
    /// Names applied (or kept), per kind: what prune must leave alone.
    pub desired: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Report {
    /// Remember that the child `kind`/`name` is wanted, so prune leaves it alone.
    pub fn keep(&mut self, kind: &'static str, name: &str) {
        self.desired
            .entry(kind)
            .or_default()
            .insert(name.to_string());
    }

    /// Record what applying `kind`/`name` changed.
    pub fn note(&mut self, kind: &'static str, name: &str, change: Change) {
        let list = match change {
            Change::None => return,
            Change::Created => &mut self.created,
            Change::Updated => &mut self.updated,
            Change::Repaired => &mut self.repaired,
            Change::Conflict(c) => {
                self.conflicts.push(*c);
                return;
            }
        };
        list.push(format!("{kind}/{name}"));
    }
}

/// Applies the children of one Application.
pub struct Applier<'a> {
    ctx: &'a Context,
    app_uid: &'a str,
    app_name: &'a str,
    namespace: &'a str,
}

impl<'a> Applier<'a> {
    /// An applier for the Application `app_name` with `app_uid` in `namespace`.
    pub fn new(ctx: &'a Context, app_uid: &'a str, app_name: &'a str, namespace: &'a str) -> Self {
        Applier {
            ctx,
            app_uid,
            app_name,
            namespace,
        }
    }

    /// The Application's uid.
    pub fn app_uid(&self) -> &'a str {
        self.app_uid
    }

    /// The Application's name.
    pub fn app_name(&self) -> &'a str {
        self.app_name
    }

    /// The Application's namespace.
    pub fn namespace(&self) -> &'a str {
        self.namespace
    }

    /// The shared context.
    pub fn context(&self) -> &'a Context {
        self.ctx
    }

    /// Server-side apply `obj` unless it is provably unchanged; `stores` is the watch of its kind.
    pub async fn apply<K: Child>(&self, obj: &K, stores: &KindStores<K>) -> Result<Change> {
        let kind: &'static str = kind_name::<K>();
        let name = obj.name_any();
        let key = (kind, name.clone());
        let hash = hash_value(obj);
        let live = stores.get(self.namespace, &name);
        let live_rv = live.as_ref().and_then(|o| o.resource_version);
        let cached = self.ctx.applied.get(self.app_uid, &key);
        if let (Some(c), Some(live)) = (&cached, &live)
            && c.hash == hash
            && c.matches(live, &metadata_hashes(obj.meta()))
        {
            return Ok(Change::None);
        }

        let record = self
            .patch(&name, obj)
            .await
            .and_then(|text| Record::answered(obj, hash, &text).map_err(kube::Error::SerdeError));
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                self.ctx.applied.remove(self.app_uid, &key);
                let source = e.into();
                return Err(Error::Apply { kind, name, source });
            }
        };
        let new_rv = record.resource_version;
        self.ctx.applied.put(self.app_uid, key, record);

        let changed_by_us =
            new_rv != live_rv && cached.as_ref().is_none_or(|c| c.resource_version != new_rv);
        let change = match cached {
            None if live_rv.is_none() => Change::Created,
            Some(c) if changed_by_us && c.hash == hash => Change::Repaired,
            _ if changed_by_us => Change::Updated,
            _ => Change::None,
        };
        let metrics = &self.ctx.metrics;
        if change != Change::None {
            metrics.applied.get_or_create(&kind_label(kind)).inc();
        }
        if change == Change::Repaired {
            metrics.drift_repairs.get_or_create(&kind_label(kind)).inc();
        }
        Ok(change)
    }

    /// Server-side apply `obj` (field manager `keelson`, forced): the API server's answer, as
    /// text ([`Record::answered`] reads what it needs of it).
    async fn patch<K: Child>(&self, name: &str, obj: &K) -> kube::Result<String> {
        let url = K::url_path(&(), Some(self.namespace));
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let request = kube::core::Request::new(url)
            .patch(name, &params, &Patch::Apply(obj))
            .map_err(kube::Error::BuildRequest)?;
        self.ctx.client.request_text(request).await
    }

    /// Create a child of a create-only kind; when it exists already, leave it as it is.
    pub async fn create<K: Child>(&self, obj: &K) -> Result<Change> {
        let kind = kind_name::<K>();
        let api: Api<K> = Api::namespaced(self.ctx.client.clone(), self.namespace);
        match api.create(&PostParams::default(), obj).await {
            Ok(_) => {
                self.ctx
                    .metrics
                    .applied
                    .get_or_create(&kind_label(kind))
                    .inc();
                Ok(Change::Created)
            }
            // Created by an earlier reconcile that this one did not see yet: keep it as it is.
            Err(e) if is_already_exists(&e) => Ok(Change::None),
            Err(e) => Err(Error::Create {
                kind,
                name: obj.name_any(),
                source: e.into(),
            }),
        }
    }
}

fn kind_label(kind: &'static str) -> crate::runtime::metrics::KindLabel {
    crate::runtime::metrics::KindLabel { kind }
}

/// How many children of one Application are applied at once.
pub const APPLY_PARALLELISM: usize = 4;

/// What one pass of apply did, and its first error: prune runs only after a complete apply.
#[derive(Debug)]
pub struct Applied {
    /// What was created, updated, repaired and kept.
    pub report: Report,
    /// The first failure, if any child could not be written.
    pub result: Result<()>,
}

/// One child's write: its kind, name and what it changed.
type ApplyJob<'a> = BoxFuture<'a, (&'static str, String, Result<Change>)>;

/// The write of one desired child of kind `K`, as its kind declares it.
fn apply_job<'a, K: Registered>(
    a: &'a Applier<'a>,
    desired: &'a K::Desired,
    stores: &'a KindStores<K>,
) -> ApplyJob<'a> {
    Box::pin(async move {
        use super::ownership::Claim;
        // Only what this Application controls is written (see `ownership`).
        let result = match (K::WRITE, desired.object(), a.claim(desired.name(), stores)) {
            (_, _, Err(e)) => Err(e),
            (_, _, Ok(Claim::Conflict(c))) => Ok(Change::Conflict(Box::new(c))),
            (_, None, Ok(Claim::Write)) => Ok(Change::None),
            (Write::Apply, Some(obj), _) => a.apply(obj, stores).await,
            (Write::CreateOnly, Some(obj), _) => a.create(obj).await,
        };
        (kind_name::<K>(), desired.name().to_string(), result)
    })
}

/// Write every child: the create-only kinds first, all at once (the credentials the workloads
/// use exist before they start), then the applied kinds in registry order,
/// [`APPLY_PARALLELISM`] at a time, reported in a stable order. A failed child does not stop the
/// others, so each pass makes as much progress as it can.
pub async fn apply_all(a: &Applier<'_>, c: &Children) -> Applied {
    struct Jobs<'a> {
        applier: &'a Applier<'a>,
        children: &'a Children,
        creates: Vec<ApplyJob<'a>>,
        applies: Vec<ApplyJob<'a>>,
    }
    impl KindVisitor for Jobs<'_> {
        fn visit<K: Registered>(&mut self) {
            let stores = K::stores(&self.applier.context().stores);
            let jobs = match K::WRITE {
                Write::CreateOnly => &mut self.creates,
                Write::Apply => &mut self.applies,
            };
            for desired in K::desired(self.children) {
                jobs.push(apply_job(self.applier, desired, stores));
            }
        }
    }
    let mut jobs = Jobs {
        applier: a,
        children: c,
        creates: Vec::new(),
        applies: Vec::new(),
    };
    for_each_kind(&mut jobs);
    let mut results = futures::future::join_all(jobs.creates).await;
    // Created-once children (credentials) come first and must exist before the rest: a database
    // applied without its Secret would initialise its volume with a password nobody keeps. A
    // failed create ends the pass (prune does not run on it); the retry applies everything.
    if results.iter().all(|(_, _, r)| r.is_ok()) {
        results.extend(
            futures::stream::iter(jobs.applies)
                .buffered(APPLY_PARALLELISM)
                .collect::<Vec<_>>()
                .await,
        );
    }
    let mut report = Report::default();
    let mut first: Option<Error> = None;
    for (kind, name, result) in results {
        report.keep(kind, &name);
        match result {
            Ok(change) => report.note(kind, &name, change),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Applied {
        report,
        result: first.map_or(Ok(()), Err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Application;
    use k8s_openapi::api::apps::v1::Deployment;

    fn entry(name: &str, applied: &str) -> InventoryEntry {
        InventoryEntry {
            kind: "Service".into(),
            name: name.into(),
            applied: applied.into(),
            generation: None,
            resource_version: Some("7".into()),
            spec: None,
        }
    }

    fn app_listing(inventory: Vec<InventoryEntry>) -> Application {
        let mut app: Application = serde_json::from_value(serde_json::json!({
            "apiVersion": "keelson.dev/v1alpha1", "kind": "Application",
            "metadata": {"name": "shop", "namespace": "ns", "uid": "u1"},
            "spec": {"services": []},
            "status": {}
        }))
        .unwrap();
        app.status.as_mut().unwrap().inventory = inventory;
        app
    }

    #[test]
    fn an_absorbed_inventory_is_remembered_and_left_out_of_the_stored_application() {
        let cache = ApplyCache::default();
        let listed = vec![entry("shop-web", "00000000000000ff")];
        let mut app = app_listing(listed.clone());
        cache.absorb(&mut app);
        // The stored Application carries no list; what it listed is remembered.
        assert!(app.status.as_ref().unwrap().inventory.is_empty());
        assert_eq!(cache.inventory("u1"), listed);
        // The status write compares against what was taken out, not against the empty list.
        assert!(cache.lists("u1", &[], &listed));
        assert!(!cache.lists("u1", &[], &[]));
        assert!(!cache.lists("u1", &[], &[entry("shop-web", "0000000000000100")]));
        // An Application that still carries its list is compared with it.
        assert!(cache.lists("u1", &listed, &listed));
        // What was written last is what the status lists.
        let next = vec![entry("shop-api", "0000000000000001")];
        cache.wrote("u1", &next, ApplicationStatus::default(), Some("8"));
        assert!(cache.lists("u1", &[], &next));
        // Unknown Applications list nothing.
        assert!(cache.lists("u2", &[], &[]));
        // Forgotten with the Application.
        cache.retain(|uid| uid != "u1");
        assert!(cache.lists("u1", &[], &[]));
        assert!(cache.is_empty());
    }

    #[test]
    fn a_written_status_stands_in_for_the_stored_one_until_the_watch_delivers_it() {
        let cache = ApplyCache::default();
        let written = ApplicationStatus {
            observed_generation: Some(1),
            services_ready: Some("0/2".into()),
            ..ApplicationStatus::default()
        };
        let listed = vec![entry("shop-web", "00000000000000ff")];
        cache.wrote("u1", &listed, written.clone(), Some("8"));
        // The store still holds the Application of revision 7, from before the write.
        assert_eq!(cache.last_written("u1", Some("7")), Some(written.clone()));
        assert_eq!(cache.last_written("u1", None), Some(written.clone()));
        // ... and its watch delivering that older Application again does not undo the write.
        let mut older = app_listing(Vec::new());
        older.metadata.resource_version = Some("7".into());
        cache.absorb(&mut older);
        assert!(cache.lists("u1", &[], &listed));
        assert_eq!(cache.last_written("u1", Some("7")), Some(written.clone()));
        // The Application of the write's own revision shows it.
        assert_eq!(cache.last_written("u1", Some("8")), None);
        // Once the watch delivers it, the stored status is read again, whatever comes next.
        let mut seen = app_listing(listed.clone());
        seen.metadata.resource_version = Some("8".into());
        cache.absorb(&mut seen);
        assert_eq!(cache.last_written("u1", Some("7")), None);
        assert_eq!(cache.last_written("u1", Some("9")), None);
        // A revision never delivered stands in for UNSEEN_FOR at most.
        cache.wrote("u1", &listed, written.clone(), Some("10"));
        assert!(cache.last_written("u1", Some("9")).is_some());
        cache.lock().get_mut("u1").unwrap().status_written =
            Some(std::time::Instant::now() - UNSEEN_FOR);
        assert_eq!(cache.last_written("u1", Some("9")), None);
        // ... and past it, whatever the watch delivers is what the status lists.
        cache.wrote("u1", &listed, written.clone(), Some("12"));
        cache.lock().get_mut("u1").unwrap().status_written =
            Some(std::time::Instant::now() - UNSEEN_FOR);
        let mut relisted = app_listing(vec![entry("shop-api", "0000000000000002")]);
        relisted.metadata.resource_version = Some("13".into());
        cache.absorb(&mut relisted);
        assert!(cache.lists("u1", &[], &[entry("shop-api", "0000000000000002")]));
        assert!(cache.lock().get("u1").unwrap().unseen.is_none());
        // Nothing is remembered of an Application this process never wrote.
        assert_eq!(cache.last_written("u2", Some("1")), None);
    }

    #[test]
    fn a_restored_inventory_is_listed_again_as_it_was_sorted_once_per_child() {
        let cache = ApplyCache::default();
        let e = |kind: &str, name: &str, generation, spec: Option<&str>, rv: Option<&str>| {
            InventoryEntry {
                kind: kind.into(),
                name: name.into(),
                applied: "00000000000000ff".into(),
                generation,
                resource_version: rv.map(Into::into),
                spec: spec.map(Into::into),
            }
        };
        let deployment = e("Deployment", "shop-web", Some(3), None, Some("41"));
        let service = e(
            "Service",
            "shop-web",
            None,
            Some("00000000000000aa"),
            Some("42"),
        );
        let secret = e("Secret", "shop-db", None, None, None);
        // Out of order, twice, and one of a kind Keelson does not make.
        let listed = [
            service.clone(),
            deployment.clone(),
            secret.clone(),
            service.clone(),
            e("Widget", "x", None, None, None),
        ];
        cache.restore("u1", &listed);
        assert_eq!(cache.inventory("u1"), [deployment, secret, service]);
        assert_eq!(cache.len(), 3);
        // Restored once: a later (older) list does not replace it.
        cache.restore("u1", &[e("Service", "other", None, None, None)]);
        assert_eq!(cache.len(), 3);
        // Nor once every child went.
        for (kind, name) in [
            ("Deployment", "shop-web"),
            ("Secret", "shop-db"),
            ("Service", "shop-web"),
        ] {
            cache.remove("u1", &(kind, name.to_string()));
        }
        cache.restore("u1", &[e("Service", "other", None, None, None)]);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_record_matches_the_live_child_by_resource_version_else_by_generation_and_metadata() {
        let live = |rv: &str, generation| Observed {
            resource_version: Some(Revision::parse(rv)),
            generation: Some(generation),
            metadata: vec![1, 2, 3].into_boxed_slice(),
            ..Observed::default()
        };
        let record = Record {
            hash: 9,
            resource_version: Some(Revision::parse("10")),
            mark: Mark::Generation(4),
        };
        assert!(record.matches(&live("10", 5), &[7]), "same resourceVersion");
        assert!(record.matches(&live("11", 4), &[1, 3]), "only status moved");
        assert!(!record.matches(&live("11", 4), &[1, 4]), "a label went");
        assert!(!record.matches(&live("11", 5), &[1]), "the spec moved");
        let unmarked = Record {
            mark: Mark::None,
            ..record
        };
        assert!(!unmarked.matches(&live("11", 4), &[1]));
    }

    /// A Deployment as the API server holds it: `replicas` and `generation` as given, one
    /// container `image`, Keelson's label, status and managed fields as a real answer has them.
    fn deployment(replicas: Option<i32>, generation: i64, rv: &str, image: &str) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "shop-web", "namespace": "shop", "resourceVersion": rv,
                "generation": generation,
                "labels": {"app.kubernetes.io/managed-by": "keelson"},
                "managedFields": [{"manager": "keelson", "operation": "Apply",
                    "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:template": {}}}}],
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image}]},
                },
            },
            "status": {"replicas": 1, "observedGeneration": generation},
        }))
        .expect("a Deployment")
    }

    /// The record apply keeps for `desired` after the API server answered `answer`.
    fn applied(desired: &Deployment, answer: &Deployment) -> Record {
        let text = serde_json::to_string(answer).expect("serializes");
        Record::answered(desired, hash_value(desired), &text).expect("an answer")
    }

    #[test]
    fn an_autoscaled_deployment_is_not_applied_again_when_its_autoscaler_scales_it() {
        let wanted = metadata_hashes(&deployment(None, 1, "1", "web:1").metadata);
        // Autoscaled: Keelson applies no replicas; the API server answers the default 1.
        let desired = deployment(None, 0, "", "web:1");
        let record = applied(&desired, &deployment(Some(1), 1, "10", "web:1"));
        assert!(matches!(record.mark, Mark::Spec(_)), "{record:?}");
        // The autoscaler scales to 3 through the scale subresource: generation 2.
        let scaled = Observed::of(&deployment(Some(3), 2, "11", "web:1"));
        assert!(
            record.matches(&scaled, &wanted),
            "a scale is the autoscaler's"
        );
        // Someone changes the image: applied again.
        let edited = Observed::of(&deployment(Some(3), 3, "12", "web:2"));
        assert!(!record.matches(&edited, &wanted), "the template moved");

        // Fixed replicas: Keelson applies them, so a hand edit of them is repaired.
        let desired = deployment(Some(2), 0, "", "web:1");
        let record = applied(&desired, &deployment(Some(2), 1, "20", "web:1"));
        assert_eq!(record.mark, Mark::Generation(1));
        let scaled = Observed::of(&deployment(Some(5), 2, "21", "web:1"));
        assert!(!record.matches(&scaled, &wanted), "a hand edit of replicas");
        let status_only = Observed::of(&deployment(Some(2), 1, "22", "web:1"));
        assert!(record.matches(&status_only, &wanted), "only status moved");
    }
}
