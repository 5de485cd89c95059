//! The operator under test: a `keelson run` process, its admin port (`/readyz`, `/metrics`)
//! and its memory and CPU as `/proc` shows them.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::{
    client::legacy::{Client as HttpClient, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::Serialize;

use crate::measurement::{cpu_seconds, status_field};

/// The values of the `cause` label of `keelson_status_writes_total`, in the order of
/// `OpMetrics::status_writes_by_cause`.
pub const STATUS_WRITE_CAUSES: [&str; 4] = ["new", "inventory", "conditions", "progress"];

/// The operator's counters the benchmark reads, each summed over its label sets.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct OpMetrics {
    pub reconciles: f64,
    pub reconcile_errors: f64,
    pub status_writes: f64,
    /// Status writes by cause (`keelson_status_writes_total{cause}`): new, inventory,
    /// conditions, progress.
    pub status_writes_by_cause: [f64; 4],
    pub children_applied: f64,
    pub drift_repairs: f64,
    pub reconcile_seconds_sum: f64,
    pub reconcile_seconds_count: f64,
}

impl OpMetrics {
    /// Read from the Prometheus text exposition of `/metrics`.
    pub fn parse(text: &str) -> anyhow::Result<OpMetrics> {
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .context("parse the operator's /metrics")?;
        let sum = |name: &str| -> f64 {
            scrape
                .samples
                .iter()
                .filter(|s| s.metric == name)
                .filter_map(|s| match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => Some(v),
                    _ => None,
                })
                .sum()
        };
        let cause = |value: &str| -> f64 {
            scrape
                .samples
                .iter()
                .filter(|s| {
                    s.metric == "keelson_status_writes_total"
                        && s.labels.get("cause") == Some(value)
                })
                .filter_map(|s| match s.value {
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => {
                        Some(v)
                    }
                    _ => None,
                })
                .sum()
        };
        Ok(OpMetrics {
            reconciles: sum("keelson_reconciles_total"),
            reconcile_errors: sum("keelson_reconcile_errors_total"),
            status_writes: sum("keelson_status_writes_total"),
            status_writes_by_cause: STATUS_WRITE_CAUSES.map(cause),
            children_applied: sum("keelson_children_applied_total"),
            drift_repairs: sum("keelson_drift_repairs_total"),
            // A histogram's sum and count are plain samples of their own names.
            reconcile_seconds_sum: sum("keelson_reconcile_duration_seconds_sum"),
            reconcile_seconds_count: sum("keelson_reconcile_duration_seconds_count"),
        })
    }

    /// What changed since `before`.
    pub fn since(&self, before: &OpMetrics) -> OpMetrics {
        OpMetrics {
            reconciles: self.reconciles - before.reconciles,
            reconcile_errors: self.reconcile_errors - before.reconcile_errors,
            status_writes: self.status_writes - before.status_writes,
            status_writes_by_cause: std::array::from_fn(|i| {
                self.status_writes_by_cause[i] - before.status_writes_by_cause[i]
            }),
            children_applied: self.children_applied - before.children_applied,
            drift_repairs: self.drift_repairs - before.drift_repairs,
            reconcile_seconds_sum: self.reconcile_seconds_sum - before.reconcile_seconds_sum,
            reconcile_seconds_count: self.reconcile_seconds_count - before.reconcile_seconds_count,
        }
    }
}

/// The operator's memory and CPU, from `/proc`.
#[derive(Debug, Default, Serialize)]
pub struct Usage {
    pub peak_rss_mib: f64,
    pub rss_at_end_mib: f64,
    pub cpu_seconds: f64,
    pub peak_rss_after_converge_mib: f64,
    /// Of the RSS at the end: anonymous memory (the heap) and file pages (the binary's code).
    pub rss_anon_mib: f64,
    pub rss_file_mib: f64,
    pub threads: u64,
}

/// How to start an operator process.
pub struct OperatorStart<'a> {
    pub bin: &'a Path,
    pub kubeconfig: &'a Path,
    pub namespace: &'a str,
    pub resync: u64,
    pub discovery: u64,
    pub concurrency: usize,
    pub log: &'a Path,
    pub env: &'a [(String, String)],
}

impl OperatorStart<'_> {
    /// The command line of `keelson`.
    pub fn args(&self, admin: &SocketAddr) -> Vec<String> {
        vec![
            "run".into(),
            "--leader-elect=false".into(),
            format!("--admin-addr={admin}"),
            "--log-level=warn".into(),
            format!("--namespaces={}", self.namespace),
            format!("--resync-seconds={}", self.resync),
            format!("--discovery-seconds={}", self.discovery),
            format!("--concurrency={}", self.concurrency),
        ]
    }
}

/// A running operator; killed when dropped.
pub struct OperatorProcess {
    child: Child,
    pub pid: String,
    admin: SocketAddr,
    http: HttpClient<HttpConnector, Empty<Bytes>>,
    log: PathBuf,
    pub peak_rss_after_converge: f64,
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(l.local_addr()?.port())
}

impl OperatorProcess {
    pub fn start(s: &OperatorStart<'_>) -> anyhow::Result<OperatorProcess> {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let log =
            std::fs::File::create(s.log).with_context(|| format!("create {}", s.log.display()))?;
        let child = Command::new(s.bin)
            .args(s.args(&admin))
            .env("KUBECONFIG", s.kubeconfig)
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .env_remove("KEELSON_NAMESPACES")
            .env_remove("KEELSON_LEADER_ELECT")
            .env_remove("KEELSON_ADMIN_ADDR")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", s.bin.display()))?;
        Ok(OperatorProcess {
            pid: child.id().to_string(),
            child,
            admin,
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
            log: s.log.to_path_buf(),
            peak_rss_after_converge: 0.0,
        })
    }

