//! Events about an Application (events.k8s.io/v1), one per child and change.
//!
//! Every repair, update and prune is its own Event, with the child as its `related` object, so
//! `kubectl describe kapp` lists each of them. An Event that repeats (same reason, same related
//! object, same note) within [`SERIES_WINDOW`] becomes a series (its count goes up) instead of a
//! new Event; any other text is a new Event, so a note never stands for something else. What is
//! remembered per Event sent is a hash and its name (about 80 bytes), not the Event.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{
        core::v1::ObjectReference,
        events::v1::{Event, EventSeries},
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};

use super::{Context, apply::Report, error::ApiError};
use crate::{api::Application, kinds};

/// The `reportingController` of Keelson's Events.
pub const REPORTING_CONTROLLER: &str = "keelson.dev/keelson";
/// How long a repeated Event is counted in its series rather than sent anew.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// The most an Event's note holds (the API server's limit is 1 kB).
const NOTE_LIMIT: usize = 1000;

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// Something Keelson did.
    Normal,
    /// Something that needs a person.
    Warning,
}

/// One Event to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// Normal or Warning.
    pub severity: Severity,
    /// The reason, e.g. `DriftRepaired`.
    pub reason: &'static str,
    /// What Keelson was doing: `Validate`, `Apply`, `Prune`, `Status`.
    pub action: &'static str,
    /// What happened, in words.
    pub text: String,
    /// The child it concerns, as `Kind/name`.
    pub child: Option<String>,
}

impl Note {
    fn new(severity: Severity, reason: &'static str, action: &'static str, text: String) -> Self {
        Note {
            severity,
            reason,
            action,
            text,
            child: None,
        }
    }

    /// A Normal Event.
    pub fn normal(reason: &'static str, action: &'static str, text: String) -> Self {
        Note::new(Severity::Normal, reason, action, text)
    }

    /// A Warning Event.
    pub fn warning(reason: &'static str, action: &'static str, text: String) -> Self {
        Note::new(Severity::Warning, reason, action, text)
    }

    /// The same Event, about the child `Kind/name`.
    pub fn about(mut self, child: &str) -> Self {
        self.child = Some(child.to_string());
        self
    }
}

/// The Events of one pass of apply and prune: the children created (one Event for all of them:
/// they are new together), then one Event per child updated, repaired or pruned.
pub fn apply_notes(report: &Report, pruned: &[String]) -> Vec<Note> {
    let mut out = Vec::new();
    if !report.created.is_empty() {
        let text = format!("created {}", report.created.join(", "));
        out.push(Note::normal("Created", "Apply", text));
    }
    for c in &report.updated {
        out.push(
            Note::normal("Updated", "Apply", format!("updated {c} to match the spec")).about(c),
        );
    }
    for c in &report.repaired {
        let text = format!("restored {c} after it was changed or deleted outside Keelson");
        out.push(Note::normal("DriftRepaired", "Apply", text).about(c));
    }
    for c in pruned {
        let text = format!("deleted {c}, no longer in the spec");
        out.push(Note::normal("Pruned", "Prune", text).about(c));
    }
    out
}

/// What is remembered of one Event sent.
struct Sent {
    name: String,
    count: i32,
    last: Instant,
}

/// Sends Events, counting repeats in series.
pub struct Events {
    client: Client,
    instance: String,
    sent: Mutex<HashMap<u64, Sent>>,
}

impl Events {
    /// Events reported by `instance` (the pod's name; the controller's name without one).
    pub fn new(client: Client, instance: Option<String>) -> Self {
        Events {
            client,
            instance: instance.unwrap_or_else(|| REPORTING_CONTROLLER.to_string()),
            sent: Mutex::default(),
        }
    }

    /// How many Events are remembered for their series.
    pub fn remembered(&self) -> usize {
        self.sent.lock().expect("lock").len()
    }

    /// Send `note` about `app`. Failures are logged: an Event is never worth a retry.
    pub async fn publish(&self, app: &Application, note: &Note) {
        if let Err(e) = self.send(app, note).await {
            let error = ApiError::of(&e);
            tracing::warn!(%error, reason = note.reason, "could not publish an Event");
        }
    }

