//! The parity checks can fail, and the generators can reach every known fault: each example of a
//! known family is planted in objects built from a valid Application and must be caught by the
//! checks; each example must be among what the generators produce; and each Application in
//! `operator/tests/cases/parity` is either refused by Keelson or builds objects that pass every
//! check. The checks of the upstream CRDs and of kubernetes-validate's schemas are separate tests,
//! ignored with their reason when `KEELSON_THIRD_PARTY_CRDS` / `KEELSON_K8S_SCHEMAS` are unset.

mod parity_support;

use std::{io::Write, path::PathBuf};

use keelson::build::ApiCapabilities;
use parity_support::{Checker, generate, k8s};
use proptest::{
    strategy::{Strategy, ValueTree},
    test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
};
use serde_json::{Value, json};

macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

fn baseline(http_route: bool) -> Value {
    let gateway = if http_route {
        json!({"hosts": ["shop.example.com"], "parentRefs": [{"name": "public", "sectionName": "https"}],
               "routes": [{"path": "/", "service": "web"}]})
    } else {
        json!({"hosts": ["shop.example.com"], "className": "nginx", "tls": {"secretName": "shop-tls"},
               "routes": [{"path": "/", "service": "web"}]})
    };
    json!({
        "gateway": gateway,
        "services": [{
            "name": "web", "image": "ghcr.io/acme/web:1.0",
            "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}],
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "web-token", "key": "token"}}}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
            "probes": {"readiness": {"httpGet": {"path": "/ready", "port": "http"}}},
            "metrics": {"port": "metrics"},
            "scaling": {"minReplicas": 2, "maxReplicas": 5},
            "serviceAccountName": "web", "uses": ["db"],
        }],
        "databases": [{"name": "db", "engine": "postgres", "storage": {"size": "1Gi", "storageClassName": "fast"}}],
    })
}

fn built(checker: &Checker, http_route: bool) -> Vec<Value> {
    let spec = baseline(http_route);
    let text = serde_json::to_string(&json!({
        "apiVersion": "keelson.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": "shop", "namespace": "default"}, "spec": spec,
    }))
    .unwrap();
    let objects = keelson::render::render_values(&text, ApiCapabilities::ALL, |_| {
        keelson::build::Credentials {
            password: "p".repeat(32),
            admin_password: "a".repeat(32),
        }
    })
    .expect("the baseline is valid");
    let v = checker.check_objects(&objects);
    assert!(v.is_empty(), "the baseline must pass every check: {v:#?}");
    objects
}

fn find<'a>(objects: &'a mut [Value], kind: &str) -> &'a mut Value {
    objects
        .iter_mut()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

type Plant = fn(&mut [Value]);

