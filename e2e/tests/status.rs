//! Status that tells the truth: readiness of autoscaled services and rollouts, Events per child
//! and change, texts in words, and the samples applied where the docs say. Each test has its
//! own namespace, in-process or on a real cluster (`KEELSON_E2E_KUBECONFIG` / `KUBECONFIG`).

use std::collections::BTreeMap;

use e2e::harness::{
    Env, EnvOptions, OperatorOptions, assert_words, converge_timeout, repo_root, wait_for,
};
use k8s_openapi::api::events::v1::Event;
use keelson::api::Application;
use kube::{
    Api,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

const READY: &str = "Ready";

fn condition<'a>(
    app: &'a Application,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// The Events about Application `app`: (reason, note, related `Kind/name`).
async fn events_of(env: &Env, app: &str) -> Vec<(String, String, Option<String>)> {
    let api: Api<Event> = Api::namespaced(env.client.clone(), &env.namespace);
    let Ok(list) = api.list(&ListParams::default()).await else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(app))
        .map(|e| {
            let related = e.related.as_ref().map(|r| {
                format!(
                    "{}/{}",
                    r.kind.as_deref().unwrap_or_default(),
                    r.name.as_deref().unwrap_or_default()
                )
            });
            (
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
                related,
            )
        })
        .collect()
}

