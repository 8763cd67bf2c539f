//! The `guardrails` section of the plugin configuration, as `chokepoint-config` renders
//! it from the policy file: the rules the checks use (compiled here, once per VM), the
//! checks (what each detects or which service it asks, its action, stage and scope) and
//! the scan cache's size. Two steps like the rest of the configuration: serde rejecting
//! unknown fields, then the validated form, every error naming its field.

use std::collections::HashSet;
use std::time::Duration;

use chokepoint_guard::{Category, Rule, RuleSet};
use serde::Deserialize;

use crate::config::error::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuardrails {
    rules: Vec<Rule>,
    #[serde(default)]
    mask_key_env: Option<String>,
    checks: Vec<RawCheck>,
    #[serde(default)]
    cache_entries: Option<usize>,
    #[serde(default)]
    max_response_scan_bytes: Option<usize>,
}

/// A check detects with the rules (`detect` and `action`) or asks a service (`service`):
/// one shape with both sets optional, so a typo is an error, not another variant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: String,
    #[serde(default)]
    detect: Option<Vec<String>>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    on: Option<Vec<String>>,
    #[serde(default)]
    scope: Option<RawScope>,
    #[serde(default)]
    service: Option<RawService>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScope {
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    tenants: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    cluster: String,
    #[serde(default)]
    authority: Option<String>,
    path: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    failure_mode: Option<String>,
    #[serde(default)]
    api_key_env: Option<String>,
}

/// The validated section.
#[derive(Debug)]
pub struct Guardrails {
    pub rules: RuleSet,
    /// The variable holding the masks' HMAC key (`uuid_salt_env`'s by default); read by
    /// `Runtime` when a check masks.
    pub mask_key_env: String,
    pub checks: Vec<Check>,
    /// Text blocks whose findings a worker remembers (0: none).
    pub cache_entries: usize,
    /// The largest answer a response check holds to scan whole.
    pub max_response_scan_bytes: usize,
}

#[derive(Debug)]
pub struct Check {
    /// `[a-z0-9-]{1,64}`: in records and in the error a blocked client gets.
    pub name: String,
    pub on_request: bool,
    pub on_response: bool,
    pub scope: Scope,
    pub kind: CheckKind,
}

#[derive(Debug)]
pub enum CheckKind {
    /// The built-in detectors: these rules (indexes into `Guardrails::rules`), this action.
    Detect { rules: Vec<usize>, action: Action },
    /// An external guardrail service decides.
    Service(Service),
}

/// What a detecting check does with a request it finds something in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Flag,
    Mask,
    Block,
}

impl Action {
    pub fn verdict(self) -> chokepoint_contract::GuardAction {
        match self {
            Action::Flag => chokepoint_contract::GuardAction::Flag,
            Action::Mask => chokepoint_contract::GuardAction::Mask,
            Action::Block => chokepoint_contract::GuardAction::Block,
        }
    }
}

/// Who a check applies to: each list a set of `*` globs, ANDed; an empty list is everyone.
#[derive(Debug, Default)]
pub struct Scope {
    pub models: Vec<String>,
    pub groups: Vec<String>,
    pub tenants: Vec<String>,
}

impl Scope {
    /// Whether a request for `model` by a caller in `tenant` and `groups` is in scope.
    pub fn covers(&self, model: Option<&str>, tenant: Option<&str>, groups: &[String]) -> bool {
        use chokepoint_contract::glob::glob_match;
        let any = |globs: &[String], value: Option<&str>| {
            globs.is_empty() || value.is_some_and(|v| globs.iter().any(|g| glob_match(g, v)))
        };
        any(&self.models, model)
            && any(&self.tenants, tenant)
            && (self.groups.is_empty()
                || groups
                    .iter()
                    .any(|g| self.groups.iter().any(|p| glob_match(p, g))))
    }
}

/// An external guardrail service (LiteLLM's Generic Guardrail API), reached through an
/// Envoy cluster.
#[derive(Debug)]
pub struct Service {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout: Duration,
    /// When it cannot answer: let the request through, recorded `unchecked` (`open`), or
    /// block it (`closed`, the default).
    pub fail_open: bool,
    /// The variable holding its API key, sent as `authorization: Bearer` (read by
    /// `Runtime`).
    pub api_key_env: Option<String>,
}