/// Each known fault, planted into built objects, and the words of the family that must catch it.
const PLANTED: &[(&str, bool, Plant, &str)] = &[
    (
        "port name of digits only",
        false,
        |o| {
            find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] =
                json!("8080")
        },
        "ports[].name: IsValidPortName",
    ),
    (
        "port name with --",
        false,
        |o| {
            find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] =
                json!("admin--tls")
        },
        "ports[].name: IsValidPortName",
    ),
    (
        "named target port",
        false,
        |o| find(o, "Service")["spec"]["ports"][0]["targetPort"] = json!("80"),
        "targetPort: IsValidPortName",
    ),
    (
        "probe port",
        false,
        |o| {
            find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
                ["port"] = json!("a--b")
        },
        "httpGet.port: ValidatePortNumOrName",
    ),
    (
        "Ingress path //",
        false,
        |o| find(o, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["path"] = json!("/api//v2"),
        "must not contain",
    ),
    (
        "Ingress path /.",
        false,
        |o| find(o, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["path"] = json!("/static/."),
        "cannot end with",
    ),
    (
        "Ingress host IP",
        false,
        |o| find(o, "Ingress")["spec"]["rules"][0]["host"] = json!("1.2.3.4"),
        "not an IP address",
    ),
    (
        "memory 256m",
        false,
        |o| {
            find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
                ["memory"] = json!("256m")
        },
        "at least 1Mi",
    ),
    (
        "decimal exponent",
        false,
        |o| {
            find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
                ["cpu"] = json!("1e1.5")
        },
        "ParseQuantity",
    ),
    (
        "negative quantity",
        false,
        |o| {
            find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
                ["cpu"] = json!("-1")
        },
        "ValidateNonnegativeQuantity",
    ),
    (
        "request above limit by one",
        false,
        |o| {
            let r = &mut find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"];
            r["requests"]["memory"] = json!("1000000000000000001");
            r["limits"]["memory"] = json!("1000000000000000000");
        },
        "must be less than or equal to the limit",
    ),
    (
        "huge negative exponent",
        false,
        |o| {
            find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
                ["cpu"] = json!("1e-2147483648")
        },
        "parse cost",
    ),
    (
        "zero storage",
        false,
        |o| {
            find(o, "StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
                ["storage"] = json!("0")
        },
        "greater than zero",
    ),
    (
        "image with whitespace",
        false,
        |o| {
            find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] =
                json!(" nginx")
        },
        "whitespace",
    ),
    (
        "annotations over 256 KiB",
        false,
        |o| find(o, "Ingress")["metadata"]["annotations"] = json!({"a": "v".repeat(270_000)}),
        "TotalAnnotationSizeLimitB",
    ),
    (
        "Secret key ref name",
        false,
        |o| {
            find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]
                ["secretKeyRef"]["name"] = json!("My_Secret")
        },
        "secretKeyRef.name",
    ),
    (
        "Secret key ref key",
        false,
        |o| {
            find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]
                ["secretKeyRef"]["key"] = json!("..a")
        },
        "IsConfigMapKey",
    ),
    (
        "ServiceAccount name",
        false,
        |o| {
            find(o, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] =
                json!("Web_SA")
        },
        "serviceAccountName",
    ),
    (
        "StorageClass name",
        false,
        |o| {
            find(o, "StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] =
                json!("Fast_SSD")
        },
        "storageClassName",
    ),
    (
        "IngressClass name",
        false,
        |o| find(o, "Ingress")["spec"]["ingressClassName"] = json!("My_Class"),
        "ingressClassName",
    ),
    (
        "TLS Secret name",
        false,
        |o| find(o, "Ingress")["spec"]["tls"][0]["secretName"] = json!("a..b"),
        "tls[].secretName",
    ),
    (
        "annotation key",
        false,
        |o| find(o, "Ingress")["metadata"]["annotations"] = json!({"a/b/c": "x"}),
        "annotations key",
    ),
    (
        "label value",
        false,
        |o| {
            find(o, "Service")["metadata"]["labels"]["app.kubernetes.io/name"] =
                json!("a".repeat(64))
        },
        "IsValidLabelValue",
    ),
    (
        "17 HTTPRoute rules",
        true,
        |o| {
            let r = &mut find(o, "HTTPRoute")["spec"]["rules"];
            let one = r[0].clone();
            *r = json!(
                (0..17)
                    .map(|i| {
                        let mut x = one.clone();
                        x["matches"][0]["path"]["value"] = json!(format!("/p{i}"));
                        x
                    })
                    .collect::<Vec<_>>()
            );
        },
        "HTTPRoute spec.rules",
    ),
    (
        "HTTPRoute path //",
        true,
        |o| {
            find(o, "HTTPRoute")["spec"]["rules"][0]["matches"][0]["path"]["value"] =
                json!("/api//v2")
        },
        "HTTPRoute spec.rules[].matches[].path",
    ),
    (
        "duplicate parentRefs",
        true,
        |o| {
            let p = &mut find(o, "HTTPRoute")["spec"]["parentRefs"];
            p[0] = json!({"name": "public"});
            let first = p[0].clone();
            p.as_array_mut().unwrap().push(first);
        },
        "HTTPRoute spec.parentRefs",
    ),
    (
        "parentRef namespace pattern",
        true,
        |o| find(o, "HTTPRoute")["spec"]["parentRefs"][0]["namespace"] = json!("Infra_NS"),
        "HTTPRoute spec.parentRefs[].namespace",
    ),
    (
        "ServiceMonitor interval",
        false,
        |o| find(o, "ServiceMonitor")["spec"]["endpoints"][0]["interval"] = json!("30 s"),
        "ServiceMonitor spec.endpoints[].interval",
    ),
    (
        "unknown field (k8s-openapi schema)",
        false,
        |o| find(o, "Deployment")["spec"]["replicaz"] = json!(1),
        "OpenAPI schema",
    ),
    (
        "unknown field (kubernetes-validate)",
        false,
        |o| find(o, "Deployment")["spec"]["replicaz"] = json!(1),
        "kubernetes-validate schema",
    ),
    (
        "wrong type (kubernetes-validate)",
        false,
        |o| find(o, "Service")["spec"]["ports"][0]["port"] = json!("80"),
        "kubernetes-validate schema",
    ),
];

