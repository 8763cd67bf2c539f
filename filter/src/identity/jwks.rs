//! A JSON Web Key Set turned into verification keys, once, at configuration time.
//!
//! Each JWK is bound to exactly one algorithm here (from its `alg`, or its curve), so a
//! token can never pick how its own signature is checked: the key decides.

use jwt_simple::prelude::*;

use crate::identity::rs256_key::Rs256Key;

/// Every algorithm the gateway can verify. `none` is absent on purpose; the HMAC ones are
/// only used for an issuer whose shared secret is explicitly configured.
pub const ALGORITHMS: [&str; 12] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
    "HS384", "HS512",
];

/// One verification key and the algorithm it verifies.
#[derive(Clone)]
pub enum VerifyingKey {
    Hs256(HS256Key),
    Hs384(HS384Key),
    Hs512(HS512Key),
    /// Checked by [`crate::identity::rsa`] (see [`Rs256Key`]): jwt-simple's RSA is 7x slower in wasm.
    Rs256(Box<Rs256Key>),
    Rs384(RS384PublicKey),
    Rs512(RS512PublicKey),
    Ps256(PS256PublicKey),
    Ps384(PS384PublicKey),
    Ps512(PS512PublicKey),
    Es256(ES256PublicKey),
    Es384(ES384PublicKey),
    EdDsa(Ed25519PublicKey),
}

impl VerifyingKey {
    pub fn algorithm(&self) -> &'static str {
        match self {
            VerifyingKey::Hs256(_) => "HS256",
            VerifyingKey::Hs384(_) => "HS384",
            VerifyingKey::Hs512(_) => "HS512",
            VerifyingKey::Rs256(_) => "RS256",
            VerifyingKey::Rs384(_) => "RS384",
            VerifyingKey::Rs512(_) => "RS512",
            VerifyingKey::Ps256(_) => "PS256",
            VerifyingKey::Ps384(_) => "PS384",
            VerifyingKey::Ps512(_) => "PS512",
            VerifyingKey::Es256(_) => "ES256",
            VerifyingKey::Es384(_) => "ES384",
            VerifyingKey::EdDsa(_) => "EdDSA",
        }
    }

    pub fn verify<C: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        options: VerificationOptions,
    ) -> Result<JWTClaims<C>, jwt_simple::Error> {
        let o = Some(options);
        match self {
            VerifyingKey::Hs256(k) => outlined(|| k.verify_token(token, o)),
            VerifyingKey::Hs384(k) => outlined(|| k.verify_token(token, o)),
            VerifyingKey::Hs512(k) => outlined(|| k.verify_token(token, o)),
            VerifyingKey::Rs256(k) => outlined(|| k.verify_token(token, o)),
            VerifyingKey::Rs384(k) => outlined(|| k.verify_token(token, o)),
            VerifyingKey::Rs512(k) => outlined(|| k.verify_token(token, o)),
            VerifyingKey::Ps256(k) => outlined(|| k.verify_token(token, o)),
            VerifyingKey::Ps384(k) => outlined(|| k.verify_token(token, o)),
            VerifyingKey::Ps512(k) => outlined(|| k.verify_token(token, o)),
            VerifyingKey::Es256(k) => outlined(|| k.verify_token(token, o)),
            VerifyingKey::Es384(k) => outlined(|| k.verify_token(token, o)),
            VerifyingKey::EdDsa(k) => outlined(|| k.verify_token(token, o)),
        }
    }
}

/// One call per algorithm, kept out of line: inlined, the twelve `verify_token` bodies made
/// one 80 KB function, and V8 compiles a function that size with a zone of many megabytes
/// that Envoy's allocator keeps after the load.
#[inline(never)]
fn outlined<T>(f: impl FnOnce() -> T) -> T {
    f()
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey({})", self.algorithm())
    }
}

#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub kid: Option<String>,
    pub key: VerifyingKey,
}

/// The keys of one issuer.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    pub keys: Vec<KeyEntry>,
}

impl KeySet {
    /// Builds a key set from a JWKS document (`{"keys": [...]}`). Keys for encryption
    /// (`use: enc`) are skipped; a key that cannot be used for signatures is an error,
    /// because a silently dropped key shows up later as a mysterious `unknown_key`.
    pub fn from_jwks(jwks: &serde_json::Value) -> Result<KeySet, String> {
        Self::parse(jwks, false).map(|(set, _)| set)
    }

    /// For a JWKS fetched from an identity provider: keys of types the gateway cannot use
    /// are skipped (and counted) instead of failing the whole set, which the provider may
    /// share with other relying parties.
    pub fn from_fetched(bytes: &[u8]) -> Result<(KeySet, usize), String> {
        let jwks: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        Self::parse(&jwks, true)
    }

