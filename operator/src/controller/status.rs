//! Status: computed from the spec, what apply did and what the watches observe; written with a
//! server-side apply of the status subresource, and only when it changed, so a steady state
//! writes nothing and a status write never feeds another round of work.

use std::borrow::Cow;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};

use super::{
    Context, FIELD_MANAGER,
    error::{Error, Result},
    events::Note,
    held::{self, Held},
    rollout::{self, Progress, Rollout},
};
use crate::{
    api::{
        Application, ApplicationStatus, DatabaseStatus, GatewayStatus, InvalidSpec, Model,
        ServiceStatus,
        validate::{DatabaseModel, GatewayKind, ServiceModel},
    },
    build::Skipped,
};

/// Condition types.
pub const READY: &str = "Ready";
/// Condition type: changes are rolling out.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: something failed.
pub const DEGRADED: &str = "Degraded";
/// Condition type: the cluster serves the optional APIs the spec needs.
pub const APIS_AVAILABLE: &str = "APIsAvailable";
/// The reason of an invalid spec.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// The reason of a Deployment past its progress deadline.
pub const ROLLOUT_STUCK: &str = "RolloutStuck";
/// The reason of a workload whose pods say why they do not run.
pub const WORKLOAD_NOT_READY: &str = "WorkloadNotReady";

/// How the reconcile went.
pub enum Outcome<'a> {
    /// The spec is invalid; nothing was applied or pruned.
    Invalid(&'a InvalidSpec),
    /// Everything was applied.
    Applied {
        /// The validated model.
        model: &'a Model,
        /// Children left out because their API is not served.
        skipped: &'a [Skipped],
        /// Children held back on purpose.
        held: &'a [Held],
    },
    /// Applying failed part-way.
    Failed {
        /// The validated model.
        model: &'a Model,
        /// Children left out because their API is not served.
        skipped: &'a [Skipped],
        /// Children held back on purpose.
        held: &'a [Held],
        /// The error.
        error: &'a Error,
    },
}

struct Conditions<'a> {
    old: &'a [Condition],
    generation: Option<i64>,
    now: Time,
    out: Vec<Condition>,
}

impl Conditions<'_> {
    fn set(&mut self, type_: &str, status: bool, reason: &str, message: String) {
        let status = if status { "True" } else { "False" }.to_string();
        let last_transition_time = self
            .old
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| self.now.clone());
        self.out.push(Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message,
            observed_generation: self.generation,
            last_transition_time,
        });
    }
}

/// The current time, at the second precision the API server stores.
pub fn now() -> Time {
    let secs = Timestamp::now().as_second();
    Time(Timestamp::from_second(secs).expect("now is a valid timestamp"))
}

/// Compute the status an Application should have; `old` is its status now ([`last_known`]).
pub fn compute(
    ctx: &Context,
    app: &Application,
    old: Option<&ApplicationStatus>,
    outcome: &Outcome<'_>,
    now: Time,
) -> ApplicationStatus {
    let old = old.cloned().unwrap_or_default();
    let mut c = Conditions {
        old: &old.conditions,
        generation: app.metadata.generation,
        now,
        out: Vec::new(),
    };
    let (model, skipped, held, error) = match outcome {
        Outcome::Invalid(invalid) => return invalid_status(ctx, c, app, invalid, old.clone()),
        Outcome::Applied {
            model,
            skipped,
            held,
        } => (*model, *skipped, *held, None),
        Outcome::Failed {
            model,
            skipped,
            held,
            error,
        } => (*model, *skipped, *held, Some(*error)),
    };
    let rollup = RollUp::observe(ctx, model, skipped);
    match (error, held::summary(held)) {
        (Some(e), _) => set_failed(&mut c, e),
        (None, Some((reason, msg))) => set_held(&mut c, &rollup, reason, msg),
        (None, None) => set_progress(&mut c, &rollup),
    }
    set_apis_available(&mut c, skipped);
    c.out.sort_by(|a, b| a.type_.cmp(&b.type_));
    let RollUp {
        workloads:
            Workloads {
                services,
                databases,
                waiting: _,
                stuck: _,
                pod_reasons: _,
                warnings: _,
            },
        gateway,
    } = rollup;
    ApplicationStatus {
        observed_generation: app.metadata.generation,
        conditions: c.out,
        services_ready: Some(format!(
            "{}/{}",
            services.iter().filter(|s| s.ready).count(),
            services.len()
        )),
        url: model.gateway.as_ref().and_then(|g| g.url.clone()),
        services,
        databases,
        gateway,
        inventory: ctx.applied.inventory(&app.uid().unwrap_or_default()),
    }
}