/// Which checker a planted fault needs.
#[derive(PartialEq)]
enum Needs {
    Core,
    Crds,
    KubernetesValidate,
}

fn needs(family: &str) -> Needs {
    if family.starts_with("HTTPRoute") || family.starts_with("ServiceMonitor") {
        Needs::Crds
    } else if family.contains("kubernetes-validate") {
        Needs::KubernetesValidate
    } else {
        Needs::Core
    }
}

/// Plant each known fault that `checker` is for and require a family naming it.
fn planted_faults_are_caught(checker: &Checker, which: Needs) {
    let mut n = 0;
    for (what, http_route, plant, family) in PLANTED {
        if needs(family) != which {
            continue;
        }
        n += 1;
        let mut objects = built(checker, *http_route);
        plant(&mut objects);
        let mut found = checker.check_objects(&objects);
        found.extend(parity_support::render_output(&objects));
        assert!(
            found.iter().any(|v| v.family.contains(family)),
            "{what}: no family containing {family:?} among {found:#?}"
        );
    }
    assert!(n > 0, "no planted fault for this checker");
}

#[test]
fn checks_catch_each_known_fault() {
    planted_faults_are_caught(&Checker::new(), Needs::Core);
}

#[test]
#[cfg_attr(
    not(third_party_crds),
    ignore = "needs the upstream HTTPRoute and ServiceMonitor CRDs: run e2e/fetch-third-party-crds.sh and set KEELSON_THIRD_PARTY_CRDS"
)]
fn checks_catch_each_known_fault_upstream_crds() {
    planted_faults_are_caught(&Checker::with_crds(), Needs::Crds);
}

#[test]
#[cfg_attr(
    not(k8s_schemas),
    ignore = "needs kubernetes-validate's schemas: install charts/tests/requirements.txt and set KEELSON_K8S_SCHEMAS (see .ci/run)"
)]
fn checks_catch_each_known_fault_kubernetes_validate() {
    planted_faults_are_caught(&Checker::new(), Needs::KubernetesValidate);
}

