//! Rollout: whether a service's Deployment or a database's StatefulSet is ready, how far its
//! rollout has come, and whether it is stuck, from the compact counts the watches keep.
//!
//! A Deployment is ready when its controller has seen the latest spec (`observedGeneration`),
//! every desired replica is updated and available, and no old replica remains (running or
//! terminating). A StatefulSet likewise, with `currentRevision == updateRevision` and its ready
//! replicas. The desired count of an autoscaled service is at least its `minReplicas`, and the
//! autoscaler's `desiredReplicas` once it has one: a Deployment created without `replicas`
//! starts with one pod until the autoscaler's first sync, which is not yet the service.

use super::watch::{Observed, Workload, WorkloadFlag};
use crate::api::validate::Replicas;

/// Where one workload stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Rolled out and available.
    Ready,
    /// Under way; the text says how far, e.g. `3 of 5 updated, 2 old replicas terminating`.
    RollingOut(String),
    /// A Deployment past its `progressDeadlineSeconds`; the text says how far it came.
    Stuck(String),
}

/// One workload's rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    /// Replicas the workload should run now.
    pub desired: i32,
    /// Replicas that are ready (old and new).
    pub ready_replicas: i32,
    /// Where it stands.
    pub progress: Progress,
}

impl Rollout {
    /// Whether the workload is ready.
    pub fn ready(&self) -> bool {
        self.progress == Progress::Ready
    }
}

/// The replicas a service should run: its fixed count; or for an autoscaled one at least
/// `minReplicas`, and the autoscaler's `desiredReplicas` (`hpa`) once it reports one.
pub fn desired_replicas(replicas: Replicas, hpa: Option<&Observed>) -> i32 {
    match replicas {
        Replicas::Fixed(n) => n,
        Replicas::Autoscaled { min, max, .. } => hpa
            .and_then(|h| h.scale_to)
            .map_or(min, |n| n.clamp(min, max.max(min))),
    }
}

fn replicas(n: i32) -> &'static str {
    if n == 1 { "replica" } else { "replicas" }
}

/// The rollout of a service's Deployment (`None`: not seen yet), whose desired count is
/// `desired` (see [`desired_replicas`]).
pub fn deployment(desired: i32, deployment: Option<&Observed>) -> Rollout {
    let (w, seen) = counts_of(deployment);
    let progress = match deployment_progress(&w, seen, desired) {
        None => Progress::Ready,
        Some(text) if w.flag == WorkloadFlag::DeadlineExceeded => Progress::Stuck(text),
        Some(text) => Progress::RollingOut(text),
    };
    Rollout {
        desired,
        ready_replicas: w.ready,
        progress,
    }
}

/// A workload's counts, and whether its controller has seen its latest spec (not for one not
/// seen yet itself).
fn counts_of(o: Option<&Observed>) -> (Workload, bool) {
    o.and_then(|o| Some((*o.workload.as_deref()?, o.generation)))
        .map_or((Workload::default(), false), |(w, generation)| {
            (w, w.observed_generation >= generation)
        })
}

