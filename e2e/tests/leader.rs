//! Leader election: two operator replicas on one Lease; exactly one reconciles, and when it
//! stops (or dies) the other takes over.

use std::time::Duration;

use e2e::harness::{Env, EnvOptions, Operator, OperatorOptions, converge_timeout, wait_for};
use serde_json::json;

fn replica(env: &Env, identity: &str) -> Operator {
    env.start_operator(OperatorOptions {
        lease: Some(("keelson-leader".into(), identity.into())),
        lease_duration: Duration::from_secs(3),
        ..OperatorOptions::default()
    })
}

fn reconciles(op: &Operator) -> u64 {
    let text = op.metrics.encode();
    text.lines()
        .filter(|l| l.starts_with("keelson_reconciles_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_a_standby_takes_over() {
    let env = Env::start("e2e-leader", EnvOptions::default())
        .await
        .unwrap();
    let a = replica(&env, "replica-a");
    let b = replica(&env, "replica-b");
    let a_leads = wait_for(Duration::from_secs(20), || async {
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
    assert!(reconciles(&leader) > 0, "the leader reconciles");
    assert_eq!(reconciles(&standby), 0, "the standby never reconciles");
    assert!(!standby.leading());

    // A graceful stop releases the lease: the standby takes over and reconciles.
    leader.stop().await.unwrap();
    wait_for(Duration::from_secs(10), || async {
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
    assert!(reconciles(&standby) > 0);
    standby.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leader_is_replaced_within_the_lease_duration() {
    let env = Env::start("e2e-leader-dies", EnvOptions::default())
        .await
        .unwrap();
    let a = replica(&env, "replica-a");
    wait_for(Duration::from_secs(20), || async {
        a.leading().then_some(())
    })
    .await
    .unwrap();
    let b = replica(&env, "replica-b");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!b.leading(), "the lease is held");
    a.kill(); // no release: the lease must expire
    let started = std::time::Instant::now();
    wait_for(Duration::from_secs(15), || async {
        b.leading().then_some(())
    })
    .await
    .expect("the standby takes over once the lease expires");
    // Lease duration 3 s plus the standby's retry interval.
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "took {:?}",
        started.elapsed()
    );
    b.stop().await.unwrap();
    env.cleanup().await;
}
