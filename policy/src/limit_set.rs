//! What an operator sets for one scope: request and token rates per window, and a budget
//! in micro-dollars and/or tokens over a period. Stored as a Redis hash the authorize
//! script reads on every decision (`scripts/windows.lua` documents the fields).

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::fields::{self, Invalid};
use crate::scope::Scope;
use crate::store::Metric;

/// Largest limit accepted: 2^53, which Redis's Lua (doubles) compares exactly.
pub const MAX_LIMIT: u64 = 1 << 53;

/// Longest rolling budget window: a leap year.
pub const MAX_ROLLING_SECS: u64 = 366 * 24 * 3600;

/// The fields of a stored limit set, as the scripts read them.
pub const FIELDS: [&str; 5] = ["rpm", "tpm", "usd_micros", "tokens", "period"];

/// The window a budget counts spend over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPeriod {
    /// The UTC calendar day.
    Day,
    /// The UTC calendar month.
    Month,
    /// The last `secs` seconds.
    Rolling { secs: u64 },
}

impl BudgetPeriod {
    /// `day`, `month` or `rolling:<secs>` (1 s to a year).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "day" => Some(Self::Day),
            "month" => Some(Self::Month),
            _ => {
                let secs = text.strip_prefix("rolling:")?;
                // Digits only: no sign, no spaces, no leading zeros.
                if secs.is_empty()
                    || secs.starts_with('0')
                    || !secs.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                let secs: u64 = secs.parse().ok()?;
                (secs <= MAX_ROLLING_SECS).then_some(Self::Rolling { secs })
            }
        }
    }

    /// `day`, `month` or `rolling`: the last part of a budget's limit name.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
            Self::Rolling { .. } => "rolling",
        }
    }
}

impl fmt::Display for BudgetPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rolling { secs } => write!(f, "rolling:{secs}"),
            other => f.write_str(other.kind()),
        }
    }
}

/// One scope's limits, each optional. A budget (`usd_micros` and/or `tokens`) always
/// has a `period`, and a `period` always has a budget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitSet {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub usd_micros: Option<u64>,
    pub tokens: Option<u64>,
    pub period: Option<BudgetPeriod>,
}

/// A set as the admin API's `PUT` body and the policy file give it.
#[derive(Deserialize)]
struct Body {
    // u64 makes serde reject negatives, fractions and strings, naming the field.
    rpm: Option<u64>,
    tpm: Option<u64>,
    usd_micros: Option<u64>,
    tokens: Option<u64>,
    period: Option<String>,
}