/// How far a Deployment's rollout is, or `None` when it is complete. Until its controller has
/// seen the latest spec, none of its pods count as updated.
fn deployment_progress(w: &Workload, seen: bool, desired: i32) -> Option<String> {
    let updated = if seen { w.updated } else { 0 };
    let old = (w.current - updated).max(0);
    let mut parts = Vec::new();
    if updated < desired || !seen {
        parts.push(format!("{updated} of {desired} updated"));
    } else if w.available < desired {
        parts.push(format!("{} of {desired} available", w.available));
    }
    if old > 0 {
        parts.push(format!("{old} old {} still running", replicas(old)));
    }
    if w.terminating > 0 {
        parts.push(format!(
            "{} old {} terminating",
            w.terminating,
            replicas(w.terminating)
        ));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The rollout of a database's StatefulSet (`None`: not seen yet).
pub fn stateful_set(stateful_set: Option<&Observed>) -> Rollout {
    let (w, seen) = counts_of(stateful_set);
    let desired = w.replicas.unwrap_or(1);
    let text = if !seen || w.flag == WorkloadFlag::RevisionPending {
        let updated = if seen { w.updated } else { 0 };
        Some(format!("{updated} of {desired} updated"))
    } else if w.ready < desired {
        Some(format!("{} of {desired} ready", w.ready))
    } else {
        None
    };
    Rollout {
        desired,
        ready_replicas: w.ready,
        progress: text.map_or(Progress::Ready, Progress::RollingOut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(generation: i64, w: Workload) -> Observed {
        Observed {
            generation: Some(generation),
            workload: Some(Box::new(w)),
            ..Observed::default()
        }
    }

    fn counts(current: i32, updated: i32, available: i32, terminating: i32) -> Workload {
        Workload {
            replicas: Some(current.max(updated)),
            observed_generation: Some(2),
            current,
            ready: available,
            updated,
            available,
            terminating,
            flag: WorkloadFlag::None,
            applies_replicas: false,
            claims: 0,
        }
    }

    #[test]
    fn an_autoscaled_service_wants_its_minimum_until_the_autoscaler_says_more() {
        let auto = Replicas::Autoscaled {
            min: 3,
            max: 6,
            target_cpu: 80,
        };
        assert_eq!(desired_replicas(auto, None), 3);
        let hpa = |n| Observed {
            scale_to: Some(n),
            ..Observed::default()
        };
        assert_eq!(desired_replicas(auto, Some(&hpa(5))), 5);
        assert_eq!(desired_replicas(auto, Some(&hpa(1))), 3);
        assert_eq!(desired_replicas(Replicas::Fixed(2), Some(&hpa(5))), 2);
        // The Deployment starts with one replica (no spec.replicas) before the autoscaler acts.
        let one = observed(2, counts(1, 1, 1, 0));
        let r = deployment(3, Some(&one));
        assert!(!r.ready());
        assert_eq!(r.progress, Progress::RollingOut("1 of 3 updated".into()));
    }

    #[test]
    fn a_rollout_is_ready_only_with_every_replica_updated_available_and_no_old_one_left() {
        let cases = [
            (
                counts(5, 3, 5, 0),
                Some("3 of 5 updated, 2 old replicas still running"),
            ),
            (
                counts(3, 3, 3, 2),
                Some("3 of 5 updated, 2 old replicas terminating"),
            ),
            (counts(6, 5, 5, 0), Some("1 old replica still running")),
            (counts(5, 5, 4, 0), Some("4 of 5 available")),
            (counts(5, 5, 5, 1), Some("1 old replica terminating")),
            (counts(5, 5, 5, 0), None),
        ];
        for (w, want) in cases {
            let r = deployment(5, Some(&observed(2, w)));
            match want {
                None => assert!(r.ready(), "{w:?}: {r:?}"),
                Some(text) => assert_eq!(r.progress, Progress::RollingOut(text.into()), "{w:?}"),
            }
        }
        // A spec the controller has not seen yet is not ready, whatever the counts say: every
        // pod is old.
        let r = deployment(5, Some(&observed(3, counts(5, 5, 5, 0))));
        assert_eq!(
            r.progress,
            Progress::RollingOut("0 of 5 updated, 5 old replicas still running".into())
        );
        // Not seen yet, or seen without status: the same words.
        let fresh = Observed {
            generation: Some(1),
            workload: Some(Box::default()),
            ..Observed::default()
        };
        let want = Progress::RollingOut("0 of 5 updated".into());
        assert_eq!(deployment(5, None).progress, want);
        assert_eq!(deployment(5, Some(&fresh)).progress, want);
    }

    #[test]
    fn a_deployment_past_its_deadline_is_stuck() {
        let mut w = counts(2, 1, 1, 0);
        w.flag = WorkloadFlag::DeadlineExceeded;
        let r = deployment(2, Some(&observed(2, w)));
        assert_eq!(
            r.progress,
            Progress::Stuck("1 of 2 updated, 1 old replica still running".into())
        );
        // Complete after all (the flag is stale): ready.
        let mut done = counts(2, 2, 2, 0);
        done.flag = WorkloadFlag::DeadlineExceeded;
        assert!(deployment(2, Some(&observed(2, done))).ready());
    }

    #[test]
    fn a_stateful_set_waits_for_its_update_revision_and_ready_replicas() {
        let mut w = Workload {
            replicas: Some(1),
            observed_generation: Some(2),
            current: 1,
            ready: 1,
            updated: 0,
            available: 1,
            terminating: 0,
            flag: WorkloadFlag::RevisionPending,
            applies_replicas: false,
            claims: 0,
        };
        let r = stateful_set(Some(&observed(2, w)));
        assert_eq!(r.progress, Progress::RollingOut("0 of 1 updated".into()));
        w.flag = WorkloadFlag::None;
        w.ready = 0;
        let r = stateful_set(Some(&observed(2, w)));
        assert_eq!(r.progress, Progress::RollingOut("0 of 1 ready".into()));
        w.ready = 1;
        assert!(stateful_set(Some(&observed(2, w))).ready());
        assert!(!stateful_set(Some(&observed(3, w))).ready());
    }
}
