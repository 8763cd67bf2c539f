//! Booking records through the policy service's own usage endpoint, as the filter does:
//! the same wire contract (`POST /v1/usage`, a usage batch of the records as logged) and
//! the same gateway token. The service books each request id once, so a record the filter
//! delivered already comes back as a duplicate, and a retried batch charges nothing
//! twice.

use std::time::Duration;

use chokepoint_contract::paths::USAGE_PATH;
use chokepoint_contract::{Required, UsageBatch};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The service's answer to a batch (`UsageAnswer`, with the counts the filter does not
/// read).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Booked {
    #[serde(default)]
    pub accepted: u64,
    #[serde(default)]
    pub duplicates: u64,
    #[serde(default)]
    pub dead_lettered: u64,
}

/// What a batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Booked(Booked),
    /// `400`/`413`: the batch can never succeed as sent.
    Refused,
}

pub struct Ledger {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Attempts per batch before giving up; `None`: until it is accepted.
    max_attempts: Option<u32>,
}

impl Ledger {
    pub fn new(base: &str, token: String, max_attempts: Option<u32>) -> Result<Ledger, String> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "--policy-url must start with http:// (got {base:?})"
            ));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot set up an HTTP client: {e}"))?;
        Ok(Ledger {
            http,
            base,
            token,
            max_attempts,
        })
    }

    /// How long the service remembers booked request ids (its `/healthz` says), or
    /// `None` for a service that does not say.
    pub async fn dedupe_secs(&self) -> Result<Option<u64>, String> {
        #[derive(Deserialize)]
        struct Health {
            usage_dedupe_secs: Option<u64>,
        }
        let mut wait = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = self
                .http
                .get(format!("{}/healthz", self.base))
                .bearer_auth(&self.token)
                .send()
                .await;
            let failure = match answer {
                Ok(r) if r.status() == StatusCode::OK => {
                    let health: Health = r
                        .json()
                        .await
                        .map_err(|e| format!("the policy service's /healthz: {e}"))?;
                    return Ok(health.usage_dedupe_secs);
                }
                Ok(r) if refused_token(r.status()) => return Err(token_refused(r.status())),
                Ok(r) => format!("{}/healthz answered {}", self.base, r.status()),
                Err(e) => format!("cannot reach {} ({})", self.base, describe(&e)),
            };
            if self.max_attempts.is_some_and(|m| attempt >= m) {
                return Err(failure);
            }
            log::warn!("{failure}; retrying in {wait:?}");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
    }

    /// Sends one batch, retrying with backoff while the service is unreachable or
    /// answers 5xx. `Err`: the token was refused, the service answered something no
    /// retry changes, or the attempts ran out.
    pub async fn send(&self, records: &[&RawValue]) -> Result<Sent, String> {
        let body = serde_json::to_vec(&UsageBatch::<&RawValue, String> {
            records: Required::new(records.to_vec()),
            releases: Vec::new(),
        })
        .map_err(|e| e.to_string())?;
        let mut wait = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = self
                .http
                .post(format!("{}{USAGE_PATH}", self.base))
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let failure = match answer {
                Ok(r) if r.status() == StatusCode::OK => {
                    let text = r.text().await.unwrap_or_default();
                    return serde_json::from_str(&text).map(Sent::Booked).map_err(|_| {
                        "the policy service answered 200 with no usage answer".to_string()
                    });
                }
                Ok(r) if matches!(r.status().as_u16(), 400 | 413) => return Ok(Sent::Refused),
                Ok(r) if refused_token(r.status()) => return Err(token_refused(r.status())),
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                    format!("the policy service answered {}", r.status())
                }
                Ok(r) => {
                    return Err(format!(
                        "the policy service answered {} to {}{USAGE_PATH}; is --policy-url \
                         its gateway listener?",
                        r.status(),
                        self.base
                    ))
                }
                Err(e) => format!("cannot reach {} ({})", self.base, describe(&e)),
            };
            if self.max_attempts.is_some_and(|m| attempt >= m) {
                return Err(format!("{failure}, {attempt} attempts: giving up"));
            }
            log::warn!("{failure}; retrying in {wait:?}");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
    }
}

fn refused_token(status: StatusCode) -> bool {
    matches!(status.as_u16(), 401 | 403)
}

fn token_refused(status: StatusCode) -> String {
    format!(
        "the policy service refused the gateway token ({status}): set CHOKEPOINT_POLICY_TOKEN \
         (or --token-file) to the token the filter sends"
    )
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "connection refused or unreachable".into()
    } else {
        err.to_string()
    }
}
