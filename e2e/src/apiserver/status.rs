//! `Status` error bodies, worded as the Kubernetes API server words them.

use serde_json::{Map, Value, json};

/// An error answer: a `Status` object (or, for unknown API paths, a plain-text 404).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub body: Value,
    pub retry_after: Option<u32>,
    pub plain_text: bool,
}

impl ApiError {
    pub fn status(
        code: u16,
        reason: &str,
        message: impl Into<String>,
        details: Option<Value>,
    ) -> Self {
        let mut m = Map::new();
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("metadata".into(), json!({}));
        m.insert("status".into(), json!("Failure"));
        m.insert("message".into(), Value::String(message.into()));
        m.insert("reason".into(), json!(reason));
        if let Some(d) = details {
            m.insert("details".into(), d);
        }
        m.insert("code".into(), json!(code));
        ApiError {
            code,
            body: Value::Object(m),
            retry_after: None,
            plain_text: false,
        }
    }

    /// The text/plain 404 of paths outside any served group/version.
    pub fn page_not_found() -> Self {
        ApiError {
            code: 404,
            body: Value::String("404 page not found\n".into()),
            retry_after: None,
            plain_text: true,
        }
    }

    pub fn message(&self) -> &str {
        self.body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// Identifies a resource in messages: plural and group.
#[derive(Debug, Clone, Copy)]
pub struct Res<'a> {
    pub group: &'a str,
    pub plural: &'a str,
}

impl Res<'_> {
    /// `deployments.apps`, or `configmaps` for the core group.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn details(&self, name: &str, kind: &str) -> Value {
        let mut d = Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !self.group.is_empty() {
            d.insert("group".into(), json!(self.group));
        }
        d.insert("kind".into(), json!(kind));
        Value::Object(d)
    }

    pub fn not_found(&self, name: &str) -> ApiError {
        ApiError::status(
            404,
            "NotFound",
            format!("{} {:?} not found", self.qualified(), name),
            Some(self.details(name, self.plural)),
        )
    }

    pub fn already_exists(&self, name: &str) -> ApiError {
        ApiError::status(
            409,
            "AlreadyExists",
            format!("{} {:?} already exists", self.qualified(), name),
            Some(self.details(name, self.plural)),
        )
    }

    pub fn conflict_modified(&self, name: &str) -> ApiError {
        ApiError::status(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {:?}: the object has been modified; please apply your changes to the latest version and try again",
                self.qualified(),
                name
            ),
            Some(self.details(name, self.plural)),
        )
    }

    /// A DELETE precondition that does not hold (details name the Kind).
    pub fn precondition_failed(&self, kind: &str, name: &str, what: String) -> ApiError {
        let q = if self.group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{}", self.group)
        };
        ApiError::status(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {q} {name:?}: {what}"),
            Some(self.details(name, kind)),
        )
    }

    pub fn apply_conflict(&self, message: String, causes: Vec<Value>) -> ApiError {
        ApiError::status(409, "Conflict", message, Some(json!({ "causes": causes })))
    }

    pub fn terminating_namespace(&self, name: &str, namespace: &str) -> ApiError {
        let mut d = self.details(name, self.plural);
        d["causes"] = json!([{"reason": "NamespaceTerminating",
            "message": format!("namespace {namespace} is being terminated"),
            "field": "metadata.namespace"}]);
        ApiError::status(
            403,
            "Forbidden",
            format!(
                "{} {:?} is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                self.qualified(),
                name
            ),
            Some(d),
        )
    }

    /// 422 Invalid with one cause per field error (details name the Kind).
    pub fn invalid(&self, kind: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let q = if self.group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{}", self.group)
        };
        let parts: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let joined = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let mut d = self.details(name, kind);
        d["causes"] = Value::Array(causes.iter().map(Cause::to_json).collect());
        ApiError::status(
            422,
            "Invalid",
            format!("{q} {name:?} is invalid: {joined}"),
            Some(d),
        )
    }
}

