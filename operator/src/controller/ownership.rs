//! Ownership: Keelson writes only objects it controls.
//!
//! Before a child is written, its name is looked up in the watches: Keelson's index of its
//! labelled objects (`app.kubernetes.io/managed-by: keelson`), and a metadata-only watch of every
//! other object of the kind (selector `app.kubernetes.io/managed-by!=keelson`: made by hand or by
//! another tool), which keeps only who controls each. While one of them has not listed yet
//! (an API the cluster has just begun to serve), nothing is written under the name and the
//! reconcile is retried soon ([`Error::NotListed`]). What exists decides:
//!
//! - controlled by this Application (or absent): written as usual;
//! - controlled by another Application, or by another controller: a [`Conflict`], left alone;
//! - controlled by nothing: a [`Conflict`], unless it asks to be adopted by this Application with
//!   the annotation `keelson.dev/adopt: <application>` ([`labels::ADOPT_ANNOTATION`]), or Keelson
//!   made it for an Application of this name (labelled `app.kubernetes.io/managed-by: keelson`
//!   and `keelson.dev/application: <application>`: a retained credentials Secret, or a child
//!   orphaned with `kubectl delete --cascade=orphan`); then it is taken over by the next apply,
//!   which sets this Application's controller owner reference. Credentials (create-only) are
//!   never written: an adopted Secret is used as it is.
//!
//! A conflict blocks only its own child: every other child is still applied, and prune still
//! runs, since prune deletes only children whose controller owner reference is this Application
//! and the conflicting name is kept among the wanted ones.

use std::fmt;

use super::{
    apply::Applier,
    error::{Error, Result},
    watch::{Child, KindStores, Lookup, Observed},
};
use crate::{build::labels, kinds::kind_name};

/// Who controls an object Keelson wanted to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Another Application, by name (an earlier one of the same name, still being deleted, too).
    Application(String),
    /// Another controller, as `Kind/name`.
    Controller(String),
    /// Nothing: it was made by hand or by a tool.
    Nobody,
}

/// An object of a child's kind and name that this Application does not control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The kind, e.g. `Service`.
    pub kind: &'static str,
    /// The name.
    pub name: String,
    /// Who controls it.
    pub holder: Holder,
    /// The Application that wanted it.
    pub app: String,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Conflict {
            kind, name, app, ..
        } = self;
        match &self.holder {
            Holder::Application(other) if other == app => write!(
                f,
                "{kind} {name} belongs to an earlier Application {other} that is still being deleted; Keelson creates it once it is gone"
            ),
            Holder::Application(other) => write!(
                f,
                "{kind} {name} belongs to Application {other}; rename the service or database so the generated names differ"
            ),
            Holder::Controller(other) => write!(
                f,
                "{kind} {name} is controlled by {other}; Keelson leaves it alone; rename the service or database"
            ),
            Holder::Nobody => write!(
                f,
                "{kind} {name} exists and Keelson did not create it; delete it, rename the service or database, or let Keelson take it over with the annotation {}={app}",
                labels::ADOPT_ANNOTATION
            ),
        }
    }
}

/// What may be done with a child's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Absent, or this Application's (or free to take over): write it as usual.
    Write,
    /// Not to be written: it is someone else's.
    Conflict(Conflict),
}

/// Decide, from what is known of an existing object (`None`: it does not exist), whether the
/// Application `app_name` with `app_uid` may write it. Pure.
pub fn claim(
    kind: &'static str,
    name: &str,
    existing: Option<&Observed>,
    app_uid: &str,
    app_name: &str,
) -> Claim {
    let Some(o) = existing else {
        return Claim::Write;
    };
    let holder = match (&o.owner, o.unowned.as_deref()) {
        (Some(owner), _) if owner.uid == app_uid => return Claim::Write,
        (Some(owner), _) => Holder::Application(owner.name.clone()),
        (None, Some(u)) => match &u.controller {
            Some(c) => Holder::Controller(c.clone()),
            None if u.adopt.as_deref() == Some(app_name) => return Claim::Write,
            None if u.keelson_made && u.application.as_deref() == Some(app_name) => {
                return Claim::Write;
            }
            None => Holder::Nobody,
        },
        (None, None) => Holder::Nobody,
    };
    Claim::Conflict(Conflict {
        kind,
        name: name.to_string(),
        holder,
        app: app_name.to_string(),
    })
}

