//! Replays the exchanges recorded from a Kubernetes 1.36 API server (`tests/recordings`)
//! against the in-process stand-in and compares status codes and bodies, ignoring what
//! legitimately differs between two servers (uids, resourceVersions, times, allocated IPs).
//!
//! Not replayed: `errors/401-*` and `errors/403-anonymous|sa-without-roles-*` (the stand-in has
//! no authentication or authorization), `ssa/7b-get-replicasets` (no ReplicaSets are served)
//! and the real controllers' own status texts (`kinds/*-get-after-controller`,
//! `misc/get-namespace-terminating`), which `apiserver_behaviour.rs` covers for the stand-ins.

mod apiserver_support;

use apiserver_support::*;
use e2e::apiserver::ServerOptions;
use serde_json::{Value, json};
use std::time::Duration;

fn no_controllers() -> ServerOptions {
    ServerOptions {
        controllers: false,
        ..quick_options()
    }
}

async fn install_crd_yaml(api: &Api, file: &str) {
    let crd = third_party_crd(file);
    let r = api
        .send_json(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            "application/json",
            &crd,
        )
        .await;
    assert_eq!(r.status, 201, "{file}: {}", r.text);
}

/// Namespace rec, the Widget CRD and widget w1 as recorded.
async fn with_widgets(opts: ServerOptions) -> Api {
    let api = Api::with_rec(opts).await;
    api.replay_check("crd/create-crd.json").await;
    api.replay_check("crd/create-widget-valid.json").await;
    api
}

// ---------------------------------------------------------------- discovery

#[tokio::test]
async fn discovery_version() {
    let api = Api::start(no_controllers()).await;
    let r = api.replay_check("discovery/get-version.json").await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    api.replay_check("misc/get-version-anonymous.json").await;
}

#[tokio::test]
async fn discovery_api_versions() {
    let api = Api::start(no_controllers()).await;
    let r = api.replay_check("discovery/get-api.json").await;
    assert_eq!(r.header("cache-control"), Some("no-cache, private"));
}

/// Every resource the stand-in serves is listed exactly as recorded (verbs, short names,
/// categories, storageVersionHash, status subresources).
#[tokio::test]
async fn discovery_legacy_resource_lists_match_the_recording() {
    let api = Api::start(no_controllers()).await;
    let files = [
        "discovery/get-api-v1.json",
        "discovery/get-apis-apps-v1.json",
        "discovery/get-apis-autoscaling-v2.json",
        "discovery/get-apis-policy-v1.json",
        "discovery/get-apis-networking.k8s.io-v1.json",
        "discovery/get-apis-coordination.k8s.io-v1.json",
        "discovery/get-apis-events.k8s.io-v1.json",
        "discovery/get-apis-apiextensions.k8s.io-v1.json",
    ];
    for f in files {
        let r = rec(f);
        let resp = api.replay(&r).await;
        assert_eq!(resp.status, 200, "{f}");
        assert_eq!(resp.header("content-type"), Some("application/json"), "{f}");
        assert_eq!(
            resp.header("cache-control"),
            Some("no-cache, private"),
            "{f}"
        );
        let ours = resp.json();
        for k in ["kind", "apiVersion", "groupVersion"] {
            assert_eq!(ours.get(k), r.resp.get(k), "{f}: {k}");
        }
        let recorded = r.resp["resources"].as_array().unwrap();
        let served = ours["resources"].as_array().unwrap();
        assert!(!served.is_empty(), "{f}");
        for s in served {
            let name = s["name"].as_str().unwrap();
            let want = recorded
                .iter()
                .find(|x| x["name"] == name)
                .unwrap_or_else(|| panic!("{f}: {name} is not in the recording"));
            assert_eq!(s, want, "{f}: {name}");
        }
    }
}

