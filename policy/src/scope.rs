//! The kinds of scope limits, budgets and ledger totals are kept for.

/// Who a limit or a ledger total belongs to: a user, or the tenant, model or cost
/// centre a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    User,
    Tenant,
    Model,
    CostCenter,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::User, Scope::Tenant, Scope::Model, Scope::CostCenter];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Tenant => "tenant",
            Scope::Model => "model",
            Scope::CostCenter => "cost_center",
        }
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
    }
}
