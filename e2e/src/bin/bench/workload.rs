//! What the benchmark applies: N copies of the shop sample, the children Keelson renders for
//! them, and how their state is read.

use std::time::Instant;

use anyhow::Context as _;
use e2e::harness::repo_root;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use keelson::{
    build::{ApiCapabilities, Credentials},
    render::render_values,
};
use kube::{
    Client,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::cluster::apps_api;

/// The field manager of the Applications the benchmark applies (a user's `kubectl apply`).
pub const USER_MANAGER: &str = "bench-user";
/// The field manager of the baseline's child applies.
pub const BASELINE_MANAGER: &str = "bench-baseline";
/// The field manager of the drift edits.
pub const EDITOR_MANAGER: &str = "bench-editor";

/// The shop sample, `n` times: `shop-0` .. `shop-<n-1>` in `ns`.
pub fn shop_apps(n: usize, ns: &str, real: bool) -> anyhow::Result<Vec<Value>> {
    let path = repo_root().join("samples/shop.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut base: Value = serde_norway::from_str(&text)?;
    base["metadata"]["namespace"] = json!(ns);
    if real {
        runnable_images(&mut base);
    }
    Ok((0..n)
        .map(|i| {
            let mut v = base.clone();
            v["metadata"]["name"] = json!(format!("shop-{i}"));
            v
        })
        .collect())
}

/// On a real cluster the sample's made-up images would never start: run a small HTTP server that
/// answers the probe paths, as a non-root user (as the e2e harness does).
fn runnable_images(app: &mut Value) {
    if let Some(services) = app["spec"]["services"].as_array_mut() {
        for s in services {
            let port = s["ports"][0]["port"].as_i64().unwrap_or(8080);
            s["image"] = json!("registry.k8s.io/e2e-test-images/agnhost:2.53");
            s["args"] = json!(["netexec", format!("--http-port={port}")]);
            s["runAsUser"] = json!(65532);
            if let Some(p) = s.get_mut("probes").and_then(Value::as_object_mut) {
                for (_, probe) in p.iter_mut() {
                    if probe.get("httpGet").is_some() {
                        probe["httpGet"]["path"] = json!("/healthz");
                    }
                }
            }
        }
    }
}

/// What the shop's teams create themselves before applying it: each Secret and ConfigMap its
/// services read a key of (`env[].valueFrom.secretKeyRef` / `configMapKeyRef`, unless
/// `optional`), with every key read (value `bench`). Without them the pods of those services
/// wait in `CreateContainerConfigError` on a real cluster.
pub fn sample_inputs(app: &Value) -> Vec<Value> {
    let mut wanted: std::collections::BTreeMap<(&str, &str), std::collections::BTreeSet<&str>> =
        Default::default();
    let services = app["spec"]["services"].as_array().into_iter().flatten();
    for env in services.flat_map(|s| s["env"].as_array().into_iter().flatten()) {
        for (field, kind) in [("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")] {
            let r = &env["valueFrom"][field];
            if let (Some(name), Some(key)) = (r["name"].as_str(), r["key"].as_str())
                && r["optional"] != true
            {
                wanted.entry((kind, name)).or_default().insert(key);
            }
        }
    }
    wanted
        .into_iter()
        .map(|((kind, name), keys)| {
            let data: serde_json::Map<String, Value> = keys
                .into_iter()
                .map(|k| (k.to_string(), json!("bench")))
                .collect();
            let field = if kind == "Secret" {
                "stringData"
            } else {
                "data"
            };
            json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, field: data})
        })
        .collect()
}

