//! `keelson.dev/v1alpha1`: the `Application` resource.
//!
//! Every doc comment on a field below becomes `kubectl explain` text, so it says what the field
//! does, its default, and how it relates to the others.

// Several printer columns repeat `type_ = "string"`, which this lint mistakes for duplicates.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::rules;

pub use super::k8s_rules::{
    CONFIG_MAP_KEY_PATTERN, DNS_1123_LABEL_PATTERN, DNS_1123_SUBDOMAIN_PATTERN, DURATION_PATTERN,
    ENV_VAR_NAME_PATTERN as ENV_NAME_PATTERN, HOST_PATTERN, HTTP_PATH_PATTERN, PORT_NAME_PATTERN,
};
pub use super::quantity::QUANTITY_PATTERN;
/// Pattern of a component name: a DNS-1035 label (it names Kubernetes Services).
pub const NAME_PATTERN: &str = super::k8s_rules::DNS_1035_LABEL_PATTERN;

/// An application stack: its gateway, services, databases and scaling policy.
///
/// Keelson creates and keeps in place every Kubernetes object the stack needs: a Deployment,
/// Service, HorizontalPodAutoscaler, PodDisruptionBudget and ServiceMonitor per service, an
/// Ingress or HTTPRoute for the gateway, and a StatefulSet, Service and credentials Secret per
/// database.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    doc = "An application stack that Keelson runs and keeps in place. You write spec; Keelson writes status.",
    group = "keelson.dev",
    version = "v1alpha1",
    kind = "Application",
    plural = "applications",
    singular = "application",
    shortname = "kapp",
    category = "keelson",
    namespaced,
    status = "ApplicationStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Services",
        type_ = "string",
        json_path = ".status.servicesReady",
        description = "Services with every replica ready, out of all services"
    ),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(rules::ROUTE_SERVICE_EXISTS.0).message(rules::ROUTE_SERVICE_EXISTS.1).field_path(".gateway.routes"),
    validation = Rule::new(rules::ROUTE_PORT_DECLARED.0).message(rules::ROUTE_PORT_DECLARED.1).field_path(".gateway.routes"),
    validation = Rule::new(rules::USES_DATABASE_EXISTS.0).message(rules::USES_DATABASE_EXISTS.1).field_path(".services"),
    validation = Rule::new(rules::NAMES_DISJOINT.0).message(rules::NAMES_DISJOINT.1).field_path(".databases"),
)]
pub struct ApplicationSpec {
    /// How traffic reaches the services from outside the cluster. Without it, the services are
    /// reachable only inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySpec>,

    /// The stateless services of the application. Each becomes a Deployment, plus a Service when
    /// it has ports, an autoscaler when it scales, a PodDisruptionBudget when it runs two or more
    /// replicas, and a ServiceMonitor when it exposes metrics.
    #[schemars(length(min = 1, max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub services: Vec<ServiceSpec>,

    /// The databases of the application. Each becomes a StatefulSet with a volume, a Service and
    /// a Secret with generated credentials. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub databases: Vec<Database>,

    /// The scaling policy of every service that does not set `replicas` or its own `scaling`.
    /// Fields a service's own `scaling` leaves out are taken from here. Default: one replica,
    /// no autoscaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
}

/// The entry point of the application: an Ingress, or a Gateway API HTTPRoute when `parentRefs`
/// names the Gateways to attach to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(rules::GATEWAY_ONE_KIND.0).message(rules::GATEWAY_ONE_KIND.1),
    validation = Rule::new(rules::GATEWAY_TLS_INGRESS_ONLY.0).message(rules::GATEWAY_TLS_INGRESS_ONLY.1).field_path(".tls"),
    validation = Rule::new(rules::PARENT_REFS_SECTION_WHEN_SHARED.0).message(rules::PARENT_REFS_SECTION_WHEN_SHARED.1).field_path(".parentRefs"),
    validation = Rule::new(rules::PARENT_REFS_UNIQUE.0).message(rules::PARENT_REFS_UNIQUE.1).field_path(".parentRefs"),
)]
pub struct GatewaySpec {
    /// The host names the application answers on, e.g. `shop.example.com` or `*.example.com`:
    /// lowercase DNS names (letters, digits, `-`, `.`), optionally starting with `*.`, never an IP
    /// address. Default: none, which matches every host. The first one makes the application's
    /// URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 253), regex(pattern = HOST_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub hosts: Vec<String>,

