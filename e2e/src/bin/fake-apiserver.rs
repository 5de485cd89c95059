//! Runs the in-process Kubernetes API server stand-in on its own, for manual use:
//! `cargo run -p e2e --bin fake-apiserver -- --port 8080`, then
//! `KUBECONFIG=<printed path> kubectl get ns`.

use e2e::apiserver::{ApiServer, ServerOptions};
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: fake-apiserver [--port PORT] [--kubeconfig PATH] [--no-controllers] [--ready-delay-ms MS] [--gc-delay-ms MS]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut port = 0u16;
    let mut kubeconfig = std::env::temp_dir().join("fake-apiserver.kubeconfig");
    let mut opts = ServerOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--port" => port = value().parse().unwrap_or_else(|_| usage()),
            "--kubeconfig" => kubeconfig = value().into(),
            "--no-controllers" => opts.controllers = false,
            "--ready-delay-ms" => {
                opts.workload_ready_delay =
                    Duration::from_millis(value().parse().unwrap_or_else(|_| usage()))
            }
            "--gc-delay-ms" => {
                opts.gc_delay = Duration::from_millis(value().parse().unwrap_or_else(|_| usage()))
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    let server = ApiServer::start_on(opts, port).await?;
    server.write_kubeconfig(&kubeconfig)?;
    println!("{}", server.url());
    println!("kubeconfig: {}", kubeconfig.display());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