    /// The last lines of the operator's log, for an error message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() {
            format!("(its log {} is empty)", self.log.display())
        } else {
            format!("last lines of {}:\n{tail}", self.log.display())
        }
    }

    /// Fails when the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the operator exited ({status}); {}", self.log_tail());
        }
        Ok(())
    }

    /// A GET on the admin port: the status code and the body.
    async fn get(&self, path: &str) -> anyhow::Result<(u16, Bytes)> {
        let uri = format!("http://{}{path}", self.admin);
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            let response = self.http.get(uri.parse()?).await?;
            let code = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((code, body))
        })
        .await;
        match answer {
            Ok(result) => result.with_context(|| format!("GET {uri}")),
            Err(_) => bail!("GET {uri}: no answer within 10 s"),
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if let Ok((200, _)) = self.get("/readyz").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the operator's /readyz on {} did not answer 200 within {timeout:?}; {}",
                    self.admin,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The operator's counters now.
    pub async fn metrics(&mut self) -> anyhow::Result<OpMetrics> {
        self.check_alive()?;
        let (code, body) = self.get("/metrics").await?;
        if code != 200 {
            bail!("GET /metrics answered {code}");
        }
        OpMetrics::parse(&String::from_utf8_lossy(&body))
    }

    /// CPU seconds so far.
    pub fn cpu(&self) -> f64 {
        cpu_seconds(&self.pid).unwrap_or(f64::NAN)
    }

    /// Memory and CPU so far.
    pub fn usage(&self) -> anyhow::Result<Usage> {
        Ok(Usage {
            peak_rss_mib: status_field(&self.pid, "VmHWM")?,
            rss_at_end_mib: status_field(&self.pid, "VmRSS")?,
            cpu_seconds: cpu_seconds(&self.pid)?,
            peak_rss_after_converge_mib: self.peak_rss_after_converge,
            rss_anon_mib: status_field(&self.pid, "RssAnon")?,
            rss_file_mib: status_field(&self.pid, "RssFile")?,
            threads: status_field(&self.pid, "Threads")? as u64,
        })
    }

    /// SIGTERM, then SIGKILL (on drop) after 15 s.
    pub async fn stop(mut self) {
        if let Ok(pid) = self.pid.parse::<i32>() {
            // SAFETY: kill has no memory-safety preconditions; pid is our own child.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("bench: the operator did not stop within 15 s of SIGTERM; killing it");
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of the operator's exposition (OpenMetrics text from `prometheus-client`).
    const EXPOSITION: &str = r#"# HELP keelson_reconciles Reconciles by result.
# TYPE keelson_reconciles counter
keelson_reconciles_total{result="ok"} 120
keelson_reconciles_total{result="error"} 3
# HELP keelson_drift_repairs Drift repairs.
# TYPE keelson_drift_repairs counter
keelson_drift_repairs_total{kind="Deployment"} 7
keelson_drift_repairs_total{kind="Service"} 1
# HELP keelson_reconcile_duration_seconds Reconcile duration.
# TYPE keelson_reconcile_duration_seconds histogram
keelson_reconcile_duration_seconds_sum 2.5
keelson_reconcile_duration_seconds_count 123
keelson_reconcile_duration_seconds_bucket{le="0.1"} 100
keelson_reconcile_duration_seconds_bucket{le="+Inf"} 123
# EOF
"#;

    #[test]
    fn metrics_are_summed_over_label_sets() {
        let m = OpMetrics::parse(EXPOSITION).unwrap();
        assert_eq!(m.reconciles, 123.0);
        assert_eq!(m.drift_repairs, 8.0);
        assert_eq!(m.reconcile_seconds_sum, 2.5);
        assert_eq!(m.reconcile_seconds_count, 123.0);
        assert_eq!(m.status_writes, 0.0);
        let later = OpMetrics {
            reconciles: 150.0,
            ..m
        };
        assert_eq!(later.since(&m).reconciles, 27.0);
    }

    /// The names the benchmark reads are the ones the operator exports.
    #[test]
    fn the_operators_own_exposition_is_read() {
        use keelson::{
            controller::status::WriteCause,
            runtime::metrics::{KindLabel, Metrics, ResultLabel},
        };
        let labels: Vec<&str> = WriteCause::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(labels, STATUS_WRITE_CAUSES);
        let m = Metrics::new();
        m.reconciles
            .get_or_create(&ResultLabel { result: "success" })
            .inc_by(3);
        m.reconciles
            .get_or_create(&ResultLabel { result: "error" })
            .inc();
        m.drift_repairs
            .get_or_create(&KindLabel { kind: "Deployment" })
            .inc_by(2);
        m.applied
            .get_or_create(&KindLabel { kind: "Service" })
            .inc_by(5);
        m.count_status_write(WriteCause::New);
        m.count_status_write(WriteCause::Progress);
        m.count_status_write(WriteCause::Progress);
        m.duration.observe(0.25);
        m.duration.observe(0.5);
        let read = OpMetrics::parse(&m.encode()).unwrap();
        assert_eq!(read.reconciles, 4.0);
        assert_eq!(read.drift_repairs, 2.0);
        assert_eq!(read.children_applied, 5.0);
        assert_eq!(read.status_writes, 3.0);
        assert_eq!(read.status_writes_by_cause, [1.0, 0.0, 0.0, 2.0]);
        assert_eq!(read.reconcile_seconds_sum, 0.75);
        assert_eq!(read.reconcile_seconds_count, 2.0);
    }
}
