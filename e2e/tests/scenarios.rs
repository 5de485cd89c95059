//! End-to-end scenarios: the real Keelson operator, through its library entry point, with a real
//! `kube::Client`, against the in-process API server, or a real cluster when
//! `KEELSON_E2E_KUBECONFIG` / `KUBECONFIG` names one. Each test has its own namespace.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use e2e::faults::Faults;
use e2e::harness::{
    Env, EnvOptions, HTTP_ROUTES_CRD, Operator, OperatorOptions, SERVICE_MONITORS_CRD,
    converge_timeout, wait_for,
};
use keelson::controller::FIELD_MANAGER;
use kube::{
    ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};

const READY: &str = "Ready";

/// What must not change when Keelson has nothing to do, per child (`Kind/name`).
///
/// In-process: the resourceVersion (only Keelson and the stand-in controllers write there, and
/// the stand-ins are quiet once workloads are available). On a real cluster other controllers
/// keep writing status (an HPA's current metrics, say), so there: the uid, the generation and
/// Keelson's own field-manager entry, whose time and field set change with every apply that
/// changes the object.
fn versions(env: &Env, children: &BTreeMap<String, DynamicObject>) -> BTreeMap<String, String> {
    children
        .iter()
        .map(|(k, o)| {
            let v = if env.real() {
                let mine: Vec<String> = o
                    .managed_fields()
                    .iter()
                    .filter(|m| m.manager.as_deref() == Some(FIELD_MANAGER))
                    .map(|m| {
                        format!(
                            "{:?} {:?} {:?}",
                            m.subresource,
                            m.time,
                            m.fields_v1.as_ref().map(|f| &f.0)
                        )
                    })
                    .collect();
                format!("{:?} {:?} {mine:?}", o.uid(), o.metadata.generation)
            } else {
                o.resource_version().unwrap_or_default()
            };
            (k.clone(), v)
        })
        .collect()
}

/// An Application's credentials Secrets: name -> (uid, data).
async fn credentials(env: &Env, app: &str) -> anyhow::Result<BTreeMap<String, (String, Value)>> {
    let list = env
        .dynamic("", "v1", "Secret", "secrets")
        .list(&ListParams::default().labels(&format!("keelson.dev/application={app}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .map(|o| {
            (
                o.name_any(),
                (o.uid().unwrap_or_default(), o.data["data"].clone()),
            )
        })
        .collect())
}

/// Waits until both credentials Secrets of a shop exist; returns them.
async fn both_credentials(
    env: &Env,
    app: &str,
    timeout: Duration,
) -> BTreeMap<String, (String, Value)> {
    wait_for(timeout, || async {
        let c = credentials(env, app).await.ok()?;
        (c.len() == 2).then_some(c)
    })
    .await
    .expect("both credentials Secrets are created")
}

/// The Application `shop`'s resourceVersion and its children's [`versions`], once settled: the
/// last status writes (Keelson's and other controllers') are done when two whole reconcile
/// passes in a row change nothing. Needs an operator with a short resync.
async fn settled(env: &Env, op: &Operator) -> (Option<String>, BTreeMap<String, String>) {
    let apps = env.apps();
    let snapshot = || async {
        let app_rv = apps.get("shop").await.ok()?.resource_version();
        Some((app_rv, versions(env, &env.children("shop").await.ok()?)))
    };
    let deadline = converge_timeout(env.real());
    wait_for(deadline, || async {
        let first = snapshot().await?;
        op.wait_reconciles(op.reconciles(), 2, deadline)
            .await
            .ok()?;
        (snapshot().await? == first).then_some(first)
    })
    .await
    .expect("the stack settles")
}

/// Start the operator, apply the Application `shop`, and wait until it is Ready.
async fn converged(env: &Env, app: &Value, opts: OperatorOptions) -> Operator {
    let op = env.start_operator(opts);
    env.apply_app(app).await.unwrap();
    env.wait_condition("shop", READY, "True", converge_timeout(env.real()))
        .await
        .unwrap();
    op
}

/// Operator options with a full resync every second, so that settling can be observed.
fn resync_every_second() -> OperatorOptions {
    OperatorOptions {
        resync: Duration::from_secs(1),
        ..OperatorOptions::default()
    }
}

