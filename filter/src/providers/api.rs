//! What every provider API is described by: the [`ProviderApi`] trait each API's module
//! implements, the endpoints a path can name, and what is common to all APIs (the query
//! parameters stripped, the method allowed, the error shape of a reply). The APIs are
//! registered in `apis`, which is the only file that knows them all.

use crate::accounting::usage::report::Format;
use crate::providers::reply::ErrorInfo;
use crate::providers::request_body::{CapField, RequestFields, UserField};

/// A provider API family, as configured (`api:`) and recorded. What the gateway knows
/// of each lives in its own module behind [`ProviderApi`] (see `apis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Api {
    #[default]
    OpenAi,
    Anthropic,
    Gemini,
    Azure,
}

/// Where the model the provider bills is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// The body's `model` (which the gateway may rewrite to the routed name).
    Body,
    /// The path (Gemini's `models/{model}:method`); a body naming another is ignored.
    Path,
    /// The path names a deployment, mapped to its model by the providers' deployment maps
    /// (Azure).
    Deployment,
}

/// Everything the gateway knows about one provider API: one implementation per module
/// (`openai`, `anthropic`, `gemini`, `azure`), registered in `apis`. A new API is
/// a new module, a variant of [`Api`] and, if it answers in a new wire format, a usage
/// reader for that format (`accounting::usage`).
pub trait ProviderApi: Sync {
    /// Its name in the configuration and in records.
    fn name(&self) -> &'static str;
    /// The header the provider reads its key from, and the prefix before the key.
    fn key_header(&self) -> (&'static str, &'static str);
    /// The endpoint a path (without its query) names, when it is one of this API's.
    fn classify(&self, path: &str) -> Option<Endpoint>;
    /// Where the billed model is named.
    fn model_source(&self) -> ModelSource {
        ModelSource::Body
    }
    /// The model (or deployment) a path names, when the API names it there.
    fn model_in_path<'p>(&self, _path: &'p str) -> Option<&'p str> {
        None
    }
    /// The output cap the provider applies to each output of a text-generating endpoint,
    /// read as the provider reads the request (`None`: the request sets none it honours).
    fn output_cap(&self, op: Op, fields: &RequestFields) -> Option<u64>;
    /// How many outputs it generates (and bills) for one request, before clamping.
    fn outputs(&self, _op: Op, _fields: &RequestFields) -> Option<u64> {
        None
    }
    /// The body field the gateway writes its default output cap into.
    fn cap_field(&self, op: Op) -> Option<CapField>;
    /// Whether a stream of this endpoint carries usage only when asked
    /// (`stream_options.include_usage`), which the gateway then asks for.
    fn stream_usage_is_optional(&self, _op: Op) -> bool {
        false
    }
    /// The body field that carries the pseudonymous end user, if the API has one.
    fn user_field(&self, op: Op) -> Option<UserField>;
    /// The API's error body for a reply of `status`, or `None` for OpenAI's shape as
    /// built. The gateway's failure class (`error.code`) must ride along.
    fn error_body(&self, _status: u32, _error: &ErrorInfo) -> Option<String> {
        None
    }
}

/// What the gateway knows about a request from its path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub api: Api,
    /// The response format to account, `None` for endpoints without token usage.
    pub format: Option<Format>,
    /// Gemini streams by path (`streamGenerateContent`), not by a body field.
    pub streams_by_path: bool,
    pub op: Op,
}

/// What an endpoint does, where endpoints of one format need different edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Generates text: OpenAI Responses, Anthropic Messages, Gemini generateContent.
    Generate,
    /// OpenAI's (and Azure's) chat completions: streams get `stream_options.include_usage`,
    /// the output cap is `max_completion_tokens`, the end user `safety_identifier`.
    Chat,
    /// OpenAI's legacy completions: `include_usage` too, but `max_tokens` and `user`.
    Completions,
    /// Embeddings: no output to cap; OpenAI's take the end user as `user`.
    Embeddings,
    /// Token counting: forwarded and recorded with no usage.
    CountTokens,
    /// The model list or one model (`GET /v1/models[/{id}]`, Gemini's `/v1beta/models`):
    /// answered from the route table when there is one.
    Models,
}

impl Op {
    /// The GenAI operation in OpenTelemetry's names (`gen_ai.operation.name`), for an
    /// operation that is one.
    pub fn genai_name(self, api: Api) -> Option<&'static str> {
        match (self, api) {
            (Op::Generate, Api::Gemini) => Some("generate_content"),
            (Op::Generate | Op::Chat, _) => Some("chat"),
            (Op::Completions, _) => Some("text_completion"),
            (Op::Embeddings, _) => Some("embeddings"),
            (Op::CountTokens | Op::Models, _) => None,
        }
    }
}

