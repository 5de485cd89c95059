//! Behaviour of the in-process API server that day-2 and status scenarios rely on, each as a
//! real Kubernetes 1.36 API server (with kube-controller-manager, scheduler and kubelets)
//! shows it: immutable fields with the server's own messages, owner references with at most
//! one controller, server-side apply field removal and the documented hand-over of
//! `spec.replicas`, the scale subresource, garbage collection through kube's delete options,
//! StorageClasses and volume claim expansion, and Pods whose states tests can steer.

use e2e::apiserver::{ApiServer, ImageBehaviour, ServerOptions};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Error};
use serde_json::{Value, json};
use std::time::Duration;

const NS: &str = "day2";

struct Env {
    server: ApiServer,
    client: Client,
}

impl Env {
    async fn start(opts: ServerOptions) -> Env {
        let server = ApiServer::start(opts).await.expect("server starts");
        let config = kube::Config::new(server.url().parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        ns.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
        )
        .await
        .expect("namespace");
        Env { server, client }
    }

    /// Stand-in controllers acting quickly, workloads running Pods.
    async fn quick() -> Env {
        let env = Env::start(ServerOptions {
            workload_ready_delay: Duration::from_millis(50),
            gc_delay: Duration::from_millis(100),
            ..ServerOptions::default()
        })
        .await;
        env.server.set_pods(true);
        env
    }

    /// Without stand-in controllers: nothing but the API server acts.
    async fn bare() -> Env {
        Env::start(ServerOptions {
            controllers: false,
            ..ServerOptions::default()
        })
        .await
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), NS)
    }
}

fn apply_params(manager: &str) -> PatchParams {
    PatchParams::apply(manager).force()
}

async fn apply<K>(api: &Api<K>, manager: &str, body: &Value) -> Result<K, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = body["metadata"]["name"].as_str().unwrap().to_string();
    api.patch(&name, &apply_params(manager), &Patch::Apply(body))
        .await
}

/// The API server's answer to a request that must fail.
fn status(r: Result<impl std::fmt::Debug, Error>) -> Box<kube::core::Status> {
    match r {
        Err(Error::Api(s)) => s,
        other => panic!("expected an error answer, got {other:?}"),
    }
}

fn deployment(name: &str, replicas: Option<i64>, label: &str) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": {"matchLabels": {"app": label}},
            "template": {"metadata": {"labels": {"app": label}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}});
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    d
}

fn statefulset(name: &str, storage: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": 1, "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "db", "image": "postgres:17"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"app": name}},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": storage}}}}]}})
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Polls `f` until it yields a value (20 s at most).
async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

// ---- immutable fields ----------------------------------------------------------------

#[tokio::test]
async fn statefulset_spec_outside_the_mutable_fields_is_refused() {
    let env = Env::bare().await;
    let api: Api<StatefulSet> = env.api();
    apply(&api, "keelson", &statefulset("db", "1Gi"))
        .await
        .unwrap();
    let e = status(apply(&api, "keelson", &statefulset("db", "2Gi")).await);
    assert_eq!(e.code, 422);
    assert_eq!(e.reason, "Invalid");
    assert_eq!(
        e.message,
        "StatefulSet.apps \"db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
    );
    let d = e.details.expect("details");
    assert_eq!((d.kind.as_str(), d.group.as_str()), ("StatefulSet", "apps"));
    assert_eq!(d.causes[0].reason, "FieldValueForbidden");
    assert_eq!(d.causes[0].field, "spec");
    // The allowed fields change.
    let mut ok = statefulset("db", "1Gi");
    ok["spec"]["replicas"] = json!(3);
    ok["spec"]["minReadySeconds"] = json!(5);
    ok["spec"]["revisionHistoryLimit"] = json!(3);
    ok["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    ok["spec"]["persistentVolumeClaimRetentionPolicy"] = json!({"whenDeleted": "Delete"});
    ok["spec"]["template"]["spec"]["containers"][0]["image"] = json!("postgres:18");
    let sts = apply(&api, "keelson", &ok).await.unwrap();
    assert_eq!(sts.spec.replicas, Some(3));
    // So does nothing else: serviceName and podManagementPolicy are fixed.
    let mut bad = ok.clone();
    bad["spec"]["serviceName"] = json!("other");
    assert_eq!(status(apply(&api, "keelson", &bad).await).code, 422);
    let mut bad = ok;
    bad["spec"]["podManagementPolicy"] = json!("Parallel");
    assert_eq!(status(apply(&api, "keelson", &bad).await).code, 422);
}

#[tokio::test]
async fn deployment_selector_is_immutable() {
    let env = Env::bare().await;
    let api: Api<Deployment> = env.api();
    apply(&api, "keelson", &deployment("web", Some(2), "web"))
        .await
        .unwrap();
    let e = status(apply(&api, "keelson", &deployment("web", Some(2), "other")).await);
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        r#"Deployment.apps "web" is invalid: spec.selector: Invalid value: {"matchLabels":{"app":"other"}}: field is immutable"#
    );
    let d = e.details.unwrap();
    assert_eq!(d.causes[0].reason, "FieldValueInvalid");
    assert_eq!(d.causes[0].field, "spec.selector");
    // A merge patch is refused the same way; the object is unchanged.
    let patch = json!({"spec": {"selector": {"matchLabels": {"tier": "x"}},
        "template": {"metadata": {"labels": {"tier": "x"}}}}});
    let e = status(
        api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    assert!(e.message.ends_with("field is immutable"), "{}", e.message);
    let live = api.get("web").await.unwrap();
    assert_eq!(live.spec.selector.match_labels.unwrap()["app"], "web");
}

#[tokio::test]
async fn service_cluster_ip_may_not_change_once_set() {
    let env = Env::bare().await;
    let api: Api<Service> = env.api();
    let svc = |ip: Option<&str>| {
        let mut s = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "db", "namespace": NS},
            "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432}]}});
        if let Some(ip) = ip {
            s["spec"]["clusterIP"] = json!(ip);
        }
        s
    };
    let created = apply(&api, "keelson", &svc(None)).await.unwrap();
    let ip = created.spec.unwrap().cluster_ip.unwrap();
    // Re-applying without clusterIP keeps the allocated one; the same value is accepted.
    apply(&api, "keelson", &svc(None)).await.unwrap();
    apply(&api, "keelson", &svc(Some(&ip))).await.unwrap();
    // Turning it headless is refused.
    let e = status(apply(&api, "keelson", &svc(Some("None"))).await);
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        r#"Service "db" is invalid: spec.clusterIPs[0]: Invalid value: ["None"]: may not change once set"#
    );
    assert_eq!(e.details.unwrap().causes[0].field, "spec.clusterIPs[0]");
}

