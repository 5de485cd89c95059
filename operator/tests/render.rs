//! Tier 1: what `keelson render` (and so the controller's build) makes of an Application.
//!
//! Snapshots pin every sample's full output; the targeted tests below state the properties the
//! snapshots must keep, so that accepting a changed snapshot cannot silently drop one.

use std::{collections::BTreeSet, path::PathBuf};

use keelson::{
    build::{ApiCapabilities, Credentials, build},
    render::{self, PLACEHOLDER_UID, RenderError, render_values, to_yaml_stream},
};
use serde_json::Value;

fn creds(db: &str) -> Credentials {
    Credentials {
        password: format!("pw-{db}"),
        admin_password: format!("admin-{db}"),
    }
}

fn render_with(input: &str, caps: ApiCapabilities) -> Vec<Value> {
    render_values(input, caps, creds).unwrap_or_else(|e| panic!("render failed: {e}"))
}

fn render_all(input: &str) -> Vec<Value> {
    render_with(input, ApiCapabilities::ALL)
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

/// Every sample, as (file stem, text), in name order.
fn samples() -> Vec<(String, String)> {
    let dir = repo_root().join("samples");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 4, "samples/ has {} files", out.len());
    out
}

fn sample(stem: &str) -> String {
    let path = repo_root().join("samples").join(format!("{stem}.yaml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn kind_name(o: &Value) -> String {
    format!(
        "{}/{}",
        o["kind"].as_str().unwrap_or("?"),
        o["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| {
            panic!(
                "no {kind}/{name} among {:?}",
                objects.iter().map(kind_name).collect::<Vec<_>>()
            )
        })
}

fn names(objects: &[Value], kind: &str) -> Vec<String> {
    of_kind(objects, kind)
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// The pod specs of every workload (Deployments and StatefulSets).
fn pod_specs(objects: &[Value]) -> Vec<(String, &Value)> {
    objects
        .iter()
        .filter(|o| o["kind"] == "Deployment" || o["kind"] == "StatefulSet")
        .map(|o| (kind_name(o), &o["spec"]["template"]["spec"]))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

#[test]
fn samples_render_as_snapshotted() {
    for (stem, text) in samples() {
        let yaml = to_yaml_stream(&render_all(&text));
        insta::assert_snapshot!(format!("sample_{stem}"), yaml);
    }
}

#[test]
fn shop_without_optional_apis_renders_as_snapshotted() {
    let objects = render_with(
        &sample("shop"),
        ApiCapabilities {
            service_monitors: false,
            http_routes: false,
        },
    );
    insta::assert_snapshot!("shop_without_optional_apis", to_yaml_stream(&objects));
}

// ---------------------------------------------------------------------------------------------
// Metadata of every child
// ---------------------------------------------------------------------------------------------

/// Whether the credentials Secret `name` belongs to a database with `deletionPolicy: Retain`
/// (the default).
fn retained_secret(app: &Value, name: &Value) -> bool {
    let app_name = app["metadata"]["name"].as_str().unwrap();
    app["spec"]["databases"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|db| {
            *name == format!("{app_name}-{}-credentials", db["name"].as_str().unwrap())
                && db["deletionPolicy"] != "Delete"
        })
}

#[test]
fn every_child_has_the_controller_owner_reference() {
    for (stem, text) in samples() {
        let app: Value = serde_norway::from_str(&text).unwrap();
        let app_name = app["metadata"]["name"].as_str().unwrap();
        let objects = render_all(&text);
        assert!(!objects.is_empty(), "{stem}");
        for o in &objects {
            if o["kind"] == "Secret" && retained_secret(&app, &o["metadata"]["name"]) {
                // Credentials of a retained database live as long as its volume: no owner.
                assert!(o["metadata"].get("ownerReferences").is_none(), "{stem}");
                continue;
            }
            assert_eq!(
                o["metadata"]["ownerReferences"],
                serde_json::json!([{
                    "apiVersion": "keelson.dev/v1alpha1",
                    "kind": "Application",
                    "name": app_name,
                    "uid": PLACEHOLDER_UID,
                    "controller": true,
                }]),
                "{stem}: {}",
                kind_name(o)
            );
            // The samples name no namespace (`kubectl apply -n` chooses it): render's default.
            assert_eq!(
                o["metadata"]["namespace"],
                app["metadata"]["namespace"].as_str().unwrap_or("default"),
                "{stem}: {}",
                kind_name(o)
            );
        }
    }
}

#[test]
fn the_owner_reference_carries_the_applications_uid() {
    let input = sample("minimal").replace(
        "  name: hello\n",
        "  name: hello\n  uid: 1b4e28ba-2fa1-11d2-883f-0016d3cca427\n",
    );
    for o in render_all(&input) {
        assert_eq!(
            o["metadata"]["ownerReferences"][0]["uid"],
            "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "{}",
            kind_name(&o)
        );
    }
}

#[test]
fn every_child_has_the_five_labels() {
    for (stem, text) in samples() {
        let app: Value = serde_norway::from_str(&text).unwrap();
        let app_name = app["metadata"]["name"].as_str().unwrap();
        let objects = render_all(&text);
        let databases = names(&objects, "StatefulSet");
        for o in &objects {
            let labels = &o["metadata"]["labels"];
            let what = format!("{stem}: {}", kind_name(o));
            assert_eq!(labels["app.kubernetes.io/managed-by"], "keelson", "{what}");
            assert_eq!(labels["app.kubernetes.io/part-of"], app_name, "{what}");
            assert_eq!(labels["keelson.dev/application"], app_name, "{what}");
            assert!(labels["app.kubernetes.io/name"].is_string(), "{what}");
            let component = labels["app.kubernetes.io/component"].as_str().unwrap_or("");
            let expected = match o["kind"].as_str().unwrap() {
                "Secret" | "StatefulSet" => "database",
                "Ingress" | "HTTPRoute" => "gateway",
                "Service"
                    if databases
                        .iter()
                        .any(|d| o["metadata"]["name"] == d.as_str()) =>
                {
                    "database"
                }
                _ => "service",
            };
            assert_eq!(component, expected, "{what}");
            assert_eq!(labels.as_object().unwrap().len(), 5, "{what}: {labels}");
        }
    }
}

#[test]
fn component_labels_name_the_service_or_database() {
    let objects = render_all(&sample("shop"));
    let name_of = |kind: &str, name: &str| {
        named(&objects, kind, name)["metadata"]["labels"]["app.kubernetes.io/name"].clone()
    };
    assert_eq!(name_of("Deployment", "shop-orders"), "orders");
    assert_eq!(name_of("StatefulSet", "shop-orders-db"), "orders-db");
    assert_eq!(name_of("Secret", "shop-cache-credentials"), "cache");
    assert_eq!(name_of("Service", "shop-cache"), "cache");
    assert_eq!(name_of("Ingress", "shop"), "gateway");
    assert_eq!(
        named(&objects, "Service", "shop-cache")["metadata"]["labels"]["app.kubernetes.io/component"],
        "database"
    );
}

const ARGO_APPLICATION: &str = r#"
apiVersion: keelson.dev/v1alpha1
kind: Application
metadata:
  name: shop
  namespace: shop
  labels:
    app.kubernetes.io/instance: shop-prod
    argocd.argoproj.io/instance: shop-prod
    team: payments
  annotations:
    argocd.argoproj.io/tracking-id: "shop-prod:keelson.dev/Application:shop/shop"
    argocd.argoproj.io/sync-wave: "2"
    kubectl.kubernetes.io/last-applied-configuration: "{}"
spec:
  gateway:
    parentRefs: [{name: public}]
    routes: [{path: /, service: web}]
  services:
    - name: web
      image: web:1
      ports: [{name: http, port: 8080}]
      metrics: {port: http}
      replicas: 2
  databases:
    - {name: db, engine: postgres}
"#;

fn argo_keys(map: &Value) -> Vec<String> {
    map.as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .filter(|k| k == "app.kubernetes.io/instance" || k.starts_with("argocd.argoproj.io/"))
        .collect()
}

/// Every metadata block in an object: its own, its pod template's, its claim templates'.
fn metadata_blocks(o: &Value) -> Vec<&Value> {
    let mut out = vec![&o["metadata"]];
    if o["spec"]["template"]["metadata"].is_object() {
        out.push(&o["spec"]["template"]["metadata"]);
    }
    if let Some(claims) = o["spec"]["volumeClaimTemplates"].as_array() {
        out.extend(claims.iter().map(|c| &c["metadata"]));
    }
    out
}

#[test]
fn no_child_carries_argo_cd_tracking_metadata() {
    let objects = render_all(ARGO_APPLICATION);
    let kinds: BTreeSet<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    // The input exercises every kind, so none escapes the check.
    assert_eq!(
        kinds,
        BTreeSet::from([
            "Deployment",
            "HTTPRoute",
            "PodDisruptionBudget",
            "Secret",
            "Service",
            "ServiceMonitor",
            "StatefulSet",
        ])
    );
    for o in &objects {
        for meta in metadata_blocks(o) {
            assert_eq!(
                argo_keys(&meta["labels"]),
                Vec::<String>::new(),
                "{}",
                kind_name(o)
            );
            assert_eq!(
                argo_keys(&meta["annotations"]),
                Vec::<String>::new(),
                "{}",
                kind_name(o)
            );
            // Nothing else leaks from the Application's metadata either.
            assert!(meta["labels"].get("team").is_none(), "{}", kind_name(o));
            assert!(
                meta["annotations"]
                    .get("kubectl.kubernetes.io/last-applied-configuration")
                    .is_none(),
                "{}",
                kind_name(o)
            );
        }
    }
    // And the sample inputs, which carry none, render the same without it.
    let plain = ARGO_APPLICATION
        .split("spec:\n")
        .nth(1)
        .map(|spec| format!("apiVersion: keelson.dev/v1alpha1\nkind: Application\nmetadata:\n  name: shop\n  namespace: shop\nspec:\n{spec}"))
        .unwrap();
    assert_eq!(render_all(&plain), objects);
}

#[test]
fn gateway_annotations_reach_the_ingress_and_the_http_route() {
    let input = r#"
apiVersion: keelson.dev/v1alpha1
kind: Application
metadata: {name: shop, namespace: shop}
spec:
  gateway:
    annotations: {cert-manager.io/cluster-issuer: letsencrypt}
    routes: [{path: /, service: web}]
  services: [{name: web, image: web:1, ports: [{name: http, port: 8080}]}]
"#;
    let objects = render_all(input);
    assert_eq!(
        named(&objects, "Ingress", "shop")["metadata"]["annotations"],
        serde_json::json!({"cert-manager.io/cluster-issuer": "letsencrypt"})
    );
    let objects = render_all(&input.replace(
        "routes: [{path: /, service: web}]",
        "routes: [{path: /, service: web}]\n    parentRefs: [{name: public}]",
    ));
    assert_eq!(
        named(&objects, "HTTPRoute", "shop")["metadata"]["annotations"],
        serde_json::json!({"cert-manager.io/cluster-issuer": "letsencrypt"})
    );
    // No annotations field at all when none are set.
    for o in render_all(&sample("shop")) {
        assert!(
            o["metadata"].get("annotations").is_none(),
            "{}",
            kind_name(&o)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------------------

#[test]
fn autoscaled_deployments_leave_replicas_to_the_autoscaler() {
    let objects = render_all(&sample("shop"));
    // storefront and inventory autoscale through spec.scaling, orders through its own scaling.
    for name in ["shop-storefront", "shop-orders", "shop-inventory"] {
        let d = named(&objects, "Deployment", name);
        assert!(d["spec"].get("replicas").is_none(), "{name}: {}", d["spec"]);
        let hpa = named(&objects, "HorizontalPodAutoscaler", name);
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], name);
        assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    }
    assert_eq!(
        named(&objects, "Deployment", "shop-payment")["spec"]["replicas"],
        2
    );
    assert_eq!(
        names(&objects, "HorizontalPodAutoscaler"),
        ["shop-storefront", "shop-orders", "shop-inventory"]
    );
    let orders = &named(&objects, "HorizontalPodAutoscaler", "shop-orders")["spec"];
    assert_eq!(orders["minReplicas"], 2);
    assert_eq!(orders["maxReplicas"], 10);
    assert_eq!(
        orders["metrics"][0]["resource"]["target"]["averageUtilization"],
        70
    );
    let storefront = &named(&objects, "HorizontalPodAutoscaler", "shop-storefront")["spec"];
    assert_eq!(
        (
            storefront["minReplicas"].clone(),
            storefront["maxReplicas"].clone()
        ),
        (1.into(), 5.into())
    );

    // Fixed counts, including the default of one.
    let objects = render_all(&sample("minimal"));
    assert_eq!(
        named(&objects, "Deployment", "hello-web")["spec"]["replicas"],
        1
    );
    assert!(of_kind(&objects, "HorizontalPodAutoscaler").is_empty());
    let objects = render_all(&sample("mysql"));
    assert_eq!(
        named(&objects, "Deployment", "wiki-app")["spec"]["replicas"],
        3
    );
}

#[test]
fn disruption_budgets_only_from_two_replicas() {
    let objects = render_all(&sample("shop"));
    // orders: min 2 (autoscaled); payment: 2 fixed. storefront and inventory: min 1.
    assert_eq!(
        names(&objects, "PodDisruptionBudget"),
        ["shop-orders", "shop-payment"]
    );
    let pdb = named(&objects, "PodDisruptionBudget", "shop-payment");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    // Pods that are not ready never hold up a node drain.
    assert_eq!(pdb["spec"]["unhealthyPodEvictionPolicy"], "AlwaysAllow");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        named(&objects, "Deployment", "shop-payment")["spec"]["selector"]["matchLabels"]
    );

    assert!(of_kind(&render_all(&sample("minimal")), "PodDisruptionBudget").is_empty());
    assert_eq!(
        names(&render_all(&sample("mysql")), "PodDisruptionBudget"),
        ["wiki-app"]
    );
    // Zero replicas and one replica: no budget.
    for replicas in [0, 1] {
        let input = sample("minimal").replace(
            "      ports: [{name: http, port: 8080}]",
            &format!("      ports: [{{name: http, port: 8080}}]\n      replicas: {replicas}"),
        );
        assert!(
            of_kind(&render_all(&input), "PodDisruptionBudget").is_empty(),
            "{replicas}"
        );
    }
}

#[test]
fn every_pod_runs_with_the_restricted_security_profile() {
    for (stem, text) in samples() {
        let objects = render_all(&text);
        let pods = pod_specs(&objects);
        assert!(!pods.is_empty(), "{stem}");
        for (what, pod) in pods {
            let what = format!("{stem}: {what}");
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{what}"
            );
            assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
            let containers = pod["containers"].as_array().unwrap();
            assert!(!containers.is_empty(), "{what}");
            for c in containers {
                let sc = &c["securityContext"];
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{what}"
                );
                assert!(sc["capabilities"].get("add").is_none(), "{what}");
                assert_ne!(sc["privileged"], true, "{what}");
                assert_ne!(sc["runAsUser"], 0, "{what}");
            }
            assert_ne!(pod["securityContext"]["runAsUser"], 0, "{what}");
            assert!(pod.get("hostNetwork").is_none(), "{what}");
        }
    }
}

#[test]
fn service_containers_have_a_read_only_root_and_a_writable_tmp() {
    let objects = render_all(&sample("shop"));
    for d in of_kind(&objects, "Deployment") {
        let pod = &d["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"],
            true,
            "{}",
            kind_name(d)
        );
        assert_eq!(c["volumeMounts"][0]["mountPath"], "/tmp");
        assert_eq!(pod["volumes"][0]["emptyDir"], serde_json::json!({}));
    }
    // The documented exception: database containers need a writable root.
    for s in of_kind(&objects, "StatefulSet") {
        let c = &s["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], false);
        assert_eq!(
            s["spec"]["template"]["spec"]["securityContext"]["runAsUser"],
            999
        );
    }
    // A service may opt out of the read-only root, and into a token and a user.
    let input = sample("minimal").replace(
        "      ports: [{name: http, port: 8080}]",
        "      ports: [{name: http, port: 8080}]\n      readOnlyRootFilesystem: false\n      automountServiceAccountToken: true\n      runAsUser: 1000\n      serviceAccountName: hello",
    );
    let objects = render_all(&input);
    let pod = &named(&objects, "Deployment", "hello-web")["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
        false
    );
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 1000);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["serviceAccountName"], "hello");
}

