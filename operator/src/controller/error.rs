//! The controller's errors, and the policy that decides how each is retried.
//!
//! An invalid spec is not one of them: it is a normal outcome, reported in status, that waits for
//! the user's next edit. These are the failures of the calls to the API server. Each variant names
//! what failed, and carries the API server's answer as data ([`ApiError`]), so the retry policy
//! can tell a refusal that will repeat (400, 403, 422: wait for a change of the spec or the
//! cluster) from one that may pass on the next try (409, 429, 5xx, no answer: back off and
//! retry), and so what users read is the server's message, once, in words.

use std::time::Duration;

/// What the API server answered to a failed call, or why no answer came.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The API server answered with a failure `Status`.
    #[error("{}", refusal_text(*code, reason, message))]
    Refused {
        /// The HTTP status code, e.g. 422.
        code: u16,
        /// The machine-readable reason, e.g. `Invalid`; may be empty.
        reason: String,
        /// The server's explanation, e.g. `... field is immutable`; may be empty.
        message: String,
    },
    /// No answer: the connection, TLS, a timeout, or an answer that could not be read.
    #[error("no answer from the API server: {message}")]
    Transport {
        /// The client's explanation, with its causes.
        message: String,
    },
}

fn refusal_text(code: u16, reason: &str, message: &str) -> String {
    let status = if reason.is_empty() {
        code.to_string()
    } else {
        format!("{code} {reason}")
    };
    if message.is_empty() {
        format!("the API server refused ({status})")
    } else {
        format!("the API server refused ({status}): {message}")
    }
}

impl From<kube::Error> for ApiError {
    fn from(e: kube::Error) -> Self {
        ApiError::of(&e)
    }
}

impl ApiError {
    /// What a client error says, in words (the client's own text of a refusal appends a Rust
    /// `Debug` dump of the whole answer).
    pub fn of(e: &kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => ApiError::Refused {
                code: s.code,
                reason: s.reason.clone(),
                message: s.message.clone(),
            },
            other => ApiError::Transport {
                message: with_causes(other),
            },
        }
    }
}

/// A watch's failure in words, for logs.
pub fn watch_failure(e: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as W;
    match e {
        W::InitialListFailed(e) => format!("could not list: {}", ApiError::of(e)),
        W::WatchStartFailed(e) => format!("could not start watching: {}", ApiError::of(e)),
        W::WatchFailed(e) => format!("the watch failed: {}", ApiError::of(e)),
        W::WatchError(s) => format!(
            "the watch ended: {}",
            refusal_text(s.code, &s.reason, &s.message)
        ),
        W::NoResourceVersion => e.to_string(),
    }
}

/// An error's message followed by each cause that adds to it, separated by `: `.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

impl ApiError {
    /// The HTTP status code of a refusal.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Refused { code, .. } => Some(*code),
            ApiError::Transport { .. } => None,
        }
    }

    /// Whether the same request will be refused again until the spec or the cluster changes:
    /// 400 Bad Request, 403 Forbidden (RBAC, a quota, admission), 422 Invalid.
    pub fn is_permanent(&self) -> bool {
        matches!(self.code(), Some(400 | 403 | 422))
    }

    /// The category of the answer, for metrics.
    pub fn category(&self) -> ErrorCategory {
        match self.code() {
            None => ErrorCategory::Transport,
            Some(409) => ErrorCategory::Conflict,
            Some(429) => ErrorCategory::Throttled,
            Some(401 | 403) => ErrorCategory::Forbidden,
            Some(404) => ErrorCategory::NotFound,
            Some(400 | 422) => ErrorCategory::Rejected,
            Some(c) if c >= 500 => ErrorCategory::Server,
            Some(_) => ErrorCategory::Api,
        }
    }
}

