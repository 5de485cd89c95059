//! Behaviour of the API server stand-in beyond single recorded exchanges: field ownership,
//! no-op applies, watches (bookmarks, resumption, 410, selectors), garbage-collection
//! cascades, the stand-in controllers, CRD lifecycle, fault injection and statistics.

mod apiserver_support;

use apiserver_support::*;
use e2e::apiserver::ServerOptions;
use serde_json::{Value, json};
use std::time::Duration;

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/rec/deployments";

fn deployment(name: &str, replicas: i64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
          "template": {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": image}]}}}})
}

fn configmap(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

fn no_controllers() -> ServerOptions {
    ServerOptions {
        controllers: false,
        ..quick_options()
    }
}

fn managers(v: &Value) -> Vec<String> {
    v["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["manager"].as_str().unwrap(),
                        e["operation"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn ssa_shared_ownership_and_removal() {
    let api = Api::with_rec(no_controllers()).await;
    let path = "/api/v1/namespaces/rec/configmaps/shared";
    let a = api
        .apply(path, "a", &configmap("shared", json!({"x": "1", "y": "2"})))
        .await;
    assert_eq!(a.status, 201);
    // b applies the same value of x: shared ownership, no conflict even without force.
    let b = api
        .send_json(
            "PATCH",
            &format!("{path}?fieldManager=b"),
            "application/apply-patch+yaml",
            &configmap("shared", json!({"x": "1"})),
        )
        .await;
    assert_eq!(b.status, 200, "{}", b.text);
    // a stops applying x and y: y goes (a owned it alone), x stays (b still owns it).
    let a2 = api
        .apply(path, "a", &configmap("shared", json!({})))
        .await
        .json();
    assert_eq!(a2["data"], json!({"x": "1"}));
    assert_eq!(managers(&a2), ["b/Apply"], "a owns nothing any more");
    // b changing x conflicts with nobody now.
    let b2 = api
        .send_json(
            "PATCH",
            &format!("{path}?fieldManager=b"),
            "application/apply-patch+yaml",
            &configmap("shared", json!({"x": "2"})),
        )
        .await;
    assert_eq!(b2.status, 200);
}

#[tokio::test]
async fn ssa_conflict_with_an_update_manager_names_it() {
    let api = Api::with_rec(no_controllers()).await;
    let path = format!("{DEPLOYMENTS}/web");
    assert_eq!(
        api.apply(&path, "keelson", &deployment("web", 2, "nginx:1.27"))
            .await
            .status,
        201
    );
    let edit = api
        .send_json(
            "PATCH",
            &format!("{path}?fieldManager=kubectl-edit"),
            "application/merge-patch+json",
            &json!({"spec": {"replicas": 5}}),
        )
        .await
        .json();
    assert_eq!(edit["spec"]["replicas"], 5);
    assert!(managers(&edit).contains(&"kubectl-edit/Update".to_string()));
    let again = api
        .send_json(
            "PATCH",
            &format!("{path}?fieldManager=keelson"),
            "application/apply-patch+yaml",
            &deployment("web", 2, "nginx:1.27"),
        )
        .await;
    assert_eq!(again.status, 409);
    let msg = again.json()["message"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with(
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1 at "
        ),
        "{msg}"
    );
    assert!(msg.ends_with(": .spec.replicas"), "{msg}");
    let forced = api
        .apply(&path, "keelson", &deployment("web", 2, "nginx:1.27"))
        .await
        .json();
    assert_eq!(forced["spec"]["replicas"], 2);
    assert_eq!(
        managers(&forced),
        ["keelson/Apply"],
        "the editor lost its only field"
    );
}

#[tokio::test]
async fn no_op_apply_emits_no_watch_event_and_counts_no_write() {
    let api = Api::with_rec(no_controllers()).await;
    let path = format!("{DEPLOYMENTS}/web");
    let created = api
        .apply(&path, "keelson", &deployment("web", 2, "nginx:1.27"))
        .await
        .json();
    api.server.reset_stats();
    let watch = api.watch(
        format!(
            "{DEPLOYMENTS}?watch=true&resourceVersion={}&timeoutSeconds=2",
            rv(&created)
        ),
        10,
        Duration::from_secs(3),
    );
    let apply = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        api.apply(&path, "keelson", &deployment("web", 2, "nginx:1.27"))
            .await
            .json()
    };
    let (lines, again) = tokio::join!(watch, apply);
    assert!(lines.is_empty(), "no event for a no-op: {lines:?}");
    assert_eq!(rv(&again), rv(&created));
    let stats = api.server.stats();
    assert_eq!(stats.writes, 0);
    assert_eq!(stats.by_verb.get("patch"), Some(&1));
    assert_eq!(stats.by_resource.get("apps/deployments"), Some(&2));
}

#[tokio::test]
async fn watch_resumes_from_history_and_follows_label_selectors() {
    let api = Api::with_rec(no_controllers()).await;
    let cms = "/api/v1/namespaces/rec/configmaps";
    let start = api.get(cms).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..3 {
        api.send_json(
            "POST",
            cms,
            "application/json",
            &configmap(&format!("c{i}"), json!({})),
        )
        .await;
    }
    // Missed events come from history when resuming from an older resourceVersion.
    let lines = api
        .watch(
            &format!("{cms}?watch=true&resourceVersion={start}&timeoutSeconds=1"),
            10,
            Duration::from_secs(3),
        )
        .await;
    let names: Vec<&str> = lines
        .iter()
        .map(|(_, l)| l["object"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c0", "c1", "c2"]);
    // With a label selector, objects entering and leaving the selection are ADDED and DELETED.
    let now = api.get(cms).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let watch = api.watch(
        format!(
            "{cms}?watch=true&resourceVersion={now}&labelSelector=team%3Dblue&timeoutSeconds=2"
        ),
        10,
        Duration::from_secs(3),
    );
    let writes = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for labels in [
            json!({"team": "blue"}),
            json!({"other": "x"}),
            json!({"team": "red"}),
        ] {
            api.send_json(
                "PATCH",
                &format!("{cms}/c1"),
                "application/merge-patch+json",
                &json!({"metadata": {"labels": labels}}),
            )
            .await;
        }
    };
    let (lines, _) = tokio::join!(watch, writes);
    let types: Vec<&str> = lines
        .iter()
        .map(|(_, l)| l["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"]);
}

#[tokio::test]
async fn watch_after_compaction_is_expired_and_relist_works() {
    let api = Api::with_rec(no_controllers()).await;
    let cms = "/api/v1/namespaces/rec/configmaps";
    let old = api.get(cms).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    api.send_json("POST", cms, "application/json", &configmap("a", json!({})))
        .await;
    api.server.compact();
    let lines = api
        .watch(
            &format!("{cms}?watch=true&resourceVersion={old}&timeoutSeconds=2"),
            10,
            Duration::from_secs(3),
        )
        .await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].1["type"], "ERROR");
    assert_eq!(lines[0].1["object"]["code"], 410);
    let list = api.get(cms).await.json();
    let fresh = list["metadata"]["resourceVersion"].as_str().unwrap();
    let ok = api
        .watch(
            &format!("{cms}?watch=true&resourceVersion={fresh}&timeoutSeconds=1"),
            10,
            Duration::from_secs(3),
        )
        .await;
    assert!(ok.is_empty());
}

#[tokio::test]
async fn gc_cascades_through_generations_and_removes_orphans_of_missing_owners() {
    let api = Api::with_rec(quick_options()).await;
    let cms = "/api/v1/namespaces/rec/configmaps";
    let owner = api
        .send_json(
            "POST",
            cms,
            "application/json",
            &configmap("root", json!({})),
        )
        .await
        .json();
    let child_of = |name: &str, parent: &Value| {
        let mut c = configmap(name, json!({}));
        c["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
            "name": parent["metadata"]["name"], "uid": parent["metadata"]["uid"]}]);
        c
    };
    let child = api
        .send_json("POST", cms, "application/json", &child_of("child", &owner))
        .await
        .json();
    api.send_json(
        "POST",
        cms,
        "application/json",
        &child_of("grandchild", &child),
    )
    .await;
    let ghost =
        json!({"metadata": {"name": "ghost", "uid": "00000000-0000-4000-a000-000000000000"}});
    api.send_json("POST", cms, "application/json", &child_of("orphan", &ghost))
        .await;
    let d = api
        .request("DELETE", &format!("{cms}/root"), None, None, None)
        .await;
    assert_eq!(d.status, 200);
    for name in ["child", "grandchild", "orphan"] {
        assert!(
            eventually(Duration::from_secs(5), || async {
                api.get(&format!("{cms}/{name}")).await.status == 404
            })
            .await,
            "{name} is garbage collected"
        );
    }
    // Dependents with another live owner lose only the dangling reference.
    let a = api
        .send_json("POST", cms, "application/json", &configmap("a", json!({})))
        .await
        .json();
    let b = api
        .send_json("POST", cms, "application/json", &configmap("b", json!({})))
        .await
        .json();
    let mut two = configmap("two", json!({}));
    two["metadata"]["ownerReferences"] = json!([
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "uid": a["metadata"]["uid"]},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "b", "uid": b["metadata"]["uid"]}]);
    api.send_json("POST", cms, "application/json", &two).await;
    api.request("DELETE", &format!("{cms}/a"), None, None, None)
        .await;
    assert!(
        eventually(Duration::from_secs(3), || async {
            let v = api.get(&format!("{cms}/two")).await.json();
            v["metadata"]["ownerReferences"].as_array().map(Vec::len) == Some(1)
        })
        .await
    );
    assert!(api.server.stats().controller_writes > 0);
}

