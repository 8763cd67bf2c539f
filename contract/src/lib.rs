//! The wire contract between chokepoint's filter and its policy service, defined once
//! for both: what the filter asks (`POST /v1/authorize`, [`AuthorizeRequest`]), what the
//! service answers ([`Decision`]), what the filter reports (`POST /v1/usage`,
//! [`UsageBatch`] of [`UsageRecord`]s and lease slots to release) and what the ledger
//! answers ([`UsageAnswer`]), with the bounds a field may not pass and the paths.
//!
//! Each type is generic over how it holds text, so the filter serialises borrowed
//! `&str`s straight from its request state and the service reads owned `String`s. Each
//! serialises exactly as the filter and the service send it; each reads what the reader
//! accepts, which is more: unknown fields are ignored (a newer peer may send more), and
//! an optional field may be absent or null alike.
//!
//! `schema/` holds the JSON Schema of each type, version 1, generated from these types
//! (a test fails when they drift apart) and describing what a sender sends. With the
//! `validate` feature, `validate::check` holds a payload to them.

// Tests may panic freely; the contract itself may not: the filter runs it.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod authorize;
pub mod bounds;
mod decision;
mod defaults;
pub mod glob;
mod guard;
pub mod identity;
mod mcp;
pub mod paths;
pub mod published;
mod required;
mod tag;
mod usage;
#[cfg(any(test, feature = "validate"))]
pub mod validate;

#[cfg(test)]
mod schema_tests;

pub use authorize::AuthorizeRequest;
pub use decision::{reason, Allow, Decision, Deny, LimitState};
pub use guard::{GuardAction, GuardStage, GuardVerdict};
pub use mcp::{McpScope, McpUsage};
pub use required::Required;
pub use tag::Tag;
pub use usage::{UsageAnswer, UsageBatch, UsageRecord};
