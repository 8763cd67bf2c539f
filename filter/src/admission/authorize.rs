//! The authorization callout to the policy service: what we ask and how we read the answer.
//! Anything but a well-formed 200 answer is "unavailable", so a slow, broken or garbage
//! answer always ends the same deterministic way.

use chokepoint_contract::bounds::MAX_LEASE_SLOTS;
use chokepoint_contract::{McpScope, Required};

use crate::admission::lease::LeaseAsk;

/// What the filter asks, holding the request's own strings (see the contract crate).
pub type AuthorizeRequest<'a> = chokepoint_contract::AuthorizeRequest<&'a str, &'a [String]>;

/// A lease renewal: the caller's last granted request again, under an id of its own.
pub fn renewal<'a>(
    request_id: &'a str,
    ask: &'a LeaseAsk,
    lease_slots: u64,
    lease_return_ms: u64,
) -> AuthorizeRequest<'a> {
    AuthorizeRequest {
        request_id: Required::new(request_id),
        user: Required::new(&ask.user),
        tenant: ask.tenant.as_deref(),
        groups: &ask.groups,
        model: ask.model.as_deref(),
        model_key: ask.model_key.as_deref(),
        priced: ask.priced,
        cost_center: ask.cost_center.as_deref(),
        provider: (!ask.provider.is_empty()).then_some(ask.provider.as_str()),
        stream: ask.stream,
        reserve_tokens: ask.reserve_tokens,
        reserve_cost_micros: ask.reserve_cost_micros,
        lease_slots,
        lease_return_ms,
        mcp: ask.mcp.as_ref().map(|(server, tool)| McpScope {
            server: server.as_str(),
            tool: tool.as_deref(),
        }),
    }
}

/// The tightest limit's state, as the policy service reports it on an allow: becomes the
/// `x-ratelimit-*` response headers clients already read from OpenAI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub reset_after_ms: Option<u64>,
    /// Requests' worth granted: 1, or a lease's slots.
    pub slots: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Quota),
    Deny {
        reason: String,
        message: String,
        retry_after_secs: u64,
    },
    /// The policy service could not answer: the failure mode decides.
    Unavailable(&'static str),
}

/// Reads the policy service's answer. `status` is the HTTP status of the callout, absent
/// when the callout itself failed (timeout, reset, no healthy host).
/// Whether a decision's callout got no answer from the policy service itself, so the
/// same decision may be asked again (of another instance: Envoy's health checks and
/// outlier detection take a dead one out): the call failed in Envoy (`None`), or Envoy
/// answered 503 for an instance it could not connect to or that reset the stream, which
/// a service's own 503 (Redis down) is not: that one is JSON and asking again would only
/// double the wait. A timeout (504) is not retried either, for the same reason. Asking
/// again is exact: the service keys a decision's reservation by its request id.
pub fn worth_retrying(status: Option<u32>, body: &[u8]) -> bool {
    match status {
        None => true,
        Some(503) => !body.trim_ascii_start().starts_with(b"{"),
        Some(_) => false,
    }
}

pub fn decide(status: Option<u32>, body: &[u8]) -> Decision {
    match status {
        None => return Decision::Unavailable("no_response"),
        Some(200) => {}
        Some(_) => return Decision::Unavailable("bad_status"),
    }
    let Ok(answer) = serde_json::from_slice::<chokepoint_contract::Decision>(body) else {
        return Decision::Unavailable("bad_answer");
    };
    let deny = match answer {
        chokepoint_contract::Decision::Allow(allow) => {
            return Decision::Allow(Quota {
                limit: allow.limit,
                remaining: allow.remaining,
                reset_after_ms: allow.reset_after_ms,
                slots: allow.slots.unwrap_or(1).clamp(1, MAX_LEASE_SLOTS),
            })
        }
        chokepoint_contract::Decision::Deny(deny) => deny,
    };
    let retry_ms = deny.retry_after_ms.unwrap_or(1000);
    Decision::Deny {
        reason: deny.reason.into_option().unwrap_or_else(|| "denied".into()),
        message: deny
            .message
            .into_option()
            .unwrap_or_else(|| "The request was denied by the gateway's usage policy.".into()),
        // Round up: retrying a little late beats retrying into another denial.
        retry_after_secs: retry_ms.div_ceil(1000).max(1),
    }
}