#[tokio::test]
async fn stand_in_controllers_report_workloads_ready_or_not() {
    let api = Api::with_rec(quick_options()).await;
    let path = format!("{DEPLOYMENTS}/web");
    api.apply(&path, "keelson", &deployment("web", 3, "nginx:1.27"))
        .await;
    let ready = || async {
        let s = api.get(&path).await.json()["status"].clone();
        s["readyReplicas"] == 3
            && s["availableReplicas"] == 3
            && s["updatedReplicas"] == 3
            && s["observedGeneration"] == 1
    };
    assert!(eventually(Duration::from_secs(3), ready).await);
    let s = api.get(&path).await.json();
    let cond = |s: &Value, t: &str| {
        s["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(cond(&s, "Available"), "True");
    assert_eq!(cond(&s, "Progressing"), "True");
    let entry = s["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kube-controller-manager")
        .unwrap()
        .clone();
    assert_eq!(entry["subresource"], "status");
    assert_eq!(entry["operation"], "Update");

    api.server.set_workloads_ready(false);
    assert!(
        eventually(Duration::from_secs(3), || async {
            let s = api.get(&path).await.json();
            s["status"].get("readyReplicas").is_none() && cond(&s, "Available") == "False"
        })
        .await
    );
    // A spec change is observed (generation 2) even while not ready.
    api.apply(&path, "keelson", &deployment("web", 3, "nginx:1.28"))
        .await;
    assert!(
        eventually(Duration::from_secs(3), || async {
            api.get(&path).await.json()["status"]["observedGeneration"] == 2
        })
        .await
    );
    api.server.set_workloads_ready(true);
    assert!(
        eventually(Duration::from_secs(3), || async {
            let s = api.get(&path).await.json();
            s["status"]["availableReplicas"] == 3 && cond(&s, "Available") == "True"
        })
        .await
    );
    // Status only changes when something changed: no further writes when idle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = api.get(&path).await.json();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rv(&api.get(&path).await.json()), rv(&before));
}

fn statefulset(name: &str, when_deleted: Option<&str>) -> Value {
    let mut s = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {"replicas": 2, "serviceName": name, "selector": {"matchLabels": {"app": name}},
          "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "db", "image": "postgres:17"}]}},
          "volumeClaimTemplates": [{"metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
    if let Some(w) = when_deleted {
        s["spec"]["persistentVolumeClaimRetentionPolicy"] = json!({"whenDeleted": w});
    }
    s
}

#[tokio::test]
async fn stand_in_statefulset_controller_creates_pvcs_per_retention_policy() {
    let api = Api::with_rec(quick_options()).await;
    let sts = "/apis/apps/v1/namespaces/rec/statefulsets";
    let pvcs = "/api/v1/namespaces/rec/persistentvolumeclaims";
    let from = api.get(pvcs).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    api.apply(
        &format!("{sts}/kept"),
        "keelson",
        &statefulset("kept", None),
    )
    .await;
    api.apply(
        &format!("{sts}/owned"),
        "keelson",
        &statefulset("owned", Some("Delete")),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(3), || async {
            api.get(&format!("{pvcs}/data-owned-1")).await.status == 200
                && api.get(&format!("{pvcs}/data-kept-1")).await.status == 200
        })
        .await
    );
    let kept = api.get(&format!("{pvcs}/data-kept-0")).await.json();
    assert!(kept["metadata"].get("ownerReferences").is_none());
    // The binder binds a claim a moment after it is created, so what it was created as is read
    // from the watch history, not from a get that may come after the binding.
    let history = api
        .watch(
            format!("{pvcs}?watch=true&resourceVersion={from}&timeoutSeconds=1"),
            100,
            Duration::from_secs(3),
        )
        .await;
    let created = history
        .iter()
        .map(|(_, l)| l)
        .find(|l| l["type"] == "ADDED" && l["object"]["metadata"]["name"] == "data-kept-0")
        .unwrap_or_else(|| panic!("data-kept-0 was added: {history:?}"));
    assert_eq!(created["object"]["status"]["phase"], "Pending");
    let owned = api.get(&format!("{pvcs}/data-owned-0")).await.json();
    assert_eq!(
        owned["metadata"]["ownerReferences"][0]["kind"],
        "StatefulSet"
    );
    let s = api.get(&format!("{sts}/owned")).await.json();
    assert_eq!(s["status"]["readyReplicas"], 2);
    assert_eq!(
        s["status"]["currentRevision"],
        s["status"]["updateRevision"]
    );
    for name in ["kept", "owned"] {
        api.request("DELETE", &format!("{sts}/{name}"), None, None, None)
            .await;
    }
    assert!(
        eventually(Duration::from_secs(3), || async {
            api.get(&format!("{pvcs}/data-owned-0")).await.status == 404
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        api.get(&format!("{pvcs}/data-kept-0")).await.status,
        200,
        "Retain keeps the claim"
    );
}

/// The procedure that grows a StatefulSet's volumes: delete it with orphan propagation (claims
/// lose their owner reference, nothing is deleted), create it again; the new StatefulSet owns
/// its existing claims again per its retention policy.
#[tokio::test]
async fn a_statefulset_recreated_after_an_orphaning_delete_owns_its_claims_again() {
    let api = Api::with_rec(quick_options()).await;
    let sts = "/apis/apps/v1/namespaces/rec/statefulsets";
    let pvcs = "/api/v1/namespaces/rec/persistentvolumeclaims";
    let body = statefulset("owned", Some("Delete"));
    api.apply(&format!("{sts}/owned"), "keelson", &body).await;
    let owner_of = |claim: Value| claim["metadata"]["ownerReferences"][0]["uid"].clone();
    assert!(
        eventually(Duration::from_secs(3), || async {
            let c = api.get(&format!("{pvcs}/data-owned-0")).await.json();
            owner_of(c).is_string()
        })
        .await
    );
    let first = api.get(&format!("{sts}/owned")).await.json();
    api.request(
        "DELETE",
        &format!("{sts}/owned?propagationPolicy=Orphan"),
        None,
        None,
        None,
    )
    .await;
    assert!(
        eventually(Duration::from_secs(3), || async {
            api.get(&format!("{sts}/owned")).await.status == 404
        })
        .await
    );
    let orphaned = api.get(&format!("{pvcs}/data-owned-0")).await.json();
    assert!(
        orphaned["metadata"].get("ownerReferences").is_none(),
        "{orphaned}"
    );
    api.apply(&format!("{sts}/owned"), "keelson", &body).await;
    let second = api.get(&format!("{sts}/owned")).await.json();
    assert_ne!(first["metadata"]["uid"], second["metadata"]["uid"]);
    assert!(
        eventually(Duration::from_secs(3), || async {
            let c = api.get(&format!("{pvcs}/data-owned-0")).await.json();
            owner_of(c) == second["metadata"]["uid"]
        })
        .await,
        "the new StatefulSet owns its claim"
    );
}

#[tokio::test]
async fn stand_in_hpa_reports_min_replicas() {
    let api = Api::with_rec(quick_options()).await;
    // A real autoscaler without its target reports FailedGetScale and sets no counts: give it one.
    let web = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}});
    let web_path = "/apis/apps/v1/namespaces/rec/deployments/web";
    assert_eq!(api.apply(web_path, "keelson", &web).await.status, 201);
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 5}});
    let path = "/apis/autoscaling/v2/namespaces/rec/horizontalpodautoscalers/h";
    assert_eq!(api.apply(path, "keelson", &hpa).await.status, 201);
    assert!(
        eventually(Duration::from_secs(3), || async {
            let s = api.get(path).await.json()["status"].clone();
            s["currentReplicas"] == 2 && s["desiredReplicas"] == 2
        })
        .await
    );
}

