//! Who is looking at the service's pages: the admin token's holder, a member of an admin
//! group, or one user who may see only their own usage. A company JWT is verified by the
//! gateway filter's own verifier (`chokepoint_filter::identity::jwt`: the same algorithms,
//! key policy, claim checks and error codes) against the issuers of the identity file,
//! and its user UUID derived by the same shared code the filter records it with
//! (`chokepoint_contract::identity`), so the page's "you" is the ledger's user.

pub mod config;
mod keys;
mod token;

use std::collections::HashMap;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use chokepoint_contract::identity::pseudonym::{user_uuid, MIN_SALT_BYTES};
use chokepoint_filter::identity::jwt::{issuer_of, AuthError, Verifier};
use chokepoint_filter::identity::keystore::KeyStore;

use crate::api::bearer::tokens_match;
use crate::api::error::ApiError;
use crate::error::Error;

pub use config::ViewerConfig;
pub use token::VIEWER_COOKIE;

/// Who a request to the pages is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// The admin token, or a company JWT naming one of the admin groups: sees everything.
    Admin,
    /// A company JWT of anyone else: sees their own usage only.
    User {
        /// The pseudonymous UUID the gateway records this caller's usage under.
        user: String,
        groups: Vec<String>,
        tenant: Option<String>,
    },
}

/// The resolver, built once at start from the identity file and the environment.
pub struct Viewers {
    admin_token: Option<String>,
    admin_groups: Vec<String>,
    /// The filter's own issuer form, which its verifier reads (keys come from `keys`).
    issuers: Vec<chokepoint_filter::config::Issuer>,
    remote: Vec<bool>,
    keys: keys::Keys,
    salt: Vec<u8>,
    max_token_bytes: usize,
    skew: Duration,
}

impl std::fmt::Debug for Viewers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewers")
            .field("issuers", &self.issuers.len())
            .field("admin_groups", &self.admin_groups)
            .finish_non_exhaustive()
    }
}

/// The shortest HMAC secret accepted, as the filter's: a shorter one can be brute-forced
/// from a single token.
const MIN_HMAC_SECRET_BYTES: usize = 32;

