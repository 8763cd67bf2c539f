//! OpenAI's API: chat completions, legacy completions, Responses, embeddings and the model
//! list, with the key as a bearer token.

pub mod chat_usage;
pub mod responses_usage;

use crate::accounting::usage::report::Format;
use crate::providers::api::{endpoint, one_model, Api, Endpoint, Op, ProviderApi};
use crate::providers::request_body::{CapField, RequestFields, UserField};

pub struct OpenAi;

/// OpenAI's default `max_tokens` for legacy completions.
pub const LEGACY_DEFAULT_MAX_TOKENS: u64 = 16;

impl ProviderApi for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn key_header(&self) -> (&'static str, &'static str) {
        ("authorization", "Bearer ")
    }

    fn classify(&self, path: &str) -> Option<Endpoint> {
        let openai = |format, op| Some(endpoint(Api::OpenAi, format, op));
        match path {
            "/v1/chat/completions" => openai(Some(Format::OpenAiChat), Op::Chat),
            "/v1/completions" => openai(Some(Format::OpenAiChat), Op::Completions),
            "/v1/responses" => openai(Some(Format::OpenAiResponses), Op::Generate),
            "/v1/embeddings" => openai(Some(Format::OpenAiChat), Op::Embeddings),
            // Also where Anthropic's and (from google-genai 2.x) Gemini's SDKs list models.
            "/v1/models" => openai(None, Op::Models),
            // One model (`GET /v1/models/{id}`, every SDK).
            _ if one_model(path, "/v1/models/") => openai(None, Op::Models),
            _ => None,
        }
    }

    fn output_cap(&self, op: Op, fields: &RequestFields) -> Option<u64> {
        chat_cap(op, fields)
    }

    fn outputs(&self, op: Op, fields: &RequestFields) -> Option<u64> {
        chat_outputs(op, fields)
    }

    fn cap_field(&self, op: Op) -> Option<CapField> {
        match op {
            Op::Generate => Some(CapField::Responses),
            op => chat_cap_field(op),
        }
    }

    fn user_field(&self, op: Op) -> Option<UserField> {
        chat_user_field(op)
    }

    /// Chat and legacy completions stream usage only with `stream_options.include_usage`.
    fn stream_usage_is_optional(&self, op: Op) -> bool {
        matches!(op, Op::Chat | Op::Completions)
    }
}

/// The cap of OpenAI's chat-format endpoints (Azure's too): chat completions take
/// `max_completion_tokens` and its deprecated name `max_tokens`, and with both the larger
/// is what may be produced; legacy completions know only `max_tokens`, default 16;
/// Responses take `max_output_tokens`.
pub(super) fn chat_cap(op: Op, fields: &RequestFields) -> Option<u64> {
    let c = &fields.caps;
    match op {
        Op::Chat => max_of(c.max_completion_tokens, c.max_tokens),
        Op::Completions => Some(c.max_tokens.unwrap_or(LEGACY_DEFAULT_MAX_TOKENS)),
        _ => c.max_output_tokens,
    }
}

/// Chat's `n`; legacy completions' `best_of` (generated server-side, all billed) or `n`.
pub(super) fn chat_outputs(op: Op, fields: &RequestFields) -> Option<u64> {
    let c = &fields.choices;
    match op {
        Op::Chat => c.n,
        Op::Completions => max_of(c.n, c.best_of),
        _ => None,
    }
}

pub(super) fn chat_cap_field(op: Op) -> Option<CapField> {
    match op {
        Op::Completions => Some(CapField::Completions),
        _ => Some(CapField::Chat),
    }
}

/// Legacy completions and embeddings know only `user`, and refuse arguments they do not
/// know; the rest take `safety_identifier`.
pub(super) fn chat_user_field(op: Op) -> Option<UserField> {
    match op {
        Op::Completions | Op::Embeddings => Some(UserField::User),
        _ => Some(UserField::OpenAi),
    }
}

fn max_of(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
