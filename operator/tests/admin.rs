//! The admin server: probes and the Prometheus metrics, scraped over HTTP.

use std::sync::Arc;

use keelson::runtime::{
    admin::{AdminState, serve},
    metrics::{KindLabel, Metrics, ResultLabel},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: keelson\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[tokio::test]
async fn probes_and_metrics_are_served() {
    let metrics = Arc::new(Metrics::new());
    let state = AdminState::new(metrics.clone());
    let (_task, addr) = serve("127.0.0.1:0".parse().unwrap(), state.clone())
        .await
        .unwrap();

    assert_eq!(get(addr, "/livez").await.0, 200);
    assert_eq!(
        get(addr, "/readyz").await.0,
        503,
        "not ready before the watches sync"
    );
    state.set_ready(true);
    assert_eq!(get(addr, "/readyz").await.0, 200);
    // Not ready says why, in words.
    state.set_not_ready("cannot watch Deployment: could not list: deployments.apps is forbidden");
    let (code, body) = get(addr, "/readyz").await;
    assert_eq!(code, 503);
    assert_eq!(
        body,
        "not ready: cannot watch Deployment: could not list: deployments.apps is forbidden\n"
    );
    state.set_ready(true);

    metrics
        .reconciles
        .get_or_create(&ResultLabel { result: "success" })
        .inc();
    metrics
        .applied
        .get_or_create(&KindLabel { kind: "Deployment" })
        .inc();
    metrics.duration.observe(0.02);
    metrics.leader.set(1);
    let (code, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    for name in [
        "keelson_reconciles_total{result=\"success\"} 1",
        "keelson_reconcile_errors_total",
        "keelson_reconcile_duration_seconds_bucket",
        "keelson_reconcile_duration_seconds_count 1",
        "keelson_children_applied_total{kind=\"Deployment\"} 1",
        "keelson_children_pruned_total",
        "keelson_drift_repairs_total",
        "keelson_leader 1",
        "keelson_status_writes_total",
        "keelson_build_info{version=",
    ] {
        assert!(body.contains(name), "missing {name} in:\n{body}");
    }
}
