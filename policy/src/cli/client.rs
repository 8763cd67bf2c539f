//! A minimal client for the policy service's admin API: bearer token, JSON in and out,
//! the service's error messages passed on as they are.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::Remote;

pub struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    pub fn new(remote: &Remote) -> Result<Self, String> {
        let token = remote
            .admin_token
            .clone()
            .filter(|token| !token.is_empty())
            .ok_or(
                "no admin token: set CHOKEPOINT_ADMIN_TOKEN (or pass --admin-token) to the \
                 policy service's admin token",
            )?;
        let base = remote.admin_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "--admin-url must start with http:// (got {:?})",
                remote.admin_url
            ));
        }
        let http = reqwest::Client::builder()
            // The policy service is an internal endpoint, reached directly.
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|err| format!("cannot set up an HTTP client: {err}"))?;
        Ok(Self { http, base, token })
    }

    /// Sends one admin request; `Ok` with the status and JSON body of any answer the
    /// service gave, `Err` when there was none (or it was not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), String> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| {
            format!(
                "cannot reach the policy service at {} ({}); is it running, and is \
                 --admin-url (CHOKEPOINT_POLICY_ADMIN_URL) its admin listener?",
                self.base,
                describe(&err)
            )
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| format!("the policy service's answer was cut off: {err}"))?;
        let body = serde_json::from_str(&text).map_err(|_| {
            format!(
                "the policy service answered {status} with something that is not JSON: {}",
                text.chars().take(200).collect::<String>()
            )
        })?;
        Ok((status, body))
    }

    /// Like [`Admin::call`], treating any answer but 200 as the error it names.
    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let (status, body) = self.call(method, path, body).await?;
        if status == StatusCode::OK {
            Ok(body)
        } else {
            Err(self.refusal(status, &body))
        }
    }

    /// The service's message for a refused call; for "no such endpoint", which the
    /// gateway listener answers to every admin path, where to point the CLI instead.
    pub fn refusal(&self, status: StatusCode, body: &Value) -> String {
        if body["error"]["code"] == "not_found" {
            format!(
                "{} at {}; is --admin-url (CHOKEPOINT_POLICY_ADMIN_URL) the service's admin \
                 listener (--admin-listen) rather than the gateway's?",
                failure(status, body),
                self.base
            )
        } else {
            failure(status, body)
        }
    }
}

/// The service's own message: `the admin token is not valid (invalid_admin_token, HTTP 401)`.
fn failure(status: StatusCode, body: &Value) -> String {
    let message = body["error"]["message"].as_str().unwrap_or("no message");
    let code = body["error"]["code"].as_str().unwrap_or("no code");
    format!("{message} ({code}, HTTP {})", status.as_u16())
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "no answer within 10 s".to_owned()
    } else if err.is_connect() {
        "connection refused or unreachable".to_owned()
    } else {
        err.to_string()
    }
}

/// Percent-encodes a path segment or query value: everything but RFC 3986 unreserved
/// characters (and `*`, the default scope, which is safe in both).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~*".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_ids_for_paths() {
        let cases = [
            ("acme", "acme"),
            ("*", "*"),
            ("openai/gpt-4o", "openai%2Fgpt-4o"),
            ("cc 42", "cc%2042"),
            ("a&b=c?", "a%26b%3Dc%3F"),
            ("é", "%C3%A9"),
        ];
        for (text, expected) in cases {
            assert_eq!(encode(text), expected);
        }
    }

    #[test]
    fn passes_on_the_services_message() {
        let body = serde_json::json!({"error": {"message": "m", "type": "t", "code": "c"}});
        assert_eq!(failure(StatusCode::UNAUTHORIZED, &body), "m (c, HTTP 401)");
        assert_eq!(
            failure(StatusCode::BAD_GATEWAY, &Value::Null),
            "no message (no code, HTTP 502)"
        );
    }
}
