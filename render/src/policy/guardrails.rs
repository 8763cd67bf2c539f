//! The `guardrails:` section: the checks that judge request and response text, either
//! with the built-in detectors (`detect` and `action`) or by an external service
//! (LiteLLM's Generic Guardrail API), and who each applies to (docs/guardrails.md).

use std::collections::HashSet;
use std::path::Path;

use super::guard_rules::{self, Rule};
use super::load::{ca_file, env_name, Ctx};
use super::mcp::server_name;
use super::{GuardCheck, GuardScope, GuardService, Guardrails, Judge, PolicyError};
use crate::policy_file::{RawGuardCheck, RawGuardScope, RawGuardService, RawGuardrails};
use crate::url::Url;

const ACTIONS: [&str; 3] = ["block", "mask", "flag"];
const STAGES: [&str; 2] = ["request", "response"];
/// A service that takes longer holds every request it judges that long; past a minute
/// it is no longer a check but an outage.
const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 10..=60_000;
const DEFAULT_TIMEOUT_MS: u64 = 500;
/// A record holds at most this many verdicts, one per check and stage at most.
const MAX_CHECKS: usize = 16;
/// A model glob as the route table writes it.
const MAX_MODEL_BYTES: usize = 256;

pub(super) fn guardrails(
    cx: &Ctx,
    raw: RawGuardrails,
    uuid_salt_env: &str,
    base_dir: &Path,
) -> Result<Guardrails, PolicyError> {
    let mask_key_env = raw
        .mask_key_env
        .unwrap_or_else(|| uuid_salt_env.to_string());
    env_name(cx, "guardrails.mask_key_env", &mask_key_env)?;
    let rules = guard_rules::load(cx, raw.rules_file.as_deref(), base_dir)?;
    if raw.checks.is_empty() {
        return Err(cx.err(
            "guardrails.checks",
            "names no check; leave guardrails out instead",
        ));
    }
    if raw.checks.len() > MAX_CHECKS {
        return Err(cx.err(
            "guardrails.checks",
            format!(
                "at most {MAX_CHECKS} checks (a usage record holds at most {MAX_CHECKS} verdicts)"
            ),
        ));
    }
    let mut names = HashSet::new();
    let mut checks = Vec::new();
    for (i, c) in raw.checks.into_iter().enumerate() {
        let f = |n: &str| format!("guardrails.checks[{i}].{n}");
        if !server_name(&c.name) {
            return Err(cx.err(
                f("name"),
                format!(
                    "{:?} must be 1-64 characters of a-z, 0-9 and -, not starting or ending with -",
                    c.name
                ),
            ));
        }
        if !names.insert(c.name.clone()) {
            return Err(cx.err(f("name"), format!("duplicate check {:?}", c.name)));
        }
        checks.push(check(cx, i, c, &rules, base_dir)?);
    }
    // The filter compiles only what some check can find.
    let used = |r: &Rule| {
        checks.iter().any(|c| match &c.judge {
            Judge::Detect { detect, .. } => detect.iter().any(|d| *d == r.id || *d == r.category),
            Judge::Service(_) => false,
        })
    };
    Ok(Guardrails {
        rules: rules
            .iter()
            .filter(|r| used(r))
            .map(|r| r.filter.clone())
            .collect(),
        mask_key_env,
        checks,
    })
}

fn check(
    cx: &Ctx,
    i: usize,
    c: RawGuardCheck,
    rules: &[Rule],
    base_dir: &Path,
) -> Result<GuardCheck, PolicyError> {
    let f = |n: &str| format!("guardrails.checks[{i}].{n}");
    let on = stages(cx, &f("on"), c.on)?;
    let scope = scope(cx, &f("scope"), c.scope)?;
    let judge = match (c.detect, c.service) {
        (Some(_), Some(_)) => {
            return Err(cx.err(
                f("service"),
                "a check either detects (detect and action) or asks a service, not both",
            ))
        }
        (None, None) => {
            return Err(cx.err(
                format!("guardrails.checks[{i}]"),
                "needs detect (with an action) or service",
            ))
        }
        (Some(detect), None) => {
            let Some(action) = c.action else {
                return Err(cx.err(
                    format!("guardrails.checks[{i}]"),
                    format!("a detect check needs an action: {}", ACTIONS.join(", ")),
                ));
            };
            if !ACTIONS.contains(&action.as_str()) {
                return Err(cx.err(
                    f("action"),
                    format!("must be one of {}, not {action:?}", ACTIONS.join(", ")),
                ));
            }
            if action == "mask" && on.iter().any(|s| s == "response") {
                return Err(cx.err(
                    f("action"),
                    "mask changes what the provider receives, so it applies to requests only: \
                     leave response out of on, or block or flag responses in a check of their own",
                ));
            }
            detects(cx, &f("detect"), &detect, rules)?;
            Judge::Detect { detect, action }
        }
        (None, Some(s)) => {
            if c.action.is_some() {
                return Err(cx.err(
                    f("action"),
                    "a service decides itself (NONE, BLOCKED or GUARDRAIL_INTERVENED); action \
                     is for detect checks",
                ));
            }
            Judge::Service(service(cx, i, s, base_dir)?)
        }
    };
    Ok(GuardCheck {
        name: c.name,
        on,
        scope,
        judge,
    })
}

