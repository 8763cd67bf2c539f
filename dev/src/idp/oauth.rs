//! The mock IdP's OAuth 2.0 token service, so a token helper can be tested against the
//! standard flows: the device authorization endpoint (RFC 8628 §3.1-3.2) and the token
//! endpoint (RFC 6749 §3.2) for the device code grant (RFC 8628 §3.4-3.5), the refresh
//! token grant (RFC 6749 §6) and the client credentials grant (RFC 6749 §4.4). Access
//! tokens are JWTs signed with the dev key, so the dev gateway trusts them.
//!
//! A test plays the person at the verification page: `POST /__idp/device/approve` with
//! the user code and who they are. `POST /__idp/revoke` ends every refresh token (an
//! administrator ending the sessions).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::devtoken::{random_id, DevKey, TokenSpec};

pub const TOKEN_PATH: &str = "/oauth/token";
pub const DEVICE_PATH: &str = "/oauth/device";
pub const VERIFICATION_PATH: &str = "/device";
pub const APPROVE_PATH: &str = "/__idp/device/approve";
pub const REVOKE_PATH: &str = "/__idp/revoke";

pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A registered client: a public one (no secret) may use the device and refresh grants;
/// a confidential one (a secret) the client credentials grant, as the robot it names.
#[derive(Debug, Clone, Deserialize)]
pub struct Client {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Who a client credentials token is for (default: the client id).
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ClientsFile {
    clients: Vec<Client>,
}

/// Reads `{"clients": [...]}`.
pub fn load_clients(path: &Path) -> Result<Vec<Client>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: ClientsFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(file.clients)
}

pub struct Settings {
    pub key: DevKey,
    pub issuer: String,
    pub audience: String,
    pub clients: Vec<Client>,
    pub token_ttl: Duration,
    /// How long a device code may be approved (`expires_in`).
    pub device_ttl: Duration,
    /// The polling interval the device endpoint asks for.
    pub device_interval: Duration,
}

/// Who a token is for.
#[derive(Debug, Clone, Deserialize)]
pub struct Identity {
    pub subject: String,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

struct Device {
    client_id: String,
    user_code: String,
    expires: Instant,
    decision: Option<Result<Identity, ()>>,
}

#[derive(Default)]
struct Sessions {
    /// By device code.
    devices: HashMap<String, Device>,
    /// By refresh token: (client id, identity). A refresh rotates it.
    refresh: HashMap<String, (String, Identity)>,
    /// Token requests answered with a token, by grant type.
    issued: HashMap<String, u64>,
    device_requests: u64,
}

#[derive(Clone)]
pub struct OAuth {
    settings: Arc<Settings>,
    sessions: Arc<Mutex<Sessions>>,
}

impl OAuth {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings: Arc::new(settings),
            sessions: Arc::default(),
        }
    }

    fn client(&self, id: &str) -> Option<&Client> {
        self.settings.clients.iter().find(|c| c.client_id == id)
    }

    pub fn stats(&self) -> Value {
        let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        json!({"tokens_issued": s.issued, "device_requests": s.device_requests})
    }

    fn token_response(
        &self,
        grant: &str,
        client_id: &str,
        who: &Identity,
        refresh: bool,
    ) -> Response {
        let mut spec = TokenSpec::new(&who.subject)
            .with_issuer(&self.settings.issuer)
            .with_audience(&self.settings.audience)
            .with_groups(who.groups.iter().cloned())
            .with_ttl(self.settings.token_ttl)
            .with_claim("client_id", Value::from(client_id));
        if let Some(t) = &who.tenant {
            spec = spec.with_tenant(t);
        }
        let mut body = json!({
            "access_token": self.settings.key.mint(&spec),
            "token_type": "Bearer",
            "expires_in": self.settings.token_ttl.as_secs(),
        });
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if refresh {
            let token = random_id();
            s.refresh
                .insert(token.clone(), (client_id.to_string(), who.clone()));
            body["refresh_token"] = Value::from(token);
        }
        *s.issued.entry(grant.to_string()).or_default() += 1;
        // RFC 6749 §5.1: responses carrying tokens are not cached.
        (
            StatusCode::OK,
            [(header::CACHE_CONTROL, "no-store")],
            Json(body),
        )
            .into_response()
    }
}

/// RFC 6749 §5.2 (and RFC 8628 §3.5's device-flow codes).
fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

fn bad_request(code: &str, description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, code, description)
}

/// The client's id and secret, from HTTP Basic (RFC 6749 §2.3.1, each part
/// form-urlencoded) or else from the body.
fn client_auth(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (Option<String>, Option<String>) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    if let Some((id, secret)) = basic.as_deref().and_then(|b| b.split_once(':')) {
        return (Some(url_decode(id)), Some(url_decode(secret)));
    }
    (
        form.get("client_id").cloned(),
        form.get("client_secret").cloned(),
    )
}