impl LimitSet {
    /// Reads and validates a set given as `{"rpm","tpm","usd_micros","tokens","period"}`,
    /// naming the offending field.
    pub fn from_body(object: Map<String, Value>) -> Result<LimitSet, Invalid> {
        // Strict: a misspelt limit must not be silently dropped, leaving a scope unlimited.
        if let Some(unknown) = object.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            return Err(Invalid {
                code: "unknown_field",
                message: format!(
                    "{unknown} is not a limit field; expected one of {}",
                    FIELDS.join(", ")
                ),
            });
        }
        let body: Body =
            serde_path_to_error::deserialize(Value::Object(object)).map_err(|err| {
                let path = err.path().to_string();
                Invalid {
                    code: "invalid_field",
                    message: format!("{path}: {}", err.into_inner()),
                }
            })?;
        let period = body
            .period
            .map(|text| {
                BudgetPeriod::parse(&text).ok_or_else(|| {
                    fields::invalid(
                        "period",
                        &format!(
                            "must be day, month or rolling:<secs> (1 to {MAX_ROLLING_SECS}); got {text:?}"
                        ),
                    )
                })
            })
            .transpose()?;
        let set = LimitSet {
            rpm: body.rpm,
            tpm: body.tpm,
            usd_micros: body.usd_micros,
            tokens: body.tokens,
            period,
        };
        set.check()
            .map_err(|(field, why)| fields::invalid(field, &why))?;
        Ok(set)
    }

    /// The first rule the set breaks, as `(field, why)`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (field, value) in [
            ("rpm", self.rpm),
            ("tpm", self.tpm),
            ("usd_micros", self.usd_micros),
            ("tokens", self.tokens),
        ] {
            if value.is_some_and(|v| v > MAX_LIMIT) {
                return Err((field, format!("must be at most 2^53 ({MAX_LIMIT})")));
            }
        }
        let budget = self.usd_micros.is_some() || self.tokens.is_some();
        match (budget, self.period) {
            (true, None) => Err((
                "period",
                "is required with usd_micros or tokens (day, month or rolling:<secs>)".into(),
            )),
            (false, Some(_)) => Err((
                "period",
                "applies to a budget: set usd_micros or tokens with it".into(),
            )),
            _ if !budget && self.rpm.is_none() && self.tpm.is_none() => Err((
                "rpm",
                "or another limit is required: set at least one of rpm, tpm, usd_micros, tokens \
                 (DELETE removes a limit set)"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// The first field the set holds that `scope`'s kind does not take, as
    /// `(field, why)`: the MCP kinds take rpm only (an MCP request has no tokens or cost).
    pub fn check_scope(&self, scope: Scope) -> Result<(), (&'static str, String)> {
        for (metric, set) in [
            (Metric::Tpm, self.tpm.is_some()),
            (Metric::UsdMicros, self.usd_micros.is_some()),
            (Metric::Tokens, self.tokens.is_some()),
        ] {
            if set && !scope.takes(metric) {
                return Err((
                    metric.as_str(),
                    format!(
                        "does not apply to {} limits: an MCP request has no tokens or cost, \
                         so only rpm (requests per window, per user) can be set",
                        scope.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// [`LimitSet::from_body`] for a set of `scope`'s kind.
    pub fn from_body_for(scope: Scope, object: Map<String, Value>) -> Result<LimitSet, Invalid> {
        let set = Self::from_body(object)?;
        set.check_scope(scope)
            .map_err(|(field, why)| fields::invalid(field, &why))?;
        Ok(set)
    }

    /// Field-value pairs for `HSET`, only the fields that are set.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = Vec::new();
        for (field, value) in [
            ("rpm", self.rpm),
            ("tpm", self.tpm),
            ("usd_micros", self.usd_micros),
            ("tokens", self.tokens),
        ] {
            if let Some(value) = value {
                fields.push((field, value.to_string()));
            }
        }
        if let Some(period) = self.period {
            fields.push(("period", period.to_string()));
        }
        fields
    }

    /// Reads a stored hash back. `None` when the hash holds no limit field (no set); an
    /// error names a field that is not what the service writes (a hand edit).
    pub fn from_fields(hash: &HashMap<String, String>) -> Result<Option<Self>, String> {
        let number = |field: &str| -> Result<Option<u64>, String> {
            hash.get(field)
                .map(|text| {
                    text.parse::<u64>()
                        .ok()
                        .filter(|n| *n <= MAX_LIMIT)
                        .ok_or_else(|| format!("{field} holds {text:?}, not a limit"))
                })
                .transpose()
        };
        let set = Self {
            rpm: number("rpm")?,
            tpm: number("tpm")?,
            usd_micros: number("usd_micros")?,
            tokens: number("tokens")?,
            period: hash
                .get("period")
                .map(|text| {
                    BudgetPeriod::parse(text)
                        .ok_or_else(|| format!("period holds {text:?}, not a period"))
                })
                .transpose()?,
        };
        if set == Self::default() {
            return Ok(None);
        }
        set.check()
            .map_err(|(field, why)| format!("{field} {why}"))?;
        Ok(Some(set))
    }

    /// The API's JSON form: the fields that are set, nothing else.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        for (field, value) in [
            ("rpm", self.rpm),
            ("tpm", self.tpm),
            ("usd_micros", self.usd_micros),
            ("tokens", self.tokens),
        ] {
            if let Some(value) = value {
                object.insert(field.to_owned(), json!(value));
            }
        }
        if let Some(period) = self.period {
            object.insert("period".to_owned(), json!(period.to_string()));
        }
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_periods() {
        let cases = [
            ("day", Some(BudgetPeriod::Day)),
            ("month", Some(BudgetPeriod::Month)),
            ("rolling:1", Some(BudgetPeriod::Rolling { secs: 1 })),
            ("rolling:3600", Some(BudgetPeriod::Rolling { secs: 3600 })),
            (
                "rolling:31622400",
                Some(BudgetPeriod::Rolling {
                    secs: MAX_ROLLING_SECS,
                }),
            ),
            ("rolling:31622401", None),
            ("rolling:0", None),
            ("rolling:01", None),
            ("rolling:", None),
            ("rolling:-5", None),
            ("rolling:+5", None),
            ("rolling: 5", None),
            ("rolling:1h", None),
            ("rolling:99999999999999999999999", None),
            ("Day", None),
            ("week", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let parsed = BudgetPeriod::parse(text);
            assert_eq!(parsed, expected, "{text:?}");
            if let Some(period) = parsed {
                assert_eq!(period.to_string(), text);
            }
        }
        assert_eq!(BudgetPeriod::Rolling { secs: 9 }.kind(), "rolling");
    }

    #[test]
    fn checks_sets() {
        let ok = [
            LimitSet {
                rpm: Some(60),
                ..LimitSet::default()
            },
            LimitSet {
                tpm: Some(0),
                ..LimitSet::default()
            },
            LimitSet {
                usd_micros: Some(MAX_LIMIT),
                period: Some(BudgetPeriod::Month),
                ..LimitSet::default()
            },
            LimitSet {
                rpm: Some(1),
                tpm: Some(2),
                usd_micros: Some(3),
                tokens: Some(4),
                period: Some(BudgetPeriod::Rolling { secs: 60 }),
            },
        ];
        for set in ok {
            assert_eq!(set.check(), Ok(()), "{set:?}");
            let hash: HashMap<String, String> = set
                .to_fields()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            assert_eq!(LimitSet::from_fields(&hash), Ok(Some(set.clone())));
        }

        let bad = [
            (LimitSet::default(), "rpm"),
            (
                LimitSet {
                    rpm: Some(MAX_LIMIT + 1),
                    ..LimitSet::default()
                },
                "rpm",
            ),
            (
                LimitSet {
                    tokens: Some(MAX_LIMIT + 1),
                    period: Some(BudgetPeriod::Day),
                    ..LimitSet::default()
                },
                "tokens",
            ),
            (
                LimitSet {
                    usd_micros: Some(5),
                    ..LimitSet::default()
                },
                "period",
            ),
            (
                LimitSet {
                    rpm: Some(5),
                    period: Some(BudgetPeriod::Day),
                    ..LimitSet::default()
                },
                "period",
            ),
        ];
        for (set, field) in bad {
            assert_eq!(set.check().map_err(|(f, _)| f), Err(field), "{set:?}");
        }
    }

    #[test]
    fn reads_stored_hashes_strictly() {
        let hash = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(LimitSet::from_fields(&hash(&[])), Ok(None));
        assert_eq!(
            LimitSet::from_fields(&hash(&[("updated_ms", "5")])),
            Ok(None)
        );
        for (pairs, needle) in [
            (&[("rpm", "ten")][..], "rpm holds"),
            (&[("rpm", "-1")][..], "rpm holds"),
            (
                &[("usd_micros", "5"), ("period", "week")][..],
                "period holds",
            ),
            (&[("usd_micros", "5")][..], "period is required"),
        ] {
            let err = LimitSet::from_fields(&hash(pairs)).expect_err(needle);
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn mcp_kinds_take_rpm_only() {
        let body = |json: Value| match json {
            Value::Object(object) => object,
            _ => unreachable!("an object"),
        };
        // (kind, body, the field refused)
        let cases = [
            (Scope::McpTool, json!({"rpm": 10}), None),
            (Scope::McpServer, json!({"rpm": 0}), None),
            (Scope::McpServer, json!({"tpm": 10}), Some("tpm")),
            (Scope::McpTool, json!({"rpm": 5, "tpm": 10}), Some("tpm")),
            (
                Scope::McpTool,
                json!({"usd_micros": 5, "period": "day"}),
                Some("usd_micros"),
            ),
            (
                Scope::McpServer,
                json!({"tokens": 5, "period": "month"}),
                Some("tokens"),
            ),
            (Scope::Model, json!({"tpm": 10}), None),
            (Scope::User, json!({"usd_micros": 5, "period": "day"}), None),
        ];
        for (scope, json, refused) in cases {
            let got = LimitSet::from_body_for(scope, body(json.clone()));
            match refused {
                None => assert!(got.is_ok(), "{scope:?} {json}: {got:?}"),
                Some(field) => {
                    let err = got.expect_err(field);
                    assert!(
                        err.message
                            .starts_with(&format!("{field} does not apply to "))
                            && err.message.contains("only rpm"),
                        "{scope:?} {json}: {}",
                        err.message
                    );
                }
            }
        }
    }

    #[test]
    fn json_shows_only_what_is_set() {
        let set = LimitSet {
            tpm: Some(100),
            usd_micros: Some(5_000_000),
            period: Some(BudgetPeriod::Rolling { secs: 3600 }),
            ..LimitSet::default()
        };
        assert_eq!(
            set.to_json(),
            json!({"tpm": 100, "usd_micros": 5_000_000, "period": "rolling:3600"})
        );
    }
}
