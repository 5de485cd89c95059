//! The admin HTTP server: `/livez`, `/readyz` and `/metrics`.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};

use super::metrics::Metrics;

/// Why the operator is not ready, until it starts.
const STARTING: &str = "starting: the watches are syncing";

/// What the admin endpoints report.
#[derive(Clone)]
pub struct AdminState {
    metrics: Arc<Metrics>,
    /// `None` when ready, else why not.
    not_ready: Arc<Mutex<Option<String>>>,
}

impl AdminState {
    /// Not ready ("starting") until [`AdminState::set_ready`].
    pub fn new(metrics: Arc<Metrics>) -> Self {
        AdminState {
            metrics,
            not_ready: Arc::new(Mutex::new(Some(STARTING.into()))),
        }
    }

    /// Mark the operator ready (watches synced, reconciling, or a healthy standby), or not ready
    /// for the usual reason (starting, watches syncing).
    pub fn set_ready(&self, ready: bool) {
        *self.not_ready.lock().expect("lock") = (!ready).then(|| STARTING.into());
    }

    /// Mark the operator not ready, saying why in words (`/readyz` answers it with a 503), e.g.
    /// `cannot watch Deployment: could not list: deployments.apps is forbidden: ...`.
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.not_ready.lock().expect("lock") = Some(reason.into());
    }

    /// `Ok` when ready, else why not (what `/readyz` says).
    pub fn readiness(&self) -> Result<(), String> {
        match &*self.not_ready.lock().expect("lock") {
            None => Ok(()),
            Some(reason) => Err(reason.clone()),
        }
    }
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    match s.readiness() {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serve the admin routes on `addr` in the background; returns the task and the bound address.
pub async fn serve(
    addr: SocketAddr,
    state: AdminState,
) -> std::io::Result<(tokio::task::JoinHandle<()>, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    Ok((task, bound))
}
