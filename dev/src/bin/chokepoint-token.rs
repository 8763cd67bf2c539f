//! Mints dev JWTs for the local stack, or prints the JWKS that verifies them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chokepoint_dev::devtoken::{
    DevKey, TokenSpec, DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_KEY_PATH,
};
use clap::Parser;
use serde_json::Value;

/// Mint a dev JWT (ES256) signed with the local dev key, or print the JWKS.
///
/// The key is created on first use and kept in a git-ignored file.
/// The token alone goes to stdout, so `TOKEN=$(chokepoint-token alice)` works.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  \
    chokepoint-token alice --tenant acme --groups eng,admins\n  \
    chokepoint-token --jwks"
)]
struct Args {
    /// Token subject (`sub`), e.g. a user id.
    #[arg(required_unless_present = "jwks")]
    subject: Option<String>,
    /// Print the JWKS for the dev key instead of minting a token.
    #[arg(long, conflicts_with = "subject")]
    jwks: bool,
    /// Custom claim `tenant`.
    #[arg(long)]
    tenant: Option<String>,
    /// Custom claim `groups`, comma-separated.
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// Dev key file; created if missing.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_KEY_PATH)]
    key: PathBuf,
    /// Token issuer (`iss`).
    #[arg(long, default_value = DEFAULT_ISSUER)]
    issuer: String,
    /// Token audience (`aud`).
    #[arg(long, default_value = DEFAULT_AUDIENCE)]
    audience: String,
    /// Lifetime in seconds (`exp` - `iat`).
    #[arg(long, value_name = "N", default_value_t = 3600)]
    ttl_secs: u64,
    /// Extra claim NAME=VALUE; VALUE is parsed as JSON if it can be, else
    /// taken as a string. Repeatable. `null` removes the claim.
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    claims: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let key = match DevKey::load_or_generate_reporting(&args.key) {
        Ok((key, generated)) => {
            if generated {
                eprintln!(
                    "chokepoint-token: generated new dev key {} (kid {})",
                    args.key.display(),
                    key.kid()
                );
            }
            key
        }
        Err(e) => {
            eprintln!("chokepoint-token: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.jwks {
        println!("{}", key.jwks_json());
        return ExitCode::SUCCESS;
    }

    let subject = args.subject.expect("clap requires SUBJECT without --jwks");
    let mut spec = TokenSpec::new(subject)
        .with_issuer(args.issuer)
        .with_audience(args.audience)
        .with_groups(args.groups.into_iter().filter(|g| !g.is_empty()))
        .with_ttl(Duration::from_secs(args.ttl_secs));
    if let Some(t) = args.tenant {
        spec = spec.with_tenant(t);
    }
    for c in &args.claims {
        let Some((name, raw)) = c.split_once('=').filter(|(n, _)| !n.is_empty()) else {
            eprintln!("chokepoint-token: --claim expects NAME=VALUE, got {c:?}");
            return ExitCode::FAILURE;
        };
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::from(raw));
        spec = spec.with_claim(name, value);
    }
    println!("{}", key.mint(&spec));
    ExitCode::SUCCESS
}
