//! The stored state and every operation on it: create, update, patch, apply, delete, list and
//! the start of watches. HTTP handlers and the stand-in controllers both go through here, with
//! the state lock held.

use super::builtin;
use super::resources::{ResourceDef, View, builtin_defs, crd_defs, resource_key};
use super::selector::{FieldSelector, LabelSelector};
use super::shape::Shape;
use super::status::{ApiError, bad_request, expired};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

mod delete;
mod scale;
mod write;

pub use scale::serves_scale;

/// How long each resource keeps a past event for watches that resume from a resourceVersion:
/// kube-apiserver's watch cache keeps events for its `eventFreshDuration` of 75 s.
pub const HISTORY_WINDOW: Duration = Duration::from_secs(75);
/// At most this many past events per resource, however young (kube-apiserver's watch cache
/// holds at most 102,400; fewer here, because this server holds them in the test's memory).
pub const HISTORY_CAP: usize = 4_096;
/// Capacity of each resource's event fan-out channel. A watch that falls this far behind ends
/// (as kube-apiserver ends a watch that does not keep up) and its client resumes from the last
/// resourceVersion it saw, which history still holds: the capacity stays well below
/// [`HISTORY_CAP`].
const FANOUT: usize = 1_024;
/// The resourceVersion the server starts at; older ones count as compacted.
pub const START_RV: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A change of one stored object, as fanned out to live watches.
#[derive(Debug)]
pub struct Event {
    pub ty: EventType,
    pub obj: Arc<Value>,
    /// The object before the change (to tell selector transitions apart).
    pub prev: Option<Arc<Value>>,
    /// `obj` serialised once, as stored: what every watch of the stored form sends.
    pub json: Bytes,
}

/// A past change as watch history keeps it: serialised only, so that history holds no old
/// object trees alive (a parsed object takes about ten times its JSON text).
#[derive(Debug, Clone)]
pub struct Past {
    pub ty: EventType,
    pub rv: u64,
    /// When the change happened.
    pub at: Instant,
    /// (namespace, name)
    pub key: (String, String),
    /// The object after the change, serialised as stored.
    pub json: Bytes,
    /// The object before the change, serialised as stored (modifications and deletions).
    pub prev_json: Option<Bytes>,
}

pub struct Bucket {
    pub objects: BTreeMap<(String, String), Arc<Value>>,
    pub tx: broadcast::Sender<Arc<Event>>,
    /// Past events in resourceVersion order, at most [`HISTORY_CAP`] and none older than the
    /// history window once [`State::prune_history`] ran.
    pub history: VecDeque<Past>,
    /// Events at or below this resourceVersion may be missing from `history`.
    pub compacted_rv: u64,
    /// For objects whose latest change is still in `history`: its resourceVersion and JSON
    /// (shared, so that the next change's `prev_json` costs nothing).
    last_json: HashMap<(String, String), (u64, Bytes)>,
}

impl Bucket {
    fn new(compacted_rv: u64) -> Self {
        Bucket {
            objects: BTreeMap::new(),
            tx: broadcast::channel(FANOUT).0,
            history: VecDeque::new(),
            compacted_rv,
            last_json: HashMap::new(),
        }
    }

    /// Drops past events older than `window` (relative to `now`) or beyond `cap`, advancing
    /// `compacted_rv` past each one dropped.
    fn prune(&mut self, now: Instant, window: Duration, cap: usize) {
        while let Some(front) = self.history.front() {
            let stale = now.saturating_duration_since(front.at) > window;
            if !stale && self.history.len() <= cap {
                break;
            }
            let old = self.history.pop_front().expect("front exists");
            self.compacted_rv = self.compacted_rv.max(old.rv);
            if self
                .last_json
                .get(&old.key)
                .is_some_and(|(rv, _)| *rv == old.rv)
            {
                self.last_json.remove(&old.key);
            }
        }
    }
}

/// (store key, namespace, name)
pub type ObjRef = (String, String, String);

