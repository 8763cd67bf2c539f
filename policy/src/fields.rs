//! Field checks shared by every input that names a request, a user or a scope (the
//! authorize and usage endpoints, the admin API, the policy file), so they accept exactly
//! the same ids: a `request_id` authorized is one the ledger will book.
//!
//! `field` is the name reported in errors: `request_id` for authorize,
//! `records[3].request_id` for a record in a usage batch. It is anything that displays
//! as that name, so a caller checking many fields (a batch's records) builds a name's
//! text only for the field that fails.
//!
//! Every string a client can influence and the service stores or keys on is bounded
//! here, by the contract's bounds: request and reservation ids by
//! [`MAX_REQUEST_ID_BYTES`], names (tenant, cost centre, model, model key, provider,
//! group, format, decision, error) by [`MAX_NAME_BYTES`], groups by [`MAX_GROUPS`]. The
//! filter keeps within them before it calls, so a value past a bound here is a filter
//! bug, never a client's choice: authorize refuses it with 400 and the ledger
//! dead-letters the record.

use std::fmt::Display;

use chokepoint_contract::bounds::{MAX_GROUPS, MAX_NAME_BYTES, MAX_REQUEST_ID_BYTES};

use crate::keys::DEFAULT_ID;
use crate::scope::Scope;
use crate::user_id::UserId;

/// A value that cannot be taken: `code` is `missing_field` or `invalid_field`, the
/// message names the field. The API answers it as a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

pub fn missing(field: impl Display + Copy) -> Invalid {
    Invalid {
        code: "missing_field",
        message: format!("{field} is required"),
    }
}

pub fn invalid(field: impl Display + Copy, why: &str) -> Invalid {
    Invalid {
        code: "invalid_field",
        message: format!("{field} {why}"),
    }
}

pub fn request_id(field: impl Display + Copy, value: Option<String>) -> Result<String, Invalid> {
    let request_id = value.ok_or_else(|| missing(field))?;
    if request_id.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if request_id.len() > MAX_REQUEST_ID_BYTES {
        return Err(invalid(
            field,
            &format!("must be at most {MAX_REQUEST_ID_BYTES} bytes"),
        ));
    }
    if request_id.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(request_id)
}

/// An optional name, at most [`MAX_NAME_BYTES`]; its content is not checked (blank
/// names no scope, as before).
pub fn name(field: impl Display + Copy, value: Option<String>) -> Result<Option<String>, Invalid> {
    match value {
        Some(name) if name.len() > MAX_NAME_BYTES => Err(too_long(field, name.len())),
        value => Ok(value),
    }
}

/// The name the ledger and model limits key on (contract C3): a model of the policy, a
/// price pattern, or `other`. Optional, but never blank when sent: a blank key would
/// silently book the request under no model at all.
pub fn model_key(
    field: impl Display + Copy,
    value: Option<String>,
) -> Result<Option<String>, Invalid> {
    let Some(key) = name(field, value)? else {
        return Ok(None);
    };
    if key.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    Ok(Some(key))
}

/// At most [`MAX_GROUPS`] groups, each a name.
pub fn groups(field: impl Display + Copy, groups: Vec<String>) -> Result<Vec<String>, Invalid> {
    if groups.len() > MAX_GROUPS {
        return Err(invalid(
            field,
            &format!(
                "must hold at most {MAX_GROUPS} groups (got {})",
                groups.len()
            ),
        ));
    }
    for (i, group) in groups.iter().enumerate() {
        if group.len() > MAX_NAME_BYTES {
            return Err(too_long(&format!("{field}[{i}]"), group.len()));
        }
    }
    Ok(groups)
}

/// Longest MCP server name (`mcp.servers[].name` in the policy file).
pub const MAX_SERVER_BYTES: usize = 64;

