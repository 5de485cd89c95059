//! The wiring of the controller: discovery, the child watches, one kube-runtime `Controller` per
//! watched namespace fed by the watches and by discovery, and the sweep that forgets deleted
//! Applications.

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

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

use super::{admin::AdminState, metrics::Metrics};
use crate::{
    api::Application,
    build::ApiCapabilities,
    controller::{
        Context, ControllerConfig,
        error::watch_failure,
        error_policy, fetch, reconcile,
        watch::{self, Scope},
    },
    kinds,
};

type Signal = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;
type Shutdown = Shared<Signal>;
type Owners = UnboundedReceiver<ObjectRef<Application>>;

/// How often the sweep forgets what is remembered of deleted Applications.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// How often start-up looks at why a watch has not listed yet, for the log and `/readyz`.
const START_CHECK: Duration = Duration::from_secs(1);

/// How [`run`] ends.
pub struct Stop {
    /// Stop taking work; in-flight reconciles finish first (SIGTERM).
    pub graceful: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    /// Stop at once: in-flight reconciles are cancelled, and nothing more is written (this
    /// replica lost its lease: another one writes now).
    pub abort: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Run the controller until `stop`.
///
/// `admin` is told why the controller is not ready while it starts (a watch that cannot list
/// says so, with the API server's words), and that it is ready once every watch, the
/// Applications' too, has listed its objects and reconciling has started.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    admin: AdminState,
    stop: Stop,
) -> anyhow::Result<()> {
    let graceful = stop.graceful.shared();
    let mut tasks = Tasks::default();
    let work = async {
        // Until the controllers run, a shutdown simply ends the start-up.
        let (ctx, owners) = tokio::select! {
            s = start(client, config, metrics, &admin) => s,
            _ = graceful.clone() => return,
        };
        run_started(ctx, owners, graceful, &admin, &mut tasks).await;
    };
    // Dropping `work` drops the controllers, which aborts their reconciles at their next await.
    tokio::select! {
        _ = work => {}
        _ = stop.abort => tracing::warn!("stopped at once: in-flight reconciles are cancelled"),
    }
    Ok(())
}

/// Tasks spawned beside the controllers, aborted when they end.
#[derive(Default)]
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Tasks {
    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task));
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Discover, then start and sync every watch; while a watch cannot list, say why (log and
/// `/readyz`) instead of waiting silently.
async fn start(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    admin: &AdminState,
) -> (Arc<Context>, Owners) {
    let mut delay = Duration::from_millis(200);
    let caps = loop {
        match fetch::capabilities(&client).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis(), "discovery failed");
                admin.set_not_ready(format!("discovery failed: {e}"));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    };
    admin.set_ready(false);
    let (ctx, owners) = Context::new(client, config, metrics, caps);
    let ctx = Arc::new(ctx);
    ctx.start_watches(caps);
    wait_listed(&ctx, admin).await;
    (ctx, owners)
}

/// Wait until every started child watch has listed its objects, saying why while one cannot.
async fn wait_listed(ctx: &Context, admin: &AdminState) {
    let mut reported = String::new();
    let mut synced = std::pin::pin!(ctx.wait_for_watches());
    loop {
        tokio::select! {
            () = &mut synced => break,
            () = tokio::time::sleep(START_CHECK) => {
                let failures: Vec<String> = ctx
                    .watch_failures()
                    .into_iter()
                    .map(|(kind, why)| format!("cannot watch {kind}: {why}"))
                    .collect();
                report_start(admin, &mut reported, &failures);
            }
        }
    }
}

/// Tell the log (once per change) and `/readyz` why the controller cannot start.
fn report_start(admin: &AdminState, reported: &mut String, failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    let text = failures.join("; ");
    if *reported != text {
        tracing::error!(
            reason = %text,
            "the controller cannot start: a watch cannot list its objects (check the operator's RBAC, `keelson rbac`, and that Keelson's CRD is installed); retrying"
        );
        reported.clone_from(&text);
    }
    admin.set_not_ready(text);
}