/// Query parameters taken out of every path before it is forwarded: a client's own API
/// key (Gemini takes one in `key`), and Google's field masks (`fields`, `$fields`), which
/// can leave `usageMetadata` out of an answer the gateway must count.
const STRIPPED_PARAMS: [&[u8]; 3] = [b"key", b"fields", b"$fields"];

/// Response formats (`alt`, `$alt`) whose usage the gateway can read: JSON and SSE.
/// `alt=proto` (a binary answer) or `alt=media` would hide it.
const READABLE_ALT: [&[u8]; 2] = [b"json", b"sse"];

/// A query the gateway will not forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// An `alt` response format whose usage could not be read.
    UnreadableFormat,
}

/// The path without the query parameters the gateway strips (see [`STRIPPED_PARAMS`]),
/// or `None` when it has none; an error for a response format the gateway cannot read.
/// A name spelled with percent-escapes (`%6Bey`) counts as the name it spells, and names
/// compare without regard to case.
pub fn clean_query(path_and_query: &str) -> Result<Option<String>, QueryError> {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return Ok(None);
    };
    let decoded = |s: &str| percent_decoded(s).map(|n| n.to_ascii_lowercase());
    let name_of = |param: &str| decoded(param.split('=').next().unwrap_or(""));
    for param in query.split('&') {
        let is_alt = name_of(param).is_some_and(|n| n == b"alt" || n == b"$alt");
        if is_alt {
            let value = param.split_once('=').map_or("", |(_, v)| v);
            if !decoded(value).is_some_and(|v| READABLE_ALT.contains(&v.as_slice())) {
                return Err(QueryError::UnreadableFormat);
            }
        }
    }
    let stripped =
        |param: &str| name_of(param).is_some_and(|n| STRIPPED_PARAMS.contains(&n.as_slice()));
    if !query.split('&').any(stripped) {
        return Ok(None);
    }
    let kept: Vec<&str> = query.split('&').filter(|p| !stripped(p)).collect();
    Ok(Some(if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }))
}

/// A short query parameter name with `%XX` escapes undone (`None`: long or malformed).
fn percent_decoded(name: &str) -> Option<Vec<u8>> {
    if name.len() > 16 {
        return None;
    }
    let mut out = Vec::with_capacity(name.len());
    let mut bytes = name.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// An endpoint of `api` that does not stream by path.
pub(super) fn endpoint(api: Api, format: Option<Format>, op: Op) -> Endpoint {
    Endpoint {
        api,
        format,
        streams_by_path: false,
        op,
    }
}

/// Whether `path` is `prefix` followed by one model id (no `/`, no `:method`).
pub(super) fn one_model(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|id| !id.is_empty() && !id.contains(['/', ':']))
}

/// The one method the gateway forwards on an endpoint: the model list and one model are
/// read with `GET`, everything else is `POST`. Any other method is never forwarded: on
/// OpenAI's paths it reaches other operations (`GET /v1/chat/completions` lists the
/// organisation's stored chats, `DELETE /v1/responses/...` deletes).
pub fn allowed_method(e: Endpoint) -> &'static str {
    match e.op {
        Op::Models => "GET",
        _ => "POST",
    }
}

