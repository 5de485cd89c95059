//! Validation: an `Application` in, a [`Model`] with every default resolved out, or every problem
//! found, each naming its field and the fix.
//!
//! Three layers, in the order the API server applies the first two:
//! 1. the CRD's OpenAPI schema (types, patterns, ranges, lengths; unknown fields are rejected, as
//!    `kubectl apply` does by default);
//! 2. the CRD's CEL rules, evaluated by kube's CEL engine with the messages the CRD carries;
//! 3. what the schema cannot express (checked only here): lengths of generated names, ports that
//!    probes name, duplicate paths, env vars that collide with injected ones, effective scaling.
//!
//! The controller and `keelson render` both call [`validate`], so both reject the same input
//! with the same messages.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    sync::LazyLock,
};

use kube::{CustomResourceExt, core::cel};
use serde_json::Value;

use super::v1alpha1::*;

/// The longest Kubernetes object name that is also a DNS label (Services, Deployments' pods).
const MAX_LABEL_NAME: usize = 63;
/// StatefulSet names leave room for the pods' `controller-revision-hash` label.
const MAX_STATEFULSET_NAME: usize = 52;

/// Default CPU utilization target of an autoscaled service, in percent.
pub const DEFAULT_TARGET_CPU: i32 = 80;
/// Default metrics path.
pub const DEFAULT_METRICS_PATH: &str = "/metrics";
/// Default scrape interval.
pub const DEFAULT_METRICS_INTERVAL: &str = "30s";
/// Default database volume size.
pub const DEFAULT_STORAGE_SIZE: &str = "1Gi";

/// One problem with the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The JSON path of the field, e.g. `spec.services[1].uses[0]`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in a spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidSpec {
    /// The problems, in the order of the fields.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The validated application: names resolved, defaults applied, references checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The Application's name.
    pub name: String,
    /// The Application's namespace.
    pub namespace: String,
    /// The services, in spec order.
    pub services: Vec<ServiceModel>,
    /// The databases, in spec order.
    pub databases: Vec<DatabaseModel>,
    /// The gateway, if any.
    pub gateway: Option<GatewayModel>,
}

/// How many replicas a service runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replicas {
    /// A fixed count; no autoscaler.
    Fixed(i32),
    /// A HorizontalPodAutoscaler owns the count.
    Autoscaled {
        /// Fewest replicas.
        min: i32,
        /// Most replicas.
        max: i32,
        /// Target average CPU utilization, percent.
        target_cpu: i32,
    },
}

impl Replicas {
    /// The fewest replicas the service runs.
    pub fn min(self) -> i32 {
        match self {
            Replicas::Fixed(n) => n,
            Replicas::Autoscaled { min, .. } => min,
        }
    }
}

/// A validated service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceModel {
    /// The spec as written.
    pub spec: ServiceSpec,
    /// `<application>-<service>`: the name of its Deployment, Service, HPA, PDB, ServiceMonitor.
    pub object_name: String,
    /// Its replicas.
    pub replicas: Replicas,
    /// The databases it uses, resolved.
    pub uses: Vec<DatabaseRef>,
    /// Its metrics endpoint, with defaults applied.
    pub metrics: Option<MetricsModel>,
}

/// A database a service connects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseRef {
    /// The database's name.
    pub name: String,
    /// Its engine.
    pub engine: Engine,
    /// The Secret holding its connection details.
    pub secret_name: String,
    /// The prefix of the env vars, e.g. `ORDERS_DB`.
    pub env_prefix: String,
}

/// A metrics endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsModel {
    /// Port name.
    pub port: String,
    /// HTTP path.
    pub path: String,
    /// Scrape interval.
    pub interval: String,
}

