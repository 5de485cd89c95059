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
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{Secret, Service},
    networking::v1::Ingress,
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Client, Resource, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::{Action, Config as ControllerRuntimeConfig},
        events::{Event as KubeEvent, EventType, Recorder, Reporter},
        predicates, reflector, watcher,
    },
};

use crate::{
    api::{Application, validate},
    build::{self, ApiCapabilities, Children},
    external::{httproutes::HttpRoute, servicemonitors::ServiceMonitor},
    runtime::metrics::{CategoryLabel, Metrics, ResultLabel},
};
pub use error::{Error, Result};
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

/// The watches of every child kind.
#[derive(Default)]
pub struct Stores {
    /// Credentials Secrets.
    pub secrets: KindStores<Secret>,
    /// Services.
    pub services: KindStores<Service>,
    /// StatefulSets.
    pub stateful_sets: KindStores<StatefulSet>,
    /// Deployments.
    pub deployments: KindStores<Deployment>,
    /// Autoscalers.
    pub hpas: KindStores<HorizontalPodAutoscaler>,
    /// Disruption budgets.
    pub pdbs: KindStores<PodDisruptionBudget>,
    /// ServiceMonitors, once the cluster serves them.
    pub service_monitors: KindStores<ServiceMonitor>,
    /// Ingresses.
    pub ingresses: KindStores<Ingress>,
    /// HTTPRoutes, once the cluster serves them.
    pub http_routes: KindStores<HttpRoute>,
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
    /// Start the watches the capabilities allow and that have not started yet.
    fn start_watches(&self, caps: ApiCapabilities) {
        let (c, s, st, tx) = (
            &self.client,
            &self.config.scope,
            &self.stores,
            self.owners.clone(),
        );
        if !st.deployments.started() {
            st.secrets.watch(c, s, tx.clone());
            st.services.watch(c, s, tx.clone());
            st.stateful_sets.watch(c, s, tx.clone());
            st.deployments.watch(c, s, tx.clone());
            st.hpas.watch(c, s, tx.clone());
            st.pdbs.watch(c, s, tx.clone());
            st.ingresses.watch(c, s, tx.clone());
        }
        if caps.service_monitors && !st.service_monitors.started() {
            st.service_monitors.watch(c, s, tx.clone());
        }
        if caps.http_routes && !st.http_routes.started() {
            st.http_routes.watch(c, s, tx);
        }
    }

    async fn wait_for_watches(&self) {
        let st = &self.stores;
        st.secrets.wait_until_ready().await;
        st.services.wait_until_ready().await;
        st.stateful_sets.wait_until_ready().await;
        st.deployments.wait_until_ready().await;
        st.hpas.wait_until_ready().await;
        st.pdbs.wait_until_ready().await;
        st.ingresses.wait_until_ready().await;
        st.service_monitors.wait_until_ready().await;
        st.http_routes.wait_until_ready().await;
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
                    discovery_ctx
                        .stores
                        .service_monitors
                        .wait_until_ready()
                        .await;
                    discovery_ctx.stores.http_routes.wait_until_ready().await;
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
    let mut pruned = Vec::new();
    let result = match applied {
        Ok(()) => {
            let mut pruner = prune::Pruner::new(ctx, &uid, &namespace, &report);
            let r = prune_all(&mut pruner).await;
            pruned = pruner.pruned;
            r
        }
        Err(e) => Err(e),
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

/// One child's apply: its kind, name and what it changed.
type ApplyJob<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = (&'static str, String, Result<apply::Change>)> + Send + 'a,
    >,
>;

fn apply_job<'a, K: watch::Child>(
    a: &'a apply::Applier<'a>,
    obj: &'a K,
    stores: &'a KindStores<K>,
) -> ApplyJob<'a> {
    Box::pin(async move {
        let result = a.apply(obj, stores).await;
        (apply::kind_name::<K>(), obj.name_any(), result)
    })
}

/// Apply every child: the credentials Secrets first (the workloads that use them start only once
/// they exist), then the rest [`APPLY_PARALLELISM`] at a time, reported in a stable order. A
/// failed child does not stop the others, so each pass makes as much progress as it can.
/// Returns what was done and the first error.
async fn apply_all(a: &apply::Applier<'_>, c: &Children) -> (apply::Report, Result<()>) {
    let Children {
        secrets,
        services,
        stateful_sets,
        deployments,
        hpas,
        pdbs,
        service_monitors,
        ingresses,
        http_routes,
        skipped: _,
    } = c;
    let st = &a.context().stores;
    let mut report = apply::Report::default();
    let mut first: Option<Error> = None;
    let created = futures::future::join_all(
        secrets
            .iter()
            .map(|s| a.create_secret(&s.name, s.create.as_ref())),
    )
    .await;
    for (s, result) in secrets.iter().zip(created) {
        report.keep("Secret", &s.name);
        match result {
            Ok(change) => report.note("Secret", &s.name, change),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    let mut jobs: Vec<ApplyJob<'_>> = Vec::new();
    jobs.extend(services.iter().map(|o| apply_job(a, o, &st.services)));
    jobs.extend(
        stateful_sets
            .iter()
            .map(|o| apply_job(a, o, &st.stateful_sets)),
    );
    jobs.extend(deployments.iter().map(|o| apply_job(a, o, &st.deployments)));
    jobs.extend(hpas.iter().map(|o| apply_job(a, o, &st.hpas)));
    jobs.extend(pdbs.iter().map(|o| apply_job(a, o, &st.pdbs)));
    jobs.extend(
        service_monitors
            .iter()
            .map(|o| apply_job(a, o, &st.service_monitors)),
    );
    jobs.extend(ingresses.iter().map(|o| apply_job(a, o, &st.ingresses)));
    jobs.extend(http_routes.iter().map(|o| apply_job(a, o, &st.http_routes)));
    let results: Vec<_> = futures::stream::iter(jobs)
        .buffered(APPLY_PARALLELISM)
        .collect()
        .await;
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

async fn prune_all(p: &mut prune::Pruner<'_>) -> Result<()> {
    let st = &p.context().stores;
    p.prune(&st.secrets).await?;
    p.prune(&st.services).await?;
    p.prune(&st.stateful_sets).await?;
    p.prune(&st.deployments).await?;
    p.prune(&st.hpas).await?;
    p.prune(&st.pdbs).await?;
    p.prune(&st.service_monitors).await?;
    p.prune(&st.ingresses).await?;
    p.prune(&st.http_routes).await?;
    Ok(())
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
