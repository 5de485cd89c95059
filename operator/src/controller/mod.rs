//! The controller: for each Application, fetch, validate, build, apply, prune and status.
//!
//! It watches the Applications (only spec changes trigger work: a status write does not) and every
//! child kind (a child edited or deleted by hand triggers its owner's reconcile at once), with a
//! periodic resync as a backstop. A resync of an unchanged Application sends no request at all
//! (see [`apply`]).

pub mod apply;
pub mod error;
pub mod fetch;
pub mod prune;
pub mod rbac;
pub mod status;
pub mod watch;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use futures::{StreamExt, channel::mpsc};
use kube::{
    Client, Resource, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::{Action, Config as ControllerRuntimeConfig},
        events::{Event as KubeEvent, EventType, Recorder, Reporter},
        predicates, reflector, watcher,
    },
};

pub use crate::kinds::Stores;
use crate::{
    api::{Application, validate},
    build::{self, ApiCapabilities, Children},
    kinds,
    kinds::{DesiredChild, KindVisitor, Registered, Write, kind_name},
    runtime::metrics::{CategoryLabel, Metrics, ResultLabel},
};
pub use error::{Error, Result};
use futures::future::BoxFuture;
use watch::{KindStores, Scope};

/// The one field manager of every write Keelson makes.
pub const FIELD_MANAGER: &str = "keelson";

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The namespaces to watch.
    pub scope: Scope,
    /// How often every Application is reconciled even without a change.
    pub resync: Duration,
    /// How often the optional APIs are rediscovered.
    pub discovery_interval: Duration,
    /// How many Applications reconcile at once.
    pub concurrency: u16,
    /// The `reportingInstance` of Events (the pod's name).
    pub instance: Option<String>,
    /// How long a reconcile request waits for more: the watch events of one apply, or workloads
    /// turning ready together, then wake their Application once. Every new request restarts the
    /// wait, so it stays short: a rollout's stream of status changes must not hold off a
    /// repair. 30 ms measured best with the scale benchmark (README, Performance).
    pub debounce: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            scope: Scope::All,
            resync: Duration::from_secs(300),
            discovery_interval: Duration::from_secs(30),
            concurrency: 16,
            instance: None,
            debounce: Duration::from_millis(30),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The client.
    pub client: Client,
    /// The settings.
    pub config: ControllerConfig,
    /// The child watches.
    pub stores: Stores,
    /// What was last applied to each child.
    pub applied: apply::ApplyCache,
    /// The optional APIs the cluster serves, as last discovered.
    pub capabilities: RwLock<ApiCapabilities>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Per Application (by uid), the generation whose spec last passed the schema and CEL rules.
    schema_checked: Mutex<HashMap<String, i64>>,
    /// Consecutive failures per Application, for backoff.
    failures: Mutex<HashMap<String, u32>>,
    owners: mpsc::UnboundedSender<reflector::ObjectRef<Application>>,
}

impl Context {
    /// A context whose child watches have not started, and the stream of Applications whose
    /// children changed (fed once the watches start).
    pub fn new(
        client: Client,
        config: ControllerConfig,
        metrics: Arc<Metrics>,
        caps: ApiCapabilities,
    ) -> (
        Self,
        mpsc::UnboundedReceiver<reflector::ObjectRef<Application>>,
    ) {
        let (owners_tx, owners_rx) = mpsc::unbounded();
        let reporter = Reporter {
            controller: "keelson.dev/keelson".into(),
            instance: config.instance.clone(),
        };
        let ctx = Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            stores: Stores::default(),
            applied: apply::ApplyCache::default(),
            capabilities: RwLock::new(caps),
            metrics,
            schema_checked: Mutex::default(),
            failures: Mutex::default(),
            owners: owners_tx,
            config,
        };
        (ctx, owners_rx)
    }

    fn caps(&self) -> ApiCapabilities {
        *self.capabilities.read().expect("lock")
    }
}

