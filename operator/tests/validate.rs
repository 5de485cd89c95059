//! Tier 1: validation of Application specs, rule by rule.
//!
//! Every way to write a bad spec has a test that names the field the error points at and a part
//! of the message that tells the user what to do. The three layers are covered in the order
//! `validate_value` applies them: the CRD's OpenAPI schema, its CEL rules, then the semantic
//! checks only Rust can make. The positive tests pin the defaults the model resolves.

use std::{collections::BTreeSet, path::PathBuf};

use keelson::api::{
    Application, DeletionPolicy, Engine, FieldError, Model, quantity, rules,
    validate::{
        GatewayKind, MetricsModel, Replicas, validate, validate_schema_checked, validate_value,
    },
};
use kube::CustomResourceExt;
use serde_json::Value;

const APP: &str = "shop";
const NS: &str = "shop";

fn spec(yaml: &str) -> Value {
    serde_norway::from_str(yaml).expect("the test's YAML parses")
}

fn errors_named(app: &str, yaml: &str) -> Vec<FieldError> {
    match validate_value(app, NS, &spec(yaml)) {
        Ok(model) => panic!("expected the spec to be rejected, got {model:#?}"),
        Err(e) => e.errors,
    }
}

fn errors(yaml: &str) -> Vec<FieldError> {
    errors_named(APP, yaml)
}

fn model_named(app: &str, yaml: &str) -> Model {
    validate_value(app, NS, &spec(yaml)).unwrap_or_else(|e| panic!("expected a valid spec: {e}"))
}

fn model(yaml: &str) -> Model {
    model_named(APP, yaml)
}

/// The spec is rejected with exactly one error, at `field`, whose message contains `message`.
#[track_caller]
fn assert_only(errs: &[FieldError], field: &str, message: &str) {
    assert!(
        errs.len() == 1 && errs[0].field == field && errs[0].message.contains(message),
        "expected exactly one error `{field}: …{message}…`, got {errs:#?}"
    );
}