#[test]
fn generators_reach_every_example_of_the_issue() {
    type Pred = fn(&generate::GeneratedApp) -> bool;
    fn resources(a: &generate::GeneratedApp) -> impl Iterator<Item = &keelson::api::ResourcesSpec> {
        let svc = a.spec.services.iter().filter_map(|s| s.resources.as_ref());
        svc.chain(a.spec.databases.iter().filter_map(|d| d.resources.as_ref()))
    }
    fn pair(r: &keelson::api::ResourcesSpec, req: &str, lim: &str) -> bool {
        let (Some(rq), Some(lm)) = (&r.requests, &r.limits) else {
            return false;
        };
        (rq.cpu.as_deref() == Some(req) && lm.cpu.as_deref() == Some(lim))
            || (rq.memory.as_deref() == Some(req) && lm.memory.as_deref() == Some(lim))
    }
    fn any_quantity(a: &generate::GeneratedApp, f: fn(&str) -> bool) -> bool {
        resources(a).any(|r| {
            [&r.requests, &r.limits]
                .into_iter()
                .flatten()
                .any(|x| x.cpu.as_deref().is_some_and(f) || x.memory.as_deref().is_some_and(f))
        })
    }
    fn ports(a: &generate::GeneratedApp, name: &str) -> bool {
        a.spec
            .services
            .iter()
            .any(|s| s.ports.iter().any(|p| p.name == name))
    }
    fn paths(a: &generate::GeneratedApp, p: &str) -> bool {
        a.spec
            .gateway
            .as_ref()
            .is_some_and(|g| g.routes.iter().any(|r| r.path.starts_with(p)))
    }
    fn gateway(a: &generate::GeneratedApp, f: fn(&keelson::api::GatewaySpec) -> bool) -> bool {
        a.spec.gateway.as_ref().is_some_and(f)
    }
    fn key_refs(a: &generate::GeneratedApp) -> impl Iterator<Item = &keelson::api::KeyRef> {
        a.spec.services.iter().flat_map(|s| {
            s.env
                .iter()
                .filter_map(|e| e.value_from.as_ref())
                .flat_map(|f| f.secret_key_ref.iter().chain(f.config_map_key_ref.iter()))
        })
    }
    let examples: &[(&str, Pred)] = &[
        ("17 routes with parentRefs", |a| {
            a.spec
                .gateway
                .as_ref()
                .is_some_and(|g| !g.parent_refs.is_empty() && g.routes.len() >= 17)
        }),
        ("port name 8080", |a| ports(a, "8080")),
        ("port name admin--tls", |a| ports(a, "admin--tls")),
        ("path /api//v2", |a| paths(a, "/api//v2")),
        ("path /static/.", |a| paths(a, "/static/.")),
        ("memory 256m", |a| {
            resources(a).any(|r| {
                [&r.requests, &r.limits]
                    .into_iter()
                    .flatten()
                    .any(|x| x.memory.as_deref() == Some("256m"))
            })
        }),
        ("quantity 1e1.5", |a| any_quantity(a, |q| q == "1e1.5")),
        ("negative quantity", |a| {
            any_quantity(a, |q| q.starts_with('-'))
        }),
        (
            "request 1000000000000000001 with limit 1000000000000000000",
            |a| resources(a).any(|r| pair(r, "1000000000000000001", "1000000000000000000")),
        ),
        ("quantity 1e-2147483648", |a| {
            any_quantity(a, |q| q == "1e-2147483648")
        }),
        ("zero storage", |a| {
            a.spec
                .databases
                .iter()
                .any(|d| d.storage.as_ref().and_then(|s| s.size.as_deref()) == Some("0"))
        }),
        ("image with whitespace", |a| {
            a.spec.services.iter().any(|s| s.image.trim() != s.image)
        }),
        ("annotations over 256 KiB", |a| {
            a.spec.gateway.as_ref().is_some_and(|g| {
                g.annotations
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
                    > 256 * 1024
            })
        }),
        ("duplicate parentRefs", |a| {
            a.spec.gateway.as_ref().is_some_and(|g| {
                g.parent_refs
                    .iter()
                    .enumerate()
                    .any(|(i, p)| g.parent_refs[..i].contains(p))
            })
        }),
        ("env value on", |a| {
            a.spec
                .services
                .iter()
                .any(|s| s.env.iter().any(|e| e.value.as_deref() == Some("on")))
        }),
        ("Secret/ConfigMap key ref name not a DNS subdomain", |a| {
            key_refs(a).any(|r| !k8s::is_dns1123_subdomain(&r.name))
        }),
        ("key ref key not a ConfigMap key", |a| {
            key_refs(a).any(|r| !k8s::is_config_map_key(&r.key))
        }),
        ("serviceAccountName not a DNS subdomain", |a| {
            a.spec.services.iter().any(|s| {
                s.service_account_name
                    .as_deref()
                    .is_some_and(|n| !k8s::is_dns1123_subdomain(n))
            })
        }),
        ("storageClassName not a DNS subdomain", |a| {
            a.spec.databases.iter().any(|d| {
                d.storage
                    .as_ref()
                    .and_then(|s| s.storage_class_name.as_deref())
                    .is_some_and(|n| !k8s::is_dns1123_subdomain(n))
            })
        }),
        ("negative storage -1Gi", |a| {
            a.spec
                .databases
                .iter()
                .any(|d| d.storage.as_ref().and_then(|s| s.size.as_deref()) == Some("-1Gi"))
        }),
        ("ingress className not a DNS subdomain", |a| {
            gateway(a, |g| {
                g.class_name
                    .as_deref()
                    .is_some_and(|n| !k8s::is_dns1123_subdomain(n))
            })
        }),
        ("TLS secretName not a DNS subdomain", |a| {
            gateway(a, |g| {
                g.tls
                    .as_ref()
                    .is_some_and(|t| !k8s::is_dns1123_subdomain(&t.secret_name))
            })
        }),
        ("host that is an IP address", |a| {
            gateway(a, |g| {
                g.hosts
                    .iter()
                    .any(|h| h.parse::<std::net::IpAddr>().is_ok())
            })
        }),
        ("HTTPRoute path with #", |a| {
            gateway(a, |g| {
                !g.parent_refs.is_empty() && g.routes.iter().any(|r| r.path.contains('#'))
            })
        }),
        ("path /a%2Fb", |a| paths(a, "/a%2Fb")),
        ("parentRef namespace not a DNS label", |a| {
            gateway(a, |g| {
                g.parent_refs.iter().any(|p| {
                    p.namespace
                        .as_deref()
                        .is_some_and(|n| !k8s::is_dns1123_label(n))
                })
            })
        }),
        ("parentRef sectionName not a DNS subdomain", |a| {
            gateway(a, |g| {
                g.parent_refs.iter().any(|p| {
                    p.section_name
                        .as_deref()
                        .is_some_and(|n| !k8s::is_dns1123_subdomain(n))
                })
            })
        }),
        ("annotation key not a qualified name", |a| {
            gateway(a, |g| {
                g.annotations
                    .keys()
                    .any(|k| !k8s::is_qualified_name(&k.to_lowercase()))
            })
        }),
        ("quantity exponent that wraps 1e2147483647", |a| {
            any_quantity(a, |q| q == "1e2147483647")
        }),
        ("cpu above 1,000 cores 1001", |a| {
            resources(a).any(|r| {
                [&r.requests, &r.limits]
                    .into_iter()
                    .flatten()
                    .any(|x| x.cpu.as_deref() == Some("1001"))
            })
        }),
        ("env name starting with a digit", |a| {
            a.spec.services.iter().any(|s| {
                s.env
                    .iter()
                    .any(|e| e.name.starts_with(|c: char| c.is_ascii_digit()))
            })
        }),
        ("env value with a tab after a newline", |a| {
            a.spec
                .services
                .iter()
                .any(|s| s.env.iter().any(|e| e.value.as_deref() == Some("\n\ta")))
        }),
    ];
    let mut found = vec![0u32; examples.len()];
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = generate::application();
    let n = 4_000;
    for _ in 0..n {
        let app = strategy.new_tree(&mut runner).expect("a value").current();
        for (i, (_, pred)) in examples.iter().enumerate() {
            if pred(&app) {
                found[i] += 1;
            }
        }
    }
    for ((what, _), count) in examples.iter().zip(&found) {
        say!("parity generators: {what}: {count} of {n}");
    }
    let missing: Vec<&str> = examples
        .iter()
        .zip(&found)
        .filter(|(_, c)| **c == 0)
        .map(|((w, _), _)| *w)
        .collect();
    assert!(
        missing.is_empty(),
        "the generators never produce: {missing:?}"
    );
}

