//! Per-VM identity state shared by the root context and every request of a worker: the
//! current keys and the verified-token cache. Single-threaded (one VM per worker); each
//! user borrows it briefly and never across a callback.

use crate::config::Config;
use crate::keystore::KeyStore;
use crate::runtime::Runtime;
use crate::token_cache::TokenCache;

pub struct AuthState {
    pub keys: KeyStore,
    pub cache: TokenCache,
}

impl AuthState {
    pub fn new(rt: &Runtime) -> AuthState {
        let c: &Config = &rt.config;
        AuthState {
            keys: KeyStore::new(c, rt.hmac_secrets.clone()),
            cache: TokenCache::new(
                c.token_cache.max_entries,
                c.token_cache.ttl.as_secs(),
                c.clock_skew.as_secs(),
            ),
        }
    }
}