/// An invalid spec: the conditions say why; the running stack is untouched, so the last
/// roll-up stays.
fn invalid_status(
    ctx: &Context,
    mut c: Conditions<'_>,
    app: &Application,
    invalid: &InvalidSpec,
    old: ApplicationStatus,
) -> ApplicationStatus {
    let msg = format!("invalid spec, nothing was changed: {invalid}");
    c.set(READY, false, INVALID_SPEC, msg.clone());
    let waiting = "waiting for a valid spec".to_string();
    c.set(PROGRESSING, false, INVALID_SPEC, waiting);
    c.set(DEGRADED, true, INVALID_SPEC, msg);
    if let Some(apis) = old.conditions.iter().find(|x| x.type_ == APIS_AVAILABLE) {
        c.out.push(apis.clone());
    }
    c.out.sort_by(|a, b| a.type_.cmp(&b.type_));
    ApplicationStatus {
        observed_generation: app.metadata.generation,
        conditions: c.out,
        // The stored Application may carry no inventory (see `ApplyCache::absorb`): what is
        // remembered is what it listed.
        inventory: ctx.applied.inventory(&app.uid().unwrap_or_default()),
        ..old
    }
}

/// What the watches show of the workloads and the gateway.
struct RollUp {
    workloads: Workloads,
    gateway: Option<GatewayStatus>,
}

impl RollUp {
    fn observe(ctx: &Context, model: &Model, skipped: &[Skipped]) -> Self {
        let gateway = model.gateway.as_ref().map(|g| {
            let kind = match g.kind {
                GatewayKind::Ingress { .. } => "Ingress",
                GatewayKind::HttpRoute { .. } => "HTTPRoute",
            };
            GatewayStatus {
                kind: kind.into(),
                name: model.name.clone(),
                created: !skipped.iter().any(|s| s.kind == kind),
            }
        });
        RollUp {
            workloads: workloads(ctx, model),
            gateway,
        }
    }
}

/// Ready, Progressing and Degraded after a failed apply or prune: some children may be missing
/// or stale, so not Ready, whatever the workloads say.
fn set_failed(c: &mut Conditions<'_>, e: &Error) {
    let (next, reason) = (e.next_step(), e.reason());
    let msg = format!("not every child is in place: {e}; {next}");
    c.set(READY, false, reason, msg);
    if e.is_permanent() {
        let msg = "waiting for a change of the spec or the cluster".to_string();
        c.set(PROGRESSING, false, reason, msg);
    } else {
        c.set(PROGRESSING, true, reason, "retrying the apply".into());
    }
    c.set(DEGRADED, true, reason, format!("{e}; {next}"));
}

/// Ready, Progressing and Degraded when children were held back on purpose (a name conflict,
/// missing credentials): not Ready, Degraded with the reason; every other child was applied.
fn set_held(c: &mut Conditions<'_>, rollup: &RollUp, reason: &str, msg: String) {
    c.set(READY, false, reason, msg.clone());
    let rolling = !rollup.workloads.waiting.is_empty();
    c.set(
        PROGRESSING,
        rolling,
        reason,
        "every other child is applied".into(),
    );
    c.set(DEGRADED, true, reason, msg);
}

/// Ready, Progressing and Degraded after a complete apply: the workloads' roll-out; a
/// Deployment past its progress deadline is Degraded.
fn set_progress(c: &mut Conditions<'_>, rollup: &RollUp) {
    let w = &rollup.workloads;
    if !w.stuck.is_empty() {
        let msg = format!("rollout stuck: {}", w.stuck.join("; "));
        c.set(READY, false, ROLLOUT_STUCK, msg.clone());
        c.set(PROGRESSING, false, ROLLOUT_STUCK, msg);
        let msg = format!(
            "a rollout exceeded its progress deadline: {}",
            w.stuck.join("; ")
        );
        c.set(DEGRADED, true, ROLLOUT_STUCK, msg);
        return;
    }
    if w.waiting.is_empty() {
        let msg = format!(
            "all {} services and {} databases are ready",
            w.services.len(),
            w.databases.len()
        );
        c.set(READY, true, "Ready", msg);
        let msg = "every workload is rolled out and available".to_string();
        c.set(PROGRESSING, false, "Complete", msg);
    } else {
        let msg = format!("waiting for {}", w.waiting.join("; "));
        let reason = if w.pod_reasons {
            WORKLOAD_NOT_READY
        } else {
            "WaitingForWorkloads"
        };
        c.set(READY, false, reason, msg.clone());
        c.set(PROGRESSING, true, "RollingOut", msg);
    }
    c.set(
        DEGRADED,
        false,
        "AsExpected",
        "every child was applied".into(),
    );
}