/// Among the errors, one is at `field` and its message contains `message`.
#[track_caller]
fn assert_has(errs: &[FieldError], field: &str, message: &str) {
    assert!(
        errs.iter()
            .any(|e| e.field == field && e.message.contains(message)),
        "expected an error `{field}: …{message}…`, got {errs:#?}"
    );
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// CEL rules (rules.rs): each rule's message and field path.
// ---------------------------------------------------------------------------------------------

/// Every rule of rules.rs and the field its error points at, as the tests below exercise them.
const CEL_RULES_TESTED: &[rules::CelRule] = &[
    rules::ROUTE_SERVICE_EXISTS,
    rules::ROUTE_PORT_DECLARED,
    rules::USES_DATABASE_EXISTS,
    rules::NAMES_DISJOINT,
    rules::GATEWAY_ONE_KIND,
    rules::GATEWAY_TLS_INGRESS_ONLY,
    rules::METRICS_PORT_DECLARED,
    rules::REPLICAS_OR_SCALING,
    rules::MIN_LE_MAX,
    rules::PROBE_ONE_HANDLER,
    rules::ENV_ONE_SOURCE,
    rules::ENV_SOURCE_ONE_OF,
    rules::ROUTE_PATH_NORMALIZED,
    rules::PARENT_REFS_SECTION_WHEN_SHARED,
    rules::PARENT_REFS_UNIQUE,
    // Transition rules need the old object: e2e/tests/day2.rs applies the changes they refuse
    // against the API server (and `transition_rules_are_on_the_database_entries` below checks
    // where they sit).
    rules::ENGINE_UNCHANGED,
    rules::STORAGE_CLASS_UNCHANGED,
    rules::STORAGE_NOT_SHRUNK,
];

fn collect_rules(schema: &Value, out: &mut BTreeSet<(String, String)>) {
    match schema {
        Value::Object(obj) => {
            if let Some(Value::Array(rules)) = obj.get("x-kubernetes-validations") {
                for r in rules {
                    out.insert((
                        r["rule"].as_str().unwrap_or_default().to_string(),
                        r["message"].as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
            obj.values().for_each(|v| collect_rules(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_rules(v, out)),
        _ => {}
    }
}

#[test]
fn every_cel_rule_of_the_crd_has_a_test_here() {
    let crd = serde_json::to_value(Application::crd()).unwrap();
    let mut in_crd = BTreeSet::new();
    collect_rules(&crd, &mut in_crd);
    let tested: BTreeSet<(String, String)> = CEL_RULES_TESTED
        .iter()
        .map(|(r, m)| (r.to_string(), m.to_string()))
        .collect();
    assert_eq!(
        in_crd, tested,
        "the CRD's CEL rules and the rules tested here differ: add a test for the new rule"
    );
}

#[test]
fn route_to_an_undeclared_service() {
    let errs = errors(
        r#"
gateway:
  routes: [{path: /, service: api}]
services:
  - {name: web, image: web:1, ports: [{name: http, port: 8080}]}
"#,
    );
    assert_only(&errs, "spec.gateway.routes", rules::ROUTE_SERVICE_EXISTS.1);
    assert!(errs[0].message.contains("add the service or fix the route"));
}

#[test]
fn route_to_an_undeclared_port() {
    let errs = errors(
        r#"
gateway:
  routes: [{path: /, service: web, port: grpc}]
services:
  - {name: web, image: web:1, ports: [{name: http, port: 8080}]}
"#,
    );
    assert_only(&errs, "spec.gateway.routes", rules::ROUTE_PORT_DECLARED.1);
}

#[test]
fn route_port_on_a_service_without_ports() {
    let errs = errors(
        r#"
gateway:
  routes: [{path: /, service: worker, port: http}]
services:
  - {name: worker, image: worker:1}
"#,
    );
    assert_only(&errs, "spec.gateway.routes", rules::ROUTE_PORT_DECLARED.1);
}

#[test]
fn uses_an_undeclared_database() {
    let errs = errors(
        r#"
services:
  - {name: web, image: web:1, uses: [orders-db]}
"#,
    );
    assert_only(&errs, "spec.services", rules::USES_DATABASE_EXISTS.1);
    assert!(
        errs[0]
            .message
            .contains("add the database or remove it from uses")
    );

    // Also when other databases exist.
    let errs = errors(
        r#"
services:
  - {name: web, image: web:1, uses: [orders-db]}
databases:
  - {name: cache, engine: redis}
"#,
    );
    assert_only(&errs, "spec.services", rules::USES_DATABASE_EXISTS.1);
}

#[test]
fn database_named_like_a_service() {
    let errs = errors(
        r#"
services:
  - {name: web, image: web:1}
databases:
  - {name: web, engine: postgres}
"#,
    );
    assert_only(&errs, "spec.databases", rules::NAMES_DISJOINT.1);
    assert!(errs[0].message.contains("rename one of them"));
}

#[test]
fn gateway_with_class_name_and_parent_refs() {
    let errs = errors(
        r#"
gateway:
  className: nginx
  parentRefs: [{name: public}]
  routes: [{path: /, service: web}]
services:
  - {name: web, image: web:1, ports: [{name: http, port: 8080}]}
"#,
    );
    assert_only(&errs, "spec.gateway", rules::GATEWAY_ONE_KIND.1);
}

#[test]
fn gateway_with_tls_and_parent_refs() {
    let errs = errors(
        r#"
gateway:
  tls: {secretName: web-tls}
  parentRefs: [{name: public}]
  routes: [{path: /, service: web}]
services:
  - {name: web, image: web:1, ports: [{name: http, port: 8080}]}
"#,
    );
    assert_only(&errs, "spec.gateway.tls", rules::GATEWAY_TLS_INGRESS_ONLY.1);
    assert!(errs[0].message.contains("remove tls"));
}

#[test]
fn gateway_with_class_name_and_empty_parent_refs_is_an_ingress() {
    let m = model(
        r#"
gateway:
  className: nginx
  tls: {secretName: web-tls}
  parentRefs: []
  routes: [{path: /, service: web}]
services:
  - {name: web, image: web:1, ports: [{name: http, port: 8080}]}
"#,
    );
    assert!(matches!(
        m.gateway.unwrap().kind,
        GatewayKind::Ingress { class_name: Some(c), tls_secret: Some(t) } if c == "nginx" && t == "web-tls"
    ));
}

#[test]
fn metrics_on_an_undeclared_port() {
    let errs = errors(
        r#"
services:
  - {name: web, image: web:1, ports: [{name: http, port: 8080}], metrics: {port: metrics}}
"#,
    );
    assert_only(
        &errs,
        "spec.services[0].metrics.port",
        rules::METRICS_PORT_DECLARED.1,
    );
}

#[test]
fn metrics_on_a_service_without_ports() {
    let errs = errors(
        r#"
services:
  - {name: web, image: web:1}
  - {name: worker, image: worker:1, metrics: {port: metrics}}
"#,
    );
    assert_only(
        &errs,
        "spec.services[1].metrics.port",
        rules::METRICS_PORT_DECLARED.1,
    );
}

#[test]
fn replicas_and_scaling_together() {
    let errs = errors(
        r#"
services:
  - name: web
    image: web:1
    replicas: 2
    scaling: {minReplicas: 2, maxReplicas: 4}
    resources: {requests: {cpu: 100m}}
"#,
    );
    assert_only(&errs, "spec.services[0]", rules::REPLICAS_OR_SCALING.1);
}

#[test]
fn service_scaling_min_above_max() {
    let errs = errors(
        r#"
services:
  - {name: web, image: web:1, scaling: {minReplicas: 5, maxReplicas: 2}, resources: {requests: {cpu: 100m}}}
"#,
    );
    assert_only(&errs, "spec.services[0].scaling", rules::MIN_LE_MAX.1);
}

#[test]
fn default_scaling_min_above_max() {
    let errs = errors(
        r#"
services:
  - {name: web, image: web:1, resources: {requests: {cpu: 100m}}}
scaling: {minReplicas: 5, maxReplicas: 2}
"#,
    );
    assert_only(&errs, "spec.scaling", rules::MIN_LE_MAX.1);
}

#[test]
fn probe_without_a_handler() {
    let errs = errors(
        r#"
services:
  - {name: web, image: web:1, ports: [{name: http, port: 8080}], probes: {readiness: {periodSeconds: 5}}}
"#,
    );
    assert_only(
        &errs,
        "spec.services[0].probes.readiness",
        rules::PROBE_ONE_HANDLER.1,
    );
}

#[test]
fn probe_with_two_handlers() {
    let errs = errors(
        r#"
services:
  - name: web
    image: web:1
    ports: [{name: http, port: 8080}]
    probes:
      liveness:
        httpGet: {path: /livez, port: http}
        exec: {command: [/bin/true]}
"#,
    );
    assert_only(
        &errs,
        "spec.services[0].probes.liveness",
        rules::PROBE_ONE_HANDLER.1,
    );
    let errs = errors(
        r#"
services:
  - name: web
    image: web:1
    ports: [{name: http, port: 8080}]
    probes:
      startup:
        tcpSocket: {port: http}
        exec: {command: [/bin/true]}
"#,
    );
    assert_only(
        &errs,
        "spec.services[0].probes.startup",
        rules::PROBE_ONE_HANDLER.1,
    );
}

#[test]
fn env_with_value_and_value_from() {
    let errs = errors(
        r#"
services:
  - name: web
    image: web:1
    env:
      - {name: OK, value: "1"}
      - {name: KEY, value: x, valueFrom: {secretKeyRef: {name: s, key: k}}}
"#,
    );
    assert_only(&errs, "spec.services[0].env[1]", rules::ENV_ONE_SOURCE.1);
}

#[test]
fn env_source_with_both_references() {
    let errs = errors(
        r#"
services:
  - name: web
    image: web:1
    env:
      - name: KEY
        valueFrom:
          secretKeyRef: {name: s, key: k}
          configMapKeyRef: {name: c, key: k}
"#,
    );
    assert_only(
        &errs,
        "spec.services[0].env[0].valueFrom",
        rules::ENV_SOURCE_ONE_OF.1,
    );
}

#[test]
fn env_source_without_a_reference() {
    let errs = errors(
        r#"
services:
  - {name: web, image: web:1, env: [{name: KEY, valueFrom: {}}]}
"#,
    );
    assert_only(
        &errs,
        "spec.services[0].env[0].valueFrom",
        rules::ENV_SOURCE_ONE_OF.1,
    );
}

// ---------------------------------------------------------------------------------------------
// The OpenAPI schema: required fields, enums, patterns, ranges, lengths, unknown fields.
// ---------------------------------------------------------------------------------------------

#[test]
fn services_are_required() {
    assert_only(
        &errors("databases: [{name: db, engine: postgres}]"),
        "spec",
        "\"services\" is a required property",
    );
    // An Application without any spec at all.
    let errs = validate_value(APP, NS, &Value::Null).unwrap_err().errors;
    assert_has(&errs, "spec", "null is not of type \"object\"");
}

#[test]
fn services_may_not_be_empty() {
    assert_only(
        &errors("services: []"),
        "spec.services",
        "[] has less than 1 item",
    );
}

#[test]
fn service_image_is_required() {
    assert_only(
        &errors("services: [{name: web}]"),
        "spec.services[0]",
        "\"image\" is a required property",
    );
}

#[test]
fn service_name_is_required() {
    assert_only(
        &errors("services: [{image: web:1}]"),
        "spec.services[0]",
        "\"name\" is a required property",
    );
}

#[test]
fn database_engine_and_name_are_required() {
    let errs = errors(
        r#"
services: [{name: web, image: web:1}]
databases: [{name: db}, {engine: redis}]
"#,
    );
    assert_has(
        &errs,
        "spec.databases[0]",
        "\"engine\" is a required property",
    );
    assert_has(
        &errs,
        "spec.databases[1]",
        "\"name\" is a required property",
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
}

#[test]
fn gateway_routes_are_required() {
    assert_only(
        &errors(
            r#"
gateway: {hosts: [shop.example.com]}
services: [{name: web, image: web:1}]
"#,
        ),
        "spec.gateway",
        "\"routes\" is a required property",
    );
}

#[test]
fn unknown_engine() {
    assert_only(
        &errors(
            r#"
services: [{name: web, image: web:1}]
databases: [{name: db, engine: oracle}]
"#,
        ),
        "spec.databases[0].engine",
        "\"oracle\" is not one of",
    );
}

#[test]
fn unknown_pull_policy() {
    let errs = errors("services: [{name: web, image: web:1, imagePullPolicy: always}]");
    assert_only(
        &errs,
        "spec.services[0].imagePullPolicy",
        "\"always\" is not one of",
    );
    assert!(errs[0].message.contains("IfNotPresent"), "{errs:#?}");
}

#[test]
fn unknown_protocol() {
    let errs = errors(
        "services: [{name: web, image: web:1, ports: [{name: dns, port: 53, protocol: SCTP}]}]",
    );
    assert_only(
        &errs,
        "spec.services[0].ports[0].protocol",
        "\"SCTP\" is not one of",
    );
    assert!(errs[0].message.contains("UDP"), "{errs:#?}");
}

#[test]
fn unknown_deletion_policy() {
    assert_only(
        &errors(
            r#"
services: [{name: web, image: web:1}]
databases: [{name: db, engine: postgres, deletionPolicy: Orphan}]
"#,
        ),
        "spec.databases[0].deletionPolicy",
        "\"Orphan\" is not one of",
    );
}

#[test]
fn service_name_pattern() {
    for bad in ["Web", "1web", "web-", "web_api", "web.api"] {
        assert_only(
            &errors(&format!("services: [{{name: {bad:?}, image: web:1}}]")),
            "spec.services[0].name",
            "start with a letter",
        );
    }
}

#[test]
fn database_name_pattern() {
    for bad in ["orders_db", "Orders", "9db", "db-"] {
        assert_only(
            &errors(&format!(
                "services: [{{name: web, image: web:1}}]\ndatabases: [{{name: {bad:?}, engine: postgres}}]"
            )),
            "spec.databases[0].name",
            "start with a letter",
        );
    }
}

#[test]
fn port_name_pattern_and_length() {
    for bad in ["HTTP", "-http", "http_alt"] {
        assert_only(
            &errors(&format!(
                "services: [{{name: web, image: web:1, ports: [{{name: {bad:?}, port: 8080}}]}}]"
            )),
            "spec.services[0].ports[0].name",
            "needs port names to be IANA service names",
        );
    }
    assert_only(
        &errors(
            "services: [{name: web, image: web:1, ports: [{name: http-alternative1, port: 8080}]}]",
        ),
        "spec.services[0].ports[0].name",
        "is longer than 15 characters",
    );
}

#[test]
fn quantity_pattern() {
    assert_only(
        &errors("services: [{name: web, image: web:1, resources: {requests: {cpu: lots}}}]"),
        "spec.services[0].resources.requests.cpu",
        "is not a Kubernetes quantity",
    );
    assert_only(
        &errors("services: [{name: web, image: web:1, resources: {limits: {memory: 1GB}}}]"),
        "spec.services[0].resources.limits.memory",
        "is not a Kubernetes quantity",
    );
    assert_only(
        &errors(
            r#"
services: [{name: web, image: web:1}]
databases: [{name: db, engine: postgres, storage: {size: ten gigs}}]
"#,
        ),
        "spec.databases[0].storage.size",
        "is not a Kubernetes quantity",
    );
}

#[test]
fn quantities_are_strings() {
    // The schema types quantities as strings, as the API server will: `cpu: 1` must be quoted.
    assert_only(
        &errors("services: [{name: web, image: web:1, resources: {limits: {cpu: 1}}}]"),
        "spec.services[0].resources.limits.cpu",
        "must be of type string, found number 1: quote the value",
    );
    model("services: [{name: web, image: web:1, resources: {limits: {cpu: \"1\"}}}]");
}

#[test]
fn duration_pattern() {
    for bad in ["30 seconds", "30", "1.5m"] {
        assert_only(
            &errors(&format!(
                "services: [{{name: web, image: web:1, ports: [{{name: http, port: 80}}], metrics: {{port: http, interval: {bad:?}}}}}]"
            )),
            "spec.services[0].metrics.interval",
            "is not a duration",
        );
    }
}

#[test]
fn host_pattern() {
    for bad in [
        "Shop.example.com",
        "https://shop.example.com",
        "shop.example.com.",
        "*",
    ] {
        assert_only(
            &errors(&format!(
                "gateway: {{hosts: [{bad:?}], routes: [{{path: /, service: web}}]}}\nservices: [{{name: web, image: web:1, ports: [{{name: http, port: 80}}]}}]"
            )),
            "spec.gateway.hosts[0]",
            "write a DNS name",
        );
    }
    // A wildcard host is allowed.
    model(
        "gateway: {hosts: ['*.example.com'], routes: [{path: /, service: web}]}\nservices: [{name: web, image: web:1, ports: [{name: http, port: 80}]}]",
    );
}

#[test]
fn route_path_pattern() {
    for bad in ["api", "/a b", "/{id}", "/a#b", "/%zz"] {
        assert_only(
            &errors(&format!(
                "gateway: {{routes: [{{path: {bad:?}, service: web}}]}}\nservices: [{{name: web, image: web:1, ports: [{{name: http, port: 80}}]}}]"
            )),
            "spec.gateway.routes[0].path",
            "Ingress and Gateway API refuse such paths",
        );
    }
}

#[test]
fn env_name_pattern() {
    for bad in ["1VAR", "MY VAR", "A=B", ""] {
        let errs = errors(&format!(
            "services: [{{name: web, image: web:1, env: [{{name: {bad:?}, value: x}}]}}]"
        ));
        assert!(
            !errs.is_empty()
                && errs
                    .iter()
                    .all(|e| e.field == "spec.services[0].env[0].name"),
            "{bad:?}: {errs:#?}"
        );
    }
    assert_only(
        &errors("services: [{name: web, image: web:1, env: [{name: 1VAR, value: x}]}]"),
        "spec.services[0].env[0].name",
        "use letters, digits and `_`",
    );
}

#[test]
fn database_version_pattern() {
    for bad in ["latest", "v16", "16-alpine", "1.2.3.4"] {
        assert_only(
            &errors(&format!(
                "services: [{{name: web, image: web:1}}]\ndatabases: [{{name: db, engine: postgres, version: {bad:?}}}]"
            )),
            "spec.databases[0].version",
            "does not match",
        );
    }
}

#[test]
fn port_number_range() {
    assert_only(
        &errors("services: [{name: web, image: web:1, ports: [{name: http, port: 0}]}]"),
        "spec.services[0].ports[0].port",
        "0 is less than the minimum of 1",
    );
    assert_only(
        &errors("services: [{name: web, image: web:1, ports: [{name: http, port: 65536}]}]"),
        "spec.services[0].ports[0].port",
        "65536 is greater than the maximum of 65535",
    );
}

#[test]
fn replicas_range() {
    assert_only(
        &errors("services: [{name: web, image: web:1, replicas: -1}]"),
        "spec.services[0].replicas",
        "-1 is less than the minimum of 0",
    );
    assert_only(
        &errors("services: [{name: web, image: web:1, replicas: 1001}]"),
        "spec.services[0].replicas",
        "1001 is greater than the maximum of 1000",
    );
    // Zero replicas is a valid way to switch a service off.
    let m = model("services: [{name: web, image: web:1, replicas: 0}]");
    assert_eq!(m.services[0].replicas, Replicas::Fixed(0));
}

#[test]
fn replicas_of_the_wrong_type() {
    assert_only(
        &errors("services: [{name: web, image: web:1, replicas: two}]"),
        "spec.services[0].replicas",
        "\"two\" is not of type \"integer\"",
    );
}

#[test]
fn min_replicas_range() {
    assert_only(
        &errors(
            "services: [{name: web, image: web:1, scaling: {minReplicas: 0, maxReplicas: 3}, resources: {requests: {cpu: 1000m}}}]",
        ),
        "spec.services[0].scaling.minReplicas",
        "0 is less than the minimum of 1",
    );
    assert_only(
        &errors("services: [{name: web, image: web:1}]\nscaling: {minReplicas: 0}"),
        "spec.scaling.minReplicas",
        "0 is less than the minimum of 1",
    );
    assert_only(
        &errors("services: [{name: web, image: web:1}]\nscaling: {maxReplicas: 1001}"),
        "spec.scaling.maxReplicas",
        "1001 is greater than the maximum of 1000",
    );
}

#[test]
fn target_cpu_utilization_range() {
    for (bad, msg) in [
        (0, "0 is less than the minimum of 1"),
        (101, "101 is greater than the maximum of 100"),
    ] {
        assert_only(
            &errors(&format!(
                "services: [{{name: web, image: web:1, scaling: {{maxReplicas: 3, targetCPUUtilization: {bad}}}, resources: {{requests: {{cpu: 1000m}}}}}}]"
            )),
            "spec.services[0].scaling.targetCPUUtilization",
            msg,
        );
    }
}

#[test]
fn name_longer_than_40_characters() {
    let long = "a".repeat(41);
    assert_only(
        &errors(&format!("services: [{{name: {long}, image: web:1}}]")),
        "spec.services[0].name",
        "is longer than 40 characters",
    );
    assert_only(
        &errors(&format!(
            "services: [{{name: web, image: web:1}}]\ndatabases: [{{name: {long}, engine: redis}}]"
        )),
        "spec.databases[0].name",
        "is longer than 40 characters",
    );
    // 40 is fine.
    model_named(
        "s",
        &format!("services: [{{name: {}, image: web:1}}]", "a".repeat(40)),
    );
}

#[test]
fn more_than_32_services() {
    let services = |n: usize| {
        (0..n)
            .map(|i| format!("  - {{name: s{i}, image: web:1}}\n"))
            .collect::<String>()
    };
    assert_only(
        &errors(&format!("services:\n{}", services(33))),
        "spec.services",
        "has 33 items, more than 32 items",
    );
    assert_eq!(
        model(&format!("services:\n{}", services(32)))
            .services
            .len(),
        32
    );
}

#[test]
fn unknown_fields_are_rejected() {
    let errs = errors("services: [{name: web, image: web:1, imagePolicy: Always}]");
    assert_only(&errs, "spec.services[0]", "unknown field `imagePolicy`");
    assert!(
        errs[0]
            .message
            .contains("check the spelling against `kubectl explain application.spec`"),
        "{errs:#?}"
    );

    assert_only(
        &errors("services: [{name: web, image: web:1}]\nreplicas: 3"),
        "spec",
        "unknown field `replicas`",
    );
    assert_only(
        &errors(
            "services: [{name: web, image: web:1, probes: {readiness: {httpGet: {path: /, port: http, host: x}}}, ports: [{name: http, port: 80}]}]",
        ),
        "spec.services[0].probes.readiness.httpGet",
        "unknown field `host`",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let errs = errors(
        r#"
services:
  - {name: Web, image: web:1}
  - {name: api, image: api:1, replicas: -2}
"#,
    );
    assert_has(&errs, "spec.services[0].name", "start with a letter");
    assert_has(&errs, "spec.services[1].replicas", "less than the minimum");
    assert_eq!(errs.len(), 2, "{errs:#?}");

    let invalid = validate_value(
        APP,
        NS,
        &spec(
            r#"
services:
  - {name: web, image: web:1, ports: [{name: http, port: 80}, {name: alt, port: 80}]}
  - {name: web, image: web:2}
"#,
        ),
    )
    .unwrap_err();
    assert_eq!(invalid.errors.len(), 2, "{invalid:#?}");
    let shown = invalid.to_string();
    assert!(
        shown.contains("spec.services[1].name: service name `web` is used twice")
            && shown.contains("; spec.services[0].ports[1].port: port number 80"),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------------------------
// Semantic checks (validate.rs): what the schema and CEL cannot express.
// ---------------------------------------------------------------------------------------------

#[test]
fn duplicate_service_names() {
    assert_only(
        &errors(
            r#"
services:
  - {name: web, image: web:1}
  - {name: api, image: api:1}
  - {name: web, image: web:2}
"#,
        ),
        "spec.services[2].name",
        "service name `web` is used twice: each service needs its own name",
    );
}

#[test]
fn duplicate_database_names() {
    assert_only(
        &errors(
            r#"
services: [{name: web, image: web:1}]
databases:
  - {name: db, engine: postgres}
  - {name: db, engine: redis}
"#,
        ),
        "spec.databases[1].name",
        "database name `db` is used twice: each database needs its own name",
    );
}

#[test]
fn deployment_name_over_63_characters() {
    // 30 + 1 + 33 = 64.
    let app = "a".repeat(30);
    let svc = "s".repeat(33);
    let errs = errors_named(&app, &format!("services: [{{name: {svc}, image: web:1}}]"));
    assert_only(
        &errs,
        "spec.services[0].name",
        "is 64 characters, over Kubernetes' limit of 63: shorten the name of the Application or of",
    );
    // 63 is fine.
    let svc = "s".repeat(32);
    let m = model_named(&app, &format!("services: [{{name: {svc}, image: web:1}}]"));
    assert_eq!(m.services[0].object_name.len(), 63);
}

#[test]
fn statefulset_name_over_52_characters() {
    // 20 + 1 + 32 = 53.
    let app = "a".repeat(20);
    let db = "d".repeat(32);
    let errs = errors_named(
        &app,
        &format!(
            "services: [{{name: web, image: web:1}}]\ndatabases: [{{name: {db}, engine: postgres}}]"
        ),
    );
    assert_only(
        &errs,
        "spec.databases[0].name",
        "is 53 characters, over Kubernetes' limit of 52: shorten the name of the Application or of",
    );
    // 52 is fine, though a service of the same length would be too.
    let db = "d".repeat(31);
    let m = model_named(
        &app,
        &format!(
            "services: [{{name: web, image: web:1}}]\ndatabases: [{{name: {db}, engine: postgres}}]"
        ),
    );
    assert_eq!(m.databases[0].object_name.len(), 52);
}

#[test]
fn duplicate_port_numbers() {
    assert_only(
        &errors(
            r#"
services:
  - name: web
    image: web:1
    ports: [{name: http, port: 8080}, {name: admin, port: 9090}, {name: alt, port: 8080, protocol: TCP}]
"#,
        ),
        "spec.services[0].ports[2].port",
        "port number 8080 is declared twice: give each port its own number",
    );
    // The same number over TCP and UDP is two ports, as Kubernetes sees it.
    model(
        r#"
services:
  - {name: dns, image: dns:1, ports: [{name: dns-tcp, port: 53}, {name: dns-udp, port: 53, protocol: UDP}]}
"#,
    );
}

#[test]
fn probe_on_an_undeclared_port() {
    assert_only(
        &errors(
            r#"
services:
  - name: web
    image: web:1
    ports: [{name: http, port: 8080}]
    probes: {readiness: {httpGet: {path: /ready, port: admin}}}
"#,
        ),
        "spec.services[0].probes.readiness.httpGet.port",
        "the probe checks port `admin`, but service `web` declares only `http`: name one of its ports",
    );
    assert_only(
        &errors(
            r#"
services:
  - name: worker
    image: worker:1
    probes: {liveness: {tcpSocket: {port: http}}}
"#,
        ),
        "spec.services[0].probes.liveness.tcpSocket.port",
        "but service `worker` declares no ports: name one of its ports",
    );
    assert_only(
        &errors(
            r#"
services:
  - name: web
    image: web:1
    ports: [{name: http, port: 8080}, {name: admin, port: 9090}]
    probes: {startup: {httpGet: {path: /, port: grpc}}}
"#,
        ),
        "spec.services[0].probes.startup.httpGet.port",
        "declares only `admin`, `http`",
    );
    // An exec probe names no port.
    model(
        r#"
services:
  - {name: worker, image: worker:1, probes: {liveness: {exec: {command: [/bin/true]}}}}
"#,
    );
}

#[test]
fn env_var_that_keelson_injects_from_a_database() {
    assert_only(
        &errors(
            r#"
services:
  - name: web
    image: web:1
    uses: [orders-db]
    env: [{name: LOG_LEVEL, value: info}, {name: ORDERS_DB_URL, value: "postgres://elsewhere"}]
databases:
  - {name: orders-db, engine: postgres}
"#,
        ),
        "spec.services[0].env[1].name",
        "`ORDERS_DB_URL` is set by Keelson from database `orders-db` (listed in uses): remove this env var or rename it",
    );
    // Redis injects no username, so that name is free.
    let m = model(
        r#"
services:
  - name: web
    image: web:1
    uses: [cache]
    env: [{name: CACHE_USERNAME, value: x}]
databases:
  - {name: cache, engine: redis}
"#,
    );
    assert_eq!(m.services[0].uses[0].env_prefix, "CACHE");
    // Without `uses`, the database injects nothing.
    model(
        r#"
services:
  - {name: web, image: web:1, env: [{name: ORDERS_DB_URL, value: x}]}
databases:
  - {name: orders-db, engine: postgres}
"#,
    );
}

#[test]
fn effective_scaling_min_above_max() {
    // Each scaling is valid on its own; merged per field they are not.
    assert_only(
        &errors(
            r#"
services:
  - {name: web, image: web:1, scaling: {maxReplicas: 3}, resources: {requests: {cpu: 100m}}}
scaling: {minReplicas: 5, maxReplicas: 10}
"#,
        ),
        "spec.services[0].scaling",
        "with spec.scaling's defaults filled in, this service's scaling has minReplicas 5 above maxReplicas 3: set both on the service",
    );
    assert_only(
        &errors(
            r#"
services:
  - {name: web, image: web:1, replicas: 1}
  - {name: api, image: api:1, scaling: {minReplicas: 4}, resources: {requests: {cpu: 100m}}}
scaling: {maxReplicas: 2}
"#,
        ),
        "spec.services[1].scaling",
        "minReplicas 4 above maxReplicas 2",
    );
}

#[test]
fn autoscaling_without_a_cpu_request() {
    assert_only(
        &errors(
            r#"
services:
  - {name: web, image: web:1, scaling: {minReplicas: 2, maxReplicas: 4}, resources: {requests: {memory: 128Mi}, limits: {cpu: "1"}}}
"#,
        ),
        "spec.services[0].resources.requests.cpu",
        "set resources.requests.cpu, or set replicas for a fixed count",
    );
    // Through spec.scaling, every service that does not set replicas autoscales.
    let errs = errors(
        r#"
services:
  - {name: web, image: web:1, resources: {requests: {cpu: 100m}}}
  - {name: api, image: api:1}
  - {name: batch, image: batch:1, replicas: 1}
scaling: {maxReplicas: 3}
"#,
    );
    assert_only(
        &errs,
        "spec.services[1].resources.requests.cpu",
        "measured against the CPU request",
    );
}

#[test]
fn request_above_limit() {
    assert_only(
        &errors(
            r#"
services:
  - {name: web, image: web:1, resources: {requests: {cpu: "2"}, limits: {cpu: 1500m}}}
"#,
        ),
        "spec.services[0].resources.requests.cpu",
        "the cpu request 2 is above the limit 1500m: raise the limit or lower the request",
    );
    assert_only(
        &errors(
            r#"
services:
  - {name: web, image: web:1, resources: {requests: {memory: 1Gi}, limits: {memory: 1000Mi}}}
"#,
        ),
        "spec.services[0].resources.requests.memory",
        "the memory request 1Gi is above the limit 1000Mi",
    );
    // Equal amounts in different units are within the limit.
    model(
        r#"
services:
  - {name: web, image: web:1, resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {cpu: "0.5", memory: 1024Mi}}}
"#,
    );
}

#[test]
fn duplicate_route_path() {
    assert_only(
        &errors(
            r#"
gateway:
  routes:
    - {path: /api, service: api}
    - {path: /, service: web}
    - {path: /api, service: web}
services:
  - {name: web, image: web:1, ports: [{name: http, port: 8080}]}
  - {name: api, image: api:1, ports: [{name: http, port: 8080}]}
"#,
        ),
        "spec.gateway.routes[2].path",
        "path `/api` is routed twice: each path goes to one service",
    );
}

#[test]
fn route_to_a_service_without_ports() {
    assert_only(
        &errors(
            r#"
gateway:
  routes: [{path: /, service: web}, {path: /jobs, service: worker}]
services:
  - {name: web, image: web:1, ports: [{name: http, port: 8080}]}
  - {name: worker, image: worker:1}
"#,
        ),
        "spec.gateway.routes[1].service",
        "service `worker` declares no ports, so the gateway cannot send it traffic: add a port to the service",
    );
}

// ---------------------------------------------------------------------------------------------
// Valid specs and the defaults they resolve to.
// ---------------------------------------------------------------------------------------------

fn samples() -> Vec<(String, Value)> {
    let dir = repo_root().join("samples");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value =
                serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_sample_validates() {
    let samples = samples();
    assert!(samples.len() >= 4, "samples/ has {} files", samples.len());
    for (file, doc) in samples {
        assert_eq!(doc["kind"], "Application", "{file}");
        let name = doc["metadata"]["name"].as_str().unwrap();
        // Samples name no namespace: `kubectl apply -n <namespace>` chooses it.
        assert!(doc["metadata"].get("namespace").is_none(), "{file}");
        let ns = "team-a";
        if let Err(e) = validate_value(name, ns, &doc["spec"]) {
            panic!("samples/{file} is invalid: {e}");
        }
        // The typed path the controller takes agrees.
        let mut in_namespace = doc.clone();
        in_namespace["metadata"]["namespace"] = ns.into();
        let app: Application = serde_json::from_value(in_namespace).unwrap();
        let model = validate(&app).unwrap_or_else(|e| panic!("samples/{file}: {e}"));
        assert_eq!((model.name.as_str(), model.namespace.as_str()), (name, ns));
        // So does the path it takes for a generation whose schema and CEL rules passed before.
        assert_eq!(validate_schema_checked(&app), Ok(model), "samples/{file}");
    }
}

#[test]
fn a_schema_checked_spec_still_gets_the_semantic_checks() {
    // Passes the schema and CEL rules, fails a semantic check: the controller's fast path for an
    // already validated generation reports it the same way.
    let app: Application = serde_json::from_value(serde_json::json!({
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "a".repeat(60), "namespace": "shop"},
        "spec": {"services": [{"name": "web", "image": "web:1"}]},
    }))
    .unwrap();
    let full = validate(&app).unwrap_err();
    assert_eq!(validate_schema_checked(&app), Err(full.clone()));
    assert_has(&full.errors, "spec.services[0].name", "63");
}

#[test]
fn typed_validation_defaults_the_namespace() {
    let app: Application = serde_json::from_value(serde_json::json!({
        "apiVersion": "keelson.dev/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "hello"},
        "spec": {"services": [{"name": "web", "image": "web:1"}]},
    }))
    .unwrap();
    let m = validate(&app).unwrap();
    assert_eq!(m.namespace, "default");
    assert_eq!(m.services[0].object_name, "hello-web");
}

#[test]
fn one_replica_without_scaling() {
    let m = model("services: [{name: web, image: web:1}]");
    let s = &m.services[0];
    assert_eq!(s.replicas, Replicas::Fixed(1));
    assert_eq!(s.object_name, "shop-web");
    assert_eq!(s.metrics, None);
    assert!(s.uses.is_empty());
    assert_eq!(m.gateway, None);
    assert!(m.databases.is_empty());
}

#[test]
fn scaling_is_merged_per_field_with_spec_scaling() {
    let m = model(
        r#"
services:
  - {name: a, image: a:1, resources: {requests: {cpu: 100m}}}
  - {name: b, image: b:1, scaling: {maxReplicas: 4}, resources: {requests: {cpu: 100m}}}
  - {name: c, image: c:1, scaling: {targetCPUUtilization: 50}, resources: {requests: {cpu: 100m}}}
  - {name: d, image: d:1, replicas: 3}
  - {name: e, image: e:1, scaling: {minReplicas: 10}}
scaling: {minReplicas: 2, maxReplicas: 10, targetCPUUtilization: 60}
"#,
    );
    let replicas: Vec<Replicas> = m.services.iter().map(|s| s.replicas).collect();
    assert_eq!(
        replicas,
        vec![
            Replicas::Autoscaled {
                min: 2,
                max: 10,
                target_cpu: 60
            },
            Replicas::Autoscaled {
                min: 2,
                max: 4,
                target_cpu: 60
            },
            Replicas::Autoscaled {
                min: 2,
                max: 10,
                target_cpu: 50
            },
            Replicas::Fixed(3),
            // min == max: no autoscaler, so no CPU request needed.
            Replicas::Fixed(10),
        ]
    );
}

#[test]
fn scaling_defaults_without_spec_scaling() {
    let m = model(
        r#"
services:
  - {name: a, image: a:1, scaling: {maxReplicas: 3}, resources: {requests: {cpu: 100m}}}
  - {name: b, image: b:1, scaling: {minReplicas: 2}}
  - {name: c, image: c:1, scaling: {}}
"#,
    );
    assert_eq!(
        m.services[0].replicas,
        Replicas::Autoscaled {
            min: 1,
            max: 3,
            target_cpu: 80
        }
    );
    // maxReplicas defaults to minReplicas: a fixed count.
    assert_eq!(m.services[1].replicas, Replicas::Fixed(2));
    assert_eq!(m.services[2].replicas, Replicas::Fixed(1));
    assert_eq!(m.services[1].replicas.min(), 2);
    assert_eq!(m.services[0].replicas.min(), 1);
}

#[test]
fn metrics_defaults() {
    let m = model(
        r#"
services:
  - {name: a, image: a:1, ports: [{name: http, port: 80}], metrics: {port: http}}
  - {name: b, image: b:1, ports: [{name: metrics, port: 9090}], metrics: {port: metrics, path: /prom, interval: 1m}}
"#,
    );
    assert_eq!(
        m.services[0].metrics,
        Some(MetricsModel {
            port: "http".into(),
            path: "/metrics".into(),
            interval: "30s".into()
        })
    );
    assert_eq!(
        m.services[1].metrics,
        Some(MetricsModel {
            port: "metrics".into(),
            path: "/prom".into(),
            interval: "1m".into()
        })
    );
}

#[test]
fn database_defaults() {
    let m = model(
        r#"
services:
  - {name: web, image: web:1, uses: [orders-db, sessions, cache]}
databases:
  - {name: orders-db, engine: postgres}
  - {name: sessions, engine: mysql}
  - {name: cache, engine: redis}
  - {name: legacy, engine: postgres, version: "13"}
  - {name: custom, engine: postgres, version: "13", image: registry.example.com/pg:13-acme}
  - {name: big, engine: mysql, storage: {size: 50Gi, storageClassName: fast}, deletionPolicy: Delete}
  - {name: kept, engine: redis, deletionPolicy: Retain}
"#,
    );
    let images: Vec<&str> = m.databases.iter().map(|d| d.image.as_str()).collect();
    assert_eq!(
        images,
        [
            "docker.io/library/postgres:16",
            "docker.io/library/mysql:8.4",
            "docker.io/library/redis:7",
            "docker.io/library/postgres:13",
            "registry.example.com/pg:13-acme",
            "docker.io/library/mysql:8.4",
            "docker.io/library/redis:7",
        ]
    );
    let sizes: Vec<&str> = m
        .databases
        .iter()
        .map(|d| d.storage_size.as_str())
        .collect();
    assert_eq!(sizes, ["1Gi", "1Gi", "1Gi", "1Gi", "1Gi", "50Gi", "1Gi"]);
    let deletes: Vec<bool> = m.databases.iter().map(|d| d.delete_volume).collect();
    assert_eq!(deletes, [false, false, false, false, false, true, false]);
    assert_eq!(
        m.databases[5].spec.deletion_policy,
        Some(DeletionPolicy::Delete)
    );

    let orders = &m.databases[0];
    assert_eq!(orders.object_name, "shop-orders-db");
    assert_eq!(orders.secret_name, "shop-orders-db-credentials");

    let uses = &m.services[0].uses;
    let resolved: Vec<(&str, Engine, &str, &str)> = uses
        .iter()
        .map(|u| {
            (
                u.name.as_str(),
                u.engine,
                u.secret_name.as_str(),
                u.env_prefix.as_str(),
            )
        })
        .collect();
    assert_eq!(
        resolved,
        [
            (
                "orders-db",
                Engine::Postgres,
                "shop-orders-db-credentials",
                "ORDERS_DB"
            ),
            (
                "sessions",
                Engine::Mysql,
                "shop-sessions-credentials",
                "SESSIONS"
            ),
            ("cache", Engine::Redis, "shop-cache-credentials", "CACHE"),
        ]
    );
}

#[test]
fn gateway_resolution() {
    let m = model(
        r#"
gateway:
  hosts: [shop.example.com, www.shop.example.com]
  tls: {secretName: shop-tls}
  routes:
    - {path: /api, service: api, port: grpc}
    - {path: /, service: web}
services:
  - {name: web, image: web:1, ports: [{name: http, port: 8080}, {name: admin, port: 9090}]}
  - {name: api, image: api:1, ports: [{name: http, port: 8000}, {name: grpc, port: 9000}]}
"#,
    );
    let gw = m.gateway.unwrap();
    assert_eq!(gw.url.as_deref(), Some("https://shop.example.com"));
    assert_eq!(
        gw.kind,
        GatewayKind::Ingress {
            class_name: None,
            tls_secret: Some("shop-tls".into())
        }
    );
    let routes: Vec<(&str, &str, &str, i32)> = gw
        .routes
        .iter()
        .map(|r| {
            (
                r.path.as_str(),
                r.backend.as_str(),
                r.port_name.as_str(),
                r.port_number,
            )
        })
        .collect();
    // Without a port, a route goes to the service's first port.
    assert_eq!(
        routes,
        [
            ("/api", "shop-api", "grpc", 9000),
            ("/", "shop-web", "http", 8080)
        ]
    );

    let m = model(
        r#"
gateway:
  hosts: [blog.example.com]
  parentRefs: [{name: public, namespace: gateway-system}]
  routes: [{path: /, service: web}]
services:
  - {name: web, image: web:1, ports: [{name: http, port: 8080}]}
"#,
    );
    let gw = m.gateway.unwrap();
    assert_eq!(gw.url.as_deref(), Some("http://blog.example.com"));
    let GatewayKind::HttpRoute { parent_refs } = gw.kind else {
        panic!("expected an HTTPRoute, got {:?}", gw.kind)
    };
    assert_eq!(parent_refs[0].name, "public");
    assert_eq!(parent_refs[0].namespace.as_deref(), Some("gateway-system"));

    let m = model(
        r#"
gateway: {routes: [{path: /, service: web}]}
services: [{name: web, image: web:1, ports: [{name: http, port: 8080}]}]
"#,
    );
    assert_eq!(m.gateway.unwrap().url, None);
}

#[test]
fn quantities_compare_across_units() {
    for (q, want_nanos) in [
        ("100m", 100_000_000u128),
        ("2", 2_000_000_000),
        ("0.5", 500_000_000),
        ("1Ki", 1024 * 1_000_000_000),
        ("128Mi", 128 * 1024 * 1024 * 1_000_000_000),
        ("1G", 1_000_000_000 * 1_000_000_000),
        ("1e3", 1000 * 1_000_000_000),
        ("2E2", 200 * 1_000_000_000),
        ("1E", 1_000_000_000_000_000_000 * 1_000_000_000),
    ] {
        let got = quantity::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(got.nanos(), want_nanos, "{q}");
    }
    assert!(quantity::parse("lots").is_err());
    assert!(quantity::parse("1GB").is_err());
}

// ---------------------------------------------------------------------------------------------
// Checks added with the fixes of real bugs (each fails on the code before the fix).
// ---------------------------------------------------------------------------------------------

#[test]
fn database_request_above_limit() {
    // The API server rejects a StatefulSet whose pod requests more than its limit, so the
    // controller could never apply it.
    assert_only(
        &errors(
            r#"
services: [{name: web, image: web:1}]
databases:
  - {name: db, engine: postgres, resources: {requests: {memory: 2Gi}, limits: {memory: 1Gi}}}
"#,
        ),
        "spec.databases[0].resources.requests.memory",
        "the memory request 2Gi is above the limit 1Gi: raise the limit or lower the request",
    );
    assert_only(
        &errors(
            r#"
services: [{name: web, image: web:1}]
databases:
  - {name: db, engine: redis, resources: {requests: {cpu: 500m}, limits: {cpu: 250m}}}
"#,
        ),
        "spec.databases[0].resources.requests.cpu",
        "the cpu request 500m is above the limit 250m",
    );
}

#[test]
fn application_name_that_cannot_prefix_a_service_name() {
    // Application names are DNS subdomains; Kubernetes Service names, which start with the
    // Application's name, must be DNS-1035 labels (a leading letter, no dots).
    for bad in ["shop.v2", "2shop"] {
        assert_only(
            &errors_named(bad, "services: [{name: web, image: web:1}]"),
            "metadata.name",
            "rename the Application",
        );
    }
    let errs = errors_named("shop.v2", "services: [{name: web, image: web:1}]");
    assert!(errs[0].message.contains("`shop.v2`"), "{errs:#?}");
    for good in ["shop", "shop-v2", "s", "a1"] {
        model_named(good, "services: [{name: web, image: web:1}]");
    }
}

#[test]
fn duplicate_port_names() {
    // ports is a list map keyed by name: the API server rejects the duplicate, and so would it
    // reject the Deployment and Service `keelson render` printed for it.
    assert_only(
        &errors(
            r#"
services:
  - {name: web, image: web:1, ports: [{name: http, port: 8080}, {name: http, port: 8081}]}
"#,
        ),
        "spec.services[0].ports[1].name",
        "port name `http` is used twice: each port needs its own name",
    );
}

#[test]
fn database_listed_twice_in_uses() {
    // uses is a set: the API server rejects the duplicate. Renaming a database would not help.
    let errs = errors(
        r#"
services:
  - {name: web, image: web:1, uses: [orders-db, cache, orders-db]}
databases:
  - {name: orders-db, engine: postgres}
  - {name: cache, engine: redis}
"#,
    );
    assert_only(
        &errs,
        "spec.services[0].uses[2]",
        "database `orders-db` is listed twice in uses: list it once",
    );
}

mod duplicates_the_schema_rejects_as_list_map_keys {
    use keelson::api::validate::validate_value;
    use serde_json::json;

    fn errors(spec: serde_json::Value) -> Vec<(String, String)> {
        validate_value("shop", "shop", &spec)
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    #[test]
    fn a_duplicate_env_var_is_rejected() {
        let e = errors(json!({"services": [{"name": "web", "image": "x:1",
            "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}]}));
        assert!(
            e.iter()
                .any(|(f, m)| f == "spec.services[0].env[1].name" && m.contains("set twice")),
            "{e:?}"
        );
    }

    #[test]
    fn a_duplicate_host_is_rejected() {
        let e = errors(
            json!({"services": [{"name": "web", "image": "x:1", "ports": [{"name": "http", "port": 80}]}],
            "gateway": {"hosts": ["a.example.com", "a.example.com"], "routes": [{"path": "/", "service": "web"}]}}),
        );
        assert!(
            e.iter()
                .any(|(f, m)| f == "spec.gateway.hosts[1]" && m.contains("listed twice")),
            "{e:?}"
        );
    }

    #[test]
    fn argo_cd_tracking_annotations_are_refused_on_the_gateway() {
        let e = errors(
            json!({"services": [{"name": "web", "image": "x:1", "ports": [{"name": "http", "port": 80}]}],
            "gateway": {"annotations": {"argocd.argoproj.io/tracking-id": "x"}, "routes": [{"path": "/", "service": "web"}]}}),
        );
        assert!(
            e.iter()
                .any(|(f, m)| f == "spec.gateway.annotations" && m.contains("Argo CD")),
            "{e:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Parity with the API server: every value that flows into a generated object follows the rule
// the API server (or the target CRD) applies to that object's field. The cases under
// tests/cases/parity/ are inputs a Kubernetes 1.36 API server refused (each file's comment says
// what it answered); each is read as `keelson render` reads it.
// ---------------------------------------------------------------------------------------------

mod parity {
    use super::*;
    use keelson::{
        build::{ApiCapabilities, Credentials},
        render::{RenderError, render_values},
    };

    fn case(name: &str) -> String {
        let path = repo_root().join("operator/tests/cases/parity").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn creds(_: &str) -> Credentials {
        Credentials {
            password: "pw".into(),
            admin_password: "admin".into(),
        }
    }

    fn render_errors(input: &str) -> Vec<FieldError> {
        match render_values(input, ApiCapabilities::ALL, creds) {
            Err(RenderError::Invalid { source, .. }) => source.errors,
            Err(e) => panic!("expected an invalid spec, got {e}"),
            Ok(objects) => panic!("expected an invalid spec, got {} objects", objects.len()),
        }
    }

    fn case_errors(name: &str) -> Vec<FieldError> {
        render_errors(&case(name))
    }

    #[test]
    fn port_names_are_iana_service_names() {
        let errs = case_errors("01-port-name-all-digits.yaml");
        assert_only(
            &errs,
            "spec.services[0].ports[0].name",
            "`80` must contain at least one letter",
        );
        let errs = case_errors("bughunt-02.yaml");
        assert_has(
            &errs,
            "spec.services[0].ports[0].name",
            "at least one letter",
        );
        assert_has(
            &errs,
            "spec.services[0].ports[1].name",
            "`admin--tls` must not contain two `-` in a row",
        );
        assert_eq!(errs.len(), 2, "{errs:#?}");
        // The same rule in the Rust layer, for specs that skipped the schema (stored generations).
        let mut app: Application = serde_json::from_value(serde_json::json!({
            "apiVersion": "keelson.dev/v1alpha1", "kind": "Application",
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {"services": [{"name": "web", "image": "web:1", "ports": [{"name": "8080", "port": 8080}]}]}
        }))
        .unwrap();
        let errs = validate_schema_checked(&app).unwrap_err().errors;
        assert_only(
            &errs,
            "spec.services[0].ports[0].name",
            "at least one letter",
        );
        app.spec.services[0].ports[0].name = "http-8080".into();
        validate_schema_checked(&app).unwrap();
    }

    #[test]
    fn quantities_follow_apimachinery_exactly() {
        assert_only(
            &case_errors("03-quantity-decimal-exponent.yaml"),
            "spec.services[0].resources.requests.cpu",
            "`1e1.5` is not a Kubernetes quantity",
        );
        let errs = case_errors("04-quantity-negative.yaml");
        assert_has(
            &errs,
            "spec.services[0].resources.requests.cpu",
            "`-1` must not be negative",
        );
        assert_has(
            &errs,
            "spec.services[0].resources.requests.memory",
            "`-1Gi` must not be negative",
        );
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert_only(
            &case_errors("05-request-above-limit-f64-precision.yaml"),
            "spec.services[0].resources.requests.memory",
            "the memory request 1000000000000000001 is above the limit 1000000000000000000",
        );
        // Exponents that cost the API server dearly, or wrap around 32 bits, are refused.
        for q in ["1e-2147483648", "1e4294967296", "1e100"] {
            assert_only(
                &errors(&format!(
                    "services: [{{name: web, image: web:1, resources: {{requests: {{cpu: {q:?}}}}}}}]"
                )),
                "spec.services[0].resources.requests.cpu",
                "exponent beyond two digits",
            );
        }
        // Equal amounts in different spellings are not above each other.
        model(
            "services: [{name: web, image: web:1, resources: {requests: {cpu: 1000m, memory: 1Gi}, limits: {cpu: '1', memory: '1073741824'}}}]",
        );
    }

    #[test]
    fn likely_slips_in_amounts_are_refused_with_a_hint() {
        let errs = case_errors("bughunt-10.yaml");
        assert_has(
            &errs,
            "spec.services[0].resources.requests.memory",
            "`256m` is 0.256 bytes of memory, less than 1Mi, which no container can start with: did you mean `256Mi`?",
        );
        assert_has(
            &errs,
            "spec.services[0].resources.limits.memory",
            "did you mean `512Mi`?",
        );
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert_only(
            &errors("services: [{name: web, image: web:1, resources: {limits: {cpu: '2000'}}}]"),
            "spec.services[0].resources.limits.cpu",
            "`2000` is 2000 CPU cores, more than 1000, which no node has: did you mean `2000m`",
        );
        assert_only(
            &errors(
                "services: [{name: web, image: web:1, resources: {requests: {memory: '1e3'}}}]",
            ),
            "spec.services[0].resources.requests.memory",
            "`1e3` is 1000 bytes of memory, less than 1Mi, which no container can start with: write it with a suffix such as `Mi`",
        );
        assert_only(
            &errors("services: [{name: web, image: web:1, resources: {limits: {memory: '0'}}}]"),
            "spec.services[0].resources.limits.memory",
            "`0` is no memory at all",
        );
        model(
            "services: [{name: web, image: web:1, resources: {requests: {cpu: '1000', memory: 1Mi}}}]",
        );
    }

    #[test]
    fn storage_sizes_are_above_zero() {
        assert_only(
            &case_errors("08-storage-size-zero.yaml"),
            "spec.databases[0].storage.size",
            "`0` is zero, and Kubernetes needs a volume size above zero",
        );
        for (size, want) in [
            ("-1Gi", "must not be negative"),
            ("10m", "did you mean `10Gi`"),
            ("-.5", "must not be negative"),
        ] {
            assert_only(
                &errors(&format!(
                    "services: [{{name: web, image: web:1}}]\ndatabases: [{{name: db, engine: postgres, storage: {{size: {size:?}}}}}]"
                )),
                "spec.databases[0].storage.size",
                want,
            );
        }
    }

    #[test]
    fn references_are_kubernetes_names() {
        let errs = case_errors("10-env-keyref-name-and-key.yaml");
        let at = "spec.services[0].env";
        assert_has(
            &errs,
            &format!("{at}[0].valueFrom.secretKeyRef.name"),
            "`Bad_Name` must consist of lowercase letters",
        );
        assert_has(
            &errs,
            &format!("{at}[0].valueFrom.secretKeyRef.key"),
            "`a b` must consist of letters, digits",
        );
        assert_has(
            &errs,
            &format!("{at}[1].valueFrom.configMapKeyRef.name"),
            "`Bad.Name`",
        );
        assert_has(
            &errs,
            &format!("{at}[1].valueFrom.configMapKeyRef.key"),
            "`..` must not be `.` or start with `..`",
        );
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert_only(
            &case_errors("11-service-account-name.yaml"),
            "spec.services[0].serviceAccountName",
            "`Bad_SA` must consist of lowercase letters",
        );
        assert_only(
            &case_errors("14-ingress-class-name.yaml"),
            "spec.gateway.className",
            "`Nginx_X` must consist of lowercase letters",
        );
        assert_only(
            &errors(
                "services: [{name: web, image: web:1}]\ndatabases: [{name: db, engine: postgres, storage: {storageClassName: Fast_SSD}}]",
            ),
            "spec.databases[0].storage.storageClassName",
            "`Fast_SSD` must consist of lowercase letters",
        );
        assert_only(
            &errors(
                "gateway: {tls: {secretName: My_Cert}, routes: [{path: /, service: web}]}\nservices: [{name: web, image: web:1, ports: [{name: http, port: 80}]}]",
            ),
            "spec.gateway.tls.secretName",
            "`My_Cert` must consist of lowercase letters",
        );
    }

    #[test]
    fn images_without_surrounding_whitespace() {
        assert_only(
            &case_errors("13-image-whitespace-pods-rejected.yaml"),
            "spec.services[0].image",
            "` nginx:1.27` must not have leading or trailing whitespace",
        );
        assert_only(
            &errors(
                "services: [{name: web, image: web:1}]\ndatabases: [{name: db, engine: postgres, image: \"postgres:16\\t\"}]",
            ),
            "spec.databases[0].image",
            "`postgres:16\\t` must not have leading or trailing whitespace",
        );
        assert_only(
            &errors("services: [{name: web, image: ' '}]"),
            "spec.services[0].image",
            "must not be empty",
        );
    }

    #[test]
    fn more_than_16_routes_to_one_service_make_one_httproute_rule() {
        let objects = render_values(
            &case("19-httproute-more-than-16-routes.yaml"),
            ApiCapabilities::ALL,
            creds,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let route = objects
            .iter()
            .find(|o| o["kind"] == "HTTPRoute")
            .expect("an HTTPRoute");
        let rules = route["spec"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1, "{rules:#?}");
        let paths: Vec<&str> = rules[0]["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["path"]["value"].as_str().unwrap())
            .collect();
        assert_eq!(paths.len(), 17);
        assert_eq!((paths[0], paths[16]), ("/p1", "/p17"));
    }

    #[test]
    fn more_than_16_routed_services_with_parent_refs_are_refused() {
        let services: Vec<String> = (1..=17)
            .map(|i| format!("{{name: s{i}, image: web:1, ports: [{{name: http, port: 80}}]}}"))
            .collect();
        let routes: Vec<String> = (1..=17)
            .map(|i| format!("{{path: /p{i}, service: s{i}}}"))
            .collect();
        let spec = format!(
            "gateway: {{parentRefs: [{{name: public}}], routes: [{}]}}\nservices: [{}]",
            routes.join(", "),
            services.join(", ")
        );
        assert_only(
            &errors(&spec),
            "spec.gateway.routes",
            "Gateway API allows at most 16 rules; these routes reach 17 service ports",
        );
        // The same routes as an Ingress have no such limit.
        model(&spec.replace("parentRefs: [{name: public}], ", ""));
    }

    #[test]
    fn parent_refs_follow_the_gateway_api_crd() {
        let errs = case_errors("20-httproute-parentref-patterns.yaml");
        assert_has(
            &errs,
            "spec.gateway.parentRefs[0].namespace",
            "`Gateway_System` must consist of lowercase letters",
        );
        assert_has(
            &errs,
            "spec.gateway.parentRefs[0].sectionName",
            "`Https_X` must consist of lowercase letters",
        );
        assert_eq!(errs.len(), 2, "{errs:#?}");
        let with = |refs: &str| {
            format!(
                "gateway: {{parentRefs: {refs}, routes: [{{path: /, service: web}}]}}\nservices: [{{name: web, image: web:1, ports: [{{name: http, port: 80}}]}}]"
            )
        };
        assert_only(
            &errors(&with(
                "[{name: public}, {name: public, sectionName: https}]",
            )),
            "spec.gateway.parentRefs",
            rules::PARENT_REFS_SECTION_WHEN_SHARED.1,
        );
        assert_only(
            &errors(&with(
                "[{name: public, sectionName: https}, {name: public, sectionName: https}]",
            )),
            "spec.gateway.parentRefs",
            rules::PARENT_REFS_UNIQUE.1,
        );
        assert_only(
            &errors(&with("[{name: public}, {name: public}]")),
            "spec.gateway.parentRefs",
            rules::PARENT_REFS_UNIQUE.1,
        );
        // Same name in two namespaces, or two listeners of one Gateway: fine.
        model(&with("[{name: public}, {name: public, namespace: infra}]"));
        model(&with(
            "[{name: public, sectionName: http}, {name: public, sectionName: https}]",
        ));
    }

    #[test]
    fn route_paths_are_normalized() {
        let errs = case_errors("bughunt-04.yaml");
        assert_has(
            &errs,
            "spec.gateway.routes[0].path",
            rules::ROUTE_PATH_NORMALIZED.1,
        );
        assert_has(
            &errs,
            "spec.gateway.routes[1].path",
            rules::ROUTE_PATH_NORMALIZED.1,
        );
        assert_eq!(errs.len(), 2, "{errs:#?}");
        for bad in ["/a/../b", "/a/./b", "/a%2Fb", "/a%2fb", "/static/..", "//"] {
            assert_only(
                &errors(&format!(
                    "gateway: {{routes: [{{path: {bad:?}, service: web}}]}}\nservices: [{{name: web, image: web:1, ports: [{{name: http, port: 80}}]}}]"
                )),
                "spec.gateway.routes[0].path",
                rules::ROUTE_PATH_NORMALIZED.1,
            );
        }
        model(
            "gateway: {routes: [{path: '/a/b.c/..d/%20/~x', service: web}]}\nservices: [{name: web, image: web:1, ports: [{name: http, port: 80}]}]",
        );
    }

    #[test]
    fn hosts_are_dns_names_not_ip_addresses() {
        assert_only(
            &errors(
                "gateway: {hosts: ['10.0.0.1'], routes: [{path: /, service: web}]}\nservices: [{name: web, image: web:1, ports: [{name: http, port: 80}]}]",
            ),
            "spec.gateway.hosts[0]",
            "`10.0.0.1` must be a DNS name, not an IP address",
        );
    }

    #[test]
    fn gateway_annotations_within_kubernetes_limits() {
        // As tests/cases/parity/26-gateway-annotations-too-large.sh prints it.
        let input = format!(
            "apiVersion: keelson.dev/v1alpha1\nkind: Application\nmetadata:\n  name: a26\nspec:\n  gateway:\n    annotations: {{a: \"{}\"}}\n    routes: [{{path: /, service: web}}]\n  services: [{{name: web, image: \"nginx:1.27\", ports: [{{name: http, port: 80}}]}}]\n",
            "v".repeat(270_000)
        );
        assert_only(
            &render_errors(&input),
            "spec.gateway.annotations",
            "the annotations are 270001 bytes in total, over Kubernetes' limit of 262144 bytes",
        );
        assert_only(
            &errors(
                "gateway: {annotations: {'bad key': x}, routes: [{path: /, service: web}]}\nservices: [{name: web, image: web:1, ports: [{name: http, port: 80}]}]",
            ),
            "spec.gateway.annotations",
            "`bad key` must have a name part",
        );
        model(
            "gateway: {annotations: {'Example.com/Key': x}, routes: [{path: /, service: web}]}\nservices: [{name: web, image: web:1, ports: [{name: http, port: 80}]}]",
        );
    }

    #[test]
    fn yaml_1_1_booleans_get_the_clusters_error_and_a_hint() {
        let errs = case_errors("bughunt-07.yaml");
        for (i, b) in [(0, true), (1, true), (2, false)] {
            assert_has(
                &errs,
                &format!("spec.services[0].env[{i}].value"),
                &format!(
                    "must be of type string, found boolean {b}: YAML, as kubectl reads it, takes an unquoted `on`"
                ),
            );
        }
        assert_eq!(errs.len(), 3, "{errs:#?}");
        // Quoted, they are strings.
        let quoted = case("bughunt-07.yaml")
            .replace("value: on", "value: \"on\"")
            .replace("value: yes", "value: 'yes'")
            .replace("value: no", "value: \"no\"");
        render_values(&quoted, ApiCapabilities::ALL, creds).unwrap_or_else(|e| panic!("{e}"));
        // An octal-looking number is a number for kubectl, too.
        let errs = render_errors(
            "apiVersion: keelson.dev/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec: {services: [{name: web, image: web:1, env: [{name: MODE, value: 0755}]}]}\n",
        );
        assert_only(
            &errs,
            "spec.services[0].env[0].value",
            "found number 493: quote the value",
        );
    }

    #[test]
    fn deep_nesting_is_refused_early() {
        // As tests/cases/parity/27-yaml-deep-nesting-slow.sh prints it (depth 40,000, 80 KB).
        let d = 40_000;
        let input = format!(
            "apiVersion: keelson.dev/v1alpha1\nkind: Application\nmetadata: {{name: deep}}\nspec: {{services: [{{name: web, image: nginx, args: {}{}}}]}}\n",
            "[".repeat(d),
            "]".repeat(d)
        );
        let err = render_values(&input, ApiCapabilities::ALL, creds).unwrap_err();
        assert!(matches!(err, RenderError::Yaml { .. }), "{err}");
        assert!(
            err.to_string().contains("nesting deeper than 64 levels"),
            "{err}"
        );
    }
}

/// Transition rules run only where the API server can match a new value with its old one: on
/// the entries of a `map` list keyed by `name`. Placed anywhere else they would never run.
#[test]
fn transition_rules_are_on_the_database_entries() {
    let crd = serde_json::to_value(Application::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let databases = &spec["properties"]["databases"];
    assert_eq!(databases["x-kubernetes-list-type"], "map");
    assert_eq!(
        databases["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
    let on_entries: BTreeSet<String> = databases["items"]["x-kubernetes-validations"]
        .as_array()
        .expect("rules on database entries")
        .iter()
        .map(|r| r["rule"].as_str().unwrap().to_string())
        .collect();
    for rule in [
        rules::ENGINE_UNCHANGED,
        rules::STORAGE_CLASS_UNCHANGED,
        rules::STORAGE_NOT_SHRUNK,
    ] {
        assert!(
            rule.0.contains("oldSelf"),
            "{} is a transition rule",
            rule.0
        );
        assert!(
            on_entries.contains(rule.0),
            "{} is not on spec.databases[]",
            rule.0
        );
    }
    let mut all = BTreeSet::new();
    collect_rules(&crd, &mut all);
    let transition = all.iter().filter(|(r, _)| r.contains("oldSelf")).count();
    assert_eq!(transition, 3, "a transition rule outside spec.databases[]");
}
