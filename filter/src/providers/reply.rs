//! Local replies. Errors are built in OpenAI's error shape, and sent in the shape of the
//! API the client called (Anthropic's, Gemini's), so each provider's SDK surfaces them as
//! the right exception with a readable message.

use serde::Serialize;

use crate::providers::api::Api;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// What an error reply says, kept to render it again in another API's shape.
    pub error: Option<Box<ErrorInfo>>,
}

/// An error reply's content: the gateway's failure class (`code`), the message (the
/// other APIs' error types follow from the status) and, for a refusal that lifts in
/// time, when (`retry-after`, which Google's errors also carry in their body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
    pub retry_after_secs: Option<u64>,
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
        error: Some(Box::new(ErrorInfo {
            code: code.into(),
            message: message.into(),
            retry_after_secs: None,
        })),
    }
}

impl Reply {
    /// The reply as `api`'s SDKs expect errors: OpenAI's shape (also Azure's) as built;
    /// Anthropic's `{"type":"error","error":{"type","message"}}`; Google's
    /// `{"error":{"code","message","status","details"}}`. The gateway's failure class
    /// rides along (`error.code`; Google's `ErrorInfo.reason`). Not an error: unchanged.
    pub fn in_shape_of(mut self, api: Api) -> Reply {
        let Some(e) = &self.error else {
            return self;
        };
        if let Some(body) = api.spec().error_body(self.status, e) {
            self.body = body;
        }
        self
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

/// The longest `retry-after` the OpenAI and Anthropic SDKs wait out before retrying a
/// 429 themselves; past it they retry after their own short backoff, bound to be refused
/// again (a spent monthly budget), unless told not to.
pub const SDK_RETRY_WAIT_MAX_SECS: u64 = 60;

/// A 429: `reason` is the policy's (`rate_limited`, `budget_exceeded`). Past
/// [`SDK_RETRY_WAIT_MAX_SECS`] the refusal is final for the clients, each told in its
/// API's terms: `x-should-retry: false` (the OpenAI and Anthropic SDKs, Claude Code);
/// for a spent budget, OpenAI's `insufficient_quota` error type, the one its API gives
/// a spent quota (Codex stops on it rather than reconnecting); and in Gemini's body a
/// `google.rpc.RetryInfo` with the delay (Gemini CLI stops past 300 s). A rate limit
/// (its window a minute) stays retryable everywhere.
pub fn rate_limited(reason: &str, message: &str, retry_after_secs: u64) -> Reply {
    let final_ = retry_after_secs > SDK_RETRY_WAIT_MAX_SECS;
    let kind = if final_ && reason == chokepoint_contract::reason::BUDGET_EXCEEDED {
        "insufficient_quota"
    } else {
        "rate_limit_error"
    };
    let mut r = error(429, kind, reason, message);
    r.headers
        .push(("retry-after", retry_after_secs.to_string()));
    if final_ {
        r.headers.push(("x-should-retry", "false".into()));
    }
    if let Some(e) = r.error.as_mut() {
        e.retry_after_secs = Some(retry_after_secs);
    }
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

    /// (api, status, the fields each API's SDK reads)
    #[test]
    fn errors_take_the_shape_of_the_api_called() {
        type Check = fn(&serde_json::Value);
        let cases: &[(Api, Reply, Check)] = &[
            (Api::OpenAi, unauthorized("expired", "old"), |v| {
                assert_eq!(v["error"]["type"], "authentication_error");
                assert_eq!(v["error"]["code"], "expired");
                assert_eq!(v["error"]["message"], "old");
            }),
            (Api::Azure, bad_request("bad_json", "no"), |v| {
                assert_eq!(v["error"]["type"], "invalid_request_error");
                assert_eq!(v["error"]["code"], "bad_json");
            }),
            (Api::Anthropic, unauthorized("expired", "old"), |v| {
                assert_eq!(v["type"], "error");
                assert_eq!(v["error"]["type"], "authentication_error");
                assert_eq!(v["error"]["message"], "old");
                assert_eq!(v["error"]["code"], "expired");
            }),
            (
                Api::Anthropic,
                rate_limited("budget_exhausted", "spent", 5),
                |v| {
                    assert_eq!(v["error"]["type"], "rate_limit_error");
                },
            ),
            (Api::Anthropic, payload_too_large(10), |v| {
                assert_eq!(v["error"]["type"], "request_too_large");
            }),
            (Api::Anthropic, policy_unavailable(), |v| {
                assert_eq!(v["error"]["type"], "api_error");
            }),
            (
                Api::Anthropic,
                error(404, "invalid_request_error", "model_not_found", "m"),
                |v| {
                    assert_eq!(v["error"]["type"], "not_found_error");
                },
            ),
            (Api::Gemini, unauthorized("expired", "old"), |v| {
                assert_eq!(v["error"]["code"], 401);
                assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
                assert_eq!(v["error"]["message"], "old");
                assert_eq!(v["error"]["details"][0]["reason"], "expired");
                assert_eq!(
                    v["error"]["details"][0]["@type"],
                    "type.googleapis.com/google.rpc.ErrorInfo"
                );
            }),
            (Api::Gemini, rate_limited("rate_limited", "slow", 1), |v| {
                assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
            }),
            (Api::Gemini, unsupported_media_type(), |v| {
                assert_eq!(v["error"]["code"], 415);
                assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
            }),
            (Api::Gemini, policy_unavailable(), |v| {
                assert_eq!(v["error"]["status"], "UNAVAILABLE");
            }),
            (Api::Gemini, internal("x"), |v| {
                assert_eq!(v["error"]["status"], "INTERNAL");
            }),
        ];
        for (api, reply, check) in cases {
            let shaped = reply.clone().in_shape_of(*api);
            assert_eq!(shaped.status, reply.status);
            assert_eq!(shaped.headers, reply.headers, "{api:?}: headers kept");
            let v: serde_json::Value = serde_json::from_str(&shaped.body).unwrap_or_default();
            check(&v);
        }
    }

    #[test]
    fn replies_that_are_not_errors_keep_their_body() {
        let r = Reply {
            status: 200,
            headers: vec![],
            body: "{}".into(),
            error: None,
        };
        assert_eq!(r.clone().in_shape_of(Api::Gemini), r);
    }

    /// SDKs wait out a short `retry-after` and retry; a long one is final for them.
    #[test]
    fn a_long_wait_tells_sdks_not_to_retry() {
        for (secs, final_) in [(1, false), (60, false), (61, true), (86_400, true)] {
            let r = rate_limited("budget_exceeded", "spent", secs);
            let said = r
                .headers
                .iter()
                .any(|(k, v)| *k == "x-should-retry" && v == "false");
            assert_eq!(said, final_, "{secs} s");
        }
    }

    /// What each client reads to tell a final refusal from one to wait out: OpenAI's
    /// error type (Codex stops on `insufficient_quota`), `x-should-retry` (the OpenAI and
    /// Anthropic SDKs, Claude Code) and Gemini's RetryInfo (Gemini CLI stops past 300 s).
    /// The gateway's failure class rides along in each. (reason, retry-after, OpenAI
    /// type, x-should-retry: false)
    #[test]
    fn a_spent_budget_is_final_for_every_client_and_a_rate_limit_is_not() {
        let cases = [
            ("budget_exceeded", 86_400, "insufficient_quota", true),
            ("budget_exceeded", 3_600, "insufficient_quota", true),
            // A rolling budget back within the minute is waited out like a rate limit.
            ("budget_exceeded", 30, "rate_limit_error", false),
            ("rate_limited", 1, "rate_limit_error", false),
            ("rate_limited", 60, "rate_limit_error", false),
        ];
        for (reason, secs, openai_type, final_) in cases {
            let r = rate_limited(reason, "tenant acme's daily budget of $5.00 is spent", secs);
            let said_final = r.headers.contains(&("x-should-retry", "false".into()));
            assert_eq!(said_final, final_, "{reason} {secs}");
            assert!(r.headers.contains(&("retry-after", secs.to_string())));
            let json = |api: Api| -> serde_json::Value {
                serde_json::from_str(&r.clone().in_shape_of(api).body).unwrap_or_default()
            };
            for api in [Api::OpenAi, Api::Azure] {
                let v = json(api);
                assert_eq!(v["error"]["type"], openai_type, "{api:?} {reason} {secs}");
                assert_eq!(v["error"]["code"], reason);
                assert_eq!(
                    v["error"]["message"],
                    "tenant acme's daily budget of $5.00 is spent"
                );
            }
            let v = json(Api::Anthropic);
            assert_eq!(v["error"]["type"], "rate_limit_error");
            assert_eq!(v["error"]["code"], reason);
            let v = json(Api::Gemini);
            assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
            assert_eq!(v["error"]["details"][0]["reason"], reason);
            assert_eq!(
                v["error"]["details"][1],
                serde_json::json!({
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": format!("{secs}s"),
                })
            );
        }
    }

    /// Only a refusal that lifts in time carries a RetryInfo.
    #[test]
    fn other_errors_say_nothing_of_retrying() {
        for r in [
            unauthorized("expired", "old"),
            policy_unavailable(),
            internal("x"),
        ] {
            let shaped = r.in_shape_of(Api::Gemini);
            let v: serde_json::Value = serde_json::from_str(&shaped.body).unwrap_or_default();
            assert_eq!(v["error"]["details"].as_array().map(Vec::len), Some(1));
        }
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