/// Whose error shape the gateway's replies to a request take: its endpoint's API; on
/// the paths SDKs share (the model list) or an unknown path, what the client shows it
/// speaks (Anthropic's SDKs send `anthropic-version`, Google's `x-goog-api-client`), or
/// what the path looks like; else OpenAI's.
pub fn error_shape(
    endpoint: Option<Endpoint>,
    path: &str,
    anthropic_client: bool,
    google_client: bool,
) -> Api {
    if let Some(e) = endpoint.filter(|e| !(e.op == Op::Models && e.api == Api::OpenAi)) {
        return e.api;
    }
    let path = path.split('?').next().unwrap_or("");
    if anthropic_client || path.starts_with("/v1/messages") {
        Api::Anthropic
    } else if google_client || path.starts_with("/v1beta/") || path.contains(':') {
        Api::Gemini
    } else if path.starts_with("/openai/") {
        Api::Azure
    } else {
        Api::OpenAi
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::apis::{classify, model_in_path, APIS};

    #[test]
    fn keys_and_field_masks_are_taken_out_of_the_path() {
        let cases = [
            ("/v1beta/models/gemini-2.5-flash:generateContent", None),
            ("/v1beta/models/m:streamGenerateContent?alt=sse", None),
            (
                "/v1beta/models/m:generateContent?key=AIza-own",
                Some("/v1beta/models/m:generateContent"),
            ),
            (
                "/v1beta/models/m:streamGenerateContent?alt=sse&key=x",
                Some("/v1beta/models/m:streamGenerateContent?alt=sse"),
            ),
            (
                "/v1beta/models/m:streamGenerateContent?key=x&alt=sse&KEY=y",
                Some("/v1beta/models/m:streamGenerateContent?alt=sse"),
            ),
            ("/p?%6Bey=x&a=1", Some("/p?a=1")),
            ("/p?key", Some("/p")),
            ("/p?keys=1&monkey=2", None),
            ("/p?%zz=1", None),
            (
                "/v1beta/models/m:generateContent?fields=candidates&alt=json",
                Some("/v1beta/models/m:generateContent?alt=json"),
            ),
            ("/p?%24fields=usageMetadata&Fields=x", Some("/p")),
            (
                "/p?$fields=x&prettyPrint=false",
                Some("/p?prettyPrint=false"),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(clean_query(path), Ok(want.map(String::from)), "{path}");
        }
    }

    #[test]
    fn only_readable_response_formats_pass() {
        for (path, ok) in [
            ("/v1beta/models/m:streamGenerateContent?alt=sse", true),
            ("/v1beta/models/m:generateContent?alt=json", true),
            ("/v1beta/models/m:generateContent?alt=JSON", true),
            ("/v1beta/models/m:generateContent?%24alt=sse", true),
            ("/v1beta/models/m:generateContent?alt=proto", false),
            ("/v1beta/models/m:generateContent?$alt=proto", false),
            ("/v1beta/models/m:generateContent?alt=media", false),
            ("/v1beta/models/m:generateContent?alt", false),
            ("/v1beta/models/m:generateContent?alt=%70roto", false),
            ("/v1beta/models/m:generateContent?salt=proto", true),
        ] {
            assert_eq!(clean_query(path).is_ok(), ok, "{path}");
        }
    }

    /// A client's own key for any registered API is taken off every request, whatever
    /// the path: a new API module cannot forget its key header.
    #[test]
    fn every_api_key_header_is_stripped_from_clients() {
        for api in APIS {
            let (header, _) = api.key_header();
            assert!(
                crate::identity::credentials::must_strip(header),
                "{} sends its key in {header}, which clients may keep",
                api.name()
            );
            assert_eq!(Api::parse(api.name()), Some(api));
        }
    }

    #[test]
    fn models_in_paths() {
        assert_eq!(
            model_in_path("/v1beta/models/gemini-2.5-flash:generateContent"),
            Some("gemini-2.5-flash")
        );
        assert_eq!(
            model_in_path("/openai/deployments/gpt4o/chat/completions?api-version=1"),
            Some("gpt4o")
        );
        assert_eq!(model_in_path("/v1/chat/completions"), None);
        assert_eq!(model_in_path("/v1beta/models/:generateContent"), None);
    }

    #[test]
    fn table() {
        type Want = Option<(Api, Option<Format>, bool)>;
        let table: Vec<(&str, Want)> = vec![
            (
                "/v1/chat/completions",
                Some((Api::OpenAi, Some(Format::OpenAiChat), false)),
            ),
            (
                "/v1/responses",
                Some((Api::OpenAi, Some(Format::OpenAiResponses), false)),
            ),
            (
                "/v1/embeddings",
                Some((Api::OpenAi, Some(Format::OpenAiChat), false)),
            ),
            ("/v1/models", Some((Api::OpenAi, None, false))),
            ("/v1beta/models", Some((Api::Gemini, None, false))),
            (
                "/v1beta/models/gemini-2.5-flash",
                Some((Api::Gemini, None, false)),
            ),
            (
                "/v1/models/gemini-2.5-flash:generateContent",
                Some((Api::Gemini, Some(Format::Gemini), false)),
            ),
            (
                "/v1/messages",
                Some((Api::Anthropic, Some(Format::Anthropic), false)),
            ),
            (
                "/v1beta/models/gemini-2.0-flash:generateContent",
                Some((Api::Gemini, Some(Format::Gemini), false)),
            ),
            (
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                Some((Api::Gemini, Some(Format::Gemini), true)),
            ),
            (
                "/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21",
                Some((Api::Azure, Some(Format::OpenAiChat), false)),
            ),
            (
                "/v1/messages/count_tokens?beta=true",
                Some((Api::Anthropic, None, false)),
            ),
            (
                "/v1beta/models/gemini-2.5-flash:countTokens",
                Some((Api::Gemini, None, false)),
            ),
            ("/elsewhere/m:countTokens", None),
            (
                "/v1beta/models/text-embedding-004:embedContent",
                Some((Api::Gemini, Some(Format::Gemini), false)),
            ),
            (
                "/v1/models/gemini-embedding-001:batchEmbedContents",
                Some((Api::Gemini, Some(Format::Gemini), false)),
            ),
            ("/v1beta/models/m:predict", None),
            (
                "/v1/completions",
                Some((Api::OpenAi, Some(Format::OpenAiChat), false)),
            ),
            (
                "/openai/deployments/d/completions?api-version=2024-10-21",
                Some((Api::Azure, Some(Format::OpenAiChat), false)),
            ),
            ("/v1/models/gpt-4o-mini", Some((Api::OpenAi, None, false))),
            ("/v1/models/a/b", None),
            ("/v1/models/", None),
            ("/openai/deployments/gpt4o/images", None),
            ("/v1/unknown", None),
            ("/", None),
            ("/x:generateContent", None),
        ];
        for (path, want) in table {
            let got = classify(path).map(|e| (e.api, e.format, e.streams_by_path));
            assert_eq!(got, want, "{path}");
        }
    }

    #[test]
    fn ops() {
        for (path, op) in [
            ("/v1/chat/completions", Op::Chat),
            ("/openai/deployments/d/chat/completions", Op::Chat),
            ("/v1/completions", Op::Completions),
            ("/openai/deployments/d/completions", Op::Completions),
            ("/v1/embeddings", Op::Embeddings),
            ("/openai/deployments/d/embeddings", Op::Embeddings),
            ("/v1beta/models/m:embedContent", Op::Embeddings),
            ("/v1/models/m:batchEmbedContents", Op::Embeddings),
            ("/v1/responses", Op::Generate),
            ("/v1/messages", Op::Generate),
            (
                "/v1beta/models/m:streamGenerateContent?alt=sse",
                Op::Generate,
            ),
            ("/v1/messages/count_tokens", Op::CountTokens),
            ("/v1/models/m:countTokens", Op::CountTokens),
            ("/v1/models", Op::Models),
        ] {
            assert_eq!(classify(path).map(|e| e.op), Some(op), "{path}");
        }
    }

    #[test]
    fn models_paths_are_marked() {
        for (path, models) in [
            ("/v1/models", true),
            ("/v1/models/gpt-4o", true),
            ("/v1beta/models?pageSize=50", true),
            ("/v1beta/models/gemini-2.5-flash", true),
            ("/v1beta/models/gemini-2.5-flash:countTokens", false),
            ("/v1/chat/completions", false),
        ] {
            assert_eq!(
                classify(path).map(|e| e.op == Op::Models),
                Some(models),
                "{path}"
            );
        }
    }

    /// (path, anthropic-version sent, x-goog-api-client sent, shape)
    #[test]
    fn error_shapes() {
        let table = [
            ("/v1/chat/completions", false, false, Api::OpenAi),
            ("/v1/chat/completions", true, false, Api::OpenAi),
            ("/v1/messages", false, false, Api::Anthropic),
            ("/v1/messages/count_tokens", false, true, Api::Anthropic),
            ("/v1/messages/batches", false, false, Api::Anthropic),
            ("/v1/models", false, false, Api::OpenAi),
            ("/v1/models", true, false, Api::Anthropic),
            ("/v1/models/gemini-2.5-flash", false, true, Api::Gemini),
            ("/v1beta/models", false, false, Api::Gemini),
            ("/v1/models/m:generateContent", false, false, Api::Gemini),
            ("/v1beta/models/m:embedContent", false, false, Api::Gemini),
            ("/v1/models/m:embedContent", false, false, Api::Gemini),
            (
                "/openai/deployments/d/chat/completions",
                true,
                false,
                Api::Azure,
            ),
            ("/openai/deployments/d/images", false, false, Api::Azure),
            ("/v1/completions", false, false, Api::OpenAi),
            ("/nowhere", false, true, Api::Gemini),
        ];
        for (path, anthropic, google, want) in table {
            assert_eq!(
                error_shape(classify(path), path, anthropic, google),
                want,
                "{path} {anthropic} {google}"
            );
        }
    }
}
