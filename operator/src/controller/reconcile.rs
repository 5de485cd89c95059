//! One reconcile of one Application, as its named steps: fetch, validate, build, apply, prune,
//! status; and the error policy that decides how a failed reconcile is retried.

use std::{sync::Arc, time::Instant};

use kube::{ResourceExt, runtime::controller::Action};

use super::{
    Context,
    apply::{self, Applied},
    credentials,
    error::{Error, ErrorCategory, Result, Retry},
    events, handover,
    held::Held,
    pods,
    prune::{self, Pruned},
    status, volumes,
};
use crate::{
    api::{Application, InvalidSpec, Model, validate},
    build::{self, ApiCapabilities, Children},
    runtime::metrics::ResultLabel,
};

/// How a reconcile that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every child was applied (and the unwanted ones pruned).
    Applied,
    /// Every child was applied, and a workload is still rolling out: looked at again after
    /// this long, as stuck pods change nothing Keelson watches (see [`pods::inspect`]).
    RollingOut(std::time::Duration),
    /// The spec is invalid: nothing was changed, status says why.
    InvalidSpec,
    /// The Application is being deleted: the garbage collector removes its children.
    Deleting,
    /// Every child was applied but some held back on purpose (a name conflict, missing
    /// credentials), reported in status.
    Held,
}

/// How soon an Application with held-back children is reconciled again: what holds a child
/// back may go without a watch event naming the Application (a conflicting object made by hand
/// and then deleted names no Application; one annotated for adoption wakes it at once).
pub const HELD_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

impl Outcome {
    /// The `result` label of `keelson_reconciles_total`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Applied | Outcome::RollingOut(_) | Outcome::Deleting => "success",
            Outcome::InvalidSpec => "invalid_spec",
            Outcome::Held => "held",
        }
    }
}

/// Reconcile one Application, and count it.
pub async fn reconcile(app: Arc<Application>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_steps(&app, &ctx).await;
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    let label = match &result {
        Ok(outcome) => {
            ctx.failures.lock().expect("lock").remove(&uid(&app));
            outcome.label()
        }
        Err(e) => {
            ctx.metrics.count_error(e.category());
            "error"
        }
    };
    let reconciles = &ctx.metrics.reconciles;
    reconciles
        .get_or_create(&ResultLabel { result: label })
        .inc();
    result.map(|outcome| match outcome {
        Outcome::InvalidSpec => Action::await_change(),
        Outcome::Applied | Outcome::Deleting => Action::requeue(ctx.config.resync),
        Outcome::RollingOut(after) => Action::requeue(after.min(ctx.config.resync)),
        Outcome::Held => Action::requeue(HELD_RECHECK.min(ctx.config.resync)),
    })
}

/// fetch -> validate -> build -> apply -> prune -> status.
async fn reconcile_steps(app: &Application, ctx: &Context) -> Result<Outcome> {
    if app.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the children through their owner references.
        return Ok(Outcome::Deleting);
    }
    // A restarted operator knows what it last applied from the status it wrote (taken out of
    // the Application as its watch delivers it, see `ApplyCache::absorb`; here when it was not).
    if let Some(st) = &app.status {
        ctx.applied.restore(&uid(app), &st.inventory);
    }
    let model = match validate_spec(ctx, app) {
        Ok(model) => model,
        Err(invalid) => {
            report_invalid(ctx, app, &invalid).await?;
            return Ok(Outcome::InvalidSpec);
        }
    };
    let fetched = fetch_inputs(ctx, &model).await?;
    let mut children = build_children(app, &model, &fetched);
    let volumes = grow_volumes(ctx, app, &model, &mut children).await?;
    let target = Target::of(app);
    let applier = apply::Applier::new(ctx, &target.uid, &target.name, &target.namespace);
    handover::hand_over(ctx, &model).await?;
    let mut applied = apply::apply_all(&applier, &children).await;
    fetched.credentials.keep(&mut applied.report);
    volumes.keep(&mut applied.report);
    let held = held_back(&applied, &fetched, &volumes);
    let pruned = prune_unwanted(ctx, &target, &children, &applied).await;
    let mut rolling_out = pods::inspect(ctx, app, &model).await;
    if volumes.replacing {
        rolling_out = Some(rolling_out.unwrap_or(pods::TTL));
    }
    let later = report(ctx, app, &model, &children, &held, applied, pruned).await?;
    Ok(if !held.is_empty() {
        Outcome::Held
    } else if let Some(after) = earliest(rolling_out, later) {
        Outcome::RollingOut(after)
    } else {
        Outcome::Applied
    })
}

/// The sooner of two optional delays.
fn earliest(
    a: Option<std::time::Duration>,
    b: Option<std::time::Duration>,
) -> Option<std::time::Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The children held back this pass: name conflicts, databases missing their credentials, then
/// volume changes refused.
fn held_back(applied: &Applied, fetched: &Fetched, volumes: &volumes::Plan) -> Vec<Held> {
    let conflicts = applied.report.conflicts.iter().map(Held::from);
    conflicts
        .chain(fetched.credentials.held.iter().cloned())
        .chain(volumes.held.iter().cloned())
        .collect()
}

/// Before apply: grow the databases' volumes whose size went up, holding back the StatefulSets
/// being replaced or whose change is refused (see [`volumes`]).
async fn grow_volumes(
    ctx: &Context,
    app: &Application,
    model: &Model,
    children: &mut Children,
) -> Result<volumes::Plan> {
    let plan = volumes::plan(ctx, model, children).await?;
    plan.hold(children);
    for note in &plan.notes {
        ctx.events.publish(app, note).await;
    }
    Ok(plan)
}

fn uid(app: &Application) -> String {
    app.uid().unwrap_or_default()
}

