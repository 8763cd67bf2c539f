//! The call-out to an external guardrail service, wire-compatible with LiteLLM's Generic
//! Guardrail API (`POST {base}/beta/litellm_basic_guardrail_api`; LiteLLM's
//! `GenericGuardrailAPIRequest` and `GenericGuardrailAPIResponse`), so services written
//! for LiteLLM plug in unchanged.
//!
//! Request: `texts` (the strings to judge), `input_type` (`"request"` or `"response"`),
//! `request_data` (LiteLLM's `user_api_key_*` metadata: here the caller's pseudonymous
//! UUID, never a token, and the tenant), `additional_provider_specific_params` (empty),
//! `litellm_call_id` (the gateway's request id) and `model`. LiteLLM's docs' example
//! service declares `request_data` and `additional_provider_specific_params` required,
//! so both are always sent.
//!
//! Answer: `action` `NONE` (allowed), `BLOCKED` (its `blocked_reason` is the service's
//! text, which may quote the data: never read here, so never forwarded or recorded) or
//! `GUARDRAIL_INTERVENED` with `texts`, one per text sent, in order, each the text to
//! use instead. As LiteLLM does, a missing `action` is `NONE` and `texts` is applied
//! whatever the action (short of `BLOCKED`). Anything else (another status, a body that
//! is not a verdict, another number of texts) is a [`ServiceError`], which the check's
//! `failure_mode` turns into a block or an unchecked pass ([`ServiceError::verdict`]).
//!
//! Each distinct text is sent once per call, and not at all when the [`VerdictCache`]
//! already holds its verdict; the service's replacements come back as [`Edit`]s on the
//! spans the texts came from, which [`apply`] writes into the body.

use std::collections::HashMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::verdicts::{Known, Scope, VerdictCache};

/// Which side of the exchange the texts are from (LiteLLM's `input_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Request,
    Response,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Request => "request",
            Stage::Response => "response",
        }
    }
}

/// What to do when the service cannot judge (down, slow, or an answer that is not a
/// verdict).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Cannot check = block.
    Closed,
    /// Let it through, recorded as unchecked.
    Open,
}

/// The request metadata a service is told. Each is left out when longer than
/// [`MAX_META_BYTES`]: they come from the client and must stay bounded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Metadata<'a> {
    /// The model requested.
    pub model: Option<&'a str>,
    /// The caller's pseudonymous UUID (never a token or a name).
    pub caller: Option<&'a str>,
    pub tenant: Option<&'a str>,
    /// The gateway's request id.
    pub request_id: Option<&'a str>,
}

pub const MAX_META_BYTES: usize = 256;

/// One text of a body: the decoded string, and where its JSON string literal (quotes
/// included) lies in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece<'t> {
    pub span: Range<usize>,
    pub text: &'t str,
}

/// The service's replacement for the string literal at `span`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub span: Range<usize>,
    pub text: String,
}

/// How much one call may carry: beyond either, the check cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_texts: usize,
    /// The texts' bytes, summed.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_texts: 4096,
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Why a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockCause {
    /// The service answered `BLOCKED`.
    Service,
    /// It could not judge and the check fails closed.
    Unavailable(ServiceError),
}

/// A check's verdict on a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed, with the service's rewrites (none: unchanged).
    Allowed(Vec<Edit>),
    Blocked(BlockCause),
    /// Not judged, and the check fails open: allowed and recorded as `unchecked`.
    Unchecked(ServiceError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceError {
    /// No answer: timeout, reset, or the call could not be started.
    Unreachable,
    /// An answer with a status other than 2xx.
    Status(u32),
    /// A 2xx answer that is not a verdict (not JSON, an unknown action, fields of the
    /// wrong type).
    Malformed,
    /// Replacement texts that do not match the texts sent one for one.
    TextsMismatch,
    /// More texts, or more bytes, than one call may carry.
    TooLarge,
}

impl ServiceError {
    pub fn verdict(self, mode: FailureMode) -> Verdict {
        match mode {
            FailureMode::Closed => Verdict::Blocked(BlockCause::Unavailable(self)),
            FailureMode::Open => Verdict::Unchecked(self),
        }
    }

    /// For logs and counters: says nothing of the texts.
    pub fn name(self) -> &'static str {
        match self {
            ServiceError::Unreachable => "unreachable",
            ServiceError::Status(_) => "status",
            ServiceError::Malformed => "malformed",
            ServiceError::TextsMismatch => "texts_mismatch",
            ServiceError::TooLarge => "too_large",
        }
    }
}

