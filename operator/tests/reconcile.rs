//! Tier 2: the real reconcile with the real `kube::Client`, against a mocked API server
//! (tower-test) that answers like Kubernetes and records every request.

mod support;

use serde_json::{Value, json};
use support::{Call, Harness, UID, application, stored_children, writes};

#[tokio::test]
async fn first_reconcile_creates_every_child_and_writes_status() {
    let app = application("shop.yaml");
    let h = Harness::new(&app);
    let calls = h.reconcile(&app).await;
    let w = writes(&calls);

    for (kind_path, name) in [
        ("/api/v1/namespaces/shop/services/", "shop-orders"),
        ("/api/v1/namespaces/shop/services/", "shop-orders-db"),
        (
            "/apis/apps/v1/namespaces/shop/statefulsets/",
            "shop-orders-db",
        ),
        ("/apis/apps/v1/namespaces/shop/statefulsets/", "shop-cache"),
        (
            "/apis/apps/v1/namespaces/shop/deployments/",
            "shop-storefront",
        ),
        ("/apis/apps/v1/namespaces/shop/deployments/", "shop-payment"),
        (
            "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/",
            "shop-orders",
        ),
        (
            "/apis/policy/v1/namespaces/shop/poddisruptionbudgets/",
            "shop-orders",
        ),
        (
            "/apis/monitoring.coreos.com/v1/namespaces/shop/servicemonitors/",
            "shop-orders",
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/",
            "shop",
        ),
    ] {
        let want = format!("PATCH {kind_path}{name}");
        assert!(w.contains(&want), "missing {want} in {w:#?}");
    }
    // Server-side apply with the one field manager, forced.
    let applies: Vec<&Call> = calls
        .iter()
        .filter(|c| c.method == "PATCH" && !c.path.ends_with("/status"))
        .collect();
    assert_eq!(applies.len(), 21, "{w:#?}");
    // Credentials Secrets are created (POST), never applied.
    let secret_posts: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/api/v1/namespaces/shop/secrets")
        .collect();
    assert_eq!(secret_posts.len(), 2);
    assert!(
        !w.iter()
            .any(|c| c.starts_with("PATCH /api/v1/namespaces/shop/secrets"))
    );
    assert!(
        !w.iter().any(|c| c.starts_with("DELETE")),
        "nothing to prune: {w:#?}"
    );
    // Every child carries the controller owner reference.
    for c in &applies {
        let owner = &c.body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], UID, "{}", c.path);
        assert_eq!(owner["controller"], true);
    }
    // Status: observedGeneration, conditions, roll-up.
    let status = &calls
        .iter()
        .find(|c| c.path.ends_with("/applications/shop/status"))
        .expect("status written")
        .body["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["servicesReady"], "0/4");
    assert_eq!(status["url"], "https://shop.example.com");
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "WaitingForWorkloads");
    // The Application itself is never written, only its status (Argo CD stays in sync).
    assert!(
        !w.iter()
            .any(|c| c.contains("/applications/") && !c.ends_with("/status")),
        "{w:#?}"
    );
    // An Event says what was created.
    assert!(calls.iter().any(|c| c.method == "POST"
        && c.path.contains("/events")
        && c.body["reason"] == "Created"));
}

#[tokio::test]
async fn unchanged_second_reconcile_sends_no_request() {
    let mut app = application("shop.yaml");
    let h = Harness::new(&app);
    let first = h.reconcile(&app).await;
    // What the API server now holds: the children, and the status the first pass wrote.
    h.preload(&stored_children(&app));
    app["status"] = first
        .iter()
        .find(|c| c.path.ends_with("/status"))
        .unwrap()
        .body["status"]
        .clone();

    let second = h.reconcile(&app).await;
    assert!(
        second.is_empty(),
        "a no-op reconcile sent {:#?}",
        writes(&second)
    );
}

