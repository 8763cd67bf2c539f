//! Dev JWTs for the local stack: an ES256 key kept under `.chokepoint/`
//! (git-ignored), its JWKS for the gateway, and a minter that can also make
//! the bad tokens tests need (expired, not yet valid, wrong key, odd claims).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::{
    Audiences, ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair, ES256PublicKey,
    JWTClaims, NoCustomClaims, UnixTimeStamp,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub const DEFAULT_KEY_PATH: &str = ".chokepoint/dev-key.json";
pub const DEFAULT_ISSUER: &str = "https://dev.chokepoint.local";
pub const DEFAULT_AUDIENCE: &str = "chokepoint";
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub enum DevKeyError {
    Io { path: PathBuf, source: io::Error },
    Format { path: PathBuf, reason: String },
}

impl DevKeyError {
    /// True when the key file simply does not exist yet.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

impl fmt::Display for DevKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "dev key file {}: {source}", path.display()),
            Self::Format { path, reason } => {
                write!(f, "dev key file {} is not valid: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for DevKeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Format { .. } => None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    kid: String,
    private_key_pem: String,
}

/// An ES256 signing key with its key id.
pub struct DevKey {
    kid: String,
    key_pair: ES256KeyPair,
}

// jwt-simple's key pair is not `Clone`; round-trip through the raw scalar.
impl Clone for DevKey {
    fn clone(&self) -> Self {
        let key_pair = ES256KeyPair::from_bytes(&self.key_pair.to_bytes())
            .expect("a valid key's own bytes re-import");
        Self {
            kid: self.kid.clone(),
            key_pair: key_pair.with_key_id(&self.kid),
        }
    }
}

// Hand-written so the private key never lands in logs or test output.
impl fmt::Debug for DevKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevKey").field("kid", &self.kid).finish()
    }
}

impl DevKey {
    pub fn generate(kid: impl Into<String>) -> Self {
        let kid = kid.into();
        Self {
            key_pair: ES256KeyPair::generate().with_key_id(&kid),
            kid,
        }
    }

    /// A fresh key whose kid is derived from its own JWK thumbprint, so
    /// regenerated keys never share a kid with stale cached JWKS entries.
    pub fn generate_with_derived_kid() -> Self {
        let key_pair = ES256KeyPair::generate();
        let thumbprint = key_pair.jwk_thumbprint();
        let kid = format!("dev-{}", &thumbprint[..thumbprint.len().min(12)]);
        Self {
            key_pair: key_pair.with_key_id(&kid),
            kid,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn key_pair(&self) -> &ES256KeyPair {
        &self.key_pair
    }

    /// The verifying key, carrying the kid.
    pub fn public_key(&self) -> ES256PublicKey {
        self.key_pair.public_key()
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Self, DevKeyError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| DevKeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        let format_err = |reason: String| DevKeyError::Format {
            path: path.to_owned(),
            reason,
        };
        let file: KeyFile = serde_json::from_str(&text)
            .map_err(|e| format_err(format!("expected {{\"kid\", \"private_key_pem\"}}: {e}")))?;
        let key_pair = ES256KeyPair::from_pem(&file.private_key_pem)
            .map_err(|e| format_err(format!("private_key_pem is not a P-256 key: {e}")))?;
        Ok(Self {
            key_pair: key_pair.with_key_id(&file.kid),
            kid: file.kid,
        })
    }

    /// Writes the key (mode 0600), replacing any existing file atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), DevKeyError> {
        let path = path.as_ref();
        let tmp = self.write_temp(path)?;
        fs::rename(&tmp, path).map_err(|source| {
            let _ = fs::remove_file(&tmp);
            DevKeyError::Io {
                path: path.to_owned(),
                source,
            }
        })
    }

    pub fn load_or_generate(path: impl AsRef<Path>) -> Result<Self, DevKeyError> {
        Self::load_or_generate_reporting(path).map(|(key, _)| key)
    }

    /// Like [`load_or_generate`](Self::load_or_generate); the flag says
    /// whether a new key was generated, so callers can tell the user.
    ///
    /// Two processes racing here (supervisor and minter) end up with the
    /// same key: the new file is linked into place only if none exists.
    pub fn load_or_generate_reporting(path: impl AsRef<Path>) -> Result<(Self, bool), DevKeyError> {
        let path = path.as_ref();
        match Self::load(path) {
            Ok(key) => return Ok((key, false)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let key = Self::generate_with_derived_kid();
        let tmp = key.write_temp(path)?;
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok((key, true)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok((Self::load(path)?, false)),
            Err(source) => Err(DevKeyError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn write_temp(&self, path: &Path) -> Result<PathBuf, DevKeyError> {
        let io_err = |source| DevKeyError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io_err)?;
        }
        let pem = self.key_pair.to_pem().map_err(|e| DevKeyError::Format {
            path: path.to_owned(),
            reason: format!("cannot encode key: {e}"),
        })?;
        let body = serde_json::to_string_pretty(&KeyFile {
            kid: self.kid.clone(),
            private_key_pem: pem,
        })
        .expect("key file serializes");
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = fs::remove_file(&tmp);
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let written = opts.open(&tmp).and_then(|mut f| {
            f.write_all(body.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        });
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(source));
        }
        Ok(tmp)
    }

    /// This key as one JWK (public part only).
    pub fn jwk(&self) -> Value {
        let point = self
            .key_pair
            .public_key()
            .public_key()
            .to_bytes_uncompressed();
        // Uncompressed SEC1: 0x04 || x (32 bytes) || y (32 bytes).
        let (x, y) = point[1..].split_at(32);
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        })
    }

    /// `{"keys":[<jwk>]}`, what the gateway fetches to verify dev tokens.
    pub fn jwks_json(&self) -> String {
        jwks_json(std::slice::from_ref(self))
    }

    /// Signs a token for `spec`. Panics only if signing itself fails, which
    /// for an in-memory P-256 key and JSON claims does not happen.
    pub fn mint(&self, spec: &TokenSpec) -> String {
        self.key_pair
            .sign(spec.claims())
            .expect("ES256 signing of JSON claims cannot fail")
    }
}

/// A JWKS holding several keys, for key-rotation tests.
pub fn jwks_json(keys: &[DevKey]) -> String {
    json!({ "keys": keys.iter().map(DevKey::jwk).collect::<Vec<_>>() }).to_string()
}

/// What goes into a token. Build with [`TokenSpec::new`] and the `with_*`
/// methods, or set fields directly.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSpec {
    pub subject: String,
    pub issuer: String,
    pub audience: String,
    /// Custom claim `tenant`; omitted when `None`.
    pub tenant: Option<String>,
    /// Custom claim `groups`; omitted when empty.
    pub groups: Vec<String>,
    /// `exp` = `iat` + `ttl`.
    pub ttl: Duration,
    /// `iat`; now when `None`. Set in the past to mint expired tokens.
    pub issued_at: Option<SystemTime>,
    /// `nbf`; equal to `iat` when `None`.
    pub not_before: Option<SystemTime>,
    /// Extra claims, applied last: they override `tenant`, `groups` and the
    /// standard claims of the same name, and a `null` value removes that
    /// claim from the token (e.g. `"exp": null` for a token without expiry).
    pub extra: Map<String, Value>,
}