/// What a check needs to do about a body.
#[derive(Debug)]
pub enum Prepared {
    /// Every text was judged before: the verdict, with no call.
    Known(Verdict),
    /// Send [`Pending::body`] to the service; its answer goes to [`Pending::answered`].
    Call(Pending),
}

/// A call on its way: what was sent, to map the answer back onto the body.
#[derive(Debug)]
pub struct Pending {
    body: Vec<u8>,
    /// One per text sent, in order.
    sent: Vec<Sent>,
    /// Rewrites already known from the cache.
    known: Vec<Edit>,
}

#[derive(Debug)]
struct Sent {
    key: u128,
    text: String,
    spans: Vec<Range<usize>>,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    texts: Vec<&'a str>,
    input_type: &'static str,
    request_data: RequestData<'a>,
    additional_provider_specific_params: Empty,
    #[serde(skip_serializing_if = "Option::is_none")]
    litellm_call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
}

#[derive(Serialize)]
struct RequestData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user_api_key_user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_api_key_org_id: Option<&'a str>,
}

#[derive(Serialize)]
struct Empty {}

/// Only what is used: `blocked_reason`, `images` and `tools` are not read (a reason may
/// quote the data), and unknown fields are ignored, as LiteLLM ignores them.
#[derive(Deserialize)]
struct WireVerdict {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    texts: Option<Vec<String>>,
}

/// Sorts a body's texts into those judged before and those to send. `pieces` are every
/// text of the body the check covers; empty texts are not worth sending.
pub fn prepare(
    check: &str,
    stage: Stage,
    meta: &Metadata<'_>,
    pieces: &[Piece<'_>],
    cache: &VerdictCache,
    limits: Limits,
) -> Result<Prepared, ServiceError> {
    let meta = Metadata {
        model: bounded(meta.model),
        caller: bounded(meta.caller),
        tenant: bounded(meta.tenant),
        request_id: bounded(meta.request_id),
    };
    let scope = Scope {
        check,
        stage,
        caller: meta.caller,
        model: meta.model,
    };
    let mut known = Vec::new();
    let mut sent: Vec<Sent> = Vec::new();
    let mut index: HashMap<u128, usize> = HashMap::new();
    let mut bytes = 0usize;
    for piece in pieces.iter().filter(|p| !p.text.is_empty()) {
        let key = cache.key(&scope, piece.text);
        match cache.get(key) {
            Some(Known::Clean) => {}
            Some(Known::Replaced(text)) => known.push(Edit {
                span: piece.span.clone(),
                text: text.clone(),
            }),
            None => match index.get(&key).and_then(|&i| sent.get_mut(i)) {
                Some(same) => same.spans.push(piece.span.clone()),
                None => {
                    bytes += piece.text.len();
                    if sent.len() == limits.max_texts || bytes > limits.max_bytes {
                        return Err(ServiceError::TooLarge);
                    }
                    index.insert(key, sent.len());
                    sent.push(Sent {
                        key,
                        text: piece.text.to_owned(),
                        spans: vec![piece.span.clone()],
                    });
                }
            },
        }
    }
    if sent.is_empty() {
        return Ok(Prepared::Known(Verdict::Allowed(known)));
    }
    let wire = WireRequest {
        texts: sent.iter().map(|s| s.text.as_str()).collect(),
        input_type: stage.name(),
        request_data: RequestData {
            user_api_key_user_id: meta.caller,
            user_api_key_org_id: meta.tenant,
        },
        additional_provider_specific_params: Empty {},
        litellm_call_id: meta.request_id,
        model: meta.model,
    };
    let body = serde_json::to_vec(&wire).map_err(|_| ServiceError::TooLarge)?;
    Ok(Prepared::Call(Pending { body, sent, known }))
}

/// The call's headers (with [`Pending::body`] as its body): a POST of JSON to the
/// service's `path` at `authority`, with `authorization` when the check has a key
/// (`api_key_env`): `Bearer <key>`, as `Runtime::guard_service_authorizations` holds it.
/// The key must never reach a log.
pub fn call_headers(
    path: &str,
    authority: &str,
    authorization: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (":method", "POST".to_string()),
        (":path", path.to_string()),
        (":authority", authority.to_string()),
        ("content-type", "application/json".to_string()),
    ];
    if let Some(authorization) = authorization {
        headers.push(("authorization", authorization.to_string()));
    }
    headers
}

