//! `POST /v1/authorize`: may this user make this request now?

use serde::{Deserialize, Serialize};

use crate::defaults::{is_true, is_zero, or_default, or_true, yes};
use crate::mcp::McpScope;
use crate::Required;
#[cfg(test)]
use crate::{bounds::*, schema_tests::*};

/// What the filter asks the policy service before a request goes upstream (or, for a
/// lease renewal, ahead of the caller's next ones).
// `S` holds text and `L` the groups: `&str` and `&[String]` when the filter sends,
// `String` and `Vec<String>` when the service reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>, L: Deserialize<'de> + Default"))]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(
        rename = "AuthorizeRequest",
        bound = "S: schemars::JsonSchema, L: schemars::JsonSchema + Default"
    )
)]
pub struct AuthorizeRequest<S = String, L = Vec<String>> {
    /// The gateway's id for this decision: a request's own id, which becomes its usage
    /// record's idempotency key, or `<id>` of a lease renewal.
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_REQUEST_ID_BYTES), pattern(ID)))]
    pub request_id: Required<S>,
    /// The caller's pseudonymous id: a UUID, either case.
    #[cfg_attr(test, schemars(pattern(UUID)))]
    pub user: Required<S>,
    #[cfg_attr(test, schemars(length(max = MAX_NAME_BYTES)))]
    pub tenant: Option<S>,
    #[serde(default, deserialize_with = "or_default")]
    #[cfg_attr(test, schemars(length(max = MAX_GROUPS), inner(length(max = MAX_NAME_BYTES))))]
    pub groups: L,
    /// The model the client asked for.
    #[cfg_attr(test, schemars(length(max = MAX_NAME_BYTES)))]
    pub model: Option<S>,
    /// What the model-scope limits key on: a name the configuration holds, or `other`
    /// (clients choose model names; the policy service's keys must stay bounded).
    #[cfg_attr(test, schemars(length(min = 1, max = MAX_NAME_BYTES), pattern(NOT_BLANK)))]
    pub model_key: Option<S>,
    /// `false`: the model has no price, so a dollar budget must refuse it rather than
    /// book it at zero. Sent only then.
    #[serde(
        default = "yes",
        deserialize_with = "or_true",
        skip_serializing_if = "is_true"
    )]
    pub priced: bool,
    #[cfg_attr(test, schemars(length(max = MAX_NAME_BYTES)))]
    pub cost_center: Option<S>,
    /// The provider the request goes to, by its configured name.
    #[cfg_attr(test, schemars(length(max = MAX_NAME_BYTES)))]
    pub provider: Option<S>,
    #[serde(default, deserialize_with = "or_default")]
    pub stream: bool,
    /// The request's worst case: input estimate plus its output cap (read as at most
    /// 2^53).
    #[serde(default, deserialize_with = "or_default")]
    pub reserve_tokens: u64,
    /// The same, priced, in micro-dollars (0 when the model has no price; read as at
    /// most 2^53).
    #[serde(default, deserialize_with = "or_default")]
    pub reserve_cost_micros: u64,
    /// Requests' worth wanted as a lease; absent (or 1): just this one (read as at most
    /// 64).
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "is_zero"
    )]
    pub lease_slots: u64,
    /// With a lease: by when (ms from now) its unused slots are back at the policy
    /// service at the latest, so a denial that only they cause can say when to retry
    /// (read as at most 60000).
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "is_zero"
    )]
    pub lease_return_ms: u64,
    /// An MCP request: the server and tool whose limits apply (and no model's, user's or
    /// budget's); absent for model requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpScope<S>>,
}