/// `on`: request, response or both, each once; request when absent.
fn stages(cx: &Ctx, field: &str, on: Option<Vec<String>>) -> Result<Vec<String>, PolicyError> {
    let Some(on) = on else {
        return Ok(vec!["request".into()]);
    };
    if on.is_empty() {
        return Err(cx.err(field, "lists no stage: request, response or both"));
    }
    for (j, s) in on.iter().enumerate() {
        if !STAGES.contains(&s.as_str()) {
            return Err(cx.err(
                format!("{field}[{j}]"),
                format!("must be request or response, not {s:?}"),
            ));
        }
        if on[..j].contains(s) {
            return Err(cx.err(format!("{field}[{j}]"), format!("{s:?} is listed twice")));
        }
    }
    Ok(STAGES
        .iter()
        .filter(|s| on.iter().any(|o| o == *s))
        .map(|s| s.to_string())
        .collect())
}

fn scope(cx: &Ctx, field: &str, raw: RawGuardScope) -> Result<GuardScope, PolicyError> {
    for (j, m) in raw.models.iter().enumerate() {
        if m.is_empty() || m.len() > MAX_MODEL_BYTES || m.chars().any(char::is_control) {
            return Err(cx.err(
                format!("{field}.models[{j}]"),
                format!("must be a model name or `*` glob of 1-{MAX_MODEL_BYTES} bytes"),
            ));
        }
    }
    for (name, list) in [("groups", &raw.groups), ("tenants", &raw.tenants)] {
        for (j, g) in list.iter().enumerate() {
            // What a token can carry: the filter drops longer names, and those with a
            // comma or a control character, so such an entry could never match.
            if g.trim().is_empty()
                || g.len() > chokepoint_policy::MAX_NAME_BYTES
                || g.chars().any(char::is_control)
                || g.contains(',')
            {
                return Err(cx.err(
                    format!("{field}.{name}[{j}]"),
                    "must be a name as tokens carry it (non-empty, at most 256 bytes, no comma \
                     or control character)",
                ));
            }
        }
    }
    Ok(GuardScope {
        models: raw.models,
        groups: raw.groups,
        tenants: raw.tenants,
    })
}

/// Each entry a category some rule has, or a rule's id; none twice.
fn detects(cx: &Ctx, field: &str, detect: &[String], rules: &[Rule]) -> Result<(), PolicyError> {
    if detect.is_empty() {
        return Err(cx.err(field, "lists nothing to detect: categories or rule ids"));
    }
    let mut categories: Vec<&str> = Vec::new();
    for r in rules {
        if !categories.contains(&r.category.as_str()) {
            categories.push(&r.category);
        }
    }
    for (j, d) in detect.iter().enumerate() {
        let known = categories.contains(&d.as_str()) || rules.iter().any(|r| r.id == *d);
        if !known {
            return Err(cx.err(
                format!("{field}[{j}]"),
                format!(
                    "{d:?} is neither a category ({}) nor the id of a rule (docs/guardrails.md \
                     lists the built-in ones)",
                    categories.join(", ")
                ),
            ));
        }
        if detect[..j].contains(d) {
            return Err(cx.err(format!("{field}[{j}]"), format!("{d:?} is listed twice")));
        }
    }
    Ok(())
}

fn service(
    cx: &Ctx,
    i: usize,
    s: RawGuardService,
    base_dir: &Path,
) -> Result<GuardService, PolicyError> {
    let f = |n: &str| format!("guardrails.checks[{i}].service.{n}");
    let url = Url::parse(&s.url).map_err(|m| cx.err(f("url"), m))?;
    if url.path.is_empty() {
        return Err(cx.err(
            f("url"),
            "needs the guardrail endpoint's path (e.g. /beta/litellm_basic_guardrail_api)",
        ));
    }
    let ca = ca_file(cx, &f("ca_file"), s.ca_file.as_deref(), &url, base_dir)?;
    let timeout_ms = s.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !TIMEOUT_MS.contains(&timeout_ms) {
        return Err(cx.err(
            f("timeout_ms"),
            format!(
                "must be between {} and {}",
                TIMEOUT_MS.start(),
                TIMEOUT_MS.end()
            ),
        ));
    }
    let failure_open = match s.failure_mode.as_deref().unwrap_or("closed") {
        "closed" => false,
        "open" => true,
        other => {
            return Err(cx.err(
                f("failure_mode"),
                format!("must be closed or open, not {other:?}"),
            ))
        }
    };
    if let Some(k) = &s.api_key_env {
        env_name(cx, &f("api_key_env"), k)?;
    }
    Ok(GuardService {
        url,
        ca,
        timeout_ms,
        failure_open,
        api_key_env: s.api_key_env,
    })
}