pub const DEFAULT_CACHE_ENTRIES: usize = 4096;
pub const DEFAULT_MAX_RESPONSE_SCAN_BYTES: usize = 4 * 1024 * 1024;
pub const DEFAULT_SERVICE_TIMEOUT_MS: u64 = 500;
/// More checks than this would not fit a record's verdicts (`MAX_GUARD_VERDICTS`).
pub const MAX_CHECKS: usize = 16;
/// Longest scope glob, as long as the names it matches may be.
const MAX_GLOB_BYTES: usize = chokepoint_contract::bounds::MAX_NAME_BYTES;

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// `[a-z0-9-]{1,64}`, as check names and rule ids are.
pub fn valid_name(name: &str) -> bool {
    (1..=chokepoint_contract::bounds::MAX_GUARD_NAME_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn env_name(field: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.contains('=') || name.chars().any(char::is_whitespace) {
        return Err(err(
            field,
            "must name an environment variable of the Envoy process",
        ));
    }
    Ok(())
}

impl Guardrails {
    /// Validates the section; `uuid_salt_env` is the masks' key by default.
    pub fn validate(raw: RawGuardrails, uuid_salt_env: &str) -> Result<Guardrails, ConfigError> {
        const AT: &str = "guardrails";
        let rules = RuleSet::compile(raw.rules).map_err(|e| {
            err(
                format!("{AT}.rules[{}].{}", e.index, e.field),
                format!("rule `{}`: {}", e.id, e.message),
            )
        })?;
        let mask_key_env = raw.mask_key_env.unwrap_or_else(|| uuid_salt_env.into());
        env_name(&format!("{AT}.mask_key_env"), &mask_key_env)?;
        if raw.checks.is_empty() {
            return Err(err(
                format!("{AT}.checks"),
                "at least one check is required",
            ));
        }
        if raw.checks.len() > MAX_CHECKS {
            return Err(err(
                format!("{AT}.checks"),
                format!("at most {MAX_CHECKS} checks"),
            ));
        }
        let mut names = HashSet::new();
        let mut checks = Vec::with_capacity(raw.checks.len());
        for (i, rc) in raw.checks.into_iter().enumerate() {
            let field = |name: &str| format!("{AT}.checks[{i}].{name}");
            if !valid_name(&rc.name) {
                return Err(err(field("name"), "must be 1 to 64 of [a-z0-9-]"));
            }
            if !names.insert(rc.name.clone()) {
                return Err(err(field("name"), format!("duplicate check {:?}", rc.name)));
            }
            let (on_request, on_response) = stages(rc.on, &field("on"))?;
            let scope = scope(rc.scope.unwrap_or_default(), &field("scope"))?;
            let kind = match (rc.detect, rc.action, rc.service) {
                (Some(detect), Some(action), None) => {
                    let action = match action.as_str() {
                        "block" => Action::Block,
                        "mask" => Action::Mask,
                        "flag" => Action::Flag,
                        other => {
                            return Err(err(
                                field("action"),
                                format!("{other:?} is not one of \"block\", \"mask\", \"flag\""),
                            ))
                        }
                    };
                    if action == Action::Mask && on_response {
                        return Err(err(
                            field("action"),
                            "mask applies to requests only: a response check blocks or flags",
                        ));
                    }
                    CheckKind::Detect {
                        rules: detected(&rules, &detect, &field("detect"))?,
                        action,
                    }
                }
                (None, None, Some(s)) => {
                    CheckKind::Service(service(s, |n| field(&format!("service.{n}")))?)
                }
                (_, _, Some(_)) => {
                    return Err(err(
                        field("service"),
                        "a service check has no detect or action: the service decides",
                    ))
                }
                (None, _, None) => {
                    return Err(err(field("detect"), "set detect and action, or service"))
                }
                (Some(_), None, None) => {
                    return Err(err(field("action"), "must be one of block, mask, flag"))
                }
            };
            checks.push(Check {
                name: rc.name,
                on_request,
                on_response,
                scope,
                kind,
            });
        }
        let cache_entries = raw.cache_entries.unwrap_or(DEFAULT_CACHE_ENTRIES);
        if cache_entries > 1_000_000 {
            return Err(err(
                format!("{AT}.cache_entries"),
                "must be at most 1000000 (0 disables the cache)",
            ));
        }
        let max_response_scan_bytes = raw
            .max_response_scan_bytes
            .unwrap_or(DEFAULT_MAX_RESPONSE_SCAN_BYTES);
        if !(1024..=64 * 1024 * 1024).contains(&max_response_scan_bytes) {
            return Err(err(
                format!("{AT}.max_response_scan_bytes"),
                "must be between 1024 and 67108864",
            ));
        }
        Ok(Guardrails {
            rules,
            mask_key_env,
            checks,
            cache_entries,
            max_response_scan_bytes,
        })
    }

    /// Some check masks: the masks' key is needed.
    pub fn masks(&self) -> bool {
        self.checks.iter().any(|c| {
            matches!(
                c.kind,
                CheckKind::Detect {
                    action: Action::Mask,
                    ..
                }
            )
        })
    }
}

/// `on`: `request` by default.
fn stages(on: Option<Vec<String>>, field: &str) -> Result<(bool, bool), ConfigError> {
    let Some(on) = on else {
        return Ok((true, false));
    };
    if on.is_empty() {
        return Err(err(field, "must list request, response or both"));
    }
    let (mut request, mut response) = (false, false);
    for stage in &on {
        let seen = match stage.as_str() {
            "request" => std::mem::replace(&mut request, true),
            "response" => std::mem::replace(&mut response, true),
            other => {
                return Err(err(
                    field,
                    format!("{other:?} is not one of \"request\", \"response\""),
                ))
            }
        };
        if seen {
            return Err(err(field, format!("{stage:?} is listed twice")));
        }
    }
    Ok((request, response))
}

/// The rules a `detect` list names: every rule of a category, or one rule by id.
fn detected(rules: &RuleSet, detect: &[String], field: &str) -> Result<Vec<usize>, ConfigError> {
    if detect.is_empty() {
        return Err(err(field, "must name at least one category or rule"));
    }
    let mut out: Vec<usize> = Vec::new();
    for (j, name) in detect.iter().enumerate() {
        let category = match name.as_str() {
            "secret" => Some(Category::Secret),
            "personal" => Some(Category::Personal),
            _ => None,
        };
        let found: Vec<usize> = match category {
            Some(c) => (0..rules.len())
                .filter(|&r| rules.category(r) == c)
                .collect(),
            None => rules.index_of(name).into_iter().collect(),
        };
        if found.is_empty() {
            let why = if category.is_some() {
                format!("no rule of category {name:?} is in guardrails.rules")
            } else {
                format!("{name:?} is neither a category (secret, personal) nor a rule in guardrails.rules")
            };
            return Err(err(format!("{field}[{j}]"), why));
        }
        out.extend(found);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn scope(raw: RawScope, field: &str) -> Result<Scope, ConfigError> {
    for (name, list) in [
        ("models", &raw.models),
        ("groups", &raw.groups),
        ("tenants", &raw.tenants),
    ] {
        for (j, g) in list.iter().enumerate() {
            if g.trim().is_empty() || g.len() > MAX_GLOB_BYTES {
                return Err(err(
                    format!("{field}.{name}[{j}]"),
                    format!("must be a name or `*` glob of 1 to {MAX_GLOB_BYTES} bytes"),
                ));
            }
        }
    }
    Ok(Scope {
        models: raw.models,
        groups: raw.groups,
        tenants: raw.tenants,
    })
}

fn service(s: RawService, field: impl Fn(&str) -> String) -> Result<Service, ConfigError> {
    if s.cluster.is_empty() || s.cluster.chars().any(char::is_whitespace) {
        return Err(err(field("cluster"), "must name an Envoy cluster"));
    }
    if !s.path.starts_with('/') || s.path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err(field("path"), "must be an absolute path"));
    }
    let authority = match s.authority {
        None => s.cluster.clone(),
        Some(a) if a.is_empty() || a.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            return Err(err(field("authority"), "must be a host name"))
        }
        Some(a) => a,
    };
    let timeout_ms = s.timeout_ms.unwrap_or(DEFAULT_SERVICE_TIMEOUT_MS);
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(err(field("timeout_ms"), "must be between 1 and 60000"));
    }
    let fail_open = match s.failure_mode.as_deref() {
        None | Some("closed") => false,
        Some("open") => true,
        Some(other) => {
            return Err(err(
                field("failure_mode"),
                format!("{other:?} is not one of \"closed\", \"open\""),
            ))
        }
    };
    if let Some(name) = &s.api_key_env {
        env_name(&field("api_key_env"), name)?;
    }
    Ok(Service {
        cluster: s.cluster,
        authority,
        path: s.path,
        timeout: Duration::from_millis(timeout_ms),
        fail_open,
        api_key_env: s.api_key_env,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
