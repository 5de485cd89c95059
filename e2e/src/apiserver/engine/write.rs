//! Writes: create, update (PUT), patch (merge, strategic, JSON), server-side apply and status
//! writes. Each verb turns its request into a candidate object; one shared pipeline then fills
//! in server-managed metadata, status semantics, defaults and managedFields, validates,
//! detects no-ops and stores.

use super::super::builtin;
use super::super::fieldset::FieldSet;
use super::super::immutable;
use super::super::patch::{JsonPatchError, json_patch, merge_patch, strategic_merge};
use super::super::quantity::Quantity;
use super::super::resources::{ResourceDef, View};
use super::super::schema;
use super::super::ssa::{self, ManagedEntry};
use super::super::status::{ApiError, Cause, Res, admission_forbidden, bad_request};
use super::{
    Ctx, EventType, State, Write, Written, finalizers, meta, meta_mut, meta_str, new_uid, shape_of,
    to_view, view_kind,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// One write on its way through the pipeline.
struct Pending<'a> {
    def: &'a Arc<ResourceDef>,
    ns: &'a str,
    name: String,
    ctx: &'a Ctx,
    /// The stored object, if any.
    live: Option<Arc<Value>>,
    /// The same as the endpoint presents it.
    live_view: Option<Value>,
    /// managedFields of the live object, adjusted by the operation.
    entries: Vec<ManagedEntry>,
    /// What an apply configuration specified (`None` for update operations).
    apply_set: Option<FieldSet>,
}

impl<'a> Pending<'a> {
    fn creating(&self) -> bool {
        self.live.is_none()
    }

    fn status_sub(&self) -> bool {
        self.ctx.subresource.as_deref() == Some("status")
    }

    /// The managedFields subresource of this write (`status`, `scale` or none).
    fn subresource(&self) -> &'a str {
        self.ctx.subresource.as_deref().unwrap_or("")
    }

    fn res(&self) -> Res<'_> {
        self.def.res()
    }

    fn live_view(&self) -> Result<&Value, ApiError> {
        self.live_view
            .as_ref()
            .ok_or_else(|| self.res().not_found(&self.name))
    }
}

impl State {
    /// Creates, updates, patches or applies one object.
    pub fn write(
        &mut self,
        def: &Arc<ResourceDef>,
        ns: &str,
        url_name: &str,
        op: Write,
        ctx: &Ctx,
    ) -> Result<Written, ApiError> {
        let name = match &op {
            Write::Create(body) => create_name(def, body)?,
            _ => url_name.to_string(),
        };
        let live = self.get_stored(def, ns, &name);
        let live_view = live.as_deref().map(|l| to_view(def, l));
        let entries = live_view
            .as_ref()
            .map(ssa::decode_managed)
            .unwrap_or_default();
        let mut p = Pending {
            def,
            ns,
            name,
            ctx,
            live,
            live_view,
            entries,
            apply_set: None,
        };
        self.check_target(&p)?;
        let cand = match op {
            Write::Create(body) => create(&p, body)?,
            Write::Replace(body) => replace(&p, body)?,
            Write::MergePatch(patch) => merge_patched(&p, &patch)?,
            Write::StrategicPatch(patch) => strategic_patched(&p, &patch)?,
            Write::JsonPatch(patch) => json_patched(&p, &patch)?,
            Write::Apply { cfg, force } => apply(&mut p, cfg, force)?,
        };
        self.store(p, cand)
    }

