//! `chokepoint-idp`: a mock identity provider serving a JWKS at /jwks.json and, given a
//! signing key, an OAuth 2.0 token service (device authorization, refresh token and client
//! credentials grants) issuing JWTs signed with it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chokepoint_dev::devtoken::{DevKey, DEFAULT_AUDIENCE, DEFAULT_ISSUER};
use chokepoint_dev::idp::oauth::{self, OAuth, Settings};
use chokepoint_dev::idp::Jwks;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

/// Serve a JWKS at /jwks.json (fetch count at /__idp/stats) and, with --signing-key, the
/// token endpoint (POST /oauth/token) and device authorization endpoint (POST
/// /oauth/device); a test approves device codes at POST /__idp/device/approve.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The JWKS document to serve (re-read per request; missing file = 503). Default: the
    /// signing key's.
    #[arg(long, required_unless_present = "signing_key")]
    jwks_file: Option<PathBuf>,
    /// A dev key file (chokepoint-token's format): sign access tokens with it.
    #[arg(long, requires = "clients")]
    signing_key: Option<PathBuf>,
    /// The registered clients, `{"clients": [{"client_id", "client_secret"?, "subject"?,
    /// "tenant"?, "groups"?}]}`: a client with a secret gets the client credentials grant.
    #[arg(long)]
    clients: Option<PathBuf>,
    /// The tokens' issuer (`iss`).
    #[arg(long, default_value = DEFAULT_ISSUER)]
    issuer: String,
    /// The tokens' audience (`aud`).
    #[arg(long, default_value = DEFAULT_AUDIENCE)]
    audience: String,
    /// Access token lifetime.
    #[arg(long, default_value_t = 3600)]
    token_ttl_secs: u64,
    /// How long a device code waits for approval.
    #[arg(long, default_value_t = 600)]
    device_ttl_secs: u64,
    /// The polling interval the device endpoint asks for.
    #[arg(long, default_value_t = 5)]
    device_interval_secs: u64,
    /// Write the bound address here once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let (jwks, oauth) = match setup(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chokepoint-idp: {e}");
            return ExitCode::FAILURE;
        }
    };
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
    match chokepoint_dev::idp::serve(listener, jwks, oauth, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chokepoint-idp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn setup(args: &Args) -> Result<(Jwks, Option<OAuth>), String> {
    let Some(key_path) = &args.signing_key else {
        let file = args
            .jwks_file
            .clone()
            .ok_or("--jwks-file or --signing-key")?;
        return Ok((Jwks::File(file), None));
    };
    let key = DevKey::load(key_path).map_err(|e| e.to_string())?;
    let clients = oauth::load_clients(args.clients.as_deref().ok_or("--clients")?)?;
    let jwks = match &args.jwks_file {
        Some(file) => Jwks::File(file.clone()),
        None => Jwks::Inline(key.jwks_json()),
    };
    let oauth = OAuth::new(Settings {
        key,
        issuer: args.issuer.clone(),
        audience: args.audience.clone(),
        clients,
        token_ttl: Duration::from_secs(args.token_ttl_secs),
        device_ttl: Duration::from_secs(args.device_ttl_secs),
        device_interval: Duration::from_secs(args.device_interval_secs),
    });
    Ok((jwks, Some(oauth)))
}