/// One service `web` autoscaled from 3 replicas.
fn autoscaled(env: &Env) -> Value {
    let mut app = env.sample("minimal.yaml").unwrap();
    app["spec"]["services"][0]["scaling"] = json!({"minReplicas": 3, "maxReplicas": 5});
    app["spec"]["services"][0]["resources"] = json!({"requests": {"cpu": "10m", "memory": "32Mi"}});
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaled_service_is_not_ready_before_its_minimum_is_available() {
    let env = Env::start("e2e-autoscale", EnvOptions::default())
        .await
        .unwrap();
    let op = env.start_operator(OperatorOptions::default());
    env.apply_app(&autoscaled(&env)).await.unwrap();
    let deployments = env.dynamic("apps", "v1", "Deployment", "deployments");
    // Every status the Application shows on its way to Ready wants at least the minimum, and
    // Ready is never claimed while fewer replicas are available.
    let seen = wait_for(converge_timeout(env.real()), || async {
        let app = env.apps().get("hello").await.ok()?;
        let st = app.status.as_ref()?;
        if let Some(web) = st.services.iter().find(|s| s.name == "web") {
            assert!(
                web.desired_replicas >= 3,
                "desired below the minimum: {st:?}"
            );
            if web.ready {
                assert!(web.ready_replicas >= 3, "{st:?}");
            }
        }
        let ready = condition(&app, READY)?;
        if ready.status != "True" || st.observed_generation != app.metadata.generation {
            return None;
        }
        let d = deployments.get("hello-web").await.ok()?;
        let available = d.data["status"]["availableReplicas"].as_i64().unwrap_or(0);
        assert!(available >= 3, "Ready with {available} available: {st:?}");
        Some(app)
    })
    .await;
    let Ok(seen) = seen else {
        let app = env.apps().get("hello").await.unwrap();
        let d = deployments.get("hello-web").await.map(|d| d.data);
        panic!(
            "the Application never became Ready: {:#?}\nDeployment: {d:#?}",
            app.status
        );
    };
    let web = &seen.status.as_ref().unwrap().services[0];
    assert_eq!((web.desired_replicas, web.ready), (3, true));
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_is_progressing_and_not_ready_until_it_completes() {
    let env = Env::start("e2e-rollout", EnvOptions::default())
        .await
        .unwrap();
    let op = env.start_operator(OperatorOptions::default());
    let mut app = env.sample("minimal.yaml").unwrap();
    app["spec"]["services"][0]["replicas"] = json!(2);
    env.apply_app(&app).await.unwrap();
    env.wait_condition("hello", READY, "True", converge_timeout(env.real()))
        .await
        .unwrap();

    // A new version. In-process the stand-in controllers hold the rollout until released; on
    // a real cluster the new pods' readiness probe waits 20 s before it first passes.
    if let Some(s) = &env.server {
        s.set_workloads_ready(false);
    }
    let svc = &mut app["spec"]["services"][0];
    svc["env"] = json!([{"name": "VERSION", "value": "2"}]);
    if env.real() {
        svc["probes"] =
            json!({"readiness": {"tcpSocket": {"port": "http"}, "initialDelaySeconds": 20}});
    }
    env.apply_app(&app).await.unwrap();
    let during = env
        .wait_condition("hello", "Progressing", "True", converge_timeout(env.real()))
        .await
        .unwrap();
    let ready = condition(&during, READY).unwrap();
    assert_eq!(ready.status, "False", "{ready:?}");
    let progressing = condition(&during, "Progressing").unwrap();
    assert!(
        progressing.message.contains("service web: ") && progressing.message.contains(" of 2 "),
        "the message names the service and its progress: {progressing:?}"
    );
    if let Some(s) = &env.server {
        s.set_workloads_ready(true);
    }
    let after = env
        .wait_condition("hello", READY, "True", converge_timeout(env.real()))
        .await
        .unwrap();
    assert_eq!(condition(&after, "Progressing").unwrap().status, "False");
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_drift_repairs_of_different_objects_make_two_events_naming_each() {
    let env = Env::start("e2e-events", EnvOptions::default())
        .await
        .unwrap();
    // How fast drift is repaired is the benchmark's to measure; here, that the watch repairs
    // it: the generous deadline of a loaded machine, with the resync only after it.
    let repair = converge_timeout(env.real());
    let op = env.start_operator(OperatorOptions {
        resync: 2 * repair,
        ..OperatorOptions::default()
    });
    env.apply_app(&env.sample("shop.yaml").unwrap())
        .await
        .unwrap();
    env.wait_condition("shop", READY, "True", repair)
        .await
        .unwrap();

    // Two hand edits, one after the other: a Deployment's label, a Service's label.
    let edit = json!({"metadata": {"labels": {"app.kubernetes.io/name": "edited"}}});
    for (api, name) in [
        (
            env.dynamic("apps", "v1", "Deployment", "deployments"),
            "shop-payment",
        ),
        (env.dynamic("", "v1", "Service", "services"), "shop-orders"),
    ] {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&edit))
            .await
            .unwrap();
        wait_for(repair, || async {
            let o = api.get(name).await.ok()?;
            (o.metadata
                .labels
                .as_ref()?
                .get("app.kubernetes.io/name")
                .map(String::as_str)
                != Some("edited"))
            .then_some(())
        })
        .await
        .expect("the edit is undone");
    }
    let events = wait_for(repair, || async {
        let repairs: Vec<_> = events_of(&env, "shop")
            .await
            .into_iter()
            .filter(|(reason, ..)| reason == "DriftRepaired")
            .collect();
        (repairs.len() >= 2).then_some(repairs)
    })
    .await
    .expect("two DriftRepaired Events");
    for child in ["Deployment/shop-payment", "Service/shop-orders"] {
        assert!(
            events
                .iter()
                .any(|(_, note, related)| note.contains(child) && related.as_deref() == Some(child)),
            "an Event names {child}: {events:#?}"
        );
    }
    op.stop().await.unwrap();
    env.cleanup().await;
}

/// Whether a text a user reads is words: no Rust Debug output.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_condition_and_event_text_is_words_naming_what_it_concerns() {
    let env = Env::start("e2e-texts", EnvOptions::default())
        .await
        .unwrap();
    let op = env.start_operator(OperatorOptions::default());
    let timeout = converge_timeout(env.real());
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    let mut keep = |app: &Application| {
        for c in &app.status.as_ref().unwrap().conditions {
            texts.insert(
                format!("{} {} {}", c.type_, c.status, c.reason),
                c.message.clone(),
            );
        }
    };

    // Created, then Ready.
    let mut app = env.sample("shop.yaml").unwrap();
    env.apply_app(&app).await.unwrap();
    keep(
        &env.wait_condition("shop", READY, "True", timeout)
            .await
            .unwrap(),
    );

    // An invalid edit (admission cannot see it): a probe on an undeclared port, named.
    let mut invalid = app.clone();
    invalid["spec"]["services"][0]["probes"]["readiness"]["httpGet"]["port"] = json!("grpc");
    env.apply_app(&invalid).await.unwrap();
    let rejected = env
        .wait_condition("shop", "Degraded", "True", timeout)
        .await;
    if let Ok(a) = &rejected {
        let d = condition(a, "Degraded").unwrap();
        assert!(d.message.contains("grpc"), "names the port: {d:?}");
        keep(a);
    }

    // An update (a new env value), a repair (a deleted Service), a prune (a removed service).
    let removed = "payment";
    let services = app["spec"]["services"].as_array_mut().unwrap();
    services[1]["env"] = json!([{"name": "LOG_LEVEL", "value": "debug"}]);
    services.retain(|s| s["name"] != removed);
    app["spec"]["gateway"]["routes"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["service"] != removed);
    env.apply_app(&app).await.unwrap();
    keep(
        &env.wait_condition("shop", READY, "True", timeout)
            .await
            .unwrap(),
    );
    env.dynamic("", "v1", "Service", "services")
        .delete("shop-orders", &DeleteParams::default())
        .await
        .unwrap();
    let mut wanted = vec!["Created", "Updated", "DriftRepaired", "Pruned"];
    // The invalid edit's Warning Event is sent after its status: waited for with the others, so
    // that its text is checked, not only when it happens to be there already.
    if rejected.is_ok() {
        wanted.push("InvalidSpec");
    }
    let events = wait_for(timeout, || async {
        let ev = events_of(&env, "shop").await;
        wanted
            .iter()
            .all(|w| ev.iter().any(|(r, ..)| r == w))
            .then_some(ev)
    })
    .await
    .unwrap_or_else(|_| panic!("Events of every reason in {wanted:?}"));
    for (reason, note, related) in &events {
        assert_words(&format!("Event {reason}"), note);
        match reason.as_str() {
            "Updated" | "DriftRepaired" | "Pruned" => {
                let child = related.as_deref().expect("a related child");
                assert!(
                    note.contains(child),
                    "{reason} names its child {child}: {note}"
                );
            }
            "Created" => assert!(note.contains("Deployment/shop-orders"), "{note}"),
            "InvalidSpec" => assert!(note.contains("grpc"), "{note}"),
            _ => {}
        }
    }
    assert!(
        events
            .iter()
            .any(|(r, n, _)| r == "Pruned" && n.contains(&format!("shop-{removed}"))),
        "{events:#?}"
    );
    for (what, text) in &texts {
        assert_words(&format!("condition {what}"), text);
    }
    for want in [
        "Ready True Ready",
        "Progressing False Complete",
        "Degraded False AsExpected",
    ] {
        assert!(texts.contains_key(want), "{want} in {texts:#?}");
    }
    rejected.expect("the invalid edit is reported as Degraded");
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_applies_into_the_namespace_the_test_chooses() {
    let env = Env::start("e2e-samples", EnvOptions::default())
        .await
        .unwrap();
    let op = env.start_operator(OperatorOptions::default());
    let mut names = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    for path in files {
        // As `kubectl apply -n <namespace> -f <sample>`: the body as it is, no namespace in it.
        let body: Value = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            body["metadata"].get("namespace").is_none(),
            "{} names a namespace",
            path.display()
        );
        let object: DynamicObject = serde_json::from_value(body).unwrap();
        let created = env
            .dynamic("keelson.dev", "v1alpha1", "Application", "applications")
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("{} is refused: {e}", path.display()));
        assert_eq!(
            created.metadata.namespace.as_deref(),
            Some(env.namespace.as_str())
        );
        names.push(created.metadata.name.unwrap());
    }
    // Each is reconciled: its status is for its generation and nothing is degraded.
    for name in &names {
        let app = env
            .wait_condition(name, "Degraded", "False", converge_timeout(env.real()))
            .await
            .unwrap();
        assert!(!app.status.as_ref().unwrap().conditions.is_empty());
    }
    op.stop().await.unwrap();
    env.cleanup().await;
}

