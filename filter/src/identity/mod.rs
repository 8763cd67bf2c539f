//! Who is calling: the company token found in the request (whatever header the client's
//! SDK put it in), verified against the issuer's keys (fetched, cached and rotated here),
//! and the pseudonymous user id derived from it. Client credentials are stripped here too,
//! so no caller-supplied key ever reaches a provider.

pub mod credentials;
pub mod jwks;
pub mod jwks_sync;
pub mod jwt;
/// The pseudonymous user UUID, shared with the policy service (`chokepoint_contract`).
pub use chokepoint_contract::identity::pseudonym;
pub mod keystore;
pub mod rs256_key;
pub mod rsa;
pub mod token_cache;
pub mod token_source;
