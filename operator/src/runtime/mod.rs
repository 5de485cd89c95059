//! The operator process: configuration, logging, the admin server, leader election, and the
//! controller, with a graceful shutdown on SIGTERM.

pub mod admin;
pub mod controllers;
pub mod leader;
pub mod metrics;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use crate::controller::{ControllerConfig, watch::Scope};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `keelson run`'s flags; each can also be set by its environment variable.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Log level or tracing filter, e.g. `info` or `keelson=debug,kube=info`.
    #[arg(long, env = "KEELSON_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "KEELSON_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Namespaces to watch, comma-separated. Empty: every namespace.
    #[arg(
        long,
        env = "KEELSON_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub namespaces: Vec<String>,
    /// Address of the admin HTTP server (/livez, /readyz, /metrics).
    #[arg(long, env = "KEELSON_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// Elect a leader through a Lease, so that several replicas can run and one reconciles.
    #[arg(long, env = "KEELSON_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "KEELSON_LEASE_NAME", default_value = "keelson-leader")]
    pub lease_name: String,
    /// Namespace of the Lease. Default: the pod's namespace (POD_NAMESPACE), else `default`.
    #[arg(long, env = "KEELSON_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This replica's identity in the Lease and in Events. Default: the pod's name (POD_NAME),
    /// else the host name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a Lease lasts without renewal: a dead leader is replaced within this.
    #[arg(long, env = "KEELSON_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Seconds between full resyncs of every Application.
    #[arg(long, env = "KEELSON_RESYNC_SECONDS", default_value_t = 300)]
    pub resync_seconds: u64,
    /// Seconds between checks for newly installed optional APIs (ServiceMonitor, HTTPRoute).
    #[arg(long, env = "KEELSON_DISCOVERY_SECONDS", default_value_t = 30)]
    pub discovery_seconds: u64,
    /// Applications reconciled at once.
    #[arg(long, env = "KEELSON_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// Milliseconds a reconcile request waits for more of the same Application's watch events.
    #[arg(long, env = "KEELSON_DEBOUNCE_MS", default_value_t = 30)]
    pub debounce_ms: u64,
}

impl RunArgs {
    /// The controller settings these flags describe.
    pub fn controller_config(&self) -> ControllerConfig {
        let namespaces: Vec<String> = self
            .namespaces
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect();
        ControllerConfig {
            scope: if namespaces.is_empty() {
                Scope::All
            } else {
                Scope::Namespaces(namespaces)
            },
            resync: Duration::from_secs(self.resync_seconds.max(1)),
            discovery_interval: Duration::from_secs(self.discovery_seconds.max(1)),
            concurrency: self.concurrency.max(1),
            instance: self.identity.clone(),
            debounce: Duration::from_millis(self.debounce_ms),
        }
    }
}

impl RunArgs {
    /// The leader-election settings, when enabled.
    pub fn lease_settings(&self) -> Option<leader::LeaseSettings> {
        if !self.leader_elect {
            return None;
        }
        let identity = self
            .identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("keelson-{}", std::process::id()));
        let namespace = self
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        let duration = Duration::from_secs(self.lease_duration_seconds.max(2));
        Some(leader::LeaseSettings {
            name: self.lease_name.clone(),
            namespace,
            identity,
            duration,
            grace: (duration / 3).max(Duration::from_secs(1)),
        })
    }
}

fn init_logging(args: &RunArgs) -> anyhow::Result<()> {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid log level {:?}", args.log_level))?;
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    }
    .map_err(|e| anyhow::anyhow!(e))
}

/// `keelson run`: blocks until SIGTERM or Ctrl-C.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn client() -> anyhow::Result<kube::Client> {
    let config = kube::Config::infer().await.map_err(|e| {
        anyhow::anyhow!(
            "no Kubernetes configuration: not running in a cluster and no usable kubeconfig ({e}); set KUBECONFIG or run inside a pod"
        )
    })?;
    operator_client(config)
}

/// The User-Agent of every request the operator makes (audit logs show who did what).
pub const USER_AGENT: &str = concat!("keelson/", env!("CARGO_PKG_VERSION"));

/// A client for the operator from a cluster configuration.
pub fn operator_client(config: kube::Config) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(operator_config(config))?)
}

/// The cluster configuration as the operator's client uses it: every request names Keelson in
/// its User-Agent. (Tests build their own client from it, with middleware that injects faults.)
pub fn operator_config(mut config: kube::Config) -> kube::Config {
    config.headers.push((
        axum::http::header::USER_AGENT,
        axum::http::HeaderValue::from_static(USER_AGENT),
    ));
    config
}

async fn run_async(args: RunArgs) -> anyhow::Result<()> {
    let client = client().await?;
    let metrics = Arc::new(metrics::Metrics::new());
    let admin_state = admin::AdminState::new(metrics.clone());
    let (admin, bound) = admin::serve(args.admin_addr, admin_state.clone())
        .await
        .with_context(|| format!("cannot serve the admin endpoints on {}", args.admin_addr))?;
    tracing::info!(addr = %bound, "admin server listening");
    let result = run_operator(
        client,
        args.controller_config(),
        args.lease_settings(),
        metrics,
        admin_state,
        shutdown_signal(),
    )
    .await;
    admin.abort();
    result
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing in-flight reconciles");
}

/// Run the operator with an existing client until `shutdown` resolves: elect a leader (when
/// `lease` is set), then run the controller while leading. A shutdown lets in-flight reconciles
/// finish, then releases the lease. Losing the lease stops the controller at once (in-flight
/// reconciles are cancelled: another replica writes now) and ends the run with an error, so the
/// process restarts as a standby.
pub async fn run_operator(
    client: kube::Client,
    config: ControllerConfig,
    lease: Option<leader::LeaseSettings>,
    metrics: Arc<metrics::Metrics>,
    admin: admin::AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let Some(lease) = lease else {
        metrics.leader.set(1);
        let stop = controllers::Stop {
            graceful: Box::pin(shutdown),
            abort: Box::pin(futures::future::pending()),
        };
        return controllers::run(client, config, metrics, admin, stop).await;
    };

    let mut election = leader::Election::start(client.clone(), &lease).await?;
    // A healthy standby is ready: it serves probes and waits for the lease.
    admin.set_ready(true);
    tracing::info!(identity = %lease.identity, lease = %lease.name, "waiting for the leader lease");
    let acquired = tokio::select! {
        a = election.acquired() => a,
        _ = shutdown.clone() => false,
    };
    if !acquired {
        election.release().await;
        return Ok(());
    }
    tracing::info!(identity = %lease.identity, "became the leader");
    metrics.leader.set(1);
    admin.set_ready(false);

    let lost = election.lost();
    let lost_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = lost_flag.clone();
    let stop = controllers::Stop {
        graceful: Box::pin(shutdown),
        abort: Box::pin(async move {
            lost.await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }),
    };
    let result = controllers::run(client, config, metrics.clone(), admin.clone(), stop).await;
    metrics.leader.set(0);
    let lost = lost_flag.load(std::sync::atomic::Ordering::SeqCst);
    if lost {
        admin.set_not_ready("lost the leader lease; restarting as a standby");
    } else {
        admin.set_ready(false);
    }
    election.release().await;
    result?;
    if lost {
        anyhow::bail!("lost the leader lease; exiting so that this replica restarts as a standby");
    }
    Ok(())
}