#[tokio::test]
async fn crd_lifecycle_serves_and_stops_serving() {
    let api = Api::with_rec(quick_options()).await;
    api.replay_check("crd/create-crd.json").await;
    let widgets = "/apis/example.dev/v1alpha1/namespaces/rec/widgets";
    let w = json!({"apiVersion": "example.dev/v1alpha1", "kind": "Widget", "metadata": {"name": "a"},
        "spec": {"maxReplicas": 2, "extra": "pruned"}});
    let created = api
        .send_json("POST", widgets, "application/json", &w)
        .await
        .json();
    assert!(
        created["spec"].get("extra").is_none(),
        "unknown fields are pruned"
    );
    assert_eq!(
        api.server
            .list_objects("example.dev", "v1alpha1", "widgets", Some("rec"))
            .len(),
        1
    );
    assert_eq!(
        api.server
            .get_object("example.dev", "v1alpha1", "widgets", Some("rec"), "a")
            .unwrap()["spec"]["replicas"],
        1
    );
    let d = api
        .request(
            "DELETE",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.dev",
            None,
            None,
            None,
        )
        .await;
    assert_eq!(d.status, 200);
    assert_eq!(api.get("/apis/example.dev/v1alpha1").await.status, 404);
    assert_eq!(api.get(widgets).await.status, 404);
    assert!(
        api.server
            .list_objects("example.dev", "v1alpha1", "widgets", None)
            .is_empty()
    );
    // Installing it again serves an empty collection.
    api.replay_check("crd/create-crd.json").await;
    assert_eq!(api.get(widgets).await.json()["items"], json!([]));
}

