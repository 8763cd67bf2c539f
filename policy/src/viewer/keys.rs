//! Each issuer's verification keys as the service currently knows them: inline keys from
//! the identity file, or a JWKS fetched from the issuer's URL, cached and refreshed on the
//! filter's schedule (filter/src/identity/jwks_sync.rs): every `refresh_secs`, early at
//! most once a minute for a token whose `kid` is unknown (a rotation), and after a failed
//! fetch retried in 2 s while no keys exist, else 30 s, keeping the last good set. What is
//! cached is bounded: one set per configured issuer, a document of at most
//! [`MAX_JWKS_BYTES`], at most the filter's `MAX_KEYS` keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chokepoint_filter::identity::jwks::KeySet;
use chokepoint_filter::identity::jwks_sync::{
    REFETCH_INTERVAL_SECS, RETRY_SECS_NO_KEYS, RETRY_SECS_WITH_KEYS,
};

use super::config::{Issuer, JwksUrl, KeySource};

/// A larger JWKS document is refused unread past this.
pub const MAX_JWKS_BYTES: u64 = 256 * 1024;

/// The keys of every configured issuer.
pub struct Keys {
    issuers: HashMap<String, IssuerKeys>,
}

struct IssuerKeys {
    /// Inline keys, or the last good fetched set.
    source: Source,
    /// The issuer's HMAC secret, added to every set.
    hmac: Option<Vec<u8>>,
}

enum Source {
    Inline(Arc<KeySet>),
    Remote(Box<Remote>),
}

struct Remote {
    url: JwksUrl,
    agent: ureq::Agent,
    state: Mutex<FetchState>,
    /// One fetch at a time per issuer; requests arriving meanwhile wait for its result.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct FetchState {
    set: Option<Arc<KeySet>>,
    fetched_at: u64,
    /// No fetch before this (after a failure, or an unknown-`kid` refetch).
    not_before: u64,
    /// No unknown-`kid` refetch before this.
    refetch_not_before: u64,
}

/// Why keys could not be had.
#[derive(Debug)]
pub struct SetupError(pub String);

impl Keys {
    /// `hmac` holds each HMAC issuer's secret (read from its variable by the caller).
    pub fn new(issuers: &[Issuer], hmac: &HashMap<String, Vec<u8>>) -> Result<Keys, SetupError> {
        let mut out = HashMap::new();
        for issuer in issuers {
            let secret = hmac.get(&issuer.issuer).cloned();
            let source = match &issuer.keys {
                KeySource::Inline(set) => {
                    let mut set = set.clone();
                    if let Some(s) = &secret {
                        set.add_hmac(s);
                    }
                    Source::Inline(Arc::new(set))
                }
                KeySource::Remote(url) => Source::Remote(Box::new(Remote {
                    agent: agent(url)?,
                    url: url.clone(),
                    state: Mutex::new(FetchState::default()),
                    fetching: tokio::sync::Mutex::new(()),
                })),
            };
            out.insert(
                issuer.issuer.clone(),
                IssuerKeys {
                    source,
                    hmac: secret,
                },
            );
        }
        Ok(Keys { issuers: out })
    }

    /// The issuer's keys at `now` (Unix seconds), fetched first when due. `None`: none
    /// could be had yet. `unknown_kid`: the caller's token named a key the last set did
    /// not hold, so a refetch is due if none ran in the last minute.
    pub async fn get(&self, issuer: &str, now: u64, unknown_kid: bool) -> Option<Arc<KeySet>> {
        let entry = self.issuers.get(issuer)?;
        let remote = match &entry.source {
            Source::Inline(set) => return Some(set.clone()),
            Source::Remote(remote) => remote,
        };
        if let Some(set) = remote.fresh(now, unknown_kid) {
            return set;
        }
        let _one = remote.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(set) = remote.fresh(now, unknown_kid) {
            return set;
        }
        let fetched = fetch(&remote.agent, &remote.url).await;
        let mut state = remote.lock();
        if unknown_kid {
            state.refetch_not_before = now.saturating_add(REFETCH_INTERVAL_SECS);
        }
        match fetched.and_then(|bytes| KeySet::from_fetched(&bytes).map(|(set, _)| set)) {
            Ok(mut set) => {
                if let Some(s) = &entry.hmac {
                    set.add_hmac(s);
                }
                state.set = Some(Arc::new(set));
                state.fetched_at = now;
                state.not_before = 0;
            }
            Err(why) => {
                // The URL is configuration, not a secret; the reason is the transport's
                // or the parser's, never a token.
                log::warn!("JWKS of {issuer} from {}: {why}", remote.url.url);
                let pause = if state.set.is_some() {
                    RETRY_SECS_WITH_KEYS
                } else {
                    RETRY_SECS_NO_KEYS
                };
                state.not_before = now.saturating_add(pause);
            }
        }
        state.set.clone()
    }
}

impl Remote {
    fn lock(&self) -> std::sync::MutexGuard<'_, FetchState> {
        // A poisoned lock only means a panic elsewhere held it; the state is still whole.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Some(set)` when no fetch is due at `now`: the cached set (which may be none).
    fn fresh(&self, now: u64, unknown_kid: bool) -> Option<Option<Arc<KeySet>>> {
        let state = self.lock();
        let stale = match &state.set {
            None => true,
            Some(_) => now >= state.fetched_at.saturating_add(self.url.refresh.as_secs()),
        };
        let refetch = unknown_kid && now >= state.refetch_not_before;
        let due = (stale || refetch) && now >= state.not_before;
        (!due).then(|| state.set.clone())
    }
}

fn agent(url: &JwksUrl) -> Result<ureq::Agent, SetupError> {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(url.timeout))
        // Keys come from the configured URL, never from wherever it points on.
        .max_redirects(0)
        .user_agent(concat!("chokepoint-policy/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &url.ca_pem {
        let certs = certificates(pem).map_err(SetupError)?;
        if certs.is_empty() {
            return Err(SetupError("jwks_url.ca_pem holds no certificate".into()));
        }
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build(),
        );
    }
    Ok(config.build().into())
}

/// The certificates of a PEM bundle (other blocks ignored).
fn certificates(pem: &str) -> Result<Vec<ureq::tls::Certificate<'static>>, String> {
    ureq::tls::parse_pem(pem.as_bytes())
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("jwks_url.ca_pem: {e}"))
}

/// One GET, off the async runtime (ureq blocks), bounded in time and size.
async fn fetch(agent: &ureq::Agent, url: &JwksUrl) -> Result<Vec<u8>, String> {
    let agent = agent.clone();
    let target = url.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut response = agent
            .get(&target)
            .header("accept", "application/json")
            .call()
            .map_err(|e| e.to_string())?;
        response
            .body_mut()
            .with_config()
            .limit(MAX_JWKS_BYTES)
            .read_to_vec()
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("fetch task failed: {e}"))?
}
