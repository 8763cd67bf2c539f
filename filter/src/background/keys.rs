//! Each remote issuer's keys kept fresh: one fetch per refresh across all workers (see
//! `jwks_sync`), and every worker picks up what another stored.

use super::Background;
use crate::config::{JwksUri, KeySource};
use crate::host::{Counter, RootHost};
use crate::identity::jwks::KeySet;
use crate::identity::jwks_sync;

impl Background {
    fn remote_issuers(&self) -> Vec<(String, JwksUri)> {
        self.rt
            .config
            .issuers
            .iter()
            .filter_map(|i| match &i.keys {
                KeySource::Remote(u) => Some((i.issuer.clone(), u.clone())),
                KeySource::Inline(_) => None,
            })
            .collect()
    }

    /// Picks up newer stored keys, and fetches those whose refresh is due (and not being
    /// fetched by another worker).
    pub(super) fn refresh_keys(&mut self, host: &mut dyn RootHost) {
        let now = host.now_secs();
        for (issuer, uri) in self.remote_issuers() {
            let doc = jwks_sync::read_doc(host, &issuer);
            if let Some(doc) = &doc {
                self.sync_from_shared(&issuer, doc);
            }
            if self.fetches.values().any(|i| *i == issuer) {
                continue;
            }
            if !jwks_sync::should_fetch(host, &issuer, doc.as_ref(), uri.refresh.as_secs(), now) {
                continue;
            }
            let headers = [
                (":method", "GET"),
                (":path", uri.path.as_str()),
                (":authority", uri.authority.as_str()),
            ];
            match host.call(&uri.cluster, &headers, None, uri.timeout) {
                Ok(token) => {
                    self.fetches.insert(token, issuer);
                }
                Err(e) => {
                    log::warn!(
                        "cannot fetch JWKS for {issuer} from cluster {}: {e:?}",
                        uri.cluster
                    );
                    jwks_sync::backoff(host, &issuer, doc.is_some(), now);
                    host.add(Counter::JwksFetchFailed, 1);
                }
            }
        }
    }

    /// A fetch came back: usable keys are published for every worker; anything else
    /// keeps the last good keys and backs off.
    pub(super) fn keys_answered(
        &mut self,
        host: &mut dyn RootHost,
        issuer: &str,
        status: Option<u32>,
        body: &[u8],
    ) {
        let now = host.now_secs();
        match (status, KeySet::from_fetched(body)) {
            (Some(200), Ok((_, skipped))) => {
                if skipped > 0 {
                    log::info!("JWKS for {issuer}: skipped {skipped} key(s) of unsupported types");
                }
                jwks_sync::publish(host, issuer, now, body);
                jwks_sync::release(host, issuer);
                host.add(Counter::JwksFetched, 1);
                if let Some(doc) = jwks_sync::read_doc(host, issuer) {
                    self.sync_from_shared(issuer, &doc);
                }
            }
            (status, parsed) => {
                let have_keys = jwks_sync::read_doc(host, issuer).is_some();
                log::warn!(
                    "JWKS fetch for {issuer} failed (status {}{}); {}",
                    status.map_or_else(
                        || "none: timeout or connection failure".to_string(),
                        |s| s.to_string()
                    ),
                    parsed.err().map(|e| format!(", {e}")).unwrap_or_default(),
                    if have_keys {
                        "keeping the last good keys"
                    } else {
                        "no keys yet: its tokens get 503"
                    }
                );
                jwks_sync::backoff(host, issuer, have_keys, now);
                host.add(Counter::JwksFetchFailed, 1);
            }
        }
    }

    /// Picks up a JWKS another worker (or a refetch) stored, if it is newer than ours.
    fn sync_from_shared(&self, issuer: &str, doc: &jwks_sync::Doc) {
        if self.auth.borrow().keys.version(issuer) == Some(doc.version) {
            return;
        }
        match KeySet::from_fetched(&doc.jwks) {
            Ok((set, _)) => {
                let mut auth = self.auth.borrow_mut();
                auth.keys.replace(issuer, set, doc.version);
                auth.cache.clear();
            }
            Err(e) => log::warn!("stored JWKS for {issuer} is unusable: {e}"),
        }
    }
}
