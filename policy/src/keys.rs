//! Where limits, rate windows, reservations, rolling spend and rankings live in Redis.
//! (The usage ledger's own keys are in `ledger`.)
//!
//! Every per-scope key is `ck:<family>:<kind>:{<id>}` with nothing after the id, so no
//! two (family, kind, id) triples give one key whatever characters an id holds; the id
//! is a Redis Cluster hash tag, as in the ledger.

use crate::scope::Scope;
use crate::utc_date::Period;

/// The parts joined, in one allocation of the right size: keys are built several times
/// per decision and per booked record, and `format!` cost about five times as much.
pub fn joined(parts: &[&str]) -> String {
    let mut key = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        key.push_str(part);
    }
    key
}

/// The id of a scope kind's default limit set (`user:*` applies to every user without
/// a set of its own). A tenant, cost centre or model literally named `*` shares it.
pub const DEFAULT_ID: &str = "*";

/// The id a scope's rate window, reservations and rolling spend are keyed by: the
/// scope's own id, except for the per-user kinds (MCP), whose windows are each user's:
/// `<user>:<id>`. A canonical user id is a 36-character UUID without `:`, so the first
/// `:` ends it, and the key stays bounded (the id is a server name, or a server and a
/// tool name, each within their bounds).
pub fn window_id(scope: Scope, id: &str, user: &str) -> String {
    if scope.per_user() {
        joined(&[user, ":", id])
    } else {
        id.to_owned()
    }
}

/// The set between a scope's own and its kind's default, where a kind has one: for
/// `mcp_tool:<server>/<tool>` the server's, `mcp_tool:<server>/*`. Server names hold no
/// `/`, so the first one ends the server.
pub fn server_default_id(scope: Scope, id: &str) -> Option<String> {
    if scope != Scope::McpTool || id == DEFAULT_ID {
        return None;
    }
    let (server, _) = id.split_once('/')?;
    Some(format!("{server}/{DEFAULT_ID}"))
}

/// A set of `<kind>:<id>` for every stored limit set, so listing needs no `SCAN`.
pub const LIMITS_INDEX_KEY: &str = "ck:limits:index";

/// `ck:limits:<kind>:{<id>}`: a hash of the scope's limits (see `limit_set`).
pub fn limits_key(scope: Scope, id: &str) -> String {
    joined(&["ck:limits:", scope.as_str(), ":{", id, "}"])
}

/// The scope's member of [`LIMITS_INDEX_KEY`]; the kind never holds a `:`, so the first
/// one ends it.
pub fn limits_index_member(scope: Scope, id: &str) -> String {
    joined(&[scope.as_str(), ":", id])
}

/// `ck:rate:<kind>:{<id>}`: the current rate window (`start`, `requests`, `tokens`).
pub fn rate_key(scope: Scope, id: &str) -> String {
    joined(&["ck:rate:", scope.as_str(), ":{", id, "}"])
}

/// `ck:resv:z:<kind>:{<id>}`: live budget reservations, scored by expiry.
pub fn reservations_key(scope: Scope, id: &str) -> String {
    joined(&["ck:resv:z:", scope.as_str(), ":{", id, "}"])
}

/// `ck:resv:sum:<kind>:{<id>}`: the totals of [`reservations_key`] (`tokens`, `cost_micros`).
pub fn reserved_key(scope: Scope, id: &str) -> String {
    joined(&["ck:resv:sum:", scope.as_str(), ":{", id, "}"])
}

/// `ck:resv:req:{<request_id>}`: what one request reserved and where, for its commit.
pub fn reservation_key(request_id: &str) -> String {
    joined(&["ck:resv:req:{", request_id, "}"])
}

/// `ck:resv:req:<kind>:{<id>}:`: in the cluster layout, what comes before a request's
/// (or lease slot's) id in its reservation record for one scope, kept in the scope's
/// slot as the scope's other keys (see `store::sharded_authorize`). The id follows the
/// tag, so any id gives its own key.
pub fn scope_reservation_prefix(scope: Scope, id: &str) -> String {
    joined(&["ck:resv:req:", scope.as_str(), ":{", id, "}:"])
}

