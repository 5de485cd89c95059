//! Leader election: two operator replicas on one Lease; exactly one reconciles, and when it
//! stops (or dies) the other takes over. How fast the takeover is belongs to the benchmark;
//! these tests wait for each step with generous deadlines.

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use e2e::{
    faults::Faults,
    harness::{Env, EnvOptions, Operator, OperatorOptions, converge_timeout, wait_for},
};
use k8s_openapi::{
    api::coordination::v1::Lease,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::json;

const LEASE: &str = "keelson-leader";
const LEASE_DURATION: Duration = Duration::from_secs(3);

fn replica(env: &Env, identity: &str) -> Operator {
    env.start_operator(OperatorOptions {
        lease: Some((LEASE.into(), identity.into())),
        lease_duration: LEASE_DURATION,
        ..OperatorOptions::default()
    })
}

/// The Lease's holder and its last renewal.
async fn lease(env: &Env) -> Option<(String, String)> {
    let spec = Api::<Lease>::namespaced(env.client.clone(), &env.namespace)
        .get(LEASE)
        .await
        .ok()?
        .spec?;
    Some((
        spec.holder_identity?,
        spec.renew_time.map(|t| format!("{:?}", t.0))?,
    ))
}

/// Generous: a lease expiry, the standby's retries, and a loaded machine or API server.
fn takeover_deadline(env: &Env) -> Duration {
    if env.real() {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(60)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_a_standby_takes_over() {
    let env = Env::start("e2e-leader", EnvOptions::default())
        .await
        .unwrap();
    let a = replica(&env, "replica-a");
    let b = replica(&env, "replica-b");
    let a_leads = wait_for(takeover_deadline(&env), || async {
        match (a.leading(), b.leading()) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        }
    })
    .await
    .expect("exactly one replica leads");
    let (leader, standby) = if a_leads { (a, b) } else { (b, a) };

    let mut app = env.sample("minimal.yaml").unwrap();
    env.apply_app(&app).await.unwrap();
    env.wait_condition("hello", "Ready", "True", converge_timeout(env.real()))
        .await
        .unwrap();
    // The counter moves when a whole reconcile (status write included) has ended, which may be
    // after its status is visible.
    leader
        .wait_reconciles(0, 1, converge_timeout(env.real()))
        .await
        .expect("the leader reconciles");
    assert_eq!(standby.reconciles(), 0, "the standby never reconciles");
    assert!(!standby.leading());

    // A graceful stop releases the lease: the standby takes over and reconciles.
    leader.stop().await.unwrap();
    wait_for(takeover_deadline(&env), || async {
        standby.leading().then_some(())
    })
    .await
    .expect("the standby takes over");
    app["spec"]["services"][0]["replicas"] = json!(2);
    env.apply_app(&app).await.unwrap();
    let d = env.dynamic("apps", "v1", "Deployment", "deployments");
    wait_for(converge_timeout(env.real()), || async {
        (d.get("hello-web").await.ok()?.data["spec"]["replicas"] == 2).then_some(())
    })
    .await
    .expect("the new leader applies the change");
    standby
        .wait_reconciles(0, 1, converge_timeout(env.real()))
        .await
        .expect("the new leader's reconcile ends");
    standby.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leader_is_replaced_once_its_lease_expires() {
    let env = Env::start("e2e-leader-dies", EnvOptions::default())
        .await
        .unwrap();
    let a = replica(&env, "replica-a");
    wait_for(takeover_deadline(&env), || async {
        a.leading().then_some(())
    })
    .await
    .unwrap();
    let b = replica(&env, "replica-b");
    // While the leader lives it keeps renewing: over two renewals (more than one lease
    // duration) the standby never leads and the Lease stays the leader's.
    let (_, first) = lease(&env).await.expect("the Lease exists");
    let renewals = std::sync::Mutex::new(vec![first]);
    let standby_led = std::sync::atomic::AtomicBool::new(false);
    wait_for(takeover_deadline(&env), || async {
        if b.leading() {
            standby_led.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let (holder, renewed) = lease(&env).await?;
        assert_eq!(
            holder, "replica-a",
            "the Lease changed hands while its holder lived"
        );
        let mut renewals = renewals.lock().unwrap();
        if renewals.last() != Some(&renewed) {
            renewals.push(renewed);
        }
        (renewals.len() >= 3).then_some(())
    })
    .await
    .expect("the leader renews its Lease");
    assert!(
        !standby_led.load(std::sync::atomic::Ordering::SeqCst) && !b.leading(),
        "the standby led while the lease was held"
    );

    a.kill(); // no release: the lease must expire
    wait_for(takeover_deadline(&env), || async {
        b.leading().then_some(())
    })
    .await
    .expect("the standby takes over once the lease expires");
    let (holder, _) = lease(&env).await.expect("the Lease exists");
    assert_eq!(holder, "replica-b");
    b.stop().await.unwrap();
    env.cleanup().await;
}

/// A replica with the given faults in its client.
fn replica_with(env: &Env, identity: &str, faults: &Arc<Faults>) -> Operator {
    env.start_operator(OperatorOptions {
        lease: Some((LEASE.into(), identity.into())),
        lease_duration: LEASE_DURATION,
        faults: Some(faults.clone()),
        ..OperatorOptions::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_its_lease_cancels_its_reconciles_and_writes_nothing_more() {
    let env = Env::start("e2e-leader-lost", EnvOptions::default())
        .await
        .unwrap();
    let faults = Arc::new(Faults::default());
    let a = replica_with(&env, "replica-a", &faults);
    wait_for(takeover_deadline(&env), || async {
        a.leading().then_some(())
    })
    .await
    .expect("the replica leads");
    let mut app = env.sample("minimal.yaml").unwrap();
    env.apply_app(&app).await.unwrap();
    env.wait_condition("hello", "Ready", "True", converge_timeout(env.real()))
        .await
        .unwrap();

    // A change whose reconcile is in flight, its Deployment write held in the client (a slow
    // API server).
    faults.set_held(Some("deployments"));
    app["spec"]["services"][0]["replicas"] = json!(2);
    env.apply_app(&app).await.unwrap();
    wait_for(converge_timeout(env.real()), || async {
        (faults.held_now() > 0).then_some(())
    })
    .await
    .expect("the reconcile of the change writes the Deployment");

    // Another replica takes the Lease over (as after this one missed its renewals).
    let leases = Api::<Lease>::namespaced(env.client.clone(), &env.namespace);
    let now = k8s_openapi::jiff::Timestamp::now();
    let taken = json!({"spec": {
        "holderIdentity": "replica-elsewhere",
        "acquireTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(now),
        "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(now),
        "leaseDurationSeconds": 3600,
    }});
    leases
        .patch(LEASE, &PatchParams::default(), &Patch::Merge(&taken))
        .await
        .unwrap();

    // It notices at its next renewal and stops at once: the held write is given up, not
    // finished.
    wait_for(takeover_deadline(&env), || async {
        (!a.leading() && faults.held_now() == 0).then_some(())
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the replica that lost its lease still leads ({}) or still waits to write ({} held)",
            a.leading(),
            faults.held_now()
        )
    });
    let ended = a.stop().await;
    let error = ended.expect_err("a lost lease ends the run with an error");
    assert!(
        error.to_string().contains("lost the leader lease"),
        "{error}"
    );

    // Nothing it had in flight reaches the server, even once writes would go through.
    faults.set_held(None);
    assert_eq!(
        faults.sent_after_hold(),
        0,
        "a held write was sent after all"
    );
    let d = env
        .dynamic("apps", "v1", "Deployment", "deployments")
        .get("hello-web")
        .await
        .unwrap();
    assert_eq!(
        d.data["spec"]["replicas"], 1,
        "the old leader wrote the change"
    );
    env.cleanup().await;
}

/// What the operators of this test process log, from the moment it is first asked for.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .try_init();
        logs
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The ERROR lines logged so far that contain `text`.
fn logged_errors(logs: &Mutex<Vec<u8>>, text: &str) -> Vec<String> {
    String::from_utf8_lossy(&logs.lock().unwrap())
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains(text))
        .map(str::to_string)
        .collect()
}

/// Wait until the operator is not ready for a reason containing every one of `words`.
async fn not_ready_because(op: &Operator, words: &[&str], timeout: Duration) -> String {
    let last = Mutex::new(Ok(()));
    let found = wait_for(timeout, || async {
        let r = op.admin.readiness();
        *last.lock().unwrap() = r.clone();
        r.err().filter(|why| words.iter().all(|w| why.contains(w)))
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "never not ready for a reason naming {words:?}; last readiness: {:?}",
            last.lock().unwrap()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_may_not_watch_a_kind_says_so_in_its_log_and_readiness() {
    let logs = captured_logs();
    let env = Env::start("e2e-forbidden", EnvOptions::default())
        .await
        .unwrap();
    let faults = Arc::new(Faults::default());
    faults.set_forbidden(Some("deployments"));
    let op = replica_with(&env, "replica-a", &faults);
    let why = not_ready_because(
        &op,
        &["cannot watch Deployment", "deployments.apps is forbidden"],
        takeover_deadline(&env),
    )
    .await;
    assert!(!why.contains("Some(") && !why.contains("Status {"), "{why}");
    let lines = wait_for(takeover_deadline(&env), || async {
        let l = logged_errors(&logs, "deployments.apps is forbidden");
        (!l.is_empty()).then_some(l)
    })
    .await
    .expect("an ERROR line names the refused watch");
    assert!(lines[0].contains("cannot start"), "{lines:?}");

    // Granted, it starts and reconciles.
    faults.set_forbidden(None);
    wait_for(converge_timeout(env.real()), || async {
        op.admin.readiness().ok()
    })
    .await
    .expect("ready once the watch may list");
    env.apply_app(&env.sample("minimal.yaml").unwrap())
        .await
        .unwrap();
    env.wait_condition("hello", "Ready", "True", converge_timeout(env.real()))
        .await
        .unwrap();
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_may_not_watch_applications_says_so_and_still_shuts_down() {
    let env = Env::start("e2e-forbidden-apps", EnvOptions::default())
        .await
        .unwrap();
    let faults = Arc::new(Faults::default());
    faults.set_forbidden(Some("applications"));
    let op = replica_with(&env, "replica-a", &faults);
    not_ready_because(
        &op,
        &[
            "cannot watch Application",
            "applications.keelson.dev is forbidden",
        ],
        takeover_deadline(&env),
    )
    .await;
    // Its controller never listed an Application: a graceful stop has nothing to wait for.
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    real_cluster,
    ignore = "removes Keelson's CRD, which a real cluster shares with every other test"
)]
async fn a_replica_without_keelsons_crd_says_so_in_its_readiness() {
    let env = Env::start("e2e-no-crd", EnvOptions::default())
        .await
        .unwrap();
    Api::<CustomResourceDefinition>::all(env.client.clone())
        .delete("applications.keelson.dev", &DeleteParams::default())
        .await
        .unwrap();
    let op = replica(&env, "replica-a");
    let why = not_ready_because(
        &op,
        &["cannot watch Application", "404"],
        takeover_deadline(&env),
    )
    .await;
    assert!(!why.contains("Some(") && !why.contains("Status {"), "{why}");
    op.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_its_lease_stops_leading_and_a_standby_takes_over() {
    let env = Env::start("e2e-leader-unrenewed", EnvOptions::default())
        .await
        .unwrap();
    let faults = Arc::new(Faults::default());
    let a = replica_with(&env, "replica-a", &faults);
    wait_for(takeover_deadline(&env), || async {
        a.leading().then_some(())
    })
    .await
    .expect("the replica leads");
    let b = replica(&env, "replica-b");
    // The leader may no longer read or renew its Lease (as when its requests fail): its
    // election keeps retrying, but once its last renewal is a lease duration old, another
    // replica may take over, so it stops.
    faults.set_forbidden(Some("leases"));
    wait_for(takeover_deadline(&env), || async {
        (!a.leading()).then_some(())
    })
    .await
    .expect("the leader whose renewals fail stops leading");
    let error = a
        .stop()
        .await
        .expect_err("a lost lease ends the run with an error");
    assert!(
        error.to_string().contains("lost the leader lease"),
        "{error}"
    );
    wait_for(takeover_deadline(&env), || async {
        b.leading().then_some(())
    })
    .await
    .expect("the standby takes over");
    b.stop().await.unwrap();
    env.cleanup().await;
}