/// One field error of a 422 answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub reason: &'static str,
    pub message: String,
    pub field: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueRequired",
            message: "Required value".into(),
            field: field.into(),
        }
    }

    pub fn required_msg(field: impl Into<String>, detail: &str) -> Self {
        Cause {
            reason: "FieldValueRequired",
            message: format!("Required value: {detail}"),
            field: field.into(),
        }
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {detail}", go_value(value)),
            field: field.into(),
        }
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
            field: field.into(),
        }
    }

    pub fn type_invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Cause {
            reason: "FieldValueTypeInvalid",
            message: format!("Invalid value: {}: {detail}", go_value(value)),
            field: field.into(),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: &Value, allowed: &[Value]) -> Self {
        let list: Vec<String> = allowed.iter().map(go_value).collect();
        Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                go_value(value),
                list.join(", ")
            ),
            field: field.into(),
        }
    }

    pub fn too_long(field: impl Into<String>, max: u64) -> Self {
        Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {max} bytes"),
            field: field.into(),
        }
    }

    pub fn too_many(field: impl Into<String>, actual: usize, max: u64) -> Self {
        Cause {
            reason: "FieldValueTooMany",
            message: format!("Too many: {actual}: must have at most {max} items"),
            field: field.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"reason": self.reason, "message": self.message, "field": self.field})
    }
}

/// Formats a value the way Go's field errors print it (Kubernetes 1.34 and later): strings
/// quoted, objects and lists as JSON with struct fields in Go's declaration order.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => format!("{s:?}"),
        other => go_json_text(other),
    }
}

/// Fields of Go structs in their declaration order, for the structs messages print; other
/// keys (map keys such as labels) come after them, sorted, as Go sorts map keys.
const GO_FIELD_ORDER: &[&str] = &[
    "apiVersion",
    "kind",
    "name",
    "uid",
    "controller",
    "blockOwnerDeletion",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "metadata",
    "spec",
];

/// JSON text with object fields in Go's order (see [`GO_FIELD_ORDER`]).
pub fn go_json_text(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by_key(|k| {
                let pos = GO_FIELD_ORDER.iter().position(|f| f == k);
                (pos.unwrap_or(usize::MAX), (*k).clone())
            });
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), go_json_text(&m[*k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(go_json_text).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// 403 Forbidden from an admission plugin: `<resource> "<name>" is forbidden: <reason>`.
pub fn admission_forbidden(res: &Res, name: &str, reason: &str) -> ApiError {
    ApiError::status(
        403,
        "Forbidden",
        format!("{} {name:?} is forbidden: {reason}", res.qualified()),
        Some(res.details(name, res.plural)),
    )
}

pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::status(400, "BadRequest", message, None)
}

pub fn not_found_resource() -> ApiError {
    ApiError::status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

pub fn method_not_allowed() -> ApiError {
    ApiError::status(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

pub fn unsupported_media_type() -> ApiError {
    ApiError::status(
        415,
        "UnsupportedMediaType",
        "415: Unsupported Media Type",
        Some(json!({})),
    )
}

pub fn expired(message: impl Into<String>) -> ApiError {
    ApiError::status(410, "Expired", message, None)
}

pub fn internal(message: impl Into<String>) -> ApiError {
    let m: String = message.into();
    ApiError::status(
        500,
        "InternalError",
        format!("Internal error occurred: {m}"),
        Some(json!({"causes": [{"message": m}]})),
    )
}

pub fn too_many_requests() -> ApiError {
    let mut e = ApiError::status(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        Some(json!({"retryAfterSeconds": 1})),
    );
    e.retry_after = Some(1);
    e
}

/// 422 about a request option (`PatchOptions.meta.k8s.io "" is invalid: ...`).
pub fn invalid_options(kind: &str, cause: Cause) -> ApiError {
    let msg = format!(
        "{kind}.meta.k8s.io \"\" is invalid: {}: {}",
        cause.field, cause.message
    );
    ApiError::status(
        422,
        "Invalid",
        msg,
        Some(json!({"group": "meta.k8s.io", "kind": kind, "causes": [cause.to_json()]})),
    )
}
