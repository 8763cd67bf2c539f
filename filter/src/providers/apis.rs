//! The registration of every provider API: the one file that knows them all, mapping each
//! [`Api`] to its module's [`ProviderApi`] and finding the API a path belongs to.

use super::api::{Api, Endpoint, Op, ProviderApi};
use super::request_body::{CapField, UserField};
use super::{anthropic, azure, gemini, openai};

/// Every API, in the order their paths are tried (no two claim the same path).
pub const APIS: [Api; 4] = [Api::OpenAi, Api::Anthropic, Api::Gemini, Api::Azure];

impl Api {
    /// What the gateway knows about this API.
    pub fn spec(self) -> &'static dyn ProviderApi {
        match self {
            Api::OpenAi => &openai::OpenAi,
            Api::Anthropic => &anthropic::Anthropic,
            Api::Gemini => &gemini::Gemini,
            Api::Azure => &azure::Azure,
        }
    }

    pub fn parse(s: &str) -> Option<Api> {
        APIS.into_iter().find(|a| a.name() == s)
    }

    pub fn name(self) -> &'static str {
        self.spec().name()
    }

    /// The header the provider reads its key from, and the prefix before the key.
    pub fn key_header(self) -> (&'static str, &'static str) {
        self.spec().key_header()
    }
}

impl Endpoint {
    /// Where the endpoint takes its output cap (`None`: it generates no text, e.g.
    /// embeddings).
    pub fn cap_field(self) -> Option<CapField> {
        self.format?;
        match self.op {
            Op::Embeddings | Op::CountTokens | Op::Models => None,
            op => self.api.spec().cap_field(op),
        }
    }

    /// The end-user field, for pseudonymous attribution: only where usage is counted
    /// (token counting takes none).
    pub fn user_field(self) -> Option<UserField> {
        self.format?;
        self.api.spec().user_field(self.op)
    }
}

/// The endpoint a request's path names, whichever API's it is.
pub fn classify(path_and_query: &str) -> Option<Endpoint> {
    let path = path_and_query.split('?').next().unwrap_or("");
    APIS.into_iter().find_map(|a| a.spec().classify(path))
}

/// The model named in the path: Gemini's `models/{model}:method`, Azure's deployment.
pub fn model_in_path(path_and_query: &str) -> Option<&str> {
    let path = path_and_query.split('?').next().unwrap_or("");
    APIS.into_iter().find_map(|a| a.spec().model_in_path(path))
}