impl Viewers {
    /// Resolves the secrets the configuration names (`env` is `std::env::var` in the
    /// service, a map in tests): the pseudonym salt, needed once there is an issuer, and
    /// each HMAC issuer's secret.
    pub fn new(
        config: ViewerConfig,
        admin_token: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Viewers, Error> {
        let salt = if config.issuers.is_empty() {
            Vec::new()
        } else {
            let salt = env(&config.uuid_salt_env).unwrap_or_default();
            if salt.len() < MIN_SALT_BYTES {
                return Err(Error::Config(format!(
                    "identity: uuid_salt_env: environment variable {} must hold the gateway's \
                     UUID salt (at least {MIN_SALT_BYTES} bytes), or users' UUIDs would not be \
                     the ledger's",
                    config.uuid_salt_env
                )));
            }
            salt.into_bytes()
        };
        let mut hmac = HashMap::new();
        for (i, issuer) in config.issuers.iter().enumerate() {
            let Some(name) = &issuer.hmac_secret_env else {
                continue;
            };
            let secret = env(name).unwrap_or_default();
            if secret.len() < MIN_HMAC_SECRET_BYTES {
                return Err(Error::Config(format!(
                    "identity: issuers[{i}].hmac_secret_env: environment variable {name} must \
                     hold a secret of at least {MIN_HMAC_SECRET_BYTES} bytes"
                )));
            }
            hmac.insert(issuer.issuer.clone(), secret.into_bytes());
        }
        let keys = keys::Keys::new(&config.issuers, &hmac)
            .map_err(|e| Error::Config(format!("identity: {}", e.0)))?;
        let remote = config
            .issuers
            .iter()
            .map(|i| matches!(i.keys, config::KeySource::Remote(_)))
            .collect();
        let issuers = config
            .issuers
            .into_iter()
            .map(|i| chokepoint_filter::config::Issuer {
                issuer: i.issuer,
                audiences: i.audiences,
                // The verifier takes keys from the key store it is given, never from here.
                keys: chokepoint_filter::config::KeySource::Inline(Default::default()),
                algorithms: i.algorithms,
                hmac_secret_env: i.hmac_secret_env,
                claims: i.claims,
            })
            .collect();
        Ok(Viewers {
            admin_token: admin_token.map(str::to_owned),
            admin_groups: config.admin_groups,
            issuers,
            remote,
            keys,
            salt,
            max_token_bytes: config.max_token_bytes,
            skew: config.clock_skew,
        })
    }

    /// Who sent `headers` (`Authorization: Bearer`, else the [`VIEWER_COOKIE`] cookie), at
    /// `now_secs` (Unix time). Anything but the admin token or a valid company JWT is a
    /// 401 naming why, never echoing the token; 503 while an issuer's keys cannot be had.
    /// Whether a company JWT can resolve to a viewer at all (an issuer is configured).
    pub fn has_issuers(&self) -> bool {
        !self.issuers.is_empty()
    }

    pub async fn resolve(&self, headers: &HeaderMap, now_secs: u64) -> Result<Viewer, ApiError> {
        let token = token::presented(headers, self.max_token_bytes).map_err(refusal)?;
        if let Some(admin) = &self.admin_token {
            if tokens_match(token.as_bytes(), admin.as_bytes()) {
                return Ok(Viewer::Admin);
            }
        }
        let verified = self.verify(token, now_secs).await.map_err(refusal)?;
        let user = user_uuid(&self.salt, &verified.issuer, &verified.subject);
        if verified
            .groups
            .iter()
            .any(|g| self.admin_groups.iter().any(|a| a == g))
        {
            return Ok(Viewer::Admin);
        }
        Ok(Viewer::User {
            user,
            groups: verified.groups,
            tenant: verified.tenant,
        })
    }

    async fn verify(
        &self,
        token: &str,
        now: u64,
    ) -> Result<chokepoint_filter::identity::jwt::VerifiedToken, AuthError> {
        if token.len() > self.max_token_bytes {
            return Err(AuthError::TooLarge);
        }
        // Unverified, only to pick the keys; the verifier refuses an unknown issuer itself.
        let issuer = issuer_of(token);
        let position = issuer
            .as_deref()
            .and_then(|iss| self.issuers.iter().position(|i| i.issuer == iss));
        let Some((issuer, at)) = issuer.zip(position) else {
            return self.verify_with(token, now, None);
        };
        let set = self.keys.get(&issuer, now, false).await;
        let first = self.verify_with(token, now, set.as_ref().map(|s| (issuer.as_str(), s)));
        // A key the cached set does not hold: the issuer may have rotated.
        if first == Err(AuthError::UnknownKey) && self.remote.get(at).copied().unwrap_or(false) {
            let again = self.keys.get(&issuer, now, true).await;
            if let Some(again) =
                again.filter(|a| set.as_ref().is_none_or(|s| !std::sync::Arc::ptr_eq(a, s)))
            {
                return self.verify_with(token, now, Some((issuer.as_str(), &again)));
            }
        }
        first
    }

    fn verify_with(
        &self,
        token: &str,
        now: u64,
        keys: Option<(
            &str,
            &std::sync::Arc<chokepoint_filter::identity::jwks::KeySet>,
        )>,
    ) -> Result<chokepoint_filter::identity::jwt::VerifiedToken, AuthError> {
        let mut store = KeyStore::default();
        if let Some((issuer, set)) = keys {
            store.replace(issuer, set.as_ref().clone(), 0);
        }
        Verifier {
            issuers: &self.issuers,
            keys: &store,
            max_token_bytes: self.max_token_bytes,
            skew: self.skew,
        }
        .verify(token, now)
    }
}

/// The API's error for a refused credential: the gateway's own code, its message in the
/// service's words; nothing of the token.
fn refusal(e: AuthError) -> ApiError {
    let message = match e {
        AuthError::Missing => {
            "no credentials: send `Authorization: Bearer <company token or admin token>`"
        }
        AuthError::Malformed => "the token is neither the admin token nor a valid company JWT",
        AuthError::TooLarge => "the token is larger than the service accepts",
        AuthError::BadSignature => "the token's signature does not verify",
        AuthError::Expired => "the token has expired",
        AuthError::NotYetValid => "the token is not valid yet",
        AuthError::WrongIssuer => "the token's issuer is not one this service trusts",
        AuthError::WrongAudience => "the token was not issued for this gateway",
        AuthError::UnknownKey => "the token was signed with a key its issuer does not publish",
        AuthError::KeysUnavailable => {
            return ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "unavailable",
                code: e.code(),
                message: "the identity provider's signing keys could not be loaded yet; try \
                          again shortly"
                    .to_owned(),
            }
        }
        AuthError::TenantNotAllowed => "the token's issuer is not trusted to name its tenant",
        AuthError::CostCenterNotAllowed => {
            "the token's issuer is not trusted to name its cost centre"
        }
    };
    ApiError::unauthorized(e.code(), message)
}

#[cfg(test)]
mod tests;
