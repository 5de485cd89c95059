//! The controller: for each Application, fetch, validate, build, apply, prune and status (see
//! [`reconcile`]), and the error policy that decides how a failure is retried.
//!
//! It watches the Applications (only spec changes trigger work: a status write does not) and every
//! child kind of the registry (a child edited or deleted by hand triggers its owner's reconcile
//! at once), with a periodic resync as a backstop. A resync of an unchanged Application sends no
//! request at all (see [`apply`]). The wiring of the controllers (one per watched namespace,
//! discovery, the sweep of forgotten Applications) is in [`crate::runtime::controllers`].

pub mod apply;
pub mod credentials;
pub mod error;
pub mod events;
pub mod fetch;
pub mod handover;
pub mod held;
pub mod ownership;
pub mod pods;
pub mod prune;
pub mod rbac;
pub mod reconcile;
pub mod rollout;
pub mod status;
pub mod volumes;
pub mod watch;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use futures::{channel::mpsc, future::BoxFuture};
use kube::{Client, runtime::reflector};

pub use crate::kinds::Stores;
use crate::{
    api::Application,
    build::ApiCapabilities,
    kinds::{self, KindVisitor, Registered},
    runtime::metrics::Metrics,
};
pub use error::{Error, Result};
pub use reconcile::{Outcome, error_policy, reconcile};
use watch::Scope;

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
    /// Events.
    pub events: events::Events,
    /// What the pods of workloads that are not ready say.
    pub pods: pods::PodReasons,
    /// Per Application (by uid), the generation whose spec last passed the schema and CEL rules.
    pub(crate) schema_checked: Mutex<HashMap<String, i64>>,
    /// Consecutive transient failures per Application (by uid), for backoff.
    pub(crate) failures: Mutex<HashMap<String, u32>>,
    /// The stores of the watched Applications, one per controller (see [`Context::latest`]).
    applications: RwLock<Vec<reflector::Store<Application>>>,
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
        let ctx = Context {
            events: events::Events::new(client.clone(), config.instance.clone()),
            pods: pods::PodReasons::default(),
            client,
            stores: Stores::default(),
            applied: apply::ApplyCache::default(),
            capabilities: RwLock::new(caps),
            metrics,
            schema_checked: Mutex::default(),
            failures: Mutex::default(),
            applications: RwLock::default(),
            owners: owners_tx,
            config,
        };
        (ctx, owners_rx)
    }

    /// The optional APIs the cluster serves, as last discovered.
    pub fn caps(&self) -> ApiCapabilities {
        *self.capabilities.read().expect("lock")
    }

    /// Record what discovery found.
    pub fn set_caps(&self, caps: ApiCapabilities) {
        *self.capabilities.write().expect("lock") = caps;
    }

    /// Read Applications from these stores (those of the running controllers).
    pub fn set_application_stores(&self, stores: Vec<reflector::Store<Application>>) {
        *self.applications.write().expect("lock") = stores;
    }

    /// The Application `app` as its store holds it now. A reconcile holds the Application as
    /// it was when the reconcile started; its watch may have delivered a newer one since (the
    /// status the previous pass wrote). `None` when no store holds it.
    pub fn latest(&self, app: &Application) -> Option<Arc<Application>> {
        let key = reflector::ObjectRef::from_obj(app);
        let stores = self.applications.read().expect("lock");
        stores.iter().find_map(|s| s.get(&key))
    }

    /// Forget what is remembered of every Application whose uid is not in `live`.
    pub fn forget_all_but(&self, live: &HashSet<String>) {
        self.applied.retain(|uid| live.contains(uid));
        self.schema_checked
            .lock()
            .expect("lock")
            .retain(|uid, _| live.contains(uid));
        self.failures
            .lock()
            .expect("lock")
            .retain(|uid, _| live.contains(uid));
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

    /// The started watches that have not listed their objects yet because they fail: the kind
    /// and why, in words (e.g. `Deployment`, `could not list: deployments.apps is forbidden: ...`).
    pub fn watch_failures(&self) -> Vec<(&'static str, String)> {
        struct Failures<'a>(&'a Stores, Vec<(&'static str, String)>);
        impl KindVisitor for Failures<'_> {
            fn visit<K: Registered>(&mut self) {
                if let Some(failure) = K::stores(self.0).start_failure() {
                    self.1.push((kinds::kind_name::<K>(), failure));
                }
            }
        }
        let mut failures = Failures(&self.stores, Vec::new());
        kinds::for_each_kind(&mut failures);
        failures.1
    }

    /// Wait until every started watch has listed its objects.
    pub async fn wait_for_watches(&self) {
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
