//! What Keelson accepts, the API server accepts: generated Applications (the property test's
//! generator, `operator/tests/parity_support/generate.rs`) that Keelson's validation accepts are
//! sent to the API server with `dryRun=All`, the Application itself and every object Keelson
//! builds for it, and none may be refused. On a real cluster (`KUBECONFIG`) this is the real
//! Kubernetes validation and admission; in-process, the stand-in's.
//!
//! `KEELSON_DRY_RUN_CASES` sets how many accepted Applications are sent (default 50; about one
//! generated Application in five is accepted, the rest carry a fault Keelson reports);
//! `KEELSON_PARITY_SEED` varies the otherwise fixed seed.

#[path = "../../operator/tests/parity_support/generate.rs"]
#[allow(dead_code)]
mod generate;
#[path = "../../operator/tests/parity_support/quantity.rs"]
#[allow(dead_code)]
mod quantity;

use e2e::harness::{Env, EnvOptions};
use keelson::{
    api::validate::validate_value,
    build::{ApiCapabilities, Credentials},
};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
    discovery::Discovery,
};
use proptest::{
    strategy::{Strategy, ValueTree},
    test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
};
use serde_json::{Value, json};

const DEFAULT_CASES: usize = 50;

fn cases() -> usize {
    std::env::var("KEELSON_DRY_RUN_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn seed() -> [u8; 32] {
    let mut seed = *b"keelson dry run against servers!";
    if let Some(n) = std::env::var("KEELSON_PARITY_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        seed[..8].copy_from_slice(&n.to_le_bytes());
    }
    seed
}

/// The Application as `kubectl apply` would send it, in the test's namespace.
fn application(name: &str, namespace: &str, spec: &Value) -> Value {
    json!({"apiVersion": "keelson.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

/// The API resource of an object's apiVersion and kind, from discovery.
fn resource_of(discovery: &Discovery, obj: &Value) -> Option<ApiResource> {
    let (group, version) = match obj["apiVersion"].as_str()?.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", obj["apiVersion"].as_str()?),
    };
    let gvk = GroupVersionKind::gvk(group, version, obj["kind"].as_str()?);
    discovery.resolve_gvk(&gvk).map(|(ar, _)| ar)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_applications_keelson_accepts_pass_the_api_servers_dry_run() {
    let env = Env::start("e2e-dryrun", EnvOptions::default())
        .await
        .unwrap();
    let discovery = Discovery::new(env.client.clone()).run().await.unwrap();
    let caps = ApiCapabilities {
        service_monitors: discovery.has_group("monitoring.coreos.com"),
        http_routes: discovery.has_group("gateway.networking.k8s.io"),
    };
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed()),
    );
    let strategy = generate::application();
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let (mut generated_count, mut accepted, mut objects, mut refused) = (0, 0, 0, Vec::new());
    while accepted < cases() && generated_count < cases() * 50 {
        generated_count += 1;
        let generated = strategy.new_tree(&mut runner).unwrap().current();
        let name = generated.name.clone();
        let spec = serde_json::to_value(&generated.spec).unwrap();
        if validate_value(&name, &env.namespace, &spec).is_err() {
            continue;
        }
        accepted += 1;
        let app = application(&name, &env.namespace, &spec);
        // JSON is YAML that every reader takes the same way (strings quoted).
        let text = serde_json::to_string(&app).unwrap();
        let children = keelson::render::render_values(&text, caps, |_| Credentials::generate())
            .unwrap_or_else(|e| panic!("validate accepted {name} but render refused it: {e}"));
        for obj in std::iter::once(app).chain(children) {
            let ar = resource_of(&discovery, &obj)
                .unwrap_or_else(|| panic!("the cluster does not serve {}", obj["apiVersion"]));
            let api: Api<DynamicObject> =
                Api::namespaced_with(env.client.clone(), &env.namespace, &ar);
            let body: DynamicObject = serde_json::from_value(obj.clone()).unwrap();
            objects += 1;
            if let Err(e) = api.create(&dry_run, &body).await {
                refused.push(format!(
                    "{} {}: {e}\n{}",
                    obj["kind"],
                    obj["metadata"]["name"],
                    serde_norway::to_string(&spec).unwrap()
                ));
            }
        }
    }
    eprintln!(
        "dry run: {accepted} of {generated_count} generated Applications accepted by Keelson, {objects} objects sent, {} refused",
        refused.len()
    );
    assert_eq!(
        accepted,
        cases(),
        "the generator rarely makes an acceptable Application"
    );
    assert!(
        refused.is_empty(),
        "the API server refused what Keelson accepted:\n{}",
        refused[..refused.len().min(5)].join("\n---\n")
    );
    env.cleanup().await;
}
