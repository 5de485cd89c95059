//! Failed writes: what users read (status conditions, Events) is the API server's message once,
//! in words; a refusal that will repeat waits for a change, anything else backs off.

mod support;

use std::{sync::Arc, time::Duration};

use keelson::{api::Application, controller};
use kube::runtime::controller::Action;
use serde_json::Value;
use support::{Call, Harness, Refusal, application};

const IMMUTABLE: &str = "Deployment.apps \"shop-payment\" is invalid: spec.selector: Invalid value: {\"matchLabels\":{\"app.kubernetes.io/name\":\"payment\"}}: field is immutable";
const QUOTA: &str = "secrets \"shop-orders-db-credentials\" is forbidden: exceeded quota: objects, requested: count/secrets=1, used: count/secrets=10, limited: count/secrets=10";
const CONFLICT: &str = "Operation cannot be fulfilled on deployments.apps \"shop-payment\": the object has been modified; please apply your changes to the latest version and try again";
const INTERNAL: &str = "Internal error occurred: etcdserver: request timed out";

fn refuse(h: &Harness, path: &str, code: u16, reason: &str, message: &str) {
    h.refusals.lock().unwrap().push(Refusal {
        path: path.into(),
        code,
        reason: reason.into(),
        message: message.into(),
    });
}

fn condition<'a>(calls: &'a [Call], type_: &str) -> &'a Value {
    let status = &calls
        .iter()
        .find(|c| c.path.ends_with("/status"))
        .expect("status written")
        .body["status"];
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
}

fn warning_note(calls: &[Call]) -> String {
    calls
        .iter()
        .find(|c| c.path.contains("/events") && c.body["reason"] == "ApplyFailed")
        .expect("an ApplyFailed Event")
        .body["note"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The text carries the server's message exactly once and no Rust `Debug` output.
fn assert_words(text: &str, server_message: &str) {
    assert_eq!(text.matches(server_message).count(), 1, "{text}");
    for debug in ["Status {", "ListMeta", "Some(", "None", "\\\""] {
        assert!(!text.contains(debug), "{debug:?} in {text}");
    }
}

/// Reconcile once with `refusal` in place; returns the error, the texts users read (Ready and
/// Degraded messages, the Warning Event) and the Harness.
async fn fail_once(
    path: &str,
    code: u16,
    reason: &str,
    message: &str,
) -> (controller::Error, Vec<String>, Harness, Value) {
    let app = application("shop.yaml");
    let h = Harness::new(&app);
    refuse(&h, path, code, reason, message);
    let (result, calls) = h.try_reconcile(&app).await;
    let err = result.expect_err("the refused write fails the reconcile");
    let texts = vec![
        condition(&calls, "Ready")["message"]
            .as_str()
            .unwrap()
            .to_string(),
        condition(&calls, "Degraded")["message"]
            .as_str()
            .unwrap()
            .to_string(),
        warning_note(&calls),
    ];
    for t in &texts {
        assert_words(t, message);
    }
    (err, texts, h, app)
}

fn policy(h: &Harness, app: &Value, err: &controller::Error) -> Action {
    let app: Application = serde_json::from_value(app.clone()).unwrap();
    controller::error_policy(Arc::new(app), err, h.ctx.clone())
}

#[tokio::test]
async fn an_immutable_field_is_reported_in_words_and_waits_for_a_change() {
    let (err, texts, h, app) =
        fail_once("/deployments/shop-payment", 422, "Invalid", IMMUTABLE).await;
    assert_eq!(
        texts[1],
        format!(
            "could not apply Deployment shop-payment: the API server refused (422 Invalid): {IMMUTABLE}; will retry when the spec or the cluster changes"
        )
    );
    assert!(
        texts[0]
            .starts_with("not every child is in place: could not apply Deployment shop-payment"),
        "{}",
        texts[0]
    );
    // Not retried on a timer, however often it fails.
    assert_eq!(policy(&h, &app, &err), Action::await_change());
    assert_eq!(policy(&h, &app, &err), Action::await_change());
}

#[tokio::test]
async fn an_exceeded_quota_is_reported_in_words_and_waits_for_a_change() {
    let (err, texts, h, app) = fail_once("/namespaces/shop/secrets", 403, "Forbidden", QUOTA).await;
    assert!(
        texts[2].starts_with("could not create Secret shop-orders-db-credentials: the API server refused (403 Forbidden): secrets"),
        "{}",
        texts[2]
    );
    assert_eq!(policy(&h, &app, &err), Action::await_change());
}

#[tokio::test]
async fn a_conflict_is_retried_with_backoff() {
    let (err, texts, h, app) =
        fail_once("/deployments/shop-payment", 409, "Conflict", CONFLICT).await;
    assert!(texts[1].ends_with("; retrying"), "{}", texts[1]);
    assert_eq!(
        policy(&h, &app, &err),
        Action::requeue(Duration::from_secs(1))
    );
}

#[tokio::test]
async fn a_server_error_is_retried_with_growing_backoff_up_to_thirty_seconds() {
    let (err, texts, h, app) =
        fail_once("/deployments/shop-payment", 500, "InternalError", INTERNAL).await;
    assert!(texts[1].ends_with("; retrying"), "{}", texts[1]);
    let waits: Vec<Action> = (0..8).map(|_| policy(&h, &app, &err)).collect();
    let want: Vec<Action> = [1, 2, 4, 8, 16, 30, 30, 30]
        .into_iter()
        .map(|s| Action::requeue(Duration::from_secs(s)))
        .collect();
    assert_eq!(waits, want);
    // A success starts the backoff over.
    h.refusals.lock().unwrap().clear();
    h.try_reconcile(&app).await.0.expect("reconcile succeeds");
    assert_eq!(
        policy(&h, &app, &err),
        Action::requeue(Duration::from_secs(1))
    );
}

#[tokio::test]
async fn a_failed_apply_prunes_nothing() {
    let app = application("shop.yaml");
    let h = Harness::new(&app);
    let mut objects = support::stored_children(&app);
    let mut legacy = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap()
        .clone();
    legacy["metadata"]["name"] = serde_json::json!("shop-legacy");
    objects.push(legacy);
    h.preload(&objects);
    refuse(
        &h,
        "/deployments/shop-payment",
        500,
        "InternalError",
        INTERNAL,
    );
    let (result, calls) = h.try_reconcile(&app).await;
    assert!(result.is_err());
    assert!(
        !calls.iter().any(|c| c.method == "DELETE"),
        "{:#?}",
        support::writes(&calls)
    );
}