/// Something the stand-in controllers may want to react to.
#[derive(Debug, Clone)]
pub enum Note {
    Changed {
        store_key: String,
        obj: Arc<Value>,
    },
    Deleted {
        obj: Arc<Value>,
    },
    /// `ApiServer::set_workloads_ready` flipped.
    WorkloadsReadyChanged,
}

pub struct State {
    pub rv: u64,
    pub buckets: HashMap<String, Bucket>,
    pub defs: BTreeMap<(String, String, String), Arc<ResourceDef>>,
    /// CRD groups in the order they appeared.
    pub crd_groups: Vec<String>,
    pub uids: HashMap<String, ObjRef>,
    pub dependents: HashMap<String, BTreeSet<ObjRef>>,
    next_ip: u32,
    pub notes: Vec<Note>,
    /// Writes that changed stored state since the last read of the counter.
    pub writes: u64,
    /// How long past events stay in watch history ([`HISTORY_WINDOW`] unless a test changes it).
    pub history_window: Duration,
    /// At most this many past events per resource ([`HISTORY_CAP`] unless a test changes it).
    pub history_cap: usize,
}

/// What a write is.
pub enum Write {
    Create(Value),
    Replace(Value),
    MergePatch(Value),
    /// Strategic merge patch (built-in kinds only).
    StrategicPatch(Value),
    JsonPatch(Value),
    Apply {
        cfg: Value,
        force: bool,
    },
}

/// Who writes, and how.
pub struct Ctx {
    pub manager: String,
    pub subresource: Option<String>,
    pub dry_run: bool,
    pub now: String,
}

pub struct Written {
    pub code: u16,
    /// The object as the endpoint presents it.
    pub obj: Value,
}

#[derive(Default)]
pub struct DeleteOpts {
    pub propagation: Option<String>,
    /// `gracePeriodSeconds` (Pods on a node: the default is their
    /// `terminationGracePeriodSeconds`; 0 removes them at once).
    pub grace: Option<i64>,
    pub uid: Option<String>,
    pub rv: Option<String>,
    pub dry_run: bool,
}

pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn meta(v: &Value) -> &Value {
    v.get("metadata").unwrap_or(&Value::Null)
}

fn meta_str<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    meta(v).get(k).and_then(Value::as_str)
}

fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    let m = v.as_object_mut().expect("object");
    let md = m.entry("metadata").or_insert_with(|| json!({}));
    if !md.is_object() {
        *md = json!({});
    }
    md.as_object_mut().expect("object")
}