/// APIsAvailable: whether the cluster serves every API the spec needs.
fn set_apis_available(c: &mut Conditions<'_>, skipped: &[Skipped]) {
    if skipped.is_empty() {
        let msg = "the cluster serves every API the spec needs".to_string();
        c.set(APIS_AVAILABLE, true, "AllServed", msg);
        return;
    }
    let msg = skipped
        .iter()
        .map(|s| {
            format!(
                "{} {} skipped: the cluster does not serve {}; install its CRDs and Keelson creates {} within a minute",
                s.kind,
                s.names.join(", "),
                s.api,
                if s.names.len() > 1 { "them" } else { "it" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    c.set(APIS_AVAILABLE, false, "APINotServed", msg);
}

/// The workloads of an Application, as status shows them.
struct Workloads {
    services: Vec<ServiceStatus>,
    databases: Vec<DatabaseStatus>,
    /// One text per workload that is rolling out: its name, its progress, and the reason its
    /// pods give when one was found.
    waiting: Vec<String>,
    /// Likewise, per Deployment past its progress deadline.
    stuck: Vec<String>,
    /// Whether any text has a reason from the pods.
    pod_reasons: bool,
    /// A Warning per workload that is stuck, or whose pods say why they do not run.
    warnings: Vec<Note>,
}

fn workloads(ctx: &Context, model: &Model) -> Workloads {
    let ns = &model.namespace;
    let mut w = Workloads {
        services: Vec::new(),
        databases: Vec::new(),
        waiting: Vec::new(),
        stuck: Vec::new(),
        pod_reasons: false,
        warnings: Vec::new(),
    };
    let mut note = |what: &str, name: &str, child: (&str, &str), r: &Rollout| {
        let (kind, object) = child;
        let (list, text) = match &r.progress {
            Progress::Ready => {
                ctx.pods.forget(ns, object);
                return;
            }
            Progress::RollingOut(t) => (&mut w.waiting, t),
            Progress::Stuck(t) => (&mut w.stuck, t),
        };
        let mut line = format!("{what} {name}: {text}");
        let reason = ctx.pods.get(ns, object);
        if let Some(reason) = &reason {
            line.push_str("; ");
            line.push_str(reason);
            w.pod_reasons = true;
        }
        let child = format!("{kind}/{object}");
        if matches!(r.progress, Progress::Stuck(_)) {
            let text = format!("the rollout of {line} (it exceeded its progress deadline)");
            w.warnings
                .push(Note::warning(ROLLOUT_STUCK, "Status", text).about(&child));
        } else if reason.is_some() {
            let text = line.clone();
            w.warnings
                .push(Note::warning(WORKLOAD_NOT_READY, "Status", text).about(&child));
        }
        list.push(line);
    };
    for s in &model.services {
        let r = service_rollout(ctx, ns, s);
        note("service", &s.spec.name, ("Deployment", &s.object_name), &r);
        w.services.push(ServiceStatus {
            name: s.spec.name.clone(),
            desired_replicas: r.desired,
            ready_replicas: r.ready_replicas,
            ready: r.ready(),
        });
    }
    for db in &model.databases {
        let r = database_rollout(ctx, ns, db);
        note(
            "database",
            &db.spec.name,
            ("StatefulSet", &db.object_name),
            &r,
        );
        w.databases.push(DatabaseStatus {
            name: db.spec.name.clone(),
            ready: r.ready(),
            secret_name: db.secret_name.clone(),
        });
    }
    w
}

/// A Warning Event per workload of `model` that is stuck, or whose pods say why they do not
/// run (what status says of it).
pub fn warnings(ctx: &Context, model: &Model) -> Vec<Note> {
    workloads(ctx, model).warnings
}

/// The rollout of a service's Deployment, as the watches see it.
pub fn service_rollout(ctx: &Context, namespace: &str, s: &ServiceModel) -> Rollout {
    let hpa = ctx.stores.hpas.get(namespace, &s.object_name);
    let desired = rollout::desired_replicas(s.replicas, hpa.as_ref());
    let d = ctx.stores.deployments.get(namespace, &s.object_name);
    rollout::deployment(desired, d.as_ref())
}

/// The rollout of a database's StatefulSet, as the watches see it.
pub fn database_rollout(ctx: &Context, namespace: &str, db: &DatabaseModel) -> Rollout {
    let s = ctx.stores.stateful_sets.get(namespace, &db.object_name);
    rollout::stateful_set(s.as_ref())
}

/// How often an Application's status is written while only its progress moves (the messages
/// and counts of a rollout: which workloads it waits for, replicas ready), 2 s. A change of a
/// condition's status or reason, of the observed generation or of the inventory is written at
/// once; progress within this long of the last write is written when it ends. At thousands of
/// Applications rolling out together this saves a write per Application and step of rollout.
pub const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// What [`write`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrote {
    /// The status was written.
    Written,
    /// The stored status is the one computed: nothing to write.
    Unchanged,
    /// Only progress moved, within [`PROGRESS_INTERVAL`] of the last write: written by the
    /// reconcile due after this long.
    Later(std::time::Duration),
}

impl Wrote {
    /// Whether the status was written.
    pub fn written(self) -> bool {
        self == Wrote::Written
    }
}

/// What a status says beyond progress: its generation, each condition's type, status and
/// reason, the URL and the gateway (the inventory is compared apart).
fn beyond_progress(s: &ApplicationStatus) -> impl PartialEq + '_ {
    let conditions: Vec<_> = s
        .conditions
        .iter()
        .map(|c| (&c.type_, &c.status, &c.reason))
        .collect();
    (s.observed_generation, conditions, &s.url, &s.gateway)
}

/// Why a status is written: the `cause` label of `keelson_status_writes_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteCause {
    /// The Application had no status yet.
    New,
    /// The inventory lists other children (or other hashes of them).
    Inventory,
    /// Beyond progress: the observed generation, a condition's status or reason, the URL or
    /// the gateway (see [`beyond_progress`]).
    Conditions,
    /// Progress alone, [`PROGRESS_INTERVAL`] after the last write (or the first write of this
    /// process).
    Progress,
}

impl WriteCause {
    /// Every cause, in the order of the label values.
    pub const ALL: [WriteCause; 4] = [
        WriteCause::New,
        WriteCause::Inventory,
        WriteCause::Conditions,
        WriteCause::Progress,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteCause::New => "new",
            WriteCause::Inventory => "inventory",
            WriteCause::Conditions => "conditions",
            WriteCause::Progress => "progress",
        }
    }
}