    fn parse(jwks: &serde_json::Value, lenient: bool) -> Result<(KeySet, usize), String> {
        let mut skipped = 0;
        let keys = jwks
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| "must be a JWKS object with a \"keys\" array".to_string())?;
        let mut out = Vec::with_capacity(keys.len());
        if keys.len() > MAX_KEYS {
            return Err(format!(
                "has {} keys; at most {MAX_KEYS} are accepted",
                keys.len()
            ));
        }
        for (i, jwk) in keys.iter().enumerate() {
            if jwk.get("use").and_then(|u| u.as_str()) == Some("enc") {
                continue;
            }
            let key = match parse_jwk(jwk) {
                Ok(k) => k,
                Err(_) if lenient => {
                    skipped += 1;
                    continue;
                }
                Err(m) => return Err(format!("keys[{i}]: {m}")),
            };
            let kid = jwk.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
            out.push(KeyEntry { kid, key });
        }
        if out.is_empty() {
            return Err("contains no usable signature key".into());
        }
        Ok((KeySet { keys: out }, skipped))
    }

    /// Adds the HMAC keys for an issuer with a configured shared secret. They carry no
    /// `kid`, so they are candidates for any token of their algorithm.
    pub fn add_hmac(&mut self, secret: &[u8]) {
        for key in [
            VerifyingKey::Hs256(HS256Key::from_bytes(secret)),
            VerifyingKey::Hs384(HS384Key::from_bytes(secret)),
            VerifyingKey::Hs512(HS512Key::from_bytes(secret)),
        ] {
            self.keys.push(KeyEntry { kid: None, key });
        }
    }

    /// Keys that may verify a token with this `kid` and `alg`: with a `kid`, the key of
    /// that id (or a key that has none); without one, every key of the algorithm.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: &'a str,
    ) -> impl Iterator<Item = &'a VerifyingKey> + 'a {
        self.keys
            .iter()
            .filter(move |e| match (kid, e.kid.as_deref()) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .map(|e| &e.key)
            .filter(move |k| k.algorithm() == alg)
    }
}

/// A JWKS with more keys than this is a misconfiguration or an attack on memory.
pub const MAX_KEYS: usize = 64;

fn parse_jwk(jwk: &serde_json::Value) -> Result<VerifyingKey, String> {
    let text = jwk.to_string();
    let kty = jwk.get("kty").and_then(|v| v.as_str()).unwrap_or("");
    let alg = jwk.get("alg").and_then(|v| v.as_str());
    let crv = jwk.get("crv").and_then(|v| v.as_str());
    let e = |err: jwt_simple::Error| format!("invalid {kty} key: {err}");
    let key = match (kty, alg, crv) {
        ("RSA", Some("RS256") | None, _) => {
            let key = RS256PublicKey::from_jwk(&text).map_err(e)?;
            VerifyingKey::Rs256(Box::new(Rs256Key::new(&key).map_err(|m| format!("invalid RSA key: {m}"))?))
        }
        ("RSA", Some("RS384"), _) => VerifyingKey::Rs384(RS384PublicKey::from_jwk(&text).map_err(e)?),
        ("RSA", Some("RS512"), _) => VerifyingKey::Rs512(RS512PublicKey::from_jwk(&text).map_err(e)?),
        ("RSA", Some("PS256"), _) => VerifyingKey::Ps256(PS256PublicKey::from_jwk(&text).map_err(e)?),
        ("RSA", Some("PS384"), _) => VerifyingKey::Ps384(PS384PublicKey::from_jwk(&text).map_err(e)?),
        ("RSA", Some("PS512"), _) => VerifyingKey::Ps512(PS512PublicKey::from_jwk(&text).map_err(e)?),
        ("EC", Some("ES256") | None, Some("P-256")) => {
            VerifyingKey::Es256(ES256PublicKey::from_jwk(&text).map_err(e)?)
        }
        ("EC", Some("ES384") | None, Some("P-384")) => {
            VerifyingKey::Es384(ES384PublicKey::from_jwk(&text).map_err(e)?)
        }
        ("OKP", Some("EdDSA" | "Ed25519") | None, Some("Ed25519")) => {
            VerifyingKey::EdDsa(Ed25519PublicKey::from_jwk(&text).map_err(e)?)
        }
        (kty, alg, crv) => {
            return Err(format!(
                "unsupported key (kty {kty:?}, alg {alg:?}, crv {crv:?}); supported: RSA (RS*/PS*), EC P-256/P-384, OKP Ed25519"
            ))
        }
    };
    Ok(key)
}