/// A validated database.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseModel {
    /// The spec as written.
    pub spec: Database,
    /// `<application>-<database>`: the StatefulSet's and Service's name.
    pub object_name: String,
    /// `<application>-<database>-credentials`.
    pub secret_name: String,
    /// The container image.
    pub image: String,
    /// Volume size.
    pub storage_size: String,
    /// Whether the volume goes with the database.
    pub delete_volume: bool,
}

/// Which object the gateway becomes.
#[derive(Clone, Debug, PartialEq)]
pub enum GatewayKind {
    /// A networking.k8s.io/v1 Ingress.
    Ingress {
        /// IngressClass.
        class_name: Option<String>,
        /// TLS Secret.
        tls_secret: Option<String>,
    },
    /// A gateway.networking.k8s.io/v1 HTTPRoute.
    HttpRoute {
        /// The Gateways to attach to.
        parent_refs: Vec<ParentRef>,
    },
}

/// A validated gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayModel {
    /// Ingress or HTTPRoute.
    pub kind: GatewayKind,
    /// Host names.
    pub hosts: Vec<String>,
    /// Extra annotations.
    pub annotations: BTreeMap<String, String>,
    /// Routes with their backends resolved.
    pub routes: Vec<RouteModel>,
    /// The application's URL, from the first host.
    pub url: Option<String>,
}

/// A route with its backend resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteModel {
    /// Path prefix.
    pub path: String,
    /// The Kubernetes Service to send traffic to.
    pub backend: String,
    /// The port's name.
    pub port_name: String,
    /// The port's number.
    pub port_number: i32,
}

/// The CRD's schema of `spec`, made strict about unknown fields.
static SPEC_SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let mut schema = spec_schema();
    forbid_unknown_fields(&mut schema);
    jsonschema::options()
        .should_validate_formats(false)
        .build(&schema)
        .expect("the generated CRD schema is a valid JSON schema")
});

/// The CRD's CEL rules, compiled once.
static CEL_SCHEMA: LazyLock<cel::CompiledSchema> =
    LazyLock::new(|| cel::compile_schema(&spec_schema()));