/// A child's watch event can start a reconcile before the Application's own watch delivered
/// the status the last pass wrote: the store still holds the Application without it. That
/// pass compares with what was written, not with the older status, and writes nothing.
#[tokio::test]
async fn a_reconcile_reading_a_store_that_lags_its_status_write_writes_it_not_again() {
    let app = application("shop.yaml");
    let h = Harness::new(&app);
    let first = h.reconcile(&app).await;
    assert!(first.iter().any(|c| c.path.ends_with("/status")));
    h.preload(&stored_children(&app));

    // The same Application as before the write: no status, resourceVersion 100.
    let second = h.reconcile(&app).await;
    assert!(
        second.is_empty(),
        "a pass on the lagging store sent {:#?}",
        writes(&second)
    );
}

/// A reconcile holds the Application as it was when it started. When the status the previous
/// pass wrote is delivered meanwhile, that pass compares with the store's Application (the
/// newer one), and writes nothing.
#[tokio::test]
async fn a_reconcile_that_started_before_its_status_write_was_delivered_writes_it_not_again() {
    use keelson::api::Application;
    use kube::runtime::{reflector, watcher};

    let app = application("shop.yaml");
    let h = Harness::new(&app);
    let first = h.reconcile(&app).await;
    h.preload(&stored_children(&app));
    // The watch delivers the write (revision 101, as the mocked server answered it).
    let mut delivered = app.clone();
    delivered["status"] = written_status(&first);
    delivered["metadata"]["resourceVersion"] = json!("101");
    let mut delivered: Application = serde_json::from_value(delivered).unwrap();
    h.ctx.applied.absorb(&mut delivered);
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Apply(delivered));
    h.ctx.set_application_stores(vec![reader]);

    // The next pass started before that, with the Application of revision 100.
    let second = h.reconcile(&app).await;
    assert!(
        second.is_empty(),
        "a pass holding an older Application sent {:#?}",
        writes(&second)
    );
}

#[tokio::test]
async fn a_removed_service_is_pruned_and_nothing_else() {
    let app = application("shop.yaml");
    let h = Harness::new(&app);
    // The cluster holds the shop's children plus the children of a service since removed, a
    // child of another Application, and an object of ours that lost its owner reference.
    let mut objects = stored_children(&app);
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
    ] {
        let mut legacy = objects.iter().find(|o| o["kind"] == kind).unwrap().clone();
        legacy["metadata"]["name"] = json!("shop-legacy");
        objects.push(legacy.clone());
        let mut foreign = legacy.clone();
        foreign["metadata"]["name"] = json!("other-app-web");
        foreign["metadata"]["ownerReferences"][0]["uid"] = json!("some-other-uid");
        objects.push(foreign);
        let mut orphan = legacy;
        orphan["metadata"]["name"] = json!("shop-orphan");
        orphan["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("ownerReferences");
        objects.push(orphan);
    }
    h.preload(&objects);
    let calls = h.reconcile(&app).await;
    let mut deletes: Vec<String> = writes(&calls)
        .into_iter()
        .filter(|w| w.starts_with("DELETE"))
        .collect();
    deletes.sort();
    assert_eq!(
        deletes,
        vec![
            "DELETE /api/v1/namespaces/shop/services/shop-legacy",
            "DELETE /apis/apps/v1/namespaces/shop/deployments/shop-legacy",
            "DELETE /apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/shop-legacy",
            "DELETE /apis/monitoring.coreos.com/v1/namespaces/shop/servicemonitors/shop-legacy",
            "DELETE /apis/policy/v1/namespaces/shop/poddisruptionbudgets/shop-legacy",
        ]
    );
    assert!(
        calls
            .iter()
            .any(|c| c.path.contains("/events") && c.body["reason"] == "Pruned")
    );
}