/// The Application whose children a pass writes.
struct Target {
    uid: String,
    name: String,
    namespace: String,
}

impl Target {
    fn of(app: &Application) -> Self {
        Target {
            uid: uid(app),
            name: app.name_any(),
            namespace: app.namespace().unwrap_or_default(),
        }
    }
}

/// validate: the spec against the schema and CEL rules (once per generation: the spec changes
/// only with it), then Keelson's own rules.
fn validate_spec(ctx: &Context, app: &Application) -> Result<Model, InvalidSpec> {
    let uid = uid(app);
    let generation = app.metadata.generation.unwrap_or_default();
    let checked = ctx.schema_checked.lock().expect("lock").get(&uid) == Some(&generation);
    if checked {
        return validate::validate_schema_checked(app);
    }
    let model = validate::validate(app)?;
    ctx.schema_checked
        .lock()
        .expect("lock")
        .insert(uid, generation);
    Ok(model)
}

/// An invalid spec: status and a Warning Event say why; nothing is applied or pruned.
async fn report_invalid(ctx: &Context, app: &Application, invalid: &InvalidSpec) -> Result<()> {
    ctx.metrics.count_error(ErrorCategory::InvalidSpec);
    let old = status::last_known(ctx, app);
    let outcome = status::Outcome::Invalid(invalid);
    let st = status::compute(ctx, app, old.as_deref(), &outcome, status::now());
    if status::write(ctx, app, old.as_deref(), st).await?.written() {
        let note = format!("nothing was changed: {invalid}");
        events::warn(ctx, app, status::INVALID_SPEC, "Validate", note).await;
    }
    Ok(())
}

/// What build needs from the cluster besides the model.
struct Fetched {
    caps: ApiCapabilities,
    credentials: credentials::Plan,
}

/// fetch: the optional APIs served (from memory: discovery keeps them), and what to do about the
/// databases' credentials (see [`credentials::plan`]).
async fn fetch_inputs(ctx: &Context, model: &Model) -> Result<Fetched> {
    Ok(Fetched {
        caps: ctx.caps(),
        credentials: credentials::plan(ctx, model).await?,
    })
}

/// build: every desired child (pure), less the databases held back for missing credentials.
fn build_children(app: &Application, model: &Model, fetched: &Fetched) -> Children {
    let owner = build::labels::owner_reference(&app.name_any(), &uid(app));
    let mut children = build::build(model, &owner, fetched.caps, &fetched.credentials.new);
    fetched.credentials.hold(&mut children);
    children
}

/// prune: only after a complete apply, so a failed apply never deletes anything.
async fn prune_unwanted(
    ctx: &Context,
    target: &Target,
    children: &Children,
    applied: &Applied,
) -> Pruned {
    match &applied.result {
        Ok(()) => {
            let pruner = prune::Pruner::new(ctx, &target.uid, &target.namespace, &applied.report);
            prune::prune_all(&pruner, children).await
        }
        Err(e) => Pruned {
            pruned: Vec::new(),
            result: Err(e.clone()),
        },
    }
}

/// status: computed from what was applied and observed, written with the Events of what
/// changed (independent writes, sent together); a failure also as a Warning Event. Returns when
/// to look again to write progress that waits (see [`status::PROGRESS_INTERVAL`]).
async fn report(
    ctx: &Context,
    app: &Application,
    model: &Model,
    children: &Children,
    held: &[Held],
    applied: Applied,
    pruned: Pruned,
) -> Result<Option<std::time::Duration>> {
    // A failed apply is carried in `pruned.result` (prune did not run).
    let result = pruned.result;
    let skipped = &children.skipped;
    let outcome = match &result {
        Ok(()) => status::Outcome::Applied {
            model,
            skipped,
            held,
        },
        Err(error) => status::Outcome::Failed {
            model,
            skipped,
            held,
            error,
        },
    };
    let old = status::last_known(ctx, app);
    let st = status::compute(ctx, app, old.as_deref(), &outcome, status::now());
    let announce = events::announce(ctx, app, &applied.report, &pruned.pruned);
    let written = status::write(ctx, app, old.as_deref(), st);
    let ((), wrote) = futures::join!(announce, written);
    if matches!(wrote, Ok(status::Wrote::Written)) {
        // Once per change of status, not every pass.
        for h in held {
            let note = h.to_string();
            events::warn(ctx, app, h.reason, "Apply", note).await;
        }
    }
    if let Err(e) = &result {
        let note = e.to_string();
        let (reason, action) = (e.reason(), e.action());
        events::warn(ctx, app, reason, action, note).await;
    }
    result?;
    let wrote = wrote?;
    if wrote.written() {
        for note in status::warnings(ctx, model) {
            ctx.events.publish(app, &note).await;
        }
    }
    Ok(match wrote {
        status::Wrote::Later(after) => Some(after),
        status::Wrote::Written | status::Wrote::Unchanged => None,
    })
}

/// How a failed reconcile is retried: a refusal that will repeat waits for a change of the spec
/// or the cluster (a watch event, the periodic resync, a newly served API); anything else backs
/// off exponentially, 1 s to 30 s (a watch event still triggers a reconcile at once).
pub fn error_policy(app: Arc<Application>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = uid(&app);
    let mut failures = ctx.failures.lock().expect("lock");
    let retry = if err.is_permanent() {
        failures.remove(&key);
        err.retry(0)
    } else {
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        err.retry(*n)
    };
    match retry {
        Retry::AwaitChange => {
            tracing::warn!(app = %app.name_any(), error = %err, "reconcile failed; waiting for a change of the spec or the cluster");
            Action::await_change()
        }
        Retry::After(delay) => {
            tracing::warn!(app = %app.name_any(), error = %err, retry_in_seconds = delay.as_secs(), "reconcile failed");
            Action::requeue(delay)
        }
    }
}