async fn bound_claim(env: &Env, name: &str, size: &str) -> Api<PersistentVolumeClaim> {
    let api: Api<PersistentVolumeClaim> = env.api();
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}});
    let created = apply(&api, "keelson", &pvc).await.unwrap();
    // The default StorageClass was filled in by admission.
    assert_eq!(
        created.spec.unwrap().storage_class_name.as_deref(),
        Some("standard")
    );
    // Bind it as the volume binder would (spec.volumeName, then status).
    let patch = json!({"spec": {"volumeName": format!("pvc-{name}")}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let st = json!({"status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": size}}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
    api
}

#[tokio::test]
async fn claims_change_only_their_storage_request_and_grow_where_the_class_allows() {
    let env = Env::bare().await;
    let api = bound_claim(&env, "data", "1Gi").await;
    let set = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
    // Growing: accepted (the default class allows expansion).
    let grown = api
        .patch("data", &PatchParams::default(), &Patch::Merge(&set("2Gi")))
        .await
        .unwrap();
    assert_eq!(
        grown.spec.unwrap().resources.unwrap().requests.unwrap()["storage"].0,
        "2Gi"
    );
    // Going back down to the current capacity (1Gi) is refused.
    let e = status(
        api.patch("data", &PatchParams::default(), &Patch::Merge(&set("1Gi")))
            .await,
    );
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        "PersistentVolumeClaim \"data\" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
    );
    // Other spec fields are fixed.
    let class = json!({"spec": {"storageClassName": "fast"}});
    let e = status(
        api.patch("data", &PatchParams::default(), &Patch::Merge(&class))
            .await,
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message.starts_with("PersistentVolumeClaim \"data\" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"),
        "{}",
        e.message
    );
    // A class that does not allow expansion: growing is forbidden by admission (403).
    let classes: Api<k8s_openapi::api::storage::v1::StorageClass> = Api::all(env.client.clone());
    classes
        .patch(
            "standard",
            &PatchParams::default(),
            &Patch::Merge(json!({"allowVolumeExpansion": false})),
        )
        .await
        .unwrap();
    let e = status(
        api.patch("data", &PatchParams::default(), &Patch::Merge(&set("3Gi")))
            .await,
    );
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "persistentvolumeclaims \"data\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
    );
}