    /// TLS for the Ingress. Not allowed with `parentRefs`: a Gateway terminates TLS on its
    /// listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<GatewayTls>,

    /// The IngressClass of the Ingress, e.g. `nginx`: a DNS-1123 subdomain (lowercase letters,
    /// digits, `-`, `.`). Default: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_1123_SUBDOMAIN_PATTERN))]
    pub class_name: Option<String>,

    /// The Gateways to attach an HTTPRoute to. When set, Keelson creates a
    /// gateway.networking.k8s.io/v1 HTTPRoute instead of an Ingress. Two entries naming the same
    /// Gateway (name and namespace) must each set a distinct `sectionName`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub parent_refs: Vec<ParentRef>,

    /// Extra annotations for the Ingress or HTTPRoute, e.g. for cert-manager or the ingress
    /// controller. Keys are Kubernetes qualified names (`[prefix/]name`); keys and values
    /// together at most 256 KiB; no `argocd.argoproj.io/` keys. Default: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Which service answers which path. A request goes to the route with the longest matching
    /// path prefix. With `parentRefs`, the HTTPRoute gets one rule per routed service and port,
    /// and Gateway API allows at most 16 rules: routes may name at most 16 distinct
    /// service-and-port pairs.
    #[schemars(length(min = 1, max = 64))]
    pub routes: Vec<Route>,
}

/// TLS settings of the Ingress.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTls {
    /// The Secret (type kubernetes.io/tls, in the Application's namespace) holding the
    /// certificate for every host in `hosts`: a DNS-1123 subdomain.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_1123_SUBDOMAIN_PATTERN))]
    pub secret_name: String,
}

/// A Gateway that the HTTPRoute attaches to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// The Gateway's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The Gateway's namespace: a DNS-1123 label. Default: the Application's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_1123_LABEL_PATTERN))]
    pub namespace: Option<String>,
    /// The listener of the Gateway to attach to: a DNS-1123 subdomain. Default: every listener
    /// that accepts the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_1123_SUBDOMAIN_PATTERN))]
    pub section_name: Option<String>,
}

/// One path of the gateway and the service that answers it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(rules::ROUTE_PATH_NORMALIZED.0).message(rules::ROUTE_PATH_NORMALIZED.1).field_path(".path"))]
pub struct Route {
    /// The path prefix, e.g. `/api/orders` or `/`. As both an Ingress and a Gateway API
    /// HTTPRoute accept it: starts with `/`; letters, digits, `-/._~!$&'()*+,;=:@` and
    /// %-escapes of two hex digits; no `//`, `/./`, `/../`, `%2F` or `%2f`; not ending in `/.`
    /// or `/..`.
    #[schemars(length(min = 1, max = 1024), regex(pattern = HTTP_PATH_PATTERN))]
    pub path: String,
    /// The name of the service in `services` that answers this path.
    #[schemars(length(min = 1, max = 40))]
    pub service: String,
    /// The name of the service port to send traffic to. Default: the service's first port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15))]
    pub port: Option<String>,
}

/// A stateless service: one container image run as a Deployment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(rules::METRICS_PORT_DECLARED.0).message(rules::METRICS_PORT_DECLARED.1).field_path(".metrics.port"),
    validation = Rule::new(rules::REPLICAS_OR_SCALING.0).message(rules::REPLICAS_OR_SCALING.1),
)]
pub struct ServiceSpec {
    /// The service's name, unique in the Application. Its objects are named
    /// `<application>-<name>`.
    #[schemars(length(min = 1, max = 40), regex(pattern = NAME_PATTERN))]
    pub name: String,

    /// The container image, e.g. `ghcr.io/acme/orders:1.4.2`. Pin a tag or digest. No leading
    /// or trailing whitespace (Kubernetes refuses such Pods).
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// When the kubelet pulls the image. Default: Kubernetes' default (`Always` for `:latest`,
    /// otherwise `IfNotPresent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// The container's entrypoint. Default: the image's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub command: Vec<String>,

