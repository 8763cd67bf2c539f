//! Which provider API a request path belongs to, and which response format it returns.
//! The path decides (not the body), so routing needs no parsing.

use crate::accounting::usage::Format;

/// A provider API family: its paths, key header and wire formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Api {
    #[default]
    OpenAi,
    Anthropic,
    Gemini,
    Azure,
}

impl Api {
    pub fn parse(s: &str) -> Option<Api> {
        match s {
            "openai" => Some(Api::OpenAi),
            "anthropic" => Some(Api::Anthropic),
            "gemini" => Some(Api::Gemini),
            "azure" => Some(Api::Azure),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
            Api::Gemini => "gemini",
            Api::Azure => "azure",
        }
    }

    /// The header the provider reads its key from, and the prefix before the key.
    pub fn key_header(self) -> (&'static str, &'static str) {
        match self {
            Api::OpenAi => ("authorization", "Bearer "),
            Api::Anthropic => ("x-api-key", ""),
            Api::Gemini => ("x-goog-api-key", ""),
            Api::Azure => ("api-key", ""),
        }
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

/// The model named in the path: Gemini's `models/{model}:method`, Azure's deployment.
pub fn model_in_path(path_and_query: &str) -> Option<&str> {
    let path = path_and_query.split('?').next().unwrap_or("");
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        return rest.split('/').next().filter(|d| !d.is_empty());
    }
    let rest = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    rest.split(':').next().filter(|m| !m.is_empty())
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

pub fn classify(path_and_query: &str) -> Option<Endpoint> {
    let path = path_and_query.split('?').next().unwrap_or("");
    let ep = |api, format, op| Endpoint {
        api,
        format,
        streams_by_path: false,
        op,
    };
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        let (_, op) = rest.split_once('/')?;
        let op = match op {
            "chat/completions" => Op::Chat,
            "completions" => Op::Completions,
            "embeddings" => Op::Embeddings,
            _ => return None,
        };
        return Some(ep(Api::Azure, Some(Format::OpenAiChat), op));
    }
    let gemini_model = path.starts_with("/v1beta/models/") || path.starts_with("/v1/models/");
    if let Some((_, method)) = path.rsplit_once(':').filter(|_| gemini_model) {
        let gemini = |format, op| Some(ep(Api::Gemini, format, op));
        return match method {
            "generateContent" => gemini(Some(Format::Gemini), Op::Generate),
            "streamGenerateContent" => Some(Endpoint {
                streams_by_path: true,
                ..ep(Api::Gemini, Some(Format::Gemini), Op::Generate)
            }),
            // Gemini's embedding answers carry no usage: estimated from the request.
            "embedContent" | "batchEmbedContents" => gemini(Some(Format::Gemini), Op::Embeddings),
            "countTokens" => gemini(None, Op::CountTokens),
            _ => None,
        };
    }
    let openai = |format, op| Some(ep(Api::OpenAi, format, op));
    match path {
        "/v1/chat/completions" => openai(Some(Format::OpenAiChat), Op::Chat),
        "/v1/completions" => openai(Some(Format::OpenAiChat), Op::Completions),
        "/v1/responses" => openai(Some(Format::OpenAiResponses), Op::Generate),
        "/v1/embeddings" => openai(Some(Format::OpenAiChat), Op::Embeddings),
        // OpenAI's, Anthropic's and (from google-genai 2.x, `v1`) Gemini's SDKs.
        "/v1/models" => openai(None, Op::Models),
        "/v1beta/models" => Some(ep(Api::Gemini, None, Op::Models)),
        "/v1/messages" => Some(ep(Api::Anthropic, Some(Format::Anthropic), Op::Generate)),
        "/v1/messages/count_tokens" => Some(ep(Api::Anthropic, None, Op::CountTokens)),
        // One model (`GET /v1/models/{id}`, every SDK; Gemini's also under `v1beta`).
        _ => {
            let one = |prefix| {
                path.strip_prefix(prefix)
                    .is_some_and(|id: &str| !id.is_empty() && !id.contains(['/', ':']))
            };
            if one("/v1/models/") {
                openai(None, Op::Models)
            } else if one("/v1beta/models/") {
                Some(ep(Api::Gemini, None, Op::Models))
            } else {
                None
            }
        }
    }
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
