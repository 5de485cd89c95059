//! DELETE of one object: preconditions, finalizers (propagation Foreground and Orphan add
//! theirs), namespaces that start terminating, and objects that go at once.

use super::super::resources::ResourceDef;
use super::super::status::ApiError;
use super::{DeleteOpts, EventType, State, finalizers, meta, meta_mut, meta_str, to_view};
use serde_json::{Map, Value, json};
use std::sync::Arc;

impl State {
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
        if def.kind == "Pod" && def.builtin {
            let grace = opts.grace.unwrap_or_else(|| {
                obj["spec"]["terminationGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(30)
            });
            // A graceful DELETE does not hurry a Pod already terminating.
            if already && grace != 0 {
                return Ok((200, to_view(def, &live)));
            }
            let on_node = obj["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty());
            if !already && on_node && grace > 0 {
                if opts.dry_run {
                    return Ok((200, to_view(def, &live)));
                }
                // The kubelet stops the containers, then deletes the Pod for good.
                let until = chrono::Utc::now() + chrono::Duration::seconds(grace);
                let md = meta_mut(&mut obj);
                md.insert(
                    "deletionTimestamp".into(),
                    json!(until.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                );
                md.insert("deletionGracePeriodSeconds".into(), json!(grace));
                if !fins.is_empty() {
                    md.insert("finalizers".into(), json!(fins));
                }
                let rv = self.next_rv();
                meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
                let obj = Arc::new(obj);
                self.emit(&def.store_key, EventType::Modified, obj.clone(), Some(live));
                return Ok((200, to_view(def, &obj)));
            }
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
}
