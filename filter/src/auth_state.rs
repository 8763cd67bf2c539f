//! Per-VM state shared by the root context and every request of a worker: the current
//! keys, the verified-token cache, the lease slots held for callers and the guardrails'
//! scan cache. Single-threaded (one VM per worker); each user borrows it briefly and
//! never across a callback.

use crate::admission::lease::LeaseTable;
use crate::config::Config;
use crate::identity::keystore::KeyStore;
use crate::identity::token_cache::TokenCache;
use crate::runtime::Runtime;

pub struct AuthState {
    pub keys: KeyStore,
    pub cache: TokenCache,
    pub leases: LeaseTable,
    /// The aggregate endpoint's session with each MCP server, by server index: opened
    /// once per worker and kept until the server says it is gone.
    pub mcp_sessions: std::collections::HashMap<usize, crate::mcp::upstream::UpstreamSession>,
    /// The guardrails' findings per text block, made on first use (its hash key comes
    /// from the host's CSPRNG; see `guard`).
    pub scans: Option<chokepoint_guard::ScanCache>,
    /// The guardrail services' verdicts per text, made on first use like `scans`.
    pub verdicts: Option<crate::guardrails::verdicts::VerdictCache>,
}

/// Callers with live leases per worker; past it the lease closest to expiry is released.
pub const MAX_LEASES: usize = 10_000;

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
            leases: LeaseTable::new(MAX_LEASES, c.policy.lease_slots),
            mcp_sessions: std::collections::HashMap::new(),
            scans: None,
            verdicts: None,
        }
    }
}
