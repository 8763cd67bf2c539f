//! An issuer's claim mapping: which claims name the tenant, the groups and the cost
//! centre, which claims a token must carry, and which values the issuer is trusted to
//! assert. Both the filter and the policy service read a verified token's claims through
//! [`ClaimRules::identify`], so a caller has the same tenant and groups in the ledger as
//! on the spend page.

use serde_json::{Map, Value};

use crate::bounds::{MAX_GROUPS, MAX_NAME_BYTES};
use crate::glob::glob_match;

/// Exact names and `*` globs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patterns(Vec<String>);

impl Patterns {
    pub fn allows(&self, value: &str) -> bool {
        self.0
            .iter()
            .any(|p| p == value || (p.contains('*') && glob_match(p, value)))
    }
}

/// The tenant, group and cost-centre values an issuer may assert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    pub tenants: Patterns,
    pub groups: Patterns,
    pub cost_centers: Patterns,
}

/// One issuer's claim mapping, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    /// Claims a token must carry (non-null) to be accepted.
    pub required: Vec<String>,
    pub tenant_claim: String,
    pub groups_claim: String,
    pub cost_center_claim: String,
    /// The claim values this issuer is trusted to assert (`None`: any; only for a sole
    /// issuer, which each reader checks across its issuers).
    pub trust: Option<Trust>,
}

/// An issuer's claim settings as written (every name optional, defaults applied here).
#[derive(Debug, Default)]
pub struct RawClaimRules {
    pub required_claims: Vec<String>,
    pub tenant_claim: Option<String>,
    pub groups_claim: Option<String>,
    pub cost_center_claim: Option<String>,
    /// (tenants, groups, cost centres), each names or `*` globs.
    pub trust: Option<(Vec<String>, Vec<String>, Vec<String>)>,
}

/// A setting that cannot be taken: the field (relative to the issuer, e.g.
/// `trust.groups`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub field: String,
    pub message: &'static str,
}

/// What a verified token says about its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub tenant: Option<String>,
    pub groups: Vec<String>,
    pub cost_center: Option<String>,
}

/// Why a verified token's claims are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimRefusal {
    /// No subject, or a required claim missing.
    Malformed,
    /// A tenant the issuer is not trusted to name.
    TenantNotAllowed,
    /// A cost centre the issuer is not trusted to name.
    CostCenterNotAllowed,
}

impl ClaimRules {
    pub fn new(raw: RawClaimRules) -> Result<ClaimRules, RuleError> {
        let err = |field: &str, message| RuleError {
            field: field.into(),
            message,
        };
        if raw.required_claims.iter().any(String::is_empty) {
            return Err(err("required_claims", "claim names must not be empty"));
        }
        let name = |value: Option<String>, default: &str, field: &str| match value {
            None => Ok(default.to_string()),
            Some(v) if v.trim().is_empty() => Err(err(field, "must not be empty")),
            Some(v) => Ok(v),
        };
        let patterns = |field: &str, list: Vec<String>| {
            if list
                .iter()
                .any(|p| p.is_empty() || p.chars().any(char::is_control))
            {
                return Err(err(field, "entries must be non-empty names or `*` globs"));
            }
            Ok(Patterns(list))
        };
        let trust = match raw.trust {
            None => None,
            Some((tenants, groups, cost_centers)) => Some(Trust {
                tenants: patterns("trust.tenants", tenants)?,
                groups: patterns("trust.groups", groups)?,
                cost_centers: patterns("trust.cost_centers", cost_centers)?,
            }),
        };
        Ok(ClaimRules {
            required: raw.required_claims,
            tenant_claim: name(raw.tenant_claim, "tenant", "tenant_claim")?,
            groups_claim: name(raw.groups_claim, "groups", "groups_claim")?,
            cost_center_claim: name(raw.cost_center_claim, "cost_center", "cost_center_claim")?,
            trust,
        })
    }

    /// The caller a verified token names: its subject (`sub`) and its custom claims.
    pub fn identify(
        &self,
        subject: Option<String>,
        claims: &Map<String, Value>,
    ) -> Result<Identity, ClaimRefusal> {
        let subject = subject
            .filter(|s| !s.is_empty())
            .ok_or(ClaimRefusal::Malformed)?;
        if self
            .required
            .iter()
            .any(|c| claims.get(c).is_none_or(Value::is_null))
        {
            return Err(ClaimRefusal::Malformed);
        }
        let text_claim = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| is_header_safe(s))
                .map(str::to_owned)
        };
        let tenant = text_claim(&self.tenant_claim);
        let cost_center = text_claim(&self.cost_center_claim);
        // Each issuer asserts only the tenants and cost centres it is trusted with: with
        // two identity providers, one must not claim the other's teams (and spend their
        // budgets). Groups only ever grant access, so a group it is not trusted with is
        // dropped.
        let trust = self.trust.as_ref();
        if tenant
            .as_deref()
            .is_some_and(|t| trust.is_some_and(|tr| !tr.tenants.allows(t)))
        {
            return Err(ClaimRefusal::TenantNotAllowed);
        }
        if cost_center
            .as_deref()
            .is_some_and(|c| trust.is_some_and(|tr| !tr.cost_centers.allows(c)))
        {
            return Err(ClaimRefusal::CostCenterNotAllowed);
        }
        let trusted_group = |g: &str| trust.is_none_or(|tr| tr.groups.allows(g));
        let groups = match claims.get(&self.groups_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|g| {
                    g.as_str()
                        .filter(|g| is_header_safe(g) && !g.contains(',') && trusted_group(g))
                        .map(str::to_owned)
                })
                .take(MAX_GROUPS)
                .collect(),
            Some(Value::String(s)) => s
                .split([',', ' '])
                .filter(|g| !g.is_empty() && is_header_safe(g) && trusted_group(g))
                .map(str::to_owned)
                .take(MAX_GROUPS)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Identity {
            subject,
            tenant,
            groups,
            cost_center,
        })
    }
}

