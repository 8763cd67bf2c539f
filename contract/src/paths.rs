//! Where the policy service answers the filter (its gateway listener).

/// `POST`: an [`AuthorizeRequest`](crate::AuthorizeRequest), answered by a
/// [`Decision`](crate::Decision).
pub const AUTHORIZE_PATH: &str = "/v1/authorize";

/// `POST`: a [`UsageBatch`](crate::UsageBatch), answered by a
/// [`UsageAnswer`](crate::UsageAnswer). The filter's default; its configuration may
/// point elsewhere (a service behind a path prefix).
pub const USAGE_PATH: &str = "/v1/usage";