#[tokio::test]
async fn immutable_secrets_and_config_maps_keep_their_data() {
    let env = Env::bare().await;
    let secrets: Api<Secret> = env.api();
    let secret = |v: &str, immutable: bool| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": NS},
            "immutable": immutable, "stringData": {"password": v}})
    };
    apply(&secrets, "keelson", &secret("a", true))
        .await
        .unwrap();
    let e = status(apply(&secrets, "keelson", &secret("b", true)).await);
    assert_eq!(
        e.message,
        "Secret \"creds\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    let e = status(apply(&secrets, "keelson", &secret("a", false)).await);
    assert_eq!(
        e.message,
        "Secret \"creds\" is invalid: immutable: Forbidden: field is immutable when `immutable` is set"
    );
    let maps: Api<ConfigMap> = env.api();
    let cm = |v: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": NS},
            "immutable": true, "data": {"k": v}})
    };
    apply(&maps, "keelson", &cm("a")).await.unwrap();
    let e = status(apply(&maps, "keelson", &cm("b")).await);
    assert_eq!(
        e.message,
        "ConfigMap \"cfg\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    // Metadata still changes.
    let labelled = json!({"metadata": {"labels": {"x": "y"}}});
    maps.patch("cfg", &PatchParams::default(), &Patch::Merge(&labelled))
        .await
        .unwrap();
}

// ---- owner references --------------------------------------------------------------------

#[tokio::test]
async fn only_one_owner_reference_may_be_the_controller() {
    let env = Env::bare().await;
    let maps: Api<ConfigMap> = env.api();
    let owner = |name: &str, uid: &str| {
        json!({"apiVersion": "keelson.dev/v1alpha1", "kind": "Application", "name": name,
            "uid": uid, "controller": true, "blockOwnerDeletion": true})
    };
    let a = owner("shop", "11111111-1111-4111-a111-111111111111");
    let b = owner("shop-orders", "22222222-2222-4222-a222-222222222222");
    let cm = |refs: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "shop-orders-api", "namespace": NS, "ownerReferences": refs}})
    };
    apply(&maps, "keelson", &cm(json!([a.clone()])))
        .await
        .unwrap();
    // A second applier adds its controller reference (owner references merge by uid).
    let e = status(apply(&maps, "other", &cm(json!([b.clone()]))).await);
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        format!(
            "ConfigMap \"shop-orders-api\" is invalid: metadata.ownerReferences: Invalid value: [{},{}]: Only one reference can have Controller set to true. Found \"true\" in references for Application/shop and Application/shop-orders",
            r#"{"apiVersion":"keelson.dev/v1alpha1","kind":"Application","name":"shop","uid":"11111111-1111-4111-a111-111111111111","controller":true,"blockOwnerDeletion":true}"#,
            r#"{"apiVersion":"keelson.dev/v1alpha1","kind":"Application","name":"shop-orders","uid":"22222222-2222-4222-a222-222222222222","controller":true,"blockOwnerDeletion":true}"#
        )
    );
    assert_eq!(
        e.details.unwrap().causes[0].field,
        "metadata.ownerReferences"
    );
    // A create with two controllers is refused as well; a non-controller second owner is fine.
    let mut two = cm(json!([a.clone(), b.clone()]));
    two["metadata"]["name"] = json!("two");
    let two: ConfigMap = serde_json::from_value(two).unwrap();
    let e = status(maps.create(&PostParams::default(), &two).await);
    assert_eq!(e.code, 422);
    let mut b_plain = b;
    b_plain["controller"] = json!(false);
    apply(&maps, "other", &cm(json!([b_plain]))).await.unwrap();
    let refs = maps
        .get("shop-orders-api")
        .await
        .unwrap()
        .metadata
        .owner_references
        .unwrap();
    assert_eq!(refs.len(), 2);
}

#[tokio::test]
async fn owner_references_name_their_owner_fully() {
    let env = Env::bare().await;
    let maps: Api<ConfigMap> = env.api();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": NS, "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": ""}]}});
    let e = status(apply(&maps, "keelson", &cm).await);
    assert_eq!(
        e.message,
        "ConfigMap \"x\" is invalid: metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty"
    );
}

// ---- server-side apply: removal, shared ownership, hand-over, scale ------------------------

/// Who owns `spec.replicas`: `manager/operation[/subresource]` entries.
fn replicas_owners(d: &Deployment) -> Vec<String> {
    let mut out: Vec<String> = d
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        })
        .map(|m| {
            let mut s = format!(
                "{}/{}",
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default()
            );
            if let Some(sub) = m.subresource.as_deref().filter(|s| !s.is_empty()) {
                s.push('/');
                s.push_str(sub);
            }
            s
        })
        .collect();
    out.sort();
    out
}

fn replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(-1)
}

#[tokio::test]
async fn ssa_removes_a_field_its_last_manager_stops_sending_and_the_default_returns() {
    let env = Env::bare().await;
    let api: Api<Deployment> = env.api();
    let d = apply(&api, "keelson", &deployment("web", Some(4), "web"))
        .await
        .unwrap();
    assert_eq!(replicas(&d), 4);
    assert_eq!(replicas_owners(&d), ["keelson/Apply"]);
    let d = apply(&api, "keelson", &deployment("web", None, "web"))
        .await
        .unwrap();
    assert_eq!(replicas(&d), 1, "removed, then defaulted");
    assert!(replicas_owners(&d).is_empty());
    assert_eq!(d.metadata.generation, Some(2));
}