/// A failed reconcile: what failed, and the API server's answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A server-side apply of a child.
    #[error("could not apply {kind} {name}: {source}")]
    Apply {
        /// The child's kind.
        kind: &'static str,
        /// The child's name.
        name: String,
        /// The answer.
        #[source]
        source: ApiError,
    },
    /// The creation of a create-only child (a database's credentials Secret).
    #[error("could not create {kind} {name}: {source}")]
    Create {
        /// The child's kind.
        kind: &'static str,
        /// The child's name.
        name: String,
        /// The answer.
        #[source]
        source: ApiError,
    },
    /// The deletion of a child the spec no longer wants.
    #[error("could not delete {kind} {name}, which the spec no longer wants: {source}")]
    Prune {
        /// The child's kind.
        kind: &'static str,
        /// The child's name.
        name: String,
        /// The answer.
        #[source]
        source: ApiError,
    },
    /// A read of one object: a database's volume claim, or a StatefulSet about to be replaced.
    #[error("could not read {kind} {name}: {source}")]
    Read {
        /// The object's kind.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The answer.
        #[source]
        source: ApiError,
    },
    /// A step of growing a database's volume: expanding a claim, replacing its StatefulSet.
    #[error("could not {action} {kind} {name} to grow a database's volume: {source}")]
    Resize {
        /// What was done: `expand` or `replace`.
        action: &'static str,
        /// The object's kind.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The answer.
        #[source]
        source: ApiError,
    },
    /// The write of the Application's status.
    #[error("could not write the Application's status: {source}")]
    Status {
        /// The answer.
        #[source]
        source: ApiError,
    },
    /// A child's name could not be looked up: a watch of its kind (Keelson's objects, or the
    /// objects without Keelson's label) has not listed yet, for an API the cluster has just
    /// begun to serve, or because listing fails. Retried soon; nothing is written in the
    /// meantime, since the name may belong to someone else.
    #[error(
        "could not check who controls {kind} {name}: the watch of {kind} objects has not listed them yet{}",
        failure.as_deref().map(|f| format!(" ({f})")).unwrap_or_default()
    )]
    NotListed {
        /// The child's kind.
        kind: &'static str,
        /// The child's name.
        name: String,
        /// Why the watch last failed, in words, if it did.
        failure: Option<String>,
    },
    /// Asking the API server whether it serves an optional API.
    #[error("could not discover whether the cluster serves {api}: {source}")]
    Discovery {
        /// The API group/version, e.g. `monitoring.coreos.com/v1`.
        api: String,
        /// The answer.
        #[source]
        source: ApiError,
    },
}

/// `Result` with the controller's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A function that makes an [`Error::Read`] of `kind` `name` from the client's error, for
    /// `map_err`.
    pub fn read(kind: &'static str, name: &str) -> impl FnOnce(kube::Error) -> Error {
        let name = name.to_string();
        move |e| Error::Read {
            kind,
            name,
            source: e.into(),
        }
    }

    /// The API server's answer (`None` for [`Error::NotListed`], which asked nothing).
    pub fn answer(&self) -> Option<&ApiError> {
        match self {
            Error::Apply { source, .. }
            | Error::Create { source, .. }
            | Error::Prune { source, .. }
            | Error::Read { source, .. }
            | Error::Resize { source, .. }
            | Error::Status { source }
            | Error::Discovery { source, .. } => Some(source),
            Error::NotListed { .. } => None,
        }
    }

    /// Whether retrying cannot help until the spec or the cluster changes (see
    /// [`ApiError::is_permanent`]).
    pub fn is_permanent(&self) -> bool {
        self.answer().is_some_and(ApiError::is_permanent)
    }

    /// The error's category, the `category` label of `keelson_reconcile_errors_total`.
    pub fn category(&self) -> ErrorCategory {
        self.answer()
            .map_or(ErrorCategory::WatchNotListed, ApiError::category)
    }

    /// How a reconcile that failed with this error is retried, after `failures` consecutive
    /// transient failures of the same Application (this one included).
    pub fn retry(&self, failures: u32) -> Retry {
        if self.is_permanent() {
            Retry::AwaitChange
        } else {
            Retry::After(backoff(failures))
        }
    }

    /// The `reason` of the conditions and the Warning Event that report this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Apply { .. } | Error::Create { .. } => "ApplyFailed",
            Error::Prune { .. } => "PruneFailed",
            Error::Resize { .. } => "ResizeFailed",
            Error::Read { .. }
            | Error::NotListed { .. }
            | Error::Status { .. }
            | Error::Discovery { .. } => "ReconcileFailed",
        }
    }

    /// The `action` of the Warning Event that reports this error.
    pub fn action(&self) -> &'static str {
        match self {
            Error::Apply { .. } | Error::Create { .. } => "Apply",
            Error::Prune { .. } => "Prune",
            Error::Read { .. } | Error::NotListed { .. } => "Fetch",
            Error::Resize { .. } => "Resize",
            Error::Status { .. } => "Status",
            Error::Discovery { .. } => "Discover",
        }
    }

    /// What a status condition says will happen next.
    pub fn next_step(&self) -> &'static str {
        if self.is_permanent() {
            "will retry when the spec or the cluster changes"
        } else {
            "retrying"
        }
    }
}