/// An image no kubelet can pull: its registry's host is under `.invalid` (RFC 2606: never
/// resolvable), on a real cluster as in-process.
const UNPULLABLE: &str = "registry.invalid/keelson-e2e/web:1.0";

/// The stand-in kubelets run Pods (a real cluster has its own).
fn with_pods(env: &Env) {
    if let Some(s) = &env.server {
        s.set_pods(true);
    }
}

/// Wait until the Application's condition `type_` is `status` and its message contains every
/// one of `words`; the last conditions seen when it never is.
async fn wait_message(
    env: &Env,
    app: &str,
    type_: &str,
    status: &str,
    words: &[&str],
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let last = std::sync::Mutex::new(None);
    let found = wait_for(converge_timeout(env.real()), || async {
        let a = env.apps().get(app).await.ok()?;
        *last.lock().unwrap() = a.status.clone();
        let c = condition(&a, type_)?.clone();
        (c.status == status && words.iter().all(|w| c.message.contains(w))).then_some(c)
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "{type_} never was {status} naming {words:?}; last status: {:#?}",
            last.lock().unwrap()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_past_its_progress_deadline_turns_the_application_degraded() {
    let env = Env::start("e2e-stuck", EnvOptions::default())
        .await
        .unwrap();
    with_pods(&env);
    let op = env.start_operator(OperatorOptions::default());
    let mut app = env.sample("minimal.yaml").unwrap();
    app["spec"]["services"][0]["image"] = json!(UNPULLABLE);
    env.apply_app(&app).await.unwrap();
    let deployments = env.dynamic("apps", "v1", "Deployment", "deployments");
    wait_for(converge_timeout(env.real()), || async {
        deployments.get("hello-web").await.ok()
    })
    .await
    .expect("the Deployment is created");
    // The Application has no field for the deadline (Kubernetes' default is 600 s): a short
    // one is set on the Deployment as a user would, a field Keelson does not manage, so its
    // applies keep it. The Deployment controller then reports Progressing=False,
    // ProgressDeadlineExceeded once its pods made no progress for that long.
    deployments
        .patch(
            "hello-web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"progressDeadlineSeconds": 10}})),
        )
        .await
        .unwrap();
    let degraded = wait_message(&env, "hello", "Degraded", "True", &["web"]).await;
    assert_eq!(degraded.reason, "RolloutStuck", "{degraded:?}");
    assert_words("the Degraded message", &degraded.message);
    let a = env.apps().get("hello").await.unwrap();
    let ready = condition(&a, READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "RolloutStuck")
    );
    let d = deployments.get("hello-web").await.unwrap();
    assert_eq!(
        d.data["spec"]["progressDeadlineSeconds"], 10,
        "kept by Keelson's applies"
    );
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_stuck_on_a_missing_secret_or_an_unpullable_image_are_named_with_their_reason() {
    let env = Env::start("e2e-stuck-pods", EnvOptions::default())
        .await
        .unwrap();
    with_pods(&env);
    let op = env.start_operator(OperatorOptions::default());
    let mut app = env.sample("minimal.yaml").unwrap();
    // `config` runs a real image (on a real cluster the sample's runnable one) but reads a key
    // of a Secret that does not exist; `pull` runs an image that cannot be pulled.
    let mut config = app["spec"]["services"][0].clone();
    config["name"] = json!("config");
    config["env"] = json!([{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "missing-token", "key": "token"}}}]);
    let mut pull = app["spec"]["services"][0].clone();
    pull["name"] = json!("pull");
    pull["image"] = json!(UNPULLABLE);
    app["spec"]["services"] = json!([config, pull]);
    env.apply_app(&app).await.unwrap();

    let ready = wait_message(
        &env,
        "hello",
        READY,
        "False",
        &[
            "service config",
            "CreateContainerConfigError",
            "missing-token",
            "service pull",
            "ImagePullBackOff",
        ],
    )
    .await;
    assert_eq!(ready.reason, "WorkloadNotReady", "{ready:?}");
    assert_words("the Ready message", &ready.message);
    // Each reason is named with its own service.
    let config_part = ready
        .message
        .split("; service ")
        .find(|p| p.contains("config"))
        .unwrap();
    assert!(
        config_part.contains("CreateContainerConfigError"),
        "{ready:?}"
    );

    // The Secret created, that service starts; the other still says why it waits.
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "missing-token"},
        "stringData": {"token": "t0ken"},
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(env.client.clone(), &env.namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let ready = wait_for(converge_timeout(env.real()), || async {
        let a = env.apps().get("hello").await.ok()?;
        let c = condition(&a, READY)?.clone();
        (!c.message.contains("CreateContainerConfigError") && c.message.contains("pull"))
            .then_some(c)
    })
    .await
    .expect("the config error goes once the Secret exists");
    assert_eq!(ready.status, "False", "{ready:?}");
    op.stop().await.unwrap();
    env.cleanup().await;
}
