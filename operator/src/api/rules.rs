//! The CEL rules of the CRD, each with its message.
//!
//! The API server enforces them at admission; `validate` checks the same conditions in Rust, with
//! the same messages, so that `keelson render` (offline) and the controller reject exactly what
//! the API server would. Lists the rules iterate over carry `maxItems`, which keeps every rule
//! well inside the API server's CEL cost budget.

/// A CEL rule and the message the API server answers when it fails.
pub type CelRule = (&'static str, &'static str);

/// On the spec: every route names a declared service.
pub const ROUTE_SERVICE_EXISTS: CelRule = (
    "!has(self.gateway) || self.gateway.routes.all(r, self.services.exists(s, s.name == r.service))",
    "every spec.gateway.routes[].service must name a service in spec.services: add the service or fix the route",
);

/// On the spec: a route's port is one the routed service declares.
pub const ROUTE_PORT_DECLARED: CelRule = (
    "!has(self.gateway) || self.gateway.routes.all(r, !has(r.port) || self.services.exists(s, s.name == r.service && has(s.ports) && s.ports.exists(p, p.name == r.port)))",
    "every spec.gateway.routes[].port must name a port that the routed service declares in its ports",
);

/// On the spec: `uses` names declared databases.
pub const USES_DATABASE_EXISTS: CelRule = (
    "self.services.all(s, !has(s.uses) || s.uses.all(u, has(self.databases) && self.databases.exists(d, d.name == u)))",
    "every spec.services[].uses entry must name a database in spec.databases: add the database or remove it from uses",
);

/// On the spec: services and databases have distinct names (both become Kubernetes Services).
pub const NAMES_DISJOINT: CelRule = (
    "!has(self.databases) || self.databases.all(d, self.services.all(s, s.name != d.name))",
    "a database and a service cannot share a name, since each becomes a Kubernetes Service: rename one of them",
);

/// On the gateway: an Ingress class or Gateway parents, not both.
pub const GATEWAY_ONE_KIND: CelRule = (
    "!has(self.className) || !has(self.parentRefs) || size(self.parentRefs) == 0",
    "set spec.gateway.className (an Ingress) or spec.gateway.parentRefs (an HTTPRoute), not both",
);

/// On the gateway: TLS is an Ingress setting.
pub const GATEWAY_TLS_INGRESS_ONLY: CelRule = (
    "!has(self.tls) || !has(self.parentRefs) || size(self.parentRefs) == 0",
    "spec.gateway.tls applies to the Ingress only: with parentRefs, configure TLS on the Gateway's listener and remove tls",
);

/// On a service: metrics are served on a declared port.
pub const METRICS_PORT_DECLARED: CelRule = (
    "!has(self.metrics) || (has(self.ports) && self.ports.exists(p, p.name == self.metrics.port))",
    "spec.services[].metrics.port must name one of the service's ports",
);

/// On a service: fixed replicas or autoscaling, not both.
pub const REPLICAS_OR_SCALING: CelRule = (
    "!has(self.replicas) || !has(self.scaling)",
    "set spec.services[].replicas (a fixed count) or spec.services[].scaling (autoscaling), not both",
);

/// On a scaling policy: min ≤ max.
pub const MIN_LE_MAX: CelRule = (
    "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
    "scaling.minReplicas must be less than or equal to scaling.maxReplicas",
);

/// On a probe: exactly one handler.
pub const PROBE_ONE_HANDLER: CelRule = (
    "(has(self.httpGet) ? 1 : 0) + (has(self.tcpSocket) ? 1 : 0) + (has(self.exec) ? 1 : 0) == 1",
    "a probe needs exactly one of httpGet, tcpSocket or exec",
);

/// On an env var: a value or a source, not both.
pub const ENV_ONE_SOURCE: CelRule = (
    "!(has(self.value) && has(self.valueFrom))",
    "an env var sets value or valueFrom, not both",
);

/// On an env source: exactly one reference.
pub const ENV_SOURCE_ONE_OF: CelRule = (
    "has(self.secretKeyRef) != has(self.configMapKeyRef)",
    "valueFrom needs exactly one of secretKeyRef or configMapKeyRef",
);