/// How a failed reconcile is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Not on a timer: when the Application or one of its children changes, on the periodic
    /// resync, or when discovery finds a new API.
    AwaitChange,
    /// After this delay (a change still triggers a reconcile at once).
    After(Duration),
}

/// The longest wait between retries of a transient failure.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The wait after `failures` consecutive transient failures: 1 s, 2 s, 4 s, ... up to
/// [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(5);
    Duration::from_secs(1 << exponent).min(MAX_BACKOFF)
}

/// The category of a failed reconcile, the `category` label of
/// `keelson_reconcile_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// The spec is invalid (not an [`Error`]: a normal outcome).
    InvalidSpec,
    /// 409: someone else wrote the object at the same time.
    Conflict,
    /// 429: the API server asked to slow down.
    Throttled,
    /// 401, 403: not allowed (RBAC, a quota, an admission policy).
    Forbidden,
    /// 404.
    NotFound,
    /// 400, 422: the object was rejected as invalid.
    Rejected,
    /// 5xx.
    Server,
    /// Any other refusal.
    Api,
    /// No answer.
    Transport,
    /// A watch a reconcile needed has not listed yet ([`Error::NotListed`]).
    WatchNotListed,
}

impl ErrorCategory {
    /// Every category, in the order metrics list them.
    pub const ALL: [ErrorCategory; 10] = [
        ErrorCategory::InvalidSpec,
        ErrorCategory::Conflict,
        ErrorCategory::Throttled,
        ErrorCategory::Forbidden,
        ErrorCategory::NotFound,
        ErrorCategory::Rejected,
        ErrorCategory::Server,
        ErrorCategory::Api,
        ErrorCategory::Transport,
        ErrorCategory::WatchNotListed,
    ];

    /// The label value, e.g. `conflict`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::InvalidSpec => "invalid_spec",
            ErrorCategory::Conflict => "conflict",
            ErrorCategory::Throttled => "throttled",
            ErrorCategory::Forbidden => "forbidden",
            ErrorCategory::NotFound => "not_found",
            ErrorCategory::Rejected => "rejected",
            ErrorCategory::Server => "server",
            ErrorCategory::Api => "api",
            ErrorCategory::Transport => "transport",
            ErrorCategory::WatchNotListed => "watch_not_listed",
        }
    }
}