pub fn rv_of(v: &Value) -> u64 {
    meta_str(v, "resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn finalizers(v: &Value) -> Vec<String> {
    meta(v)
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn owner_uids(v: &Value) -> Vec<String> {
    meta(v)
        .get("ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|o| o.get("uid").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The Kind string the per-kind rules use (Events distinguish their two views).
pub fn view_kind(def: &ResourceDef) -> String {
    match def.view {
        View::EventsV1 => "Event.events.k8s.io".into(),
        View::Plain => def.kind.clone(),
    }
}

/// Turns each `metadata.managedFields[].fieldsV1` into its JSON text, the form stored objects
/// keep it in: parsed, a field set takes about ten times its text, and managedFields are about
/// half of a parsed object. [`to_view`], [`StoredJson`] and [`MetaJson`] show it as the object
/// the API serves.
pub fn compact_managed(obj: &mut Value) {
    let entries = obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("managedFields"))
        .and_then(Value::as_array_mut);
    for e in entries.into_iter().flatten() {
        if let Some(f) = e.get_mut("fieldsV1")
            && f.is_object()
        {
            *f = Value::String(f.to_string());
        }
    }
}

/// The reverse of [`compact_managed`].
fn expand_managed(obj: &mut Value) {
    let entries = obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("managedFields"))
        .and_then(Value::as_array_mut);
    for e in entries.into_iter().flatten() {
        if let Some(f) = e.get_mut("fieldsV1")
            && let Value::String(text) = f
            && let Ok(v) = serde_json::from_str(text)
        {
            *f = v;
        }
    }
}

/// A stored object serialised as the API shows it (managedFields expanded), without copying.
pub struct StoredJson<'a>(pub &'a Value);

impl serde::Serialize for StoredJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Some(m) = self.0.as_object() else {
            return self.0.serialize(s);
        };
        let mut map = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            if k == "metadata" {
                map.serialize_entry(k, &MetaJson(v))?;
            } else {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// A stored object's `metadata` serialised as the API shows it (see [`StoredJson`]).
pub struct MetaJson<'a>(pub &'a Value);

impl serde::Serialize for MetaJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap, SerializeSeq};
        struct Entry<'a>(&'a Value);
        impl serde::Serialize for Entry<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let Some(m) = self.0.as_object() else {
                    return self.0.serialize(s);
                };
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    match v {
                        Value::String(text) if k == "fieldsV1" => {
                            let raw: &serde_json::value::RawValue =
                                serde_json::from_str(text).map_err(S::Error::custom)?;
                            map.serialize_entry(k, raw)?;
                        }
                        _ => map.serialize_entry(k, v)?,
                    }
                }
                map.end()
            }
        }
        struct Entries<'a>(&'a [Value]);
        impl serde::Serialize for Entries<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for e in self.0 {
                    seq.serialize_element(&Entry(e))?;
                }
                seq.end()
            }
        }
        let Some(m) = self.0.as_object() else {
            return self.0.serialize(s);
        };
        let mut map = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            match v {
                Value::Array(entries) if k == "managedFields" => {
                    map.serialize_entry(k, &Entries(entries))?;
                }
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

/// Presents a stored object through an endpoint.
pub fn to_view(def: &ResourceDef, stored: &Value) -> Value {
    match def.view {
        View::EventsV1 => {
            let mut v = builtin::event_to_v1(stored);
            expand_managed(&mut v);
            v
        }
        View::Plain => {
            let mut v = stored.clone();
            expand_managed(&mut v);
            if !def.builtin
                && let Some(m) = v.as_object_mut()
            {
                m.insert("apiVersion".into(), json!(def.api_version()));
            }
            v
        }
    }
}

fn from_view(def: &ResourceDef, view: Value) -> Value {
    match def.view {
        View::EventsV1 => builtin::event_from_v1(&view),
        View::Plain => view,
    }
}

pub fn shape_of(def: &ResourceDef) -> Shape<'_> {
    if def.builtin {
        Shape::builtin(&def.kind)
    } else {
        Shape::schema(def.schema.as_deref())
    }
}

/// The provisioner of the default StorageClass (the stand-in controllers bind and resize
/// its claims).
pub const PROVISIONER: &str = "e2e.keelson.dev/stand-in";

/// The default StorageClass `standard`, expandable; tests may patch it (or add others).
fn default_storage_class() -> Value {
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "standard",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER, "allowVolumeExpansion": true,
        "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"})
}