#[tokio::test]
async fn ssa_keeps_a_field_another_manager_owns_too() {
    let env = Env::bare().await;
    let api: Api<Deployment> = env.api();
    apply(&api, "keelson", &deployment("web", Some(4), "web"))
        .await
        .unwrap();
    // An update operation that changes the value takes the field over.
    let pp = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    let d = api
        .patch("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 5}})))
        .await
        .unwrap();
    assert_eq!(replicas_owners(&d), ["kubectl-edit/Update"]);
    let d = apply(&api, "keelson", &deployment("web", None, "web"))
        .await
        .unwrap();
    assert_eq!(replicas(&d), 5);
    // Applying the value another manager set shares the field.
    let d = apply(&api, "keelson", &deployment("web", Some(5), "web"))
        .await
        .unwrap();
    assert_eq!(
        replicas_owners(&d),
        ["keelson/Apply", "kubectl-edit/Update"]
    );
    // An update operation writing the value already there takes nothing: keelson keeps sole
    // ownership, and dropping the field then removes it.
    apply(&api, "keelson", &deployment("api", Some(4), "api"))
        .await
        .unwrap();
    let d = api
        .patch("api", &pp, &Patch::Merge(json!({"spec": {"replicas": 4}})))
        .await
        .unwrap();
    assert_eq!(replicas_owners(&d), ["keelson/Apply"]);
    let d = apply(&api, "keelson", &deployment("api", None, "api"))
        .await
        .unwrap();
    assert_eq!(replicas(&d), 1);
}

/// https://kubernetes.io/docs/reference/using-api/server-side-apply/#transferring-ownership
#[tokio::test]
async fn replicas_hand_over_to_an_autoscaler_as_documented() {
    let env = Env::bare().await;
    let api: Api<Deployment> = env.api();
    apply(&api, "keelson", &deployment("web", Some(4), "web"))
        .await
        .unwrap();
    // 1. A second applier states the same value, without force: shared, no conflict.
    let only_replicas = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS}, "spec": {"replicas": 4}});
    let d = api
        .patch(
            "web",
            &PatchParams::apply("handover-to-hpa"),
            &Patch::Apply(&only_replicas),
        )
        .await
        .unwrap();
    assert_eq!(
        replicas_owners(&d),
        ["handover-to-hpa/Apply", "keelson/Apply"]
    );
    // 2. The applier drops the field: the value stays.
    let d = apply(&api, "keelson", &deployment("web", None, "web"))
        .await
        .unwrap();
    assert_eq!(replicas(&d), 4);
    assert_eq!(replicas_owners(&d), ["handover-to-hpa/Apply"]);
    // 3. The autoscaler scales through the scale subresource and takes the field over.
    let hpa = PatchParams {
        field_manager: Some("kube-controller-manager".into()),
        ..Default::default()
    };
    let scale = api
        .patch_scale("web", &hpa, &Patch::Merge(json!({"spec": {"replicas": 6}})))
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(6));
    let d = api.get("web").await.unwrap();
    assert_eq!(replicas(&d), 6);
    assert_eq!(
        replicas_owners(&d),
        ["kube-controller-manager/Update/scale"]
    );
    // 4. Later applies without replicas leave the autoscaler's value alone.
    let d = apply(&api, "keelson", &deployment("web", None, "web"))
        .await
        .unwrap();
    assert_eq!(replicas(&d), 6);
    // And back to fixed replicas: a forced apply takes the field and sets exactly that count.
    let d = apply(&api, "keelson", &deployment("web", Some(3), "web"))
        .await
        .unwrap();
    assert_eq!(replicas(&d), 3);
    assert_eq!(replicas_owners(&d), ["keelson/Apply"]);
}

#[tokio::test]
async fn scale_subresource_of_deployments_and_statefulsets() {
    let env = Env::bare().await;
    let api: Api<Deployment> = env.api();
    apply(&api, "keelson", &deployment("web", Some(2), "web"))
        .await
        .unwrap();
    let s = api.get_scale("web").await.unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(2));
    assert_eq!(s.status.unwrap().selector.as_deref(), Some("app=web"));
    assert_eq!(s.metadata.name.as_deref(), Some("web"));
    let mut s = api.get_scale("web").await.unwrap();
    s.spec.as_mut().unwrap().replicas = Some(7);
    let s = api
        .replace_scale("web", &PostParams::default(), &s)
        .await
        .unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(7));
    assert_eq!(replicas(&api.get("web").await.unwrap()), 7);
    // A stale resourceVersion is a conflict; a missing object is a 404 about the parent.
    let mut stale = api.get_scale("web").await.unwrap();
    stale.metadata.resource_version = Some("1".into());
    assert_eq!(
        status(
            api.replace_scale("web", &PostParams::default(), &stale)
                .await
        )
        .code,
        409
    );
    let e = status(api.get_scale("missing").await);
    assert_eq!(e.message, "deployments.apps \"missing\" not found");
    let sts: Api<StatefulSet> = env.api();
    apply(&sts, "keelson", &statefulset("db", "1Gi"))
        .await
        .unwrap();
    let s = sts
        .patch_scale(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(3));
    assert_eq!(sts.get("db").await.unwrap().spec.replicas, Some(3));
}

