//! Leader election on a coordination.k8s.io Lease (kube-lease-manager): several replicas run,
//! one reconciles; a standby takes over within the lease duration when the leader dies, at once
//! when it shuts down and releases the lease.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::{
    api::coordination::v1::Lease,
    jiff::{SignedDuration, Timestamp},
};
use kube::{Api, Client};
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
    api: Api<Lease>,
    settings: LeaseSettings,
}

impl Election {
    /// Join the election for `settings`.
    pub async fn start(client: Client, settings: &LeaseSettings) -> anyhow::Result<Self> {
        let manager = LeaseManagerBuilder::new(client.clone(), &settings.name)
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
        Ok(Election {
            leading,
            task,
            api: Api::namespaced(client, &settings.namespace),
            settings: settings.clone(),
        })
    }

    /// Wait until this replica leads. Returns false if the election ended first.
    pub async fn acquired(&mut self) -> bool {
        self.leading.wait_for(|l| *l).await.is_ok()
    }

    /// A future that resolves when leadership is lost: the election says so, or the Lease shows
    /// another holder, or this replica's last renewal is a lease duration old (its renewals
    /// failed, so another replica may take over now). The election alone keeps saying "leading"
    /// while its renewals fail; the Lease is read about once per renewal to know better.
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.leading.clone();
        let said = async move {
            let _ = rx.wait_for(|l| !*l).await;
        };
        let expired = expired(self.api.clone(), self.settings.clone());
        async move {
            tokio::select! {
                () = said => {}
                () = expired => {}
            }
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

/// Resolves once the Lease cannot be shown to be this replica's any more: another identity
/// holds it (or nobody), or its last renewal seen is `duration` old. The Lease is read shortly
/// before it would expire (after the renewal due `grace` before expiry), and then every
/// quarter `grace` until it expires.
async fn expired(api: Api<Lease>, settings: LeaseSettings) {
    let duration = SignedDuration::try_from(settings.duration).expect("a short duration");
    let grace = SignedDuration::try_from(settings.grace).expect("a short duration");
    let step = (grace / 4).max(SignedDuration::from_millis(100));
    // Acquired just now: valid for a lease duration from now at least.
    let mut valid_until = Timestamp::now() + duration;
    loop {
        let check_at = valid_until - grace / 2;
        let now = Timestamp::now();
        let wait = if check_at > now {
            check_at.duration_since(now)
        } else {
            step
        };
        tokio::time::sleep(wait.unsigned_abs()).await;
        match api.get(&settings.name).await {
            Ok(lease) => {
                let spec = lease.spec.unwrap_or_default();
                if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
                    tracing::warn!(
                        holder = spec.holder_identity.as_deref().unwrap_or("nobody"),
                        "the leader lease is held by another replica"
                    );
                    return;
                }
                if let Some(renewed) = spec.renew_time {
                    let lasts = spec
                        .lease_duration_seconds
                        .map_or(duration, |s| SignedDuration::from_secs(s.into()));
                    valid_until = valid_until.max(renewed.0 + lasts);
                }
            }
            Err(e) => {
                let error = crate::controller::error::ApiError::of(&e);
                tracing::warn!(%error, "could not read the leader lease");
            }
        }
        if Timestamp::now() >= valid_until {
            tracing::warn!("the leader lease expired: its renewals failed");
            return;
        }
    }
}