impl Context {
    /// Start the watches of the kinds the capabilities allow that have not started yet.
    pub fn start_watches(&self, caps: ApiCapabilities) {
        struct Start<'a>(&'a Context, ApiCapabilities);
        impl KindVisitor for Start<'_> {
            fn visit<K: Registered>(&mut self) {
                let (ctx, caps) = (self.0, self.1);
                let stores = K::stores(&ctx.stores);
                if K::API.is_none_or(|api| caps.serves(api)) && !stores.started() {
                    stores.watch(&ctx.client, &ctx.config.scope, ctx.owners.clone());
                }
            }
        }
        kinds::for_each_kind(&mut Start(self, caps));
    }

    /// Wait until every started watch has listed its objects.
    async fn wait_for_watches(&self) {
        struct Wait<'a>(&'a Stores, Vec<BoxFuture<'a, ()>>);
        impl KindVisitor for Wait<'_> {
            fn visit<K: Registered>(&mut self) {
                self.1.push(Box::pin(K::stores(self.0).wait_until_ready()));
            }
        }
        let mut wait = Wait(&self.stores, Vec::new());
        kinds::for_each_kind(&mut wait);
        for ready in wait.1 {
            ready.await;
        }
    }
}

type ShutdownSignal = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>;

/// Run the controller until `shutdown` resolves; in-flight reconciles finish first.
///
/// `ready` is called once every watch has listed its objects and reconciling has started.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ready: impl FnOnce() + Send + 'static,
) -> anyhow::Result<()> {
    let boxed: ShutdownSignal = Box::pin(shutdown);
    let shutdown = futures::future::FutureExt::shared(boxed);
    // Until the controllers run, a shutdown simply ends the start-up.
    let started = tokio::select! {
        s = start(client.clone(), config, metrics) => s,
        _ = shutdown.clone() => return Ok(()),
    };
    let (ctx, owners_rx) = started;
    run_started(client, ctx, owners_rx, shutdown, ready).await
}

