//! The stored state and every operation on it: create, update, patch, apply, delete, list and
//! the start of watches. HTTP handlers and the stand-in controllers both go through here, with
//! the state lock held.

use super::builtin;
use super::fieldset::FieldSet;
use super::patch::{JsonPatchError, json_patch, merge_patch};
use super::resources::{ResourceDef, View, builtin_defs, crd_defs, resource_key};
use super::schema;
use super::selector::{FieldSelector, LabelSelector};
use super::shape::Shape;
use super::ssa::{self, ManagedEntry};
use super::status::{ApiError, Cause, Res, bad_request, expired};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// How many past events each resource keeps for watches that resume from a resourceVersion.
const HISTORY: usize = 20_000;
/// Capacity of each resource's event fan-out channel.
const FANOUT: usize = 8_192;
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

/// A change of one stored object, as fanned out to watches.
#[derive(Debug)]
pub struct Event {
    pub ty: EventType,
    pub rv: u64,
    pub obj: Arc<Value>,
    pub prev: Option<Arc<Value>>,
}

pub struct Bucket {
    pub objects: BTreeMap<(String, String), Arc<Value>>,
    pub tx: broadcast::Sender<Arc<Event>>,
    pub history: VecDeque<Arc<Event>>,
    /// Events at or below this resourceVersion may be missing from `history`.
    pub compacted_rv: u64,
}