impl TokenSpec {
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            issuer: DEFAULT_ISSUER.into(),
            audience: DEFAULT_AUDIENCE.into(),
            tenant: None,
            groups: Vec::new(),
            ttl: DEFAULT_TTL,
            issued_at: None,
            not_before: None,
            extra: Map::new(),
        }
    }

    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    pub fn with_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn with_not_before(mut self, not_before: SystemTime) -> Self {
        self.not_before = Some(not_before);
        self
    }

    pub fn with_issued_at(mut self, issued_at: SystemTime) -> Self {
        self.issued_at = Some(issued_at);
        self
    }

    /// Makes the token expire `ago` before now (keeping its `ttl`), e.g.
    /// `expired(Duration::from_secs(3600))`. Pick `ago` beyond the verifier's
    /// clock-skew tolerance.
    pub fn expired(mut self, ago: Duration) -> Self {
        let back = self.ttl + ago;
        self.issued_at = Some(SystemTime::now().checked_sub(back).unwrap_or(UNIX_EPOCH));
        self
    }

    pub fn with_claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.extra.insert(name.into(), value);
        self
    }

    fn claims(&self) -> JWTClaims<Map<String, Value>> {
        let iat = self.issued_at.unwrap_or_else(SystemTime::now);
        let nbf = self.not_before.unwrap_or(iat);
        let mut custom = Map::new();
        if let Some(t) = &self.tenant {
            custom.insert("tenant".into(), Value::from(t.as_str()));
        }
        if !self.groups.is_empty() {
            custom.insert("groups".into(), json!(self.groups));
        }
        let mut claims = JWTClaims {
            issued_at: Some(timestamp(iat)),
            expires_at: Some(timestamp(iat + self.ttl)),
            invalid_before: Some(timestamp(nbf)),
            issuer: Some(self.issuer.clone()),
            subject: Some(self.subject.clone()),
            audiences: Some(Audiences::AsString(self.audience.clone())),
            jwt_id: Some(random_id()),
            nonce: None,
            custom,
        };
        for (name, value) in &self.extra {
            // Clear the typed field so the claim appears once, from `extra`.
            match name.as_str() {
                "iat" => claims.issued_at = None,
                "exp" => claims.expires_at = None,
                "nbf" => claims.invalid_before = None,
                "iss" => claims.issuer = None,
                "sub" => claims.subject = None,
                "aud" => claims.audiences = None,
                "jti" => claims.jwt_id = None,
                "nonce" => claims.nonce = None,
                _ => {}
            }
            if value.is_null() {
                claims.custom.remove(name);
            } else {
                claims.custom.insert(name.clone(), value.clone());
            }
        }
        claims
    }
}

fn timestamp(t: SystemTime) -> UnixTimeStamp {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UnixTimeStamp::from_secs(secs)
}

/// 24 random bytes, base64url; uses jwt-simple's CSPRNG rather than adding
/// a dependency for one value.
pub(crate) fn random_id() -> String {
    JWTClaims::<NoCustomClaims>::new().create_nonce()
}