#[tokio::test]
async fn faults_errors_conflicts_and_watch_drops() {
    let api = Api::with_rec(no_controllers()).await;
    let cms = "/api/v1/namespaces/rec/configmaps";
    api.server.faults().set_error_rate(1.0);
    let mut codes = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let r = api.get(cms).await;
        if r.status == 429 {
            assert_eq!(r.header("retry-after"), Some("1"));
            assert_eq!(r.json()["reason"], "TooManyRequests");
        } else {
            assert_eq!(r.json()["reason"], "InternalError");
        }
        codes.insert(r.status);
    }
    assert_eq!(codes.into_iter().collect::<Vec<_>>(), [429, 500]);
    assert_eq!(
        api.get("/version").await.status,
        200,
        "discovery is never faulted"
    );
    assert_eq!(api.get("/apis").await.status, 200);
    assert!(api.server.faults().injected().errors >= 40);
    api.server.faults().clear();

    api.server.faults().set_apply_conflict_rate(1.0);
    let r = api
        .apply(&format!("{cms}/x"), "keelson", &configmap("x", json!({})))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["reason"], "Conflict");
    assert_eq!(
        r.json()["details"]["causes"][0]["reason"],
        "FieldManagerConflict"
    );
    api.server.faults().set_apply_conflict_rate(0.0);
    assert_eq!(
        api.apply(&format!("{cms}/x"), "keelson", &configmap("x", json!({})))
            .await
            .status,
        201
    );

    for i in 0..5 {
        api.send_json(
            "POST",
            cms,
            "application/json",
            &configmap(&format!("w{i}"), json!({})),
        )
        .await;
    }
    api.server.faults().set_watch_drop_after(Some(2));
    let lines = api
        .watch(
            &format!("{cms}?watch=true&timeoutSeconds=5"),
            100,
            Duration::from_secs(3),
        )
        .await;
    assert!(
        lines.len() <= 6,
        "the initial events go out, then the stream ends: {}",
        lines.len()
    );
    let from = api.get(cms).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let watch = api.watch(
        format!("{cms}?watch=true&resourceVersion={from}&timeoutSeconds=5"),
        100,
        Duration::from_secs(3),
    );
    let writes = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..5 {
            api.send_json(
                "POST",
                cms,
                "application/json",
                &configmap(&format!("v{i}"), json!({})),
            )
            .await;
        }
    };
    let (lines, _) = tokio::join!(watch, writes);
    assert_eq!(lines.len(), 2, "the stream ended after two events");
    api.server.faults().clear();
}

