//! Local replies in the OpenAI error shape, so every OpenAI-compatible SDK surfaces them
//! as the right exception with a readable message.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
}

/// Builds an error reply. `kind` is the OpenAI error `type`, `code` our failure class.
pub fn error(status: u32, kind: &str, code: &str, message: &str) -> Reply {
    let body = serde_json::to_string(&ErrorBody {
        error: ErrorFields {
            message,
            kind,
            param: None,
            code,
        },
    })
    // Serializing plain strings cannot fail; keep a valid body even if it ever did.
    .unwrap_or_else(|_| {
        r#"{"error":{"message":"error","type":"api_error","param":null,"code":"internal"}}"#.into()
    });
    Reply {
        status,
        headers: vec![("content-type", "application/json".into())],
        body,
    }
}

pub fn unauthorized(code: &str, message: &str) -> Reply {
    let mut r = error(401, "authentication_error", code, message);
    r.headers.push((
        "www-authenticate",
        format!(
            "Bearer realm=\"chokepoint\", error=\"invalid_token\", error_description=\"{code}\""
        ),
    ));
    r
}

pub fn rate_limited(reason: &str, message: &str, retry_after_secs: u64) -> Reply {
    let mut r = error(429, "rate_limit_error", reason, message);
    r.headers
        .push(("retry-after", retry_after_secs.to_string()));
    r
}

pub fn policy_unavailable() -> Reply {
    error(
        503,
        "service_unavailable",
        "policy_unavailable",
        "The gateway's policy service is unavailable, so the request was not sent. Try again shortly.",
    )
}

pub fn bad_request(code: &str, message: &str) -> Reply {
    error(400, "invalid_request_error", code, message)
}

pub fn payload_too_large(limit: usize) -> Reply {
    error(
        413,
        "invalid_request_error",
        "request_too_large",
        &format!("The request body is larger than the gateway's limit of {limit} bytes."),
    )
}

pub fn unsupported_media_type() -> Reply {
    error(
        415,
        "invalid_request_error",
        "unsupported_content_type",
        "The request body must be JSON (content-type: application/json).",
    )
}

pub fn unsupported_content_encoding() -> Reply {
    error(
        415,
        "invalid_request_error",
        "unsupported_content_encoding",
        "The request body must be uncompressed JSON; remove the content-encoding.",
    )
}

pub fn internal(code: &str) -> Reply {
    error(
        500,
        "api_error",
        code,
        "The gateway failed to process the request.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_shape() {
        let r = rate_limited("rate_limited", "slow down \"now\"", 7);
        assert_eq!(r.status, 429);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        assert_eq!(v["error"]["message"], "slow down \"now\"");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["code"], "rate_limited");
        assert!(v["error"]["param"].is_null());
        assert!(r.headers.contains(&("retry-after", "7".into())));
    }

    #[test]
    fn unauthorized_has_www_authenticate() {
        let r = unauthorized("expired", "x");
        assert_eq!(r.status, 401);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "www-authenticate" && v.contains("expired")));
    }
}
