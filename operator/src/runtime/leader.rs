//! Leader election on a coordination.k8s.io Lease (kube-lease-manager): several replicas run,
//! one reconciles; a standby takes over within the lease duration when the leader dies, at once
//! when it shuts down and releases the lease.

use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::{sync::watch, task::JoinHandle};

/// Where and how to hold the Lease.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// The Lease's name.
    pub name: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// This replica's identity (holderIdentity).
    pub identity: String,
    /// How long a lease lasts without renewal: a dead leader is replaced within this.
    pub duration: Duration,
    /// How long before expiry the leader renews.
    pub grace: Duration,
}

/// A running election.
pub struct Election {
    leading: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, kube_lease_manager::LeaseManagerError>>,
}

impl Election {
    /// Join the election for `settings`.
    pub async fn start(client: Client, settings: &LeaseSettings) -> anyhow::Result<Self> {
        let manager = LeaseManagerBuilder::new(client, &settings.name)
            .with_namespace(&settings.namespace)
            .with_identity(&settings.identity)
            .with_duration(settings.duration.as_secs().max(2))
            .with_grace(settings.grace.as_secs().max(1))
            .build()
            .await
            .with_context(|| {
                format!(
                    "leader election on Lease {}/{}",
                    settings.namespace, settings.name
                )
            })?;
        let (leading, task) = manager.watch().await;
        Ok(Election { leading, task })
    }

    /// Wait until this replica leads. Returns false if the election ended first.
    pub async fn acquired(&mut self) -> bool {
        self.leading.wait_for(|l| *l).await.is_ok()
    }

    /// A future that resolves when leadership is lost.
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.leading.clone();
        async move {
            let _ = rx.wait_for(|l| !*l).await;
        }
    }

    /// Leave the election and release the lease, so a standby takes over at once. Gives up
    /// after a few seconds (the election may be backing off after an API error): the lease then
    /// simply expires.
    pub async fn release(self) {
        drop(self.leading);
        let mut task = self.task;
        match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
            Ok(Ok(Ok(_))) => tracing::info!("released the leader lease"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "could not release the leader lease"),
            Ok(Err(e)) => tracing::warn!(error = %e, "leader election task failed"),
            Err(_) => {
                task.abort();
                tracing::warn!("gave up releasing the leader lease; it expires by itself");
            }
        }
    }
}
