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

use super::{
    k8s_rules,
    quantity::{self, Amount},
    v1alpha1::*,
};

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
                jsonschema::error::ValidationErrorKind::Pattern { pattern } => {
                    pattern_message(pattern, e.instance()).unwrap_or_else(|| e.to_string())
                }
                jsonschema::error::ValidationErrorKind::Type { kind } => {
                    type_message(kind, e.instance()).unwrap_or_else(|| e.to_string())
                }
                // Without the instance, which may be megabytes.
                jsonschema::error::ValidationErrorKind::MaxItems { limit } => format!(
                    "has {} items, more than {limit} items",
                    e.instance().as_array().map_or(0, Vec::len)
                ),
                jsonschema::error::ValidationErrorKind::MaxLength { limit } => format!(
                    "`{}` is longer than {limit} characters",
                    shown(e.instance().as_str().unwrap_or_default())
                ),
                jsonschema::error::ValidationErrorKind::MaxProperties { limit } => {
                    format!("has more than {limit} entries")
                }
                _ => e.to_string(),
            };
            FieldError { field, message }
        })
        .collect();
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

/// The words for a value that fails one of the CRD's patterns: the reason the Kubernetes rule
/// behind the pattern gives, and the fix.
fn pattern_message(pattern: &str, value: &Value) -> Option<String> {
    let v = value.as_str()?;
    type Check = fn(&str) -> k8s_rules::Rule;
    let (check, fix): (Check, &str) = match pattern {
        QUANTITY_PATTERN => {
            let e = quantity::parse(v).err()?;
            return Some(format!("`{}` {e}", shown(v)));
        }
        DURATION_PATTERN => {
            return Some(format!(
                "`{}` is not a duration: write a number with a unit, such as `30s`, `1m` or `1m30s` (units y, w, d, h, m, s, ms)",
                shown(v)
            ));
        }
        PORT_NAME_PATTERN => (
            k8s_rules::port_name,
            "Kubernetes needs port names to be IANA service names; use a name such as `http`, `grpc` or `http-8080`",
        ),
        NAME_PATTERN => (
            k8s_rules::dns1035_label,
            "it names Kubernetes objects; use a name such as `orders` or `orders-db`",
        ),
        DNS_1123_SUBDOMAIN_PATTERN => (
            k8s_rules::dns1123_subdomain,
            "it names a Kubernetes object, such as `my-secret` or `nginx`",
        ),
        DNS_1123_LABEL_PATTERN => (
            k8s_rules::dns1123_label,
            "it names a Kubernetes namespace, such as `gateway-system`",
        ),
        ENV_NAME_PATTERN => (
            k8s_rules::env_var_name,
            "use letters, digits and `_`, such as `LOG_LEVEL`",
        ),
        CONFIG_MAP_KEY_PATTERN => (
            k8s_rules::config_map_key,
            "name a key of the Secret or ConfigMap",
        ),
        HOST_PATTERN => (
            k8s_rules::host,
            "write a DNS name such as `shop.example.com` or `*.example.com`",
        ),
        HTTP_PATH_PATTERN => (
            k8s_rules::http_path,
            "Ingress and Gateway API refuse such paths; write a plain path such as `/api/v2`",
        ),
        _ => return None,
    };
    let reason = check(v).err()?;
    Some(format!("`{}` {reason}: {fix}", shown(v)))
}

