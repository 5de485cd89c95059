//! The benchmark's command-line options.

use std::{path::PathBuf, time::Duration};

use clap::Parser;
use e2e::harness::repo_root;

/// Keelson's scale benchmark.
///
/// Runs the keelson binary as a separate process (`keelson run --leader-elect=false`) against
/// the in-process API server stand-in, or against a real cluster when KEELSON_E2E_KUBECONFIG or
/// KUBECONFIG names one. For each N it creates one namespace with N copies of
/// samples/shop.yaml (shop-0 .. shop-<N-1>) and reports:
///
///   converge    seconds from the first apply until every Application is Ready for its
///               generation (in-process also: how long the API server was busy, i.e. held its
///               state lock); on a real cluster until every Application has a status for its
///               generation (every child written), and Ready separately when it comes
///   baseline    seconds for a bare client to server-side apply the same Applications and their
///               rendered children and see the workloads available (in-process, on a fresh
///               API server) or, on a real cluster, in a second namespace of the same cluster,
///               until every Application's status is observed
///   resync      API requests, writes and reconciles during one full no-op resync
///   drift       time to restore a hand-edited Deployment image: p50, p99, max
///   operator    peak RSS (VmHWM) and CPU seconds of the operator process
///   pod reasons in-process only: the stand-in runs Pods; K Applications get one service's
///               image from an unresolvable registry; seconds until each one's Ready
///               condition names the pods' reason (ImagePullBackOff or ErrImagePull), API
///               requests per minute while they stay stuck, the operator's peak RSS before and
///               after; then the images are put back
///   restart     a second operator process started on the converged state: time until every
///               Application was reconciled, API requests and writes, its peak RSS
///
/// as a table on stdout and, with --json, as JSON.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "bench",
    override_usage = "cargo run --release -p e2e --bin bench -- [OPTIONS]",
    verbatim_doc_comment
)]
pub struct Opts {
    /// Comma-separated Application counts.
    #[arg(long, value_delimiter = ',', default_value = "100,1000",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub apps: Vec<u64>,

    /// Also write the results as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Hand edits for the drift figure.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub drift_edits: usize,

    /// The operator binary, built beforehand with `cargo build --release -p keelson`
    /// [default: $CARGO_TARGET_DIR/release/keelson, else target/release/keelson in the
    /// workspace].
    #[arg(long, value_name = "PATH")]
    keelson_bin: Option<PathBuf>,

    /// The operator's --concurrency and the clients' parallel requests.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    concurrency: u16,

    /// The operator's --resync-seconds [default: max(20, 0.12 x N), so that no periodic resync
    /// falls into the convergence].
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(5..))]
    pub resync_seconds: Option<u64>,

    /// Set an environment variable of the operator process (repeatable), e.g. MALLOC_ARENA_MAX=2.
    #[arg(long, value_name = "K=V", value_parser = key_value)]
    pub operator_env: Vec<(String, String)>,

    /// How long the stand-in takes to report a workload available, in milliseconds.
    #[arg(long = "ready-delay-ms", value_name = "MS", default_value_t = 50)]
    ready_delay_ms: u64,

    /// Measure convergence and the baseline K times each, in turn, each on a fresh API server
    /// (real cluster: in fresh namespaces), and compare their medians; the two share the
    /// machine's cores, so single runs vary by 10 % or more [default: 5 in-process, 1 on a real
    /// cluster].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u8).range(1..=20))]
    rounds: Option<u8>,

    /// Real cluster: how long to wait for every Application to be Ready (and the baseline's
    /// workloads available) after everything was written, in seconds; Ready is reported when
    /// it comes, and its absence is no failure (a cluster without nodes never gets there).
    #[arg(long, value_name = "S", default_value_t = 300)]
    ready_timeout_seconds: u64,

    /// In-process: during each convergence, print every second how many Applications have a
    /// status for their generation and how many are Ready.
    #[arg(long)]
    pub timeline: bool,

    /// Applications whose pods are made to fail pulling their image in the pod-reasons phase
    /// (in-process only; 0 skips it) [default: 10 % of N, at least 1].
    #[arg(long, value_name = "K")]
    stuck_apps: Option<usize>,

    /// Only the convergence and baseline rounds (no resync, drift or restart); the operator
    /// figures are those of the first round.
    #[arg(long)]
    pub converge_only: bool,
}

impl Opts {
    /// The Application counts.
    pub fn apps(&self) -> impl Iterator<Item = usize> + '_ {
        self.apps.iter().map(|&n| n as usize)
    }

    /// The operator binary to run.
    pub fn keelson_bin(&self) -> PathBuf {
        self.keelson_bin.clone().unwrap_or_else(|| {
            match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
                Some(dir) => PathBuf::from(dir).join("release").join("keelson"),
                None => repo_root().join("target").join("release").join("keelson"),
            }
        })
    }

    /// The operator's concurrency, and the clients' parallel requests.
    pub fn concurrency(&self) -> usize {
        usize::from(self.concurrency)
    }

    /// The stand-in's delay before a workload is available.
    pub fn ready_delay(&self) -> Duration {
        Duration::from_millis(self.ready_delay_ms)
    }

    /// Rounds of convergence and baseline.
    pub fn rounds(&self, real: bool) -> usize {
        usize::from(self.rounds.unwrap_or(if real { 1 } else { 5 }))
    }

    /// Real cluster: how long to wait for Ready after everything was written.
    pub fn ready_timeout(&self) -> Duration {
        Duration::from_secs(self.ready_timeout_seconds)
    }

    /// How many of N Applications the pod-reasons phase makes stuck.
    pub fn stuck_apps_for(&self, n: usize) -> usize {
        self.stuck_apps.unwrap_or_else(|| n.div_ceil(10)).min(n)
    }

    /// The operator's resync period for N Applications, in seconds.
    pub fn resync_for(&self, n: usize) -> u64 {
        self.resync_seconds
            .unwrap_or_else(|| ((n as f64 * 0.12).ceil() as u64).max(20))
    }
}

/// `KEY=VALUE`.
fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_as_before() {
        let o = Opts::try_parse_from([
            "bench",
            "--apps",
            "10,20",
            "--rounds=3",
            "--operator-env",
            "MALLOC_ARENA_MAX=2",
            "--converge-only",
            "--stuck-apps=25",
        ])
        .unwrap();
        assert_eq!(o.apps().collect::<Vec<_>>(), [10, 20]);
        assert_eq!(o.rounds(false), 3);
        assert_eq!(o.operator_env, [("MALLOC_ARENA_MAX".into(), "2".into())]);
        assert!(o.converge_only && !o.timeline);
        assert_eq!(o.concurrency(), 16);
        assert_eq!(o.resync_for(1000), 120);
        assert_eq!(o.resync_for(100), 20);
        assert_eq!((o.stuck_apps_for(1000), o.stuck_apps_for(10)), (25, 10));

        let d = Opts::try_parse_from(["bench"]).unwrap();
        assert_eq!(d.apps().collect::<Vec<_>>(), [100, 1000]);
        assert_eq!((d.rounds(false), d.rounds(true)), (5, 1));
        assert_eq!(d.drift_edits, 200);
        assert_eq!(d.ready_delay(), Duration::from_millis(50));
        assert_eq!(
            [1, 5, 100, 1000].map(|n| d.stuck_apps_for(n)),
            [1, 1, 10, 100]
        );

        for bad in [
            &["bench", "--apps", "0"][..],
            &["bench", "--concurrency", "0"],
            &["bench", "--operator-env", "NOEQUALS"],
            &["bench", "--rounds", "21"],
        ] {
            assert!(Opts::try_parse_from(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
