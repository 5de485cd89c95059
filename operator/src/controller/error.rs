//! The controller's errors. An invalid spec is not one of them: it is a normal outcome, reported
//! in status, that waits for the user's next edit. These are the transient failures that are
//! retried with backoff.

/// A transient reconcile failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done, e.g. "apply Deployment shop-orders".
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// `Result` with the controller's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wrap a client error with what was being done.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }

    /// The error's category, the `category` label of `keelson_reconcile_errors_total`.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => match source {
                kube::Error::Api(s) => match s.code {
                    409 => "conflict",
                    429 => "throttled",
                    401 | 403 => "forbidden",
                    404 => "not_found",
                    400 | 422 => "rejected",
                    c if c >= 500 => "server",
                    _ => "api",
                },
                _ => "transport",
            },
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
