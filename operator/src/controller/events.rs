//! Events: what a reconcile changed, told to the people who watch the Application
//! (`kubectl describe`, `kubectl events`).

use kube::{
    Resource,
    runtime::events::{Event, EventType},
};

use super::{Context, apply::Report, error::ApiError};
use crate::api::Application;

/// The longest note the API server accepts is 1 kB: longer notes are cut.
const MAX_NOTE: usize = 1000;

/// Publish one Event about `app`. A failure is logged, never returned: Events are a courtesy.
pub async fn publish(
    ctx: &Context,
    app: &Application,
    type_: EventType,
    reason: &str,
    action: &str,
    mut note: String,
) {
    if note.len() > MAX_NOTE {
        let mut cut = MAX_NOTE - 3;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &app.object_ref(&())).await {
        let error = ApiError::of(&e);
        tracing::warn!(%error, reason, "could not publish an Event");
    }
}

/// Tell what apply created, updated and repaired and what prune deleted: one Event per kind of
/// change, naming each child as `Kind/name`.
pub async fn announce(ctx: &Context, app: &Application, report: &Report, pruned: &[String]) {
    let notes = [
        (
            "Created",
            "Apply",
            report.created.as_slice(),
            "created ",
            "",
        ),
        (
            "Updated",
            "Apply",
            report.updated.as_slice(),
            "updated ",
            "",
        ),
        (
            "DriftRepaired",
            "Apply",
            report.repaired.as_slice(),
            "restored ",
            " after it was changed or deleted outside Keelson",
        ),
        (
            "Pruned",
            "Prune",
            pruned,
            "deleted ",
            ", no longer in the spec",
        ),
    ];
    for (reason, action, names, prefix, suffix) in notes {
        if !names.is_empty() {
            let note = format!("{prefix}{}{suffix}", names.join(", "));
            publish(ctx, app, EventType::Normal, reason, action, note).await;
        }
    }
}
