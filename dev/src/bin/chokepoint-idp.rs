//! `chokepoint-idp`: a mock identity provider serving a JWKS file at /jwks.json.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

/// Serve a JWKS from a file (re-read per request) at /jwks.json; fetch count at /__idp/stats.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The JWKS document to serve; missing file = 503.
    #[arg(long)]
    jwks_file: PathBuf,
    /// Write the bound address here once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("chokepoint-idp: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    if let (Some(path), Ok(addr)) = (&args.addr_file, listener.local_addr()) {
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, addr.to_string())
            .and_then(|()| std::fs::rename(&tmp, path))
            .is_err()
        {
            eprintln!("chokepoint-idp: cannot write {}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let shutdown = async {
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
    };
    match chokepoint_dev::idp::serve(listener, args.jwks_file, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chokepoint-idp: {e}");
            ExitCode::FAILURE
        }
    }
}
