//! Leader election: two operator replicas on one Lease; exactly one reconciles, and when it
//! stops (or dies) the other takes over. How fast the takeover is belongs to the benchmark;
//! these tests wait for each step with generous deadlines.

use std::time::Duration;

use e2e::harness::{Env, EnvOptions, Operator, OperatorOptions, converge_timeout, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
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
#[ignore = "known bug: the replica that took over does not finish its graceful shutdown within \
            30 s (seen since the controller wiring moved to runtime/); the takeover itself passes"]
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
