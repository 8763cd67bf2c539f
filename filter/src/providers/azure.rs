//! Azure OpenAI: OpenAI's chat-format endpoints under `/openai/deployments/{deployment}/`,
//! the model named by the deployment (through the providers' deployment maps), the key in
//! `api-key`.

use super::api::{endpoint, Api, Endpoint, ModelSource, Op, ProviderApi};
use super::request_body::{CapField, RequestFields, UserField};
use crate::accounting::usage::report::Format;
use crate::providers::openai::{chat_cap, chat_cap_field, chat_outputs, chat_user_field};

pub struct Azure;

const PREFIX: &str = "/openai/deployments/";

impl ProviderApi for Azure {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn key_header(&self) -> (&'static str, &'static str) {
        ("api-key", "")
    }

    fn classify(&self, path: &str) -> Option<Endpoint> {
        let (_, op) = path.strip_prefix(PREFIX)?.split_once('/')?;
        let op = match op {
            "chat/completions" => Op::Chat,
            "completions" => Op::Completions,
            "embeddings" => Op::Embeddings,
            _ => return None,
        };
        Some(endpoint(Api::Azure, Some(Format::OpenAiChat), op))
    }

    fn model_source(&self) -> ModelSource {
        ModelSource::Deployment
    }

    fn model_in_path<'p>(&self, path: &'p str) -> Option<&'p str> {
        path.strip_prefix(PREFIX)?
            .split('/')
            .next()
            .filter(|d| !d.is_empty())
    }

    fn output_cap(&self, op: Op, fields: &RequestFields) -> Option<u64> {
        chat_cap(op, fields)
    }

    fn outputs(&self, op: Op, fields: &RequestFields) -> Option<u64> {
        chat_outputs(op, fields)
    }

    fn cap_field(&self, op: Op) -> Option<CapField> {
        chat_cap_field(op)
    }

    fn user_field(&self, op: Op) -> Option<UserField> {
        chat_user_field(op)
    }

    /// Chat and legacy completions stream usage only with `stream_options.include_usage`.
    fn stream_usage_is_optional(&self, op: Op) -> bool {
        matches!(op, Op::Chat | Op::Completions)
    }
}