#[tokio::test]
async fn namespace_deletion_removes_its_content() {
    let api = Api::start(quick_options()).await;
    api.send_json(
        "POST",
        "/api/v1/namespaces",
        "application/json",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}}),
    )
    .await;
    api.send_json(
        "POST",
        "/api/v1/namespaces/tmp/configmaps",
        "application/json",
        &configmap("c", json!({})),
    )
    .await;
    let d = api
        .request("DELETE", "/api/v1/namespaces/tmp", None, None, None)
        .await
        .json();
    assert_eq!(d["status"]["phase"], "Terminating");
    assert!(
        eventually(Duration::from_secs(5), || async {
            api.get("/api/v1/namespaces/tmp").await.status == 404
        })
        .await
    );
    assert!(
        api.server
            .list_objects("", "v1", "configmaps", Some("tmp"))
            .is_empty()
    );
}

#[tokio::test]
async fn generate_name_dry_run_and_delete_collection() {
    let api = Api::with_rec(no_controllers()).await;
    let cms = "/api/v1/namespaces/rec/configmaps";
    let g = api
        .send_json("POST", cms, "application/json",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-", "labels": {"k": "v"}}}))
        .await
        .json();
    let name = g["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    let dry = api
        .send_json(
            "POST",
            &format!("{cms}?dryRun=All"),
            "application/json",
            &configmap("dry", json!({})),
        )
        .await;
    assert_eq!(dry.status, 201);
    assert_eq!(api.get(&format!("{cms}/dry")).await.status, 404);
    api.send_json(
        "POST",
        cms,
        "application/json",
        &configmap("other", json!({})),
    )
    .await;
    let dc = api
        .request(
            "DELETE",
            &format!("{cms}?labelSelector=k%3Dv"),
            None,
            None,
            None,
        )
        .await;
    assert_eq!(dc.status, 200);
    let left: Vec<String> = api.get(cms).await.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["other"]);
}

/// A benchmark-shaped load: many objects and open watches. Checks that everything is
/// delivered (no timing assertions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_objects_with_open_watches() {
    let api = Api::with_rec(quick_options()).await;
    let cms = "/api/v1/namespaces/rec/configmaps";
    let from = api.get(cms).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let n = 2000usize;
    let watch_all = api.watch(
        format!("/api/v1/configmaps?watch=true&resourceVersion={from}&timeoutSeconds=60"),
        n,
        Duration::from_secs(60),
    );
    let watch_ns = api.watch(
        format!("{cms}?watch=true&resourceVersion={from}&timeoutSeconds=60"),
        n,
        Duration::from_secs(60),
    );
    let writes = async {
        for i in 0..n {
            let r = api
                .apply(
                    &format!("{cms}/c{i}"),
                    "keelson",
                    &configmap(&format!("c{i}"), json!({"i": i.to_string()})),
                )
                .await;
            assert_eq!(r.status, 201);
        }
    };
    let (a, b, _) = tokio::join!(watch_all, watch_ns, writes);
    assert_eq!(a.len(), n);
    assert_eq!(b.len(), n);
    let list = api.get(&format!("{cms}?limit=500")).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 500);
    assert_eq!(list["metadata"]["remainingItemCount"], n as u64 - 500);
}