// ---- garbage collection through kube's delete options -------------------------------------

async fn owner_and_dependent(env: &Env, name: &str) -> (Api<Deployment>, Api<ConfigMap>) {
    let deployments: Api<Deployment> = env.api();
    let owner = apply(&deployments, "keelson", &deployment(name, Some(1), name))
        .await
        .unwrap();
    let maps: Api<ConfigMap> = env.api();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{name}-config"), "namespace": NS, "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": name,
            "uid": owner.metadata.uid.unwrap(), "controller": true, "blockOwnerDeletion": true}]},
        "data": {"k": "v"}});
    apply(&maps, "keelson", &cm).await.unwrap();
    (deployments, maps)
}

#[tokio::test]
async fn delete_with_orphan_keeps_dependents_without_the_owner_reference() {
    let env = Env::quick().await;
    let (deployments, maps) = owner_and_dependent(&env, "orphaner").await;
    let answer = deployments
        .delete("orphaner", &DeleteParams::orphan())
        .await
        .unwrap();
    // The answer is the owner, held by the `orphan` finalizer.
    let held = answer.left().expect("the object, not a Status");
    assert_eq!(held.metadata.finalizers.unwrap(), ["orphan"]);
    eventually("the owner to go", || async {
        deployments.get_opt("orphaner").await.unwrap().is_none()
    })
    .await;
    let cm = maps.get("orphaner-config").await.unwrap();
    assert!(cm.metadata.owner_references.is_none(), "{cm:?}");
}