/// Creates (server-side applies, as [`USER_MANAGER`]) what the shop sample needs in `ns`
/// before it is applied (see [`sample_inputs`]).
pub async fn create_sample_inputs(client: &Client, ns: &str, real: bool) -> anyhow::Result<()> {
    let app = &shop_apps(1, ns, real)?[0];
    for o in sample_inputs(app) {
        let (kind, name) = (o["kind"].as_str().unwrap_or_default(), name_of(&o));
        crate::cluster::dynamic_api(client, ns, "v1", kind)
            .patch(
                name,
                &PatchParams::apply(USER_MANAGER).force(),
                &Patch::Apply(&o),
            )
            .await
            .with_context(|| format!("create the sample's {kind} {ns}/{name}"))?;
    }
    Ok(())
}

/// An Application's name.
pub fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// Apply every Application as a user would (`kubectl apply --server-side`), `concurrency` at once.
/// Returns when each apply was answered, in the order of `apps`.
pub async fn apply_apps(
    client: &Client,
    ns: &str,
    apps: &[Value],
    concurrency: usize,
) -> anyhow::Result<Vec<Instant>> {
    let api = apps_api(client, ns);
    let mut answered = stream::iter(apps.iter().enumerate())
        .map(|(i, app)| {
            let api = api.clone();
            async move {
                let name = name_of(app);
                api.patch(
                    name,
                    &PatchParams::apply(USER_MANAGER).force(),
                    &Patch::Apply(app),
                )
                .await
                .with_context(|| format!("apply Application {name}"))
                .map(|_| (i, Instant::now()))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<(usize, Instant)>>()
        .await?;
    answered.sort_by_key(|(i, _)| *i);
    Ok(answered.into_iter().map(|(_, at)| at).collect())
}

/// Whether an Application has a status for its current generation (whatever it says): the
/// operator writes it after it applied every child.
pub fn app_observed(app: &Value) -> bool {
    let generation = &app["metadata"]["generation"];
    !generation.is_null() && app["status"]["observedGeneration"] == *generation
}

/// Whether an Application's status for its current generation says every child was applied
/// (`Degraded=False`): on a real cluster, where Ready may never come, the end point of a
/// convergence.
pub fn app_applied(app: &Value) -> bool {
    app_observed(app) && condition(app, "Degraded").is_some_and(|c| c["status"] == "False")
}

/// An Application's status condition of one type.
pub fn condition<'a>(app: &'a Value, type_: &str) -> Option<&'a Value> {
    app["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Whether an Application is Ready=True for its current generation.
pub fn app_ready(app: &Value) -> bool {
    app_observed(app) && condition(app, "Ready").is_some_and(|c| c["status"] == "True")
}

/// One line on an Application's status, for an error message.
pub fn brief_status(app: &Value) -> String {
    let said = |type_: &str| {
        condition(app, type_)
            .map(|c| {
                format!(
                    "{type_}={} ({}: {})",
                    c["status"], c["reason"], c["message"]
                )
            })
            .unwrap_or_else(|| format!("no {type_} condition"))
    };
    format!(
        "{} generation {} observedGeneration {}: {}; {}",
        app["metadata"]["name"].as_str().unwrap_or("?"),
        app["metadata"]["generation"],
        app["status"]["observedGeneration"],
        said("Ready"),
        said("Degraded")
    )
}

/// Whether a Deployment or StatefulSet is rolled out and available, as Keelson's status reads it.
pub fn workload_available(o: &Value, stateful: bool) -> bool {
    let desired = o["spec"]["replicas"].as_i64().unwrap_or(1);
    let st = &o["status"];
    let current = st["observedGeneration"].as_i64().unwrap_or(-1)
        >= o["metadata"]["generation"].as_i64().unwrap_or(0);
    let n = |k: &str| st[k].as_i64().unwrap_or(0);
    if stateful {
        current && n("readyReplicas") >= desired
    } else {
        current && n("updatedReplicas") >= desired && n("availableReplicas") >= desired
    }
}

/// The workloads of the Applications: (plural, name) of each Deployment and StatefulSet.
pub fn workloads(apps: &[Value]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for app in apps {
        let name = name_of(app);
        for (list, plural) in [("services", "deployments"), ("databases", "statefulsets")] {
            for c in app["spec"][list].as_array().into_iter().flatten() {
                let component = c["name"].as_str().unwrap_or_default();
                out.push((plural, format!("{name}-{component}")));
            }
        }
    }
    out
}

/// Deterministic credentials for the baseline's Secrets.
fn bench_credentials(db: &str) -> Credentials {
    let pad = |prefix: &str| {
        let mut s: String = format!("{prefix}{db}")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        while s.len() < 32 {
            s.push('0');
        }
        s.truncate(32);
        s
    };
    Credentials {
        password: pad("bench"),
        admin_password: pad("benchadmin"),
    }
}

/// The children Keelson builds for an Application, owned by the stored one (`uid`).
pub fn children(
    app: &Value,
    uid: Option<String>,
    caps: ApiCapabilities,
) -> anyhow::Result<Vec<Value>> {
    let mut with_uid = app.clone();
    with_uid["metadata"]["uid"] = json!(uid);
    Ok(render_values(
        &serde_json::to_string(&with_uid)?,
        caps,
        bench_credentials,
    )?)
}

/// How many children Keelson builds for one shop.
pub fn children_per_app(caps: ApiCapabilities) -> anyhow::Result<usize> {
    let app = &shop_apps(1, "bench", false)?[0];
    Ok(children(
        app,
        Some("00000000-0000-0000-0000-000000000000".into()),
        caps,
    )?
    .len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_owned_by_the_stored_application() {
        let app = &shop_apps(1, "ns", false).unwrap()[0];
        let uid = "6a1c0b62-3f5e-4a53-9d1e-2f0c2b9e7a10";
        let kids = children(app, Some(uid.into()), ApiCapabilities::ALL).unwrap();
        assert!(kids.len() >= 20, "{} children", kids.len());
        for c in &kids {
            assert_eq!(c["metadata"]["namespace"], "ns");
            // Credentials of a Retain database outlive the Application: no owner reference.
            if c["kind"] == "Secret" {
                assert!(c["metadata"].get("ownerReferences").is_none());
                continue;
            }
            let owners = c["metadata"]["ownerReferences"].as_array().unwrap();
            assert_eq!(owners[0]["uid"], uid, "{}", c["metadata"]["name"]);
            assert_eq!(owners[0]["kind"], "Application");
            assert_eq!(c["metadata"]["namespace"], "ns");
        }
        assert_eq!(workloads(std::slice::from_ref(app)).len(), 6);
    }

    #[test]
    fn the_samples_secret_is_created_with_the_key_its_service_reads() {
        let app = &shop_apps(1, "ns", false).unwrap()[0];
        assert_eq!(
            sample_inputs(app),
            [json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "payment-provider"},
                "stringData": {"api-key": "bench"}})]
        );
        let app = json!({"spec": {"services": [
            {"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "x"}}},
                     {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k",
                        "optional": true}}},
                     {"name": "C", "value": "v"}]},
            {"env": [{"name": "D", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "y"}}}]}]}});
        assert_eq!(
            sample_inputs(&app),
            [
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": {"x": "bench", "y": "bench"}})
            ]
        );
    }

    #[test]
    fn readiness_is_for_the_current_generation() {
        let mut app = json!({"metadata": {"name": "a", "generation": 2},
            "status": {"observedGeneration": 1,
                       "conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(!app_observed(&app) && !app_ready(&app));
        app["status"]["observedGeneration"] = json!(2);
        assert!(app_observed(&app) && app_ready(&app));
        app["status"]["conditions"][0]["status"] = json!("False");
        assert!(app_observed(&app) && !app_ready(&app));
        assert!(!app_applied(&app), "no Degraded condition yet");
        app["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "Degraded", "status": "True"}));
        assert!(!app_applied(&app), "an apply failed");
        app["status"]["conditions"][1]["status"] = json!("False");
        assert!(app_applied(&app));
        app["metadata"]["generation"] = json!(3);
        assert!(!app_applied(&app), "a status of the previous generation");
    }
}