/// Whether the status `new` need not be written over `old` now: `Unchanged`, or `Later` when
/// only progress moved (see [`beyond_progress`]) `since_write` the last write, within
/// [`PROGRESS_INTERVAL`]; otherwise why it is written. `new` carries no inventory:
/// `same_inventory` says whether it lists the same.
fn hold_back(
    old: &ApplicationStatus,
    new: &ApplicationStatus,
    same_inventory: bool,
    since_write: Option<std::time::Duration>,
) -> Result<Wrote, WriteCause> {
    if !same_inventory {
        return Err(WriteCause::Inventory);
    }
    let same = ApplicationStatus {
        inventory: Vec::new(),
        ..old.clone()
    } == *new;
    if same {
        return Ok(Wrote::Unchanged);
    }
    if beyond_progress(old) != beyond_progress(new) {
        return Err(WriteCause::Conditions);
    }
    let wait = since_write.and_then(|since| PROGRESS_INTERVAL.checked_sub(since));
    match wait {
        Some(wait) if !wait.is_zero() => Ok(Wrote::Later(wait)),
        _ => Err(WriteCause::Progress),
    }
}

/// The status an Application has now, as far as this process knows: the one it wrote last
/// while the Application's store does not show it yet (see
/// [`ApplyCache::last_written`](super::apply::ApplyCache::last_written)); else the status of
/// the Application as its store holds it now, which may be newer than the one the reconcile
/// started with (see [`Context::latest`]); else that one's.
pub fn last_known<'a>(ctx: &Context, app: &'a Application) -> Option<Cow<'a, ApplicationStatus>> {
    let uid = app.uid().unwrap_or_default();
    let stored = app.metadata.resource_version.as_deref();
    if let Some(written) = ctx.applied.last_written(&uid, stored) {
        return Some(Cow::Owned(written));
    }
    if let Some(latest) = ctx.latest(app)
        && latest.metadata.uid == app.metadata.uid
        && latest.metadata.resource_version != app.metadata.resource_version
    {
        return latest.status.clone().map(Cow::Owned);
    }
    app.status.as_ref().map(Cow::Borrowed)
}