/// Discover, then start and sync every watch.
async fn start(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
) -> (
    Arc<Context>,
    mpsc::UnboundedReceiver<reflector::ObjectRef<Application>>,
) {
    let mut delay = Duration::from_millis(200);
    let caps = loop {
        match fetch::capabilities(&client).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "discovery failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    };
    let (ctx, owners_rx) = Context::new(client, config, metrics, caps);
    let ctx = Arc::new(ctx);
    ctx.start_watches(caps);
    ctx.wait_for_watches().await;
    (ctx, owners_rx)
}

async fn run_started(
    client: Client,
    ctx: Arc<Context>,
    owners_rx: mpsc::UnboundedReceiver<reflector::ObjectRef<Application>>,
    shutdown: futures::future::Shared<ShutdownSignal>,
    ready: impl FnOnce() + Send + 'static,
) -> anyhow::Result<()> {
    // Rediscover optional APIs; when one appears or goes, start its watch and reconcile all.
    let (caps_tx, caps_rx) = mpsc::unbounded::<()>();
    let discovery_ctx = ctx.clone();
    let discovery = tokio::spawn(async move {
        let mut tick = tokio::time::interval(discovery_ctx.config.discovery_interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            match fetch::capabilities(&discovery_ctx.client).await {
                Ok(new) if new != discovery_ctx.caps() => {
                    tracing::info!(?new, "optional APIs changed");
                    discovery_ctx.start_watches(new);
                    discovery_ctx.wait_for_watches().await;
                    *discovery_ctx.capabilities.write().expect("lock") = new;
                    if caps_tx.unbounded_send(()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "discovery of optional APIs failed"),
            }
        }
    });

    let mut controllers = Vec::new();
    let mut app_stores = Vec::new();
    let mut owners_rx = Some(owners_rx);
    let mut caps_rx = Some(caps_rx);
    let keys = ctx.config.scope.keys();
    // One owner/caps channel feeds every namespace's controller: fan them out.
    let (owner_senders, caps_senders): (Vec<_>, Vec<_>) = keys
        .iter()
        .map(|_| (mpsc::unbounded(), mpsc::unbounded::<()>()))
        .unzip();
    let owner_txs: Vec<_> = owner_senders.iter().map(|(tx, _)| tx.clone()).collect();
    let caps_txs: Vec<_> = caps_senders.iter().map(|(tx, _)| tx.clone()).collect();
    let fan_scope = ctx.config.scope.clone();
    let mut owners_in = owners_rx.take().expect("once");
    tokio::spawn(async move {
        while let Some(r) = owners_in.next().await {
            let idx = match &fan_scope {
                Scope::All => Some(0),
                Scope::Namespaces(ns) => ns
                    .iter()
                    .position(|n| Some(n.as_str()) == r.namespace.as_deref()),
            };
            if let Some(i) = idx {
                let _ = owner_txs[i].unbounded_send(r);
            }
        }
    });
    let mut caps_in = caps_rx.take().expect("once");
    tokio::spawn(async move {
        while caps_in.next().await.is_some() {
            for tx in &caps_txs {
                let _ = tx.unbounded_send(());
            }
        }
    });

    for ((key, (_, owner_rx)), (_, cap_rx)) in keys.into_iter().zip(owner_senders).zip(caps_senders)
    {
        let api = Scope::api::<Application>(&client, &key);
        let (reader, writer) = reflector::store();
        // The store keeps Applications without their managedFields: nothing reads them, and
        // at thousands of Applications they would be most of the operator's memory.
        let watched = watcher(
            api,
            watcher::Config::default().page_size(watch::LIST_PAGE_SIZE),
        )
        .default_backoff()
        .modify(|app: &mut Application| app.metadata.managed_fields = None);
        let apps = reflector::reflector(writer, watched)
            .applied_objects()
            .predicate_filter(predicates::generation, Default::default());
        let resync = ctx.config.resync;
        let store = reader.clone();
        let c = Controller::for_stream(apps, reader)
            .with_config(
                ControllerRuntimeConfig::default()
                    .concurrency(ctx.config.concurrency)
                    .debounce(ctx.config.debounce),
            )
            .reconcile_on(owner_rx)
            .reconcile_all_on(cap_rx)
            .reconcile_all_on(tokio_stream_interval(resync))
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|res| async move {
                match res {
                    Ok((obj, _)) => tracing::debug!(app = %obj, "reconciled"),
                    Err(e) => tracing::debug!(error = %e, "reconcile failed"),
                }
            });
        controllers.push(c);
        app_stores.push(store);
    }
    // Forget what is remembered of Applications that are gone, in every watched namespace.
    let sweep_ctx = ctx.clone();
    tokio::spawn(async move {
        for s in &app_stores {
            let _ = s.wait_until_ready().await;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let uids: std::collections::HashSet<String> = app_stores
                .iter()
                .flat_map(|s| s.state())
                .filter_map(|a| a.uid())
                .collect();
            sweep_ctx.applied.retain(|uid| uids.contains(uid));
            sweep_ctx
                .schema_checked
                .lock()
                .expect("lock")
                .retain(|uid, _| uids.contains(uid));
        }
    });
    ready();
    futures::future::join_all(controllers).await;
    discovery.abort();
    Ok(())
}

/// A stream that yields every `period`, starting one period from now.
fn tokio_stream_interval(period: Duration) -> impl futures::Stream<Item = ()> + Send {
    futures::stream::unfold(
        tokio::time::interval_at(tokio::time::Instant::now() + period, period),
        |mut i| async move {
            i.tick().await;
            Some(((), i))
        },
    )
}

/// Reconcile one Application.
pub async fn reconcile(app: Arc<Application>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_inner(&app, &ctx).await;
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    let key = app.uid().unwrap_or_default();
    match &result {
        Ok(outcome) => {
            ctx.failures.lock().expect("lock").remove(&key);
            ctx.metrics
                .reconciles
                .get_or_create(&ResultLabel { result: outcome })
                .inc();
        }
        Err(e) => {
            ctx.metrics
                .reconciles
                .get_or_create(&ResultLabel { result: "error" })
                .inc();
            ctx.metrics
                .errors
                .get_or_create(&CategoryLabel {
                    category: e.category(),
                })
                .inc();
        }
    }
    result.map(|outcome| {
        if outcome == "invalid_spec" {
            Action::await_change()
        } else {
            Action::requeue(ctx.config.resync)
        }
    })
}

async fn reconcile_inner(app: &Application, ctx: &Context) -> Result<&'static str> {
    if app.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the children through their owner references.
        return Ok("success");
    }
    let uid = app.uid().unwrap_or_default();
    let namespace = app.namespace().unwrap_or_default();

    // validate (the schema and CEL rules once per generation: the spec changes only with it)
    let generation = app.metadata.generation.unwrap_or_default();
    let checked = ctx.schema_checked.lock().expect("lock").get(&uid) == Some(&generation);
    let validated = if checked {
        validate::validate_schema_checked(app)
    } else {
        validate::validate(app)
    };
    if validated.is_ok() && !checked {
        ctx.schema_checked
            .lock()
            .expect("lock")
            .insert(uid.clone(), generation);
    }
    let model = match validated {
        Ok(m) => m,
        Err(invalid) => {
            let st = status::compute(ctx, app, &status::Outcome::Invalid(&invalid), status::now());
            if status::write(ctx, app, st).await? {
                publish(
                    ctx,
                    app,
                    EventType::Warning,
                    "InvalidSpec",
                    "Validate",
                    format!("nothing was changed: {invalid}"),
                )
                .await;
            }
            ctx.metrics
                .errors
                .get_or_create(&CategoryLabel {
                    category: "invalid_spec",
                })
                .inc();
            return Ok("invalid_spec");
        }
    };

    // fetch + build
    let owner = build::labels::owner_reference(&app.name_any(), &uid);
    let caps = ctx.caps();
    let new_credentials = fetch::missing_credentials(ctx, &model);
    let children = build::build(&model, &owner, caps, &new_credentials);

    // apply, then prune only after a complete apply
    let applier = apply::Applier::new(ctx, &uid, &namespace);
    let (report, applied) = apply_all(&applier, &children).await;
    let (pruned, result) = match applied {
        Ok(()) => {
            let pruner = prune::Pruner::new(ctx, &uid, &namespace, &report);
            prune_all(&pruner, &children).await
        }
        Err(e) => (Vec::new(), Err(e)),
    };

    // Events and status are independent writes: send them together.
    let events = async {
        let notes = [
            ("Created", &report.created, "created ", ""),
            ("Updated", &report.updated, "updated ", ""),
            (
                "DriftRepaired",
                &report.repaired,
                "restored ",
                " after it was changed or deleted outside Keelson",
            ),
        ];
        for (reason, names, prefix, suffix) in notes {
            if !names.is_empty() {
                let note = format!("{prefix}{}{suffix}", names.join(", "));
                publish(ctx, app, EventType::Normal, reason, "Apply", note).await;
            }
        }
        if !pruned.is_empty() {
            let note = format!("deleted {}, no longer in the spec", pruned.join(", "));
            publish(ctx, app, EventType::Normal, "Pruned", "Prune", note).await;
        }
    };

    // status
    let outcome = match &result {
        Ok(()) => status::Outcome::Applied {
            model: &model,
            skipped: &children.skipped,
        },
        Err(e) => status::Outcome::Failed {
            model: &model,
            skipped: &children.skipped,
            error: e,
        },
    };
    let st = status::compute(ctx, app, &outcome, status::now());
    let ((), wrote) = futures::join!(events, status::write(ctx, app, st));
    if let Err(e) = &result {
        publish(
            ctx,
            app,
            EventType::Warning,
            "ApplyFailed",
            "Apply",
            e.to_string(),
        )
        .await;
    }
    result?;
    wrote?;
    Ok("success")
}