#[tokio::test]
async fn an_invalid_spec_deletes_and_applies_nothing() {
    let mut app = application("shop.yaml");
    let h = Harness::new(&app);
    h.preload(&stored_children(&app));
    // A bad edit: a route to a service that does not exist, and a removed database still used.
    app["spec"]["gateway"]["routes"][0]["service"] = json!("ordrs");
    app["metadata"]["generation"] = json!(2);
    let calls = h.reconcile(&app).await;
    let w = writes(&calls);
    assert!(!w.iter().any(|c| c.starts_with("DELETE")), "{w:#?}");
    assert!(
        !w.iter()
            .any(|c| c.starts_with("PATCH") && !c.ends_with("/status")),
        "{w:#?}"
    );
    let status = &calls
        .iter()
        .find(|c| c.path.ends_with("/status"))
        .expect("status written")
        .body["status"];
    assert_eq!(status["observedGeneration"], 2);
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    let msg = ready["message"].as_str().unwrap();
    assert!(msg.contains("spec.gateway.routes"), "{msg}");
    assert!(
        msg.contains("must name a service in spec.services"),
        "{msg}"
    );
    let degraded = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap();
    assert_eq!(degraded["status"], "True");
    assert!(
        calls
            .iter()
            .any(|c| c.path.contains("/events") && c.body["reason"] == "InvalidSpec")
    );
}

#[tokio::test]
async fn existing_credentials_are_never_replaced() {
    let app = application("shop.yaml");
    let h = Harness::new(&app);
    // The Secrets already exist (the watch sees them): no Secret is created or written.
    let secrets: Vec<Value> = stored_children(&app)
        .into_iter()
        .filter(|o| o["kind"] == "Secret")
        .collect();
    assert_eq!(secrets.len(), 2);
    h.preload(&secrets);
    let calls = h.reconcile(&app).await;
    assert!(
        !calls.iter().any(|c| c.path.contains("/secrets")),
        "{:#?}",
        writes(&calls)
    );
}

#[tokio::test]
async fn a_status_only_change_is_not_reapplied_but_a_spec_edit_is() {
    let mut app = application("shop.yaml");
    let h = Harness::new(&app);
    let first = h.reconcile(&app).await;
    app["status"] = first
        .iter()
        .find(|c| c.path.ends_with("/status"))
        .unwrap()
        .body["status"]
        .clone();
    // The Deployment controller wrote status (new resourceVersion, same generation) on every
    // Deployment; someone edited the spec of one (generation 2).
    let children: Vec<Value> = stored_children(&app)
        .into_iter()
        .map(|mut o| {
            if o["kind"] == "Deployment" {
                o["metadata"]["resourceVersion"] = json!("2");
                if o["metadata"]["name"] == "shop-payment" {
                    o["metadata"]["generation"] = json!(2);
                }
            }
            o
        })
        .collect();
    h.preload(&children);
    let second = h.reconcile(&app).await;
    assert_eq!(
        writes(&second),
        vec!["PATCH /apis/apps/v1/namespaces/shop/deployments/shop-payment"],
        "only the edited Deployment is applied again"
    );
}

/// The status the first reconcile of `calls` wrote.
fn written_status(calls: &[support::Call]) -> Value {
    calls
        .iter()
        .find(|c| c.path.ends_with("/status"))
        .expect("a status write")
        .body["status"]
        .clone()
}

