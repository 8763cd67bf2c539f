//! `chokepoint-login`: prints a fresh company JWT for the gateway, and nothing else, on
//! stdout, for Claude Code's `apiKeyHelper` and wrappers around the other tools.
//!
//! The token comes from the company identity provider over standard OAuth 2.0: the device
//! authorization grant (RFC 8628) for a person's first login, the refresh token grant
//! afterwards, the client credentials grant (RFC 6749 §4.4) for CI and robots. It is kept
//! in a 0600 cache file and printed again until shortly before it expires.

mod cache;
mod oauth;

use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clap::{Parser, Subcommand};

use cache::Cached;
use oauth::Failure;

/// Print a fresh company JWT on stdout (the default command), signing in with the
/// identity provider as needed.
///
/// A person signs in once with `chokepoint-login login` (the device flow: open the page
/// it names, enter the code); later runs reuse the cached token until shortly before it
/// expires, then refresh it. With a client secret (CI, robots) each new token comes from
/// the client credentials grant. The secret is read from a file or the
/// CHOKEPOINT_LOGIN_CLIENT_SECRET variable, never from the command line.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  \
    chokepoint-login login\n  \
    chokepoint-login            # for Claude Code's apiKeyHelper\n  \
    chokepoint-login exec --env GEMINI_API_KEY -- gemini -p 'hello'"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Print a fresh token (the default).
    Token,
    /// Sign in with the device flow, even when a token is cached.
    Login,
    /// Run a command with a fresh token in environment variables.
    Exec {
        /// A variable to set to the token (repeatable), e.g. GEMINI_API_KEY.
        #[arg(long = "env", value_name = "NAME", required = true)]
        vars: Vec<String>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Forget the cached token and refresh token.
    Logout,
}

