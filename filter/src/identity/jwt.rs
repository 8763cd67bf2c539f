//! Bearer-token verification: which issuer, which key, which claims. Host-free, so every
//! rejection class is unit-tested natively.

use std::time::Duration;

use base64::Engine as _;
use chokepoint_contract::identity::registered::{self, Registered, RegisteredRefusal};
use chokepoint_contract::identity::ClaimRefusal;
use jwt_simple::prelude::*;

use crate::config::Issuer;
use crate::identity::keystore::KeyStore;

/// Why a token was refused. The `code` is what clients and metrics see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthError {
    Missing,
    Malformed,
    TooLarge,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    UnknownKey,
    /// The issuer's keys have not been fetched yet: the gateway, not the token, is at fault.
    KeysUnavailable,
    /// A valid token claims a tenant its issuer is not trusted to assert.
    TenantNotAllowed,
    /// A valid token claims a cost centre its issuer is not trusted to assert.
    CostCenterNotAllowed,
}

impl AuthError {
    pub const ALL: [AuthError; 12] = [
        AuthError::Missing,
        AuthError::Malformed,
        AuthError::TooLarge,
        AuthError::BadSignature,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::WrongIssuer,
        AuthError::WrongAudience,
        AuthError::UnknownKey,
        AuthError::KeysUnavailable,
        AuthError::TenantNotAllowed,
        AuthError::CostCenterNotAllowed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::TooLarge => "too_large",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::UnknownKey => "unknown_key",
            AuthError::KeysUnavailable => "jwks_unavailable",
            AuthError::TenantNotAllowed => "tenant_not_allowed",
            AuthError::CostCenterNotAllowed => "cost_center_not_allowed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            AuthError::Missing => "No bearer token was provided. Send your company token as 'Authorization: Bearer <token>'.",
            AuthError::Malformed => "The bearer token is not a valid JWT.",
            AuthError::TooLarge => "The bearer token is larger than the gateway accepts.",
            AuthError::BadSignature => "The bearer token's signature does not verify.",
            AuthError::Expired => "The bearer token has expired.",
            AuthError::NotYetValid => "The bearer token is not valid yet.",
            AuthError::WrongIssuer => "The bearer token was issued by an issuer this gateway does not trust.",
            AuthError::WrongAudience => "The bearer token was not issued for this gateway.",
            AuthError::UnknownKey => "The bearer token was signed with a key this gateway does not know.",
            AuthError::KeysUnavailable => {
                "The gateway has not been able to load its identity provider's signing keys yet. Try again shortly."
            }
            AuthError::TenantNotAllowed => {
                "The token's issuer is not trusted to name this tenant on this gateway."
            }
            AuthError::CostCenterNotAllowed => {
                "The token's issuer is not trusted to name this cost centre on this gateway."
            }
        }
    }
}

/// What a verified token says about its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub issuer: String,
    pub subject: String,
    pub tenant: Option<String>,
    pub groups: Vec<String>,
    pub cost_center: Option<String>,
    pub expires_at: u64,
}

pub struct Verifier<'a> {
    pub issuers: &'a [Issuer],
    pub keys: &'a KeyStore,
    pub max_token_bytes: usize,
    pub skew: Duration,
}

