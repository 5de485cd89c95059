//! RBAC: every request the operator makes over a whole lifecycle is one that `keelson rbac` (and
//! so the Helm chart, whose tests compare against it) grants, and every grant is used.

use std::collections::BTreeSet;

use e2e::harness::{Env, EnvOptions, OperatorOptions, converge_timeout, wait_for};
use keelson::controller::rbac::rules_with_place;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

/// A server-side apply that creates its object is authorized as `create` too, though the
/// request is a PATCH.
fn authorization_only(grant: &str) -> bool {
    grant.starts_with("create ")
        && ![
            "create secrets",
            "create events.k8s.io/events",
            "create coordination.k8s.io/leases",
        ]
        .contains(&grant)
}

fn granted() -> BTreeSet<String> {
    rules_with_place()
        .into_iter()
        .flat_map(|(rule, _)| {
            let group = rule.api_groups[0].clone();
            let resource = rule.resources[0].clone();
            rule.verbs.into_iter().map(move |verb| {
                if group.is_empty() {
                    format!("{verb} {resource}")
                } else {
                    format!("{verb} {group}/{resource}")
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    real_cluster,
    ignore = "counts the operator's requests, which only the in-process API server can do"
)]
async fn the_operator_uses_exactly_what_rbac_grants() {
    let env = Env::start("e2e-rbac", EnvOptions::default()).await.unwrap();
    let server = env
        .server
        .clone()
        .expect("requests can only be counted by the in-process API server");
    let op = env.start_operator(OperatorOptions {
        lease: Some(("keelson-leader".into(), "rbac-test".into())),
        ..OperatorOptions::default()
    });
    // A lifecycle: create, drift, a change, prune, an invalid edit, deletion.
    let mut app = env.sample("shop.yaml").unwrap();
    // The cache goes with its data: its Secret is owned, and pruned when the cache is removed.
    app["spec"]["databases"][1]["deletionPolicy"] = json!("Delete");
    env.apply_app(&app).await.unwrap();
    env.wait_condition("shop", "Ready", "True", converge_timeout(false))
        .await
        .unwrap();
    // The same drift twice: the second repair's Event repeats the first one, as its series.
    let deployments = env.dynamic("apps", "v1", "Deployment", "deployments");
    for _ in 0..2 {
        deployments
            .patch(
                "shop-payment",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"replicas": 7}})),
            )
            .await
            .unwrap();
        wait_for(converge_timeout(false), || async {
            (deployments.get("shop-payment").await.ok()?.data["spec"]["replicas"] == 2)
                .then_some(())
        })
        .await
        .unwrap();
    }
    let used = |request: &'static str| {
        let server = server.clone();
        move || {
            let server = server.clone();
            async move {
                let stats = server.stats();
                let agent = stats.by_agent.get(keelson::runtime::USER_AGENT)?;
                agent.contains_key(request).then_some(())
            }
        }
    };
    wait_for(converge_timeout(false), used("patch events.k8s.io/events"))
        .await
        .expect("the repeated Event is counted in its series");
    // A rollout that stays unready past the grace period: its pods are listed to say why.
    server.set_workloads_ready(false);
    app["spec"]["services"][0]["env"] = json!([{"name": "ROLLOUT", "value": "2"}]);
    env.apply_app(&app).await.unwrap();
    wait_for(converge_timeout(false), used("list pods"))
        .await
        .expect("the pods of the unready workload are listed");
    server.set_workloads_ready(true);
    env.wait_condition("shop", "Ready", "True", converge_timeout(false))
        .await
        .unwrap();
    app["spec"]["services"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["name"] != "inventory");
    app["spec"]["gateway"]["routes"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["service"] != "inventory");
    env.apply_app(&app).await.unwrap();
    env.wait_condition("shop", "Ready", "True", converge_timeout(false))
        .await
        .unwrap();
    // Ingress → HTTPRoute (prunes the Ingress); a database removed (its StatefulSet, Service and
    // Secret); orders down to one replica (its autoscaler and budget).
    app["spec"]["gateway"]["className"] = json!(null);
    app["spec"]["gateway"]["tls"] = json!(null);
    app["spec"]["gateway"]["parentRefs"] = json!([{"name": "public"}]);
    app["spec"]["databases"]
        .as_array_mut()
        .unwrap()
        .retain(|d| d["name"] != "cache");
    // orders-db grows: its claim is patched, its StatefulSet replaced.
    app["spec"]["databases"][0]["storage"]["size"] = json!("12Gi");
    for s in app["spec"]["services"].as_array_mut().unwrap() {
        if let Some(uses) = s["uses"].as_array_mut() {
            uses.retain(|u| u != "cache");
        }
        if s["name"] == "orders" {
            s["scaling"] = json!(null);
            s["replicas"] = json!(1);
        }
    }
    env.apply_app(&app).await.unwrap();
    env.wait_condition("shop", "Ready", "True", converge_timeout(false))
        .await
        .unwrap();
    wait_for(converge_timeout(false), || async {
        let c = env.children("shop").await.ok()?;
        (!c.contains_key("Ingress/shop") && !c.contains_key("StatefulSet/shop-cache")).then_some(())
    })
    .await
    .unwrap();
    let statefulsets = env.dynamic("apps", "v1", "StatefulSet", "statefulsets");
    wait_for(converge_timeout(false), || async {
        let s = statefulsets.get_opt("shop-orders-db").await.ok()??;
        let size =
            &s.data["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"];
        (size == "12Gi").then_some(())
    })
    .await
    .expect("orders-db's StatefulSet is replaced with the larger claim template");
    // The route changes once (a patch of the HTTPRoute).
    app["spec"]["gateway"]["hosts"] = json!(["shop.example.org"]);
    env.apply_app(&app).await.unwrap();
    env.wait_condition("shop", "Ready", "True", converge_timeout(false))
        .await
        .unwrap();

    // No gateway any more: the HTTPRoute is pruned.
    app["spec"]["gateway"] = json!(null);
    env.apply_app(&app).await.unwrap();
    wait_for(converge_timeout(false), || async {
        (!env
            .children("shop")
            .await
            .ok()?
            .contains_key("HTTPRoute/shop"))
        .then_some(())
    })
    .await
    .unwrap();

    app["spec"]["services"][0]["probes"]["readiness"]["httpGet"]["port"] = json!("nope");
    env.apply_app(&app).await.unwrap();
    env.wait_condition("shop", "Ready", "False", converge_timeout(false))
        .await
        .unwrap();
    // A database Secret deleted by hand while its data is there is reported, not regenerated
    // (the claim is read); restored by the user, the stack is Ready again.
    let secrets = env.dynamic("", "v1", "Secret", "secrets");
    let mut kept = secrets.get("shop-orders-db-credentials").await.unwrap();
    secrets
        .delete("shop-orders-db-credentials", &DeleteParams::default())
        .await
        .unwrap();
    app["spec"]["services"][0]["probes"]["readiness"]["httpGet"]["port"] = json!("http");
    env.apply_app(&app).await.unwrap();
    env.wait_condition("shop", "Degraded", "True", converge_timeout(false))
        .await
        .unwrap();
    kept.metadata.resource_version = None;
    kept.metadata.uid = None;
    kept.metadata.creation_timestamp = None;
    kept.metadata.managed_fields = None;
    secrets.create(&Default::default(), &kept).await.unwrap();
    env.wait_condition("shop", "Ready", "True", converge_timeout(false))
        .await
        .unwrap();
    env.apps()
        .delete("shop", &DeleteParams::default())
        .await
        .unwrap();
    op.stop().await.unwrap();

    let stats = server.stats();
    let used: BTreeSet<String> = stats
        .by_agent
        .get(keelson::runtime::USER_AGENT)
        .expect("requests carry the operator's User-Agent")
        .keys()
        .cloned()
        .collect();
    let granted = granted();
    let not_granted: Vec<&String> = used.difference(&granted).collect();
    assert!(
        not_granted.is_empty(),
        "the operator used what RBAC does not grant: {not_granted:#?}"
    );
    let unused: Vec<&String> = granted
        .difference(&used)
        .filter(|g| !authorization_only(g))
        .collect();
    assert!(
        unused.is_empty(),
        "RBAC grants what the operator never used: {unused:#?}\nused: {used:#?}"
    );
    env.cleanup().await;
}