/// application/x-www-form-urlencoded decoding of one component.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub async fn token(
    State(oauth): State<OAuth>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (client_id, secret) = client_auth(&headers, &form);
    let Some(client_id) = client_id else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "no client id");
    };
    let Some(client) = oauth.client(&client_id).cloned() else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    };
    if client.client_secret.is_some() && client.client_secret != secret {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    match grant {
        "client_credentials" => {
            if client.client_secret.is_none() {
                return bad_request(
                    "unauthorized_client",
                    "a public client has no client credentials grant",
                );
            }
            let who = Identity {
                subject: client
                    .subject
                    .clone()
                    .unwrap_or_else(|| client.client_id.clone()),
                tenant: client.tenant.clone(),
                groups: client.groups.clone(),
            };
            // RFC 6749 §4.4.3: no refresh token for this grant.
            oauth.token_response(grant, &client_id, &who, false)
        }
        "refresh_token" => {
            let Some(presented) = form.get("refresh_token") else {
                return bad_request("invalid_request", "refresh_token is missing");
            };
            let entry = {
                let mut s = oauth.sessions.lock().unwrap_or_else(|e| e.into_inner());
                match s.refresh.get(presented) {
                    Some((owner, _)) if owner == &client_id => s.refresh.remove(presented),
                    _ => None,
                }
            };
            match entry {
                Some((_, who)) => oauth.token_response(grant, &client_id, &who, true),
                None => bad_request(
                    "invalid_grant",
                    "the refresh token is invalid, expired or revoked",
                ),
            }
        }
        DEVICE_CODE_GRANT => {
            let Some(code) = form.get("device_code") else {
                return bad_request("invalid_request", "device_code is missing");
            };
            let outcome = {
                let mut s = oauth.sessions.lock().unwrap_or_else(|e| e.into_inner());
                match s.devices.get(code) {
                    None => Err(bad_request("invalid_grant", "unknown device code")),
                    Some(d) if d.client_id != client_id => Err(bad_request(
                        "invalid_grant",
                        "the device code is another client's",
                    )),
                    Some(d) if d.expires <= Instant::now() => {
                        s.devices.remove(code);
                        Err(bad_request("expired_token", "the device code expired"))
                    }
                    Some(d) => match &d.decision {
                        None => Err(bad_request("authorization_pending", "not approved yet")),
                        Some(Err(())) => {
                            s.devices.remove(code);
                            Err(bad_request("access_denied", "the user denied the request"))
                        }
                        // A device code is used once.
                        Some(Ok(who)) => {
                            let who = who.clone();
                            s.devices.remove(code);
                            Ok(who)
                        }
                    },
                }
            };
            match outcome {
                Ok(who) => oauth.token_response(grant, &client_id, &who, true),
                Err(response) => response,
            }
        }
        "" => bad_request("invalid_request", "grant_type is missing"),
        _ => bad_request(
            "unsupported_grant_type",
            "this server does not support that grant",
        ),
    }
}

pub async fn device_authorization(
    State(oauth): State<OAuth>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (client_id, _) = client_auth(&headers, &form);
    let Some(client_id) = client_id.filter(|id| oauth.client(id).is_some()) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    };
    let device_code = random_id();
    let user_code = user_code();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let uri = format!("http://{host}{VERIFICATION_PATH}");
    let mut s = oauth.sessions.lock().unwrap_or_else(|e| e.into_inner());
    s.device_requests += 1;
    // Codes nobody polled to the end would otherwise stay for the life of the process.
    let now = Instant::now();
    s.devices.retain(|_, d| d.expires > now);
    s.devices.insert(
        device_code.clone(),
        Device {
            client_id,
            user_code: user_code.clone(),
            expires: Instant::now() + oauth.settings.device_ttl,
            decision: None,
        },
    );
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "verification_uri_complete": format!("{uri}?user_code={user_code}"),
            "expires_in": oauth.settings.device_ttl.as_secs(),
            "interval": oauth.settings.device_interval.as_secs(),
        })),
    )
        .into_response()
}

/// Eight letters from RFC 8628 §6.1's base-20 set (no vowels), shown as XXXX-XXXX.
fn user_code() -> String {
    const SET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let letters: Vec<char> = random_id()
        .bytes()
        .take(8)
        .map(|b| SET[usize::from(b) % SET.len()] as char)
        .collect();
    let (a, b) = letters.split_at(4);
    format!(
        "{}-{}",
        a.iter().collect::<String>(),
        b.iter().collect::<String>()
    )
}

#[derive(Deserialize)]
pub struct Approval {
    user_code: String,
    #[serde(default)]
    deny: bool,
    #[serde(flatten)]
    who: Option<Identity>,
}

/// What the person does at the verification page: approve (as `who`) or deny.
pub async fn approve(State(oauth): State<OAuth>, Json(a): Json<Approval>) -> Response {
    let mut s = oauth.sessions.lock().unwrap_or_else(|e| e.into_inner());
    let Some(device) = s
        .devices
        .values_mut()
        .find(|d| d.user_code == a.user_code && d.decision.is_none())
    else {
        return (
            StatusCode::NOT_FOUND,
            "no pending device code with that user code",
        )
            .into_response();
    };
    device.decision = Some(match (a.deny, a.who) {
        (false, Some(who)) => Ok(who),
        (false, None) => {
            return (StatusCode::BAD_REQUEST, "approve as whom? (subject)").into_response()
        }
        (true, _) => Err(()),
    });
    StatusCode::NO_CONTENT.into_response()
}

pub async fn revoke(State(oauth): State<OAuth>) -> Response {
    let mut s = oauth.sessions.lock().unwrap_or_else(|e| e.into_inner());
    s.refresh.clear();
    StatusCode::NO_CONTENT.into_response()
}

/// The verification page a real IdP would render; here a pointer to the approval endpoint.
pub async fn verification_page() -> &'static str {
    "chokepoint mock IdP: approve a device code with POST /__idp/device/approve {\"user_code\", \"subject\", \"tenant\", \"groups\"}\n"
}

#[cfg(test)]
mod tests {
    use super::url_decode;

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(url_decode("a+b%3Ac%2Fd%25"), "a b:c/d%");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz%4"), "%zz%4");
        assert_eq!(url_decode("%C3%A9"), "é");
    }
}