    /// Arguments to the entrypoint. Default: the image's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub args: Vec<String>,

    /// The ports the container listens on. A service with ports gets a Kubernetes Service
    /// named `<application>-<name>` that exposes each port under the same number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub ports: Vec<Port>,

    /// Environment variables of the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<EnvVarSpec>,

    /// Databases in `databases` this service connects to. For each, the container gets
    /// `<DB>_HOST`, `<DB>_PORT`, `<DB>_USERNAME`, `<DB>_PASSWORD`, `<DB>_DATABASE` and `<DB>_URL`
    /// (redis: no username or database), read from the database's Secret, where `<DB>` is the
    /// database name in upper case with `-` turned into `_` (`orders-db` gives `ORDERS_DB_URL`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 40)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub uses: Vec<String>,

    /// A fixed number of replicas, without autoscaling. Not allowed with `scaling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,

    /// The autoscaling policy of this service; unset fields come from `spec.scaling`.
    /// Not allowed with `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,

    /// CPU and memory the container requests and may use at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesSpec>,

    /// Health checks of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<Probes>,

    /// Prometheus metrics of the service. When set and the cluster serves
    /// monitoring.coreos.com/v1, Keelson creates a ServiceMonitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSpec>,

    /// The user ID the container runs as. Default: the image's user, which must not be root
    /// (the pod runs with `runAsNonRoot: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483647))]
    pub run_as_user: Option<i64>,

    /// Whether the container's root filesystem is read-only. A writable `/tmp` is always
    /// mounted. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,

    /// The ServiceAccount the pods run as: a DNS-1123 subdomain. Default: the namespace's
    /// `default` account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_1123_SUBDOMAIN_PATTERN))]
    pub service_account_name: Option<String>,

    /// Whether the pods get a Kubernetes API token mounted. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
}

/// When the kubelet pulls a container image.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// A port the container listens on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// The port's name, e.g. `http` or `grpc`: an IANA service name as Kubernetes requires for
    /// container ports, 1 to 15 lowercase letters, digits and `-`, with at least one letter,
    /// no `--`, and no `-` at either end (so `8080` and `admin--tls` are refused). Routes, probes
    /// and metrics refer to ports by this name.
    #[schemars(length(min = 1, max = 15), regex(pattern = PORT_NAME_PATTERN))]
    pub name: String,
    /// The port number the container listens on; the Service exposes the same number.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// The protocol. Default: TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// A transport protocol.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

/// An environment variable of the container: a literal `value`, or `valueFrom` a Secret or
/// ConfigMap key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(rules::ENV_ONE_SOURCE.0).message(rules::ENV_ONE_SOURCE.1))]
pub struct EnvVarSpec {
    /// The variable's name: letters, digits, `-`, `_` and `.`, not starting with a digit, not
    /// `.` and not starting with `..`.
    #[schemars(length(min = 1, max = 128), regex(pattern = ENV_NAME_PATTERN))]
    pub name: String,
    /// A literal value: a string, so quote values YAML would read as something else (`"on"`,
    /// `"yes"`, `"0123"`, `"1.0"`). Do not put secrets here: use `valueFrom.secretKeyRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32768))]
    pub value: Option<String>,
    /// Read the value from a key of a Secret or ConfigMap in the Application's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvSource>,
}

/// Where an environment variable's value comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(rules::ENV_SOURCE_ONE_OF.0).message(rules::ENV_SOURCE_ONE_OF.1))]
pub struct EnvSource {
    /// A key of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
    /// A key of a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
}

/// A key of a Secret or ConfigMap.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// The Secret's or ConfigMap's name: a DNS-1123 subdomain.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_1123_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// The key: letters, digits, `-`, `_` and `.`, not `.` and not starting with `..`.
    #[schemars(length(min = 1, max = 253), regex(pattern = CONFIG_MAP_KEY_PATTERN))]
    pub key: String,
    /// Whether the container may start when the key is missing. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// An autoscaling policy. With `maxReplicas` above `minReplicas`, a HorizontalPodAutoscaler