/// A fresh environment for `namespace` with the shop converged and settled (see [`settled`])
/// under an operator that resyncs every second.
async fn settled_shop(
    namespace: &str,
) -> (Env, Operator, (Option<String>, BTreeMap<String, String>)) {
    let env = Env::start(namespace, EnvOptions::default()).await.unwrap();
    let op = converged(
        &env,
        &env.sample("shop.yaml").unwrap(),
        resync_every_second(),
    )
    .await;
    let settled = settled(&env, &op).await;
    (env, op, settled)
}

/// The shop plus a background worker that nothing routes to.
fn shop_with_worker(env: &Env) -> Value {
    let mut app = env.sample("shop.yaml").unwrap();
    let mut worker = app["spec"]["services"][1].clone();
    worker["name"] = json!("worker");
    worker["scaling"] = json!({"minReplicas": 2, "maxReplicas": 4});
    worker["uses"] = json!(["cache"]);
    app["spec"]["services"].as_array_mut().unwrap().push(worker);
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_converges_with_every_child() {
    let env = Env::start("e2e-create", EnvOptions::default())
        .await
        .unwrap();
    let op = env.start_operator(OperatorOptions::default());
    let app = env
        .apply_app(&env.sample("shop.yaml").unwrap())
        .await
        .unwrap();
    let uid = app.uid().unwrap();

    let ready = env
        .wait_condition("shop", READY, "True", converge_timeout(env.real()))
        .await
        .unwrap();
    let st = ready.status.clone().unwrap();
    assert_eq!(st.observed_generation, ready.metadata.generation);
    assert_eq!(st.services_ready.as_deref(), Some("4/4"));
    assert_eq!(st.url.as_deref(), Some("https://shop.example.com"));
    assert!(
        st.services.iter().all(|s| s.ready && s.ready_replicas >= 1),
        "{:?}",
        st.services
    );
    assert!(st.databases.iter().all(|d| d.ready), "{:?}", st.databases);
    assert_eq!(st.gateway.as_ref().map(|g| g.created), Some(true));

    let children = env.children("shop").await.unwrap();
    let count = |kind: &str| {
        children
            .keys()
            .filter(|k| k.starts_with(&format!("{kind}/")))
            .count()
    };
    assert_eq!(count("Deployment"), 4);
    assert_eq!(count("Service"), 6);
    assert_eq!(count("StatefulSet"), 2);
    assert_eq!(count("Secret"), 2);
    assert_eq!(count("HorizontalPodAutoscaler"), 3);
    assert_eq!(count("PodDisruptionBudget"), 2);
    assert_eq!(count("Ingress"), 1);
    let monitors = if env.serves_service_monitors().await.unwrap() {
        3
    } else {
        0
    };
    assert_eq!(count("ServiceMonitor"), monitors);
    for (key, o) in &children {
        let owner = o
            .owner_references()
            .iter()
            .find(|r| r.controller == Some(true));
        if key.starts_with("Secret/") {
            // A retained database's credentials (both of the shop's databases keep the default
            // deletionPolicy Retain) live as long as its volume: no owner.
            assert!(owner.is_none(), "{key} has an owner");
        } else {
            let owner = owner.unwrap_or_else(|| panic!("{key} has no controller owner"));
            assert_eq!(owner.uid, uid, "{key}");
            assert_eq!(owner.kind, "Application");
        }
        let l = o.labels();
        assert_eq!(
            l.get("app.kubernetes.io/managed-by").map(String::as_str),
            Some("keelson"),
            "{key}"
        );
        assert_eq!(
            l.get("app.kubernetes.io/part-of").map(String::as_str),
            Some("shop"),
            "{key}"
        );
        assert!(
            l.contains_key("app.kubernetes.io/name")
                && l.contains_key("app.kubernetes.io/component"),
            "{key}"
        );
        assert!(!l.contains_key("app.kubernetes.io/instance"), "{key}");
    }
    let orders = &children["Deployment/shop-orders"];
    let env_names: Vec<&str> = orders.data["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        env_names.contains(&"ORDERS_DB_URL") && env_names.contains(&"CACHE_PASSWORD"),
        "{env_names:?}"
    );
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_repaired() {
    let env = Env::start("e2e-drift", EnvOptions::default())
        .await
        .unwrap();
    let op = converged(
        &env,
        &env.sample("shop.yaml").unwrap(),
        OperatorOptions::default(),
    )
    .await;
    // How fast drift is repaired is the benchmark's to measure; here, that it is.
    let repair = converge_timeout(env.real());
    let repairs = op.drift_repairs();
    let deployments = env.dynamic("apps", "v1", "Deployment", "deployments");
    let original = deployments.get("shop-payment").await.unwrap();
    let image = original.data["spec"]["template"]["spec"]["containers"][0]["image"].clone();

    // A hand edit of the image and of the fixed replica count.
    let edit = json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "payment", "image": "evil:latest"}]}}}});
    deployments
        .patch(
            "shop-payment",
            &PatchParams::default(),
            &Patch::Strategic(&edit),
        )
        .await
        .unwrap();
    wait_for(repair, || async {
        let d = deployments.get("shop-payment").await.ok()?;
        let c = &d.data["spec"]["template"]["spec"]["containers"][0];
        (c["image"] == image && d.data["spec"]["replicas"] == 2).then_some(())
    })
    .await
    .expect("the image and replicas are restored");
    // Counted once the repairing reconcile has ended, which may be after the write is visible.
    wait_for(repair, || async {
        (op.drift_repairs() > repairs).then_some(())
    })
    .await
    .expect("keelson_drift_repairs_total counts the repaired Deployment");
    let repairs = op.drift_repairs();

    // A deleted child comes back (a new object).
    let services = env.dynamic("", "v1", "Service", "services");
    let old_uid = services.get("shop-orders").await.unwrap().uid();
    services
        .delete("shop-orders", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(repair, || async {
        let s = services.get("shop-orders").await.ok()?;
        (s.uid() != old_uid).then_some(())
    })
    .await
    .expect("the deleted Service is recreated");
    wait_for(repair, || async {
        (op.drift_repairs() > repairs).then_some(())
    })
    .await
    .expect("keelson_drift_repairs_total counts the recreated Service");
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_service_is_pruned_and_nothing_else_changes() {
    let env = Env::start("e2e-prune", EnvOptions::default())
        .await
        .unwrap();
    let mut app = shop_with_worker(&env);
    let op = converged(&env, &app, resync_every_second()).await;
    // Other controllers may still write after Ready (the autoscalers' first status, say): what
    // must not change is taken once the stack has settled, not at the instant it was Ready.
    let (_, before) = settled(&env, &op).await;
    let worker: Vec<String> = before
        .keys()
        .filter(|k| k.ends_with("/shop-worker"))
        .cloned()
        .collect();
    let mut expected = vec![
        "Deployment/shop-worker",
        "HorizontalPodAutoscaler/shop-worker",
        "PodDisruptionBudget/shop-worker",
        "Service/shop-worker",
    ];
    if env.serves_service_monitors().await.unwrap() {
        expected.push("ServiceMonitor/shop-worker");
    }
    expected.sort();
    assert_eq!(worker, expected);

    app["spec"]["services"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["name"] != "worker");
    env.apply_app(&app).await.unwrap();
    let after = wait_for(converge_timeout(env.real()), || async {
        let c = env.children("shop").await.ok()?;
        (!c.keys().any(|k| k.ends_with("/shop-worker"))).then_some(c)
    })
    .await
    .expect("the worker's children are pruned");
    let mut untouched = before;
    untouched.retain(|k, _| !k.ends_with("/shop-worker"));
    assert_eq!(
        versions(&env, &after),
        untouched,
        "nothing but the worker changed"
    );
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_is_reported_and_deletes_nothing() {
    let env = Env::start("e2e-invalid", EnvOptions::default())
        .await
        .unwrap();
    let mut app = env.sample("shop.yaml").unwrap();
    let resync = OperatorOptions {
        resync: Duration::from_secs(1),
        ..OperatorOptions::default()
    };
    let op = converged(&env, &app, resync).await;
    let (_, before) = settled(&env, &op).await;

    // Passes admission (the schema cannot see it), fails validation: a probe on an undeclared
    // port, and a removed service that would otherwise be pruned.
    app["spec"]["services"][0]["probes"]["readiness"]["httpGet"]["port"] = json!("grpc");
    app["spec"]["services"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["name"] != "payment");
    app["spec"]["gateway"]["routes"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["service"] != "payment");
    env.apply_app(&app).await.unwrap();
    let invalid = env
        .wait_condition("shop", READY, "False", converge_timeout(env.real()))
        .await
        .unwrap();
    let ready = invalid
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == READY)
        .unwrap();
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(
        ready
            .message
            .contains("spec.services[0].probes.readiness.httpGet.port"),
        "{}",
        ready.message
    );
    // Further whole passes over the invalid spec (resyncs) change nothing either.
    op.wait_reconciles(op.reconciles(), 2, converge_timeout(env.real()))
        .await
        .unwrap();
    assert_eq!(
        versions(&env, &env.children("shop").await.unwrap()),
        before,
        "an invalid spec changed children"
    );
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_application_collects_children_but_keeps_retained_volumes() {
    let env = Env::start("e2e-delete", EnvOptions::default())
        .await
        .unwrap();
    let mut app = env.sample("shop.yaml").unwrap();
    app["spec"]["databases"][1]["deletionPolicy"] = json!("Delete"); // cache
    let op = converged(&env, &app, OperatorOptions::default()).await;
    let pvcs = env.dynamic("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims");
    let claims = wait_for(converge_timeout(env.real()), || async {
        let names: Vec<String> = pvcs
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .iter()
            .map(|p| p.name_any())
            .collect();
        (names.len() == 2).then_some(names)
    })
    .await
    .expect("each database has its volume claim");
    assert!(
        claims.contains(&"data-shop-orders-db-0".to_string()),
        "{claims:?}"
    );

    env.apps()
        .delete("shop", &DeleteParams::background())
        .await
        .unwrap();
    // The retained database's credentials stay with its volume.
    wait_for(converge_timeout(env.real()), || async {
        let c: Vec<String> = env.children("shop").await.ok()?.into_keys().collect();
        (c == ["Secret/shop-orders-db-credentials"]).then_some(())
    })
    .await
    .expect("children but the retained credentials are garbage-collected");
    let left = wait_for(converge_timeout(env.real()), || async {
        let names: Vec<String> = pvcs
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .iter()
            .map(|p| p.name_any())
            .collect();
        (names.len() == 1).then_some(names)
    })
    .await
    .expect("the Delete policy's claim goes");
    assert_eq!(
        left,
        vec!["data-shop-orders-db-0".to_string()],
        "the retained claim survives"
    );
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    real_cluster,
    ignore = "installs and removes cluster-wide CRDs, which changes what every other test sees: run it alone, on a cluster without ServiceMonitor and HTTPRoute CRDs, with `-- --ignored missing_optional_apis` (needs KEELSON_THIRD_PARTY_CRDS)"
)]
async fn missing_optional_apis_are_reported_and_used_once_installed() {
    let opts = EnvOptions {
        service_monitors: false,
        http_routes: false,
        ..EnvOptions::default()
    };
    let mut env = Env::start("e2e-optional", opts).await.unwrap();
    for crd in [
        "servicemonitors.monitoring.coreos.com",
        "httproutes.gateway.networking.k8s.io",
    ] {
        // Only on a real cluster (run on purpose): this test must not remove what it found.
        assert!(
            !env.has_crd(crd).await.unwrap(),
            "the cluster already serves {crd}: this test needs a cluster without it"
        );
    }
    let op = env.start_operator(OperatorOptions::default());
    env.apply_app(&env.sample("shop.yaml").unwrap())
        .await
        .unwrap();
    let mut blog = env.sample("httproute.yaml").unwrap();
    blog["metadata"]["namespace"] = json!(env.namespace);
    env.apply_app(&blog).await.unwrap();

    let shop = env
        .wait_condition("shop", READY, "True", converge_timeout(env.real()))
        .await
        .unwrap();
    let apis = shop
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "APIsAvailable")
        .unwrap();
    assert_eq!(apis.status, "False");
    assert!(
        apis.message.contains("ServiceMonitor")
            && apis.message.contains("monitoring.coreos.com/v1"),
        "{}",
        apis.message
    );
    let blog_app = env
        .wait_condition(
            "blog",
            "APIsAvailable",
            "False",
            converge_timeout(env.real()),
        )
        .await
        .unwrap();
    assert_eq!(
        blog_app.status.unwrap().gateway.map(|g| g.created),
        Some(false)
    );
    assert_eq!(
        env.children("shop")
            .await
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("Deployment/"))
            .count(),
        4
    );

    env.install_third_party_crd(SERVICE_MONITORS_CRD)
        .await
        .unwrap();
    env.install_third_party_crd(HTTP_ROUTES_CRD).await.unwrap();
    env.wait_condition(
        "shop",
        "APIsAvailable",
        "True",
        converge_timeout(env.real()),
    )
    .await
    .unwrap();
    env.wait_condition(
        "blog",
        "APIsAvailable",
        "True",
        converge_timeout(env.real()),
    )
    .await
    .unwrap();
    let shop_children = env.children("shop").await.unwrap();
    assert_eq!(
        shop_children
            .keys()
            .filter(|k| k.starts_with("ServiceMonitor/"))
            .count(),
        3
    );
    assert!(
        env.children("blog")
            .await
            .unwrap()
            .contains_key("HTTPRoute/blog")
    );
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_convergence_ends_the_same_and_keeps_credentials() {
    let env = Env::start("e2e-restart", EnvOptions::default())
        .await
        .unwrap();
    if let Some(s) = &env.server {
        s.set_workloads_ready(false);
    }
    let op = env.start_operator(OperatorOptions::default());
    env.apply_app(&env.sample("shop.yaml").unwrap())
        .await
        .unwrap();
    // Converging: the Secrets exist, workloads are not ready yet.
    let creds = both_credentials(&env, "shop", converge_timeout(env.real())).await;
    op.kill();

    let op = env.start_operator(OperatorOptions::default());
    if let Some(s) = &env.server {
        s.set_workloads_ready(true);
    }
    env.wait_condition("shop", READY, "True", converge_timeout(env.real()))
        .await
        .unwrap();
    assert_eq!(
        credentials(&env, "shop").await.unwrap(),
        creds,
        "credentials were regenerated"
    );
    let children = env.children("shop").await.unwrap();
    assert_eq!(
        children.len(),
        env.shop_children().await.unwrap(),
        "{:?}",
        children.keys()
    );
    op.stop().await.unwrap();
    env.cleanup().await;
}

