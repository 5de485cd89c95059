//! The wiring of the controller: discovery, the child watches, one kube-runtime `Controller` per
//! watched namespace fed by the watches and by discovery, and the sweep that forgets deleted
//! Applications.

use std::{collections::HashSet, future::Future, pin::Pin, sync::Arc, time::Duration};

use futures::{
    FutureExt, StreamExt,
    channel::mpsc::{self, UnboundedReceiver, UnboundedSender},
    future::{BoxFuture, Shared},
};
use kube::{
    Client, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::Config as ControllerRuntimeConfig,
        predicates,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};

use super::metrics::Metrics;
use crate::{
    api::Application,
    build::ApiCapabilities,
    controller::{
        Context, ControllerConfig, error_policy, fetch, reconcile,
        watch::{self, Scope},
    },
    kinds,
};

type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;
type Shutdown = Shared<ShutdownSignal>;
type Owners = UnboundedReceiver<ObjectRef<Application>>;

/// How often the sweep forgets what is remembered of deleted Applications.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Run the controller until `shutdown` resolves; in-flight reconciles finish first.
///
/// `ready` is called once every watch has listed its objects and reconciling has started.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ready: impl FnOnce() + Send + 'static,
) -> anyhow::Result<()> {
    let boxed: ShutdownSignal = Box::pin(shutdown);
    let shutdown = boxed.shared();
    // Until the controllers run, a shutdown simply ends the start-up.
    let (ctx, owners) = tokio::select! {
        s = start(client, config, metrics) => s,
        _ = shutdown.clone() => return Ok(()),
    };
    run_started(ctx, owners, shutdown, ready).await;
    Ok(())
}

/// Discover, then start and sync every watch.
async fn start(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
) -> (Arc<Context>, Owners) {
    let mut delay = Duration::from_millis(200);
    let caps = loop {
        match fetch::capabilities(&client).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis(), "discovery failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    };
    let (ctx, owners) = Context::new(client, config, metrics, caps);
    let ctx = Arc::new(ctx);
    ctx.start_watches(caps);
    ctx.wait_for_watches().await;
    (ctx, owners)
}

/// Run one controller per watched namespace, with discovery and the sweep beside them, until
/// `shutdown`.
async fn run_started(
    ctx: Arc<Context>,
    owners: Owners,
    shutdown: Shutdown,
    ready: impl FnOnce() + Send + 'static,
) {
    let (caps_tx, caps_rx) = mpsc::unbounded::<()>();
    let discovery = tokio::spawn(rediscover(ctx.clone(), caps_tx));
    let keys = ctx.config.scope.keys();
    let owner_rxs = fan_out_owners(&ctx.config.scope, owners);
    let caps_rxs = broadcast(caps_rx, keys.len());
    let mut controllers = Vec::new();
    let mut app_stores = Vec::new();
    for ((key, owner_rx), caps_rx) in keys.into_iter().zip(owner_rxs).zip(caps_rxs) {
        let (controller, store) = namespace_controller(&ctx, &key, owner_rx, caps_rx, &shutdown);
        controllers.push(controller);
        app_stores.push(store);
    }
    tokio::spawn(sweep(ctx, app_stores));
    ready();
    futures::future::join_all(controllers).await;
    discovery.abort();
}

/// Rediscover the optional APIs every `discovery_interval`; when one appears or goes, start its
/// watch, wait for its first list, then tell `changed` (every Application is reconciled).
async fn rediscover(ctx: Arc<Context>, changed: UnboundedSender<()>) {
    let mut tick = tokio::time::interval(ctx.config.discovery_interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        match fetch::capabilities(&ctx.client).await {
            Ok(new) if new != ctx.caps() => {
                tracing::info!(served = %served(new), "optional APIs changed");
                ctx.start_watches(new);
                ctx.wait_for_watches().await;
                ctx.set_caps(new);
                if changed.unbounded_send(()).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "discovery of optional APIs failed"),
        }
    }
}

/// The optional APIs served, in words, e.g. `monitoring.coreos.com/v1`.
fn served(caps: ApiCapabilities) -> String {
    let mut apis: Vec<String> = kinds::all()
        .into_iter()
        .filter(|k| k.api.is_some_and(|api| caps.serves(api)))
        .map(|k| format!("{}/{}", k.group, k.version))
        .collect();
    apis.dedup();
    if apis.is_empty() {
        "none".into()
    } else {
        apis.join(", ")
    }
}

/// One stream of Applications to reconcile per watched namespace (one for all namespaces), fed
/// from the single stream the child watches send to.
fn fan_out_owners(scope: &Scope, mut owners: Owners) -> Vec<Owners> {
    let (txs, rxs): (Vec<_>, Vec<_>) = scope.keys().iter().map(|_| mpsc::unbounded()).unzip();
    let scope = scope.clone();
    tokio::spawn(async move {
        while let Some(r) = owners.next().await {
            let idx = match &scope {
                Scope::All => Some(0),
                Scope::Namespaces(ns) => ns
                    .iter()
                    .position(|n| Some(n.as_str()) == r.namespace.as_deref()),
            };
            if let Some(i) = idx {
                let _ = txs[i].unbounded_send(r);
            }
        }
    });
    rxs
}

/// `n` copies of the signals of `rx`.
fn broadcast(mut rx: UnboundedReceiver<()>, n: usize) -> Vec<UnboundedReceiver<()>> {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded()).unzip();
    tokio::spawn(async move {
        while rx.next().await.is_some() {
            for tx in &txs {
                let _ = tx.unbounded_send(());
            }
        }
    });
    rxs
}

/// The controller of the Applications of one watched namespace (`None`: all), and its store.
fn namespace_controller(
    ctx: &Arc<Context>,
    key: &Option<String>,
    owners: Owners,
    caps_changed: UnboundedReceiver<()>,
    shutdown: &Shutdown,
) -> (BoxFuture<'static, ()>, Store<Application>) {
    let api = Scope::api::<Application>(&ctx.client, key);
    let (reader, writer) = reflector::store();
    // The store keeps Applications without their managedFields: nothing reads them, and at
    // thousands of Applications they would be most of the operator's memory.
    let watched = watcher(
        api,
        watcher::Config::default().page_size(watch::LIST_PAGE_SIZE),
    )
    .default_backoff()
    .modify(|app: &mut Application| app.metadata.managed_fields = None);
    let apps = reflector::reflector(writer, watched)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let store = reader.clone();
    let controller = Controller::for_stream(apps, reader)
        .with_config(
            ControllerRuntimeConfig::default()
                .concurrency(ctx.config.concurrency)
                .debounce(ctx.config.debounce),
        )
        .reconcile_on(owners)
        .reconcile_all_on(caps_changed)
        .reconcile_all_on(every(ctx.config.resync))
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(app = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .boxed();
    (controller, store)
}

/// Forget what is remembered of Applications that are gone, in every watched namespace.
async fn sweep(ctx: Arc<Context>, app_stores: Vec<Store<Application>>) {
    for s in &app_stores {
        let _ = s.wait_until_ready().await;
    }
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        let live: HashSet<String> = app_stores
            .iter()
            .flat_map(|s| s.state())
            .filter_map(|a| a.uid())
            .collect();
        ctx.forget_all_but(&live);
    }
}

/// A stream that yields every `period`, starting one period from now.
fn every(period: Duration) -> impl futures::Stream<Item = ()> + Send {
    futures::stream::unfold(
        tokio::time::interval_at(tokio::time::Instant::now() + period, period),
        |mut i| async move {
            i.tick().await;
            Some(((), i))
        },
    )
}