/// `ck:resv:idx:{<request_id>}`: in the cluster layout, which per-scope reservation
/// records a request (or lease slot) holds, for its commit or release.
pub fn reservation_index_key(request_id: &str) -> String {
    joined(&["ck:resv:idx:{", request_id, "}"])
}

/// `ck:roll:<kind>:{<id>}`: spend in the scope's rolling budget window, in buckets.
pub fn rolling_key(scope: Scope, id: &str) -> String {
    joined(&["ck:roll:", scope.as_str(), ":{", id, "}"])
}

/// What the top-spender rankings order by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    CostMicros,
    /// Input plus output tokens.
    Tokens,
}

impl Ranking {
    pub const ALL: [Ranking; 2] = [Ranking::CostMicros, Ranking::Tokens];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|by| by.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Ranking::CostMicros => "cost_micros",
            Ranking::Tokens => "tokens",
        }
    }
}

/// `ck:top:<kind>:<by>:<YYYY-MM-DD|YYYY-MM>`: a sorted set of ids by spend, updated
/// when usage is committed.
pub fn top_key(scope: Scope, by: Ranking, period: Period) -> String {
    format!("ck:top:{}:{}:{period}", scope.as_str(), by.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::utc_date::Day;

    #[test]
    fn keys_follow_the_documented_layout() {
        let day = Day::from_unix_ms(1_795_640_042_000);
        let cases = [
            (limits_key(Scope::Tenant, "acme"), "ck:limits:tenant:{acme}"),
            (limits_key(Scope::User, DEFAULT_ID), "ck:limits:user:{*}"),
            (
                limits_index_member(Scope::CostCenter, "cc:1"),
                "cost_center:cc:1",
            ),
            (rate_key(Scope::Model, "gpt-4o"), "ck:rate:model:{gpt-4o}"),
            (
                reservations_key(Scope::Tenant, "acme"),
                "ck:resv:z:tenant:{acme}",
            ),
            (
                reserved_key(Scope::Tenant, "acme"),
                "ck:resv:sum:tenant:{acme}",
            ),
            (reservation_key("req-1"), "ck:resv:req:{req-1}"),
            (
                scope_reservation_prefix(Scope::Tenant, "acme"),
                "ck:resv:req:tenant:{acme}:",
            ),
            (reservation_index_key("req-1"), "ck:resv:idx:{req-1}"),
            (rolling_key(Scope::User, "u"), "ck:roll:user:{u}"),
            (
                top_key(Scope::User, Ranking::CostMicros, Period::Month(day.month())),
                "ck:top:user:cost_micros:2026-11",
            ),
            (
                top_key(Scope::Tenant, Ranking::Tokens, Period::Day(day)),
                "ck:top:tenant:tokens:2026-11-25",
            ),
        ];
        for (got, expected) in cases {
            assert_eq!(got, expected);
        }
        const USER: &str = "0190a6f2-7c1e-8b3a-9f00-1234567890ab";
        let windows = [
            (Scope::McpServer, "everything", format!("{USER}:everything")),
            (
                Scope::McpTool,
                "everything/echo",
                format!("{USER}:everything/echo"),
            ),
            (Scope::Model, "gpt-4o", "gpt-4o".to_owned()),
            (Scope::User, USER, USER.to_owned()),
        ];
        for (scope, id, expected) in windows {
            assert_eq!(window_id(scope, id, USER), expected, "{scope:?}");
        }
        assert_eq!(
            rate_key(
                Scope::McpTool,
                &window_id(Scope::McpTool, "everything/echo", USER)
            ),
            format!("ck:rate:mcp_tool:{{{USER}:everything/echo}}")
        );
        let middles = [
            (Scope::McpTool, "everything/echo", Some("everything/*")),
            (Scope::McpTool, "everything/a/b", Some("everything/*")),
            (Scope::McpTool, "everything/*", Some("everything/*")),
            (Scope::McpTool, "*", None),
            (Scope::McpServer, "everything", None),
            (Scope::Model, "a/b", None),
        ];
        for (scope, id, expected) in middles {
            assert_eq!(server_default_id(scope, id).as_deref(), expected, "{id}");
        }
        for by in Ranking::ALL {
            assert_eq!(Ranking::parse(by.as_str()), Some(by));
        }
        assert_eq!(Ranking::parse("cost"), None);
    }
}