// ---------------------------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------------------------

/// Every env var of every container in `objects`, with the workload it belongs to.
fn all_env(objects: &[Value]) -> Vec<(String, &Value)> {
    pod_specs(objects)
        .into_iter()
        .flat_map(|(what, pod)| {
            pod["containers"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|c| c["env"].as_array().into_iter().flatten())
                .map(move |e| (what.clone(), e))
        })
        .collect()
}

#[test]
fn database_env_vars_come_from_the_secret() {
    for (stem, text) in samples() {
        let objects = render_all(&text);
        for (what, e) in all_env(&objects) {
            let value = e.get("value").and_then(Value::as_str).unwrap_or_default();
            // No password, URL or credential ever appears as a literal.
            assert!(
                !value.contains("pw-") && !value.contains("admin-"),
                "{stem}: {what}: {e}"
            );
        }
    }
    let objects = render_all(&sample("shop"));
    let orders = &named(&objects, "Deployment", "shop-orders")["spec"]["template"]["spec"]["containers"]
        [0]["env"];
    let injected: Vec<(String, String, String)> = orders
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] != "LOG_LEVEL")
        .map(|e| {
            assert!(e.get("value").is_none(), "{e}");
            let r = &e["valueFrom"]["secretKeyRef"];
            (
                e["name"].as_str().unwrap().into(),
                r["name"].as_str().unwrap().into(),
                r["key"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = |v: &str, s: &str, k: &str| (v.to_string(), s.to_string(), k.to_string());
    assert_eq!(
        injected,
        [
            want("ORDERS_DB_HOST", "shop-orders-db-credentials", "host"),
            want("ORDERS_DB_PORT", "shop-orders-db-credentials", "port"),
            want(
                "ORDERS_DB_USERNAME",
                "shop-orders-db-credentials",
                "username"
            ),
            want(
                "ORDERS_DB_PASSWORD",
                "shop-orders-db-credentials",
                "password"
            ),
            want(
                "ORDERS_DB_DATABASE",
                "shop-orders-db-credentials",
                "database"
            ),
            want("ORDERS_DB_URL", "shop-orders-db-credentials", "url"),
            want("CACHE_HOST", "shop-cache-credentials", "host"),
            want("CACHE_PORT", "shop-cache-credentials", "port"),
            want("CACHE_PASSWORD", "shop-cache-credentials", "password"),
            want("CACHE_URL", "shop-cache-credentials", "url"),
        ]
    );
    // Every key an env var reads exists in the Secret the render creates.
    for (what, e) in all_env(&objects) {
        let Some(r) = e["valueFrom"].get("secretKeyRef") else {
            continue;
        };
        let secret_name = r["name"].as_str().unwrap();
        if secret_name == "payment-provider" {
            continue; // the user's own Secret
        }
        let secret = named(&objects, "Secret", secret_name);
        assert!(
            secret["stringData"]
                .get(r["key"].as_str().unwrap())
                .is_some(),
            "{what}: {e} reads a key {secret_name} lacks"
        );
    }
}

#[test]
fn database_secrets_hold_the_given_credentials() {
    let objects =
        render_all(&sample("shop").replace("  name: shop\n", "  name: shop\n  namespace: shop\n"));
    let pg = &named(&objects, "Secret", "shop-orders-db-credentials")["stringData"];
    assert_eq!(pg["password"], "pw-orders-db");
    assert_eq!(pg["username"], "app");
    assert_eq!(pg["database"], "orders_db");
    assert_eq!(pg["host"], "shop-orders-db.shop.svc");
    assert_eq!(pg["port"], "5432");
    assert_eq!(
        pg["url"],
        "postgresql://app:pw-orders-db@shop-orders-db.shop.svc:5432/orders_db"
    );
    let redis = &named(&objects, "Secret", "shop-cache-credentials")["stringData"];
    assert_eq!(
        redis.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["host", "password", "port", "url"]
    );
    assert_eq!(redis["url"], "redis://:pw-cache@shop-cache.shop.svc:6379/0");

    let objects = render_all(&sample("mysql"));
    let my = &named(&objects, "Secret", "wiki-content-credentials")["stringData"];
    assert_eq!(my["root-password"], "admin-content");
    assert_eq!(
        my["url"],
        "mysql://app:pw-content@wiki-content.default.svc:3306/content"
    );
}

#[test]
fn generated_credentials_are_32_alphanumerics_and_differ() {
    let a = Credentials::generate();
    let b = Credentials::generate();
    for s in [
        &a.password,
        &a.admin_password,
        &b.password,
        &b.admin_password,
    ] {
        assert_eq!(s.len(), 32, "{s}");
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
    }
    assert_ne!(a.password, b.password);
    assert_ne!(a.password, a.admin_password);
    assert_ne!(a.admin_password, b.admin_password);

    // `render` uses them: two renders of a database differ only in its credentials.
    let first = render::render(&sample("mysql"), ApiCapabilities::ALL).unwrap();
    let second = render::render(&sample("mysql"), ApiCapabilities::ALL).unwrap();
    assert_ne!(first, second);
    let without_secrets = |s: &str| {
        s.split("---\n")
            .filter(|doc| !doc.contains("kind: Secret"))
            .collect::<Vec<_>>()
            .join("---\n")
    };
    assert_eq!(without_secrets(&first), without_secrets(&second));
}

#[test]
fn deletion_policy_sets_the_claim_retention() {
    let objects = render_all(&sample("mysql"));
    let sts = named(&objects, "StatefulSet", "wiki-content");
    assert_eq!(
        sts["spec"]["persistentVolumeClaimRetentionPolicy"],
        serde_json::json!({"whenDeleted": "Delete", "whenScaled": "Retain"})
    );
    let claim = &sts["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(claim["resources"]["requests"]["storage"], "20Gi");
    assert_eq!(claim["storageClassName"], "standard");

    // Retain by default.
    let objects = render_all(&sample("shop"));
    for name in ["shop-orders-db", "shop-cache"] {
        assert_eq!(
            named(&objects, "StatefulSet", name)["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"],
            "Retain",
            "{name}"
        );
    }
    let cache = named(&objects, "StatefulSet", "shop-cache");
    assert_eq!(
        cache["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );
    assert!(
        cache["spec"]["volumeClaimTemplates"][0]["spec"]
            .get("storageClassName")
            .is_none()
    );
}

#[test]
fn databases_get_a_service_on_the_engine_port() {
    let objects = render_all(&sample("shop"));
    for (name, port) in [("shop-orders-db", 5432), ("shop-cache", 6379)] {
        let svc = named(&objects, "Service", name);
        assert_eq!(svc["spec"]["ports"][0]["port"], port);
        let sts = named(&objects, "StatefulSet", name);
        assert_eq!(sts["spec"]["serviceName"], name);
        assert_eq!(
            svc["spec"]["selector"],
            sts["spec"]["selector"]["matchLabels"]
        );
        assert_eq!(
            sts["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
            port
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Services, monitors and the gateway
// ---------------------------------------------------------------------------------------------

#[test]
fn services_only_for_components_with_ports() {
    let input = r#"
apiVersion: keelson.dev/v1alpha1
kind: Application
metadata: {name: jobs, namespace: jobs}
spec:
  services:
    - {name: web, image: web:1, ports: [{name: http, port: 8080}, {name: dns, port: 53, protocol: UDP}]}
    - {name: worker, image: worker:1}
"#;
    let objects = render_all(input);
    assert_eq!(names(&objects, "Deployment"), ["jobs-web", "jobs-worker"]);
    assert_eq!(names(&objects, "Service"), ["jobs-web"]);
    let svc = named(&objects, "Service", "jobs-web");
    assert_eq!(
        svc["spec"]["ports"],
        serde_json::json!([
            {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
            {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"},
        ])
    );
    // The Service selects exactly the Deployment's pods.
    let d = named(&objects, "Deployment", "jobs-web");
    assert_eq!(
        svc["spec"]["selector"],
        d["spec"]["selector"]["matchLabels"]
    );
    let pod_labels = d["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "{k}");
    }
}

#[test]
fn service_monitors_need_metrics_and_the_api() {
    let text = sample("shop");
    let objects = render_all(&text);
    // storefront, orders and inventory declare metrics; payment does not.
    assert_eq!(
        names(&objects, "ServiceMonitor"),
        ["shop-storefront", "shop-orders", "shop-inventory"]
    );
    let sm = named(&objects, "ServiceMonitor", "shop-orders");
    assert_eq!(
        sm["spec"]["endpoints"],
        serde_json::json!([{"port": "http", "path": "/metrics", "interval": "30s"}])
    );
    // It selects the service's Kubernetes Service by its labels.
    let svc_labels = named(&objects, "Service", "shop-orders")["metadata"]["labels"]
        .as_object()
        .unwrap()
        .clone();
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(svc_labels.get(k), Some(v), "{k}");
    }
    assert!(of_kind(&render_all(&sample("minimal")), "ServiceMonitor").is_empty());

    // Without the API: none built, and the skip is recorded.
    let caps = ApiCapabilities {
        service_monitors: false,
        http_routes: true,
    };
    let objects = render_with(&text, caps);
    assert!(of_kind(&objects, "ServiceMonitor").is_empty());
    assert_eq!(of_kind(&objects, "Deployment").len(), 4);

    let app: keelson::api::Application = serde_norway::from_str(&text).unwrap();
    let model = keelson::api::validate(&app).unwrap();
    let owner = Default::default();
    let children = build(&model, &owner, caps, &Default::default());
    assert!(children.service_monitors.is_empty());
    assert_eq!(children.skipped.len(), 1, "{:?}", children.skipped);
    let skipped = &children.skipped[0];
    assert_eq!(
        (skipped.kind, skipped.api),
        ("ServiceMonitor", "monitoring.coreos.com/v1")
    );
    assert_eq!(
        skipped.names,
        ["shop-storefront", "shop-orders", "shop-inventory"]
    );
    // With the API, nothing is skipped.
    let children = build(&model, &owner, ApiCapabilities::ALL, &Default::default());
    assert_eq!(children.service_monitors.len(), 3);
    assert!(children.skipped.is_empty());
}

#[test]
fn ingress_without_parent_refs() {
    let objects = render_all(&sample("shop"));
    assert!(of_kind(&objects, "HTTPRoute").is_empty());
    let ing = named(&objects, "Ingress", "shop");
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        ing["spec"]["tls"],
        serde_json::json!([{"hosts": ["shop.example.com"], "secretName": "shop-tls"}])
    );
    let paths: Vec<(String, String, String)> = ing["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["pathType"], "Prefix");
            (
                p["path"].as_str().unwrap().into(),
                p["backend"]["service"]["name"].as_str().unwrap().into(),
                p["backend"]["service"]["port"]["name"]
                    .as_str()
                    .unwrap()
                    .into(),
            )
        })
        .collect();
    let p = |a: &str, b: &str| (a.to_string(), b.to_string(), "http".to_string());
    assert_eq!(
        paths,
        [
            p("/api/orders", "shop-orders"),
            p("/api/inventory", "shop-inventory"),
            p("/api/payments", "shop-payment"),
            p("/", "shop-storefront"),
        ]
    );
    assert_eq!(ing["spec"]["rules"][0]["host"], "shop.example.com");

    // Without hosts: one rule for every host, no TLS hosts.
    let input = r#"
apiVersion: keelson.dev/v1alpha1
kind: Application
metadata: {name: a, namespace: a}
spec:
  gateway: {routes: [{path: /, service: web}]}
  services: [{name: web, image: web:1, ports: [{name: http, port: 8080}]}]
"#;
    let objects = render_all(input);
    let ing = named(&objects, "Ingress", "a");
    assert_eq!(ing["spec"]["rules"].as_array().unwrap().len(), 1);
    assert!(ing["spec"]["rules"][0].get("host").is_none());
    assert!(ing["spec"].get("tls").is_none());
    assert!(ing["spec"].get("ingressClassName").is_none());
}

#[test]
fn http_route_with_parent_refs() {
    let objects = render_all(&sample("httproute"));
    assert!(of_kind(&objects, "Ingress").is_empty());
    let route = named(&objects, "HTTPRoute", "blog");
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(
        route["spec"]["parentRefs"],
        serde_json::json!([{"name": "public", "namespace": "gateway-system", "sectionName": "https"}])
    );
    assert_eq!(
        route["spec"]["hostnames"],
        serde_json::json!(["blog.example.com"])
    );
    assert_eq!(
        route["spec"]["rules"],
        serde_json::json!([
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
             "backendRefs": [{"name": "blog-api", "port": 8000}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
             "backendRefs": [{"name": "blog-web", "port": 3000}]},
        ])
    );

    // Without the Gateway API: no route, no Ingress in its place, and the skip is recorded.
    let caps = ApiCapabilities {
        service_monitors: true,
        http_routes: false,
    };
    let objects = render_with(&sample("httproute"), caps);
    assert!(of_kind(&objects, "HTTPRoute").is_empty());
    assert!(of_kind(&objects, "Ingress").is_empty());
    let app: keelson::api::Application = serde_norway::from_str(&sample("httproute")).unwrap();
    let model = keelson::api::validate(&app).unwrap();
    let children = build(&model, &Default::default(), caps, &Default::default());
    assert_eq!(children.skipped.len(), 1);
    assert_eq!(
        (children.skipped[0].kind, children.skipped[0].api),
        ("HTTPRoute", "gateway.networking.k8s.io/v1")
    );
    assert_eq!(children.skipped[0].names, ["blog"]);
}

// ---------------------------------------------------------------------------------------------
// Order, stability and errors
// ---------------------------------------------------------------------------------------------

#[test]
fn output_is_stable_and_in_apply_order() {
    for (stem, text) in samples() {
        let first = render_all(&text);
        let second = render_all(&text);
        assert_eq!(first, second, "{stem}");
        assert_eq!(to_yaml_stream(&first), to_yaml_stream(&second), "{stem}");

        let rank = |k: &str| {
            [
                "Secret",
                "Service",
                "StatefulSet",
                "Deployment",
                "HorizontalPodAutoscaler",
                "PodDisruptionBudget",
                "ServiceMonitor",
                "Ingress",
                "HTTPRoute",
            ]
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("unexpected kind {k}"))
        };
        let ranks: Vec<usize> = first
            .iter()
            .map(|o| rank(o["kind"].as_str().unwrap()))
            .collect();
        assert!(
            ranks.is_sorted(),
            "{stem}: {:?}",
            first.iter().map(kind_name).collect::<Vec<_>>()
        );

        // Unique (kind, name).
        let mut seen = BTreeSet::new();
        for o in &first {
            assert!(seen.insert(kind_name(o)), "{stem}: {} twice", kind_name(o));
        }
    }
    // Within a kind, the spec's order.
    let objects = render_all(&sample("shop"));
    assert_eq!(
        names(&objects, "Deployment"),
        [
            "shop-storefront",
            "shop-orders",
            "shop-inventory",
            "shop-payment"
        ]
    );
    assert_eq!(
        names(&objects, "Service"),
        [
            "shop-orders-db",
            "shop-cache",
            "shop-storefront",
            "shop-orders",
            "shop-inventory",
            "shop-payment"
        ]
    );
}

#[test]
fn several_documents_render_in_order() {
    let input = format!("{}\n---\n{}", sample("minimal"), sample("httproute"));
    let objects = render_all(&input);
    let minimal = render_all(&sample("minimal"));
    let blog = render_all(&sample("httproute"));
    assert_eq!(objects, [minimal, blog].concat());
    // Empty documents are skipped.
    assert_eq!(
        render_all(&format!("---\n{}\n---\n", sample("minimal"))).len(),
        2
    );
}

#[test]
fn a_non_application_is_an_error() {
    let input = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
    let err = render_values(input, ApiCapabilities::ALL, creds).unwrap_err();
    assert!(
        matches!(err, RenderError::NotAnApplication { doc: 1, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "document 1: expected apiVersion keelson.dev/v1alpha1, kind Application; found apiVersion v1, kind ConfigMap"
    );
    // The second document is the culprit.
    let input = format!("{}---\nkind: Application\n", sample("minimal"));
    let err = render_values(&input, ApiCapabilities::ALL, creds).unwrap_err();
    assert!(
        err.to_string().starts_with("document 2:") && err.to_string().contains("apiVersion (none)"),
        "{err}"
    );
}

#[test]
fn an_application_without_a_name_is_an_error() {
    let input = "apiVersion: keelson.dev/v1alpha1\nkind: Application\nmetadata: {namespace: x}\nspec: {services: [{name: web, image: web:1}]}\n";
    let err = render_values(input, ApiCapabilities::ALL, creds).unwrap_err();
    assert_eq!(err.to_string(), "document 1: metadata.name is required");
}

#[test]
fn invalid_yaml_is_an_error() {
    let err = render_values("apiVersion: [unclosed\n", ApiCapabilities::ALL, creds).unwrap_err();
    assert!(matches!(err, RenderError::Yaml { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("not valid YAML: line "),
        "{err}"
    );
}

#[test]
fn an_invalid_spec_is_an_error_naming_the_field() {
    let input = sample("shop").replace("      image: ghcr.io/acme/orders:1.4.2\n", "");
    let err = render::render(&input, ApiCapabilities::ALL).unwrap_err();
    let RenderError::Invalid { name, source } = &err else {
        panic!("expected an invalid spec, got {err:?}")
    };
    assert_eq!(name, "shop");
    assert_eq!(source.errors.len(), 1, "{source}");
    assert_eq!(source.errors[0].field, "spec.services[1]");
    assert!(
        err.to_string().starts_with(
            "Application shop: invalid spec: spec.services[1]: \"image\" is a required property"
        ),
        "{err}"
    );

    let input = sample("shop").replace(
        "{path: /api/orders, service: orders}",
        "{path: /api/orders, service: order}",
    );
    let err = render::render(&input, ApiCapabilities::ALL).unwrap_err();
    assert!(
        err.to_string().contains(
            "spec.gateway.routes: every spec.gateway.routes[].service must name a service"
        ),
        "{err}"
    );

    // No spec at all.
    let err = render::render(
        "apiVersion: keelson.dev/v1alpha1\nkind: Application\nmetadata: {name: x}\n",
        ApiCapabilities::ALL,
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid spec: spec:"), "{err}");
}

#[test]
fn default_namespace_when_the_input_has_none() {
    let input = sample("minimal").replace("  namespace: default\n", "");
    for o in render_all(&input) {
        assert_eq!(o["metadata"]["namespace"], "default", "{}", kind_name(&o));
    }
}

/// The kubelet expands `$(VAR)` only for variables defined earlier in the container's list, so
/// the injected database variables come before the service's own `env`, which can use them.
#[test]
fn the_services_env_can_use_the_database_variables() {
    let input = r#"
apiVersion: keelson.dev/v1alpha1
kind: Application
metadata: {name: shop}
spec:
  services:
    - name: orders
      image: ghcr.io/acme/orders:1.4.2
      uses: [orders-db]
      env:
        - {name: JDBC_URL, value: "jdbc:postgresql://$(ORDERS_DB_HOST):$(ORDERS_DB_PORT)/orders"}
  databases:
    - {name: orders-db, engine: postgres}
"#;
    let objects = render_all(input);
    let env = named(&objects, "Deployment", "shop-orders")["spec"]["template"]["spec"]
        ["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    let position = |n: &str| {
        env.iter()
            .position(|e| e == n)
            .unwrap_or_else(|| panic!("{n} in {env:?}"))
    };
    assert!(position("ORDERS_DB_HOST") < position("JDBC_URL"), "{env:?}");
    assert!(position("ORDERS_DB_PORT") < position("JDBC_URL"), "{env:?}");
    assert_eq!(env.last().map(String::as_str), Some("JDBC_URL"));
}

/// Strings a YAML writer can get wrong for a YAML 1.1 reader such as kubectl's: block scalars
/// that start with a tab, words YAML 1.1 reads as booleans, numbers in its spellings, nulls,
/// indicators, surrounding and odd whitespace, long lines.
pub const ADVERSARIAL_STRINGS: &[&str] = &[
    "\n\t",
    "\n\ta",
    "\t",
    "\ta\n",
    "a\n\tb",
    " \n",
    "\n",
    "\n\n",
    "a \n b ",
    "\r\n",
    "a\rb",
    "on",
    "On",
    "ON",
    "off",
    "yes",
    "Yes",
    "no",
    "NO",
    "y",
    "Y",
    "n",
    "N",
    "true",
    "False",
    "010",
    "0o10",
    "0x1F",
    "0b101",
    "1_000",
    "1e3",
    "1.",
    ".5",
    "+1",
    "-1",
    "08",
    "1:30",
    "2024-01-01",
    "2024-01-01 10:00:00",
    ".inf",
    "-.Inf",
    ".nan",
    "~",
    "null",
    "NULL",
    "",
    " ",
    " leading",
    "trailing ",
    "a: b",
    "a:b",
    "- x",
    "-",
    "? x",
    "#x",
    "a #b",
    "'q'",
    "\"dq\"",
    "\\",
    "|",
    ">",
    "!tag",
    "&a",
    "*a",
    "%x",
    "@x",
    "`x",
    "<<",
    "=",
    "[x]",
    "{x: y}",
    ",",
    "\u{85}",
    "\u{a0}",
    "\u{2028}",
    "\u{feff}x",
    "é",
    "😀",
    "\u{7f}",
    "\u{1b}[0m",
    "\0",
    "a long line with spaces that goes well past eighty characters, so that a writer might want to fold it here",
    "a long line with spaces that goes well past eighty characters\n  and keeps its indentation \n",
];

fn adversarial_application() -> String {
    let quoted: Vec<String> = ADVERSARIAL_STRINGS
        .iter()
        // JSON leaves DEL unescaped, which YAML does not allow raw.
        .map(|s| {
            serde_json::to_string(s)
                .unwrap()
                .replace('\u{7f}', "\\u007f")
        })
        .collect();
    let env: Vec<String> = quoted
        .iter()
        .enumerate()
        .map(|(i, q)| format!("{{\"name\": \"V{i}\", \"value\": {q}}}"))
        .collect();
    let annotations: Vec<String> = quoted
        .iter()
        .enumerate()
        .map(|(i, q)| format!("\"example.com/a{i}\": {q}"))
        .collect();
    format!(
        "{{\"apiVersion\": \"keelson.dev/v1alpha1\", \"kind\": \"Application\", \"metadata\": {{\"name\": \"odd\"}},
 \"spec\": {{\"gateway\": {{\"annotations\": {{{}}}, \"routes\": [{{\"path\": \"/\", \"service\": \"web\"}}]}},
  \"services\": [{{\"name\": \"web\", \"image\": \"web:1\", \"ports\": [{{\"name\": \"http\", \"port\": 80}}],
   \"command\": [{}], \"args\": [{}], \"env\": [{}],
   \"probes\": {{\"liveness\": {{\"exec\": {{\"command\": [{}]}}}}}}}}]}}}}\n",
        annotations.join(", "),
        quoted[..64].join(", "),
        quoted.join(", "),
        env.join(", "),
        quoted[..64].join(", "),
    )
}

#[test]
fn render_output_reads_back_the_same_with_a_yaml_1_1_reader() {
    let objects = render_all(&adversarial_application());
    let text = to_yaml_stream(&objects);
    // kubectl's reader (go-yaml v2, YAML 1.1) as keelson render's own reader implements it.
    let read = keelson::render::yaml::read_documents(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.len(), objects.len());
    for (got, want) in read.iter().zip(&objects) {
        assert_eq!(got, want, "{}", kind_name(want));
    }
    // Every string made it into the Deployment, as written.
    let deployment = named(&objects, "Deployment", "odd-web");
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    for (i, s) in ADVERSARIAL_STRINGS.iter().enumerate() {
        assert_eq!(env[i]["value"], *s, "V{i}");
    }
    // No block scalars: a block scalar whose first content line starts with a tab is unreadable
    // for kubectl.
    assert!(
        !text.lines().any(|l| l.ends_with(": |")
            || l.ends_with(": |-")
            || l.ends_with(": >")
            || l.ends_with(": >-")
            || l.ends_with("- |-")),
        "{text}"
    );
}

#[test]
fn a_tab_after_a_newline_renders_readably() {
    // tests/cases/parity/23: "\n\t" was written as a block scalar that kubectl refuses.
    let path =
        repo_root().join("operator/tests/cases/parity/23-render-output-tab-block-scalar.yaml");
    let objects = render_all(&std::fs::read_to_string(path).unwrap());
    let text = to_yaml_stream(&objects);
    assert!(text.contains("value: \"\\n\\t\""), "{text}");
    let read = keelson::render::yaml::read_documents(&text).unwrap();
    assert_eq!(read, objects);
}

/// `-n` is the namespace of documents without one, as with `kubectl apply -n`; a document naming
/// another namespace is refused with kubectl's words and the fix.
#[test]
fn render_into_a_namespace_as_kubectl_apply_does() {
    let text = sample("minimal");
    assert!(!text.contains("namespace:"), "samples name no namespace");
    let objects =
        keelson::render::render_values_in(&text, Some("team-a"), ApiCapabilities::ALL, creds)
            .unwrap();
    assert!(!objects.is_empty());
    for o in &objects {
        assert_eq!(o["metadata"]["namespace"], "team-a", "{}", kind_name(o));
    }
    let default = render_all(&text);
    assert!(
        default
            .iter()
            .all(|o| o["metadata"]["namespace"] == "default")
    );
    let pinned = text.replacen("metadata:\n", "metadata:\n  namespace: team-b\n", 1);
    let same =
        keelson::render::render_values_in(&pinned, Some("team-b"), ApiCapabilities::ALL, creds);
    assert!(same.is_ok());
    let err =
        keelson::render::render_values_in(&pinned, Some("team-a"), ApiCapabilities::ALL, creds)
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("\"team-b\" does not match the namespace \"team-a\"")
            && err.contains("-n team-b"),
        "{err}"
    );
}
