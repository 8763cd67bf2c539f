//! What one request may make the provider produce at most, read the way the provider reads
//! it: the reservation (and so the budget) must bound what is really billed. Only the cap
//! fields the endpoint's API honours count (a chat request's `max_output_tokens` is ignored
//! by OpenAI, so it cannot shrink the reservation), the largest of them when an API has two
//! names for one cap, times the outputs one request generates (`n`, `best_of`,
//! `candidateCount`).

use crate::providers::api::{Endpoint, Op};
use crate::providers::request_body::{RequestFields, MAX_CHOICES};

/// The output cap the provider applies to each output of this request, `None` when the
/// request sets none the provider honours (the gateway's default then applies). Endpoints
/// that generate no text have a cap of 0.
pub fn cap(endpoint: Endpoint, fields: &RequestFields) -> Option<u64> {
    match (endpoint.format, endpoint.op) {
        (None, _) | (_, Op::Embeddings | Op::CountTokens | Op::Models) => Some(0),
        (Some(_), op) => endpoint.api.spec().output_cap(op, fields),
    }
}

/// How many outputs the provider generates (and bills) for one request, at least 1 and
/// at most [`MAX_CHOICES`]: OpenAI chat `n`; legacy completions `best_of` (generated
/// server-side, all billed) or `n`; Gemini `generationConfig.candidateCount`. Responses
/// and Anthropic have none.
pub fn choices(endpoint: Endpoint, fields: &RequestFields) -> u64 {
    endpoint
        .format
        .and_then(|_| endpoint.api.spec().outputs(endpoint.op, fields))
        .unwrap_or(1)
        .clamp(1, MAX_CHOICES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::apis::classify;
    use crate::providers::request_body::parse;

    /// (path, body, the cap the provider applies, outputs per request)
    #[test]
    fn what_each_api_honours() {
        let cases: [(&str, &str, Option<u64>, u64); 16] = [
            (
                "/v1/chat/completions",
                r#"{"max_completion_tokens":100}"#,
                Some(100),
                1,
            ),
            (
                "/v1/chat/completions",
                r#"{"max_tokens":100}"#,
                Some(100),
                1,
            ),
            // Both names of chat's cap: the larger may be produced.
            (
                "/v1/chat/completions",
                r#"{"max_completion_tokens":10,"max_tokens":90}"#,
                Some(90),
                1,
            ),
            // Another API's cap field is ignored by OpenAI, so it cannot shrink the bound.
            (
                "/v1/chat/completions",
                r#"{"max_output_tokens":1,"max_completion_tokens":5000}"#,
                Some(5000),
                1,
            ),
            (
                "/v1/chat/completions",
                r#"{"max_output_tokens":1}"#,
                None,
                1,
            ),
            (
                "/v1/chat/completions",
                r#"{"max_tokens":400,"n":8}"#,
                Some(400),
                8,
            ),
            (
                "/openai/deployments/d/chat/completions",
                r#"{"n":3}"#,
                None,
                3,
            ),
            ("/v1/completions", r#"{"n":2,"best_of":5}"#, Some(16), 5),
            ("/v1/completions", r#"{"max_tokens":50,"n":3}"#, Some(50), 3),
            (
                "/v1/responses",
                r#"{"max_output_tokens":70,"max_tokens":1,"n":4}"#,
                Some(70),
                1,
            ),
            (
                "/v1/messages",
                r#"{"max_tokens":32000,"max_completion_tokens":1}"#,
                Some(32000),
                1,
            ),
            ("/v1/messages", r#"{"n":5}"#, None, 1),
            (
                "/v1beta/models/g:generateContent",
                r#"{"generationConfig":{"maxOutputTokens":30,"candidateCount":4},"max_tokens":1}"#,
                Some(30),
                4,
            ),
            (
                "/v1beta/models/g:streamGenerateContent",
                r#"{"generationConfig":{"candidateCount":2}}"#,
                None,
                2,
            ),
            ("/v1/embeddings", r#"{"max_tokens":9,"n":4}"#, Some(0), 1),
            (
                "/v1/messages/count_tokens",
                r#"{"max_tokens":9}"#,
                Some(0),
                1,
            ),
        ];
        for (path, body, want_cap, want_choices) in cases {
            let e = classify(path).unwrap();
            let f = parse(body.as_bytes()).unwrap();
            assert_eq!(cap(e, &f), want_cap, "{path} {body}");
            assert_eq!(choices(e, &f), want_choices, "{path} {body}");
        }
    }
}