#[tokio::test]
async fn apply_create_gets_defaults_not_zero_values() {
    let api = Api::with_rec(no_controllers()).await;
    let mut d = deployment("web", 1, "nginx:1.27");
    d["spec"].as_object_mut().unwrap().remove("replicas");
    let created = api
        .apply(&format!("{DEPLOYMENTS}/web"), "keelson", &d)
        .await
        .json();
    assert_eq!(
        created["spec"]["replicas"], 1,
        "defaulted, not the Go zero value"
    );
    assert_eq!(created["status"], json!({}));
}

#[tokio::test]
async fn metadata_only_lists_gets_and_watches() {
    let api = Api::with_rec(no_controllers()).await;
    let accept =
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
    api.apply(
        &format!("{DEPLOYMENTS}/web"),
        "keelson",
        &deployment("web", 1, "nginx:1.27"),
    )
    .await;
    let list = api
        .request("GET", DEPLOYMENTS, None, None, Some(accept))
        .await;
    assert_eq!(
        list.header("content-type"),
        Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
    );
    let list = list.json();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(list["items"][0]["metadata"]["name"], "web");
    assert!(list["items"][0].get("spec").is_none());
    let one = api
        .request(
            "GET",
            &format!("{DEPLOYMENTS}/web"),
            None,
            None,
            Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
        )
        .await
        .json();
    assert_eq!(one["kind"], "PartialObjectMetadata");
    let lines = api
        .watch_accept(
            format!("{DEPLOYMENTS}?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"),
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            10,
            Duration::from_secs(3),
        )
        .await;
    assert_eq!(lines.len(), 2);
    for (_, l) in &lines {
        assert_eq!(l["object"]["kind"], "PartialObjectMetadata");
        assert!(l["object"].get("spec").is_none());
    }
}