/// scales the service on CPU; otherwise the service runs `minReplicas` replicas.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(rules::MIN_LE_MAX.0).message(rules::MIN_LE_MAX.1))]
pub struct Scaling {
    /// The fewest replicas. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: Option<i32>,
    /// The most replicas. Default: `minReplicas` (no autoscaling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: Option<i32>,
    /// The average CPU utilization, in percent of the CPU request, the autoscaler aims for.
    /// Default: 80. Needs `resources.requests.cpu`.
    #[serde(
        default,
        rename = "targetCPUUtilization",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization: Option<i32>,
}

/// CPU and memory of a container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesSpec {
    /// What the container is guaranteed; the scheduler places it by this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceAmounts>,
    /// The most the container may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceAmounts>,
}

/// Amounts of CPU and memory, as Kubernetes quantities: a number of at most 64 characters, with
/// an optional suffix (`m`, `k`, `M`, `G`, ..., `Ki`, `Mi`, `Gi`, ... or an exponent `e3` of
/// at most two digits); never negative. A request may not exceed its limit.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmounts {
    /// CPU, e.g. `100m` (a tenth of a core) or `"2"`. At most 1000 cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = QUANTITY_PATTERN))]
    pub cpu: Option<String>,
    /// Memory, e.g. `128Mi` or `1Gi`. At least 1Mi: `256m` would be 0.256 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = QUANTITY_PATTERN))]
    pub memory: Option<String>,
}

/// Health checks of a container.
/// Each probe is boxed: a service sets one or two of the three, and an unset one costs a pointer
/// rather than a whole [`ProbeSpec`] in every stored Application.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Probes {
    /// Restart the container when this fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Box<ProbeSpec>>,
    /// Send traffic to the pod only while this succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Box<ProbeSpec>>,
    /// Hold the other probes until this succeeds once (for slow starters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Box<ProbeSpec>>,
}

/// One health check: exactly one of `httpGet`, `tcpSocket` or `exec`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(rules::PROBE_ONE_HANDLER.0).message(rules::PROBE_ONE_HANDLER.1))]
pub struct ProbeSpec {
    /// An HTTP GET that must answer 2xx or 3xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetProbe>,
    /// A TCP connection that must open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketProbe>,
    /// A command that must exit 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecProbe>,
    /// Seconds after the container starts before the first check. Default: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub initial_delay_seconds: Option<i32>,
    /// Seconds between checks. Default: 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub period_seconds: Option<i32>,
    /// Seconds a check may take. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<i32>,
    /// Failed checks in a row that count as failure. Default: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_threshold: Option<i32>,
}

/// An HTTP health check.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpGetProbe {
    /// The path, e.g. `/healthz`.
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^/"))]
    pub path: String,
    /// The name of one of the service's ports.
    #[schemars(length(min = 1, max = 15))]
    pub port: String,
}

/// A TCP health check.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TcpSocketProbe {
    /// The name of one of the service's ports.
    #[schemars(length(min = 1, max = 15))]
    pub port: String,
}

/// A command health check.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExecProbe {
    /// The command and its arguments, run inside the container.
    #[schemars(length(min = 1, max = 64))]
    pub command: Vec<String>,
}

/// Where Prometheus scrapes the service's metrics.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// The name of the port that serves metrics.
    #[schemars(length(min = 1, max = 15))]
    pub port: String,
    /// The HTTP path of the metrics. Default: `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^/"))]
    pub path: Option<String>,
    /// How often Prometheus scrapes, e.g. `30s` or `1m30s` (units `y w d h m s ms`, as the
    /// ServiceMonitor CRD accepts them). Default: `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), regex(pattern = DURATION_PATTERN))]
    pub interval: Option<String>,
}