#[tokio::test]
async fn delete_in_background_and_foreground_collects_dependents() {
    let env = Env::quick().await;
    let (deployments, maps) = owner_and_dependent(&env, "bg").await;
    let answer = deployments
        .delete("bg", &DeleteParams::background())
        .await
        .unwrap();
    assert!(answer.is_right(), "a Status");
    eventually("the dependent to go", || async {
        maps.get_opt("bg-config").await.unwrap().is_none()
    })
    .await;
    let (deployments, maps) = owner_and_dependent(&env, "fg").await;
    let held = deployments
        .delete("fg", &DeleteParams::foreground())
        .await
        .unwrap()
        .left()
        .expect("the owner");
    assert_eq!(held.metadata.finalizers.unwrap(), ["foregroundDeletion"]);
    eventually("owner and dependent to go", || async {
        deployments.get_opt("fg").await.unwrap().is_none()
            && maps.get_opt("fg-config").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test]
async fn a_default_storage_class_exists_and_new_claims_get_it() {
    let env = Env::bare().await;
    let sc = env
        .server
        .get_object("storage.k8s.io", "v1", "storageclasses", None, "standard")
        .expect("the default StorageClass");
    assert_eq!(
        sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert_eq!(sc["allowVolumeExpansion"], true);
    let claims: Api<PersistentVolumeClaim> = env.api();
    let explicit = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "none", "namespace": NS},
        "spec": {"storageClassName": "", "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}});
    let c = apply(&claims, "keelson", &explicit).await.unwrap();
    assert_eq!(
        c.spec.unwrap().storage_class_name.as_deref(),
        Some(""),
        "an explicit empty class stays"
    );
}

// ---- Pods ----------------------------------------------------------------------------------

async fn pods(env: &Env, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = env.api();
    api.list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
}

fn ready_condition(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

#[tokio::test]
async fn deployments_run_ready_pods_through_a_replicaset() {
    let env = Env::quick().await;
    let api: Api<Deployment> = env.api();
    apply(&api, "keelson", &deployment("web", Some(2), "web"))
        .await
        .unwrap();
    eventually("two available replicas", || async {
        let d = api.get("web").await.unwrap();
        d.status.and_then(|s| s.available_replicas) == Some(2)
    })
    .await;
    let sets: Api<ReplicaSet> = env.api();
    let rs = sets.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(rs.len(), 1);
    let rs = &rs[0];
    let hash = rs.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Deployment", Some(true))
    );
    let ps = pods(&env, "app=web").await;
    assert_eq!(ps.len(), 2);
    for p in &ps {
        assert!(
            p.metadata
                .name
                .as_ref()
                .unwrap()
                .starts_with(&format!("web-{hash}-"))
        );
        assert_eq!(
            p.metadata.owner_references.as_ref().unwrap()[0].kind,
            "ReplicaSet"
        );
        assert!(
            p.spec
                .as_ref()
                .unwrap()
                .node_name
                .as_ref()
                .unwrap()
                .starts_with("node-")
        );
        assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
        assert_eq!(ready_condition(p).as_deref(), Some("True"));
    }
    let d = api.get("web").await.unwrap();
    let conds = d.status.unwrap().conditions.unwrap();
    let progressing = conds
        .iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("ReplicaSet \"web-{hash}\" has successfully progressed.").as_str())
    );
}

/// A Deployment whose one container is `container` (merged over a plain one).
fn deployment_with(name: &str, container: Value, extra_spec: Value) -> Value {
    let mut d = deployment(name, Some(1), name);
    let c = &mut d["spec"]["template"]["spec"]["containers"][0];
    for (k, v) in container.as_object().unwrap() {
        c[k] = v.clone();
    }
    for (k, v) in extra_spec.as_object().unwrap() {
        d["spec"][k] = v.clone();
    }
    d
}

/// The waiting reason and message of the first container of the first Pod matching `app=name`.
async fn waiting(env: &Env, name: &str) -> Option<(String, String)> {
    let ps = pods(env, &format!("app={name}")).await;
    let cs = ps
        .first()?
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .clone();
    let w = cs.state?.waiting?;
    Some((w.reason?, w.message.unwrap_or_default()))
}

#[tokio::test]
async fn pods_wait_with_the_kubelet_reason_for_what_a_real_kubelet_fails_on() {
    let env = Env::quick().await;
    let api: Api<Deployment> = env.api();
    // A secretKeyRef to a Secret that does not exist.
    let env_from_secret = json!({"env": [{"name": "PASSWORD", "valueFrom":
        {"secretKeyRef": {"name": "db-credentials", "key": "password"}}}]});
    apply(
        &api,
        "keelson",
        &deployment_with("cfg", env_from_secret, json!({})),
    )
    .await
    .unwrap();
    // An image from a registry that cannot resolve.
    let bad_image = json!({"image": "registry.invalid/shop/web:1.0"});
    apply(
        &api,
        "keelson",
        &deployment_with("pull", bad_image, json!({})),
    )
    .await
    .unwrap();
    // A container that exits with 3.
    let crash = json!({"command": ["sh", "-c", "exit 3"]});
    apply(&api, "keelson", &deployment_with("crash", crash, json!({})))
        .await
        .unwrap();
    let seen = until("every pod to report why it waits", || async {
        let seen = (
            waiting(&env, "cfg").await,
            waiting(&env, "pull").await,
            waiting(&env, "crash").await,
        );
        let done = matches!(&seen.1, Some((r, _)) if r == "ImagePullBackOff")
            && seen.0.is_some()
            && seen.2.is_some();
        done.then_some(seen)
    })
    .await;
    assert_eq!(
        seen.0,
        Some((
            "CreateContainerConfigError".into(),
            "secret \"db-credentials\" not found".into()
        ))
    );
    let (_, pull) = seen.1.unwrap();
    assert!(
        pull.starts_with("Back-off pulling image \"registry.invalid/shop/web:1.0\""),
        "{pull}"
    );
    assert_eq!(seen.2.as_ref().unwrap().0, "CrashLoopBackOff");
    let crash_pod = &pods(&env, "app=crash").await[0];
    let cs = &crash_pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        cs.last_state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        3
    );
    assert!(cs.restart_count >= 1);
    assert_eq!(ready_condition(crash_pod).as_deref(), Some("False"));
    // None of them is available; the Deployment says so.
    let d = api.get("cfg").await.unwrap();
    assert_eq!(d.status.unwrap().available_replicas, None);
    // The Secret appears: the container starts.
    let secrets: Api<Secret> = env.api();
    apply(
        &secrets,
        "keelson",
        &json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db-credentials", "namespace": NS},
        "stringData": {"password": "s3cret"}}),
    )
    .await
    .unwrap();
    eventually("the configured pod to run", || async {
        api.get("cfg")
            .await
            .unwrap()
            .status
            .and_then(|s| s.available_replicas)
            == Some(1)
    })
    .await;
}