/// Whether a client error is a 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether a client error is a 409 AlreadyExists.
pub fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            status: Some(kube::core::response::StatusSummary::Failure),
            code,
            message: message.into(),
            metadata: Some(Default::default()),
            reason: reason.into(),
            details: None,
        }))
    }

    fn apply_error(e: kube::Error) -> Error {
        Error::Apply {
            kind: "Deployment",
            name: "shop-orders".into(),
            source: e.into(),
        }
    }

    /// Rust `Debug` output never reaches a user.
    fn assert_words(text: &str) {
        for debug in ["Status {", "ListMeta", "Some(", "None", "{ ", "\\\""] {
            assert!(!text.contains(debug), "{debug:?} in {text:?}");
        }
    }

    #[test]
    fn api_answers_read_as_words_with_the_servers_message_once() {
        let cases = [
            (
                refused(
                    403,
                    "Forbidden",
                    "deployments.apps \"shop-orders\" is forbidden: exceeded quota: compute, requested: limits.cpu=2, used: limits.cpu=8, limited: limits.cpu=8",
                ),
                "could not apply Deployment shop-orders: the API server refused (403 Forbidden): deployments.apps \"shop-orders\" is forbidden: exceeded quota: compute, requested: limits.cpu=2, used: limits.cpu=8, limited: limits.cpu=8",
            ),
            (
                refused(
                    422,
                    "Invalid",
                    "Deployment.apps \"shop-orders\" is invalid: spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"x\"}}: field is immutable",
                ),
                "could not apply Deployment shop-orders: the API server refused (422 Invalid): Deployment.apps \"shop-orders\" is invalid: spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"x\"}}: field is immutable",
            ),
            (
                refused(
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on deployments.apps \"shop-orders\": the object has been modified; please apply your changes to the latest version and try again",
                ),
                "could not apply Deployment shop-orders: the API server refused (409 Conflict): Operation cannot be fulfilled on deployments.apps \"shop-orders\": the object has been modified; please apply your changes to the latest version and try again",
            ),
            (
                refused(
                    500,
                    "InternalError",
                    "Internal error occurred: etcdserver: request timed out",
                ),
                "could not apply Deployment shop-orders: the API server refused (500 InternalError): Internal error occurred: etcdserver: request timed out",
            ),
            (
                refused(503, "", ""),
                "could not apply Deployment shop-orders: the API server refused (503)",
            ),
        ];
        for (answer, want) in cases {
            let text = apply_error(answer).to_string();
            assert_eq!(text, want);
            assert_words(&text);
        }
    }

    #[test]
    fn a_watch_that_has_not_listed_is_retried_soon_and_said_in_words() {
        let waiting = Error::NotListed {
            kind: "HTTPRoute",
            name: "shop".into(),
            failure: None,
        };
        assert_eq!(
            waiting.to_string(),
            "could not check who controls HTTPRoute shop: the watch of HTTPRoute objects has not listed them yet"
        );
        let failing = Error::NotListed {
            kind: "Service",
            name: "shop-web".into(),
            failure: Some("could not list: the API server refused (503)".into()),
        };
        let text = failing.to_string();
        assert!(
            text.ends_with(
                "has not listed them yet (could not list: the API server refused (503))"
            )
        );
        assert_words(&text);
        assert!(!failing.is_permanent());
        assert_eq!(failing.retry(1), Retry::After(Duration::from_secs(1)));
        assert_eq!(failing.category().as_str(), "watch_not_listed");
        assert_eq!(failing.reason(), "ReconcileFailed");
    }

    #[test]
    fn a_transport_failure_reads_as_words() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = apply_error(kube::Error::ReadEvents(io));
        let text = e.to_string();
        assert_eq!(
            text,
            "could not apply Deployment shop-orders: no answer from the API server: Error reading events stream: connection refused"
        );
        assert_words(&text);
        assert_eq!(e.category(), ErrorCategory::Transport);
        assert!(!e.is_permanent());
    }

    #[test]
    fn watch_failures_read_as_words() {
        use kube::runtime::watcher::Error as W;
        let list = W::InitialListFailed(refused(
            403,
            "Forbidden",
            "servicemonitors.monitoring.coreos.com is forbidden: User \"system:serviceaccount:keelson:keelson\" cannot list resource \"servicemonitors\"",
        ));
        let text = watch_failure(&list);
        assert!(
            text.starts_with("could not list: the API server refused (403 Forbidden): servicemonitors.monitoring.coreos.com is forbidden"),
            "{text}"
        );
        assert_words(&text);
        let gone = W::WatchError(Box::new(kube::core::Status {
            status: Some(kube::core::response::StatusSummary::Failure),
            code: 410,
            message: "too old resource version: 1 (42)".into(),
            metadata: Some(Default::default()),
            reason: "Expired".into(),
            details: None,
        }));
        assert_eq!(
            watch_failure(&gone),
            "the watch ended: the API server refused (410 Expired): too old resource version: 1 (42)"
        );
    }

    #[test]
    fn refusals_that_will_repeat_wait_for_a_change() {
        for code in [400, 403, 422] {
            let e = apply_error(refused(code, "", ""));
            assert!(e.is_permanent(), "{code}");
            assert_eq!(e.retry(1), Retry::AwaitChange, "{code}");
            assert_eq!(e.retry(7), Retry::AwaitChange, "{code}");
            assert_eq!(
                e.next_step(),
                "will retry when the spec or the cluster changes"
            );
        }
    }

    #[test]
    fn transient_failures_back_off_from_one_second_to_thirty() {
        for code in [409, 429, 500, 503, 504] {
            let e = apply_error(refused(code, "", ""));
            assert!(!e.is_permanent(), "{code}");
            let waits: Vec<u64> = (1..=8)
                .map(|n| match e.retry(n) {
                    Retry::After(d) => d.as_secs(),
                    Retry::AwaitChange => panic!("{code} waits for a change"),
                })
                .collect();
            assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30], "{code}");
            assert_eq!(e.next_step(), "retrying");
        }
    }

    #[test]
    fn every_answer_has_a_category() {
        let category = |code| apply_error(refused(code, "", "")).category();
        assert_eq!(category(409), ErrorCategory::Conflict);
        assert_eq!(category(429), ErrorCategory::Throttled);
        assert_eq!(category(403), ErrorCategory::Forbidden);
        assert_eq!(category(404), ErrorCategory::NotFound);
        assert_eq!(category(422), ErrorCategory::Rejected);
        assert_eq!(category(500), ErrorCategory::Server);
        assert_eq!(category(418), ErrorCategory::Api);
        let labels: std::collections::BTreeSet<_> =
            ErrorCategory::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(labels.len(), ErrorCategory::ALL.len());
    }
}