/// Each file in `operator/tests/cases/parity/` (inputs a real API server refused when Keelson
/// passed them through) is refused by Keelson or builds objects that pass every check of `checker`.
fn parity_cases_are_refused_or_valid(checker: &Checker) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases/parity");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    let mut failing = Vec::new();
    let mut refused = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        let objects = match keelson::render::render_values(&text, ApiCapabilities::ALL, |_| {
            keelson::build::Credentials {
                password: "p".repeat(32),
                admin_password: "a".repeat(32),
            }
        }) {
            Err(_) => {
                refused += 1;
                continue;
            }
            Ok(o) => o,
        };
        let mut v = checker.check_objects(&objects);
        v.extend(parity_support::render_output(&objects));
        if !v.is_empty() {
            failing.push(format!("{name}: {v:#?}"));
        }
    }
    say!(
        "parity cases: {} files, {refused} refused by Keelson, the others build valid objects",
        files.len()
    );
    assert!(
        failing.is_empty(),
        "accepted case files whose objects break a rule: {failing:#?}"
    );
}

#[test]
fn each_parity_case_is_refused_or_builds_valid_objects() {
    parity_cases_are_refused_or_valid(&Checker::new());
}

#[test]
#[cfg_attr(
    not(third_party_crds),
    ignore = "needs the upstream HTTPRoute and ServiceMonitor CRDs: run e2e/fetch-third-party-crds.sh and set KEELSON_THIRD_PARTY_CRDS"
)]
fn each_parity_case_is_refused_or_builds_valid_objects_upstream_crds() {
    parity_cases_are_refused_or_valid(&Checker::with_crds());
}
