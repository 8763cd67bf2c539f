//! Recovering keys mid-request: adopting a key set another worker fetched, or refetching
//! the issuer's JWKS when a token names a `kid` nobody knows yet.

use super::{refuse, Flow, Next, Pending, Phase};
use crate::config::KeySource;
use crate::host::{Counter, Host};
use crate::identity::jwks::KeySet;
use crate::identity::jwks_sync;
use crate::identity::jwt::{self, AuthError};
use crate::providers::reply::Reply;

impl Flow {
    /// A token names a `kid` we do not know (the issuer may have rotated its keys), or this
    /// worker has no keys for the issuer yet. Adopt what another worker fetched; failing
    /// that, fetch now (at most once a minute per issuer, across all workers) and retry.
    pub(super) fn refetch_keys(
        &mut self,
        host: &mut dyn Host,
        token: &str,
        pending: Pending,
        first: AuthError,
    ) -> Result<Next, Reply> {
        let issuer = jwt::issuer_of(token).unwrap_or_default();
        let uri = self
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
            return Err(refuse(host, first));
        };
        // Another worker may already have fetched the new keys: use them before asking
        // the IdP (this worker's timer would only pick them up on its next tick).
        let mut err = first;
        if self.sync_keys_from_shared(host, &issuer) {
            match self.verify(host, token) {
                Ok(verified) => {
                    let caller = self.caller(verified, pending.request_id);
                    return self.after_authentication(
                        host,
                        caller,
                        pending.end_of_stream,
                        pending.body_done,
                    );
                }
                Err(AuthError::UnknownKey) => err = AuthError::UnknownKey,
                Err(e) => return Err(refuse(host, e)),
            }
        }
        // No keys at all yet: the root's timer fetches them; no extra fetch per request.
        if err == AuthError::KeysUnavailable {
            return Err(refuse(host, err));
        }
        let now = host.now_secs();
        if !jwks_sync::may_refetch(host, &issuer, now) {
            return Err(refuse(host, AuthError::UnknownKey));
        }
        let headers = [
            (":method", "GET"),
            (":path", uri.path.as_str()),
            (":authority", uri.authority.as_str()),
        ];
        match host.dispatch(&uri.cluster, &headers, &[], uri.timeout) {
            Ok(call) => {
                self.phase = Phase::FetchingKeys {
                    call,
                    issuer,
                    token: token.to_string(),
                    pending,
                };
                Ok(Next::Pause)
            }
            Err(e) => {
                log::warn!("cannot reach JWKS cluster {}: {}", uri.cluster, e.0);
                Err(refuse(host, AuthError::UnknownKey))
            }
        }
    }

    /// Adopts the issuer's key set from shared data when it is newer than ours.
    pub(super) fn sync_keys_from_shared(&self, host: &mut dyn Host, issuer: &str) -> bool {
        let Some(doc) = jwks_sync::read_doc(host, issuer) else {
            return false;
        };
        if self.auth.borrow().keys.version(issuer) == Some(doc.version) {
            return false;
        }
        let Ok((set, _)) = KeySet::from_fetched(&doc.jwks) else {
            return false;
        };
        let mut auth = self.auth.borrow_mut();
        auth.keys.replace(issuer, set, doc.version);
        auth.cache.clear();
        true
    }

    /// The JWKS refetch answered: keep the new keys (for every worker) and verify again.
    /// `Ok(true)`: resume the request.
    pub(super) fn keys_fetched(
        &mut self,
        host: &mut dyn Host,
        issuer: &str,
        token: &str,
        pending: Pending,
        status: Option<u32>,
        body: &[u8],
    ) -> Result<bool, Reply> {
        match (status, KeySet::from_fetched(body)) {
            (Some(200), Ok((set, _skipped))) => {
                host.count(Counter::JwksFetched);
                let now = host.now_secs();
                jwks_sync::publish(host, issuer, now, body);
                let version = jwks_sync::read_doc(host, issuer).map_or(0, |d| d.version);
                let mut auth = self.auth.borrow_mut();
                auth.keys.replace(issuer, set, version);
                auth.cache.clear();
            }
            (status, parsed) => {
                host.count(Counter::JwksFetchFailed);
                log::warn!(
                    "JWKS refetch for {issuer} failed (status {status:?}{})",
                    parsed.err().map(|e| format!(", {e}")).unwrap_or_default()
                );
            }
        }
        let verified = self.verify(host, token).map_err(|e| refuse(host, e))?;
        let caller = self.caller(verified, pending.request_id);
        let body_done = pending.body_done;
        // Headers were paused for the fetch: resume now if a lease slot admitted the
        // request; otherwise the body or the authorize callout holds it.
        let next = self.after_authentication(host, caller, pending.end_of_stream, body_done)?;
        Ok(next == Next::Continue)
    }
}