/// The words for a number or boolean where a string belongs: YAML (and kubectl) read unquoted
/// `on`, `yes`, `080` or `1.0` as such; quoting keeps them strings.
fn type_message(kind: &jsonschema::error::TypeKind, value: &Value) -> Option<String> {
    let jsonschema::error::TypeKind::Single(expected) = kind else {
        return None;
    };
    if !matches!(expected, jsonschema::JsonType::String) {
        return None;
    }
    match value {
        Value::Bool(b) => Some(format!(
            "must be of type string, found boolean {b}: YAML, as kubectl reads it, takes an unquoted `on`, `off`, `yes`, `no`, `y`, `n`, `true` or `false` as a boolean; quote the value, e.g. `\"on\"`"
        )),
        Value::Number(n) => Some(format!(
            "must be of type string, found number {n}: quote the value as written (YAML, as kubectl reads it, takes an unquoted `8080` as a number, `010` as octal 8 and `1e3` as 1000.0)"
        )),
        _ => None,
    }
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

    /// Report `value` at `field` when a Kubernetes rule refuses it: "`value` reason: fix".
    fn rule(&mut self, field: impl Into<String>, value: &str, result: k8s_rules::Rule, fix: &str) {
        if let Err(reason) = result {
            self.err(field, format!("`{}` {reason}: {fix}", shown(value)));
        }
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
        let field = format!("spec.databases[{i}]");
        let object_name =
            self.object_name(format!("{field}.name"), app, &d.name, MAX_STATEFULSET_NAME);
        if let Some(image) = &d.image {
            self.image(format!("{field}.image"), image);
        }
        if let Some(r) = &d.resources {
            self.resources(&format!("{field}.resources"), r);
        }
        let storage = d.storage.as_ref();
        if let Some(size) = storage.and_then(|s| s.size.as_deref()) {
            self.storage_size(&format!("{field}.storage.size"), size);
        }
        if let Some(class) = storage.and_then(|s| s.storage_class_name.as_deref()) {
            self.rule(
                format!("{field}.storage.storageClassName"),
                class,
                k8s_rules::dns1123_subdomain(class),
                "name a StorageClass (`kubectl get storageclass`)",
            );
        }
        DatabaseModel {
            secret_name: format!("{object_name}-credentials"),
            object_name,
            image: d
                .image
                .clone()
                .unwrap_or_else(|| default_image(d.engine, d.version.as_deref())),
            storage_size: storage
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
        self.image(format!("{field}.image"), &s.image);
        if let Some(sa) = &s.service_account_name {
            self.rule(
                format!("{field}.serviceAccountName"),
                sa,
                k8s_rules::dns1123_subdomain(sa),
                "name a ServiceAccount (`kubectl get serviceaccounts`)",
            );
        }
        self.ports(&field, s);
        self.probes(&field, s);
        let uses = self.uses(&field, s, databases);
        self.env(&field, s, &uses);

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
            self.resources(&format!("{field}.resources"), r);
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

    /// Kubernetes refuses a Pod (not the Deployment) whose image has surrounding whitespace.
    fn image(&mut self, field: String, image: &str) {
        self.rule(
            field,
            image,
            k8s_rules::image(image),
            "remove the whitespace around the image reference",
        );
    }

    /// Port names (container ports, Service ports and target ports, probe and Ingress backend
    /// ports all carry them) and numbers.
    fn ports(&mut self, field: &str, s: &ServiceSpec) {
        self.unique(
            &format!("{field}.ports"),
            s.ports.iter().map(|p| p.name.as_str()),
            "port",
        );
        let mut port_numbers = BTreeSet::new();
        for (j, p) in s.ports.iter().enumerate() {
            self.rule(
                format!("{field}.ports[{j}].name"),
                &p.name,
                k8s_rules::port_name(&p.name),
                "Kubernetes needs port names to be IANA service names; use a name such as `http`, `grpc` or `http-8080`",
            );
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
    }

    fn probes(&mut self, field: &str, s: &ServiceSpec) {
        let Some(probes) = &s.probes else { return };
        let port_names: BTreeSet<&str> = s.ports.iter().map(|p| p.name.as_str()).collect();
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

    /// The databases a service uses, resolved, each listed once.
    fn uses(
        &mut self,
        field: &str,
        s: &ServiceSpec,
        databases: &[DatabaseModel],
    ) -> Vec<DatabaseRef> {
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
        s.uses
            .iter()
            .filter(|u| resolved.insert(u.as_str()))
            .filter_map(|u| databases.iter().find(|d| &d.spec.name == u))
            .map(|d| DatabaseRef {
                name: d.spec.name.clone(),
                engine: d.spec.engine,
                secret_name: d.secret_name.clone(),
                env_prefix: env_prefix(&d.spec.name),
            })
            .collect()
    }

    /// Env var names (unique, not injected by Keelson, Kubernetes `IsEnvVarName`) and the Secrets
    /// and ConfigMaps they read.
    fn env(&mut self, field: &str, s: &ServiceSpec, uses: &[DatabaseRef]) {
        let mut injected: BTreeMap<String, String> = BTreeMap::new();
        for db in uses {
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
            let at = format!("{field}.env[{j}]");
            self.rule(
                format!("{at}.name"),
                &e.name,
                k8s_rules::env_var_name(&e.name),
                "use letters, digits and `_`, such as `LOG_LEVEL`",
            );
            if !env_names.insert(e.name.as_str()) {
                self.err(
                    format!("{at}.name"),
                    format!("env var `{}` is set twice: keep one", e.name),
                );
            }
            if let Some(db) = injected.get(&e.name) {
                self.err(
                    format!("{at}.name"),
                    format!(
                        "`{}` is set by Keelson from database `{db}` (listed in uses): remove this env var or rename it",
                        e.name
                    ),
                );
            }
            let Some(src) = &e.value_from else { continue };
            for (kind, what, r) in [
                ("secretKeyRef", "Secret", &src.secret_key_ref),
                ("configMapKeyRef", "ConfigMap", &src.config_map_key_ref),
            ] {
                let Some(r) = r else { continue };
                let at = format!("{at}.valueFrom.{kind}");
                self.rule(
                    format!("{at}.name"),
                    &r.name,
                    k8s_rules::dns1123_subdomain(&r.name),
                    &format!("name a {what} (its name is a DNS-1123 subdomain)"),
                );
                self.rule(
                    format!("{at}.key"),
                    &r.key,
                    k8s_rules::config_map_key(&r.key),
                    &format!("name a key of the {what}"),
                );
            }
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

    /// A container's CPU and memory: Kubernetes quantities (exactly as the API server parses
    /// them), plausible amounts, and each request at most its limit (compared exactly).
    fn resources(&mut self, field: &str, r: &ResourcesSpec) {
        let mut amounts: BTreeMap<(&str, &str), (&str, Amount)> = BTreeMap::new();
        for (side, list) in [("requests", &r.requests), ("limits", &r.limits)] {
            let Some(list) = list else { continue };
            for (what, q) in [("cpu", &list.cpu), ("memory", &list.memory)] {
                let Some(q) = q else { continue };
                let at = format!("{field}.{side}.{what}");
                if let Some(a) = self.quantity(&at, q) {
                    self.plausible(&at, what, q, a);
                    amounts.insert((side, what), (q.as_str(), a));
                }
            }
        }
        for what in ["cpu", "memory"] {
            if let (Some((q, req)), Some((l, lim))) = (
                amounts.get(&("requests", what)),
                amounts.get(&("limits", what)),
            ) && req > lim
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

    fn quantity(&mut self, field: &str, q: &str) -> Option<Amount> {
        match quantity::parse(q) {
            Ok(a) => Some(a),
            Err(e) => {
                self.err(field, format!("`{}` {e}", shown(q)));
                None
            }
        }
    }

    /// Refuse amounts that are almost certainly slips: memory below 1Mi (`256m` is 0.256
    /// bytes), CPU above 1000 cores.
    fn plausible(&mut self, field: &str, what: &str, q: &str, a: Amount) {
        if what == "memory" && a.is_zero() {
            self.err(
                field,
                format!("`{q}` is no memory at all: leave memory out rather than set it to zero"),
            );
        } else if what == "memory" && a < Amount::MEBI {
            self.err(
                field,
                format!(
                    "`{q}` is {a} bytes of memory, less than 1Mi, which no container can start with: {} (`m` means milli, a thousandth)",
                    did_you_mean(q, &["Mi"])
                ),
            );
        } else if what == "cpu" && a > Amount::units(MAX_CPU_CORES) {
            self.err(
                field,
                format!(
                    "`{q}` is {a} CPU cores, more than {MAX_CPU_CORES}, which no node has: {} (millicores)",
                    did_you_mean(q, &["m"])
                ),
            );
        }
    }

    /// A volume's size: above zero (Kubernetes), and at least 1Mi (anything less is a slip).
    fn storage_size(&mut self, field: &str, size: &str) {
        let Some(a) = self.quantity(field, size) else {
            return;
        };
        if a.is_zero() {
            self.err(
                field,
                format!("`{size}` is zero, and Kubernetes needs a volume size above zero: set a size such as `10Gi`"),
            );
        } else if a < Amount::MEBI {
            self.err(
                field,
                format!(
                    "`{size}` is {a} bytes, less than 1Mi, far too small for a database volume: {}",
                    did_you_mean(size, &["Gi", "Mi"])
                ),
            );
        }
    }

    fn gateway(&mut self, g: &GatewaySpec, services: &[ServiceModel]) -> GatewayModel {
        self.hosts(g);
        self.gateway_references(g);
        self.annotations(g);
        let routes = self.routes(g, services);
        let kind = if g.parent_refs.is_empty() {
            GatewayKind::Ingress {
                class_name: g.class_name.clone(),
                tls_secret: g.tls.as_ref().map(|t| t.secret_name.clone()),
            }
        } else {
            self.http_route_rules(&routes);
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

    fn hosts(&mut self, g: &GatewaySpec) {
        let mut hosts = BTreeSet::new();
        for (i, h) in g.hosts.iter().enumerate() {
            let field = format!("spec.gateway.hosts[{i}]");
            self.rule(
                field.clone(),
                h,
                k8s_rules::host(h),
                "write a DNS name such as `shop.example.com` or `*.example.com`",
            );
            if !hosts.insert(h.as_str()) {
                self.err(field, format!("host `{h}` is listed twice: list it once"));
            }
        }
    }

    /// The names the gateway refers to: IngressClass, TLS Secret, parent Gateways.
    fn gateway_references(&mut self, g: &GatewaySpec) {
        if let Some(class) = &g.class_name {
            self.rule(
                "spec.gateway.className",
                class,
                k8s_rules::dns1123_subdomain(class),
                "name an IngressClass (`kubectl get ingressclass`)",
            );
        }
        if let Some(tls) = &g.tls {
            self.rule(
                "spec.gateway.tls.secretName",
                &tls.secret_name,
                k8s_rules::dns1123_subdomain(&tls.secret_name),
                "name a Secret of type kubernetes.io/tls",
            );
        }
        for (i, p) in g.parent_refs.iter().enumerate() {
            let field = format!("spec.gateway.parentRefs[{i}]");
            if let Some(ns) = &p.namespace {
                self.rule(
                    format!("{field}.namespace"),
                    ns,
                    k8s_rules::dns1123_label(ns),
                    "name the Gateway's namespace",
                );
            }
            if let Some(section) = &p.section_name {
                self.rule(
                    format!("{field}.sectionName"),
                    section,
                    k8s_rules::dns1123_subdomain(section),
                    "name one of the Gateway's listeners",
                );
            }
        }
    }

    /// Annotation keys (Kubernetes `IsQualifiedName`), their total size (256 KiB), and no Argo CD
    /// tracking annotation.
    fn annotations(&mut self, g: &GatewaySpec) {
        for key in g.annotations.keys() {
            self.rule(
                "spec.gateway.annotations",
                key,
                k8s_rules::annotation_key(key),
                "annotation keys are `[prefix/]name`, such as `cert-manager.io/cluster-issuer`",
            );
            if key.starts_with("argocd.argoproj.io/") {
                self.err(
                    "spec.gateway.annotations",
                    format!(
                        "`{key}` is Argo CD's tracking annotation: on a child it makes Argo CD track (and prune) the child itself; remove it"
                    ),
                );
            }
        }
        if let Err(reason) = k8s_rules::annotations_size(&g.annotations) {
            self.err(
                "spec.gateway.annotations",
                format!("the annotations {reason}: shorten or remove some"),
            );
        }
    }

    fn routes(&mut self, g: &GatewaySpec, services: &[ServiceModel]) -> Vec<RouteModel> {
        let mut paths = BTreeSet::new();
        let mut routes = Vec::new();
        for (i, r) in g.routes.iter().enumerate() {
            let field = format!("spec.gateway.routes[{i}]");
            self.rule(
                format!("{field}.path"),
                &r.path,
                k8s_rules::http_path(&r.path),
                "Ingress and Gateway API refuse such paths; write a plain path such as `/api/v2`",
            );
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
        routes
    }

    /// The HTTPRoute holds one rule per backend (service and port), and Gateway API allows 16.
    fn http_route_rules(&mut self, routes: &[RouteModel]) {
        let backends: BTreeSet<(&str, i32)> = routes
            .iter()
            .map(|r| (r.backend.as_str(), r.port_number))
            .collect();
        if backends.len() > k8s_rules::HTTPROUTE_MAX_RULES {
            self.err(
                "spec.gateway.routes",
                format!(
                    "with parentRefs the routes become one HTTPRoute with a rule per service and port, and Gateway API allows at most {} rules; these routes reach {} service ports: route to fewer services, or use an Ingress (className)",
                    k8s_rules::HTTPROUTE_MAX_RULES,
                    backends.len()
                ),
            );
        }
    }
}

/// "did you mean `256Mi`?" for `256m`: the quantity's number with each suffix, or a general hint
/// when the quantity is written with an exponent.
fn did_you_mean(q: &str, suffixes: &[&str]) -> String {
    let number = q.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if number.is_empty()
        || !number
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '+')
    {
        return format!("write it with a suffix such as `{}`", suffixes[0]);
    }
    let options: Vec<String> = suffixes.iter().map(|s| format!("`{number}{s}`")).collect();
    format!("did you mean {}?", options.join(" or "))
}

/// The most CPU a container may request or be limited to, in cores.
pub const MAX_CPU_CORES: u64 = 1000;

/// A value as shown in a message: at most 64 characters, control characters escaped.
fn shown(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(64)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// Whether `name` has the characters of a DNS-1035 label, as Kubernetes Service names must
/// (its length is checked with the object names it starts).
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