impl Applier<'_> {
    /// Whether this Application may write the child `name` of kind `K`, from what the watches
    /// know of the name: Keelson's labelled objects and, reduced to who controls them, every
    /// other object of the kind. [`Error::NotListed`] while one of them has not listed yet.
    pub fn claim<K: Child>(&self, name: &str, stores: &KindStores<K>) -> Result<Claim> {
        let kind = kind_name::<K>();
        let existing = match stores.lookup(self.namespace(), name) {
            Lookup::Exists(o) => Some(o),
            Lookup::Absent => None,
            Lookup::Unknown => {
                return Err(Error::NotListed {
                    kind,
                    name: name.to_string(),
                    failure: stores.start_failure(),
                });
            }
        };
        Ok(claim(
            kind,
            name,
            existing.as_ref(),
            self.app_uid(),
            self.app_name(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;
    use serde_json::json;

    use super::*;

    fn observed(meta: serde_json::Value) -> Observed {
        let meta: ObjectMeta = serde_json::from_value(meta).unwrap();
        Observed::of_meta(&meta)
    }

    fn app_owner(name: &str, uid: &str) -> serde_json::Value {
        json!([{"apiVersion": "keelson.dev/v1alpha1", "kind": "Application", "name": name,
            "uid": uid, "controller": true}])
    }

    fn holder(c: Claim) -> Option<Holder> {
        match c {
            Claim::Write => None,
            Claim::Conflict(c) => Some(c.holder),
        }
    }

    #[test]
    fn only_what_this_application_controls_or_may_take_is_written() {
        let check = |meta| {
            holder(claim(
                "Service",
                "shop-orders-api",
                Some(&observed(meta)),
                "uid-shop",
                "shop",
            ))
        };
        assert_eq!(
            holder(claim("Service", "x", None, "uid-shop", "shop")),
            None
        );
        assert_eq!(
            check(json!({"ownerReferences": app_owner("shop", "uid-shop")})),
            None
        );
        assert_eq!(
            check(json!({"ownerReferences": app_owner("shop-orders", "uid-other")})),
            Some(Holder::Application("shop-orders".into()))
        );
        assert_eq!(
            check(
                json!({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "rs", "uid": "u", "controller": true}]})
            ),
            Some(Holder::Controller("ReplicaSet/rs".into()))
        );
        // Made by hand: only with the annotation naming this Application.
        assert_eq!(check(json!({})), Some(Holder::Nobody));
        assert_eq!(
            check(json!({"annotations": {"keelson.dev/adopt": "other"}})),
            Some(Holder::Nobody)
        );
        assert_eq!(
            check(json!({"annotations": {"keelson.dev/adopt": "shop"}})),
            None
        );
        // An adoption annotation does not take an object from its controller.
        assert_eq!(
            check(json!({"annotations": {"keelson.dev/adopt": "shop"},
                "ownerReferences": app_owner("shop-orders", "uid-other")})),
            Some(Holder::Application("shop-orders".into()))
        );
        // Made by Keelson for an Application of this name and orphaned (a retained Secret).
        let made = |app: &str| {
            json!({"labels": {"app.kubernetes.io/managed-by": "keelson",
                "keelson.dev/application": app}})
        };
        assert_eq!(check(made("shop")), None);
        assert_eq!(check(made("shop-orders")), Some(Holder::Nobody));
        // A non-controller owner reference is not control.
        assert_eq!(
            check(
                json!({"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                "name": "c", "uid": "u"}]})
            ),
            Some(Holder::Nobody)
        );
    }

    #[test]
    fn a_conflict_names_the_object_its_holder_and_the_fix() {
        let c = |holder| {
            Conflict {
                kind: "Service",
                name: "shop-orders-api".into(),
                holder,
                app: "shop-orders".into(),
            }
            .to_string()
        };
        assert_eq!(
            c(Holder::Application("shop".into())),
            "Service shop-orders-api belongs to Application shop; rename the service or database so the generated names differ"
        );
        assert!(c(Holder::Nobody).contains("keelson.dev/adopt=shop-orders"));
        assert!(
            c(Holder::Controller("ReplicaSet/rs".into())).contains("controlled by ReplicaSet/rs")
        );
    }
}