#[tokio::test]
async fn strategic_merge_patch_merges_by_key_and_is_refused_for_custom_resources() {
    let api = Api::with_rec(no_controllers()).await;
    let path = format!("{DEPLOYMENTS}/web");
    let mut d = deployment("web", 2, "nginx:1.27");
    d["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 8080}]);
    d["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
    api.apply(&path, "keelson", &d).await;
    let edit = json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "c", "image": "evil:latest"}]}}}});
    let r = api
        .send_json(
            "PATCH",
            &format!("{path}?fieldManager=editor"),
            "application/strategic-merge-patch+json",
            &edit,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = r.json()["spec"]["template"]["spec"]["containers"][0].clone();
    assert_eq!(c["image"], "evil:latest");
    assert_eq!(
        c["ports"][0]["containerPort"], 8080,
        "the rest of the container is kept"
    );
    assert_eq!(c["env"][0]["name"], "A");
    api.replay_check("crd/create-crd.json").await;
    api.replay_check("crd/create-widget-valid.json").await;
    let cr = api
        .send_json(
            "PATCH",
            "/apis/example.dev/v1alpha1/namespaces/rec/widgets/w1",
            "application/strategic-merge-patch+json",
            &json!({"spec": {"replicas": 2}}),
        )
        .await;
    assert_eq!(cr.status, 415);
}

