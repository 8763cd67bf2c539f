//! Limit sets from the policy file (rendered as `{"<kind>:<id>": {limits}}` JSON),
//! written to Redis at start so a fresh deployment enforces them from its first request.
//! Each is validated exactly as the admin API validates a `PUT`; sets the file does not
//! name are left to the admin API.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::fields;
use crate::keys::{self, LIMITS_INDEX_KEY};
use crate::limit_set::LimitSet;
use crate::scope::Scope;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct SeedLimit {
    pub scope: Scope,
    pub id: String,
    pub set: LimitSet,
}

/// Parses the rendered limits file; every error names the scope and field.
pub fn parse(text: &str) -> Result<Vec<SeedLimit>, String> {
    let object: Map<String, Value> =
        serde_json::from_str(text).map_err(|e| format!("limits file is not a JSON object: {e}"))?;
    let mut out = Vec::with_capacity(object.len());
    for (name, body) in object {
        let (kind, id) = name
            .split_once(':')
            .ok_or_else(|| format!("{name:?}: a scope is <kind>:<id>"))?;
        let scope = fields::scope_kind("scope", Some(kind.to_owned()))
            .map_err(|e| format!("{name}: {}", e.message))?;
        let id = fields::scope_id("scope", scope, Some(id.to_owned()), true)
            .map_err(|e| format!("{name}: {}", e.message))?;
        // As the admin API words a `PUT` body that is not an object.
        let body: Map<String, Value> = serde_json::from_value(body)
            .map_err(|e| format!("{name}: request body must be a JSON object: {e}"))?;
        let set =
            LimitSet::from_body_for(scope, body).map_err(|e| format!("{name}: {}", e.message))?;
        out.push(SeedLimit { scope, id, set });
    }
    Ok(out)
}

/// Writes every set, retrying while Redis is unreachable (the service answers 503 until
/// Redis is up anyway, so nothing is decided without them).
pub async fn apply(store: Store, limits: Vec<SeedLimit>, now_ms: impl Fn() -> u64) {
    for l in limits {
        let mut fields = l.set.to_fields();
        fields.push(("updated_ms", now_ms().to_string()));
        let mut backoff = Duration::from_millis(100);
        loop {
            let written = store
                .replace_hash_indexed(
                    &keys::limits_key(l.scope, &l.id),
                    &fields,
                    LIMITS_INDEX_KEY,
                    &keys::limits_index_member(l.scope, &l.id),
                )
                .await;
            match written {
                Ok(()) => {
                    log::info!(
                        "limits for {}:{} set from the policy file: {}",
                        l.scope.as_str(),
                        l.id,
                        l.set.to_json()
                    );
                    break;
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcp_scopes_are_validated_as_the_admin_api_does() {
        let long_tool = format!("mcp_tool:s/{}", "t".repeat(257));
        // (scope, error part; None: accepted)
        let cases = [
            ("mcp_server:*", None),
            ("mcp_server:everything", None),
            ("mcp_server:a-1", None),
            ("mcp_tool:*", None),
            ("mcp_tool:everything/*", None),
            ("mcp_tool:everything/trigger-long-running-operation", None),
            ("mcp_tool:everything/a/b", None),
            ("mcp_tool:everything", Some("must be <server>/<tool>")),
            ("mcp_tool:everything/", Some("must not be empty")),
            ("mcp_tool:/echo", Some("must be an MCP server name")),
            ("mcp_tool:Every/echo", Some("must be an MCP server name")),
            ("mcp_server:every_thing", Some("must be an MCP server name")),
            ("mcp_server:-x", Some("must be an MCP server name")),
            ("mcp_server:x-", Some("must be an MCP server name")),
            ("mcp_server:", Some("must be an MCP server name")),
            (long_tool.as_str(), Some("must be at most 256 bytes")),
            ("mcp:everything", Some("must be one of user, tenant")),
        ];
        for (scope, error) in cases {
            let text = serde_json::json!({ scope: {"rpm": 5} }).to_string();
            match (parse(&text), error) {
                (Ok(limits), None) => {
                    assert_eq!(limits.len(), 1, "{scope}");
                    assert_eq!(
                        format!("{}:{}", limits[0].scope.as_str(), limits[0].id),
                        scope
                    );
                }
                (Err(err), Some(part)) => {
                    assert!(err.starts_with(&format!("{scope}: ")), "{err}");
                    assert!(err.contains(part), "{scope}: {err}");
                }
                (got, _) => panic!("{scope}: {got:?}"),
            }
        }
        let err = parse(r#"{"mcp_server:*": {"rpm": 5, "tpm": 9}}"#).expect_err("tpm");
        assert!(
            err.starts_with("mcp_server:*: tpm does not apply to mcp_server limits"),
            "{err}"
        );
    }
}