#[tokio::test]
async fn pods_that_fit_no_node_stay_pending_with_the_scheduler_message() {
    let env = Env::quick().await;
    let api: Api<Deployment> = env.api();
    let huge = json!({"resources": {"requests": {"cpu": "64", "memory": "1Gi"}}});
    apply(&api, "keelson", &deployment_with("huge", huge, json!({})))
        .await
        .unwrap();
    let c = until("the pod to be unschedulable", || async {
        pods(&env, "app=huge")
            .await
            .first()
            .and_then(|p| {
                p.status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .find(|c| c.type_ == "PodScheduled")
                    .cloned()
            })
            .filter(|c| c.status == "False")
    })
    .await;
    assert_eq!(c.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(
        c.message.as_deref(),
        Some(
            "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
        )
    );
    let p = &pods(&env, "app=huge").await[0];
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    assert!(p.spec.as_ref().unwrap().node_name.is_none());
}

#[tokio::test]
async fn an_image_declared_to_run_as_root_is_refused_under_run_as_non_root() {
    let env = Env::quick().await;
    env.server
        .set_image("nginx:1.27", ImageBehaviour::RunsAsUser(0));
    let api: Api<Deployment> = env.api();
    let strict = json!({"securityContext": {"runAsNonRoot": true}});
    apply(&api, "keelson", &deployment_with("root", strict, json!({})))
        .await
        .unwrap();
    let (reason, message) =
        until("the config error", || async { waiting(&env, "root").await }).await;
    assert_eq!(reason, "CreateContainerConfigError");
    assert!(
        message.starts_with("container has runAsNonRoot and image will run as root (pod: \"root-"),
        "{message}"
    );
    // With a numeric runAsUser it starts.
    let fixed = json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 1000}});
    apply(&api, "keelson", &deployment_with("root", fixed, json!({})))
        .await
        .unwrap();
    eventually("the fixed rollout", || async {
        api.get("root")
            .await
            .unwrap()
            .status
            .and_then(|s| s.available_replicas)
            == Some(1)
    })
    .await;
}

#[tokio::test]
async fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let env = Env::quick().await;
    let api: Api<Deployment> = env.api();
    let stuck = json!({"image": "registry.invalid/shop/web:1.0"});
    apply(
        &api,
        "keelson",
        &deployment_with("stuck", stuck, json!({"progressDeadlineSeconds": 1})),
    )
    .await
    .unwrap();
    let c = until("ProgressDeadlineExceeded", || async {
        api.get("stuck").await.unwrap().status.and_then(|s| {
            s.conditions?.into_iter().find(|c| {
                c.type_.as_deref() == Some("Progressing") && c.status.as_deref() == Some("False")
            })
        })
    })
    .await;
    assert_eq!(c.reason.as_deref(), Some("ProgressDeadlineExceeded"));
    let rs = env
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        c.message.unwrap(),
        format!(
            "ReplicaSet \"{}\" has timed out progressing.",
            rs[0].metadata.name.as_ref().unwrap()
        )
    );
}

#[tokio::test]
async fn a_rollout_shows_old_and_new_replicas_until_the_new_ones_are_available() {
    let env = Env::quick().await;
    let api: Api<Deployment> = env.api();
    apply(&api, "keelson", &deployment("web", Some(4), "web"))
        .await
        .unwrap();
    eventually("four available", || async {
        api.get("web")
            .await
            .unwrap()
            .status
            .and_then(|s| s.available_replicas)
            == Some(4)
    })
    .await;
    let mut next = deployment("web", Some(4), "web");
    next["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    apply(&api, "keelson", &next).await.unwrap();
    // Observed during the rollout: fewer updated than total, or old Pods still terminating.
    let (mut mixed, mut terminating) = (false, false);
    let start = std::time::Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the rollout to complete"
        );
        let s = api.get("web").await.unwrap().status.unwrap_or_default();
        let updated = s.updated_replicas.unwrap_or(0);
        let total = s.replicas.unwrap_or(0);
        mixed |= updated > 0 && updated < total;
        terminating |= s.terminating_replicas.unwrap_or(0) > 0;
        if s.observed_generation == Some(2)
            && updated == 4
            && total == 4
            && s.available_replicas == Some(4)
            && s.terminating_replicas.unwrap_or(0) == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(mixed, "old and new replicas side by side");
    assert!(terminating, "old replicas terminating");
    let sets = env
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(sets.len(), 2);
    let old = sets.iter().find(|r| r.spec.replicas == Some(0));
    assert!(
        old.is_some(),
        "the old ReplicaSet is scaled to zero and kept"
    );
    assert_eq!(pods(&env, "app=web").await.len(), 4);
}

