//! Google's Gemini API: `models/{model}:method` under `v1beta` (and `v1`), streaming by
//! path, the model named in the path, the key in `x-goog-api-key`, errors in Google's
//! shape with the gateway's failure class as the `ErrorInfo` reason.

pub mod usage;

use serde_json::json;

use crate::accounting::usage::report::Format;
use crate::providers::api::{endpoint, one_model, Api, Endpoint, ModelSource, Op, ProviderApi};
use crate::providers::reply::ErrorInfo;
use crate::providers::request_body::{CapField, RequestFields, UserField};

pub struct Gemini;

impl ProviderApi for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn key_header(&self) -> (&'static str, &'static str) {
        ("x-goog-api-key", "")
    }

    fn classify(&self, path: &str) -> Option<Endpoint> {
        let gemini = |format, op| Some(endpoint(Api::Gemini, format, op));
        if path == "/v1beta/models" || one_model(path, "/v1beta/models/") {
            return gemini(None, Op::Models);
        }
        let (_, method) = path.rsplit_once(':').filter(|_| model_path(path))?;
        match method {
            "generateContent" => gemini(Some(Format::Gemini), Op::Generate),
            "streamGenerateContent" => Some(Endpoint {
                streams_by_path: true,
                ..endpoint(Api::Gemini, Some(Format::Gemini), Op::Generate)
            }),
            // Gemini's embedding answers carry no usage: estimated from the request.
            "embedContent" | "batchEmbedContents" => gemini(Some(Format::Gemini), Op::Embeddings),
            "countTokens" => gemini(None, Op::CountTokens),
            _ => None,
        }
    }

    fn model_source(&self) -> ModelSource {
        ModelSource::Path
    }

    fn model_in_path<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path
            .strip_prefix("/v1beta/models/")
            .or_else(|| path.strip_prefix("/v1/models/"))?;
        rest.split(':').next().filter(|m| !m.is_empty())
    }

    /// `generationConfig.maxOutputTokens`.
    fn output_cap(&self, _op: Op, fields: &RequestFields) -> Option<u64> {
        fields.caps.gemini_max_output_tokens
    }

    /// `generationConfig.candidateCount`.
    fn outputs(&self, op: Op, fields: &RequestFields) -> Option<u64> {
        (op == Op::Generate)
            .then_some(fields.choices.candidate_count)
            .flatten()
    }

    fn cap_field(&self, _op: Op) -> Option<CapField> {
        Some(CapField::Gemini)
    }

    /// Gemini has no end-user field.
    fn user_field(&self, _op: Op) -> Option<UserField> {
        None
    }

    fn error_body(&self, status: u32, error: &ErrorInfo) -> Option<String> {
        let mut details = vec![json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": error.code,
            "domain": "chokepoint",
        })];
        // Google's 429s say when to come back in a google.rpc.RetryInfo (a Duration in
        // its JSON form, "3600s"); Gemini CLI retries a 429 after that delay, unless it is
        // past 300 s, when it stops with the message (its TerminalQuotaError).
        if let Some(secs) = error.retry_after_secs {
            details.push(json!({
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format!("{secs}s"),
            }));
        }
        let body = json!({
            "error": {
                "code": status,
                "message": error.message,
                "status": google_status(status),
                "details": details,
            }
        });
        Some(body.to_string())
    }
}

/// A model's method path: `/v1beta/models/...` or `/v1/models/...`.
fn model_path(path: &str) -> bool {
    path.starts_with("/v1beta/models/") || path.starts_with("/v1/models/")
}

/// Google's canonical status name for an HTTP status (google.rpc.Code's mapping).
fn google_status(status: u32) -> &'static str {
    match status {
        400 | 413 | 415 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        400..=499 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}
