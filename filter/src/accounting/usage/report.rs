//! What every usage reader produces: the normalised [`Usage`], the [`Format`] it read and
//! the [`Report`] of how the response ended. A leaf, so that each provider's reader
//! depends on it and nothing here depends on a provider.

/// Token counts of one response, normalised across providers:
///
/// - `input_tokens` is the whole input, cached and cache-creating tokens included;
///   `cached_input_tokens` and `cache_creation_input_tokens` are parts of it, and
///   `cache_write_1h_input_tokens` is the part of the cache writes Anthropic keeps for an
///   hour (billed at a higher rate than its 5-minute writes).
/// - `output_tokens` is the whole output, reasoning ("thinking") tokens included;
///   `reasoning_tokens` is a part of it, reported only by OpenAI and Gemini.
///
/// How each provider's fields map onto these is documented in its module. Counts are kept
/// as reported: a provider that reports a part larger than its whole is priced with
/// saturating arithmetic, never a panic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub reasoning_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_write_1h_input_tokens: u64,
}

impl Usage {
    /// Input tokens billed at the full input price.
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cached_input_tokens)
            .saturating_sub(self.cache_creation_input_tokens)
    }

    /// Cache writes billed at the (5-minute) cache-write price: all but the 1-hour ones.
    pub fn cache_writes_5m(&self) -> u64 {
        self.cache_creation_input_tokens
            .saturating_sub(self.cache_write_1h_input_tokens)
    }
}

/// The wire format of a provider's response, chosen by the route, not sniffed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenAI `/v1/chat/completions` (and the many servers that copy it).
    OpenAiChat,
    /// OpenAI `/v1/responses`.
    OpenAiResponses,
    /// Anthropic `/v1/messages`.
    Anthropic,
    /// Gemini `generateContent` and `streamGenerateContent`.
    Gemini,
}

impl Format {
    /// The name in usage records.
    pub fn name(self) -> &'static str {
        match self {
            Format::OpenAiChat => "openai_chat",
            Format::OpenAiResponses => "openai_responses",
            Format::Anthropic => "anthropic",
            Format::Gemini => "gemini",
        }
    }
}

/// What a response said about its own usage and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Usage as the provider reported it, normalised; `None` when it never said.
    pub usage: Option<Usage>,
    /// `usage` is the provider's final count, not a running one that the stream outlived
    /// (Anthropic's `message_start`, Gemini's chunks before the last).
    pub usage_final: bool,
    /// The provider sent its normal end of response (`[DONE]`, `response.completed` or
    /// `response.incomplete`, `message_stop`, a Gemini `finishReason`), or for a whole
    /// body, the body is a successful response.
    pub completed: bool,
    /// The provider's error type or code, when it reported an error; never its message.
    pub error: Option<String>,
    /// Bytes of generated text delivered (content, reasoning, refusals, tool arguments),
    /// the basis of an estimate when usage is missing. Left 0, unmeasured, for a whole
    /// OpenAI chat body with final usage and some output: no settlement reads it then.
    pub delivered_text_bytes: u64,
    /// Events or bodies that were not the JSON their format promises.
    pub malformed_events: u64,
    /// Events dropped for exceeding the parser's size limit.
    pub oversized_events: u64,
    /// The stream stopped inside an event (a cut connection, not a clean end).
    pub ended_mid_event: bool,
}

/// Parses one event's or body's JSON, counting it as malformed when it is not `T`.
pub fn parse<'a, T: serde::Deserialize<'a>>(json: &'a [u8], report: &mut Report) -> Option<T> {
    match serde_json::from_slice(json) {
        Ok(value) => Some(value),
        Err(_) => {
            report.malformed_events += 1;
            None
        }
    }
}