/// On a route: the path is normalized, as an Ingress `Prefix` path (Kubernetes
/// `validateHTTPIngressPath`) and an HTTPRoute `PathPrefix` value (Gateway API `HTTPPathMatch`)
/// must be. The characters are the `pattern` of the field.
pub const ROUTE_PATH_NORMALIZED: CelRule = (
    "!self.path.contains('//') && !self.path.contains('/./') && !self.path.contains('/../') && !self.path.contains('%2f') && !self.path.contains('%2F') && !self.path.endsWith('/.') && !self.path.endsWith('/..')",
    "spec.gateway.routes[].path must be a normalized path, as Ingress and Gateway API require: no `//`, `/./`, `/../`, `%2F` or `%2f`, and no trailing `/.` or `/..`",
);

/// On the gateway: two parentRefs naming the same Gateway both set a sectionName (Gateway API
/// HTTPRoute `spec.parentRefs` rule "sectionName must be specified when parentRefs includes 2 or
/// more references to the same parent").
pub const PARENT_REFS_SECTION_WHEN_SHARED: CelRule = (
    "!has(self.parentRefs) || self.parentRefs.all(p1, self.parentRefs.all(p2, p1.name == p2.name && (has(p1.__namespace__) ? p1.__namespace__ : '') == (has(p2.__namespace__) ? p2.__namespace__ : '') ? has(p1.sectionName) == has(p2.sectionName) : true))",
    "when spec.gateway.parentRefs names the same Gateway twice, each entry needs a sectionName (the listener): set sectionName on every entry for that Gateway",
);

/// On the gateway: no two parentRefs name the same Gateway and listener (Gateway API HTTPRoute
/// `spec.parentRefs` rule "sectionName must be unique when parentRefs includes 2 or more
/// references to the same parent").
pub const PARENT_REFS_UNIQUE: CelRule = (
    "!has(self.parentRefs) || self.parentRefs.all(p1, self.parentRefs.exists_one(p2, p1.name == p2.name && (has(p1.__namespace__) ? p1.__namespace__ : '') == (has(p2.__namespace__) ? p2.__namespace__ : '') && (has(p1.sectionName) ? p1.sectionName : '') == (has(p2.sectionName) ? p2.sectionName : '')))",
    "spec.gateway.parentRefs lists the same Gateway and sectionName twice: list each Gateway listener once",
);

// Transition rules: checked by the API server when an existing database (an entry of the
// `databases` map list, matched by `name`) changes. They need the old value, so neither
// `keelson render` nor `validate` can check them; the controller refuses the same changes from
// the live StatefulSet (see `controller::volumes`).

/// On a database, when it changes: its engine stays (the data is in that engine's format).
pub const ENGINE_UNCHANGED: CelRule = (
    "self.engine == oldSelf.engine",
    "spec.databases[].engine cannot change once the database exists: its data is in the old engine's format. Keep the engine, or add a database under a new name, move the data, then remove the old one",
);

/// On a database, when it changes: its StorageClass stays (a volume cannot move to another one).
pub const STORAGE_CLASS_UNCHANGED: CelRule = (
    "(has(self.storage) && has(self.storage.storageClassName) ? self.storage.storageClassName : '') == (has(oldSelf.storage) && has(oldSelf.storage.storageClassName) ? oldSelf.storage.storageClassName : '')",
    "spec.databases[].storage.storageClassName cannot change once the database exists: its volume cannot move to another StorageClass. Set it back, or add a database under a new name and move the data",
);

/// On a database, when it changes: its volume does not shrink (Kubernetes volume claims only
/// grow). Uses the Kubernetes CEL quantity library; `1Gi` is the default size.
pub const STORAGE_NOT_SHRUNK: CelRule = (
    "!isQuantity(has(self.storage) && has(self.storage.size) ? self.storage.size : '1Gi') || !isQuantity(has(oldSelf.storage) && has(oldSelf.storage.size) ? oldSelf.storage.size : '1Gi') || quantity(has(self.storage) && has(self.storage.size) ? self.storage.size : '1Gi').compareTo(quantity(has(oldSelf.storage) && has(oldSelf.storage.size) ? oldSelf.storage.size : '1Gi')) >= 0",
    "spec.databases[].storage.size cannot shrink: a volume claim can only grow. Keep the current size (or set a larger one), or add a database under a new name and move the data",
);