/// How many children of one Application are applied at once.
pub const APPLY_PARALLELISM: usize = 4;

/// One child's write: its kind, name and what it changed.
type ApplyJob<'a> = BoxFuture<'a, (&'static str, String, Result<apply::Change>)>;

/// The write of one desired child of kind `K`, as its kind declares it.
fn apply_job<'a, K: Registered>(
    a: &'a apply::Applier<'a>,
    desired: &'a K::Desired,
    stores: &'a KindStores<K>,
) -> ApplyJob<'a> {
    Box::pin(async move {
        let result = match (K::WRITE, desired.object()) {
            (_, None) => Ok(apply::Change::None),
            (Write::Apply, Some(obj)) => a.apply(obj, stores).await,
            (Write::CreateOnly, Some(obj)) => a.create(obj).await,
        };
        (kind_name::<K>(), desired.name().to_string(), result)
    })
}

/// Write every child: the create-only kinds first, all at once (the credentials the workloads
/// use exist before they start), then the applied kinds in registry order,
/// [`APPLY_PARALLELISM`] at a time, reported in a stable order. A failed child does not stop the
/// others, so each pass makes as much progress as it can. Returns what was done and the first
/// error.
async fn apply_all(a: &apply::Applier<'_>, c: &Children) -> (apply::Report, Result<()>) {
    struct Jobs<'a> {
        applier: &'a apply::Applier<'a>,
        children: &'a Children,
        creates: Vec<ApplyJob<'a>>,
        applies: Vec<ApplyJob<'a>>,
    }
    impl KindVisitor for Jobs<'_> {
        fn visit<K: Registered>(&mut self) {
            let stores = K::stores(&self.applier.context().stores);
            let jobs = match K::WRITE {
                Write::CreateOnly => &mut self.creates,
                Write::Apply => &mut self.applies,
            };
            for desired in K::desired(self.children) {
                jobs.push(apply_job(self.applier, desired, stores));
            }
        }
    }
    let mut jobs = Jobs {
        applier: a,
        children: c,
        creates: Vec::new(),
        applies: Vec::new(),
    };
    kinds::for_each_kind(&mut jobs);
    let mut results = futures::future::join_all(jobs.creates).await;
    results.extend(
        futures::stream::iter(jobs.applies)
            .buffered(APPLY_PARALLELISM)
            .collect::<Vec<_>>()
            .await,
    );
    let mut report = apply::Report::default();
    let mut first: Option<Error> = None;
    for (kind, name, result) in results {
        report.keep(kind, &name);
        match result {
            Ok(change) => report.note(kind, &name, change),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    (report, first.map_or(Ok(()), Err))
}

/// Prune every kind, in registry order, except a kind set aside this pass (its API is not
/// served) or whose watch has not listed everything yet: what such a watch lacks may still
/// exist. Stops at the first failure. Returns what was deleted, as `Kind/name`.
async fn prune_all(p: &prune::Pruner<'_>, c: &Children) -> (Vec<String>, Result<()>) {
    type PruneJob<'a> = BoxFuture<'a, (Vec<String>, Result<()>)>;
    struct Jobs<'a>(&'a prune::Pruner<'a>, &'a Children, Vec<PruneJob<'a>>);
    impl KindVisitor for Jobs<'_> {
        fn visit<K: Registered>(&mut self) {
            let stores = K::stores(&self.0.context().stores);
            if stores.synced() && !self.1.skipped_kind::<K>() {
                self.2.push(Box::pin(self.0.prune(stores)));
            }
        }
    }
    let mut jobs = Jobs(p, c, Vec::new());
    kinds::for_each_kind(&mut jobs);
    let mut pruned = Vec::new();
    for job in jobs.2 {
        let (names, result) = job.await;
        pruned.extend(names);
        if result.is_err() {
            return (pruned, result);
        }
    }
    (pruned, Ok(()))
}

async fn publish(
    ctx: &Context,
    app: &Application,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let mut note = note;
    if note.len() > 1000 {
        let mut cut = 997;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    let ev = KubeEvent {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &app.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not publish an Event");
    }
}

/// Back off exponentially on transient errors: 1 s, 2 s, 4 s, ... up to 30 s (a watch event
/// still triggers a reconcile at once).
pub fn error_policy(app: Arc<Application>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = app.uid().unwrap_or_default();
    let mut failures = ctx.failures.lock().expect("lock");
    let n = failures.entry(key).or_insert(0);
    *n = n.saturating_add(1);
    let delay = Duration::from_secs(1u64 << (*n - 1).min(5)).min(Duration::from_secs(30));
    tracing::warn!(app = %app.name_any(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