#[tokio::test]
#[cfg_attr(
    not(third_party_crds),
    ignore = "needs the upstream third-party CRDs: run e2e/fetch-third-party-crds.sh and set KEELSON_THIRD_PARTY_CRDS"
)]
async fn discovery_group_list_includes_crd_groups() {
    let api = Api::start(no_controllers()).await;
    api.replay(&rec("misc/create-namespace-rec.json")).await;
    // In the recorded cluster the third-party CRDs were there before the Widget CRD.
    for f in [
        "gateway.networking.k8s.io_gatewayclasses.yaml",
        "gateway.networking.k8s.io_gateways.yaml",
        "gateway.networking.k8s.io_httproutes.yaml",
        "gateway.networking.k8s.io_referencegrants.yaml",
    ] {
        install_crd_yaml(&api, f).await;
    }
    install_crd_yaml(&api, "monitoring.coreos.com_servicemonitors.yaml").await;
    api.replay_check("crd/create-crd.json").await;
    let r = rec("discovery/get-apis.json");
    let ours = api.replay(&r).await.json();
    assert_eq!(ours["kind"], "APIGroupList");
    let recorded: Vec<&Value> = r.resp["groups"].as_array().unwrap().iter().collect();
    let served = ours["groups"].as_array().unwrap();
    let mut last_pos = 0;
    for g in served {
        let name = g["name"].as_str().unwrap();
        let (pos, want) = recorded
            .iter()
            .enumerate()
            .find(|(_, x)| x["name"] == name)
            .unwrap_or_else(|| panic!("group {name} not recorded"));
        if name == "autoscaling" {
            // Only autoscaling/v2 is served.
            assert_eq!(g["preferredVersion"], want["preferredVersion"]);
        } else {
            assert_eq!(g, *want, "group {name}");
        }
        assert!(pos >= last_pos, "group {name} out of the recorded order");
        last_pos = pos;
    }
    for crd_group in [
        "example.dev",
        "monitoring.coreos.com",
        "gateway.networking.k8s.io",
    ] {
        assert!(served.iter().any(|g| g["name"] == crd_group), "{crd_group}");
    }
    // The CRD group/versions as recorded.
    // (The order of CRD resources is not meaningful; GRPCRoute is not installed here.)
    for f in [
        "discovery/get-apis-monitoring.coreos.com-v1.json",
        "discovery/get-apis-gateway.networking.k8s.io-v1.json",
        "crd/get-discovery-example.dev-v1alpha1.json",
    ] {
        let r = rec(f);
        let ours = norm(&api.replay(&r).await.json());
        let want = norm(&r.resp);
        assert_eq!(ours["groupVersion"], want["groupVersion"], "{f}");
        let served = ours["resources"].as_array().unwrap();
        assert!(!served.is_empty());
        for s in served {
            let w = want["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == s["name"])
                .unwrap_or_else(|| panic!("{f}: {} not recorded", s["name"]));
            assert_eq!(s, w, "{f}");
        }
    }
}

#[tokio::test]
async fn discovery_aggregated_matches_the_recording() {
    let api = Api::start(no_controllers()).await;
    api.replay(&rec("misc/create-namespace-rec.json")).await;
    api.replay_check("crd/create-crd.json").await;
    for (file, core) in [
        ("discovery/get-apis-aggregated-v2.json", false),
        ("discovery/get-api-aggregated-v2.json", true),
    ] {
        let r = rec(file);
        let resp = api.replay(&r).await;
        assert_eq!(resp.status, 200);
        for h in ["content-type", "cache-control", "vary"] {
            assert_eq!(resp.header(h), r.headers[h].as_str(), "{file}: {h}");
        }
        assert!(
            resp.header("etag").is_some_and(|e| e.starts_with('"')),
            "{file}: etag"
        );
        let ours = resp.json();
        assert_eq!(ours["kind"], r.resp["kind"]);
        assert_eq!(ours["apiVersion"], r.resp["apiVersion"]);
        let rec_items = r.resp["items"].as_array().unwrap();
        for item in ours["items"].as_array().unwrap() {
            let name = &item["metadata"]["name"];
            let want = rec_items
                .iter()
                .find(|x| &x["metadata"]["name"] == name || (core && x["metadata"] == json!({})))
                .unwrap_or_else(|| panic!("{file}: group {name} not recorded"));
            for v in item["versions"].as_array().unwrap() {
                assert_eq!(v["freshness"], "Current");
                let wv = want["versions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["version"] == v["version"])
                    .unwrap();
                for res in v["resources"].as_array().unwrap() {
                    let wr = wv["resources"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|x| x["resource"] == res["resource"])
                        .unwrap_or_else(|| panic!("{file}: {} not recorded", res["resource"]));
                    let mut wr = wr.clone();
                    // Scale subresources are not served.
                    if let Some(subs) = wr.get_mut("subresources").and_then(Value::as_array_mut) {
                        subs.retain(|s| s["subresource"] == "status");
                        if subs.is_empty() {
                            wr.as_object_mut().unwrap().remove("subresources");
                        }
                    }
                    assert_eq!(res, &wr, "{file}: {}", res["resource"]);
                }
            }
        }
    }
}

#[tokio::test]
async fn discovery_of_a_group_version_before_and_after_its_crd() {
    let api = Api::with_rec(no_controllers()).await;
    let r = api
        .replay_check("crd/get-discovery-example.dev-v1alpha1-before-crd.json")
        .await;
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    api.replay_check("crd/create-crd.json").await;
    api.replay_check("crd/get-discovery-example.dev-v1alpha1.json")
        .await;
}

// ---------------------------------------------------------------- crd

#[tokio::test]
async fn crd_create_then_established() {
    let api = Api::with_rec(no_controllers()).await;
    api.replay_check("crd/create-crd.json").await;
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.dev";
    assert!(
        eventually(Duration::from_secs(3), || async {
            api.get(path).await.json()["status"]["conditions"].is_array()
        })
        .await
    );
    api.replay_check("crd/get-crd-established.json").await;
}

#[tokio::test]
async fn crd_widget_create_applies_schema_defaults_and_drops_status() {
    let _api = with_widgets(no_controllers()).await;
}

#[tokio::test]
async fn crd_widget_cel_rule_on_create_and_patch() {
    let api = with_widgets(no_controllers()).await;
    api.replay_check("crd/create-widget-cel-violation.json")
        .await;
    api.replay_check("crd/patch-widget-cel-violation.json")
        .await;
}

#[tokio::test]
async fn crd_widget_schema_violation() {
    let api = with_widgets(no_controllers()).await;
    api.replay_check("crd/create-widget-schema-violation.json")
        .await;
}

#[tokio::test]
async fn crd_main_resource_writes_ignore_status() {
    let api = with_widgets(no_controllers()).await;
    let before = api
        .get("/apis/example.dev/v1alpha1/namespaces/rec/widgets/w1")
        .await
        .json();
    let p = api
        .replay_check("crd/patch-main-resource-status-ignored.json")
        .await;
    assert_eq!(rv(&p.json()), rv(&before));
    // The PUT carries the current resourceVersion, as recorded (ours has another number).
    let mut put = rec("crd/put-main-resource-status-ignored.json");
    put.body["metadata"]["resourceVersion"] = before["metadata"]["resourceVersion"].clone();
    let u = api.replay(&put).await;
    assert_eq!(u.status, 200, "{}", u.text);
    assert_json_eq(&u.json(), &put.resp, "put with status");
    assert_eq!(rv(&u.json()), rv(&before));
}

async fn widget_status_applied(api: &Api) {
    let first = api
        .replay_check("crd/apply-status-subresource.json")
        .await
        .json();
    let again = api
        .replay_check("crd/apply-status-subresource-unchanged.json")
        .await
        .json();
    assert_eq!(
        rv(&again),
        rv(&first),
        "an unchanged status apply is a no-op"
    );
    let third = api
        .replay_check("crd/apply-status-subresource-with-spec-ignored.json")
        .await
        .json();
    assert!(rv(&third) > rv(&first), "a new manager entry is a change");
    assert_eq!(third["spec"]["replicas"], 1);
    assert_eq!(third["metadata"]["generation"], 1);
}

#[tokio::test]
async fn crd_status_subresource_apply() {
    let api = with_widgets(no_controllers()).await;
    widget_status_applied(&api).await;
}

#[tokio::test]
async fn crd_generation_moves_only_on_spec_changes() {
    let api = with_widgets(no_controllers()).await;
    widget_status_applied(&api).await;
    let g0 = api
        .replay_check("crd/generation-0-get-before.json")
        .await
        .json();
    let g1 = api
        .replay_check("crd/generation-1-spec-change.json")
        .await
        .json();
    assert!(rv(&g1) > rv(&g0));
    let g2 = api
        .replay_check("crd/generation-2-metadata-only-change.json")
        .await
        .json();
    assert!(rv(&g2) > rv(&g1));
    let g3 = api
        .replay_check("crd/generation-3-status-only-change.json")
        .await
        .json();
    assert!(rv(&g3) > rv(&g2));
    let g4 = api
        .replay_check("crd/generation-4-spec-change-noop.json")
        .await
        .json();
    assert_eq!(rv(&g4), rv(&g3));
    api.replay_check("crd/generation-5-get-after.json").await;
}

#[tokio::test]
async fn crd_apply_create_list_and_delete_widgets() {
    let api = with_widgets(no_controllers()).await;
    widget_status_applied(&api).await;
    for f in [
        "crd/generation-1-spec-change.json",
        "crd/generation-2-metadata-only-change.json",
        "crd/generation-3-status-only-change.json",
    ] {
        api.replay_check(f).await;
    }
    api.replay_check("crd/apply-create-widget.json").await;
    let r = api.replay_check("crd/list-widgets.json").await;
    assert_eq!(r.json()["metadata"]["continue"], "");
    api.replay_check("crd/delete-widget.json").await;
    let gone = api
        .get("/apis/example.dev/v1alpha1/namespaces/rec/widgets/w2")
        .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn crd_delete_with_finalizer_then_remove_it() {
    let api = with_widgets(no_controllers()).await;
    let body = json!({"apiVersion": "example.dev/v1alpha1", "kind": "Widget",
        "metadata": {"name": "w-fin", "finalizers": ["example.dev/cleanup"]}, "spec": {"maxReplicas": 2}});
    let c = api
        .send_json(
            "POST",
            "/apis/example.dev/v1alpha1/namespaces/rec/widgets",
            "application/json",
            &body,
        )
        .await;
    assert_eq!(c.status, 201);
    let d = api
        .replay_check("crd/delete-widget-with-finalizer.json")
        .await
        .json();
    let p = api
        .replay_check("crd/json-patch-remove-finalizer.json")
        .await
        .json();
    assert_eq!(rv(&p), rv(&d), "the answer is the last state");
    let gone = api
        .get("/apis/example.dev/v1alpha1/namespaces/rec/widgets/w-fin")
        .await;
    assert_eq!(gone.status, 404);
}

// ---------------------------------------------------------------- ssa

async fn ssa_web(api: &Api) -> Value {
    api.replay_check("ssa/1-apply-create.json").await.json()
}

fn check_without_controller(resp: &Resp, file: &str) -> Value {
    let r = rec(file);
    assert_eq!(resp.status, r.status, "{file}: {}", resp.text);
    assert_json_eq(
        &without_controller(&resp.json()),
        &without_controller(&r.resp),
        file,
    );
    resp.json()
}

#[tokio::test]
async fn ssa_apply_create() {
    let api = Api::with_rec(no_controllers()).await;
    let created = ssa_web(&api).await;
    assert_eq!(created["metadata"]["generation"], 1);
}

#[tokio::test]
async fn ssa_identical_apply_is_a_no_op() {
    let api = Api::with_rec(quick_options()).await;
    ssa_web(&api).await;
    let path = "/apis/apps/v1/namespaces/rec/deployments/web";
    // Let the stand-in Deployment controller write status first, as in the recording.
    assert!(
        eventually(Duration::from_secs(3), || async {
            api.get(path).await.json()["status"]["observedGeneration"] == 1
        })
        .await
    );
    let before = api.get(path).await;
    check_without_controller(&before, "ssa/2a-get-before-unchanged-apply.json");
    let before = before.json();
    let after = api.replay(&rec("ssa/2b-apply-unchanged.json")).await;
    let after = check_without_controller(&after, "ssa/2b-apply-unchanged.json");
    assert_eq!(rv(&after), rv(&before));
    assert_eq!(
        after["metadata"]["generation"],
        before["metadata"]["generation"]
    );
    assert_eq!(
        after["metadata"]["managedFields"],
        before["metadata"]["managedFields"]
    );
}

#[tokio::test]
async fn ssa_field_left_out_is_removed() {
    let api = Api::with_rec(no_controllers()).await;
    ssa_web(&api).await;
    let r = api.replay(&rec("ssa/3-apply-env-var-removed.json")).await;
    let v = check_without_controller(&r, "ssa/3-apply-env-var-removed.json");
    assert_eq!(v["metadata"]["generation"], 2);
}

async fn ssa_until_force(api: &Api) {
    ssa_web(api).await;
    for f in [
        "ssa/3-apply-env-var-removed.json",
        "ssa/4-apply-conflict-without-force.json",
    ] {
        let r = api.replay(&rec(f)).await;
        check_without_controller(&r, f);
    }
    let r = api
        .replay(&rec("ssa/5-apply-conflict-with-force.json"))
        .await;
    let v = check_without_controller(&r, "ssa/5-apply-conflict-with-force.json");
    assert_eq!(v["metadata"]["generation"], 3);
}

#[tokio::test]
async fn ssa_conflicts_and_force() {
    let api = Api::with_rec(no_controllers()).await;
    ssa_until_force(&api).await;
}

#[tokio::test]
async fn ssa_conflicts_with_several_managers() {
    let api = Api::with_rec(no_controllers()).await;
    ssa_until_force(&api).await;
    api.replay_check("ssa/5b-apply-multi-conflict-without-force.json")
        .await;
}

#[tokio::test]
async fn ssa_force_reclaims_ownership_with_a_yaml_body() {
    let api = Api::with_rec(no_controllers()).await;
    ssa_until_force(&api).await;
    let r = api
        .replay(&rec("ssa/6-apply-force-reclaims-yaml-body.json"))
        .await;
    let v = check_without_controller(&r, "ssa/6-apply-force-reclaims-yaml-body.json");
    assert_eq!(v["metadata"]["generation"], 4);
    let g = api.replay(&rec("ssa/7-get-full-stored-object.json")).await;
    check_without_controller(&g, "ssa/7-get-full-stored-object.json");
}

#[tokio::test]
async fn ssa_apply_errors() {
    let api = Api::with_rec(no_controllers()).await;
    ssa_web(&api).await;
    api.replay_check("ssa/8-apply-without-fieldmanager.json")
        .await;
    api.replay_check("ssa/9-apply-name-mismatch.json").await;
}

// ---------------------------------------------------------------- kinds

async fn apply_then_unchanged(api: &Api, create: &str, unchanged: Option<&str>) {
    let c = api.replay_check(create).await.json();
    if let Some(u) = unchanged {
        let again = api.replay_check(u).await.json();
        assert_eq!(rv(&again), rv(&c), "{u}: resourceVersion must not move");
    }
}

#[tokio::test]
async fn kinds_service_defaults_and_kept_cluster_ip() {
    let api = Api::with_rec(no_controllers()).await;
    let c = api
        .replay_check("kinds/service-apply-create.json")
        .await
        .json();
    let u = api
        .replay_check("kinds/service-apply-unchanged.json")
        .await
        .json();
    assert_eq!(rv(&u), rv(&c));
    assert_eq!(u["spec"]["clusterIP"], c["spec"]["clusterIP"]);
}

#[tokio::test]
async fn kinds_statefulset_defaults() {
    let api = Api::with_rec(no_controllers()).await;
    let c = api
        .replay_check("kinds/statefulset-apply-create.json")
        .await
        .json();
    let r = api
        .replay(&rec("kinds/statefulset-apply-unchanged.json"))
        .await;
    let u = check_without_controller(&r, "kinds/statefulset-apply-unchanged.json");
    assert_eq!(rv(&u), rv(&c));
}

#[tokio::test]
async fn kinds_secret_string_data() {
    let api = Api::with_rec(no_controllers()).await;
    apply_then_unchanged(
        &api,
        "kinds/secret-apply-create.json",
        Some("kinds/secret-apply-unchanged.json"),
    )
    .await;
}

#[tokio::test]
async fn kinds_hpa_pdb_ingress() {
    let api = Api::with_rec(no_controllers()).await;
    for f in [
        "kinds/hpa-apply-create.json",
        "kinds/pdb-apply-create.json",
        "kinds/ingress-apply-create.json",
    ] {
        api.replay_check(f).await;
    }
}

#[tokio::test]
#[cfg_attr(
    not(third_party_crds),
    ignore = "needs the upstream third-party CRDs: run e2e/fetch-third-party-crds.sh and set KEELSON_THIRD_PARTY_CRDS"
)]
async fn kinds_servicemonitor_from_the_upstream_crd() {
    let api = Api::with_rec(no_controllers()).await;
    install_crd_yaml(&api, "monitoring.coreos.com_servicemonitors.yaml").await;
    api.replay_check("kinds/servicemonitor-apply-create.json")
        .await;
}

#[tokio::test]
#[cfg_attr(
    not(third_party_crds),
    ignore = "needs the upstream third-party CRDs: run e2e/fetch-third-party-crds.sh and set KEELSON_THIRD_PARTY_CRDS"
)]
async fn kinds_httproute_crd_defaults() {
    let api = Api::with_rec(no_controllers()).await;
    install_crd_yaml(&api, "gateway.networking.k8s.io_httproutes.yaml").await;
    apply_then_unchanged(
        &api,
        "kinds/httproute-apply-create.json",
        Some("kinds/httproute-apply-unchanged.json"),
    )
    .await;
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn errors_not_found() {
    let api = with_widgets(no_controllers()).await;
    for f in [
        "errors/404-get-missing-deployment.json",
        "errors/404-get-missing-widget.json",
        "errors/404-delete-missing-deployment.json",
        "errors/404-merge-patch-missing-deployment.json",
        "errors/404-put-missing-deployment.json",
        "errors/404-unknown-resource-in-known-group.json",
        "errors/404-create-in-missing-namespace.json",
        "lease/1-get-missing.json",
    ] {
        api.replay_check(f).await;
    }
}

#[tokio::test]
async fn errors_conflicts() {
    let api = Api::with_rec(no_controllers()).await;
    ssa_web(&api).await;
    for f in [
        "errors/409-create-already-exists.json",
        "errors/409-put-stale-resourceversion.json",
        "errors/409-merge-patch-stale-resourceversion.json",
        "errors/409-delete-precondition-uid-mismatch.json",
    ] {
        api.replay_check(f).await;
    }
    let r = rec("errors/409-delete-precondition-resourceversion-mismatch.json");
    let resp = api.replay(&r).await;
    assert_eq!(resp.status, 409);
    let v = resp.json();
    assert_eq!(v["reason"], "Conflict");
    assert_eq!(v["details"], r.resp["details"]);
    let re = regex::Regex::new(r"^Operation cannot be fulfilled on Deployment.apps .web.: the ResourceVersion in the precondition \(1\) does not match the ResourceVersion in record \(\d+\). The object might have been modified$").unwrap();
    assert!(
        re.is_match(v["message"].as_str().unwrap()),
        "{}",
        v["message"]
    );
}

#[tokio::test]
async fn errors_bad_requests() {
    let api = Api::with_rec(no_controllers()).await;
    ssa_web(&api).await;
    for f in [
        "errors/400-create-malformed-json.json",
        "errors/400-create-kind-mismatch.json",
        "errors/415-patch-wrong-content-type.json",
        "errors/422-create-deployment-selector-mismatch.json",
        "errors/422-apply-deployment-invalid.json",
    ] {
        api.replay_check(f).await;
    }
}

#[tokio::test]
async fn errors_create_in_terminating_namespace() {
    let api = Api::start(quick_options()).await;
    api.send_json(
        "POST",
        "/api/v1/namespaces",
        "application/json",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}),
    )
    .await;
    let held = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "finalizers": ["example.dev/hold"]}});
    assert_eq!(
        api.send_json(
            "POST",
            "/api/v1/namespaces/doomed/configmaps",
            "application/json",
            &held
        )
        .await
        .status,
        201
    );
    let d = api.replay(&rec("misc/delete-namespace.json")).await;
    assert_eq!(d.status, 200);
    assert_json_eq(
        &d.json(),
        &rec("misc/delete-namespace.json").resp,
        "misc/delete-namespace.json",
    );
    api.replay_check("errors/403-create-in-terminating-namespace.json")
        .await;
    // The namespace controller reports what holds the namespace.
    assert!(
        eventually(Duration::from_secs(3), || async {
            api.get("/api/v1/namespaces/doomed").await.json()["status"]["conditions"].is_array()
        })
        .await
    );
    api.replay_check("misc/get-namespace-terminating.json")
        .await;
    // The namespace controller deletes the content; the finalizer holds the ConfigMap.
    assert!(
        eventually(Duration::from_secs(3), || async {
            api.get("/api/v1/namespaces/doomed/configmaps/held")
                .await
                .json()["metadata"]
                .get("deletionTimestamp")
                .is_some()
        })
        .await
    );
    api.replay_check("misc/json-patch-remove-last-finalizer.json")
        .await;
    api.replay_check("misc/get-after-last-finalizer-removed.json")
        .await;
    assert!(
        eventually(Duration::from_secs(3), || async {
            api.get("/api/v1/namespaces/doomed").await.status == 404
        })
        .await,
        "the emptied namespace goes away"
    );
}