impl Bucket {
    fn new(compacted_rv: u64) -> Self {
        Bucket {
            objects: BTreeMap::new(),
            tx: broadcast::channel(FANOUT).0,
            history: VecDeque::new(),
            compacted_rv,
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

/// Equal apart from managedFields and resourceVersion (no-op detection), without copying.
fn same_object(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let skip = |k: &str| matches!(k, "managedFields" | "resourceVersion");
    let meta_eq = |x: Option<&Value>, y: Option<&Value>| match (x, y) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            x.iter().filter(|(k, _)| !skip(k)).count() == y.iter().filter(|(k, _)| !skip(k)).count()
                && x.iter()
                    .filter(|(k, _)| !skip(k))
                    .all(|(k, v)| y.get(k) == Some(v))
        }
        (x, y) => x == y,
    };
    a.len() == b.len()
        && a.iter().all(|(k, v)| {
            if k == "metadata" {
                meta_eq(Some(v), b.get(k))
            } else {
                b.get(k) == Some(v)
            }
        })
}

/// Equal outside metadata and status (what moves `metadata.generation`), without copying.
fn same_spec(a: &Value, b: &Value) -> bool {
    let ignored = |k: &str| matches!(k, "metadata" | "status" | "apiVersion" | "kind");
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    a.iter().filter(|(k, _)| !ignored(k)).count() == b.iter().filter(|(k, _)| !ignored(k)).count()
        && a.iter()
            .filter(|(k, _)| !ignored(k))
            .all(|(k, v)| b.get(k) == Some(v))
}

fn strip_managed(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    c
}

/// The Kind string the per-kind rules use (Events distinguish their two views).
pub fn view_kind(def: &ResourceDef) -> String {
    match def.view {
        View::EventsV1 => "Event.events.k8s.io".into(),
        View::Plain => def.kind.clone(),
    }
}

/// Presents a stored object through an endpoint.
pub fn to_view(def: &ResourceDef, stored: &Value) -> Value {
    match def.view {
        View::EventsV1 => builtin::event_to_v1(stored),
        View::Plain => {
            let mut v = stored.clone();
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

/// An object with nothing but its type and identity.
fn identity(def: &ResourceDef, ns: &str, name: &str) -> Value {
    let mut z = json!({});
    set_identity(&mut z, def, ns, name);
    z
}

/// The Go zero value of the endpoint's kind, with identity metadata.
fn baseline(def: &ResourceDef, ns: &str, name: &str) -> Value {
    let mut z = if def.builtin {
        builtin::zero(&view_kind(def))
    } else {
        json!({})
    };
    set_identity(&mut z, def, ns, name);
    z
}

fn set_identity(z: &mut Value, def: &ResourceDef, ns: &str, name: &str) {
    let m = z.as_object_mut().expect("object");
    m.insert("apiVersion".into(), json!(def.api_version()));
    m.insert("kind".into(), json!(def.kind));
    let mut md = Map::new();
    md.insert("name".into(), json!(name));
    if def.namespaced {
        md.insert("namespace".into(), json!(ns));
    }
    m.insert("metadata".into(), Value::Object(md));
}

fn zero_status(def: &ResourceDef) -> Option<Value> {
    if !def.builtin {
        return None;
    }
    builtin::zero(&def.kind).get("status").cloned()
}

const SERVER_META: &[&str] = &[
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

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
        let bucket = self.buckets.get_mut(store_key).expect("bucket");
        if ty == EventType::Deleted {
            bucket.objects.remove(&key);
        } else {
            bucket.objects.insert(key, obj.clone());
        }
        let ev = Arc::new(Event {
            ty,
            rv,
            obj: obj.clone(),
            prev,
        });
        bucket.history.push_back(ev.clone());
        while bucket.history.len() > HISTORY {
            if let Some(old) = bucket.history.pop_front() {
                bucket.compacted_rv = old.rv;
            }
        }
        let _ = bucket.tx.send(ev);
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
            b.compacted_rv = rv;
        }
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Creates, updates, patches or applies one object.
    pub fn write(
        &mut self,
        def: &Arc<ResourceDef>,
        ns: &str,
        url_name: &str,
        op: Write,
        ctx: &Ctx,
    ) -> Result<Written, ApiError> {
        let res = def.res();
        let status_sub = ctx.subresource.as_deref() == Some("status");
        let shape = shape_of(def);
        let vkind = view_kind(def);

        // The name: from the URL, or for a create from the body (or generateName).
        let mut name = url_name.to_string();
        if let Write::Create(body) = &op {
            check_type_meta(def, body)?;
            name = meta_str(body, "name").unwrap_or("").to_string();
            if name.is_empty()
                && let Some(g) = meta_str(body, "generateName").filter(|g| !g.is_empty())
            {
                name = format!("{g}{}", random_suffix());
            }
            if name.is_empty() {
                return Err(res.invalid(&def.kind, "", builtin::validate_name(&def.kind, "")));
            }
        }
        let live = self.get_stored(def, ns, &name);
        let live_view = live.as_deref().map(|l| to_view(def, l));
        let mut entries = live_view
            .as_ref()
            .map(ssa::decode_managed)
            .unwrap_or_default();

        let creating = live.is_none();
        if creating && status_sub {
            return Err(res.not_found(&name));
        }
        if creating && def.namespaced {
            match self.namespace(ns) {
                None => {
                    return Err(Res {
                        group: "",
                        plural: "namespaces",
                    }
                    .not_found(ns));
                }
                Some(n) if meta(&n).get("deletionTimestamp").is_some() => {
                    return Err(res.terminating_namespace(&name, ns));
                }
                _ => {}
            }
        }

        let subresource = if status_sub { "status" } else { "" };
        let mut apply_set: Option<FieldSet> = None;
        let mut cand = match op {
            Write::Create(body) => {
                if !creating {
                    return Err(res.already_exists(&name));
                }
                body
            }
            Write::Replace(body) => {
                check_type_meta(def, &body)?;
                let Some(lv) = &live_view else {
                    return Err(res.not_found(&name));
                };
                check_name(&body, &name)?;
                if let Some(rv) = meta_str(&body, "resourceVersion").filter(|s| !s.is_empty())
                    && rv != meta_str(lv, "resourceVersion").unwrap_or("")
                {
                    return Err(res.conflict_modified(&name));
                }
                body
            }
            Write::MergePatch(_) | Write::StrategicPatch(_) | Write::JsonPatch(_)
                if live_view.is_none() =>
            {
                return Err(res.not_found(&name));
            }
            Write::MergePatch(p) => {
                let mut c = live_view.clone().expect("live");
                merge_patch(&mut c, &p);
                check_patched_rv(&c, live_view.as_ref().expect("live"), &res, &name)?;
                c
            }
            Write::StrategicPatch(p) => {
                let mut c = live_view.clone().expect("live");
                super::patch::strategic_merge(&mut c, &p, &shape);
                check_patched_rv(&c, live_view.as_ref().expect("live"), &res, &name)?;
                c
            }
            Write::JsonPatch(p) => {
                let mut c = live_view.clone().expect("live");
                json_patch(&mut c, &p).map_err(|e| match e {
                    JsonPatchError::BadRequest(m) => bad_request(m),
                    JsonPatchError::Invalid(m) => ApiError::status(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request: {m}"
                        ),
                        Some(json!({})),
                    ),
                })?;
                check_patched_rv(&c, live_view.as_ref().expect("live"), &res, &name)?;
                c
            }
            Write::Apply { cfg, force } => {
                check_type_meta(def, &cfg)?;
                check_name(&cfg, &name)?;
                if let Some(rv) = meta_str(&cfg, "resourceVersion").filter(|s| !s.is_empty()) {
                    let current = live_view
                        .as_ref()
                        .and_then(|l| meta_str(l, "resourceVersion"))
                        .unwrap_or("");
                    if rv != current {
                        return Err(res.conflict_modified(&name));
                    }
                }
                let mut cfg = cfg;
                clean_config(&mut cfg, def, status_sub);
                let mut set = ssa::applied_set(&cfg, &shape);
                ssa::strip_server_fields(&mut set);
                if status_sub {
                    set = set.only_subtree("f:status");
                } else if def.status {
                    set.remove_subtree(&["f:status".to_string()]);
                }
                // A create starts from an empty object (the Go zero value only matters for
                // what update operations record as changed).
                let mut base = live_view
                    .clone()
                    .unwrap_or_else(|| identity(def, ns, &name));
                if let Some(md) = base.get_mut("metadata").and_then(Value::as_object_mut) {
                    md.remove("managedFields");
                }
                let mut merged = ssa::merge(Some(&base), &cfg, &shape);
                // Fields this manager applied before and no longer applies go, unless another
                // manager owns them too.
                let prev = entries
                    .iter()
                    .find(|e| e.same_identity(&ctx.manager, "Apply", subresource))
                    .map(|e| e.set.clone())
                    .unwrap_or_default();
                let mut others = FieldSet::new();
                for e in entries
                    .iter()
                    .filter(|e| !e.same_identity(&ctx.manager, "Apply", subresource))
                {
                    others.union_with(&e.set);
                }
                for p in prev.difference(&set).paths() {
                    if !others.has_at_or_below(&p) {
                        ssa::remove_path(&mut merged, &p, &shape);
                    }
                }
                let cmp = ssa::compare(&base, &merged, &shape);
                let mut changed = cmp.added.clone();
                changed.union_with(&cmp.modified);
                ssa::strip_server_fields(&mut changed);
                let conflicts = ssa::find_conflicts(&entries, &changed, &ctx.manager, subresource);
                if !conflicts.is_empty() && !force {
                    let (msg, causes) = ssa::conflict_message(&conflicts);
                    return Err(res.apply_conflict(msg, causes));
                }
                for e in entries.iter_mut() {
                    if e.same_identity(&ctx.manager, "Apply", subresource) {
                        continue;
                    }
                    e.set = e.set.difference(&changed).difference(&cmp.removed);
                }
                apply_set = Some(set);
                merged
            }
        };

        builtin::check_micro_times(&vkind, &cand)?;
        if !cand.is_object() {
            return Err(bad_request(format!(
                "the object provided is unrecognized (must be of type {})",
                def.kind
            )));
        }

        // Identity and server-managed metadata.
        {
            let m = cand.as_object_mut().expect("object");
            m.insert("apiVersion".into(), json!(def.api_version()));
            m.insert("kind".into(), json!(def.kind));
        }
        if def.namespaced && meta_str(&cand, "namespace").is_some_and(|b| !b.is_empty() && b != ns)
        {
            return Err(bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        {
            let md = meta_mut(&mut cand);
            md.insert("name".into(), json!(name));
            if def.namespaced {
                md.insert("namespace".into(), json!(ns));
            } else {
                md.remove("namespace");
            }
            md.remove("managedFields");
            // Empty lists and maps are omitted when serialised, as by the API server.
            for k in ["finalizers", "ownerReferences", "labels", "annotations"] {
                let empty = match md.get(k) {
                    Some(Value::Array(a)) => a.is_empty(),
                    Some(Value::Object(o)) => o.is_empty(),
                    Some(Value::Null) => true,
                    _ => false,
                };
                if empty {
                    md.remove(k);
                }
            }
            for k in SERVER_META {
                md.remove(*k);
            }
            if let Some(lv) = &live_view {
                for k in SERVER_META {
                    if let Some(v) = meta(lv).get(*k) {
                        md.insert((*k).to_string(), v.clone());
                    }
                }
            }
        }

        // Status subresource semantics.
        if def.status {
            let live_status = live_view.as_ref().and_then(|l| l.get("status").cloned());
            if status_sub {
                let new_status = cand.get("status").cloned();
                let mut c = live_view.clone().expect("status writes need a live object");
                let m = c.as_object_mut().expect("object");
                match new_status {
                    Some(s) => {
                        m.insert("status".into(), s);
                    }
                    None => match zero_status(def) {
                        Some(z) => {
                            m.insert("status".into(), z);
                        }
                        None => {
                            m.remove("status");
                        }
                    },
                }
                // Status writes never change metadata other than managedFields.
                if let Some(lv) = &live_view {
                    m.insert("metadata".into(), strip_managed(lv)["metadata"].clone());
                }
                cand = c;
            } else {
                let m = cand.as_object_mut().expect("object");
                match live_status.or_else(|| zero_status(def)) {
                    Some(s) => {
                        m.insert("status".into(), s);
                    }
                    None => {
                        m.remove("status");
                    }
                }
            }
        }

        // Defaulting.
        if def.builtin {
            builtin::default_object(&vkind, &mut cand);
        } else if let Some(s) = def.schema.as_deref() {
            schema::prune(&mut cand, s, true);
            schema::apply_defaults(&mut cand, s);
        }

        // managedFields.
        let (mgr_op, mgr_set) = match apply_set {
            Some(set) => ("Apply", set),
            None => {
                // An update owns what it changed; a create compares with the Go zero value.
                let base_for_cmp = live_view
                    .as_ref()
                    .map(strip_managed)
                    .unwrap_or_else(|| baseline(def, ns, &name));
                let cmp = ssa::compare(&base_for_cmp, &cand, &shape);
                let mut changed = cmp.added;
                changed.union_with(&cmp.modified);
                ssa::strip_server_fields(&mut changed);
                let mut removed = cmp.removed;
                ssa::strip_server_fields(&mut removed);
                for e in entries.iter_mut() {
                    if e.same_identity(&ctx.manager, "Update", subresource) {
                        continue;
                    }
                    e.set = e.set.difference(&changed).difference(&removed);
                }
                let mut set = entries
                    .iter()
                    .find(|e| e.same_identity(&ctx.manager, "Update", subresource))
                    .map(|e| e.set.clone())
                    .unwrap_or_default();
                set.union_with(&changed);
                let set = set.difference(&removed);
                ("Update", set)
            }
        };
        let old_entries = live_view
            .as_ref()
            .map(ssa::decode_managed)
            .unwrap_or_default();
        let existing = entries
            .iter()
            .position(|e| e.same_identity(&ctx.manager, mgr_op, subresource));
        match existing {
            Some(i) => {
                entries[i].set = mgr_set;
                entries[i].api_version = def.api_version();
            }
            None => entries.push(ManagedEntry {
                manager: ctx.manager.clone(),
                operation: mgr_op.into(),
                api_version: def.api_version(),
                time: ctx.now.clone(),
                subresource: subresource.into(),
                set: mgr_set,
            }),
        }

        // Strategy.
        match &live_view {
            None => {
                let mut ip = || self.allocate_ip();
                builtin::prepare_for_create(&vkind, &mut cand, &mut ip);
            }
            Some(lv) => builtin::prepare_for_update(&vkind, lv, &mut cand),
        }

        // Validation.
        let mut causes = Vec::new();
        if creating {
            causes.extend(builtin::validate_name(&def.kind, &name));
        }
        causes.extend(builtin::validate_metadata(&cand));
        if def.builtin {
            causes.extend(builtin::validate(&vkind, &cand));
        } else if let Some(s) = def.schema.as_deref() {
            let schema_causes = schema::validate(&cand, live_view.as_ref(), s);
            if !schema_causes.is_empty() {
                causes.extend(schema_causes);
                if def.has_cel {
                    causes.push(Cause {
                        reason: "FieldValueInvalid",
                        message: "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
                        field: "<nil>".into(),
                    });
                }
            } else if def.has_cel {
                causes.extend(super::cel::validate(&cand, live_view.as_ref(), s));
            }
        }
        if !causes.is_empty() {
            // Events are validated as the core kind, whichever group they came through.
            let res = if def.view == View::EventsV1 {
                Res {
                    group: "",
                    plural: "events",
                }
            } else {
                res
            };
            return Err(res.invalid(&def.kind, &name, causes));
        }

        let mut new_stored = from_view(def, cand);
        if def.generation {
            let generation = match &live {
                None => 1,
                Some(l) => {
                    let g = meta(l)
                        .get("generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    if !same_spec(l, &new_stored) { g + 1 } else { g }
                }
            };
            meta_mut(&mut new_stored).insert("generation".into(), json!(generation));
        }

        // No-op detection: same object, same ownership.
        let object_changed = match &live {
            None => true,
            Some(l) => !same_object(l, &new_stored),
        };
        let ownership_changed = {
            let strip = |es: &[ManagedEntry]| -> Vec<(String, String, String, String, Value)> {
                let mut v: Vec<_> = es
                    .iter()
                    .filter(|e| !e.set.is_empty())
                    .map(|e| {
                        (
                            e.manager.clone(),
                            e.operation.clone(),
                            e.subresource.clone(),
                            e.api_version.clone(),
                            e.set.to_json(),
                        )
                    })
                    .collect();
                v.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
                v
            };
            strip(&old_entries) != strip(&entries)
        };
        if !object_changed && !ownership_changed {
            let l = live.expect("live");
            return Ok(Written {
                code: 200,
                obj: to_view(def, &l),
            });
        }
        if let Some(e) = entries
            .iter_mut()
            .find(|e| e.same_identity(&ctx.manager, mgr_op, subresource))
        {
            e.time = ctx.now.clone();
        }
        let mf = ssa::encode_managed(&mut entries);
        {
            let md = meta_mut(&mut new_stored);
            if mf.as_array().is_some_and(|a| !a.is_empty()) {
                md.insert("managedFields".into(), mf);
            } else {
                md.remove("managedFields");
            }
        }

        if ctx.dry_run {
            let mut v = new_stored;
            if creating {
                let md = meta_mut(&mut v);
                md.insert("uid".into(), json!(new_uid()));
                md.insert("creationTimestamp".into(), json!(ctx.now));
            }
            return Ok(Written {
                code: if creating { 201 } else { 200 },
                obj: to_view(def, &v),
            });
        }

        // Removing the last finalizer of an object being deleted deletes it.
        let deleting = meta(&new_stored).get("deletionTimestamp").is_some();
        if deleting
            && finalizers(&new_stored).is_empty()
            && def.kind != "Namespace"
            && let Some(l) = &live
        {
            let last = Arc::new(new_stored.clone());
            self.remove_object(def, last, Some(l.clone()));
            return Ok(Written {
                code: 200,
                obj: to_view(def, &new_stored),
            });
        }

        let rv = self.next_rv();
        {
            let md = meta_mut(&mut new_stored);
            md.insert("resourceVersion".into(), json!(rv.to_string()));
            if creating {
                md.insert("uid".into(), json!(new_uid()));
                md.insert("creationTimestamp".into(), json!(ctx.now));
            }
        }
        let stored = Arc::new(new_stored);
        let ty = if creating {
            EventType::Added
        } else {
            EventType::Modified
        };
        self.emit(&def.store_key, ty, stored.clone(), live);
        if def.kind == "CustomResourceDefinition" && def.group == "apiextensions.k8s.io" {
            self.sync_crd(&stored);
        }
        Ok(Written {
            code: if creating { 201 } else { 200 },
            obj: to_view(def, &stored),
        })
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

    /// DELETE of one object.
    pub fn delete(
        &mut self,
        def: &Arc<ResourceDef>,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
        now: &str,
    ) -> Result<(u16, Value), ApiError> {
        let res = def.res();
        let Some(live) = self.get_stored(def, ns, name) else {
            return Err(res.not_found(name));
        };
        let uid = meta_str(&live, "uid").unwrap_or("").to_string();
        if let Some(want) = &opts.uid
            && *want != uid
        {
            return Err(res.precondition_failed(
                    &def.kind,
                    name,
                    format!("the UID in the precondition ({want}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"),
                ));
        }
        if let Some(want) = &opts.rv {
            let have = meta_str(&live, "resourceVersion").unwrap_or("");
            if want != have {
                return Err(res.precondition_failed(
                    &def.kind,
                    name,
                    format!("the ResourceVersion in the precondition ({want}) does not match the ResourceVersion in record ({have}). The object might have been modified"),
                ));
            }
        }
        let mut obj = (*live).clone();
        let mut fins = finalizers(&obj);
        match opts.propagation.as_deref() {
            Some("Foreground") if !fins.iter().any(|f| f == "foregroundDeletion") => {
                fins.push("foregroundDeletion".into())
            }
            Some("Orphan") if !fins.iter().any(|f| f == "orphan") => fins.push("orphan".into()),
            _ => {}
        }
        let already = meta(&obj).get("deletionTimestamp").is_some();
        if def.kind == "Namespace" && def.builtin {
            if already {
                return Ok((200, to_view(def, &live)));
            }
            if opts.dry_run {
                return Ok((200, to_view(def, &live)));
            }
            meta_mut(&mut obj).insert("deletionTimestamp".into(), json!(now));
            obj["status"]["phase"] = json!("Terminating");
            let rv = self.next_rv();
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
            let obj = Arc::new(obj);
            self.emit(&def.store_key, EventType::Modified, obj.clone(), Some(live));
            return Ok((200, to_view(def, &obj)));
        }
        if !fins.is_empty() {
            let fins_changed = fins != finalizers(&live);
            if already && !fins_changed {
                return Ok((200, to_view(def, &live)));
            }
            if opts.dry_run {
                return Ok((200, to_view(def, &live)));
            }
            {
                let md = meta_mut(&mut obj);
                md.insert("finalizers".into(), json!(fins));
                if !already {
                    md.insert("deletionTimestamp".into(), json!(now));
                    md.insert("deletionGracePeriodSeconds".into(), json!(0));
                    if def.generation {
                        let g = md.get("generation").and_then(Value::as_i64).unwrap_or(0);
                        md.insert("generation".into(), json!(g + 1));
                    }
                }
            }
            let rv = self.next_rv();
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
            let obj = Arc::new(obj);
            self.emit(&def.store_key, EventType::Modified, obj.clone(), Some(live));
            return Ok((200, to_view(def, &obj)));
        }
        if !opts.dry_run {
            self.remove_object(def, live.clone(), Some(live.clone()));
        }
        let mut details = Map::new();
        details.insert("name".into(), json!(name));
        if !def.group.is_empty() {
            details.insert("group".into(), json!(def.group));
        }
        details.insert("kind".into(), json!(def.plural));
        details.insert("uid".into(), json!(uid));
        Ok((
            200,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
        ))
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
        let range_start = match ns {
            Some(n) => (n.to_string(), String::new()),
            None => (String::new(), String::new()),
        };
        let mut items = Vec::new();
        let mut remaining = 0u64;
        let mut next: Option<String> = None;
        let pinned = q.field.pinned_name();
        for ((ons, oname), obj) in bucket.objects.range(range_start..) {
            if let Some(n) = ns
                && ons != n
            {
                break;
            }
            let key = continue_key(ons, oname);
            if let Some(s) = &start
                && key.as_str() <= s.trim_end_matches('\u{0}')
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
                    continue;
                }
                if items.len() as u64 + 1 == limit {
                    next = Some(key);
                }
            }
            items.push(obj.clone());
        }
        let cont = if remaining > 0 {
            next.map(|k| encode_continue(list_rv as i64, &format!("{k}\u{0}")))
        } else {
            None
        };
        Ok(ListResult {
            items,
            rv: list_rv,
            continue_token: cont,
            remaining: if remaining > 0 { Some(remaining) } else { None },
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

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn check_name(body: &Value, url_name: &str) -> Result<(), ApiError> {
    match meta_str(body, "name") {
        Some(n) if !n.is_empty() && n != url_name => Err(bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({url_name})"
        ))),
        _ => Ok(()),
    }
}

fn check_patched_rv(c: &Value, live: &Value, res: &Res, name: &str) -> Result<(), ApiError> {
    if meta_str(c, "resourceVersion") != meta_str(live, "resourceVersion") {
        return Err(res.conflict_modified(name));
    }
    Ok(())
}

/// A body of another kind than the endpoint serves is a 400.
fn check_type_meta(def: &ResourceDef, body: &Value) -> Result<(), ApiError> {
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != def.kind {
        let src_version = api_version.split_once('/').map_or(api_version, |(_, v)| v);
        let internal = if def.group.is_empty() {
            "core"
        } else {
            def.group.as_str()
        };
        return Err(bad_request(format!(
            "{kind} in version {src_version:?} cannot be handled as a {}: converting ({src_version}.{kind}) to ({internal}.{}): unknown conversion",
            def.kind, def.kind
        )));
    }
    if !body.is_object() {
        return Err(bad_request(format!(
            "the object provided is unrecognized (must be of type {})",
            def.kind
        )));
    }
    Ok(())
}

/// What an apply configuration may set: no server-managed metadata; status only through
/// the status subresource.
fn clean_config(cfg: &mut Value, def: &ResourceDef, status_sub: bool) {
    let Some(m) = cfg.as_object_mut() else { return };
    if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
        md.remove("managedFields");
        for k in SERVER_META {
            md.remove(*k);
        }
    }
    if status_sub {
        m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
        if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            md.retain(|k, _| matches!(k.as_str(), "name" | "namespace"));
        }
    } else if def.status {
        m.remove("status");
    }
}