#[derive(clap::Args)]
struct Config {
    /// The identity provider's token endpoint.
    #[arg(long, env = "CHOKEPOINT_LOGIN_TOKEN_URL", global = true)]
    token_url: Option<String>,
    /// Its device authorization endpoint (for `login`).
    #[arg(long, env = "CHOKEPOINT_LOGIN_DEVICE_URL", global = true)]
    device_url: Option<String>,
    /// The OAuth client id registered for the gateway's users (or the robot).
    #[arg(long, env = "CHOKEPOINT_LOGIN_CLIENT_ID", global = true)]
    client_id: Option<String>,
    /// A file holding the client secret: use the client credentials grant. The secret may
    /// also come from CHOKEPOINT_LOGIN_CLIENT_SECRET.
    #[arg(long, env = "CHOKEPOINT_LOGIN_CLIENT_SECRET_FILE", global = true)]
    client_secret_file: Option<PathBuf>,
    /// Scopes to ask for, space-separated (e.g. "openid offline_access").
    #[arg(long, env = "CHOKEPOINT_LOGIN_SCOPE", global = true)]
    scope: Option<String>,
    /// Get a new token when the cached one has less than this left.
    #[arg(
        long,
        env = "CHOKEPOINT_LOGIN_MARGIN_SECS",
        default_value_t = 120,
        global = true
    )]
    margin_secs: u64,
    /// The token cache (default: $XDG_CACHE_HOME/chokepoint/<client id>.json).
    #[arg(long, env = "CHOKEPOINT_LOGIN_CACHE", global = true)]
    cache_file: Option<PathBuf>,
    /// Each request to the identity provider, at most.
    #[arg(
        long,
        env = "CHOKEPOINT_LOGIN_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    timeout_secs: u64,
    /// PEM certificates to trust for the identity provider instead of the public roots.
    #[arg(long, env = "CHOKEPOINT_LOGIN_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// Allow http:// endpoints (a local test identity provider; never a real one).
    #[arg(long, env = "CHOKEPOINT_LOGIN_ALLOW_HTTP", global = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    allow_http: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chokepoint-login: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitCode, String> {
    let session = Session::new(&args.config)?;
    match args.command.unwrap_or(Command::Token) {
        Command::Token => {
            println!("{}", session.token(false)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Login => {
            session.token(true)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec { vars, command } => {
            let token = session.token(false)?;
            let (program, rest) = command.split_first().ok_or("exec: no command")?;
            let mut cmd = std::process::Command::new(program);
            cmd.args(rest);
            for v in &vars {
                cmd.env(v, &token);
            }
            // Only returns on failure.
            let e = cmd.exec();
            Err(format!("exec {program}: {e}"))
        }
        Command::Logout => {
            let _lock = cache::lock(&session.cache_path)?;
            if cache::remove(&session.cache_path)? {
                eprintln!(
                    "chokepoint-login: forgot the tokens in {}",
                    session.cache_path.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

struct Session {
    client: oauth::Client,
    device_url: Option<String>,
    cache_path: PathBuf,
    margin: u64,
}

impl Session {
    fn new(c: &Config) -> Result<Self, String> {
        let token_url = c
            .token_url
            .clone()
            .ok_or("no token endpoint: --token-url or CHOKEPOINT_LOGIN_TOKEN_URL")?;
        let client_id = c
            .client_id
            .clone()
            .ok_or("no client id: --client-id or CHOKEPOINT_LOGIN_CLIENT_ID")?;
        for url in std::iter::once(&token_url).chain(c.device_url.as_ref()) {
            check_url(url, c.allow_http)?;
        }
        let secret = match &c.client_secret_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("client secret file {}: {e}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            None => std::env::var("CHOKEPOINT_LOGIN_CLIENT_SECRET").ok(),
        }
        .filter(|s| !s.is_empty());
        let ca_pem = match &c.ca_file {
            Some(path) => Some(
                std::fs::read(path).map_err(|e| format!("--ca-file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let cache_path = match &c.cache_file {
            Some(p) => p.clone(),
            None => cache::default_path(&client_id)?,
        };
        let client = oauth::Client::new(
            token_url,
            client_id,
            secret,
            c.scope.clone(),
            Duration::from_secs(c.timeout_secs.max(1)),
            ca_pem,
        )?;
        Ok(Self {
            client,
            device_url: c.device_url.clone(),
            cache_path,
            margin: c.margin_secs,
        })
    }

    /// A token valid for more than the margin: the cached one, else a new one (client
    /// credentials, else the refresh token, else the device flow when a person is at the
    /// terminal). `login` goes straight to the device flow.
    fn token(&self, login: bool) -> Result<String, String> {
        let _lock = cache::lock(&self.cache_path)?;
        if login {
            return self.device_login().map(|c| c.access_token);
        }
        let now = unix_now();
        let cached = cache::load(
            &self.cache_path,
            &self.client.token_url,
            &self.client.client_id,
        );
        if let Some(c) = cached.as_ref().filter(|c| c.expires_at > now + self.margin) {
            return Ok(c.access_token.clone());
        }
        let fresh = if self.client.has_secret() {
            self.store(self.client.client_credentials(), None)
        } else if let Some(refresh) = cached.as_ref().and_then(|c| c.refresh_token.clone()) {
            match self.client.refresh(&refresh) {
                // The sign-in is over (revoked, expired): sign in again.
                Err(Failure::Refused { code, description }) if code == "invalid_grant" => {
                    cache::remove(&self.cache_path)?;
                    let why = format!("the sign-in has ended ({description})");
                    if self.device_url.is_some() && std::io::stderr().is_terminal() {
                        eprintln!("chokepoint-login: {why}; signing in again");
                        return self.device_login().map(|c| c.access_token);
                    }
                    return Err(format!("{why}: run `chokepoint-login login`"));
                }
                other => self.store(other, Some(refresh)),
            }
        } else if self.device_url.is_some() && std::io::stderr().is_terminal() {
            return self.device_login().map(|c| c.access_token);
        } else {
            return Err("not signed in: run `chokepoint-login login`".into());
        };
        match fresh {
            Ok(c) => Ok(c.access_token),
            // The identity provider is away but the cached token has not expired: use it.
            Err(e) => match cached.filter(|c| c.expires_at > now) {
                Some(c) => {
                    eprintln!(
                        "chokepoint-login: {e}; using the cached token, valid {} s more",
                        c.expires_at - now
                    );
                    Ok(c.access_token)
                }
                None => Err(e),
            },
        }
    }

    /// Caches what a token request returned; a refresh response without a refresh token
    /// keeps the one it was made with (RFC 6749 §6).
    fn store(
        &self,
        got: Result<oauth::Tokens, Failure>,
        refresh: Option<String>,
    ) -> Result<Cached, String> {
        let tokens = got.map_err(|e| e.to_string())?;
        let cached = Cached {
            token_url: self.client.token_url.clone(),
            client_id: self.client.client_id.clone(),
            expires_at: expiry(&tokens.access_token, tokens.expires_in, unix_now()),
            refresh_token: tokens.refresh_token.or(refresh),
            access_token: tokens.access_token,
        };
        cache::save(&self.cache_path, &cached)?;
        Ok(cached)
    }

    /// RFC 8628: show the user code and where to enter it (stderr), then poll the token
    /// endpoint at the interval asked for until the person approves, denies or the code
    /// expires.
    fn device_login(&self) -> Result<Cached, String> {
        let device_url = self.device_url.as_deref().ok_or(
            "no device authorization endpoint: --device-url or CHOKEPOINT_LOGIN_DEVICE_URL",
        )?;
        let auth = self
            .client
            .device_authorization(device_url)
            .map_err(|e| e.to_string())?;
        eprintln!(
            "chokepoint-login: to sign in, open {} and enter the code {}",
            auth.verification_uri, auth.user_code
        );
        if let Some(complete) = &auth.verification_uri_complete {
            eprintln!("chokepoint-login: (or open {complete})");
        }
        // §3.2: 5 seconds when the server names no interval.
        let mut interval = Duration::from_secs(auth.interval.unwrap_or(5).max(1));
        let deadline = Instant::now() + Duration::from_secs(auth.expires_in);
        loop {
            std::thread::sleep(interval);
            if Instant::now() >= deadline {
                return Err("the sign-in code expired before it was approved: run `chokepoint-login login` again".into());
            }
            match self.client.poll_device(&auth.device_code) {
                Err(Failure::Refused { code, .. }) if code == "authorization_pending" => {}
                // §3.5: slow down by 5 seconds for this and every later request.
                Err(Failure::Refused { code, .. }) if code == "slow_down" => interval += Duration::from_secs(5),
                Err(Failure::Refused { code, .. }) if code == "access_denied" => {
                    return Err("the sign-in was denied".into())
                }
                Err(Failure::Refused { code, .. }) if code == "expired_token" => {
                    return Err("the sign-in code expired before it was approved: run `chokepoint-login login` again".into())
                }
                other => {
                    let cached = self.store(other, None)?;
                    eprintln!("chokepoint-login: signed in");
                    return Ok(cached);
                }
            }
        }
    }
}

fn check_url(url: &str, allow_http: bool) -> Result<(), String> {
    if url.starts_with("https://") || (allow_http && url.starts_with("http://")) {
        return Ok(());
    }
    Err(format!(
        "{url}: the identity provider must be https:// (--allow-http for a local test one)"
    ))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// When the token stops being usable: its own `exp` claim if it is a JWT, else (or if
/// sooner) `expires_in` from the response; neither = now, so it is never reused.
fn expiry(token: &str, expires_in: Option<u64>, now: u64) -> u64 {
    let exp = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
        .and_then(|claims| claims.get("exp").and_then(serde_json::Value::as_u64));
    let by_response = expires_in.map(|s| now.saturating_add(s));
    match (exp, by_response) {
        (Some(a), Some(b)) => a.min(b),
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims))
    }

    #[test]
    fn expiry_is_the_sooner_of_exp_and_expires_in() {
        assert_eq!(expiry(&jwt(r#"{"exp":1000}"#), None, 10), 1000);
        assert_eq!(expiry(&jwt(r#"{"exp":1000}"#), Some(100), 10), 110);
        assert_eq!(expiry(&jwt(r#"{"exp":1000}"#), Some(5000), 10), 1000);
        assert_eq!(expiry("opaque-token", Some(60), 10), 70);
        assert_eq!(expiry(&jwt(r#"{"sub":"x"}"#), None, 10), 10);
        assert_eq!(expiry("a.!!!.c", None, 10), 10);
    }

    #[test]
    fn endpoints_must_be_https_unless_allowed() {
        assert!(check_url("https://idp.example.com/token", false).is_ok());
        assert!(check_url("http://idp.example.com/token", false).is_err());
        assert!(check_url("http://127.0.0.1:9/token", true).is_ok());
        assert!(check_url("ftp://idp", true).is_err());
    }
}
