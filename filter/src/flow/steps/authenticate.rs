//! Authenticate: the company token the client sent, verified (the token cache in front of
//! the signature check) into the caller: a pseudonymous user id and what the token's
//! issuer may assert. A token naming a key nobody knows yet (the issuer rotated) waits for
//! one refetch of the issuer's keys.

use crate::config::KeySource;
use crate::flow::facts::Caller;
use crate::flow::step::{Cx, Go, Step};
use crate::host::Counter;
use crate::identity::jwks::KeySet;
use crate::identity::jwks_sync;
use crate::identity::jwt::{self, AuthError, Verifier};
use crate::identity::pseudonym;
use crate::identity::token_cache::Verified;
use crate::providers::reply::{self, Reply};

pub struct Authenticate;

impl Step for Authenticate {
    fn name(&self) -> &'static str {
        "authenticate"
    }

    fn run(&self, cx: &mut Cx<'_>) -> Result<Go, Reply> {
        let token = match cx.facts.asked.token.take() {
            Some(Ok(token)) => token,
            Some(Err(e)) => return Err(refuse(cx, e)),
            None => return Err(refuse(cx, AuthError::Missing)),
        };
        // The clock as this callback began (read once for the request's start): one
        // hostcall fewer per request.
        let now = cx.facts.start_ms / 1000;
        match verify(cx, &token, now) {
            Ok(verified) => authenticated(cx, verified),
            Err(e @ (AuthError::UnknownKey | AuthError::KeysUnavailable)) => {
                let go = refetch_keys(cx, &token, e);
                if let Ok(Go::Call(_)) = go {
                    // Kept for the retry when the keys have come.
                    cx.facts.asked.token = Some(Ok(token));
                }
                go
            }
            Err(e) => Err(refuse(cx, e)),
        }
    }

    /// The JWKS refetch answered: keep the new keys (for every worker) and verify again.
    fn answered(&self, cx: &mut Cx<'_>, status: Option<u32>, body: &[u8]) -> Result<Go, Reply> {
        let token = match cx.facts.asked.token.take() {
            Some(Ok(token)) => token,
            _ => return Err(refuse(cx, AuthError::Missing)),
        };
        let issuer = jwt::issuer_of(&token).unwrap_or_default();
        match (status, KeySet::from_fetched(body)) {
            (Some(200), Ok((set, _skipped))) => {
                cx.host.count(Counter::JwksFetched);
                let now = cx.host.now_secs();
                jwks_sync::publish(cx.host, &issuer, now, body);
                let version = jwks_sync::read_doc(cx.host, &issuer).map_or(0, |d| d.version);
                let mut auth = cx.auth.borrow_mut();
                auth.keys.replace(&issuer, set, version);
                auth.cache.clear();
            }
            (status, parsed) => {
                cx.host.count(Counter::JwksFetchFailed);
                log::warn!(
                    "JWKS refetch for {issuer} failed (status {status:?}{})",
                    parsed.err().map(|e| format!(", {e}")).unwrap_or_default()
                );
            }
        }
        let now = cx.host.now_secs();
        let verified = verify(cx, &token, now).map_err(|e| refuse(cx, e))?;
        authenticated(cx, verified)
    }
}

/// The caller is known.
fn authenticated(cx: &mut Cx<'_>, v: Verified) -> Result<Go, Reply> {
    cx.facts.caller = Some(Caller {
        user: v.user,
        tenant: v.token.tenant,
        groups: v.token.groups,
        cost_center: v.token.cost_center,
        request_id: cx.facts.trace_id.clone(),
    });
    Ok(Go::Next)
}

