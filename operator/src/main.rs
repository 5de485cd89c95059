//! The `keelson` command: the controller, and the offline tools around it.

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// jemalloc rather than the C library's allocator: it gives the memory of a start-up's lists back
/// instead of keeping their peak in per-thread arenas (the glibc build), and it is the same
/// allocator in the static musl image, whose own malloc is slow under many threads. Measured with
/// the scale benchmark at 1,000 Applications: peak 67 MiB against 78 MiB with glibc's malloc, and
/// 74 MiB against 143 MiB on a restart.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (read before `main`; `_RJEM_MALLOC_CONF` in the environment overrides
/// them): two arenas rather than four per CPU, and freed pages given back to the system after
/// 1 s rather than 10 s, so the resident memory follows what the controller holds instead of
/// the transient buffers of a busy minute (JSON bodies, list pages). Measured with the scale
/// benchmark at 10,000 Applications (see the README's Performance section).
#[cfg(not(target_env = "msvc"))]
#[unsafe(export_name = "_rjem_malloc_conf")]
#[allow(non_upper_case_globals)]
pub static malloc_conf: &[u8; 30] = b"narenas:2,dirty_decay_ms:1000\0";

#[derive(Parser)]
#[command(
    name = "keelson",
    version,
    about = "Run a whole application stack on Kubernetes from one Application resource"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster of the in-cluster config or KUBECONFIG.
    Run(keelson::runtime::RunArgs),
    /// Print, offline, the exact objects the controller would apply for an Application.
    Render {
        /// The Application YAML (`-` for standard input).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// The namespace to render into, as `kubectl apply -n`: for documents without
        /// `metadata.namespace` (a document naming another one is refused). Default: the
        /// document's own, else `default`.
        #[arg(short = 'n', long = "namespace")]
        namespace: Option<String>,
        /// Assume the cluster does not serve monitoring.coreos.com/v1 (ServiceMonitors are skipped).
        #[arg(long)]
        no_service_monitors: bool,
        /// Assume the cluster does not serve gateway.networking.k8s.io/v1 (HTTPRoutes are skipped).
        #[arg(long)]
        no_http_routes: bool,
    },
    /// Print the Application CustomResourceDefinition.
    Crd {
        /// Print it as the Helm chart's template (installed unless crds.install=false, kept on
        /// uninstall while crds.keep=true).
        #[arg(long)]
        chart: bool,
    },
    /// Print the RBAC rules the controller needs, as JSON.
    Rbac,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => match keelson::runtime::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("keelson: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Render {
            file,
            namespace,
            no_service_monitors,
            no_http_routes,
        } => {
            let caps = keelson::build::ApiCapabilities {
                service_monitors: !no_service_monitors,
                http_routes: !no_http_routes,
            };
            let input = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&file)
            };
            let input = match input {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("keelson: cannot read {}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            match keelson::render::render_in(&input, namespace.as_deref(), caps) {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("keelson: {}: {e}", file.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Crd { chart } => {
            let out = if chart {
                keelson::render::crd_chart_template()
            } else {
                keelson::render::crd_yaml()
            };
            print!("{out}");
            ExitCode::SUCCESS
        }
        Command::Rbac => {
            let rules = keelson::controller::rbac::required_rules();
            let mut out = std::io::stdout();
            serde_json::to_writer_pretty(&mut out, &rules).expect("stdout");
            let _ = writeln!(out);
            ExitCode::SUCCESS
        }
    }
}
