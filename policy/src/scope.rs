//! The kinds of scope limits, budgets and ledger totals are kept for.

use crate::store::Metric;

/// Who a limit or a ledger total belongs to: a user, the tenant, model or cost centre a
/// request names, or the MCP server or tool an MCP request calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    User,
    Tenant,
    Model,
    CostCenter,
    /// `mcp_server:<server>`: each user's requests to one MCP server.
    McpServer,
    /// `mcp_tool:<server>/<tool>`: each user's calls of one MCP tool.
    McpTool,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::User,
        Scope::Tenant,
        Scope::Model,
        Scope::CostCenter,
        Scope::McpServer,
        Scope::McpTool,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Tenant => "tenant",
            Scope::Model => "model",
            Scope::CostCenter => "cost_center",
            Scope::McpServer => "mcp_server",
            Scope::McpTool => "mcp_tool",
        }
    }

    /// The MCP kinds: a limit set on one holds for each user on its own (the rate
    /// window is keyed by the scope and the user), where a `model:` or `tenant:` set is
    /// shared by everyone the scope covers.
    pub fn per_user(self) -> bool {
        matches!(self, Scope::McpServer | Scope::McpTool)
    }

    /// Whether a limit set of this kind may hold `metric`: an MCP request has no tokens
    /// and no cost, so its kinds take request rates only.
    pub fn takes(self, metric: Metric) -> bool {
        !self.per_user() || metric == Metric::Rpm
    }

    /// The kinds the ledger books and the spend and top-spender endpoints read (an MCP
    /// exchange is counted on its own, see `ledger::mcp_counts`).
    pub fn has_spend(self) -> bool {
        !self.per_user()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_as_they_are_written() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("group"), None);
        assert_eq!(Scope::parse("User"), None);
        assert_eq!(Scope::parse("mcp"), None);
    }

    #[test]
    fn only_the_mcp_kinds_are_per_user_and_rpm_only() {
        for scope in Scope::ALL {
            let mcp = scope.as_str().starts_with("mcp_");
            assert_eq!(scope.per_user(), mcp, "{scope:?}");
            assert_eq!(scope.has_spend(), !mcp, "{scope:?}");
            for metric in Metric::ALL {
                assert_eq!(
                    scope.takes(metric),
                    !mcp || metric == Metric::Rpm,
                    "{scope:?} {metric:?}"
                );
            }
        }
    }
}
