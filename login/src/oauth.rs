//! The OAuth 2.0 requests: the client credentials grant (RFC 6749 §4.4), the refresh token
//! grant (§6) and the device authorization grant (RFC 8628), each a form POST whose answer
//! is read up to a bound, within a timeout.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use ureq::Agent;

/// Token and device responses are a few kilobytes; an answer past this is not one.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

pub struct Client {
    agent: Agent,
    pub token_url: String,
    pub client_id: String,
    secret: Option<String>,
    scope: Option<String>,
}

/// RFC 6749 §5.1.
#[derive(Debug, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// RFC 8628 §3.2.
#[derive(Debug, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    #[serde(default)]
    pub interval: Option<u64>,
}

/// Why a request got no token.
#[derive(Debug)]
pub enum Failure {
    /// The server answered with an OAuth error (RFC 6749 §5.2): its code and description.
    Refused { code: String, description: String },
    /// No usable answer: unreachable, timed out, not JSON, too large.
    Transport(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused { code, description } if description.is_empty() => {
                write!(f, "the identity provider refused: {code}")
            }
            Self::Refused { code, description } => {
                write!(f, "the identity provider refused: {code} ({description})")
            }
            Self::Transport(e) => f.write_str(e),
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Client {
    pub fn new(
        token_url: String,
        client_id: String,
        secret: Option<String>,
        scope: Option<String>,
        timeout: Duration,
        ca_pem: Option<Vec<u8>>,
    ) -> Result<Self, String> {
        let mut config = Agent::config_builder()
            .timeout_global(Some(timeout))
            // Error bodies carry the OAuth error code.
            .http_status_as_error(false)
            // A token endpoint answers; it does not send the client (and its secret) on.
            .max_redirects(0)
            .user_agent(concat!("chokepoint-login/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--ca-file: {e}"))?;
            if certs.is_empty() {
                return Err("--ca-file holds no certificate".into());
            }
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        Ok(Self {
            agent: config.build().into(),
            token_url,
            client_id,
            secret,
            scope,
        })
    }

    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    pub fn client_credentials(&self) -> Result<Tokens, Failure> {
        self.token(&[("grant_type", "client_credentials")])
    }

    pub fn refresh(&self, refresh_token: &str) -> Result<Tokens, Failure> {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
    }

    pub fn poll_device(&self, device_code: &str) -> Result<Tokens, Failure> {
        self.token(&[
            ("grant_type", DEVICE_CODE_GRANT),
            ("device_code", device_code),
        ])
    }

    pub fn device_authorization(&self, device_url: &str) -> Result<DeviceAuthorization, Failure> {
        let mut form = vec![("client_id", self.client_id.as_str())];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        self.post(device_url, &form, false)
    }

    fn token(&self, grant: &[(&str, &str)]) -> Result<Tokens, Failure> {
        let mut form = grant.to_vec();
        // A public client names itself in the body (RFC 6749 §3.2.1); a confidential one
        // authenticates with HTTP Basic (§2.3.1), which every server must accept.
        if self.secret.is_none() {
            form.push(("client_id", &self.client_id));
        }
        if let Some(scope) = &self.scope {
            if grant
                .first()
                .is_some_and(|(_, g)| *g == "client_credentials")
            {
                form.push(("scope", scope));
            }
        }
        self.post(&self.token_url, &form, true)
    }

    fn post<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        form: &[(&str, &str)],
        authenticate: bool,
    ) -> Result<T, Failure> {
        let mut request = self.agent.post(url).header("accept", "application/json");
        if let (true, Some(secret)) = (authenticate, &self.secret) {
            let pair = format!("{}:{}", form_encode(&self.client_id), form_encode(secret));
            request = request.header("authorization", format!("Basic {}", STANDARD.encode(pair)));
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut response = request
            .content_type("application/x-www-form-urlencoded")
            .send(body)
            .map_err(|e| Failure::Transport(format!("{url}: {e}")))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .map_err(|e| {
                Failure::Transport(format!("{url}: HTTP {status}, unreadable answer: {e}"))
            })?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                Failure::Transport(format!("{url}: HTTP {status}, not a token response: {e}"))
            });
        }
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(e) => Err(Failure::Refused {
                code: e.error,
                description: e.error_description.unwrap_or_default(),
            }),
            Err(_) => Err(Failure::Transport(format!("{url}: HTTP {status}"))),
        }
    }
}

/// application/x-www-form-urlencoded (RFC 6749 Appendix B): unreserved bytes as they
/// are, space as `+`, the rest percent-encoded.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::form_encode;

    #[test]
    fn form_encoding_follows_appendix_b() {
        assert_eq!(form_encode("a b:c/d%é"), "a+b%3Ac%2Fd%25%C3%A9");
        assert_eq!(form_encode("urn:ietf:params"), "urn%3Aietf%3Aparams");
        assert_eq!(form_encode("Az09-._*"), "Az09-._*");
    }
}