impl Verifier<'_> {
    /// Verifies `token` at `now_secs` (Unix time, from the host clock).
    pub fn verify(&self, token: &str, now_secs: u64) -> Result<VerifiedToken, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > self.max_token_bytes {
            return Err(AuthError::TooLarge);
        }
        let meta = Token::decode_metadata(token).map_err(|_| AuthError::Malformed)?;
        let alg = meta.algorithm();
        if !crate::identity::jwks::ALGORITHMS.contains(&alg) {
            return Err(AuthError::Malformed);
        }
        // A token may not tell us where to fetch keys or carry its own key.
        if meta.key_set_url().is_some()
            || meta.public_key().is_some()
            || meta.certificate_url().is_some()
        {
            return Err(AuthError::Malformed);
        }
        if meta.critical().is_some_and(|c| !c.is_empty()) {
            return Err(AuthError::Malformed);
        }

        // The issuer is read before the signature is checked only to pick the keys; an
        // issuer we do not trust is refused before any key is touched.
        let registered = registered_claims(token)?;
        let issuer_name = registered.iss;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.issuer == issuer_name)
            .ok_or(AuthError::WrongIssuer)?;

        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from([issuer.issuer.clone()])),
            allowed_audiences: Some(issuer.audiences.clone()),
            time_tolerance: Some(jwt_simple::prelude::Duration::from_secs(
                self.skew.as_secs(),
            )),
            artificial_time: Some(UnixTimeStamp::from_secs(now_secs)),
            max_token_length: Some(self.max_token_bytes),
            accept_future: false,
            ..Default::default()
        };

        // HMAC only for an issuer with an explicitly configured shared secret: otherwise a
        // public key could be abused as the "secret".
        let hmac_refused = alg.starts_with("HS") && issuer.hmac_secret_env.is_none();
        if hmac_refused
            || issuer
                .algorithms
                .as_ref()
                .is_some_and(|allowed| !allowed.contains(alg))
        {
            return Err(AuthError::Malformed);
        }
        let keys = self
            .keys
            .get(&issuer.issuer)
            .ok_or(AuthError::KeysUnavailable)?;
        let mut candidates = keys.candidates(meta.key_id(), alg).peekable();
        if candidates.peek().is_none() {
            return Err(AuthError::UnknownKey);
        }
        let mut last = AuthError::BadSignature;
        for key in candidates {
            match key.verify::<serde_json::Map<String, serde_json::Value>>(token, options.clone()) {
                Ok(claims) => return finish(issuer, claims, registered.exp),
                Err(e) => {
                    last = classify(&e);
                    if last != AuthError::BadSignature {
                        // The signature verified and a claim failed: no other key will do better.
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

/// The registered claims, read strictly by the contract's reader (shared with the policy
/// service) from the raw payload.
fn registered_claims(token: &str) -> Result<Registered, AuthError> {
    let payload = token.split('.').nth(1).ok_or(AuthError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AuthError::Malformed)?;
    registered::read(&bytes).map_err(|r| match r {
        RegisteredRefusal::Malformed => AuthError::Malformed,
        RegisteredRefusal::NoIssuer => AuthError::WrongIssuer,
    })
}

fn finish(
    issuer: &Issuer,
    claims: JWTClaims<serde_json::Map<String, serde_json::Value>>,
    expires_at: u64,
) -> Result<VerifiedToken, AuthError> {
    let who = issuer
        .claims
        .identify(claims.subject, &claims.custom)
        .map_err(|r| match r {
            ClaimRefusal::Malformed => AuthError::Malformed,
            ClaimRefusal::TenantNotAllowed => AuthError::TenantNotAllowed,
            ClaimRefusal::CostCenterNotAllowed => AuthError::CostCenterNotAllowed,
        })?;
    Ok(VerifiedToken {
        issuer: issuer.issuer.clone(),
        subject: who.subject,
        tenant: who.tenant,
        groups: who.groups,
        cost_center: who.cost_center,
        expires_at,
    })
}

/// The `iss` of a token, unverified: only to decide which issuer's keys to refetch.
pub fn issuer_of(token: &str) -> Option<String> {
    registered_claims(token).ok().map(|r| r.iss)
}

fn classify(e: &jwt_simple::Error) -> AuthError {
    use jwt_simple::JWTError as J;
    match e.downcast_ref::<J>() {
        Some(J::TokenHasExpired) => AuthError::Expired,
        Some(J::TokenNotValidYet) | Some(J::ClockDrift) => AuthError::NotYetValid,
        Some(J::RequiredIssuerMismatch) | Some(J::RequiredIssuerMissing) => AuthError::WrongIssuer,
        Some(J::RequiredAudienceMismatch) | Some(J::RequiredAudienceMissing) => {
            AuthError::WrongAudience
        }
        Some(J::TokenTooLong) => AuthError::TooLarge,
        Some(J::InvalidSignature) | Some(J::InvalidAuthenticationTag) => AuthError::BadSignature,
        // Anything else (bad encoding, bad JSON, wrong header) is a malformed token; note
        // that a signature that fails to parse at all is reported by the crypto layer as
        // an invalid signature, which lands above.
        _ => AuthError::Malformed,
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
