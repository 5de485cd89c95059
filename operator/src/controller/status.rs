//! Status: computed from the spec, what apply did and what the watches observe; written with a
//! server-side apply of the status subresource, and only when it changed, so a steady state
//! writes nothing and a status write never feeds another round of work.

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
    held::{self, Held},
    watch::{Observed, Workload},
};
use crate::{
    api::{
        Application, ApplicationStatus, DatabaseStatus, GatewayStatus, InvalidSpec, Model,
        ServiceStatus,
        validate::{GatewayKind, Replicas},
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

/// Compute the status an Application should have.
pub fn compute(
    ctx: &Context,
    app: &Application,
    outcome: &Outcome<'_>,
    now: Time,
) -> ApplicationStatus {
    let old = app.status.clone().unwrap_or_default();
    let mut c = Conditions {
        old: &old.conditions,
        generation: app.metadata.generation,
        now,
        out: Vec::new(),
    };
    let (model, skipped, held, error) = match outcome {
        Outcome::Invalid(invalid) => return invalid_status(c, app, invalid, old.clone()),
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
        services,
        databases,
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
    }
}

/// An invalid spec: the conditions say why; the running stack is untouched, so the last
/// roll-up stays.
fn invalid_status(
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
        ..old
    }
}

/// What the watches show of the workloads and the gateway.
struct RollUp {
    services: Vec<ServiceStatus>,
    databases: Vec<DatabaseStatus>,
    gateway: Option<GatewayStatus>,
}

impl RollUp {
    fn observe(ctx: &Context, model: &Model, skipped: &[Skipped]) -> Self {
        let ns = &model.namespace;
        let services = model
            .services
            .iter()
            .map(|s| {
                let d = ctx.stores.deployments.get(ns, &s.object_name);
                deployment_status(&s.spec.name, s.replicas, d.as_ref())
            })
            .collect();
        let databases = model
            .databases
            .iter()
            .map(|db| DatabaseStatus {
                name: db.spec.name.clone(),
                ready: ctx
                    .stores
                    .stateful_sets
                    .get(ns, &db.object_name)
                    .is_some_and(|s| stateful_set_ready(&s)),
                secret_name: db.secret_name.clone(),
            })
            .collect();
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
            services,
            databases,
            gateway,
        }
    }

    /// What is not ready yet, e.g. `orders (1/3 ready)`.
    fn waiting(&self) -> Vec<String> {
        let services = self.services.iter().filter(|s| !s.ready).map(|s| {
            format!(
                "{} ({}/{} ready)",
                s.name, s.ready_replicas, s.desired_replicas
            )
        });
        let databases = self
            .databases
            .iter()
            .filter(|d| !d.ready)
            .map(|d| d.name.clone());
        services.chain(databases).collect()
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
    let rolling = !rollup.waiting().is_empty();
    c.set(
        PROGRESSING,
        rolling,
        reason,
        "every other child is applied".into(),
    );
    c.set(DEGRADED, true, reason, msg);
}

/// Ready, Progressing and Degraded after a complete apply: the workloads' roll-out.
fn set_progress(c: &mut Conditions<'_>, rollup: &RollUp) {
    let waiting = rollup.waiting();
    if waiting.is_empty() {
        let msg = format!(
            "all {} services and {} databases are ready",
            rollup.services.len(),
            rollup.databases.len()
        );
        c.set(READY, true, "Ready", msg);
        let msg = "every workload is rolled out and available".to_string();
        c.set(PROGRESSING, false, "Complete", msg);
    } else {
        let msg = format!("waiting for {}", waiting.join(", "));
        c.set(READY, false, "WaitingForWorkloads", msg.clone());
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

fn deployment_status(name: &str, replicas: Replicas, d: Option<&Observed>) -> ServiceStatus {
    let Some((w, generation)) = d.and_then(|d| Some((d.workload?, d.generation))) else {
        return ServiceStatus {
            name: name.into(),
            desired_replicas: replicas.min(),
            ready_replicas: 0,
            ready: false,
        };
    };
    let desired = w.replicas.unwrap_or(replicas.min());
    let ready = current(&w, generation) && w.updated >= desired && w.available >= desired;
    ServiceStatus {
        name: name.into(),
        desired_replicas: desired,
        ready_replicas: w.ready,
        ready,
    }
}

/// Whether the workload's controller has seen its latest spec.
fn current(w: &Workload, generation: Option<i64>) -> bool {
    w.observed_generation >= generation
}

fn stateful_set_ready(s: &Observed) -> bool {
    s.workload
        .is_some_and(|w| current(&w, s.generation) && w.ready >= w.replicas.unwrap_or(1))
}

/// Write `status` if it differs from the Application's current one. Returns whether it wrote.
pub async fn write(ctx: &Context, app: &Application, status: ApplicationStatus) -> Result<bool> {
    if app.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    let api: Api<Application> =
        Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": Application::api_version(&()),
        "kind": Application::kind(&()),
        "status": status,
    });
    api.patch_status(
        &app.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|e| Error::Status { source: e.into() })?;
    ctx.metrics.status_writes.inc();
    Ok(true)
}