/// A database: a single-replica StatefulSet with a persistent volume, a Service and a Secret
/// with credentials generated once.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(rules::ENGINE_UNCHANGED.0).message(rules::ENGINE_UNCHANGED.1).field_path(".engine"),
    validation = Rule::new(rules::STORAGE_CLASS_UNCHANGED.0).message(rules::STORAGE_CLASS_UNCHANGED.1).field_path(".storage.storageClassName"),
    validation = Rule::new(rules::STORAGE_NOT_SHRUNK.0).message(rules::STORAGE_NOT_SHRUNK.1).field_path(".storage.size"),
)]
pub struct Database {
    /// The database's name, unique in the Application and distinct from every service name.
    /// Its objects are named `<application>-<name>`; its Secret `<application>-<name>-credentials`.
    #[schemars(length(min = 1, max = 40), regex(pattern = NAME_PATTERN))]
    pub name: String,

    /// The database engine. Cannot change once the database exists (its data is in that
    /// engine's format): the API server refuses the change.
    pub engine: Engine,

    /// The engine's major version, e.g. `16` for postgres, `8.4` for mysql, `7` for redis.
    /// Default: postgres `16`, mysql `8.4`, redis `7`. Ignored when `image` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16), regex(pattern = r"^[0-9]+(\.[0-9]+){0,2}$"))]
    pub version: Option<String>,

    /// A container image to run instead of the official one for `engine` and `version`. It must
    /// accept the official image's environment variables. No leading or trailing whitespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// The database's persistent volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,

    /// What happens to the volume when the Application or this database is deleted: `Retain`
    /// keeps the PersistentVolumeClaim (and its data), `Delete` deletes it. Default: `Retain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// CPU and memory of the database container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesSpec>,
}

/// A database engine.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Postgres,
    Mysql,
    Redis,
}

/// The persistent volume of a database.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// The volume's size, e.g. `10Gi`: a quantity (see resources) of at least 1Mi. Default: `1Gi`.
    /// It can grow: Keelson expands the volume claim (where its StorageClass allows volume
    /// expansion; otherwise status says so) and replaces the StatefulSet without restarting its
    /// pod. It cannot shrink: the API server refuses a smaller size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = QUANTITY_PATTERN))]
    pub size: Option<String>,
    /// The StorageClass: a DNS-1123 subdomain. Default: the cluster's default class. Cannot
    /// change once the database exists (a volume cannot move to another class): the API server
    /// refuses the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_1123_SUBDOMAIN_PATTERN))]
    pub storage_class_name: Option<String>,
}

/// What happens to a database's volume on deletion.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Delete,
}

/// What Keelson last observed of the Application.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` (every workload available), `Progressing` (changes are rolling out) and
    /// `Degraded` (something failed: an invalid spec, an API error), plus `APIsAvailable`
    /// (whether the cluster serves the optional APIs the spec needs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Services with every replica ready, out of all services, e.g. `3/4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services_ready: Option<String>,

    /// The URL of the gateway's first host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// Each service's replicas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceStatus>,

    /// Each database's readiness.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseStatus>,

    /// The gateway object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayStatus>,

    /// The children Keelson applied, each with what it applied and what the API server answered,
    /// so that a restarted operator re-applies only what changed since. Written by Keelson, as a
    /// whole (an atomic list: its managed fields are one entry, not one per child).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub inventory: Vec<InventoryEntry>,
}

/// One child Keelson applied.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    /// The child's kind, e.g. `Deployment`.
    pub kind: String,
    /// The child's name.
    pub name: String,
    /// A hash of the object Keelson applied (16 hexadecimal digits).
    pub applied: String,
    /// The child's `metadata.generation` after that apply, for kinds that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The child's `metadata.resourceVersion` after that apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// A hash of the child's spec after that apply, for kinds watched whole without a
    /// generation (16 hexadecimal digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
}

/// The observed state of one service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// The service's name.
    pub name: String,
    /// Replicas the service should run now (the autoscaler's choice when it scales).
    pub desired_replicas: i32,
    /// Replicas that are ready.
    pub ready_replicas: i32,
    /// Whether the service's Deployment has rolled out and is available.
    pub ready: bool,
}

/// The observed state of one database.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    /// The database's name.
    pub name: String,
    /// Whether the database's pod is ready.
    pub ready: bool,
    /// The Secret holding the database's connection details.
    pub secret_name: String,
}

/// The observed state of the gateway.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// `Ingress` or `HTTPRoute`.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// Whether the object exists in the cluster (false when its API is not served).
    pub created: bool,
}