/// `x-ratelimit-*` headers for an allowed response (requests kind), OpenAI's names.
pub fn quota_headers(q: &Quota) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(3);
    if let Some(l) = q.limit {
        out.push(("x-ratelimit-limit-requests", l.to_string()));
    }
    if let Some(r) = q.remaining {
        out.push(("x-ratelimit-remaining-requests", r.to_string()));
    }
    if let Some(ms) = q.reset_after_ms {
        let reset = if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        };
        out.push(("x-ratelimit-reset-requests", reset));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let deny = |reason: &str, message: &str, secs| Decision::Deny {
            reason: reason.into(),
            message: message.into(),
            retry_after_secs: secs,
        };
        let table: Vec<(Option<u32>, &str, Decision)> = vec![
            (
                Some(200),
                r#"{"allow":true,"remaining":3}"#,
                Decision::Allow(Quota {
                    remaining: Some(3),
                    slots: 1,
                    ..Quota::default()
                }),
            ),
            (
                Some(200),
                r#"{"allow":true,"slots":16}"#,
                Decision::Allow(Quota {
                    slots: 16,
                    ..Quota::default()
                }),
            ),
            (
                Some(200),
                r#"{"allow":false,"reason":"rate_limited","message":"m","retry_after_ms":41001}"#,
                deny("rate_limited", "m", 42),
            ),
            (
                Some(200),
                r#"{"allow":false,"reason":"rate_limited","message":"m","retry_after_ms":1}"#,
                deny("rate_limited", "m", 1),
            ),
            (
                Some(200),
                r#"{"allow":false}"#,
                deny(
                    "denied",
                    "The request was denied by the gateway's usage policy.",
                    1,
                ),
            ),
            (None, "", Decision::Unavailable("no_response")),
            (
                Some(503),
                r#"{"allow":true}"#,
                Decision::Unavailable("bad_status"),
            ),
            (Some(200), "<html>", Decision::Unavailable("bad_answer")),
            (
                Some(200),
                r#"{"allow":"yes"}"#,
                Decision::Unavailable("bad_answer"),
            ),
            (Some(200), "", Decision::Unavailable("bad_answer")),
        ];
        for (status, body, want) in table {
            assert_eq!(decide(status, body.as_bytes()), want, "{status:?} {body}");
        }
    }

    #[test]
    fn request_shape() {
        let groups = vec!["ml".to_string()];
        let req = AuthorizeRequest {
            request_id: Required::new("r1"),
            user: Required::new("u"),
            tenant: Some("acme"),
            groups: &groups,
            model: None,
            model_key: None,
            priced: true,
            cost_center: None,
            provider: Some("openai"),
            stream: true,
            reserve_tokens: 10,
            reserve_cost_micros: 3,
            lease_slots: 0,
            lease_return_ms: 0,
            mcp: None,
        };
        let v: serde_json::Value = serde_json::to_value(&req).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"request_id":"r1","user":"u","tenant":"acme","groups":["ml"],"model":null,"model_key":null,"cost_center":null,"provider":"openai","stream":true,"reserve_tokens":10,"reserve_cost_micros":3})
        );
        let unpriced = AuthorizeRequest {
            model: Some("local-llama"),
            model_key: Some("other"),
            priced: false,
            ..req
        };
        let v = serde_json::to_value(&unpriced).unwrap_or_default();
        assert_eq!(v["priced"], false);
        assert_eq!(v["model_key"], "other");
    }

    /// A renewal is the caller's last ask again, under its own id and with a lease, in
    /// the contract's terms (the root's tests use an ask of their own making).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_renewal_asks_as_the_request_did_and_meets_the_contract() {
        use chokepoint_contract::validate::{check_text, Schema};
        let ask = LeaseAsk {
            user: "0190a6f2-7c1e-8b3a-9f00-1234567890ab".into(),
            tenant: Some("acme".into()),
            groups: vec!["ml".into()],
            model: Some("gpt-4o-mini-2024-07-18".into()),
            model_key: Some("gpt-4o-mini*".into()),
            priced: false,
            cost_center: None,
            provider: "openai".into(),
            stream: false,
            reserve_tokens: 4109,
            reserve_cost_micros: 0,
            mcp: None,
        };
        let body = serde_json::to_vec(&renewal("r9", &ask, 16, 3270)).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"request_id":"r9","user":ask.user,"tenant":"acme","groups":["ml"],
                               "model":"gpt-4o-mini-2024-07-18","model_key":"gpt-4o-mini*",
                               "priced":false,"cost_center":null,"provider":"openai","stream":false,
                               "reserve_tokens":4109,"reserve_cost_micros":0,
                               "lease_slots":16,"lease_return_ms":3270})
        );
        assert_eq!(check_text(Schema::AuthorizeRequest, &body), Ok(()));
    }
}