    /// A create needs its namespace, alive; a status write needs the object.
    fn check_target(&self, p: &Pending) -> Result<(), ApiError> {
        if p.creating() && p.status_sub() {
            return Err(p.res().not_found(&p.name));
        }
        if p.creating() && p.def.namespaced {
            match self.namespace(p.ns) {
                None => {
                    return Err(Res {
                        group: "",
                        plural: "namespaces",
                    }
                    .not_found(p.ns));
                }
                Some(n) if meta(&n).get("deletionTimestamp").is_some() => {
                    return Err(p.res().terminating_namespace(&p.name, p.ns));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The pipeline every write shares once its verb produced a candidate.
    fn store(&mut self, mut p: Pending, mut cand: Value) -> Result<Written, ApiError> {
        let vkind = view_kind(p.def);
        builtin::check_micro_times(&vkind, &cand)?;
        if !cand.is_object() {
            return Err(unrecognized(p.def));
        }
        server_metadata(&p, &mut cand)?;
        if p.def.status {
            status_semantics(&p, &mut cand);
        }
        self.mutating_admission(&p, &vkind, &mut cand);
        if p.def.builtin {
            builtin::default_object(&vkind, &mut cand);
        } else if let Some(s) = p.def.schema.as_deref() {
            schema::prune(&mut cand, s, true);
            schema::apply_defaults(&mut cand, s);
        }
        let (mgr_op, old_entries) = record_ownership(&mut p, &cand);
        match &p.live_view {
            None => {
                let mut ip = || self.allocate_ip();
                builtin::prepare_for_create(&vkind, &mut cand, &mut ip);
            }
            Some(lv) => builtin::prepare_for_update(&vkind, lv, &mut cand),
        }
        validate(&p, &vkind, &cand)?;
        self.admit(&p, &vkind, &cand)?;

        let mut new_stored = super::from_view(p.def, cand);
        if p.def.generation {
            set_generation(p.live.as_deref(), &mut new_stored);
        }
        let object_changed = p
            .live
            .as_deref()
            .is_none_or(|l| !same_object(l, &new_stored));
        if !object_changed && !ownership_changed(&old_entries, &p.entries) {
            let l = p.live.as_deref().expect("live");
            return Ok(Written {
                code: 200,
                obj: to_view(p.def, l),
            });
        }
        let subresource = p.subresource();
        if let Some(e) = p
            .entries
            .iter_mut()
            .find(|e| e.same_identity(&p.ctx.manager, mgr_op, subresource))
        {
            e.time = p.ctx.now.clone();
        }
        let mf = ssa::encode_managed(&mut p.entries);
        {
            let md = meta_mut(&mut new_stored);
            if mf.as_array().is_some_and(|a| !a.is_empty()) {
                md.insert("managedFields".into(), mf);
            } else {
                md.remove("managedFields");
            }
        }
        self.commit(&p, new_stored)
    }

    /// Stores the new state (or, for a dry run, only shows it).
    fn commit(&mut self, p: &Pending, mut new_stored: Value) -> Result<Written, ApiError> {
        let (def, ctx, creating) = (p.def, p.ctx, p.creating());
        let code = if creating { 201 } else { 200 };
        if ctx.dry_run {
            if creating {
                let md = meta_mut(&mut new_stored);
                md.insert("uid".into(), json!(new_uid()));
                md.insert("creationTimestamp".into(), json!(ctx.now));
            }
            return Ok(Written {
                code,
                obj: to_view(def, &new_stored),
            });
        }
        // Removing the last finalizer of an object being deleted deletes it.
        let deleting = meta(&new_stored).get("deletionTimestamp").is_some();
        if deleting
            && finalizers(&new_stored).is_empty()
            && def.kind != "Namespace"
            && let Some(l) = &p.live
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
        super::compact_managed(&mut new_stored);
        let stored = Arc::new(new_stored);
        let ty = if creating {
            EventType::Added
        } else {
            EventType::Modified
        };
        self.emit(&def.store_key, ty, stored.clone(), p.live.clone());
        if def.kind == "CustomResourceDefinition" && def.group == "apiextensions.k8s.io" {
            self.sync_crd(&stored);
        }
        Ok(Written {
            code,
            obj: to_view(def, &stored),
        })
    }

    /// Mutating admission: the DefaultStorageClass plugin gives a new claim without
    /// `storageClassName` the default StorageClass.
    fn mutating_admission(&self, p: &Pending, vkind: &str, cand: &mut Value) {
        if vkind != "PersistentVolumeClaim" || !p.creating() {
            return;
        }
        let Some(spec) = cand.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        if spec.get("storageClassName").is_some_and(|c| !c.is_null()) {
            return;
        }
        if let Some(class) = self.default_storage_class() {
            spec.insert("storageClassName".into(), json!(class));
        }
    }

    /// The StorageClass annotated `storageclass.kubernetes.io/is-default-class: "true"`.
    pub fn default_storage_class(&self) -> Option<String> {
        let def = self.def("storage.k8s.io", "v1", "storageclasses")?;
        let bucket = self.bucket(&def.store_key)?;
        bucket
            .objects
            .values()
            .find(|sc| {
                sc.pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
                    .and_then(Value::as_str)
                    == Some("true")
            })
            .and_then(|sc| meta_str(sc, "name").map(String::from))
    }

    /// Admission that needs other objects than the one written (after validation, as the
    /// API server runs validating admission after the strategy's validation).
    fn admit(&self, p: &Pending, vkind: &str, cand: &Value) -> Result<(), ApiError> {
        match (vkind, &p.live_view) {
            ("PersistentVolumeClaim", Some(old)) if !p.status_sub() => {
                self.admit_pvc_resize(p, old, cand)
            }
            _ => Ok(()),
        }
    }

    /// The PersistentVolumeClaimResize admission plugin: a claim may grow only when it is
    /// bound and its StorageClass allows volume expansion.
    fn admit_pvc_resize(&self, p: &Pending, old: &Value, new: &Value) -> Result<(), ApiError> {
        let size = |v: &Value| {
            v.pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(Quantity::parse)
                .unwrap_or_default()
        };
        if size(new) <= size(old) {
            return Ok(());
        }
        if old.pointer("/status/phase").and_then(Value::as_str) != Some("Bound") {
            return Err(admission_forbidden(
                &p.res(),
                &p.name,
                "Only bound persistent volume claims can be expanded",
            ));
        }
        let class = |v: &Value| {
            v.pointer("/spec/storageClassName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (class_new, class_old) = (class(new), class(old));
        let allowed = !class_new.is_empty()
            && class_new == class_old
            && self
                .def("storage.k8s.io", "v1", "storageclasses")
                .and_then(|d| self.get_stored(&d, "", &class_new))
                .is_some_and(|sc| sc["allowVolumeExpansion"] == true);
        if allowed {
            return Ok(());
        }
        Err(admission_forbidden(
            &p.res(),
            &p.name,
            "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
        ))
    }
}

/// The name of a created object: from the body, or made from `generateName`.
fn create_name(def: &ResourceDef, body: &Value) -> Result<String, ApiError> {
    check_type_meta(def, body)?;
    let mut name = meta_str(body, "name").unwrap_or("").to_string();
    if name.is_empty()
        && let Some(g) = meta_str(body, "generateName").filter(|g| !g.is_empty())
    {
        name = format!("{g}{}", random_suffix());
    }
    if name.is_empty() {
        return Err(def
            .res()
            .invalid(&def.kind, "", builtin::validate_name(&def.kind, "")));
    }
    Ok(name)
}

/// POST: the body as sent.
fn create(p: &Pending, body: Value) -> Result<Value, ApiError> {
    if !p.creating() {
        return Err(p.res().already_exists(&p.name));
    }
    Ok(body)
}

/// PUT: the body as sent; its resourceVersion, when set, must be the current one.
fn replace(p: &Pending, body: Value) -> Result<Value, ApiError> {
    check_type_meta(p.def, &body)?;
    let lv = p.live_view()?;
    check_name(&body, &p.name)?;
    if let Some(rv) = meta_str(&body, "resourceVersion").filter(|s| !s.is_empty())
        && rv != meta_str(lv, "resourceVersion").unwrap_or("")
    {
        return Err(p.res().conflict_modified(&p.name));
    }
    Ok(body)
}

/// JSON merge patch (RFC 7386) of the live object.
fn merge_patched(p: &Pending, patch: &Value) -> Result<Value, ApiError> {
    let lv = p.live_view()?;
    let mut c = lv.clone();
    merge_patch(&mut c, patch);
    check_patched_rv(&c, lv, &p.res(), &p.name)?;
    Ok(c)
}

/// Strategic merge patch of the live object (lists merged by their keys).
fn strategic_patched(p: &Pending, patch: &Value) -> Result<Value, ApiError> {
    let lv = p.live_view()?;
    let mut c = lv.clone();
    strategic_merge(&mut c, patch, &shape_of(p.def));
    check_patched_rv(&c, lv, &p.res(), &p.name)?;
    Ok(c)
}

/// JSON patch (RFC 6902) of the live object.
fn json_patched(p: &Pending, patch: &Value) -> Result<Value, ApiError> {
    let lv = p.live_view()?;
    let mut c = lv.clone();
    json_patch(&mut c, patch).map_err(|e| match e {
        JsonPatchError::BadRequest(m) => bad_request(m),
        JsonPatchError::Invalid(m) => ApiError::status(
            422,
            "Invalid",
            format!("the server rejected our request due to an error in our request: {m}"),
            Some(json!({})),
        ),
    })?;
    check_patched_rv(&c, lv, &p.res(), &p.name)?;
    Ok(c)
}

/// Server-side apply: merges the configuration into the live object, removes what this
/// manager stopped applying (unless another manager owns it), detects conflicts and moves
/// ownership of what changed to this manager.
fn apply(p: &mut Pending, cfg: Value, force: bool) -> Result<Value, ApiError> {
    let (def, ctx) = (p.def, p.ctx);
    let status_sub = p.status_sub();
    let subresource = p.subresource();
    let shape = shape_of(def);
    check_type_meta(def, &cfg)?;
    check_name(&cfg, &p.name)?;
    if let Some(rv) = meta_str(&cfg, "resourceVersion").filter(|s| !s.is_empty()) {
        let current = p
            .live_view
            .as_ref()
            .and_then(|l| meta_str(l, "resourceVersion"))
            .unwrap_or("");
        if rv != current {
            return Err(p.res().conflict_modified(&p.name));
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
    // A create starts from an empty object (the Go zero value only matters for what update
    // operations record as changed).
    let mut base = p
        .live_view
        .clone()
        .unwrap_or_else(|| identity(def, p.ns, &p.name));
    if let Some(md) = base.get_mut("metadata").and_then(Value::as_object_mut) {
        md.remove("managedFields");
    }
    let mut merged = ssa::merge(Some(&base), &cfg, &shape);
    // Fields this manager applied before and no longer applies go, unless another manager
    // owns them too.
    let mine = |e: &ManagedEntry| e.same_identity(&ctx.manager, "Apply", subresource);
    let prev = p
        .entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let mut others = FieldSet::new();
    for e in p.entries.iter().filter(|e| !mine(e)) {
        others.union_with(&e.set);
    }
    for path in prev.difference(&set).paths() {
        if !others.has_at_or_below(&path) {
            ssa::remove_path(&mut merged, &path, &shape);
        }
    }
    let cmp = ssa::compare(&base, &merged, &shape);
    let mut changed = cmp.added.clone();
    changed.union_with(&cmp.modified);
    ssa::strip_server_fields(&mut changed);
    let conflicts = ssa::find_conflicts(&p.entries, &changed, &ctx.manager, subresource);
    if !conflicts.is_empty() && !force {
        let (msg, causes) = ssa::conflict_message(&conflicts);
        return Err(p.res().apply_conflict(msg, causes));
    }
    for e in p.entries.iter_mut().filter(|e| !mine(e)) {
        e.set = e.set.difference(&changed).difference(&cmp.removed);
    }
    p.apply_set = Some(set);
    Ok(merged)
}

/// Identity and server-managed metadata: the URL's name and namespace, server fields from the
/// live object, empty lists and maps omitted.
fn server_metadata(p: &Pending, cand: &mut Value) -> Result<(), ApiError> {
    let def = p.def;
    {
        let m = cand.as_object_mut().expect("object");
        m.insert("apiVersion".into(), json!(def.api_version()));
        m.insert("kind".into(), json!(def.kind));
    }
    if def.namespaced && meta_str(cand, "namespace").is_some_and(|b| !b.is_empty() && b != p.ns) {
        return Err(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let md = meta_mut(cand);
    md.insert("name".into(), json!(p.name));
    if def.namespaced {
        md.insert("namespace".into(), json!(p.ns));
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
    if let Some(lv) = &p.live_view {
        for k in SERVER_META {
            if let Some(v) = meta(lv).get(*k) {
                md.insert((*k).to_string(), v.clone());
            }
        }
    }
    Ok(())
}

/// With a status subresource, the main resource keeps the live status and `/status` keeps
/// everything but the status.
fn status_semantics(p: &Pending, cand: &mut Value) {
    let def = p.def;
    let live_status = p.live_view.as_ref().and_then(|l| l.get("status").cloned());
    if p.status_sub() {
        let new_status = cand.get("status").cloned();
        let mut c = p
            .live_view
            .clone()
            .expect("status writes need a live object");
        let m = c.as_object_mut().expect("object");
        match new_status.or_else(|| zero_status(def)) {
            Some(s) => {
                m.insert("status".into(), s);
            }
            None => {
                m.remove("status");
            }
        }
        // Status writes never change metadata other than managedFields.
        if let Some(lv) = &p.live_view {
            m.insert("metadata".into(), strip_managed(lv)["metadata"].clone());
        }
        *cand = c;
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

/// Records who owns what after this write: an apply owns its configuration; an update owns
/// what it changed (a create compares with the Go zero value). Returns the operation and the
/// entries before the write.
fn record_ownership(p: &mut Pending, cand: &Value) -> (&'static str, Vec<ManagedEntry>) {
    let (def, ctx) = (p.def, p.ctx);
    let subresource = p.subresource();
    let shape = shape_of(def);
    let (mgr_op, mgr_set) = match p.apply_set.take() {
        Some(set) => ("Apply", set),
        None => {
            let base_for_cmp = p
                .live_view
                .as_ref()
                .map(strip_managed)
                .unwrap_or_else(|| baseline(def, p.ns, &p.name));
            let cmp = ssa::compare(&base_for_cmp, cand, &shape);
            let mut changed = cmp.added;
            changed.union_with(&cmp.modified);
            ssa::strip_server_fields(&mut changed);
            let mut removed = cmp.removed;
            ssa::strip_server_fields(&mut removed);
            let mine = |e: &ManagedEntry| e.same_identity(&ctx.manager, "Update", subresource);
            for e in p.entries.iter_mut().filter(|e| !mine(e)) {
                e.set = e.set.difference(&changed).difference(&removed);
            }
            let mut set = p
                .entries
                .iter()
                .find(|e| mine(e))
                .map(|e| e.set.clone())
                .unwrap_or_default();
            set.union_with(&changed);
            ("Update", set.difference(&removed))
        }
    };
    let old_entries = p
        .live_view
        .as_ref()
        .map(ssa::decode_managed)
        .unwrap_or_default();
    let existing = p
        .entries
        .iter()
        .position(|e| e.same_identity(&ctx.manager, mgr_op, subresource));
    match existing {
        Some(i) => {
            p.entries[i].set = mgr_set;
            p.entries[i].api_version = def.api_version();
        }
        None => p.entries.push(ManagedEntry {
            manager: ctx.manager.clone(),
            operation: mgr_op.into(),
            api_version: def.api_version(),
            time: ctx.now.clone(),
            subresource: subresource.into(),
            set: mgr_set,
        }),
    }
    (mgr_op, old_entries)
}

/// Validation of the object (and, for updates, of the change): 422 with every cause.
fn validate(p: &Pending, vkind: &str, cand: &Value) -> Result<(), ApiError> {
    let def = p.def;
    let mut causes = Vec::new();
    if p.creating() {
        causes.extend(builtin::validate_name(&def.kind, &p.name));
    }
    causes.extend(builtin::validate_metadata(cand));
    causes.extend(immutable::owner_references(meta(cand)));
    if def.builtin {
        causes.extend(builtin::validate(vkind, cand));
        if let Some(old) = p.live_view.as_ref().filter(|_| !p.status_sub()) {
            causes.extend(immutable::validate_update(vkind, old, cand));
        }
    } else if let Some(s) = def.schema.as_deref() {
        let schema_causes = schema::validate(cand, p.live_view.as_ref(), s);
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
            causes.extend(super::super::cel::validate(cand, p.live_view.as_ref(), s));
        }
    }
    if causes.is_empty() {
        return Ok(());
    }
    // Events are validated as the core kind, whichever group they came through.
    let res = if def.view == View::EventsV1 {
        Res {
            group: "",
            plural: "events",
        }
    } else {
        p.res()
    };
    Err(res.invalid(&def.kind, &p.name, causes))
}

/// `metadata.generation`: 1 on create, +1 when anything outside metadata and status changed.
fn set_generation(live: Option<&Value>, new_stored: &mut Value) {
    let generation = match live {
        None => 1,
        Some(l) => {
            let g = meta(l)
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if !same_spec(l, new_stored) { g + 1 } else { g }
        }
    };
    meta_mut(new_stored).insert("generation".into(), json!(generation));
}

/// Whether managedFields changed in substance (times aside).
fn ownership_changed(old: &[ManagedEntry], new: &[ManagedEntry]) -> bool {
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
    strip(old) != strip(new)
}

fn unrecognized(def: &ResourceDef) -> ApiError {
    bad_request(format!(
        "the object provided is unrecognized (must be of type {})",
        def.kind
    ))
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
