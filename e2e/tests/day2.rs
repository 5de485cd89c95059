//! Day-2 scenarios: what happens when a running Application changes, or meets objects it does not
//! own. Each runs the real operator against the in-process API server, or a real cluster when
//! `KEELSON_E2E_KUBECONFIG` / `KUBECONFIG` names one; each test has its own namespace.

use std::{sync::Arc, time::Duration};

use e2e::{
    faults::Faults,
    harness::{
        Env, EnvOptions, Operator, OperatorOptions, assert_words, converge_timeout, wait_for,
    },
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

const READY: &str = "Ready";

/// The minimal sample renamed to `name`, with one service per name in `services`.
fn app(env: &Env, name: &str, services: &[&str]) -> Value {
    let mut app = env.sample("minimal.yaml").unwrap();
    app["metadata"]["name"] = json!(name);
    let template = app["spec"]["services"][0].clone();
    app["spec"]["services"] = services
        .iter()
        .map(|s| {
            let mut svc = template.clone();
            svc["name"] = json!(s);
            svc
        })
        .collect();
    app
}

/// Wait until the Application's condition `type_` has `status` with `reason` for its current
/// generation; returns the condition.
async fn wait_reason(
    env: &Env,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
    timeout: Duration,
) -> Condition {
    let apps = env.apps();
    let last = std::sync::Mutex::new(Vec::new());
    let found = wait_for(timeout, || async {
        let app = apps.get(name).await.ok()?;
        let st = app.status?;
        *last.lock().unwrap() = st.conditions.clone();
        if st.observed_generation != app.metadata.generation {
            return None;
        }
        st.conditions
            .into_iter()
            .find(|c| c.type_ == type_ && c.status == status && c.reason == reason)
    })
    .await;
    match found {
        Ok(c) => c,
        Err(_) => panic!(
            "Application {name} never had {type_}={status} ({reason}); last conditions: {:#?}",
            last.lock().unwrap()
        ),
    }
}

fn services(env: &Env) -> kube::Api<DynamicObject> {
    env.dynamic("", "v1", "Service", "services")
}

fn secrets(env: &Env) -> kube::Api<DynamicObject> {
    env.dynamic("", "v1", "Secret", "secrets")
}

/// The controller owner reference of an object, as (kind, name).
fn controller(o: &DynamicObject) -> Option<(String, String)> {
    o.owner_references()
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| (r.kind.clone(), r.name.clone()))
}