fn spec_schema() -> Value {
    let crd = serde_json::to_value(Application::crd()).expect("CRD serializes");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

fn forbid_unknown_fields(schema: &mut Value) {
    if let Some(obj) = schema.as_object_mut() {
        if obj.contains_key("properties") && !obj.contains_key("additionalProperties") {
            obj.insert("additionalProperties".into(), Value::Bool(false));
        }
        for (_, v) in obj.iter_mut() {
            forbid_unknown_fields(v);
        }
    } else if let Some(items) = schema.as_array_mut() {
        items.iter_mut().for_each(forbid_unknown_fields);
    }
}

/// Validate an Application into a [`Model`].
pub fn validate(app: &Application) -> Result<Model, InvalidSpec> {
    let spec = serde_json::to_value(&app.spec).expect("spec serializes");
    validate_value(
        app.metadata.name.as_deref().unwrap_or_default(),
        app.metadata.namespace.as_deref().unwrap_or("default"),
        &spec,
    )
}

/// Validate a raw spec (as written, possibly with unknown fields or wrong types).
pub fn validate_value(name: &str, namespace: &str, spec: &Value) -> Result<Model, InvalidSpec> {
    let mut errors = schema_errors(spec);
    if errors.is_empty() {
        errors.extend(cel_errors(spec));
    }
    if !errors.is_empty() {
        return Err(InvalidSpec { errors });
    }
    let typed: ApplicationSpec = match serde_path_to_error::deserialize(spec) {
        Ok(s) => s,
        Err(e) => {
            return Err(InvalidSpec {
                errors: vec![FieldError {
                    field: format!("spec.{}", e.path()),
                    message: e.inner().to_string(),
                }],
            });
        }
    };
    check_typed(name, namespace, &typed)
}

/// Validate an Application whose spec is known to pass the schema and CEL rules (the controller
/// validated this very generation before): only the checks of the third layer run, which also
/// build the model.
pub fn validate_schema_checked(app: &Application) -> Result<Model, InvalidSpec> {
    check_typed(
        app.metadata.name.as_deref().unwrap_or_default(),
        app.metadata.namespace.as_deref().unwrap_or("default"),
        &app.spec,
    )
}

fn check_typed(name: &str, namespace: &str, spec: &ApplicationSpec) -> Result<Model, InvalidSpec> {
    let mut v = Checker::default();
    let model = v.check(name, namespace, spec);
    if v.errors.is_empty() {
        Ok(model)
    } else {
        Err(InvalidSpec { errors: v.errors })
    }
}

fn schema_errors(spec: &Value) -> Vec<FieldError> {
    let mut out: Vec<FieldError> = SPEC_SCHEMA
        .iter_errors(spec)
        .map(|e| {
            let field = json_pointer_to_path(&e.instance_path().to_string());
            let message = match e.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    format!(
                        "unknown field{} {}: check the spelling against `kubectl explain application.spec`",
                        if unexpected.len() > 1 { "s" } else { "" },
                        unexpected
                            .iter()
                            .map(|u| format!("`{u}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
                _ => e.to_string(),
            };
            FieldError { field, message }
        })
        .collect();
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

fn json_pointer_to_path(pointer: &str) -> String {
    let mut path = String::from("spec");
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty() {
            path.push_str(&format!("[{seg}]"));
        } else {
            path.push('.');
            path.push_str(&seg);
        }
    }
    path
}

fn cel_errors(spec: &Value) -> Vec<FieldError> {
    match cel::Validator::new().validate_compiled(&CEL_SCHEMA, spec, None) {
        Ok(()) => Vec::new(),
        Err(errs) => errs
            .into_vec()
            .into_iter()
            .map(|e| FieldError {
                field: cel_field(&e.field_path),
                message: e.message,
            })
            .collect(),
    }
}

fn cel_field(path: &str) -> String {
    let p = path.trim_start_matches('.');
    if p.is_empty() {
        "spec".into()
    } else {
        format!("spec.{p}")
    }
}

/// The environment-variable prefix for a database name: `orders-db` gives `ORDERS_DB`.
pub fn env_prefix(database: &str) -> String {
    database.to_ascii_uppercase().replace('-', "_")
}

/// The env var suffixes injected for a database engine.
pub fn injected_env_keys(engine: Engine) -> &'static [(&'static str, &'static str)] {
    match engine {
        Engine::Postgres | Engine::Mysql => &[
            ("HOST", "host"),
            ("PORT", "port"),
            ("USERNAME", "username"),
            ("PASSWORD", "password"),
            ("DATABASE", "database"),
            ("URL", "url"),
        ],
        Engine::Redis => &[
            ("HOST", "host"),
            ("PORT", "port"),
            ("PASSWORD", "password"),
            ("URL", "url"),
        ],
    }
}

/// The official image of an engine at a version.
pub fn default_image(engine: Engine, version: Option<&str>) -> String {
    let (repo, default_version) = match engine {
        Engine::Postgres => ("docker.io/library/postgres", "16"),
        Engine::Mysql => ("docker.io/library/mysql", "8.4"),
        Engine::Redis => ("docker.io/library/redis", "7"),
    };
    format!("{repo}:{}", version.unwrap_or(default_version))
}

#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn check(&mut self, name: &str, namespace: &str, spec: &ApplicationSpec) -> Model {
        if !is_dns_1035_label(name) {
            self.err(
                "metadata.name",
                format!(
                    "the Application's name `{name}` starts the names of Kubernetes Services, which must start with a letter and hold only lowercase letters, digits and `-`: rename the Application"
                ),
            );
        }
        self.unique(
            "spec.services",
            spec.services.iter().map(|s| s.name.as_str()),
            "service",
        );
        self.unique(
            "spec.databases",
            spec.databases.iter().map(|d| d.name.as_str()),
            "database",
        );

        let databases: Vec<DatabaseModel> = spec
            .databases
            .iter()
            .enumerate()
            .map(|(i, d)| self.database(name, i, d))
            .collect();
        let services: Vec<ServiceModel> = spec
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| self.service(name, i, s, spec.scaling.as_ref(), &databases))
            .collect();
        let gateway = spec.gateway.as_ref().map(|g| self.gateway(g, &services));
        Model {
            name: name.to_string(),
            namespace: namespace.to_string(),
            services,
            databases,
            gateway,
        }
    }

    fn unique<'a>(&mut self, field: &str, names: impl Iterator<Item = &'a str>, what: &str) {
        let mut seen = BTreeSet::new();
        for (i, n) in names.enumerate() {
            if !seen.insert(n) {
                self.err(
                    format!("{field}[{i}].name"),
                    format!("{what} name `{n}` is used twice: each {what} needs its own name"),
                );
            }
        }
    }

    fn object_name(&mut self, field: String, app: &str, component: &str, max: usize) -> String {
        let object = format!("{app}-{component}");
        if object.len() > max {
            self.err(
                field,
                format!(
                    "the object name `{object}` (application name + `-` + `{component}`) is {} characters, over Kubernetes' limit of {max}: shorten the name of the Application or of `{component}`",
                    object.len()
                ),
            );
        }
        object
    }

    fn database(&mut self, app: &str, i: usize, d: &Database) -> DatabaseModel {
        let object_name = self.object_name(
            format!("spec.databases[{i}].name"),
            app,
            &d.name,
            MAX_STATEFULSET_NAME,
        );
        if let Some(r) = &d.resources {
            self.requests_within_limits(&format!("spec.databases[{i}].resources"), r);
        }
        DatabaseModel {
            secret_name: format!("{object_name}-credentials"),
            object_name,
            image: d
                .image
                .clone()
                .unwrap_or_else(|| default_image(d.engine, d.version.as_deref())),
            storage_size: d
                .storage
                .as_ref()
                .and_then(|s| s.size.clone())
                .unwrap_or_else(|| DEFAULT_STORAGE_SIZE.into()),
            delete_volume: d.deletion_policy == Some(DeletionPolicy::Delete),
            spec: d.clone(),
        }
    }

    fn service(
        &mut self,
        app: &str,
        i: usize,
        s: &ServiceSpec,
        defaults: Option<&Scaling>,
        databases: &[DatabaseModel],
    ) -> ServiceModel {
        let field = format!("spec.services[{i}]");
        let object_name = self.object_name(format!("{field}.name"), app, &s.name, MAX_LABEL_NAME);

        self.unique(
            &format!("{field}.ports"),
            s.ports.iter().map(|p| p.name.as_str()),
            "port",
        );
        let mut port_numbers = BTreeSet::new();
        for (j, p) in s.ports.iter().enumerate() {
            if !port_numbers.insert((p.port, p.protocol.unwrap_or(Protocol::Tcp) == Protocol::Tcp))
            {
                self.err(
                    format!("{field}.ports[{j}].port"),
                    format!(
                        "port number {} is declared twice: give each port its own number",
                        p.port
                    ),
                );
            }
        }
        let port_names: BTreeSet<&str> = s.ports.iter().map(|p| p.name.as_str()).collect();
        if let Some(probes) = &s.probes {
            for (kind, probe) in [
                ("liveness", &probes.liveness),
                ("readiness", &probes.readiness),
                ("startup", &probes.startup),
            ] {
                let Some(probe) = probe else { continue };
                let port = probe
                    .http_get
                    .as_ref()
                    .map(|h| ("httpGet", h.port.as_str()))
                    .or(probe
                        .tcp_socket
                        .as_ref()
                        .map(|t| ("tcpSocket", t.port.as_str())));
                if let Some((handler, port)) = port
                    && !port_names.contains(port)
                {
                    self.err(
                        format!("{field}.probes.{kind}.{handler}.port"),
                        format!(
                            "the probe checks port `{port}`, but service `{}` declares {}: name one of its ports",
                            s.name,
                            declared(&port_names)
                        ),
                    );
                }
            }
        }

        let mut listed = BTreeSet::new();
        for (j, u) in s.uses.iter().enumerate() {
            if !listed.insert(u.as_str()) {
                self.err(
                    format!("{field}.uses[{j}]"),
                    format!("database `{u}` is listed twice in uses: list it once"),
                );
            }
        }
        let mut resolved = BTreeSet::new();
        let uses: Vec<DatabaseRef> = s
            .uses
            .iter()
            .filter(|u| resolved.insert(u.as_str()))
            .filter_map(|u| databases.iter().find(|d| &d.spec.name == u))
            .map(|d| DatabaseRef {
                name: d.spec.name.clone(),
                engine: d.spec.engine,
                secret_name: d.secret_name.clone(),
                env_prefix: env_prefix(&d.spec.name),
            })
            .collect();
        let mut injected: BTreeMap<String, String> = BTreeMap::new();
        for db in &uses {
            for (suffix, _) in injected_env_keys(db.engine) {
                let var = format!("{}_{suffix}", db.env_prefix);
                if let Some(other) = injected.insert(var.clone(), db.name.clone()) {
                    self.err(
                        format!("{field}.uses"),
                        format!(
                            "databases `{other}` and `{}` both inject `{var}`: rename one of them",
                            db.name
                        ),
                    );
                }
            }
        }
        let mut env_names = BTreeSet::new();
        for (j, e) in s.env.iter().enumerate() {
            if !env_names.insert(e.name.as_str()) {
                self.err(
                    format!("{field}.env[{j}].name"),
                    format!("env var `{}` is set twice: keep one", e.name),
                );
            }
            if let Some(db) = injected.get(&e.name) {
                self.err(
                    format!("{field}.env[{j}].name"),
                    format!(
                        "`{}` is set by Keelson from database `{db}` (listed in uses): remove this env var or rename it",
                        e.name
                    ),
                );
            }
        }

        let replicas = self.replicas(&field, s, defaults);
        if let Replicas::Autoscaled { .. } = replicas {
            let has_cpu_request = s
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.cpu.as_ref())
                .is_some();
            if !has_cpu_request {
                self.err(
                    format!("{field}.resources.requests.cpu"),
                    "the service autoscales on CPU utilization, which is measured against the CPU request: set resources.requests.cpu, or set replicas for a fixed count",
                );
            }
        }
        if let Some(r) = &s.resources {
            self.requests_within_limits(&format!("{field}.resources"), r);
        }

        ServiceModel {
            object_name,
            replicas,
            uses,
            metrics: s.metrics.as_ref().map(|m| MetricsModel {
                port: m.port.clone(),
                path: m
                    .path
                    .clone()
                    .unwrap_or_else(|| DEFAULT_METRICS_PATH.into()),
                interval: m
                    .interval
                    .clone()
                    .unwrap_or_else(|| DEFAULT_METRICS_INTERVAL.into()),
            }),
            spec: s.clone(),
        }
    }

    fn replicas(&mut self, field: &str, s: &ServiceSpec, defaults: Option<&Scaling>) -> Replicas {
        if let Some(n) = s.replicas {
            return Replicas::Fixed(n);
        }
        let own = s.scaling.as_ref();
        let pick =
            |f: fn(&Scaling) -> Option<i32>| own.and_then(f).or_else(|| defaults.and_then(f));
        let min = pick(|s| s.min_replicas).unwrap_or(1);
        let max = pick(|s| s.max_replicas).unwrap_or(min);
        let target_cpu = pick(|s| s.target_cpu_utilization).unwrap_or(DEFAULT_TARGET_CPU);
        if min > max {
            self.err(
                format!("{field}.scaling"),
                format!(
                    "with spec.scaling's defaults filled in, this service's scaling has minReplicas {min} above maxReplicas {max}: set both on the service"
                ),
            );
        }
        if max > min {
            Replicas::Autoscaled {
                min,
                max,
                target_cpu,
            }
        } else {
            Replicas::Fixed(min)
        }
    }

    fn requests_within_limits(&mut self, field: &str, r: &ResourcesSpec) {
        let (Some(req), Some(lim)) = (&r.requests, &r.limits) else {
            return;
        };
        for (what, q, l) in [
            ("cpu", &req.cpu, &lim.cpu),
            ("memory", &req.memory, &lim.memory),
        ] {
            if let (Some(q), Some(l)) = (q, l)
                && let (Some(qv), Some(lv)) = (parse_quantity(q), parse_quantity(l))
                && qv > lv
            {
                self.err(
                    format!("{field}.requests.{what}"),
                    format!(
                        "the {what} request {q} is above the limit {l}: raise the limit or lower the request"
                    ),
                );
            }
        }
    }

    fn gateway(&mut self, g: &GatewaySpec, services: &[ServiceModel]) -> GatewayModel {
        let mut hosts = BTreeSet::new();
        for (i, h) in g.hosts.iter().enumerate() {
            if !hosts.insert(h.as_str()) {
                self.err(
                    format!("spec.gateway.hosts[{i}]"),
                    format!("host `{h}` is listed twice: list it once"),
                );
            }
        }
        for key in g.annotations.keys() {
            if key.starts_with("argocd.argoproj.io/") {
                self.err(
                    "spec.gateway.annotations",
                    format!(
                        "`{key}` is Argo CD's tracking annotation: on a child it makes Argo CD track (and prune) the child itself; remove it"
                    ),
                );
            }
        }
        let mut paths = BTreeSet::new();
        let mut routes = Vec::new();
        for (i, r) in g.routes.iter().enumerate() {
            let field = format!("spec.gateway.routes[{i}]");
            if !paths.insert(r.path.as_str()) {
                self.err(
                    format!("{field}.path"),
                    format!(
                        "path `{}` is routed twice: each path goes to one service",
                        r.path
                    ),
                );
            }
            let Some(svc) = services.iter().find(|s| s.spec.name == r.service) else {
                continue; // reported by the CEL rule
            };
            let port = match &r.port {
                Some(name) => svc.spec.ports.iter().find(|p| &p.name == name),
                None => svc.spec.ports.first(),
            };
            match port {
                Some(p) => routes.push(RouteModel {
                    path: r.path.clone(),
                    backend: svc.object_name.clone(),
                    port_name: p.name.clone(),
                    port_number: p.port,
                }),
                None if r.port.is_none() => self.err(
                    format!("{field}.service"),
                    format!(
                        "service `{}` declares no ports, so the gateway cannot send it traffic: add a port to the service",
                        r.service
                    ),
                ),
                None => {} // reported by the CEL rule
            }
        }
        let kind = if g.parent_refs.is_empty() {
            GatewayKind::Ingress {
                class_name: g.class_name.clone(),
                tls_secret: g.tls.as_ref().map(|t| t.secret_name.clone()),
            }
        } else {
            GatewayKind::HttpRoute {
                parent_refs: g.parent_refs.clone(),
            }
        };
        let url = g.hosts.first().map(|h| {
            let scheme = if g.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{h}")
        });
        GatewayModel {
            kind,
            hosts: g.hosts.clone(),
            annotations: g.annotations.clone(),
            routes,
            url,
        }
    }
}

/// Whether `name` is a DNS-1035 label, as Kubernetes Service names must be.
fn is_dns_1035_label(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn declared(names: &BTreeSet<&str>) -> String {
    if names.is_empty() {
        "no ports".into()
    } else {
        format!(
            "only {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Parse a Kubernetes quantity into a number (in base units), for comparisons.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powf(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * mult)
}