impl State {
    pub fn new() -> Self {
        let mut s = State {
            rv: START_RV,
            buckets: HashMap::new(),
            defs: BTreeMap::new(),
            crd_groups: Vec::new(),
            uids: HashMap::new(),
            dependents: HashMap::new(),
            next_ip: 1,
            notes: Vec::new(),
            writes: 0,
            history_window: HISTORY_WINDOW,
            history_cap: HISTORY_CAP,
        };
        for d in builtin_defs() {
            s.register(d);
        }
        let ns_def = s.def("", "v1", "namespaces").expect("namespaces");
        let ctx = Ctx {
            manager: "kube-apiserver".into(),
            subresource: None,
            dry_run: false,
            now: now(),
        };
        for n in ["default", "kube-node-lease", "kube-public", "kube-system"] {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}});
            s.write(&ns_def, "", "", Write::Create(body), &ctx)
                .expect("initial namespaces");
        }
        let sc_def = s
            .def("storage.k8s.io", "v1", "storageclasses")
            .expect("storageclasses");
        s.write(
            &sc_def,
            "",
            "",
            Write::Create(default_storage_class()),
            &ctx,
        )
        .expect("default StorageClass");
        s.notes.clear();
        s.writes = 0;
        s
    }

    fn register(&mut self, d: ResourceDef) {
        let rv = self.rv;
        self.buckets
            .entry(d.store_key.clone())
            .or_insert_with(|| Bucket::new(rv));
        if !d.builtin && !self.crd_groups.contains(&d.group) {
            self.crd_groups.push(d.group.clone());
        }
        self.defs.insert(
            (d.group.clone(), d.version.clone(), d.plural.clone()),
            Arc::new(d),
        );
    }

    pub fn def(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Whether any resource is served for the group/version.
    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.defs.keys().any(|(g, v, _)| g == group && v == version)
    }

    /// The definition that serves a storage bucket (the plain view of its first version).
    pub fn def_for_store(&self, store_key: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .values()
            .find(|d| d.store_key == store_key && d.view == View::Plain)
            .cloned()
    }

    /// One definition per namespaced storage bucket.
    pub fn namespaced_defs(&self) -> Vec<Arc<ResourceDef>> {
        let mut seen = std::collections::HashSet::new();
        self.defs
            .values()
            .filter(|d| d.namespaced && d.view == View::Plain && seen.insert(d.store_key.clone()))
            .cloned()
            .collect()
    }

    /// Removes a namespace whose content is gone (the namespace controller's last step).
    pub fn remove_namespace(&mut self, name: &str) {
        let Some(def) = self.def("", "v1", "namespaces") else {
            return;
        };
        if let Some(ns) = self.namespace(name) {
            self.remove_object(&def, ns.clone(), Some(ns));
        }
    }

    pub fn bucket(&self, store_key: &str) -> Option<&Bucket> {
        self.buckets.get(store_key)
    }

    pub fn get_stored(&self, def: &ResourceDef, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.buckets
            .get(&def.store_key)?
            .objects
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    pub fn namespace(&self, name: &str) -> Option<Arc<Value>> {
        self.buckets
            .get("namespaces")?
            .objects
            .get(&(String::new(), name.to_string()))
            .cloned()
    }

    fn allocate_ip(&mut self) -> String {
        let n = self.next_ip;
        self.next_ip += 1;
        format!("10.96.{}.{}", (n / 250) % 256, n % 250 + 2)
    }

    /// Records a change: assigns no resourceVersion (the caller did), updates indexes and fans out.
    fn emit(&mut self, store_key: &str, ty: EventType, obj: Arc<Value>, prev: Option<Arc<Value>>) {
        let rv = rv_of(&obj);
        let key = (
            meta_str(&obj, "namespace").unwrap_or("").to_string(),
            meta_str(&obj, "name").unwrap_or("").to_string(),
        );
        let oref: ObjRef = (store_key.to_string(), key.0.clone(), key.1.clone());
        if let Some(p) = &prev {
            for o in owner_uids(p) {
                if let Some(set) = self.dependents.get_mut(&o) {
                    set.remove(&oref);
                    if set.is_empty() {
                        self.dependents.remove(&o);
                    }
                }
            }
        }
        let uid = meta_str(&obj, "uid").unwrap_or("").to_string();
        if ty == EventType::Deleted {
            self.uids.remove(&uid);
        } else {
            self.uids.insert(uid, oref.clone());
            for o in owner_uids(&obj) {
                self.dependents.entry(o).or_default().insert(oref.clone());
            }
        }
        let (window, cap) = (self.history_window, self.history_cap);
        let bucket = self.buckets.get_mut(store_key).expect("bucket");
        let json = Bytes::from(serde_json::to_vec(&StoredJson(&obj)).expect("stored JSON"));
        let prev_json = prev.as_ref().map(|p| {
            let prev_rv = rv_of(p);
            match bucket.last_json.get(&key) {
                Some((rv, j)) if *rv == prev_rv => j.clone(),
                _ => Bytes::from(serde_json::to_vec(&StoredJson(p)).expect("stored JSON")),
            }
        });
        if ty == EventType::Deleted {
            bucket.objects.remove(&key);
            bucket.last_json.remove(&key);
        } else {
            bucket.last_json.insert(key.clone(), (rv, json.clone()));
            bucket.objects.insert(key.clone(), obj.clone());
        }
        let at = Instant::now();
        bucket.history.push_back(Past {
            ty,
            rv,
            at,
            key,
            json: json.clone(),
            prev_json,
        });
        bucket.prune(at, window, cap);
        let _ = bucket.tx.send(Arc::new(Event {
            ty,
            obj: obj.clone(),
            prev,
            json,
        }));
        self.writes += 1;
        let store_key = store_key.to_string();
        self.notes.push(match ty {
            EventType::Deleted => Note::Deleted { obj },
            _ => Note::Changed { store_key, obj },
        });
    }

    /// Forgets all history: every resourceVersion up to now counts as compacted.
    pub fn compact(&mut self) {
        let rv = self.rv;
        for b in self.buckets.values_mut() {
            b.history.clear();
            b.last_json.clear();
            b.compacted_rv = rv;
        }
    }

    /// Drops a resource's past events that left the history window.
    pub fn prune_history(&mut self, store_key: &str) {
        let (window, cap) = (self.history_window, self.history_cap);
        if let Some(b) = self.buckets.get_mut(store_key) {
            b.prune(Instant::now(), window, cap);
        }
    }

    /// Past events a resource holds for resuming watches.
    pub fn history_len(&self, store_key: &str) -> usize {
        self.buckets.get(store_key).map_or(0, |b| b.history.len())
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Deletes the stored object at once (resourceVersion bump, DELETED event).
    fn remove_object(&mut self, def: &ResourceDef, last: Arc<Value>, prev: Option<Arc<Value>>) {
        let rv = self.next_rv();
        let mut obj = (*last).clone();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let obj = Arc::new(obj);
        self.emit(&def.store_key, EventType::Deleted, obj.clone(), prev);
        if def.kind == "CustomResourceDefinition" && def.group == "apiextensions.k8s.io" {
            self.unregister_crd(&obj);
        }
    }

    /// Makes an installed CRD's resources served (or updates them).
    fn sync_crd(&mut self, crd: &Value) {
        let defs = crd_defs(crd);
        let Some(first) = defs.first() else { return };
        let (group, plural) = (first.group.clone(), first.plural.clone());
        self.defs
            .retain(|(g, _, p), d| !(g == &group && p == &plural && !d.builtin));
        for d in defs {
            self.register(d);
        }
    }

    fn unregister_crd(&mut self, crd: &Value) {
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("");
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or("");
        let key = resource_key(group, plural);
        // Custom resources go with their definition.
        if let Some(bucket) = self.buckets.get(&key) {
            let objs: Vec<Arc<Value>> = bucket.objects.values().cloned().collect();
            let def = self
                .defs
                .values()
                .find(|d| d.store_key == key && !d.builtin)
                .cloned();
            if let Some(def) = def {
                for o in objs {
                    self.remove_object(&def, o.clone(), Some(o));
                }
            }
        }
        self.defs
            .retain(|(g, _, p), d| !(g == group && p == plural && !d.builtin));
        self.buckets.remove(&key);
        if !self.defs.values().any(|d| d.group == group) {
            self.crd_groups.retain(|g| g != group);
        }
    }

    /// LIST: matching stored objects in (namespace, name) order, with paging.
    pub fn list(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        q: &ListQuery,
    ) -> Result<ListResult, ApiError> {
        let bucket = self
            .buckets
            .get(&def.store_key)
            .ok_or_else(super::status::not_found_resource)?;
        if let (Some(rv), Some("Exact")) = (q.resource_version, q.rv_match.as_deref())
            && rv < bucket.compacted_rv
        {
            return Err(expired(
                "The resourceVersion for the provided list is too old.",
            ));
        }
        let (list_rv, start) = match &q.continue_token {
            Some(tok) => {
                let (rv, start) = decode_continue(tok)?;
                if rv >= 0 && (rv as u64) < bucket.compacted_rv {
                    let mut e = expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    );
                    e.body["metadata"] = json!({"continue": encode_continue(-1, &start)});
                    return Err(e);
                }
                (if rv >= 0 { rv as u64 } else { self.rv }, Some(start))
            }
            None => (self.rv, None),
        };
        let paging = q.limit.filter(|l| *l > 0 && q.resource_version != Some(0));
        // A page of one namespace resumes right after the object its token names, as etcd
        // reads a key range: a page costs its own objects, not the whole namespace before it.
        let resume = start
            .as_deref()
            .and_then(|s| split_continue_key(s.trim_end_matches('\u{0}')))
            .filter(|(rns, _)| ns == Some(*rns));
        let range_start = match (ns, &resume) {
            (_, Some((rns, rname))) => Bound::Excluded((rns.to_string(), rname.to_string())),
            (Some(n), None) => Bound::Included((n.to_string(), String::new())),
            (None, None) => Bound::Included((String::new(), String::new())),
        };
        // With a selector the count of what remains is unknown, and left unset (ListMeta,
        // `remainingItemCount`): a page stops at the first match beyond it.
        let selected = !q.label.is_empty() || !q.field.is_empty();
        let mut items = Vec::new();
        let mut remaining = 0u64;
        let mut next: Option<String> = None;
        let pinned = q.field.pinned_name();
        for ((ons, oname), obj) in bucket.objects.range((range_start, Bound::Unbounded)) {
            if let Some(n) = ns
                && ons != n
            {
                break;
            }
            if resume.is_none()
                && let Some(s) = &start
                && continue_key(ons, oname).as_str() <= s.trim_end_matches('\u{0}')
            {
                continue;
            }
            if pinned.is_some_and(|p| p != oname) {
                continue;
            }
            if !q.label.matches(obj) {
                continue;
            }
            if !q.field.is_empty() {
                let view = to_view(def, obj);
                if !q.field.matches(&view) {
                    continue;
                }
            }
            if let Some(limit) = paging {
                if items.len() as u64 >= limit {
                    remaining += 1;
                    if selected {
                        break;
                    }
                    continue;
                }
                if items.len() as u64 + 1 == limit {
                    next = Some(continue_key(ons, oname));
                }
            }
            items.push(obj.clone());
        }
        let cont = if remaining > 0 {
            next.map(|k| encode_continue(list_rv as i64, &format!("{k}\u{0}")))
        } else {
            None
        };
        let remaining = (remaining > 0 && !selected).then_some(remaining);
        Ok(ListResult {
            items,
            rv: list_rv,
            continue_token: cont,
            remaining,
        })
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

pub struct ListQuery {
    pub label: LabelSelector,
    pub field: FieldSelector,
    pub limit: Option<u64>,
    pub continue_token: Option<String>,
    pub resource_version: Option<u64>,
    pub rv_match: Option<String>,
}

pub struct ListResult {
    pub items: Vec<Arc<Value>>,
    pub rv: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// The (namespace, name) a [`continue_key`] names (`""` for a cluster-scoped object).
fn split_continue_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix('/')?;
    Some(rest.split_once('/').unwrap_or(("", rest)))
}

fn continue_key(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        format!("/{name}")
    } else {
        format!("/{ns}/{name}")
    }
}

fn encode_continue(rv: i64, start: &str) -> String {
    use base64::Engine;
    let body = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.to_string())
}

fn decode_continue(tok: &str) -> Result<(i64, String), ApiError> {
    use base64::Engine;
    let invalid = |m: String| bad_request(format!("invalid continue token: {m}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok.trim_end_matches('='))
        .map_err(|e| {
            let at = match e {
                base64::DecodeError::InvalidByte(i, _) => i,
                base64::DecodeError::InvalidLength(n) => n.saturating_sub(1),
                base64::DecodeError::InvalidLastSymbol(i, _) => i,
                base64::DecodeError::InvalidPadding => tok.len(),
            };
            invalid(format!(
                "continue key is not valid: illegal base64 data at input byte {at}"
            ))
        })?;
    let v: Value = serde_json::from_slice(&raw)
        .map_err(|e| invalid(format!("continue key is not valid: {e}")))?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(invalid(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
                .into(),
        ));
    }
    Ok((
        v["rv"].as_i64().unwrap_or(0),
        v["start"].as_str().unwrap_or("").to_string(),
    ))
}