/// The Warning Events about Application `app` with `reason`, as their notes.
async fn warnings(env: &Env, app: &str, reason: &str) -> Vec<String> {
    let events = env.dynamic("events.k8s.io", "v1", "Event", "events");
    let Ok(list) = events.list(&ListParams::default()).await else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|e| {
            e.data["type"] == "Warning"
                && e.data["reason"] == reason
                && e.data["regarding"]["name"] == app
                && e.data["regarding"]["kind"] == "Application"
        })
        .map(|e| e.data["note"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn start(env: &Env) -> Operator {
    env.start_operator(OperatorOptions::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colliding_applications_keep_their_own_objects() {
    let env = Env::start("e2e-collide", EnvOptions::default())
        .await
        .unwrap();
    let op = start(&env).await;
    let timeout = converge_timeout(env.real());
    // `shop` with service `orders-api` and `shop-orders` with service `api` both want
    // `shop-orders-api`.
    env.apply_app(&app(&env, "shop", &["orders-api"]))
        .await
        .unwrap();
    env.wait_condition("shop", READY, "True", timeout)
        .await
        .unwrap();
    let before = services(&env).get("shop-orders-api").await.unwrap();
    assert_eq!(
        controller(&before),
        Some(("Application".into(), "shop".into()))
    );

    env.apply_app(&app(&env, "shop-orders", &["api", "web"]))
        .await
        .unwrap();
    let ready = wait_reason(&env, "shop-orders", READY, "False", "Conflict", timeout).await;
    for expected in [
        "Service shop-orders-api belongs to Application shop",
        "Deployment shop-orders-api belongs to Application shop",
    ] {
        assert!(ready.message.contains(expected), "{}", ready.message);
    }
    wait_reason(&env, "shop-orders", "Degraded", "True", "Conflict", timeout).await;
    // Every other child of the second Application converges.
    let web = wait_for(timeout, || async {
        env.dynamic("apps", "v1", "Deployment", "deployments")
            .get_opt("shop-orders-web")
            .await
            .ok()
            .flatten()
    })
    .await
    .expect("the second Application's other service is created");
    assert_eq!(
        controller(&web),
        Some(("Application".into(), "shop-orders".into()))
    );
    let notes = wait_for(timeout, || async {
        let n = warnings(&env, "shop-orders", "Conflict").await;
        (!n.is_empty()).then_some(n)
    })
    .await
    .expect("a Warning Event Conflict");
    assert!(notes[0].contains("shop-orders-api"), "{notes:?}");

    // The first Application keeps its objects, untouched.
    let after = services(&env).get("shop-orders-api").await.unwrap();
    assert_eq!(after.uid(), before.uid());
    assert_eq!(after.owner_references(), before.owner_references());
    assert_eq!(
        after.data["spec"]["selector"],
        before.data["spec"]["selector"]
    );
    let deployment = env
        .dynamic("apps", "v1", "Deployment", "deployments")
        .get("shop-orders-api")
        .await
        .unwrap();
    assert_eq!(
        controller(&deployment),
        Some(("Application".into(), "shop".into()))
    );
    env.wait_condition("shop", READY, "True", timeout)
        .await
        .unwrap();

    // Deleting the second Application takes only its own children.
    env.apps()
        .delete("shop-orders", &DeleteParams::background())
        .await
        .unwrap();
    wait_for(timeout, || async {
        env.children("shop-orders")
            .await
            .ok()?
            .is_empty()
            .then_some(())
    })
    .await
    .expect("the second Application's children are collected");
    let still = services(&env).get("shop-orders-api").await.unwrap();
    assert_eq!(still.uid(), before.uid());
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_made_by_hand_is_taken_over_only_when_annotated() {
    let env = Env::start("e2e-adopt", EnvOptions::default())
        .await
        .unwrap();
    let op = start(&env).await;
    let timeout = converge_timeout(env.real());
    let by_hand: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "hello-web", "namespace": env.namespace},
        "spec": {"selector": {"made": "by-hand"}, "ports": [{"name": "http", "port": 8080}]},
    }))
    .unwrap();
    let made = services(&env)
        .create(&PostParams::default(), &by_hand)
        .await
        .unwrap();

    env.apply_app(&app(&env, "hello", &["web"])).await.unwrap();
    let ready = wait_reason(&env, "hello", READY, "False", "Conflict", timeout).await;
    assert!(
        ready
            .message
            .contains("Service hello-web exists and Keelson did not create it"),
        "{}",
        ready.message
    );
    assert!(
        ready.message.contains("keelson.dev/adopt=hello"),
        "{}",
        ready.message
    );
    // The Deployment converges; the Service is left as it was made.
    wait_for(timeout, || async {
        env.dynamic("apps", "v1", "Deployment", "deployments")
            .get_opt("hello-web")
            .await
            .ok()
            .flatten()
    })
    .await
    .expect("the Deployment is created");
    let untouched = services(&env).get("hello-web").await.unwrap();
    assert_eq!(untouched.resource_version(), made.resource_version());
    assert!(untouched.owner_references().is_empty());

    // Asked explicitly: taken over.
    services(&env)
        .patch(
            "hello-web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"keelson.dev/adopt": "hello"}}})),
        )
        .await
        .unwrap();
    // Nothing watches an unlabelled object: the Application rechecks held children soon.
    env.wait_condition("hello", READY, "True", timeout + Duration::from_secs(30))
        .await
        .unwrap();
    let adopted = services(&env).get("hello-web").await.unwrap();
    assert_eq!(adopted.uid(), made.uid());
    assert_eq!(
        controller(&adopted),
        Some(("Application".into(), "hello".into()))
    );
    assert_eq!(
        adopted.data["spec"]["selector"]["app.kubernetes.io/name"],
        "web"
    );
    op.stop().await.unwrap();
    env.cleanup().await;
}

/// The credentials Secret `name`: (uid, password as stored).
async fn credentials(env: &Env, name: &str) -> Option<(String, Value, DynamicObject)> {
    let s = secrets(env).get_opt(name).await.ok()??;
    Some((s.uid()?, s.data["data"]["password"].clone(), s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_credentials_outlive_their_database_and_application() {
    let env = Env::start("e2e-creds", EnvOptions::default())
        .await
        .unwrap();
    let op = start(&env).await;
    let timeout = converge_timeout(env.real());
    let without = app(&env, "hello", &["web"]);
    let mut with = without.clone();
    with["spec"]["databases"] = json!([{"name": "db", "engine": "postgres", "version": "16"}]);
    env.apply_app(&with).await.unwrap();
    env.wait_condition("hello", READY, "True", timeout)
        .await
        .unwrap();
    let (uid, password, secret) = credentials(&env, "hello-db-credentials").await.unwrap();
    assert!(password.is_string());
    assert!(
        secret.owner_references().is_empty(),
        "a retained database's Secret has no owner"
    );

    // Removed from the spec: the StatefulSet goes, the Secret stays.
    env.apply_app(&without).await.unwrap();
    let sts = env.dynamic("apps", "v1", "StatefulSet", "statefulsets");
    wait_for(timeout, || async {
        sts.get_opt("hello-db").await.ok()?.is_none().then_some(())
    })
    .await
    .expect("the database's StatefulSet is pruned");
    // The StatefulSet may be gone before the pass that pruned it has ended: the Secret is looked
    // at once that pass has written its status, so a prune of it later in the pass is seen too.
    env.wait_condition("hello", READY, "True", timeout)
        .await
        .unwrap();
    let (kept, kept_pw, _) = credentials(&env, "hello-db-credentials").await.unwrap();
    assert_eq!((&kept, &kept_pw), (&uid, &password));

    // Added back: the same password.
    env.apply_app(&with).await.unwrap();
    env.wait_condition("hello", READY, "True", timeout)
        .await
        .unwrap();
    let (again, again_pw, _) = credentials(&env, "hello-db-credentials").await.unwrap();
    assert_eq!((&again, &again_pw), (&uid, &password));

    // The Application deleted and made again: the same password.
    env.apps()
        .delete("hello", &DeleteParams::background())
        .await
        .unwrap();
    wait_for(timeout, || async {
        let left: Vec<String> = env.children("hello").await.ok()?.into_keys().collect();
        (left == ["Secret/hello-db-credentials"]).then_some(())
    })
    .await
    .expect("every child but the retained Secret is collected");
    env.apply_app(&with).await.unwrap();
    env.wait_condition("hello", READY, "True", timeout)
        .await
        .unwrap();
    let (recreated, recreated_pw, _) = credentials(&env, "hello-db-credentials").await.unwrap();
    assert_eq!((&recreated, &recreated_pw), (&uid, &password));

    // The Secret deleted while the data is there: reported, no new password.
    secrets(&env)
        .delete("hello-db-credentials", &DeleteParams::default())
        .await
        .unwrap();
    let degraded = wait_reason(
        &env,
        "hello",
        "Degraded",
        "True",
        "CredentialsMissing",
        timeout,
    )
    .await;
    assert!(
        degraded.message.contains("hello-db-credentials")
            && degraded.message.contains("data-hello-db-0"),
        "{}",
        degraded.message
    );
    assert!(
        credentials(&env, "hello-db-credentials").await.is_none(),
        "no Secret with a new password is made"
    );
    assert!(
        sts.get_opt("hello-db").await.unwrap().is_some(),
        "the database is left alone"
    );
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_survives_its_api_flapping_out_of_discovery() {
    let mut env = Env::start("e2e-flap", EnvOptions::default()).await.unwrap();
    if env.real()
        && !env
            .has_crd("httproutes.gateway.networking.k8s.io")
            .await
            .unwrap()
    {
        env.install_third_party_crd(e2e::harness::HTTP_ROUTES_CRD)
            .await
            .unwrap();
    }
    let faults = Arc::new(Faults::default());
    let op = env.start_operator(OperatorOptions {
        faults: Some(faults.clone()),
        ..OperatorOptions::default()
    });
    let timeout = converge_timeout(env.real());
    env.apply_app(&env.sample("httproute.yaml").unwrap())
        .await
        .unwrap();
    env.wait_condition("blog", READY, "True", timeout)
        .await
        .unwrap();
    let routes = env.dynamic("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes");
    let route = routes.get("blog").await.unwrap();

    // Discovery briefly says the Gateway API is not served (the operator rediscovers every
    // second in tests): the route is set aside and reported, never pruned.
    faults.set_undiscovered(Some("gateway.networking.k8s.io"));
    wait_reason(
        &env,
        "blog",
        "APIsAvailable",
        "False",
        "APINotServed",
        timeout,
    )
    .await;
    let during = routes.get("blog").await.unwrap();
    assert_eq!(during.uid(), route.uid());
    faults.set_undiscovered(None);
    env.wait_condition("blog", "APIsAvailable", "True", timeout)
        .await
        .unwrap();
    let after = routes.get("blog").await.unwrap();
    assert_eq!(after.uid(), route.uid());
    op.stop().await.unwrap();
    env.cleanup().await;
}

/// Whether Keelson's own apply still owns the Deployment's `spec.replicas`.
fn keelson_owns_replicas(d: &DynamicObject) -> bool {
    d.managed_fields().iter().any(|m| {
        m.manager.as_deref() == Some("keelson")
            && m.operation.as_deref() == Some("Apply")
            && m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:spec"].get("f:replicas").is_some())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_to_autoscaling_and_back_never_scales_below_the_bound() {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};

    let env = Env::start("e2e-handover", EnvOptions::default())
        .await
        .unwrap();
    let op = start(&env).await;
    let timeout = converge_timeout(env.real());
    // Autoscaling on CPU needs a CPU request; the same in every phase, so only replicas change.
    let service = |mut app: Value| {
        app["spec"]["services"][0]["resources"] = json!({"requests": {"cpu": "50m"}});
        app
    };
    let mut fixed = service(app(&env, "hello", &["web"]));
    fixed["spec"]["services"][0]["replicas"] = json!(4);
    env.apply_app(&fixed).await.unwrap();
    env.wait_condition("hello", READY, "True", timeout)
        .await
        .unwrap();
    let deployments = env.dynamic("apps", "v1", "Deployment", "deployments");
    assert_eq!(
        deployments.get("hello-web").await.unwrap().data["spec"]["replicas"],
        4
    );

    // Every spec.replicas the Deployment shows from now on.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let record = seen.clone();
    let watch = tokio::spawn(
        watcher(deployments.clone(), watcher::Config::default())
            .applied_objects()
            .for_each(move |d| {
                if let Ok(d) = d
                    && d.name_any() == "hello-web"
                {
                    // An absent field is the default: 1.
                    let n = d.data["spec"]["replicas"].as_i64().unwrap_or(1);
                    record.lock().unwrap().push(n);
                }
                std::future::ready(())
            }),
    );
    wait_for(timeout, || async {
        (!seen.lock().unwrap().is_empty()).then_some(())
    })
    .await
    .unwrap();

    // Fixed 4 -> autoscaled {3, 6}: never below min(4, 3) = 3.
    let mut scaled = service(app(&env, "hello", &["web"]));
    scaled["spec"]["services"][0]["scaling"] = json!({"minReplicas": 3, "maxReplicas": 6});
    env.apply_app(&scaled).await.unwrap();
    let handed = wait_for(timeout, || async {
        let d = deployments.get("hello-web").await.ok()?;
        let hpa = env
            .dynamic(
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
            )
            .get_opt("hello-web")
            .await
            .ok()??;
        (!keelson_owns_replicas(&d)).then_some((d, hpa))
    })
    .await
    .expect("Keelson lets go of spec.replicas and the HPA exists");
    let (d, _) = handed;
    let now = d.data["spec"]["replicas"].as_i64();
    assert!(now.is_some_and(|n| n >= 3), "spec.replicas is {now:?}");
    env.wait_condition("hello", READY, "True", timeout)
        .await
        .unwrap();

    // Back to fixed 2: exactly 2.
    let mut fixed2 = service(app(&env, "hello", &["web"]));
    fixed2["spec"]["services"][0]["replicas"] = json!(2);
    env.apply_app(&fixed2).await.unwrap();
    wait_for(timeout, || async {
        let d = deployments.get("hello-web").await.ok()?;
        (d.data["spec"]["replicas"] == 2 && keelson_owns_replicas(&d)).then_some(())
    })
    .await
    .expect("fixed replicas set exactly 2");
    env.wait_condition("hello", READY, "True", timeout)
        .await
        .unwrap();
    // The watch delivers apart from the reads above: wait until it has shown the 2 too, so that
    // every value the Deployment had before it was recorded.
    wait_for(timeout, || async {
        seen.lock().unwrap().contains(&2).then_some(())
    })
    .await
    .expect("the watch shows spec.replicas 2");
    watch.abort();
    let seen = seen.lock().unwrap().clone();
    let before_fixed2 = seen.iter().position(|n| *n == 2).unwrap_or(seen.len());
    let low = seen[..before_fixed2].iter().min().copied();
    assert!(
        low.is_some_and(|n| n >= 3),
        "while autoscaled, spec.replicas went to {low:?}: {seen:?}"
    );
    op.stop().await.unwrap();
    env.cleanup().await;
}

/// The storage request of a StatefulSet's `data` claim template, or of a claim.
fn storage(o: &DynamicObject, template: bool) -> Option<String> {
    let spec = if template {
        o.data["spec"]["volumeClaimTemplates"][0]["spec"].clone()
    } else {
        o.data["spec"].clone()
    };
    spec["resources"]["requests"]["storage"]
        .as_str()
        .map(String::from)
}

/// The text of an API server's refusal of an Application write.
async fn refusal(env: &Env, app: &Value) -> String {
    match env.apply_app(app).await {
        Ok(_) => panic!("the API server accepted {}", app["spec"]["databases"]),
        Err(e) => format!("{e:#}"),
    }
}

/// A StorageClass like the cluster's default (same provisioner and parameters, so claims bind),
/// named after the test's namespace, with or without volume expansion. The test deletes it;
/// the Env's cleanup does too should the test fail first.
async fn class_like_default(
    env: &Env,
    expandable: bool,
) -> (
    kube::Api<k8s_openapi::api::storage::v1::StorageClass>,
    String,
) {
    use k8s_openapi::api::storage::v1::StorageClass;
    let classes = kube::Api::<StorageClass>::all(env.client.clone());
    let default = classes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|sc| {
            sc.metadata.annotations.as_ref().is_some_and(|a| {
                a.get("storageclass.kubernetes.io/is-default-class")
                    .is_some_and(|v| v == "true")
            })
        })
        .expect("the cluster has a default StorageClass");
    let name = format!(
        "{}-{}",
        env.namespace,
        if expandable { "grows" } else { "fixed" }
    );
    let class = StorageClass {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        provisioner: default.provisioner.clone(),
        parameters: default.parameters.clone(),
        volume_binding_mode: default.volume_binding_mode.clone(),
        reclaim_policy: Some("Delete".into()),
        allow_volume_expansion: Some(expandable),
        ..Default::default()
    };
    env.owns_storage_class(&name);
    classes
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
    (classes, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_volume_grows_in_place_and_is_never_shrunk_or_moved() {
    let env = Env::start("e2e-grow", EnvOptions::default()).await.unwrap();
    if let Some(server) = &env.server {
        server.set_pods(true);
    }
    // The API server accepts a larger claim where its class allows expansion; the file system
    // grows later, when the volume's driver can.
    let (classes, class) = class_like_default(&env, true).await;
    let op = start(&env).await;
    let timeout = converge_timeout(env.real());
    let mut hello = app(&env, "hello", &["web"]);
    hello["spec"]["databases"] = json!([{"name": "db", "engine": "postgres", "version": "16",
        "storage": {"size": "1Gi", "storageClassName": class}}]);
    env.apply_app(&hello).await.unwrap();
    env.wait_condition("hello", READY, "True", timeout)
        .await
        .unwrap();
    let statefulsets = env.dynamic("apps", "v1", "StatefulSet", "statefulsets");
    let claims = env.dynamic("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims");
    let pods = env.dynamic("", "v1", "Pod", "pods");
    let before = statefulsets.get("hello-db").await.unwrap();
    let pod = pods.get("hello-db-0").await.unwrap();

    let mut grown = hello.clone();
    grown["spec"]["databases"][0]["storage"]["size"] = json!("2Gi");
    env.apply_app(&grown).await.unwrap();
    let after = wait_for(timeout, || async {
        let s = statefulsets.get_opt("hello-db").await.ok()??;
        (s.uid() != before.uid() && storage(&s, true).as_deref() == Some("2Gi")).then_some(s)
    })
    .await
    .expect("the StatefulSet is replaced with the larger claim template");
    let claim = claims.get("data-hello-db-0").await.unwrap();
    assert_eq!(storage(&claim, false).as_deref(), Some("2Gi"));
    env.wait_condition("hello", READY, "True", timeout)
        .await
        .unwrap();
    let now = pods.get("hello-db-0").await.unwrap();
    assert_eq!(now.uid(), pod.uid(), "the database's pod was not restarted");
    let owner = now
        .owner_references()
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone());
    assert_eq!(owner, after.uid(), "the new StatefulSet adopted the pod");
    // Events are sent apart from the status, so they are waited for, not read once.
    let events = env.dynamic("events.k8s.io", "v1", "Event", "events");
    let resized: Vec<String> = wait_for(timeout, || async {
        let notes: Vec<String> = events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter(|e| e.data["reason"] == "VolumeResized")
            .map(|e| e.data["note"].as_str().unwrap_or_default().to_string())
            .collect();
        notes
            .iter()
            .any(|n| n.contains("data-hello-db-0"))
            .then_some(notes)
    })
    .await
    .expect("a VolumeResized Event names the claim");
    for note in &resized {
        assert_words("a VolumeResized Event", note);
    }

    // What would lose data is refused at admission, naming the field; nothing changes.
    let mut shrunk = grown.clone();
    shrunk["spec"]["databases"][0]["storage"]["size"] = json!("512Mi");
    let text = refusal(&env, &shrunk).await;
    assert!(
        text.contains("spec.databases[0].storage.size") && text.contains("cannot shrink"),
        "{text}"
    );
    let mut moved = grown.clone();
    moved["spec"]["databases"][0]["storage"]["storageClassName"] = json!("another-class");
    let text = refusal(&env, &moved).await;
    assert!(
        text.contains("spec.databases[0].storage.storageClassName"),
        "{text}"
    );
    let mut engine = grown.clone();
    engine["spec"]["databases"][0]["engine"] = json!("mysql");
    engine["spec"]["databases"][0]["version"] = json!("8.4");
    let text = refusal(&env, &engine).await;
    assert!(text.contains("spec.databases[0].engine"), "{text}");
    // A new database may use any engine, class and size.
    let mut added = grown.clone();
    added["spec"]["databases"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "cache", "engine": "redis", "storage": {"size": "256Mi"}}));
    env.apply_app(&added).await.unwrap();
    op.stop().await.unwrap();
    classes
        .delete(&class, &DeleteParams::default())
        .await
        .unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_whose_class_cannot_expand_is_reported_and_left_alone() {
    let env = Env::start("e2e-fixed", EnvOptions::default())
        .await
        .unwrap();
    let (classes, fixed_name) = class_like_default(&env, false).await;
    let op = start(&env).await;
    let timeout = converge_timeout(env.real());
    let mut hello = app(&env, "hello", &["web"]);
    hello["spec"]["databases"] = json!([{"name": "db", "engine": "postgres",
        "storage": {"size": "1Gi", "storageClassName": fixed_name}}]);
    env.apply_app(&hello).await.unwrap();
    env.wait_condition("hello", READY, "True", timeout)
        .await
        .unwrap();
    let statefulsets = env.dynamic("apps", "v1", "StatefulSet", "statefulsets");
    let before = statefulsets.get("hello-db").await.unwrap();

    let mut grown = hello.clone();
    grown["spec"]["databases"][0]["storage"]["size"] = json!("3Gi");
    env.apply_app(&grown).await.unwrap();
    let degraded = wait_reason(
        &env,
        "hello",
        "Degraded",
        "True",
        "VolumeExpansionRefused",
        timeout,
    )
    .await;
    for words in [
        "data-hello-db-0",
        "spec.databases[0].storage.size",
        "allowVolumeExpansion",
    ] {
        assert!(degraded.message.contains(words), "{}", degraded.message);
    }
    let kept = statefulsets.get("hello-db").await.unwrap();
    assert_eq!(kept.uid(), before.uid(), "the StatefulSet is left alone");
    assert_eq!(storage(&kept, true).as_deref(), Some("1Gi"));
    let claim = env
        .dynamic("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims")
        .get("data-hello-db-0")
        .await
        .unwrap();
    assert_eq!(storage(&claim, false).as_deref(), Some("1Gi"));
    // The Event is sent after the status is written, so it is waited for, not read once.
    wait_for(timeout, || async {
        let notes = warnings(&env, "hello", "VolumeExpansionRefused").await;
        (!notes.is_empty()).then_some(notes)
    })
    .await
    .expect("a Warning Event says so too");
    for words in ["StorageClass", "allowVolumeExpansion: true"] {
        assert!(degraded.message.contains(words), "{}", degraded.message);
    }
    assert_words("the VolumeExpansionRefused condition", &degraded.message);
    // The spec cannot go back down (sizes only grow) ...
    let text = refusal(&env, &hello).await;
    assert!(text.contains("cannot shrink"), "{text}");
    // ... but once the class allows expansion, the claim grows and the Application recovers.
    classes
        .patch(
            &fixed_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"allowVolumeExpansion": true})),
        )
        .await
        .unwrap();
    wait_for(timeout, || async {
        let s = statefulsets.get_opt("hello-db").await.ok()??;
        (storage(&s, true).as_deref() == Some("3Gi")).then_some(())
    })
    .await
    .expect("the StatefulSet is replaced once the claim may grow");
    env.wait_condition("hello", "Degraded", "False", timeout)
        .await
        .unwrap();
    op.stop().await.unwrap();
    classes
        .delete(&fixed_name, &DeleteParams::default())
        .await
        .unwrap();
    env.cleanup().await;
}

/// The kubelet expands `$(VAR)` only with variables defined earlier in the list, so the
/// injected database variables come before a service's own, on creation and after an edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_variable_can_use_the_injected_database_variables() {
    let env = Env::start("e2e-env", EnvOptions::default()).await.unwrap();
    let op = start(&env).await;
    let timeout = converge_timeout(env.real());
    let mut hello = app(&env, "hello", &["web"]);
    hello["spec"]["databases"] = json!([{"name": "orders-db", "engine": "postgres"}]);
    hello["spec"]["services"][0]["uses"] = json!(["orders-db"]);
    hello["spec"]["services"][0]["env"] = json!([{"name": "LOG_LEVEL", "value": "info"}]);
    let deployments = env.dynamic("apps", "v1", "Deployment", "deployments");
    let names = |d: &DynamicObject| -> Vec<String> {
        d.data["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["name"].as_str().map(String::from))
            .collect()
    };
    for phase in ["created", "edited"] {
        if phase == "edited" {
            hello["spec"]["services"][0]["env"] = json!([
                {"name": "DATABASE_URL",
                 "value": "jdbc:postgresql://$(ORDERS_DB_HOST):$(ORDERS_DB_PORT)/orders_db"},
                {"name": "LOG_LEVEL", "value": "info"}]);
        }
        env.apply_app(&hello).await.unwrap();
        env.wait_condition("hello", READY, "True", timeout)
            .await
            .unwrap();
        let d = wait_for(timeout, || async {
            let d = deployments.get("hello-web").await.ok()?;
            let n = names(&d);
            (phase == "created" || n.iter().any(|e| e == "DATABASE_URL")).then_some(d)
        })
        .await
        .unwrap();
        let order = names(&d);
        let at = |name: &str| {
            order
                .iter()
                .position(|e| e == name)
                .unwrap_or_else(|| panic!("{name} is not in {order:?}"))
        };
        for user in ["LOG_LEVEL"]
            .into_iter()
            .chain((phase == "edited").then_some("DATABASE_URL"))
        {
            for injected in ["ORDERS_DB_HOST", "ORDERS_DB_PORT"] {
                assert!(at(injected) < at(user), "{phase}: {order:?}");
            }
        }
    }
    op.stop().await.unwrap();
    env.cleanup().await;
}

/// An Application deleted with `--cascade=orphan` and created again with a smaller volume (no
/// transition rule sees a create): Keelson takes its StatefulSet back but cannot shrink it, so it
/// leaves it alone and says which field to set back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_volume_that_reaches_keelson_anyway_is_refused_in_status() {
    let env = Env::start("e2e-shrink", EnvOptions::default())
        .await
        .unwrap();
    let op = start(&env).await;
    let timeout = converge_timeout(env.real());
    let mut hello = app(&env, "hello", &["web"]);
    hello["spec"]["databases"] =
        json!([{"name": "db", "engine": "postgres", "storage": {"size": "2Gi"}}]);
    env.apply_app(&hello).await.unwrap();
    env.wait_condition("hello", READY, "True", timeout)
        .await
        .unwrap();
    let statefulsets = env.dynamic("apps", "v1", "StatefulSet", "statefulsets");
    let before = statefulsets.get("hello-db").await.unwrap();
    env.apps()
        .delete("hello", &DeleteParams::orphan())
        .await
        .unwrap();
    wait_for(timeout, || async {
        env.apps()
            .get_opt("hello")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .expect("the Application is gone");
    hello["spec"]["databases"][0]["storage"]["size"] = json!("1Gi");
    env.apply_app(&hello).await.unwrap();
    let degraded = wait_reason(
        &env,
        "hello",
        "Degraded",
        "True",
        "StorageChangeRefused",
        timeout,
    )
    .await;
    assert!(
        degraded.message.contains("spec.databases[0].storage.size")
            && degraded.message.contains("from 2Gi to 1Gi"),
        "{}",
        degraded.message
    );
    assert_words("the StorageChangeRefused condition", &degraded.message);
    let kept = statefulsets.get("hello-db").await.unwrap();
    assert_eq!(kept.uid(), before.uid(), "the StatefulSet is left alone");
    assert_eq!(storage(&kept, true).as_deref(), Some("2Gi"));
    op.stop().await.unwrap();
    env.cleanup().await;
}
