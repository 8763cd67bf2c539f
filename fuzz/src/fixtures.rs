//! Fixed keys and a fixed plugin configuration for the targets that need a configured
//! filter (jwt, routing), and the signing the seed corpus and the jwt target use.
//!
//! The private keys here are deterministic test keys with no use outside this crate: the
//! fuzzer signs its own header and claims with them so it reaches the claim checks that
//! come after a good signature.

use std::sync::OnceLock;

use base64::Engine as _;
use jwt_simple::prelude::*;
use serde_json::{json, Value};

pub const ISSUER: &str = "https://idp.test";
/// An issuer with an HMAC secret, required claims and renamed claims.
pub const HMAC_ISSUER: &str = "https://hmac.test";
/// An issuer whose keys are fetched (none are, here: `jwks_unavailable`).
pub const REMOTE_ISSUER: &str = "https://remote.test";
pub const AUDIENCE: &str = "chokepoint";
pub const NOW: u64 = 1_800_000_000;
pub const HMAC_SECRET: &[u8] = b"fuzz-hmac-secret-of-at-least-32-bytes!!";

/// The public half of a 2048-bit RSA key (its private half was thrown away): RS256
/// tokens reach RSA verification and fail there.
const RSA_N: &str = "wqIh-BXlVl4oQlKaCmT4v6RoCK650DJEnRLAfnyKv3be8aGxE6C1YiLBBBRYCdoWwinBeQkgw7FCGx_oJiusdFm16MdXqhAJXmxXwv8yogUpxITcaT-iBVLeYTKOkbp0JKPgYMoR-Mv-t51K7nPzaQgBwMI1Q1_BDj__R2FSptnMZa2-Jd0bgnqTevIoKpD6DA9NmHqT2NqPXGQNEkVx4NYa3hIUKkK7jlWLL7-EBGzg89nsBk0SbJcgkf6c_JKUYj4qTT-CiZ4eyoscZ4k8zdhmUNfY0VtF5tzi6l3QF5l2Az0X-7BqqTc2C61tanYmE7sn7mW93VmQHrGjhq0dLw";

pub struct Keys {
    pub es256: ES256KeyPair,
    pub ed: ed25519_compact::KeyPair,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        es256: ES256KeyPair::from_bytes(&[0x11; 32])
            .expect("fixed P-256 scalar")
            .with_key_id("es-1"),
        ed: ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([0x22; 32])),
    })
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn ed_jwk() -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": b64(keys().ed.pk.as_ref())})
}

pub fn jwks() -> Value {
    let es: Value = serde_json::from_str(&keys().es256.public_key().to_jwk()).expect("jwk is JSON");
    json!({"keys": [
        es,
        ed_jwk(),
        {"kty": "RSA", "kid": "rs-1", "alg": "RS256", "use": "sig", "n": RSA_N, "e": "AQAB"},
    ]})
}

/// The plugin configuration the jwt and routing targets run under.
pub fn config_json() -> Value {
    let es: Value = serde_json::from_str(&keys().es256.public_key().to_jwk()).expect("jwk is JSON");
    json!({
        "issuers": [
            {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": jwks(),
             "trust": {"tenants": ["*"], "groups": ["*"], "cost_centers": ["*"]}},
            {"issuer": HMAC_ISSUER, "audiences": [AUDIENCE, "other"], "jwks": {"keys": [es]},
             "hmac_secret_env": "FUZZ_HMAC_SECRET", "algorithms": ["HS256", "ES256"],
             "required_claims": ["email"], "tenant_claim": "org", "groups_claim": "roles",
             "cost_center_claim": "cc",
             "trust": {"tenants": ["acme", "org-*"], "groups": ["ml", "*-admins"], "cost_centers": ["cc-*"]}},
            {"issuer": REMOTE_ISSUER, "audiences": [AUDIENCE],
             "jwks_uri": {"cluster": "idp", "path": "/jwks"},
             "trust": {"tenants": ["remote"], "groups": [], "cost_centers": []}},
        ],
        "token_sources": [
            {"header": "authorization"},
            {"header": "cf-access-jwt-assertion"},
            {"cookie": "CF_Authorization"},
        ],
        "policy": {"cluster": "policy"},
        "providers": [
            {"name": "openai", "api": "openai", "cluster": "p_openai", "key_env": "OPENAI_API_KEY"},
            {"name": "backup", "api": "openai", "cluster": "p_backup", "key_env": "BACKUP_KEY"},
            {"name": "anthropic", "api": "anthropic", "cluster": "p_anthropic", "key_env": "ANTHROPIC_API_KEY"},
            {"name": "gemini", "api": "gemini", "cluster": "p_gemini", "key_env": "GEMINI_API_KEY"},
            {"name": "azure", "api": "azure", "cluster": "p_azure", "key_env": "AZURE_KEY",
             "deployments": {"prod-41": "gpt-4.1-mini"}, "internal": true},
        ],
        "models": {
            "aliases": {"default": "gpt-4.1-mini", "smart": "claude-sonnet-4-5"},
            "routes": [
                {"model": "gpt-4.1-mini", "providers": ["openai", "backup", "azure"]},
                {"model": "claude-opus-*", "providers": ["anthropic"], "allow_groups": ["research"]},
                {"model": "claude-*", "providers": ["anthropic"], "allow_tenants": ["acme"]},
                {"model": "gpt-*-mini*", "providers": ["openai"]},
                {"model": "gemini-*", "providers": ["gemini"]},
                {"model": "*", "providers": ["backup"], "allow_groups": ["admins"]},
            ],
        },
        "prices": {"models": {
            "gpt-4.1-mini": {"input_per_mtok_usd": "0.40", "output_per_mtok_usd": "1.60"},
            "claude-*": {"input_per_mtok_usd": "15", "output_per_mtok_usd": "75",
                         "long_context": {"above_input_tokens": 200000, "input_per_mtok_usd": "30",
                                          "output_per_mtok_usd": "112.50"}},
        }},
    })
}

pub fn env(name: &str) -> Option<String> {
    match name {
        "FUZZ_HMAC_SECRET" => Some(String::from_utf8_lossy(HMAC_SECRET).into_owned()),
        "CHOKEPOINT_UUID_SALT" => Some("0123456789abcdef-fuzz-salt".into()),
        "CHOKEPOINT_POLICY_TOKEN" => Some("fuzz-policy-token-0123456789abcdef".into()),
        _ => Some(format!("key-of-{name}")),
    }
}

/// `header.payload.signature` with the header and payload bytes as given, HS256 over the
/// fixed secret.
pub fn sign_hs256(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let mac = hmac_sha256::HMAC::mac(input.as_bytes(), HMAC_SECRET);
    format!("{input}.{}", b64(&mac))
}

/// The same, EdDSA with the fixed Ed25519 key (`kid` `ed-1`).
pub fn sign_eddsa(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = keys().ed.sk.sign(input.as_bytes(), None);
    format!("{input}.{}", b64(sig.as_ref()))
}

/// Claims valid at [`NOW`] for subject `alice` of [`ISSUER`].
pub fn good_claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": NOW - 10, "nbf": NOW - 10,
           "exp": NOW + 3600, "tenant": "acme", "groups": ["ml", "eng"], "cost_center": "cc-7"})
}