/// Verifies with the token cache in front of the signature check.
fn verify(cx: &mut Cx<'_>, token: &str, now: u64) -> Result<Verified, AuthError> {
    let cfg = &cx.rt.config;
    let mut auth = cx.auth.borrow_mut();
    let key = auth.cache.key(token);
    if let Some(hit) = auth.cache.get(&key, now) {
        cx.host.count(Counter::TokenCacheHit);
        return Ok(hit.clone());
    }
    cx.host.count(Counter::TokenCacheMiss);
    let verifier = Verifier {
        issuers: &cfg.issuers,
        keys: &auth.keys,
        max_token_bytes: cfg.max_token_bytes,
        skew: cfg.clock_skew,
    };
    let token = verifier.verify(token, now)?;
    let verified = Verified {
        user: pseudonym::user_uuid(&cx.rt.salt, &token.issuer, &token.subject),
        token,
    };
    auth.cache.insert(key, verified.clone(), now);
    Ok(verified)
}

/// A token names a `kid` we do not know (the issuer may have rotated its keys), or this
/// worker has no keys for the issuer yet. Adopt what another worker fetched; failing that,
/// fetch now (at most once a minute per issuer, across all workers) and retry.
fn refetch_keys(cx: &mut Cx<'_>, token: &str, first: AuthError) -> Result<Go, Reply> {
    let issuer = jwt::issuer_of(token).unwrap_or_default();
    let uri = cx
        .rt
        .config
        .issuers
        .iter()
        .find(|i| i.issuer == issuer)
        .and_then(|i| match &i.keys {
            KeySource::Remote(uri) => Some(uri.clone()),
            KeySource::Inline(_) => None,
        });
    let Some(uri) = uri else {
        return Err(refuse(cx, first));
    };
    // Another worker may already have fetched the new keys: use them before asking the
    // IdP (this worker's timer would only pick them up on its next tick).
    let mut err = first;
    if sync_keys_from_shared(cx, &issuer) {
        let now = cx.facts.start_ms / 1000;
        match verify(cx, token, now) {
            Ok(verified) => return authenticated(cx, verified),
            Err(AuthError::UnknownKey) => err = AuthError::UnknownKey,
            Err(e) => return Err(refuse(cx, e)),
        }
    }
    // No keys at all yet: the root's timer fetches them; no extra fetch per request.
    if err == AuthError::KeysUnavailable {
        return Err(refuse(cx, err));
    }
    let now = cx.host.now_secs();
    if !jwks_sync::may_refetch(cx.host, &issuer, now) {
        return Err(refuse(cx, AuthError::UnknownKey));
    }
    let headers = [
        (":method", "GET"),
        (":path", uri.path.as_str()),
        (":authority", uri.authority.as_str()),
    ];
    match cx.host.dispatch(&uri.cluster, &headers, &[], uri.timeout) {
        Ok(call) => Ok(Go::Call(call)),
        Err(e) => {
            log::warn!("cannot reach JWKS cluster {}: {}", uri.cluster, e.0);
            Err(refuse(cx, AuthError::UnknownKey))
        }
    }
}

/// Adopts the issuer's key set from shared data when it is newer than ours.
fn sync_keys_from_shared(cx: &mut Cx<'_>, issuer: &str) -> bool {
    let Some(doc) = jwks_sync::read_doc(cx.host, issuer) else {
        return false;
    };
    if cx.auth.borrow().keys.version(issuer) == Some(doc.version) {
        return false;
    }
    let Ok((set, _)) = KeySet::from_fetched(&doc.jwks) else {
        return false;
    };
    let mut auth = cx.auth.borrow_mut();
    auth.keys.replace(issuer, set, doc.version);
    auth.cache.clear();
    true
}

/// An authentication failure: counted, and answered 401 (503 when our keys are missing,
/// 403 when a valid token claims what its issuer may not).
fn refuse(cx: &mut Cx<'_>, e: AuthError) -> Reply {
    cx.host.count(Counter::AuthFailed(e));
    match e {
        AuthError::KeysUnavailable => {
            reply::error(503, "service_unavailable", e.code(), e.message())
        }
        // The token is good; what it claims is not its issuer's to claim.
        AuthError::TenantNotAllowed | AuthError::CostCenterNotAllowed => {
            reply::error(403, "permission_error", e.code(), e.message())
        }
        _ => reply::unauthorized(e.code(), e.message()),
    }
}
