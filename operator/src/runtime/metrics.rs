//! The operator's Prometheus metrics, served on the admin port's `/metrics`.

use std::sync::atomic::AtomicI64;

use crate::controller::{error::ErrorCategory, status::WriteCause};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Metric, Registry},
};

/// Label: a reconcile's result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `success`, `invalid_spec` or `error`.
    pub result: &'static str,
}

/// Label: an error's category.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabel {
    /// See `controller::error::ErrorCategory`.
    pub category: &'static str,
}

/// Label: a child kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// E.g. `Deployment`.
    pub kind: &'static str,
}

/// Label: the build.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabel {
    /// The crate version.
    pub version: &'static str,
}

/// Label: why an Application's status was written.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    /// `new`, `inventory`, `conditions` or `progress` (see `controller::status::WriteCause`).
    pub cause: &'static str,
}

/// Values of the `result` label.
pub const RESULTS: [&str; 3] = ["success", "invalid_spec", "error"];
/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// `keelson_reconciles_total{result}`.
    pub reconciles: Family<ResultLabel, Counter>,
    /// `keelson_reconcile_errors_total{category}`.
    pub errors: Family<CategoryLabel, Counter>,
    /// `keelson_reconcile_duration_seconds`.
    pub duration: Histogram,
    /// `keelson_children_applied_total{kind}`: applies that changed or created an object.
    pub applied: Family<KindLabel, Counter>,
    /// `keelson_children_pruned_total{kind}`.
    pub pruned: Family<KindLabel, Counter>,
    /// `keelson_drift_repairs_total{kind}`: children restored after someone else changed or
    /// deleted them.
    pub drift_repairs: Family<KindLabel, Counter>,
    /// `keelson_leader`: 1 while this replica holds the lease (or runs without election).
    pub leader: Gauge<i64, AtomicI64>,
    /// `keelson_status_writes_total{cause}`: Application status updates, by why each was
    /// written (see `controller::status::WriteCause`).
    pub status_writes: Family<CauseLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("keelson");
        let m = Metrics {
            reconciles: add(
                &mut r,
                "reconciles",
                "Reconciles of Applications, by result",
            ),
            errors: add(&mut r, "reconcile_errors", "Reconcile errors, by category"),
            duration: registered(
                &mut r,
                "reconcile_duration_seconds",
                "Duration of one reconcile",
                Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            ),
            applied: add(
                &mut r,
                "children_applied",
                "Child objects created or changed by server-side apply, by kind",
            ),
            pruned: add(
                &mut r,
                "children_pruned",
                "Child objects deleted because the spec no longer wants them, by kind",
            ),
            drift_repairs: add(
                &mut r,
                "drift_repairs",
                "Child objects restored after someone else changed or deleted them, by kind",
            ),
            leader: add(&mut r, "leader", "1 while this replica is the leader"),
            status_writes: add(
                &mut r,
                "status_writes",
                "Application status updates, by cause: new, inventory, conditions or progress",
            ),
            registry: Registry::default(),
        };
        let mut registry = r;
        let build: Family<BuildLabel, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The running build (value 1)", build);
        // Export every known series from the start, at zero, so rates and alerts work at once.
        for result in RESULTS {
            let _ = m.reconciles.get_or_create(&ResultLabel { result });
        }
        for category in ErrorCategory::ALL {
            let _ = m.errors.get_or_create(&CategoryLabel {
                category: category.as_str(),
            });
        }
        for cause in WriteCause::ALL {
            let _ = m.status_writes.get_or_create(&CauseLabel {
                cause: cause.as_str(),
            });
        }
        for kind in crate::kinds::all().into_iter().map(|k| k.kind) {
            let _ = m.applied.get_or_create(&KindLabel { kind });
            let _ = m.pruned.get_or_create(&KindLabel { kind });
            let _ = m.drift_repairs.get_or_create(&KindLabel { kind });
        }
        Metrics { registry, ..m }
    }

    /// Count one failed reconcile (or invalid spec) of `category`.
    pub fn count_error(&self, category: ErrorCategory) {
        let category = category.as_str();
        self.errors.get_or_create(&CategoryLabel { category }).inc();
    }

    /// Count one status write, and why it was written.
    pub fn count_status_write(&self, cause: WriteCause) {
        let cause = cause.as_str();
        self.status_writes
            .get_or_create(&CauseLabel { cause })
            .inc();
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// `metric` once registered as `name` with `help`.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// A new metric of its default value, registered as `name` with `help`.
fn add<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    registered(registry, name, help, M::default())
}