    async fn send(&self, app: &Application, note: &Note) -> Result<(), kube::Error> {
        let namespace = app.namespace().unwrap_or_default();
        let text = truncate(&note.text);
        let key = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (
                app.uid(),
                note.severity,
                note.reason,
                note.action,
                &note.child,
                &text,
            )
                .hash(&mut h);
            h.finish()
        };
        let now = Instant::now();
        let repeat = {
            let mut sent = self.sent.lock().expect("lock");
            sent.retain(|_, s| now.duration_since(s.last) < SERIES_WINDOW);
            sent.get_mut(&key).map(|s| {
                s.count += 1;
                s.last = now;
                (s.name.clone(), s.count)
            })
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let time = MicroTime(Timestamp::now());
        if let Some((name, count)) = repeat {
            let series = serde_json::json!({"series": EventSeries {
                count,
                last_observed_time: time,
            }});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                .await?;
            return Ok(());
        }
        let name = format!("{}.{:x}", app.name_any(), Timestamp::now().as_nanosecond());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            action: Some(note.action.into()),
            reason: Some(note.reason.into()),
            note: Some(text),
            type_: Some(
                match note.severity {
                    Severity::Normal => "Normal",
                    Severity::Warning => "Warning",
                }
                .into(),
            ),
            event_time: Some(time),
            regarding: Some(app.object_ref(&())),
            related: note.child.as_deref().and_then(|c| child_ref(c, &namespace)),
            reporting_controller: Some(REPORTING_CONTROLLER.into()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        api.create(&PostParams::default(), &event).await?;
        self.sent.lock().expect("lock").insert(
            key,
            Sent {
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }
}

/// Send a Warning about `app` that concerns no one child (an invalid spec, a failed apply).
pub async fn warn(
    ctx: &Context,
    app: &Application,
    reason: &'static str,
    action: &'static str,
    text: String,
) {
    ctx.events
        .publish(app, &Note::warning(reason, action, text))
        .await;
}

/// Tell what apply created, updated and repaired and what prune deleted (see [`apply_notes`]).
pub async fn announce(ctx: &Context, app: &Application, report: &Report, pruned: &[String]) {
    for note in apply_notes(report, pruned) {
        ctx.events.publish(app, &note).await;
    }
}

/// At most [`NOTE_LIMIT`] bytes, cut at a character boundary.
fn truncate(text: &str) -> String {
    if text.len() <= NOTE_LIMIT {
        return text.to_string();
    }
    let mut cut = NOTE_LIMIT - 3;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

/// A reference to the child `Kind/name` of a registered kind in `namespace`.
fn child_ref(child: &str, namespace: &str) -> Option<ObjectReference> {
    static KINDS: OnceLock<Vec<kinds::KindInfo>> = OnceLock::new();
    let (kind, name) = child.split_once('/')?;
    let info = KINDS
        .get_or_init(kinds::all)
        .iter()
        .find(|k| k.kind == kind)?;
    let api_version = if info.group.is_empty() {
        info.version.to_string()
    } else {
        format!("{}/{}", info.group, info.version)
    };
    Some(ObjectReference {
        api_version: Some(api_version),
        kind: Some(kind.to_string()),
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        ..ObjectReference::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_repair_update_and_prune_is_its_own_event_about_its_child() {
        let report = Report {
            created: vec!["Service/shop-web".into(), "Deployment/shop-web".into()],
            updated: vec!["Deployment/shop-orders".into()],
            repaired: vec!["Deployment/shop-web".into(), "Service/shop-orders".into()],
            ..Report::default()
        };
        let notes = apply_notes(&report, &["HorizontalPodAutoscaler/shop-old".into()]);
        let texts: Vec<(&str, &str, Option<&str>)> = notes
            .iter()
            .map(|n| (n.reason, n.text.as_str(), n.child.as_deref()))
            .collect();
        assert_eq!(
            texts,
            [
                (
                    "Created",
                    "created Service/shop-web, Deployment/shop-web",
                    None
                ),
                (
                    "Updated",
                    "updated Deployment/shop-orders to match the spec",
                    Some("Deployment/shop-orders")
                ),
                (
                    "DriftRepaired",
                    "restored Deployment/shop-web after it was changed or deleted outside Keelson",
                    Some("Deployment/shop-web")
                ),
                (
                    "DriftRepaired",
                    "restored Service/shop-orders after it was changed or deleted outside Keelson",
                    Some("Service/shop-orders")
                ),
                (
                    "Pruned",
                    "deleted HorizontalPodAutoscaler/shop-old, no longer in the spec",
                    Some("HorizontalPodAutoscaler/shop-old")
                ),
            ]
        );
    }

    #[test]
    fn a_child_reference_has_its_kinds_api_version() {
        let r = child_ref("HorizontalPodAutoscaler/shop-orders", "ns").unwrap();
        assert_eq!(r.api_version.as_deref(), Some("autoscaling/v2"));
        assert_eq!(
            child_ref("Service/x", "ns").unwrap().api_version.as_deref(),
            Some("v1")
        );
        assert_eq!(child_ref("Unknown/x", "ns"), None);
    }

    #[test]
    fn a_long_note_is_cut_at_a_character_boundary() {
        let text = "é".repeat(600);
        let cut = truncate(&text);
        assert!(cut.len() <= NOTE_LIMIT && cut.ends_with("..."));
    }
}
