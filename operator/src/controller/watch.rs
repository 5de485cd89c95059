//! Watches of the children: one reflector store per kind (and per watched namespace), and a
//! stream of the Applications whose children changed, so a child that is edited or deleted is
//! restored at once.
//!
//! Stores keep only what the controller reads: metadata (with managedFields dropped) for most
//! kinds; metadata, `spec.replicas` and status for Deployments and StatefulSets. That keeps the
//! operator's memory small with thousands of Applications.

use std::{collections::HashMap, fmt::Debug, sync::OnceLock};

use futures::{StreamExt, channel::mpsc::UnboundedSender};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::{NamespaceResourceScope, PartialObjectMeta},
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;

use crate::{api::Application, build::labels};

/// Which namespaces the controller watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace.
    All,
    /// Only these.
    Namespaces(Vec<String>),
}

impl Scope {
    /// The keys of the per-namespace stores: `None` for all namespaces.
    pub fn keys(&self) -> Vec<Option<String>> {
        match self {
            Scope::All => vec![None],
            Scope::Namespaces(ns) => ns.iter().cloned().map(Some).collect(),
        }
    }

    /// An API of `K` for one key of [`Scope::keys`].
    pub fn api<K>(client: &Client, key: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match key {
            None => Api::all(client.clone()),
            Some(ns) => Api::namespaced(client.clone(), ns),
        }
    }
}

/// The stores of one kind, set once its watch starts (at start-up, or for an optional API once
/// the cluster serves it).
pub struct KindStores<T: 'static + Resource + Clone>
where
    T::DynamicType: std::hash::Hash + Eq + Clone,
{
    stores: OnceLock<HashMap<Option<String>, Store<T>>>,
}

impl<T: 'static + Resource + Clone> Default for KindStores<T>
where
    T::DynamicType: std::hash::Hash + Eq + Clone,
{
    fn default() -> Self {
        KindStores {
            stores: OnceLock::new(),
        }
    }
}

impl<T> KindStores<T>
where
    T: 'static + Resource<DynamicType = ()> + Clone,
{
    /// Whether the watch of this kind has started.
    pub fn started(&self) -> bool {
        self.stores.get().is_some()
    }

    /// The store that holds objects of `namespace`, once started.
    pub fn store(&self, namespace: &str) -> Option<&Store<T>> {
        let stores = self.stores.get()?;
        stores
            .get(&None)
            .or_else(|| stores.get(&Some(namespace.to_string())))
    }

    /// The object `name` in `namespace`, if the store holds it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<T>> {
        self.store(namespace)?
            .get(&ObjectRef::new(name).within(namespace))
    }

    /// Every stored object of `namespace` whose controller owner is `owner_uid`.
    pub fn owned_by(&self, namespace: &str, owner_uid: &str) -> Vec<std::sync::Arc<T>> {
        let Some(store) = self.store(namespace) else {
            return Vec::new();
        };
        store.state_filter(|o| {
            o.meta().namespace.as_deref() == Some(namespace)
                && o.owner_references()
                    .iter()
                    .any(|r| r.uid == owner_uid && r.controller == Some(true))
        })
    }

    /// Fill the stores with fixed objects, for every namespace, instead of watching. For tests and
    /// offline tools; has no effect once the stores are set.
    pub fn preload(&self, objects: Vec<T>) {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for o in objects {
            writer.apply_watcher_event(&watcher::Event::InitApply(o));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let _ = self.stores.set(HashMap::from([(None, reader)]));
    }

    /// Whether every store has finished its first list.
    pub async fn wait_until_ready(&self) {
        if let Some(stores) = self.stores.get() {
            for s in stores.values() {
                let _ = s.wait_until_ready().await;
            }
        }
    }
}

/// The Application a child belongs to, from its controller owner reference.
pub fn owner_of(meta: &kube::api::ObjectMeta) -> Option<ObjectRef<Application>> {
    let owner = meta.owner_references.as_ref()?.iter().find(|r| {
        r.controller == Some(true)
            && r.kind == "Application"
            && r.api_version == "keelson.dev/v1alpha1"
    })?;
    Some(ObjectRef::new(&owner.name).within(meta.namespace.as_deref()?))
}

fn watcher_config() -> watcher::Config {
    watcher::Config::default().labels(&format!(
        "{}={}",
        labels::MANAGED_BY_LABEL,
        labels::MANAGED_BY
    ))
}

/// Start watching a kind's metadata: fill its stores and send the owning Application of every
/// touched object to `owners`.
pub fn watch_metadata<K>(
    client: &Client,
    scope: &Scope,
    stores: &KindStores<PartialObjectMeta<K>>,
    owners: UnboundedSender<ObjectRef<Application>>,
) where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let mut map = HashMap::new();
    for key in scope.keys() {
        let api: Api<PartialObjectMeta<K>> = Scope::api(client, &key);
        let (reader, writer) = reflector::store();
        let stream = watcher(api, watcher_config())
            .default_backoff()
            .modify(|o: &mut PartialObjectMeta<K>| o.metadata.managed_fields = None);
        spawn_forwarder(
            reflector::reflector(writer, stream),
            owners.clone(),
            K::kind(&()).into_owned(),
        );
        map.insert(key, reader);
    }
    let _ = stores.stores.set(map);
}

/// Start watching a kind's whole objects, reduced by `strip` before they are stored.
pub fn watch_objects<K>(
    client: &Client,
    scope: &Scope,
    stores: &KindStores<K>,
    owners: UnboundedSender<ObjectRef<Application>>,
    strip: fn(&mut K),
) where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let mut map = HashMap::new();
    for key in scope.keys() {
        let api: Api<K> = Scope::api(client, &key);
        let (reader, writer) = reflector::store();
        let stream = watcher(api, watcher_config())
            .default_backoff()
            .modify(move |o: &mut K| {
                o.meta_mut().managed_fields = None;
                strip(o);
            });
        spawn_forwarder(
            reflector::reflector(writer, stream),
            owners.clone(),
            K::kind(&()).into_owned(),
        );
        map.insert(key, reader);
    }
    let _ = stores.stores.set(map);
}

fn spawn_forwarder<K, S>(stream: S, owners: UnboundedSender<ObjectRef<Application>>, kind: String)
where
    K: Resource + Send + 'static,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut touched = std::pin::pin!(stream.touched_objects());
        while let Some(item) = touched.next().await {
            match item {
                Ok(obj) => {
                    if let Some(owner) = owner_of(obj.meta())
                        && owners.unbounded_send(owner).is_err()
                    {
                        return;
                    }
                }
                Err(e) => tracing::warn!(kind, error = %e, "watch of children failed; retrying"),
            }
        }
    });
}