/// An MCP server's name as the policy file has it (`mcp.servers[].name`): 1 to 64 of
/// `a-z`, `0-9` and `-`, not starting or ending with `-`. The filter sends only the
/// names it was configured with; the server is the first part of a tool's scope id
/// (`<server>/<tool>`), so it must never hold a `/`.
pub fn mcp_server(field: &str, server: &str) -> Result<(), Invalid> {
    let ok = (1..=MAX_SERVER_BYTES).contains(&server.len())
        && server
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !server.starts_with('-')
        && !server.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            &format!(
                "must be an MCP server name: 1 to {MAX_SERVER_BYTES} of a-z, 0-9 and -, \
                 not starting or ending with - (got {server:?})"
            ),
        ))
    }
}

/// An MCP tool's name: not blank, at most [`MAX_NAME_BYTES`], no control characters
/// (MCP only recommends a character set, so any other name is taken).
pub fn mcp_tool(field: &str, tool: &str) -> Result<(), Invalid> {
    if tool.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if tool.len() > MAX_NAME_BYTES {
        return Err(too_long(field, tool.len()));
    }
    if tool.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn too_long(field: impl Display + Copy, len: usize) -> Invalid {
    invalid(
        field,
        &format!("must be at most {MAX_NAME_BYTES} bytes (got {len})"),
    )
}

pub fn user(field: impl Display + Copy, value: Option<String>) -> Result<UserId, Invalid> {
    let user = value.ok_or_else(|| missing(field))?;
    UserId::parse(&user).ok_or_else(|| {
        invalid(
            field,
            "must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
        )
    })
}

/// `scope_kind` as the admin API names it: `user`, `tenant`, `cost_center`, `model`,
/// `mcp_server` or `mcp_tool`.
pub fn scope_kind(field: &str, value: Option<String>) -> Result<Scope, Invalid> {
    let kind = value.ok_or_else(|| missing(field))?;
    Scope::parse(&kind).ok_or_else(|| {
        invalid(
            field,
            "must be one of user, tenant, cost_center, model, mcp_server, mcp_tool",
        )
    })
}

/// A `scope_kind` with spend (ledger totals, budgets, rankings): not an MCP kind, whose
/// exchanges are counted on their own.
pub fn spend_kind(field: &str, value: Option<String>) -> Result<Scope, Invalid> {
    let scope = scope_kind(field, value)?;
    if !scope.has_spend() {
        return Err(invalid(
            field,
            &format!(
                "must be one of user, tenant, cost_center, model: {} limits are per user and \
                 have no spend (see GET /v1/admin/usage?by={})",
                scope.as_str(),
                scope.as_str()
            ),
        ));
    }
    Ok(scope)
}

/// A scope id an operator names: a user's UUID (canonicalised, as the counters hold
/// it), a tenant, cost centre or model name, an MCP server's name, or an MCP tool's
/// `<server>/<tool>` (`<server>/*`: every tool of the server); `*`, the kind's default,
/// only where `default_allowed`.
pub fn scope_id(
    field: &str,
    scope: Scope,
    value: Option<String>,
    default_allowed: bool,
) -> Result<String, Invalid> {
    let id = value.ok_or_else(|| missing(field))?;
    if id == DEFAULT_ID {
        return if default_allowed {
            Ok(id)
        } else {
            Err(invalid(
                field,
                "must name one scope; `*` (the default limit set) has no spend of its own",
            ))
        };
    }
    match scope {
        Scope::McpServer => {
            mcp_server(field, &id)?;
            return Ok(id);
        }
        Scope::McpTool => {
            let (server, tool) = id.split_once('/').ok_or_else(|| {
                invalid(
                    field,
                    &format!(
                        "must be <server>/<tool>, <server>/* or * for every tool (got {id:?})"
                    ),
                )
            })?;
            mcp_server(field, server)?;
            mcp_tool(field, tool)?;
            return Ok(id);
        }
        _ => {}
    }
    if scope == Scope::User {
        let hint = if default_allowed {
            "must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx) or * for every user"
        } else {
            "must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
        };
        return UserId::parse(&id)
            .map(|user| user.as_str().to_owned())
            .ok_or_else(|| invalid(field, hint));
    }
    if id.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if id.len() > MAX_NAME_BYTES {
        return Err(invalid(
            field,
            &format!("must be at most {MAX_NAME_BYTES} bytes"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(id)
}