/// Claim values travel as header values: printable, no control characters, bounded as
/// the policy service's names are. Values past the bound, and groups past `MAX_GROUPS`,
/// are dropped: they travel in headers and callouts.
fn is_header_safe(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_BYTES && s.chars().all(|c| !c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(trust: Option<(&[&str], &[&str], &[&str])>) -> ClaimRules {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        ClaimRules::new(RawClaimRules {
            required_claims: vec![],
            tenant_claim: Some("org".into()),
            groups_claim: None,
            cost_center_claim: None,
            trust: trust.map(|(t, g, c)| (own(t), own(g), own(c))),
        })
        .unwrap()
    }

    /// (trust, sub, claims, expected identity or refusal)
    #[test]
    fn identifies_by_the_issuer_mapping() {
        let long = "g".repeat(MAX_NAME_BYTES + 1);
        let many: Vec<String> = (0..MAX_GROUPS + 5).map(|i| format!("g{i}")).collect();
        type Trusted = Option<(
            &'static [&'static str],
            &'static [&'static str],
            &'static [&'static str],
        )>;
        /// (tenant, groups, cost centre) or the refusal.
        type Want<'a> = Result<(Option<&'a str>, Vec<&'a str>, Option<&'a str>), ClaimRefusal>;
        let only_acme: Trusted = Some((&["acme"], &["ml-*"], &["cc-*"]));
        let cases: Vec<(Trusted, Option<&str>, Value, Want)> = vec![
            (
                None,
                Some("alice"),
                json!({"org": "acme", "groups": ["ml", "eng"], "cost_center": "cc-1"}),
                Ok((Some("acme"), vec!["ml", "eng"], Some("cc-1"))),
            ),
            (
                None,
                Some("alice"),
                json!({"tenant": "acme", "groups": "ml, eng"}),
                Ok((None, vec!["ml", "eng"], None)),
            ),
            (
                None,
                Some("alice"),
                json!({"groups": ["a,b", "c", 7, long.clone(), "d\n"]}),
                Ok((None, vec!["c"], None)),
            ),
            (
                None,
                Some("alice"),
                json!({"groups": many}),
                Ok((
                    None,
                    many.iter().take(MAX_GROUPS).map(String::as_str).collect(),
                    None,
                )),
            ),
            (None, Some(""), json!({}), Err(ClaimRefusal::Malformed)),
            (None, None, json!({}), Err(ClaimRefusal::Malformed)),
            (
                only_acme,
                Some("bob"),
                json!({"org": "acme", "groups": ["ml-a", "eng"], "cost_center": "cc-9"}),
                Ok((Some("acme"), vec!["ml-a"], Some("cc-9"))),
            ),
            (
                only_acme,
                Some("bob"),
                json!({"org": "globex"}),
                Err(ClaimRefusal::TenantNotAllowed),
            ),
            (
                only_acme,
                Some("bob"),
                json!({"cost_center": "ops"}),
                Err(ClaimRefusal::CostCenterNotAllowed),
            ),
        ];
        for (trust, sub, claims, want) in cases {
            let Value::Object(map) = claims.clone() else {
                panic!()
            };
            let got = rules(trust).identify(sub.map(str::to_owned), &map);
            let want = want.map(|(t, g, c)| Identity {
                subject: sub.unwrap_or_default().to_string(),
                tenant: t.map(str::to_owned),
                groups: g.into_iter().map(str::to_owned).collect(),
                cost_center: c.map(str::to_owned),
            });
            assert_eq!(got, want, "{claims}");
        }
    }

    #[test]
    fn required_claims_must_be_present() {
        let mut r = rules(None);
        r.required = vec!["org".into()];
        let Value::Object(without) = json!({"org": null}) else {
            panic!()
        };
        let Value::Object(with) = json!({"org": "acme"}) else {
            panic!()
        };
        assert_eq!(
            r.identify(Some("a".into()), &without),
            Err(ClaimRefusal::Malformed)
        );
        assert!(r.identify(Some("a".into()), &with).is_ok());
    }

    #[test]
    fn rejects_settings_naming_the_field() {
        let cases: [(RawClaimRules, &str); 4] = [
            (
                RawClaimRules {
                    required_claims: vec![String::new()],
                    ..Default::default()
                },
                "required_claims",
            ),
            (
                RawClaimRules {
                    tenant_claim: Some(" ".into()),
                    ..Default::default()
                },
                "tenant_claim",
            ),
            (
                RawClaimRules {
                    groups_claim: Some(String::new()),
                    ..Default::default()
                },
                "groups_claim",
            ),
            (
                RawClaimRules {
                    trust: Some((vec!["*".into()], vec!["".into()], vec![])),
                    ..Default::default()
                },
                "trust.groups",
            ),
        ];
        for (raw, field) in cases {
            assert_eq!(ClaimRules::new(raw).unwrap_err().field, field);
        }
        let defaults = ClaimRules::new(RawClaimRules::default()).unwrap();
        assert_eq!(
            (
                defaults.tenant_claim.as_str(),
                defaults.groups_claim.as_str(),
                defaults.cost_center_claim.as_str()
            ),
            ("tenant", "groups", "cost_center")
        );
    }
}