#[tokio::test]
async fn statefulsets_roll_pods_by_revision_and_bind_their_claims() {
    let env = Env::quick().await;
    let api: Api<StatefulSet> = env.api();
    let mut sts = statefulset("db", "1Gi");
    sts["spec"]["replicas"] = json!(2);
    apply(&api, "keelson", &sts).await.unwrap();
    eventually("two ready replicas", || async {
        api.get("db")
            .await
            .unwrap()
            .status
            .and_then(|s| s.ready_replicas)
            == Some(2)
    })
    .await;
    let s = api.get("db").await.unwrap().status.unwrap();
    assert_eq!(s.current_revision, s.update_revision);
    let claims: Api<PersistentVolumeClaim> = env.api();
    for i in 0..2 {
        let c = claims.get(&format!("data-db-{i}")).await.unwrap();
        assert_eq!(c.metadata.labels.as_ref().unwrap()["app"], "db");
        assert!(c.metadata.owner_references.is_none(), "Retain: no owner");
        let st = c.status.unwrap();
        assert_eq!(st.phase.as_deref(), Some("Bound"));
        assert_eq!(st.capacity.unwrap()["storage"].0, "1Gi");
        let p = env.api::<Pod>().get(&format!("db-{i}")).await.unwrap();
        assert_eq!(
            p.metadata.labels.as_ref().unwrap()["controller-revision-hash"],
            s.update_revision.clone().unwrap()
        );
    }
    // A template change: a new update revision, rolled out from the highest ordinal.
    let first = s.update_revision.clone().unwrap();
    sts["spec"]["template"]["spec"]["containers"][0]["image"] = json!("postgres:18");
    apply(&api, "keelson", &sts).await.unwrap();
    let mut split = false;
    let start = std::time::Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the rolling update to finish"
        );
        let s = api.get("db").await.unwrap().status.unwrap();
        split |= s.current_revision != s.update_revision;
        if s.update_revision.as_deref() != Some(first.as_str())
            && s.current_revision == s.update_revision
            && s.updated_replicas == Some(2)
            && s.ready_replicas == Some(2)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        split,
        "currentRevision lags updateRevision during the update"
    );
}

#[tokio::test]
async fn a_claim_grows_through_the_resize_conditions_while_a_pod_mounts_it() {
    let env = Env::quick().await;
    let api: Api<StatefulSet> = env.api();
    apply(&api, "keelson", &statefulset("db", "1Gi"))
        .await
        .unwrap();
    let claims: Api<PersistentVolumeClaim> = env.api();
    eventually("the claim bound and the pod ready", || async {
        let bound = claims
            .get_opt("data-db-0")
            .await
            .unwrap()
            .and_then(|c| c.status?.phase)
            == Some("Bound".into());
        bound
            && api
                .get("db")
                .await
                .unwrap()
                .status
                .and_then(|s| s.ready_replicas)
                == Some(1)
    })
    .await;
    let grow = json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}});
    claims
        .patch("data-db-0", &PatchParams::default(), &Patch::Merge(&grow))
        .await
        .unwrap();
    let mut conditions = std::collections::BTreeSet::new();
    let start = std::time::Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the new capacity"
        );
        let c = claims.get("data-db-0").await.unwrap().status.unwrap();
        for cond in c.conditions.iter().flatten() {
            conditions.insert(cond.type_.clone());
        }
        if c.capacity.unwrap()["storage"].0 == "2Gi" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(conditions.contains("Resizing"), "{conditions:?}");
    assert!(
        conditions.contains("FileSystemResizePending"),
        "{conditions:?}"
    );
    let done = claims.get("data-db-0").await.unwrap().status.unwrap();
    assert!(done.conditions.unwrap_or_default().is_empty());
    assert_eq!(done.allocated_resources.unwrap()["storage"].0, "2Gi");
}

#[tokio::test]
async fn the_autoscaler_brings_its_target_into_range_through_the_scale_subresource() {
    let env = Env::quick().await;
    let api: Api<Deployment> = env.api();
    apply(&api, "keelson", &deployment("web", None, "web"))
        .await
        .unwrap();
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> = env.api();
    apply(
        &hpas,
        "keelson",
        &json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 3, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]}}),
    )
    .await
    .unwrap();
    eventually("three replicas", || async {
        replicas(&api.get("web").await.unwrap()) == 3
    })
    .await;
    let d = api.get("web").await.unwrap();
    assert_eq!(
        replicas_owners(&d),
        ["kube-controller-manager/Update/scale"]
    );
    let s = until("the HPA status", || async {
        hpas.get("web").await.unwrap().status.filter(|s| {
            s.current_replicas == Some(3)
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "ScalingActive")
        })
    })
    .await;
    assert_eq!(s.desired_replicas, 3);
    let conds = s.conditions.unwrap();
    let active = conds.iter().find(|c| c.type_ == "ScalingActive").unwrap();
    assert_eq!(
        (active.status.as_str(), active.reason.as_deref()),
        ("False", Some("FailedGetResourceMetric"))
    );
    // Above the maximum it scales down to it.
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 9}})),
    )
    .await
    .unwrap();
    eventually("five replicas", || async {
        replicas(&api.get("web").await.unwrap()) == 5
    })
    .await;
}