/// Write `status` if it differs from `old`, the Application's current one ([`last_known`]);
/// progress alone at most once every [`PROGRESS_INTERVAL`].
pub async fn write(
    ctx: &Context,
    app: &Application,
    old: Option<&ApplicationStatus>,
    mut status: ApplicationStatus,
) -> Result<Wrote> {
    let uid = app.uid().unwrap_or_default();
    // The stored status may carry no inventory (see `ApplyCache::absorb`): the rest is compared
    // as it is, the inventory with what the status is known to list.
    let cause = match old {
        None => WriteCause::New,
        Some(old) => {
            let inventory = std::mem::take(&mut status.inventory);
            let same_inventory = ctx.applied.lists(&uid, &old.inventory, &inventory);
            let since_write = ctx.applied.status_written(&uid).map(|at| at.elapsed());
            let decided = hold_back(old, &status, same_inventory, since_write);
            status.inventory = inventory;
            match decided {
                Ok(wait) => return Ok(wait),
                Err(cause) => cause,
            }
        }
    };
    let api: Api<Application> =
        Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": Application::api_version(&()),
        "kind": Application::kind(&()),
        "status": status,
    });
    let answer = api
        .patch_status(
            &app.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|e| Error::Status { source: e.into() })?;
    let inventory = std::mem::take(&mut status.inventory);
    let revision = answer.metadata.resource_version.as_deref();
    ctx.applied.wrote(&uid, &inventory, status, revision);
    ctx.metrics.count_status_write(cause);
    Ok(Wrote::Written)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(1),
            last_transition_time: now(),
        }
    }

    fn rolling_out(waiting_for: &str, ready: &str) -> ApplicationStatus {
        ApplicationStatus {
            observed_generation: Some(1),
            conditions: vec![
                condition(READY, "False", "WaitingForWorkloads", waiting_for),
                condition(PROGRESSING, "True", "RollingOut", waiting_for),
            ],
            services_ready: Some(ready.into()),
            ..ApplicationStatus::default()
        }
    }

    #[test]
    fn progress_alone_waits_for_the_interval_and_anything_else_is_written_at_once() {
        let old = rolling_out("waiting for web, api", "0/2");
        let progress = rolling_out("waiting for api", "1/2");
        let just = Some(Duration::from_millis(500));
        let long_ago = Some(PROGRESS_INTERVAL);

        assert_eq!(hold_back(&old, &old, true, just), Ok(Wrote::Unchanged));
        assert_eq!(
            hold_back(&old, &progress, true, just),
            Ok(Wrote::Later(PROGRESS_INTERVAL - Duration::from_millis(500)))
        );
        // Written once the interval is over, or when this process has not written it yet.
        assert_eq!(
            hold_back(&old, &progress, true, long_ago),
            Err(WriteCause::Progress)
        );
        assert_eq!(
            hold_back(&old, &progress, true, None),
            Err(WriteCause::Progress)
        );
        // A new inventory, a new generation or a condition that turns: at once.
        assert_eq!(
            hold_back(&old, &old, false, just),
            Err(WriteCause::Inventory)
        );
        let next_generation = ApplicationStatus {
            observed_generation: Some(2),
            ..progress.clone()
        };
        assert_eq!(
            hold_back(&old, &next_generation, true, just),
            Err(WriteCause::Conditions)
        );
        let ready = ApplicationStatus {
            conditions: vec![
                condition(
                    READY,
                    "True",
                    "Ready",
                    "all 2 services and 0 databases are ready",
                ),
                condition(
                    PROGRESSING,
                    "False",
                    "Complete",
                    "every workload is rolled out",
                ),
            ],
            ..progress.clone()
        };
        assert_eq!(
            hold_back(&old, &ready, true, just),
            Err(WriteCause::Conditions)
        );
        let stuck = ApplicationStatus {
            conditions: vec![
                condition(READY, "False", WORKLOAD_NOT_READY, "waiting for api"),
                condition(PROGRESSING, "True", "RollingOut", "waiting for api"),
            ],
            ..progress
        };
        assert_eq!(
            hold_back(&old, &stuck, true, just),
            Err(WriteCause::Conditions)
        );
    }
}