/// Run one controller per watched namespace, with discovery and the sweep beside them, until
/// `shutdown`.
async fn run_started(
    ctx: Arc<Context>,
    owners: Owners,
    shutdown: Shutdown,
    admin: &AdminState,
    tasks: &mut Tasks,
) {
    let (caps_tx, caps_rx) = mpsc::unbounded::<()>();
    tasks.spawn(rediscover(ctx.clone(), caps_tx));
    let keys = ctx.config.scope.keys();
    let owner_rxs = fan_out_owners(&ctx.config.scope, owners, tasks);
    let caps_rxs = broadcast(caps_rx, keys.len(), tasks);
    let mut controllers = Vec::new();
    let mut apps = Vec::new();
    for ((key, owner_rx), caps_rx) in keys.into_iter().zip(owner_rxs).zip(caps_rxs) {
        let (controller, watched) = namespace_controller(&ctx, &key, owner_rx, caps_rx, &shutdown);
        controllers.push(controller);
        apps.push(watched);
    }
    let stores: Vec<Store<Application>> = apps.iter().map(|a| a.store.clone()).collect();
    ctx.set_application_stores(stores.clone());
    tasks.spawn(sweep(ctx, stores));
    // Readiness is reported while the controllers run, and no longer once they end.
    let reporting = async {
        report_ready(apps, admin.clone()).await;
        futures::future::pending::<()>().await;
    };
    tokio::select! {
        _ = futures::future::join_all(controllers) => {}
        () = reporting => {}
    }
}

/// Once the Applications of every watched namespace are listed, the controller is ready; until
/// then, a failing watch of them says why.
async fn report_ready(apps: Vec<WatchedApps>, admin: AdminState) {
    let mut reported = String::new();
    let mut listed = std::pin::pin!(futures::future::join_all(
        apps.iter().map(|a| a.store.wait_until_ready())
    ));
    loop {
        tokio::select! {
            _ = &mut listed => break,
            () = tokio::time::sleep(START_CHECK) => {
                let failures: Vec<String> = apps
                    .iter()
                    .filter_map(|a| a.failure.lock().expect("lock").clone())
                    .map(|why| format!("cannot watch Application: {why}"))
                    .collect();
                report_start(&admin, &mut reported, &failures);
            }
        }
    }
    admin.set_ready(true);
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
fn fan_out_owners(scope: &Scope, mut owners: Owners, tasks: &mut Tasks) -> Vec<Owners> {
    let (txs, rxs): (Vec<_>, Vec<_>) = scope.keys().iter().map(|_| mpsc::unbounded()).unzip();
    let scope = scope.clone();
    tasks.spawn(async move {
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
fn broadcast(
    mut rx: UnboundedReceiver<()>,
    n: usize,
    tasks: &mut Tasks,
) -> Vec<UnboundedReceiver<()>> {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded()).unzip();
    tasks.spawn(async move {
        while rx.next().await.is_some() {
            for tx in &txs {
                let _ = tx.unbounded_send(());
            }
        }
    });
    rxs
}

/// The Applications of one watched namespace: their store, and why their watch last failed
/// (until it lists).
struct WatchedApps {
    store: Store<Application>,
    failure: Arc<Mutex<Option<String>>>,
}

/// The controller of the Applications of one watched namespace (`None`: all), and its
/// Applications.
fn namespace_controller(
    ctx: &Arc<Context>,
    key: &Option<String>,
    owners: Owners,
    caps_changed: UnboundedReceiver<()>,
    shutdown: &Shutdown,
) -> (BoxFuture<'static, ()>, WatchedApps) {
    let api = Scope::api::<Application>(&ctx.client, key);
    let (reader, writer) = reflector::store();
    let failure = Arc::new(Mutex::new(None));
    let failed = failure.clone();
    // The store keeps Applications without their managedFields and without the inventory of
    // their status (remembered apart, see `ApplyCache::absorb`): nothing reads them, and at
    // thousands of Applications they would be most of the operator's memory.
    let absorb = ctx.clone();
    let watched = watcher(
        api,
        watcher::Config::default().page_size(watch::LIST_PAGE_SIZE),
    )
    .default_backoff()
    .inspect(move |event| match event {
        Err(e) => {
            let error = watch_failure(e);
            tracing::warn!(kind = "Application", %error, "watch of Applications failed; retrying");
            *failed.lock().expect("lock") = Some(error);
        }
        Ok(watcher::Event::InitDone) => *failed.lock().expect("lock") = None,
        Ok(_) => {}
    })
    .modify(move |app: &mut Application| {
        app.metadata.managed_fields = None;
        absorb.applied.absorb(app);
    });
    let apps = reflector::reflector(writer, watched)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let store = reader.clone();
    let run = Controller::for_stream(apps, reader)
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
        });
    // A graceful shutdown stops the Applications' watch with the rest of the controller's
    // input. If that watch had not listed yet, the controller's runner, which holds every
    // reconcile until it has, would wait for it forever: nothing was started, so end at once.
    let listed = store.clone();
    let unstarted = shutdown.clone().then(move |()| async move {
        if listed.wait_until_ready().now_or_never().is_some() {
            futures::future::pending::<()>().await;
        }
    });
    let controller = async move {
        futures::pin_mut!(run, unstarted);
        futures::future::select(run, unstarted).await;
    }
    .boxed();
    (controller, WatchedApps { store, failure })
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