#[tokio::test]
async fn a_restarted_operator_reapplies_only_what_changed_meanwhile() {
    let mut app = application("shop.yaml");
    let first = Harness::new(&app);
    app["status"] = written_status(&first.reconcile(&app).await);
    let inventory = app["status"]["inventory"].as_array().unwrap().clone();
    // Every child but the create-only credentials Secrets is listed.
    let listed = |kind: &str| inventory.iter().filter(|e| e["kind"] == kind).count();
    assert_eq!(listed("Deployment"), 4);
    assert_eq!(listed("StatefulSet"), 2);
    assert_eq!(listed("Secret"), 0);
    assert!(
        inventory
            .iter()
            .all(|e| e["applied"].as_str().unwrap().len() == 16)
    );

    // A new process: what the watches list, and what the status says.
    let restarted = Harness::new(&app);
    restarted.preload(&stored_children(&app));
    let calls = restarted.reconcile(&app).await;
    assert!(calls.is_empty(), "the restart sent {:#?}", writes(&calls));

    // Without the inventory, it would have re-applied every child.
    let mut forgetful = app.clone();
    forgetful["status"]
        .as_object_mut()
        .unwrap()
        .remove("inventory");
    let bare = Harness::new(&forgetful);
    bare.preload(&stored_children(&forgetful));
    assert!(writes(&bare.reconcile(&forgetful).await).len() > 20);

    // A Deployment whose spec changed while no operator ran is applied again, alone; one its
    // autoscaler scaled meanwhile is not (`orders` is autoscaled).
    let edited = |edit: fn(&mut Value)| {
        let mut children = stored_children(&app);
        let orders = children
            .iter_mut()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "shop-orders")
            .unwrap();
        orders["metadata"]["generation"] = json!(2);
        orders["metadata"]["resourceVersion"] = json!("2");
        edit(orders);
        children
    };
    let applied = applied_after_restart(
        &app,
        &edited(|o| {
            o["spec"]["template"]["spec"]["containers"][0]["image"] =
                json!("ghcr.io/acme/orders:0.1");
        }),
    )
    .await;
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert!(
        applied[0].ends_with("/deployments/shop-orders"),
        "{applied:?}"
    );
    let applied = applied_after_restart(&app, &edited(|o| o["spec"]["replicas"] = json!(7))).await;
    assert!(applied.is_empty(), "a scale was applied over: {applied:?}");
}

/// The children a new process applies for `app` when its watches list `children`.
async fn applied_after_restart(app: &Value, children: &[Value]) -> Vec<String> {
    let later = Harness::new(app);
    later.preload(children);
    later
        .reconcile(app)
        .await
        .iter()
        .filter(|c| c.method == "PATCH" && !c.path.ends_with("/status"))
        .map(|c| c.path.clone())
        .collect()
}

/// Once the watches have listed, the name of a child is looked up in them: a first reconcile
/// reads no child (only each new database's retained volume claim, which no watch holds), and an
/// object made by hand under a wanted name (no Keelson label, so only the
/// watch of unlabelled objects holds it) is still left alone.
#[tokio::test]
async fn once_the_watches_have_listed_a_first_reconcile_reads_no_child_and_still_refuses_a_hand_made_one()
 {
    let app = application("shop.yaml");
    let h = Harness::new(&app);
    let by_hand = json!({"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "shop-orders", "namespace": "shop", "resourceVersion": "3",
        "labels": {"app": "orders"}}});
    h.preload(&[by_hand]);
    let calls = h.reconcile(&app).await;
    let mut gets: Vec<&str> = calls
        .iter()
        .filter(|c| c.method == "GET")
        .map(|c| c.path.as_str())
        .collect();
    gets.sort();
    assert_eq!(
        gets,
        [
            "/api/v1/namespaces/shop/persistentvolumeclaims/data-shop-cache-0",
            "/api/v1/namespaces/shop/persistentvolumeclaims/data-shop-orders-db-0",
        ]
    );
    let w = writes(&calls);
    assert!(
        !w.iter().any(|c| c.ends_with("/services/shop-orders")),
        "the hand-made Service is not written: {w:#?}"
    );
    for other in [
        "PATCH /api/v1/namespaces/shop/services/shop-storefront",
        "PATCH /apis/apps/v1/namespaces/shop/deployments/shop-orders",
    ] {
        assert!(w.iter().any(|c| c == other), "{other} missing: {w:#?}");
    }
    let status = written_status(&calls);
    let conflict = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["reason"] == "Conflict")
        .unwrap_or_else(|| panic!("a Conflict condition: {status:#}"));
    let message = conflict["message"].as_str().unwrap();
    assert!(
        message.contains("Service shop-orders exists and Keelson did not create it"),
        "{message}"
    );
}