// ---------------------------------------------------------------- lists

/// Deployments api, frontend, web, worker in rec and other-ns-app in rec2, labelled as in the
/// recorded lists.
async fn with_deployments() -> Api {
    let api = Api::with_rec(no_controllers()).await;
    api.send_json(
        "POST",
        "/api/v1/namespaces",
        "application/json",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rec2"}}),
    )
    .await;
    let all = rec("list/list-all-namespaces.json");
    for item in all.resp["items"].as_array().unwrap() {
        let ns = item["metadata"]["namespace"].as_str().unwrap();
        let name = item["metadata"]["name"].as_str().unwrap();
        let mut body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": item["metadata"]["labels"]},
            "spec": item["spec"]});
        body["spec"].as_object_mut().unwrap().remove("template");
        body["spec"]["template"] = item["spec"]["template"].clone();
        let r = api
            .send_json(
                "POST",
                &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
                "application/json",
                &body,
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    api
}

fn names(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap_or(""),
                i["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

async fn check_list(api: &Api, file: &str) -> Value {
    let r = rec(file);
    let resp = api.replay(&r).await;
    assert_eq!(resp.status, r.status, "{file}: {}", resp.text);
    let v = resp.json();
    if r.status != 200 {
        assert_json_eq(&v, &r.resp, file);
        return v;
    }
    assert_eq!(v["kind"], r.resp["kind"], "{file}");
    assert_eq!(v["apiVersion"], r.resp["apiVersion"], "{file}");
    assert_eq!(names(&v), names(&r.resp), "{file}");
    let keys = |m: &Value| m.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(&v["metadata"]),
        keys(&r.resp["metadata"]),
        "{file}: list metadata"
    );
    assert_eq!(
        v["metadata"]["remainingItemCount"], r.resp["metadata"]["remainingItemCount"],
        "{file}"
    );
    for item in v["items"].as_array().unwrap() {
        assert!(
            item.get("kind").is_none() && item.get("apiVersion").is_none(),
            "{file}: built-in items carry no type"
        );
    }
    v
}

#[tokio::test]
async fn lists_label_selectors() {
    let api = with_deployments().await;
    check_list(&api, "list/list-labelselector-equality.json").await;
    check_list(&api, "list/list-labelselector-set-based.json").await;
    check_list(&api, "list/list-invalid-labelselector.json").await;
    check_list(&api, "list/list-all-namespaces.json").await;
    check_list(&api, "list/list-all-namespaces-labelselector.json").await;
}

#[tokio::test]
async fn lists_pages_share_the_first_resource_version() {
    let api = with_deployments().await;
    let p1 = check_list(&api, "list/list-limit-2-page-1.json").await;
    let token = p1["metadata"]["continue"].as_str().unwrap();
    let p2 = api
        .get(&format!(
            "/apis/apps/v1/namespaces/rec/deployments?limit=2&continue={token}"
        ))
        .await
        .json();
    let r2 = rec("list/list-limit-2-page-2.json");
    assert_eq!(names(&p2), names(&r2.resp));
    assert_eq!(
        p2["metadata"]["resourceVersion"],
        p1["metadata"]["resourceVersion"]
    );
    assert!(p2["metadata"].get("continue").is_none());
    assert!(p2["metadata"].get("remainingItemCount").is_none());
    check_list(&api, "list/list-resourceversion-0.json").await;
    check_list(&api, "list/list-invalid-continue.json").await;
}

#[tokio::test]
async fn lists_after_compaction() {
    let api = with_deployments().await;
    let p1 = api
        .get("/apis/apps/v1/namespaces/rec/deployments?limit=2")
        .await
        .json();
    let token = p1["metadata"]["continue"].as_str().unwrap().to_string();
    // Something changes after the first page, then history is compacted past it.
    api.send_json(
        "POST",
        "/api/v1/namespaces/rec/configmaps",
        "application/json",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later"}}),
    )
    .await;
    api.server.compact();
    let exact = api
        .get("/apis/apps/v1/namespaces/rec/deployments?resourceVersion=100&resourceVersionMatch=Exact")
        .await;
    assert_json_eq(
        &exact.json(),
        &rec("list/list-compacted-resourceversion-410.json").resp,
        "410 exact",
    );
    let r = rec("list/list-compacted-resourceversion-notolderthan.json");
    let n = api
        .get("/apis/apps/v1/namespaces/rec/deployments?resourceVersion=100&resourceVersionMatch=NotOlderThan&limit=1")
        .await;
    assert_eq!(n.status, 200);
    assert_eq!(names(&n.json()), names(&r.resp));
    assert_eq!(n.json()["metadata"]["remainingItemCount"], 3);
    let expired = api
        .get(&format!(
            "/apis/apps/v1/namespaces/rec/deployments?limit=2&continue={token}"
        ))
        .await;
    assert_eq!(expired.status, 410);
    assert_json_eq(
        &expired.json(),
        &rec("list/list-continue-token-expired-410.json").resp,
        "expired continue",
    );
    let fresh = expired.json()["metadata"]["continue"]
        .as_str()
        .unwrap()
        .to_string();
    let rest = api
        .get(&format!(
            "/apis/apps/v1/namespaces/rec/deployments?limit=2&continue={fresh}"
        ))
        .await;
    assert_eq!(names(&rest.json()), ["rec/web", "rec/worker"]);
}

// ---------------------------------------------------------------- watch

fn line_types(lines: &[(Duration, Value)]) -> Vec<String> {
    lines
        .iter()
        .map(|(_, l)| l["type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn watch_streaming_list_and_resource_version_zero() {
    let api = Api::with_rec(no_controllers()).await;
    ssa_web(&api).await;
    for (file, query) in [
        (
            "watch/streaming-list-deployments.json",
            "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2",
        ),
        (
            "watch/watch-resourceversion-0.json",
            "watch=true&allowWatchBookmarks=true&resourceVersion=0&timeoutSeconds=2",
        ),
        (
            "watch/watch-single-object-fieldselector.json",
            "watch=true&fieldSelector=metadata.name%3Dweb&allowWatchBookmarks=true&resourceVersion=0&timeoutSeconds=2",
        ),
    ] {
        let lines = api
            .watch(
                &format!("/apis/apps/v1/namespaces/rec/deployments?{query}"),
                10,
                Duration::from_secs(4),
            )
            .await;
        let recorded: Vec<Value> = rec(file)
            .resp
            .as_str()
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), recorded.len(), "{file}");
        assert_eq!(lines[0].1["type"], "ADDED");
        assert_eq!(lines[0].1["object"]["metadata"]["name"], "web");
        assert_eq!(lines[0].1["object"]["kind"], "Deployment");
        let bm = &lines[1].1;
        assert_json_eq(bm, &recorded[1], file);
        assert!(rv(&bm["object"]) >= rv(&lines[0].1["object"]));
        // The stream ends at timeoutSeconds.
        assert!(lines.last().unwrap().0 < Duration::from_secs(3));
    }
}

#[tokio::test]
async fn watch_streaming_list_of_custom_resources() {
    let api = with_widgets(no_controllers()).await;
    api.replay_check("crd/apply-create-widget.json").await;
    let lines = api
        .watch(
            "/apis/example.dev/v1alpha1/namespaces/rec/widgets?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
            10,
            Duration::from_secs(3),
        )
        .await;
    let recorded: Vec<Value> = rec("watch/streaming-list-widgets.json")
        .resp
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(line_types(&lines), ["ADDED", "ADDED", "BOOKMARK"]);
    assert_eq!(lines[0].1["object"]["apiVersion"], "example.dev/v1alpha1");
    assert_json_eq(&lines[2].1, &recorded[2], "widget bookmark");
}

#[tokio::test]
async fn watch_from_a_too_old_resource_version() {
    let api = Api::with_rec(no_controllers()).await;
    for (file, from) in [
        ("watch/watch-too-old-resourceversion.json", 1),
        ("watch/watch-compacted-resourceversion.json", 2),
    ] {
        if from == 2 {
            api.server.compact();
        }
        let lines = api
            .watch(&format!("/apis/apps/v1/namespaces/rec/deployments?watch=true&allowWatchBookmarks=true&resourceVersion={from}&timeoutSeconds=3"), 10, Duration::from_secs(5))
            .await;
        assert_eq!(lines.len(), 1, "{file}");
        assert!(
            lines[0].0 < Duration::from_secs(1),
            "{file}: the stream ends at once"
        );
        let recorded: Value =
            serde_json::from_str(rec(file).resp.as_str().unwrap().trim()).unwrap();
        let mut ours = lines[0].1.clone();
        let msg = ours["object"]["message"].as_str().unwrap().to_string();
        assert!(
            msg.starts_with(&format!("too old resource version: {from} (")),
            "{msg}"
        );
        ours["object"]["message"] = recorded["object"]["message"].clone();
        assert_json_eq(&ours, &recorded, file);
    }
}

#[tokio::test]
async fn watch_events_then_bookmark_before_the_timeout() {
    let api = Api::with_rec(quick_options()).await;
    let list = api
        .get("/apis/apps/v1/namespaces/rec/deployments")
        .await
        .json();
    let from = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let watcher = {
        let path = format!(
            "/apis/apps/v1/namespaces/rec/deployments?watch=true&allowWatchBookmarks=true&resourceVersion={from}&timeoutSeconds=10"
        );
        let api = &api;
        async move { api.watch(&path, 100, Duration::from_secs(12)).await }
    };
    let writer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "watched"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "watched"}},
              "template": {"metadata": {"labels": {"app": "watched"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}});
        api.send_json(
            "POST",
            "/apis/apps/v1/namespaces/rec/deployments",
            "application/json",
            &body,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        api.send_json(
            "PATCH",
            "/apis/apps/v1/namespaces/rec/deployments/watched",
            "application/merge-patch+json",
            &json!({"spec": {"replicas": 2}}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        api.request(
            "DELETE",
            "/apis/apps/v1/namespaces/rec/deployments/watched",
            None,
            None,
            None,
        )
        .await;
    };
    let (lines, _) = tokio::join!(watcher, writer);
    let types = line_types(&lines);
    assert_eq!(
        types.first().map(String::as_str),
        Some("ADDED"),
        "{types:?}"
    );
    assert!(
        types.iter().filter(|t| *t == "MODIFIED").count() >= 2,
        "spec patch and controller status: {types:?}"
    );
    let del = lines
        .iter()
        .position(|(_, l)| l["type"] == "DELETED")
        .expect("DELETED");
    let deleted = &lines[del].1["object"];
    assert_eq!(
        deleted["spec"]["replicas"], 2,
        "DELETED carries the last state"
    );
    let (at, bm) = lines.last().unwrap();
    assert_eq!(bm["type"], "BOOKMARK");
    assert!(
        *at > Duration::from_secs(7) && *at < Duration::from_secs(10),
        "bookmark about 2 s before the timeout: {at:?}"
    );
    let recorded: Vec<Value> = rec("watch/watch-deployments-bookmarks.json")
        .resp
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_json_eq(bm, recorded.last().unwrap(), "bookmark");
    // Events carry increasing resourceVersions, all newer than the list.
    let rvs: Vec<u64> = lines.iter().map(|(_, l)| rv(&l["object"])).collect();
    assert!(rvs.windows(2).all(|w| w[0] <= w[1]), "{rvs:?}");
    assert!(rvs[0] > from.parse::<u64>().unwrap());
}

// ---------------------------------------------------------------- gc

async fn gc_pair(api: &Api, owner: &str, child: &str) {
    api.replay_check(owner).await;
    api.replay_check(child).await;
}

#[tokio::test]
async fn gc_background() {
    let api = Api::with_rec(quick_options()).await;
    gc_pair(
        &api,
        "gc/background-1-create-owner.json",
        "gc/background-2-create-dependent-configmap.json",
    )
    .await;
    api.replay_check("gc/background-3-delete-owner.json").await;
    assert!(
        eventually(Duration::from_secs(3), || async {
            api.get("/api/v1/namespaces/rec/configmaps/gc-child-bg")
                .await
                .status
                == 404
        })
        .await
    );
}

#[tokio::test]
async fn gc_foreground() {
    let api = Api::with_rec(no_controllers()).await;
    gc_pair(
        &api,
        "gc/foreground-1-create-owner.json",
        "gc/foreground-2-create-dependent-configmap.json",
    )
    .await;
    drop(api);
    // Replayed without the Deployment controller so the owner matches the recording
    // without its status; the garbage collector runs in the second server below.
    let api = Api::with_rec(quick_options()).await;
    gc_pair(
        &api,
        "gc/foreground-1-create-owner.json",
        "gc/foreground-2-create-dependent-configmap.json",
    )
    .await;
    let r = rec("gc/foreground-3-delete-owner.json");
    let resp = api.replay(&r).await;
    check_without_controller(&resp, "gc/foreground-3-delete-owner.json");
    let v = resp.json();
    assert_eq!(v["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    assert_eq!(v["metadata"]["generation"], 2);
    assert!(
        eventually(Duration::from_secs(3), || async {
            api.get("/api/v1/namespaces/rec/configmaps/gc-child-fg")
                .await
                .status
                == 404
                && api
                    .get("/apis/apps/v1/namespaces/rec/deployments/gc-owner-fg")
                    .await
                    .status
                    == 404
        })
        .await
    );
}

#[tokio::test]
async fn gc_foreground_held_by_a_dependent_finalizer() {
    let api = Api::with_rec(quick_options()).await;
    let owner = rec("gc/foreground-held-2-delete-owner.json");
    let mut create = rec("gc/foreground-1-create-owner.json");
    create.body["metadata"]["name"] = json!("gc-owner-fgh");
    create.body["spec"]["selector"]["matchLabels"]["app"] = json!("gc-owner-fgh");
    create.body["spec"]["template"]["metadata"]["labels"]["app"] = json!("gc-owner-fgh");
    create.resp = json!({"metadata": {"uid": owner.resp["metadata"]["uid"]}});
    assert_eq!(api.replay(&create).await.status, 201);
    api.replay_check("gc/foreground-held-1-create-dependent-with-finalizer.json")
        .await;
    let resp = api.replay(&owner).await;
    check_without_controller(&resp, "gc/foreground-held-2-delete-owner.json");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let o = api
        .replay(&rec("gc/foreground-held-3-get-owner-while-blocked.json"))
        .await;
    check_without_controller(&o, "gc/foreground-held-3-get-owner-while-blocked.json");
    api.replay_check("gc/foreground-held-4-get-dependent-while-blocked.json")
        .await;
    // Removing the dependent's finalizer lets both go.
    let p = api
        .send_json(
            "PATCH",
            "/api/v1/namespaces/rec/configmaps/gc-child-fgh",
            "application/json-patch+json",
            &json!([{"op": "remove", "path": "/metadata/finalizers/0"}]),
        )
        .await;
    assert_eq!(p.status, 200);
    assert!(
        eventually(Duration::from_secs(3), || async {
            api.get("/apis/apps/v1/namespaces/rec/deployments/gc-owner-fgh")
                .await
                .status
                == 404
        })
        .await
    );
}

#[tokio::test]
async fn gc_orphan() {
    let api = Api::with_rec(quick_options()).await;
    gc_pair(
        &api,
        "gc/orphan-1-create-owner.json",
        "gc/orphan-2-create-dependent-configmap.json",
    )
    .await;
    let resp = api.replay(&rec("gc/orphan-3-delete-owner.json")).await;
    check_without_controller(&resp, "gc/orphan-3-delete-owner.json");
    assert!(
        eventually(Duration::from_secs(3), || async {
            api.get("/apis/apps/v1/namespaces/rec/deployments/gc-owner-or")
                .await
                .status
                == 404
        })
        .await
    );
    api.replay_check("gc/orphan-4-get-dependent-after.json")
        .await;
}

// ---------------------------------------------------------------- events

#[tokio::test]
async fn events_create_validate_patch_and_read_as_core() {
    let api = Api::with_rec(no_controllers()).await;
    api.replay_check("events/1-create-event.json").await;
    for f in [
        "events/2-create-event-invalid.json",
        "events/2b-create-event-invalid-with-eventtime.json",
        "events/2c-create-event-eventtime-milliseconds.json",
        "events/3-patch-event-series.json",
        "events/4-get-as-core-v1-event.json",
    ] {
        api.replay_check(f).await;
    }
    let r = rec("events/5-list-fieldselector-regarding.json");
    let resp = api.replay(&r).await;
    assert_eq!(resp.status, 200);
    let v = resp.json();
    assert_eq!(v["kind"], "EventList");
    assert_eq!(names(&v), ["rec/web.18a2b3c4d5e6f701"]);
    assert_json_eq(&v["items"][0], &r.resp["items"][0], "listed event");
}

// ---------------------------------------------------------------- leases

#[tokio::test]
async fn leases_leader_election_sequence() {
    let api = Api::with_rec(no_controllers()).await;
    api.replay_check("lease/1-get-missing.json").await;
    let created = api.replay_check("lease/2-create.json").await.json();
    api.replay_check("lease/3-create-race-already-exists.json")
        .await;
    // The recorded resourceVersion preconditions refer to the recorded server's numbers.
    let mut renew = rec("lease/4-renew-put.json");
    renew.body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
    let renewed = api.replay(&renew).await;
    assert_eq!(renewed.status, 200);
    assert_json_eq(&renewed.json(), &renew.resp, "renew");
    let mut stale = rec("lease/5-takeover-put-stale-conflict.json");
    stale.body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
    let s = api.replay(&stale).await;
    assert_eq!(s.status, 409);
    assert_json_eq(&s.json(), &stale.resp, "stale takeover");
    for f in [
        "lease/6-put-microtime-wrong-precision.json",
        "lease/7-put-microtime-no-fraction.json",
    ] {
        let mut r = rec(f);
        r.body["metadata"]["resourceVersion"] =
            renewed.json()["metadata"]["resourceVersion"].clone();
        let resp = api.replay(&r).await;
        assert_eq!(resp.status, 400, "{f}");
        assert_json_eq(&resp.json(), &r.resp, f);
    }
    let mut take = rec("lease/8-takeover-put.json");
    take.body["metadata"]["resourceVersion"] =
        renewed.json()["metadata"]["resourceVersion"].clone();
    let taken = api.replay(&take).await;
    assert_eq!(taken.status, 200);
    assert_json_eq(&taken.json(), &take.resp, "takeover");
    let mut release = rec("lease/9-release-merge-patch.json");
    release.body["metadata"]["resourceVersion"] =
        taken.json()["metadata"]["resourceVersion"].clone();
    let released = api.replay(&release).await;
    assert_eq!(released.status, 200);
    assert_json_eq(&released.json(), &release.resp, "release");
    let mut acquire = rec("lease/10-apply-acquire-with-resourceversion.json");
    acquire.body["metadata"]["resourceVersion"] =
        released.json()["metadata"]["resourceVersion"].clone();
    let acquired = api.replay(&acquire).await;
    assert_eq!(acquired.status, 200, "{}", acquired.text);
    assert_json_eq(&acquired.json(), &acquire.resp, "apply acquire");
    let mut stale_apply = rec("lease/11-apply-with-stale-resourceversion.json");
    stale_apply.body["metadata"]["resourceVersion"] =
        released.json()["metadata"]["resourceVersion"].clone();
    let sa = api.replay(&stale_apply).await;
    assert_eq!(sa.status, 409);
    assert_json_eq(&sa.json(), &stale_apply.resp, "stale apply");
}

// ---------------------------------------------------------------- misc

#[tokio::test]
async fn misc_namespace_and_service_account() {
    let api = Api::with_rec(no_controllers()).await;
    let ns = api.get("/api/v1/namespaces/rec").await.json();
    assert_json_eq(
        &ns,
        &rec("misc/create-namespace-rec.json").resp,
        "namespace rec",
    );
    api.replay_check("misc/create-serviceaccount-no-roles.json")
        .await;
}

#[tokio::test]
async fn misc_delete_answers() {
    let api = Api::with_rec(no_controllers()).await;
    for (name, fins) in [
        ("to-delete", json!(null)),
        ("to-delete-fin", json!(["example.dev/hold"])),
    ] {
        let mut md = json!({"name": name});
        if !fins.is_null() {
            md["finalizers"] = fins;
        }
        let c = api.send_json("POST", "/api/v1/namespaces/rec/configmaps", "application/json",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": {"k": "v"}})).await;
        assert_eq!(c.status, 201);
    }
    api.replay_check("misc/delete-configmap.json").await;
    let first = api
        .replay_check("misc/delete-configmap-with-finalizer.json")
        .await
        .json();
    let again = api
        .replay_check("misc/delete-configmap-with-finalizer-again.json")
        .await
        .json();
    assert_eq!(rv(&first), rv(&again));
}