#[tokio::test]
#[cfg_attr(
    not(third_party_crds),
    ignore = "needs the upstream third-party CRDs: run e2e/fetch-third-party-crds.sh and set KEELSON_THIRD_PARTY_CRDS"
)]
async fn upstream_crd_cel_rules_reject_invalid_routes() {
    let api = Api::with_rec(no_controllers()).await;
    let crd = third_party_crd("gateway.networking.k8s.io_httproutes.yaml");
    let r = api
        .send_json(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            "application/json",
            &crd,
        )
        .await;
    assert_eq!(r.status, 201);
    let path = "/apis/gateway.networking.k8s.io/v1/namespaces/rec/httproutes/r";
    let route = |filter: Value| {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"filters": [filter], "backendRefs": [{"name": "s", "port": 80}]}]}})
    };
    let bad = api
        .apply(
            path,
            "keelson",
            &route(json!({"type": "RequestHeaderModifier"})),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let cause = &bad.json()["details"]["causes"][0];
    assert_eq!(cause["field"], "spec.rules[0].filters[0]");
    assert_eq!(
        cause["message"],
        "Invalid value: filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type"
    );
    let good = api
        .apply(
            path,
            "keelson",
            &route(json!({"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "y"}]}})),
        )
        .await;
    assert_eq!(good.status, 201, "{}", good.text);
}

/// Paging (API concepts, "Retrieving large results sets in chunks"; ListMeta): each page resumes
/// after the last object of the one before, the last page has no `continue`, and
/// `remainingItemCount` is set only when no selector filters the list.
#[tokio::test]
async fn pages_resume_after_the_last_object_and_count_what_remains_only_without_a_selector() {
    let api = Api::with_rec(no_controllers()).await;
    let cms = "/api/v1/namespaces/rec/configmaps";
    for i in 0..7 {
        let mut cm = configmap(&format!("c{i}"), json!({}));
        if i != 3 {
            cm["metadata"]["labels"] = json!({"tier": "web"});
        }
        let r = api.apply(&format!("{cms}/c{i}"), "keelson", &cm).await;
        assert_eq!(r.status, 201);
    }
    let pages = |query: &'static str| {
        let api = &api;
        async move {
            let (mut pages, mut token) = (Vec::new(), None::<String>);
            loop {
                let url = match &token {
                    Some(t) => format!("{cms}?{query}&continue={t}"),
                    None => format!("{cms}?{query}"),
                };
                let list = api.get(&url).await.json();
                let names: Vec<String> = list["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
                    .collect();
                pages.push((names, list["metadata"].get("remainingItemCount").cloned()));
                token = list["metadata"]["continue"].as_str().map(str::to_string);
                if token.is_none() {
                    return pages;
                }
            }
        }
    };
    let all = pages("limit=3").await;
    let names = |p: &[(Vec<String>, Option<Value>)]| -> Vec<Vec<String>> {
        p.iter().map(|(n, _)| n.clone()).collect()
    };
    assert_eq!(
        names(&all),
        [vec!["c0", "c1", "c2"], vec!["c3", "c4", "c5"], vec!["c6"]]
    );
    let counts: Vec<Option<Value>> = all.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(counts, [Some(json!(4)), Some(json!(1)), None]);

    let web = pages("limit=3&labelSelector=tier%3Dweb").await;
    assert_eq!(
        names(&web),
        [vec!["c0", "c1", "c2"], vec!["c4", "c5", "c6"]]
    );
    assert!(web.iter().all(|(_, c)| c.is_none()), "{web:?}");
}