impl Pending {
    /// The JSON body to POST (`content-type: application/json`).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// How many texts the call carries.
    pub fn texts(&self) -> usize {
        self.sent.len()
    }

    /// Reads the service's answer (`status` `None`: none came), remembers each text's
    /// verdict, and returns the verdict on the body: the edits cover every span of each
    /// text sent or known. A `BLOCKED` is remembered for no text.
    pub fn answered(
        self,
        status: Option<u32>,
        body: &[u8],
        cache: &mut VerdictCache,
    ) -> Result<Verdict, ServiceError> {
        let status = status.ok_or(ServiceError::Unreachable)?;
        if !(200..300).contains(&status) {
            return Err(ServiceError::Status(status));
        }
        // serde would read a struct from an array too: a verdict is an object.
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(ServiceError::Malformed);
        }
        let wire: WireVerdict =
            serde_json::from_slice(body).map_err(|_| ServiceError::Malformed)?;
        match wire.action.as_deref() {
            None | Some("NONE" | "GUARDRAIL_INTERVENED") => {}
            Some("BLOCKED") => return Ok(Verdict::Blocked(BlockCause::Service)),
            Some(_) => return Err(ServiceError::Malformed),
        }
        let replies = wire.texts.unwrap_or_default();
        if !replies.is_empty() && replies.len() != self.sent.len() {
            return Err(ServiceError::TextsMismatch);
        }
        let mut edits = self.known;
        for (i, sent) in self.sent.into_iter().enumerate() {
            match replies.get(i) {
                Some(reply) if *reply != sent.text => {
                    edits.extend(sent.spans.into_iter().map(|span| Edit {
                        span,
                        text: reply.clone(),
                    }));
                    cache.put(sent.key, Known::Replaced(reply.clone()));
                }
                _ => cache.put(sent.key, Known::Clean),
            }
        }
        edits.sort_by_key(|e| e.span.start);
        Ok(Verdict::Allowed(edits))
    }
}

/// `body` with each edit's string literal replaced by its text as a JSON string; every
/// other byte as it was. Edits that overlap one before them or fall outside the body are
/// skipped (pieces from one scan never do).
pub fn apply(body: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| e.span.start);
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for edit in sorted {
        let (start, end) = (edit.span.start, edit.span.end);
        if start < at || end < start || end > body.len() {
            continue;
        }
        out.extend_from_slice(body.get(at..start).unwrap_or_default());
        // Serializing a string cannot fail.
        out.extend(serde_json::to_vec(&edit.text).unwrap_or_default());
        at = end;
    }
    out.extend_from_slice(body.get(at..).unwrap_or_default());
    out
}

fn bounded(s: Option<&str>) -> Option<&str> {
    s.filter(|s| s.len() <= MAX_META_BYTES)
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