/// Where the faults of [`converges_through_faults`] are injected.
enum Injection {
    /// In the in-process API server: every client meets them (only in-process).
    Server,
    /// In the operator's own client, in front of whichever API server (both modes).
    Client,
}

/// 10 % of requests failing (500 or 429), 20 % of applies conflicting, watches dropped after
/// 3 events, while three shops converge (enough requests that every kind of fault is met): the
/// stacks still converge, with no duplicate children and the credentials first generated.
async fn converges_through_faults(prefix: &str, injection: Injection) {
    const SHOPS: [&str; 3] = ["shop", "shop-b", "shop-c"];
    let env = Env::start(prefix, EnvOptions::default()).await.unwrap();
    let faults = match (&injection, &env.server) {
        (Injection::Server, Some(server)) => server.faults_handle(),
        (Injection::Server, None) => {
            panic!("server-side faults need the in-process API server (ignored on a real cluster)")
        }
        (Injection::Client, _) => Arc::new(Faults::default()),
    };
    // The user's applies go through before the faults start; the operator meets them all.
    for name in SHOPS {
        let mut app = env.sample("shop.yaml").unwrap();
        app["metadata"]["name"] = json!(name);
        app["spec"]["gateway"]["hosts"] = json!([format!("{name}.example.com")]);
        env.apply_app(&app).await.unwrap();
    }
    faults.set_error_rate(0.10);
    faults.set_apply_conflict_rate(0.20);
    faults.set_watch_drop_after(Some(3));
    let op = env.start_operator(OperatorOptions {
        faults: matches!(injection, Injection::Client).then(|| faults.clone()),
        // Resyncs, so that passes with the faults off follow (below).
        resync: Duration::from_secs(2),
        ..OperatorOptions::default()
    });
    let timeout = if env.real() {
        converge_timeout(true)
    } else {
        Duration::from_secs(120)
    };
    // The credentials as first created, amid the faults.
    let mut first = BTreeMap::new();
    for name in SHOPS {
        first.insert(name, both_credentials(&env, name, timeout).await);
    }
    for name in SHOPS {
        env.wait_condition(name, READY, "True", timeout)
            .await
            .unwrap();
    }
    let injected = faults.injected();
    eprintln!("faults met: {injected:?}");
    assert!(
        injected.errors > 0 && injected.conflicts > 0 && injected.dropped_watches > 0,
        "every kind of fault was met: {injected:?}"
    );
    faults.clear();
    let expected = env.shop_children().await.unwrap();
    for name in SHOPS {
        let children = env.children(name).await.unwrap();
        assert_eq!(children.len(), expected, "{name}: {:?}", children.keys());
        assert_eq!(
            credentials(&env, name).await.unwrap(),
            first[name],
            "{name}: credentials were regenerated"
        );
    }
    let secrets = env
        .dynamic("", "v1", "Secret", "secrets")
        .list(&ListParams::default())
        .await
        .unwrap();
    let names: Vec<String> = secrets
        .items
        .iter()
        .map(|s| s.name_any())
        .filter(|n| n.ends_with("-credentials"))
        .collect();
    assert_eq!(names.len(), 6, "duplicate credentials Secrets: {names:?}");
    // Further whole passes with faults off change no credential.
    op.wait_reconciles(op.reconciles(), SHOPS.len() as u64, timeout)
        .await
        .unwrap();
    for name in SHOPS {
        assert_eq!(
            credentials(&env, name).await.unwrap(),
            first[name],
            "{name}"
        );
    }
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    real_cluster,
    ignore = "injects faults inside the API server, which only the in-process one can do (the client-side variant runs)"
)]
async fn the_stack_converges_through_api_server_faults() {
    converges_through_faults("e2e-faults", Injection::Server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_converges_through_faults_on_its_own_connection() {
    converges_through_faults("e2e-client-faults", Injection::Client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_state_resync_writes_nothing() {
    let (env, op, settled) = settled_shop("e2e-steady").await;
    if let Some(s) = &env.server {
        s.reset_stats();
    }
    // Three full resyncs.
    op.wait_reconciles(op.reconciles(), 3, converge_timeout(env.real()))
        .await
        .unwrap();
    if let Some(s) = &env.server {
        let st = s.stats();
        assert_eq!(st.writes, 0, "a no-op resync wrote: {st:?}");
    }
    let app_rv = env.apps().get("shop").await.unwrap().resource_version();
    let children = versions(&env, &env.children("shop").await.unwrap());
    assert_eq!(app_rv, settled.0, "status was rewritten");
    assert_eq!(children, settled.1);
    op.stop().await.unwrap();
    env.cleanup().await;
}

/// An autoscaled service's replicas are its autoscaler's: a scale through the scale subresource
/// (what a HorizontalPodAutoscaler sends) moves the Deployment's generation, and Keelson neither
/// resets the count nor sends another apply for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaler_scaling_a_deployment_is_left_to_it() {
    let (env, op, _) = settled_shop("e2e-scaled").await;
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(env.client.clone(), &env.namespace);
    let before = deployments.get("shop-orders").await.unwrap();
    if let Some(s) = &env.server {
        s.reset_stats();
    }
    // `orders` scales between 2 and 10; 3 is in range, so a real autoscaler without metrics
    // leaves it there too.
    deployments
        .patch_scale(
            "shop-orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let scaled = deployments.get("shop-orders").await.unwrap();
    assert!(
        scaled.metadata.generation > before.metadata.generation,
        "a scale moves the generation"
    );
    // Three full resyncs after the scale.
    op.wait_reconciles(op.reconciles(), 3, converge_timeout(env.real()))
        .await
        .unwrap();
    let after = deployments.get("shop-orders").await.unwrap();
    assert_eq!(after.spec.replicas, Some(3), "the scale was undone");
    if let Some(s) = &env.server {
        let st = s.stats();
        let writes: Vec<&String> = st
            .by_verb_resource
            .keys()
            .filter(|k| k.starts_with("patch ") || k.starts_with("create "))
            // The test's own scale, and the Application's status reporting 3 replicas.
            .filter(|k| !k.ends_with("/scale") && !k.ends_with("keelson.dev/applications/status"))
            .collect();
        assert!(writes.is_empty(), "the scale led to {writes:?}: {st:?}");
    }
    op.stop().await.unwrap();
    env.cleanup().await;
}

/// A restarted operator knows from each Application's `status.inventory` what it last applied:
/// it sends no apply for children nobody changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_reapplies_nothing_unchanged() {
    let (env, op, settled_before) = settled_shop("e2e-restart-quiet").await;
    op.stop().await.unwrap();
    let inventory = env
        .apps()
        .get("shop")
        .await
        .unwrap()
        .status
        .unwrap()
        .inventory;
    assert!(inventory.len() > 15, "{inventory:?}");
    if let Some(s) = &env.server {
        s.reset_stats();
    }
    let restarted = env.start_operator(resync_every_second());
    restarted
        .wait_reconciles(0, 1, converge_timeout(env.real()))
        .await
        .unwrap();
    let settled_after = settled(&env, &restarted).await;
    assert_eq!(settled_after, settled_before, "nothing was rewritten");
    if let Some(s) = &env.server {
        let st = s.stats();
        let patches: Vec<&String> = st
            .by_verb_resource
            .keys()
            .filter(|k| k.starts_with("patch ") || k.starts_with("create "))
            .collect();
        assert!(patches.is_empty(), "the restart wrote {patches:?}: {st:?}");
        assert_eq!(st.writes, 0, "the restart wrote: {st:?}");
    }
    restarted.stop().await.unwrap();
    env.cleanup().await;
}
