//! `/v1/embeddings` (and Azure's per-deployment variant), shaped like
//! OpenAI's response: a `list` of `embedding` objects and a usage with only
//! `prompt_tokens` and `total_tokens`. Vectors are unit length and derived
//! from the input, so the same text always embeds the same way.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};

use super::chat::admit;
use super::errors::ApiError;
use super::text::estimate_tokens;
use super::AppState;

/// text-embedding-3-small's and ada-002's size; -3-large has twice as many.
const DEFAULT_DIMENSIONS: usize = 1536;
const LARGE_DIMENSIONS: usize = 3072;
/// Keeps a typo in `dimensions` from building a gigabyte response.
const MAX_DIMENSIONS: usize = 16_384;

pub async fn embeddings(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = admit(&state, &headers).await {
        return e.into_response();
    }
    embed(&body, None)
}

/// Answers an admitted embeddings request. Azure passes its deployment, which
/// names the model and makes the body's `model` optional.
pub(super) fn embed(body: &[u8], deployment: Option<&str>) -> Response {
    let req = match EmbeddingsRequest::parse(body, deployment.is_none()) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let model = deployment.map_or(req.model, str::to_owned);
    let dimensions = req.dimensions.unwrap_or(if model.contains("3-large") {
        LARGE_DIMENSIONS
    } else {
        DEFAULT_DIMENSIONS
    });
    let data: Vec<Value> = req
        .inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let v = vector(&input.seed, dimensions);
            let embedding = if req.base64 {
                // What the official SDKs ask for by default: the
                // little-endian f32s, base64-encoded.
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                // Each f32 at its shortest, as OpenAI prints them, rather
                // than widened to f64's noisy digits.
                v.iter()
                    .map(|f| json!(f.to_string().parse::<f64>().unwrap_or(0.0)))
                    .collect()
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = req.inputs.iter().map(|i| i.tokens).sum();
    Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}

struct Input {
    /// Bytes the vector is derived from.
    seed: Vec<u8>,
    tokens: u64,
}

impl Input {
    fn text(s: &str) -> Result<Self, ApiError> {
        if s.is_empty() {
            return Err(ApiError::invalid_input());
        }
        Ok(Self {
            seed: s.as_bytes().to_vec(),
            tokens: estimate_tokens(s.chars().count()),
        })
    }

    /// Pre-tokenized input: one token per array item.
    fn tokens(items: &[Value]) -> Result<Self, ApiError> {
        let ids: Vec<u64> = items
            .iter()
            .map(Value::as_u64)
            .collect::<Option<_>>()
            .ok_or_else(ApiError::invalid_input)?;
        if ids.is_empty() {
            return Err(ApiError::invalid_input());
        }
        Ok(Self {
            seed: ids.iter().flat_map(|t| t.to_le_bytes()).collect(),
            tokens: ids.len() as u64,
        })
    }
}

struct EmbeddingsRequest {
    model: String,
    inputs: Vec<Input>,
    dimensions: Option<usize>,
    base64: bool,
}

impl EmbeddingsRequest {
    fn parse(body: &[u8], require_model: bool) -> Result<Self, ApiError> {
        let v: Value = serde_json::from_slice(body).map_err(|_| ApiError::bad_json())?;
        let obj = v.as_object().ok_or_else(ApiError::bad_json)?;
        // OpenAI refuses members it does not know here (`safety_identifier` included).
        const KNOWN: &[&str] = &["input", "model", "encoding_format", "dimensions", "user"];
        if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ApiError::unrecognized_argument(unknown));
        }
        let model = match obj.get("model") {
            Some(Value::String(m)) => m.clone(),
            _ if !require_model => String::new(),
            None | Some(Value::Null) => return Err(ApiError::missing_model()),
            Some(_) => return Err(ApiError::invalid_type("model", "a string")),
        };
        // A string, an array of strings, an array of token ids, or an array
        // of arrays of token ids.
        let inputs = match obj.get("input") {
            None | Some(Value::Null) => return Err(ApiError::missing_param("input")),
            Some(Value::String(s)) => vec![Input::text(s)?],
            Some(Value::Array(items)) if items.is_empty() => return Err(ApiError::invalid_input()),
            Some(Value::Array(items)) => match &items[0] {
                Value::String(_) => items
                    .iter()
                    .map(|i| i.as_str().ok_or_else(ApiError::invalid_input))
                    .map(|s| s.and_then(Input::text))
                    .collect::<Result<_, _>>()?,
                Value::Number(_) => vec![Input::tokens(items)?],
                Value::Array(_) => items
                    .iter()
                    .map(|i| i.as_array().ok_or_else(ApiError::invalid_input))
                    .map(|a| a.and_then(|a| Input::tokens(a)))
                    .collect::<Result<_, _>>()?,
                _ => return Err(ApiError::invalid_input()),
            },
            Some(_) => return Err(ApiError::invalid_input()),
        };
        let dimensions = match obj.get("dimensions") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(d) if d >= 1 => Some((d as usize).min(MAX_DIMENSIONS)),
                Some(d) => return Err(ApiError::below_minimum("dimensions", 1, d)),
                None => return Err(ApiError::invalid_type("dimensions", "an integer")),
            },
            Some(_) => return Err(ApiError::invalid_type("dimensions", "an integer")),
        };
        let base64 = match obj.get("encoding_format") {
            None | Some(Value::Null) => false,
            Some(Value::String(f)) if f == "float" => false,
            Some(Value::String(f)) if f == "base64" => true,
            Some(Value::String(f)) => {
                return Err(ApiError::invalid_value(
                    "encoding_format",
                    f,
                    "'float' and 'base64'",
                ))
            }
            Some(_) => return Err(ApiError::invalid_type("encoding_format", "a string")),
        };
        Ok(Self {
            model,
            inputs,
            dimensions,
            base64,
        })
    }
}

/// A unit-length vector that depends only on `seed` and `dimensions`.
pub(super) fn vector(seed: &[u8], dimensions: usize) -> Vec<f32> {
    // FNV-1a over the seed, then xorshift64* for the components.
    let mut state = seed.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    if state == 0 {
        state = 1;
    }
    let raw: Vec<f64> = (0..dimensions)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            (r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    raw.iter().map(|x| (x / norm) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::vector;

    #[test]
    fn vectors_are_deterministic_unit_length() {
        let a = vector(b"hello", 64);
        assert_eq!(a, vector(b"hello", 64));
        assert_ne!(a, vector(b"hellp", 64));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
}
