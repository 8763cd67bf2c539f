//! Loading the policy file: its shape, its meaning, then the filter's own parser over the
//! plugin configuration it renders, each problem located by field and line.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::{json, Value};

use super::{
    Deploy, Gateway, Guardrails, Issuer, Keys, Mcp, Policy, PolicyError, PolicyService, Provider,
};
use crate::files::read_bounded;
use crate::policy_file::{RawBudget, RawIssuer, RawLimit, RawPolicy};
use crate::tls::{self, CaBundle};
use crate::url::Url;
use crate::yaml;

const KINDS: [&str; 4] = ["openai", "anthropic", "gemini", "azure"];
const SCOPE_KINDS: [&str; 6] = [
    "user",
    "tenant",
    "cost_center",
    "model",
    "mcp_server",
    "mcp_tool",
];

pub(super) struct Ctx<'a> {
    file: &'a str,
    doc: &'a yaml::Document,
}

impl Ctx<'_> {
    pub(super) fn err(&self, field: impl Into<String>, message: impl Into<String>) -> PolicyError {
        let field = field.into();
        PolicyError {
            file: self.file.to_string(),
            line: self.doc.line_of(&field),
            field,
            message: message.into(),
        }
    }
}

impl Policy {
    /// Reads and validates the policy file at `path`.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        Self::load_with(path, &[])
    }

    /// Reads the policy file at `path`, applies `overrides`, validates.
    pub fn load_with(
        path: &Path,
        overrides: &[crate::overrides::Override],
    ) -> Result<Policy, PolicyError> {
        let file = path.display().to_string();
        let text = read_bounded(path, MAX_POLICY_FILE_BYTES).map_err(|message| PolicyError {
            file: file.clone(),
            line: None,
            field: String::new(),
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::parse_with(&text, &file, &base, overrides)
    }

    /// Validates policy-file text; `file` names it in errors, `base_dir` resolves paths.
    pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Policy, PolicyError> {
        Self::parse_with(text, file, base_dir, &[])
    }

    /// Like [`Policy::parse`], with `overrides` applied to the document first (and
    /// validated like the rest of it).
    pub fn parse_with(
        text: &str,
        file: &str,
        base_dir: &Path,
        overrides: &[crate::overrides::Override],
    ) -> Result<Policy, PolicyError> {
        let doc = document(text, file, overrides)?;
        let cx = Ctx { file, doc: &doc };
        let policy = validate(&cx, base_dir)?;
        // The filter is the final judge of everything it will read.
        let plugin = crate::plugin::plugin_config(&policy, crate::plugin::Target::Envoy);
        if let Err(e) = chokepoint_filter::config::Config::parse(plugin.to_string().as_bytes()) {
            return Err(cx.err(filter_path_to_policy(&e.field), e.message));
        }
        // And the policy service of the identity file it will read.
        let identity = crate::identity::identity_file(&policy).to_string();
        if let Err(e) = chokepoint_policy::viewer::ViewerConfig::parse(&identity) {
            return Err(cx.err(identity_path_to_policy(&e.field), e.message));
        }
        Ok(policy)
    }

    /// The policy as the renderer's own checks take it, before the filter's parser
    /// judges the plugin configuration: for tests of sections the filter in this tree
    /// does not know yet.
    #[cfg(test)]
    pub(crate) fn parse_unjudged(
        text: &str,
        file: &str,
        base_dir: &Path,
    ) -> Result<Policy, PolicyError> {
        let doc = document(text, file, &[])?;
        validate(&Ctx { file, doc: &doc }, base_dir)
    }
}

/// The YAML document with its lines, `overrides` applied.
fn document(
    text: &str,
    file: &str,
    overrides: &[crate::overrides::Override],
) -> Result<yaml::Document, PolicyError> {
    let mut doc = yaml::load(text).map_err(|message| {
        // The loader's messages start with the line; lift it into the error.
        let (line, message) = split_line(&message);
        PolicyError {
            file: file.to_string(),
            line,
            field: String::new(),
            message,
        }
    })?;
    for o in overrides {
        crate::overrides::apply(&mut doc.value, o).map_err(|message| PolicyError {
            file: file.to_string(),
            line: None,
            field: o.selector.clone(),
            message,
        })?;
    }
    Ok(doc)
}

/// The file's shape (serde, unknown fields refused), then its meaning.
fn validate(cx: &Ctx, base_dir: &Path) -> Result<Policy, PolicyError> {
    let raw: RawPolicy = serde_path_to_error::deserialize(cx.doc.value.clone()).map_err(|e| {
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        let message = e.into_inner().to_string();
        // An unknown field: point at the field itself, not its parent.
        if let Some(name) = message
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
        {
            let field = if path.is_empty() || path == name || path.ends_with(&format!(".{name}")) {
                if path.is_empty() {
                    name.to_string()
                } else {
                    path
                }
            } else {
                format!("{path}.{name}")
            };
            return cx.err(field, message);
        }
        cx.err(path, message)
    })?;
    let mut policy = build(cx, raw, base_dir)?;
    policy.versions = super::Versions::of(&cx.doc.value, policy.prices.as_ref());
    Ok(policy)
}

/// Largest policy file and JWKS file read: far past any real one, and a bound on what
/// a mistaken path (a device, a log) can cost.
pub(super) const MAX_POLICY_FILE_BYTES: u64 = 4 << 20;
const MAX_JWKS_FILE_BYTES: u64 = 1 << 20;

pub(super) fn split_line(message: &str) -> (Option<usize>, String) {
    if let Some(rest) = message.strip_prefix("line ") {
        if let Some((n, m)) = rest.split_once(": ") {
            if let Ok(n) = n.parse() {
                return (Some(n), m.to_string());
            }
        }
    }
    (None, message.to_string())
}

/// Where a field of the policy service's identity file comes from in the policy file.
fn identity_path_to_policy(field: &str) -> String {
    if field.starts_with("admin_groups") {
        return format!("ui.{field}");
    }
    if let Some(i) = field.find(".jwks_url.ca_pem") {
        return format!("{}.jwks.ca_file", &field[..i]);
    }
    if let Some(i) = field.find(".jwks_url") {
        return format!("{}.jwks.uri", &field[..i]);
    }
    if ["uuid_salt_env", "max_token_bytes", "clock_skew_secs"].contains(&field) {
        return format!("gateway.{field}");
    }
    filter_path_to_policy(field)
}

/// `policy_service.endpoints`: each an instance of the service, on the scheme of `url`
/// (one certificate name verifies them all), none twice.
fn policy_service_endpoints(
    cx: &Ctx,
    url: &Url,
    raw: Vec<String>,
) -> Result<Vec<Url>, PolicyError> {
    let mut out: Vec<Url> = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        let field = format!("policy_service.endpoints[{i}]");
        let e = Url::parse(text).map_err(|m| cx.err(&field, m))?;
        if !e.path.is_empty() {
            return Err(cx.err(&field, "must not have a path"));
        }
        if e.tls != url.tls {
            return Err(cx.err(
                &field,
                "must use the scheme of policy_service.url (one TLS setting for every instance)",
            ));
        }
        if out.iter().any(|o| o.authority() == e.authority()) {
            return Err(cx.err(&field, format!("{} is listed twice", e.authority())));
        }
        out.push(e);
    }
    Ok(out)
}

/// Where a field of the filter's configuration comes from in the policy file.
fn filter_path_to_policy(field: &str) -> String {
    // The filter quotes map keys (`models["gpt-4o"]`); the policy file's paths do not.
    let unquoted = field.replace("[\"", ".").replace("\"]", "");
    let field = unquoted.as_str();
    let gateway = [
        "token_sources",
        "token_cache",
        "uuid_salt_env",
        "attribution",
        "key_injection",
        "mode",
        "max_request_body_bytes",
        "default_max_output_tokens",
        "enforce_output_cap",
        "max_token_bytes",
        "clock_skew_secs",
    ];
    if let Some(f) = guardrail_field(field) {
        return f;
    }
    if let Some(rest) = field.strip_prefix("usage") {
        return format!("audit.usage{rest}");
    }
    if let Some(rest) = field.strip_prefix("policy.lease_") {
        return format!("policy_service.lease_{rest}");
    }
    if field == "policy.token_env" {
        return "policy_service.token_env".into();
    }
    if field.starts_with("policy") {
        return "policy_service.url".into();
    }
    if let Some((head, _)) = field.split_once(['.', '[']).or(Some((field, ""))) {
        if gateway.contains(&head) {
            return format!("gateway.{field}");
        }
    }
    if field.starts_with("providers[") && field.ends_with(".api") {
        return format!("{}.kind", field.trim_end_matches(".api"));
    }
    if field.starts_with("issuers[") {
        for (filter, ours) in [
            (".tenant_claim", ".claims.tenant"),
            (".groups_claim", ".claims.groups"),
            (".cost_center_claim", ".claims.cost_center"),
            (".jwks_uri", ".jwks.uri"),
        ] {
            if let Some(i) = field.find(filter) {
                return format!("{}{ours}", &field[..i]);
            }
        }
    }
    field.to_string()
}

/// A guardrails field of the filter's configuration, by the policy file's name for it:
/// a service's cluster, authority and path come from its `url`, the rules from the
/// built-in file and `rules_file`, the bounds from chokepoint itself.
fn guardrail_field(field: &str) -> Option<String> {
    let rest = field.strip_prefix("guardrails")?;
    if let Some(i) = rest.find(".service.") {
        let sub = &rest[i + ".service.".len()..];
        if ["cluster", "authority", "path"]
            .iter()
            .any(|s| sub.starts_with(s))
        {
            return Some(format!("guardrails{}.service.url", &rest[..i]));
        }
    }
    if rest.starts_with(".rules") {
        return Some("guardrails.rules_file".into());
    }
    if rest.starts_with(".cache_entries") || rest.starts_with(".max_response_scan_bytes") {
        return Some("guardrails".into());
    }
    Some(field.to_string())
}

fn build(cx: &Ctx, raw: RawPolicy, base_dir: &Path) -> Result<Policy, PolicyError> {
    if raw.version != 1 {
        return Err(cx.err("version", "only version 1 exists"));
    }
    let g = raw.gateway;
    let failure_open = match g.failure_mode.as_deref().unwrap_or("closed") {
        "closed" => false,
        "open" => true,
        other => {
            return Err(cx.err(
                "gateway.failure_mode",
                format!("must be closed or open, not {other:?}"),
            ))
        }
    };
    let key_injection_upstream = match g.key_injection.as_deref().unwrap_or("upstream") {
        "upstream" => true,
        "downstream" => false,
        other => {
            return Err(cx.err(
                "gateway.key_injection",
                format!("must be upstream or downstream, not {other:?}"),
            ))
        }
    };
    let mut passthrough = serde_json::Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            passthrough.insert(k.to_string(), v);
        }
    };
    put("token_sources", g.token_sources);
    put("token_cache", g.token_cache);
    put("attribution", g.attribution.map(Value::Bool));
    put("mode", g.mode.map(Value::String));
    put(
        "default_max_output_tokens",
        g.default_max_output_tokens.map(Value::from),
    );
    put("enforce_output_cap", g.enforce_output_cap.map(Value::Bool));
    put("max_token_bytes", g.max_token_bytes.map(Value::from));
    put("clock_skew_secs", g.clock_skew_secs.map(Value::from));
    let gateway = Gateway {
        failure_open,
        policy_timeout_ms: g.policy_timeout_ms.unwrap_or(1000),
        request_timeout_ms: g.request_timeout_ms.unwrap_or(60_000),
        max_request_body_bytes: g.max_request_body_bytes.unwrap_or(1024 * 1024),
        key_injection_upstream,
        uuid_salt_env: g
            .uuid_salt_env
            .unwrap_or_else(|| "CHOKEPOINT_UUID_SALT".into()),
        passthrough,
    };
    if gateway.policy_timeout_ms == 0 {
        return Err(cx.err("gateway.policy_timeout_ms", "must be at least 1"));
    }
    if !(100..=3_600_000).contains(&gateway.request_timeout_ms) {
        return Err(cx.err(
            "gateway.request_timeout_ms",
            "must be between 100 and 3600000",
        ));
    }
    env_name(cx, "gateway.uuid_salt_env", &gateway.uuid_salt_env)?;

    let mut issuers = Vec::new();
    for (i, ri) in raw.issuers.into_iter().enumerate() {
        issuers.push(issuer(cx, i, ri, base_dir)?);
    }

    let mut providers: Vec<Provider> = Vec::new();
    let mut names = HashSet::new();
    for (i, p) in raw.providers.into_iter().enumerate() {
        let f = |n: &str| format!("providers[{i}].{n}");
        let name_ok = !p.name.is_empty()
            && p.name.len() <= 40
            && p.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(cx.err(f("name"), "must be 1-40 characters of a-z, 0-9 and -"));
        }
        if !names.insert(p.name.clone()) {
            return Err(cx.err(f("name"), format!("duplicate provider {:?}", p.name)));
        }
        if !KINDS.contains(&p.kind.as_str()) {
            return Err(cx.err(
                f("kind"),
                format!("must be one of {}, not {:?}", KINDS.join(", "), p.kind),
            ));
        }
        let url = Url::parse(&p.base_url).map_err(|m| cx.err(f("base_url"), m))?;
        let prefix = if p.kind == "openai" {
            url.path.strip_suffix("/v1").unwrap_or(&url.path)
        } else {
            url.path.as_str()
        };
        if !prefix.is_empty() {
            return Err(cx.err(
                f("base_url"),
                format!(
                    "a path prefix ({prefix:?}) is not supported: the gateway forwards the client's path as is{}",
                    if p.kind == "openai" { "; an OpenAI base URL may end in /v1" } else { "" }
                ),
            ));
        }
        env_name(cx, &f("key_env"), &p.key_env)?;
        if p.deployments.is_some() && p.kind != "azure" {
            return Err(cx.err(
                f("deployments"),
                "only an azure provider names its models by deployment",
            ));
        }
        let ca = ca_file(cx, &f("ca_file"), p.ca_file.as_deref(), &url, base_dir)?;
        providers.push(Provider {
            name: p.name,
            kind: p.kind,
            url,
            key_env: p.key_env,
            key_header: p.key_header,
            key_prefix: p.key_prefix,
            deployments: p.deployments,
            internal: p.internal.unwrap_or(false),
            ca,
        });
    }

    let mcp = match raw.mcp {
        Some(m) => Some(super::mcp::mcp(cx, m, base_dir)?),
        None => None,
    };
    let guardrails = raw
        .guardrails
        .map(|g| super::guardrails::guardrails(cx, g, &gateway.uuid_salt_env, base_dir))
        .transpose()?;
    one_trust_per_host(cx, &issuers, &providers, mcp.as_ref(), guardrails.as_ref())?;

    let mut limits = BTreeMap::new();
    for (i, l) in raw.limits.into_iter().enumerate() {
        let (scope, body) = limit(cx, i, l)?;
        if limits.insert(scope.clone(), body).is_some() {
            return Err(cx.err(
                format!("limits[{i}].scope"),
                format!("{scope:?} is set twice"),
            ));
        }
    }

    let prices = match raw.prices {
        Some(p) => Some(prices(cx, p, base_dir)?),
        None => None,
    };
    if let Some(scope) = limits
        .iter()
        .find(|(_, l)| l.get("usd_micros").is_some())
        .map(|(scope, _)| scope.clone())
    {
        every_model_priced(cx, &raw.models, prices.as_ref(), &providers, &scope)?;
    }

    let ps = raw.policy_service;
    let url = Url::parse(&ps.url).map_err(|m| cx.err("policy_service.url", m))?;
    if !url.path.is_empty() {
        return Err(cx.err("policy_service.url", "must not have a path"));
    }
    let positive = |field: &str, v: Option<u64>, default: u64| match v {
        Some(0) => Err(cx.err(field, "must be at least 1")),
        v => Ok(v.unwrap_or(default)),
    };
    let endpoints = policy_service_endpoints(cx, &url, ps.endpoints.unwrap_or_default())?;
    let policy_service = PolicyService {
        url,
        endpoints,
        window_secs: positive("policy_service.window_secs", ps.window_secs, 60)?,
        requests_per_window: positive(
            "policy_service.requests_per_window",
            ps.requests_per_window,
            60,
        )?,
        reservation_ttl_secs: positive(
            "policy_service.reservation_ttl_secs",
            ps.reservation_ttl_secs,
            600,
        )?,
        lease_slots: ps.lease_slots.unwrap_or(0),
        lease_ttl_ms: ps.lease_ttl_ms,
        token_env: ps
            .token_env
            .unwrap_or_else(|| chokepoint_filter::config::DEFAULT_POLICY_TOKEN_ENV.into()),
        audit_stream: ps.audit_stream.unwrap_or(true),
    };
    env_name(cx, "policy_service.token_env", &policy_service.token_env)?;

    let otlp = raw
        .telemetry
        .otlp
        .map(|o| super::telemetry::otlp(cx, o))
        .transpose()?;

    let d = raw.deploy;
    let namespace = d.namespace.unwrap_or_else(|| "chokepoint".into());
    if !dns_label(&namespace) {
        return Err(cx.err("deploy.namespace", "must be a DNS-1123 label"));
    }
    if let Some(sha) = &d.wasm_sha256 {
        if sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(cx.err(
                "deploy.wasm_sha256",
                "must be 64 lowercase hex characters (the image manifest digest)",
            ));
        }
    }
    let fail_strategy = d.istio.fail_strategy.unwrap_or_else(|| "FAIL_CLOSE".into());
    if !["FAIL_CLOSE", "FAIL_OPEN"].contains(&fail_strategy.as_str()) {
        return Err(cx.err(
            "deploy.istio.fail_strategy",
            "must be FAIL_CLOSE or FAIL_OPEN",
        ));
    }
    let istio_namespace = d.istio.namespace.unwrap_or_else(|| "istio-system".into());
    if !dns_label(&istio_namespace) {
        return Err(cx.err("deploy.istio.namespace", "must be a DNS-1123 label"));
    }
    let eg_proxy_namespace = d
        .envoy_gateway
        .proxy_namespace
        .unwrap_or_else(|| "envoy-gateway-system".into());
    if !dns_label(&eg_proxy_namespace) {
        return Err(cx.err(
            "deploy.envoy_gateway.proxy_namespace",
            "must be a DNS-1123 label",
        ));
    }
    let lockdown = super::lockdown::lockdown(
        cx,
        d.lockdown,
        &[
            (&namespace, "deploy.namespace"),
            (&istio_namespace, "deploy.istio.namespace"),
            (&eg_proxy_namespace, "deploy.envoy_gateway.proxy_namespace"),
        ],
    )?;
    let deploy = Deploy {
        namespace,
        wasm_image: d
            .wasm_image
            .unwrap_or_else(|| "oci://registry.example.com/chokepoint/filter:0.1.0".into()),
        wasm_sha256: d.wasm_sha256,
        istio_selector: d
            .istio
            .selector
            .unwrap_or_else(|| BTreeMap::from([("istio".into(), "ingressgateway".into())])),
        fail_strategy,
        istio_namespace,
        eg_gateway: d.envoy_gateway.gateway.unwrap_or_else(|| "eg".into()),
        eg_proxy_namespace,
        hostnames: d.hostnames.unwrap_or_else(|| vec!["ai.example.com".into()]),
        lockdown,
        policy: super::kubernetes::policy_deploy(cx, d.policy_service)?,
        redis: super::kubernetes::redis(cx, d.redis)?,
        secrets: super::kubernetes::secret_names(cx, d.secrets)?,
    };

    Ok(Policy {
        base_dir: base_dir.to_path_buf(),
        gateway,
        issuers,
        providers,
        models: raw.models,
        prices,
        limits,
        mcp,
        policy_service,
        access_log: raw.audit.access_log.unwrap_or_else(|| "/dev/stdout".into()),
        usage: raw.audit.usage,
        otlp,
        ui: ui(cx, raw.ui)?,
        guardrails,
        deploy,
        versions: super::Versions::default(),
    })
}

/// `ui`: each admin group a name a token can carry (the filter drops a group past the
/// name bound, with a comma or a control character, so such an entry could never match).
fn ui(cx: &Ctx, raw: crate::policy_file::RawUi) -> Result<super::Ui, PolicyError> {
    let max = chokepoint_policy::viewer::config::MAX_ADMIN_GROUPS;
    if raw.admin_groups.len() > max {
        return Err(cx.err("ui.admin_groups", format!("at most {max} groups")));
    }
    let mut seen = HashSet::new();
    for (i, g) in raw.admin_groups.iter().enumerate() {
        let field = format!("ui.admin_groups[{i}]");
        if g.trim().is_empty()
            || g.len() > chokepoint_policy::MAX_NAME_BYTES
            || g.chars().any(char::is_control)
            || g.contains(',')
        {
            return Err(cx.err(
                field,
                "must be a group name as tokens carry it (non-empty, at most 256 bytes, no \
                 comma or control character)",
            ));
        }
        if !seen.insert(g) {
            return Err(cx.err(field, format!("{g:?} is listed twice")));
        }
    }
    Ok(super::Ui {
        admin_groups: raw.admin_groups,
    })
}

fn issuer(cx: &Ctx, i: usize, ri: RawIssuer, base_dir: &Path) -> Result<Issuer, PolicyError> {
    let f = |n: &str| format!("issuers[{i}].{n}");
    let j = ri.jwks;
    let keys = match (j.file, j.uri, j.inline) {
        (Some(file), None, None) => {
            let path = base_dir.join(&file);
            let text =
                read_bounded(&path, MAX_JWKS_FILE_BYTES).map_err(|e| cx.err(f("jwks.file"), e))?;
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                cx.err(
                    f("jwks.file"),
                    format!("{} is not JSON: {e}", path.display()),
                )
            })?;
            Keys::Inline(v)
        }
        (None, Some(uri), None) => {
            let url = Url::parse(&uri).map_err(|m| cx.err(f("jwks.uri"), m))?;
            if url.path.is_empty() {
                return Err(cx.err(f("jwks.uri"), "needs the JWKS path"));
            }
            match (url.tls, j.insecure_http) {
                (false, Some(true)) | (true, None | Some(false)) => {}
                (false, _) => {
                    return Err(cx.err(
                        f("jwks.uri"),
                        "must be https: whoever can change the keys on the way can mint any identity (for a local plain-http identity provider, set insecure_http: true)",
                    ))
                }
                (true, Some(true)) => {
                    return Err(cx.err(
                        f("jwks.insecure_http"),
                        "applies to an http:// uri only; this one is https",
                    ))
                }
            }
            let ca = ca_file(cx, &f("jwks.ca_file"), j.ca_file.as_deref(), &url, base_dir)?;
            Keys::Uri {
                url,
                refresh_secs: j.refresh_secs,
                timeout_ms: j.timeout_ms,
                ca,
            }
        }
        (None, None, Some(v)) => Keys::Inline(v),
        _ => return Err(cx.err(f("jwks"), "needs exactly one of file, uri or inline")),
    };
    let uri_only = j.refresh_secs.is_some()
        || j.timeout_ms.is_some()
        || j.ca_file.is_some()
        || j.insecure_http.is_some();
    if matches!(keys, Keys::Inline(_)) && uri_only {
        return Err(cx.err(
            f("jwks"),
            "refresh_secs, timeout_ms, ca_file and insecure_http apply to a jwks uri only",
        ));
    }
    let mut fields = serde_json::Map::new();
    fields.insert("issuer".into(), json!(ri.issuer));
    fields.insert("audiences".into(), json!(ri.audiences));
    if let Some(a) = ri.algorithms {
        fields.insert("algorithms".into(), json!(a));
    }
    if let Some(h) = ri.hmac_secret_env {
        env_name(cx, &f("hmac_secret_env"), &h)?;
        fields.insert("hmac_secret_env".into(), json!(h));
    }
    if !ri.required_claims.is_empty() {
        fields.insert("required_claims".into(), json!(ri.required_claims));
    }
    for (k, v) in [
        ("tenant_claim", ri.claims.tenant),
        ("groups_claim", ri.claims.groups),
        ("cost_center_claim", ri.claims.cost_center),
    ] {
        if let Some(v) = v {
            fields.insert(k.into(), json!(v));
        }
    }
    if let Some(t) = ri.trust {
        fields.insert(
            "trust".into(),
            json!({"tenants": t.tenants, "groups": t.groups, "cost_centers": t.cost_centers}),
        );
    }
    Ok(Issuer {
        issuer: ri.issuer,
        fields,
        keys,
    })
}

/// The private CA bundle of an https upstream, read and checked now.
pub(super) fn ca_file(
    cx: &Ctx,
    field: &str,
    file: Option<&str>,
    url: &Url,
    base_dir: &Path,
) -> Result<Option<CaBundle>, PolicyError> {
    let Some(file) = file else {
        return Ok(None);
    };
    if !url.tls {
        return Err(cx.err(field, "applies to an https URL only"));
    }
    tls::load_ca_file(file, base_dir)
        .map(Some)
        .map_err(|e| cx.err(field, e))
}

/// Istio and Envoy Gateway configure TLS per host and port, not per provider: every
/// upstream on one host and port must trust the same CAs.
fn one_trust_per_host(
    cx: &Ctx,
    issuers: &[Issuer],
    providers: &[Provider],
    mcp: Option<&Mcp>,
    guardrails: Option<&Guardrails>,
) -> Result<(), PolicyError> {
    let mut seen: Vec<(&Url, Option<&CaBundle>, String)> = Vec::new();
    let jwks = issuers
        .iter()
        .enumerate()
        .filter_map(|(i, iss)| match &iss.keys {
            Keys::Uri { url, ca, .. } => {
                Some((url, ca.as_ref(), format!("issuers[{i}].jwks.ca_file")))
            }
            Keys::Inline(_) => None,
        });
    let provs = providers
        .iter()
        .enumerate()
        .map(|(i, p)| (&p.url, p.ca.as_ref(), format!("providers[{i}].ca_file")));
    let servers = mcp
        .map(|m| m.servers.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, s)| (&s.url, s.ca.as_ref(), format!("mcp.servers[{i}].ca_file")));
    let services = guardrails
        .map(|g| g.checks.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            c.service().map(|s| {
                let field = format!("guardrails.checks[{i}].service.ca_file");
                (&s.url, s.ca.as_ref(), field)
            })
        });
    for (url, ca, field) in provs.chain(jwks).chain(servers).chain(services) {
        let same_host = |(u, _, _): &&(&Url, Option<&CaBundle>, String)| {
            u.host == url.host && u.port == url.port
        };
        if let Some((_, other_ca, other)) = seen.iter().find(same_host) {
            if other_ca.map(|c| &c.pem) != ca.map(|c| &c.pem) {
                return Err(cx.err(
                    field,
                    format!(
                        "{} is also reached through {other} with other CAs; one host and port, one trust (meshes configure TLS per host)",
                        url.authority()
                    ),
                ));
            }
        }
        seen.push((url, ca, field));
    }
    Ok(())
}

fn limit(cx: &Ctx, i: usize, l: RawLimit) -> Result<(String, Value), PolicyError> {
    let f = |n: &str| format!("limits[{i}].{n}");
    let ok_scope = l.scope.split_once(':').is_some_and(|(kind, id)| {
        SCOPE_KINDS.contains(&kind) && !id.is_empty() && !id.contains(char::is_whitespace)
    });
    if !ok_scope {
        return Err(cx.err(
            f("scope"),
            format!(
                "{:?} must be <kind>:<id> with kind one of {} (id * for the kind's default)",
                l.scope,
                SCOPE_KINDS.join(", ")
            ),
        ));
    }
    // MCP limits count each user's requests to a server or tool, which have no tokens
    // or cost: named here at the field, before the policy service's own check below.
    if l.scope.starts_with("mcp_") {
        let only_rpm = |field: &str| {
            cx.err(
                f(field),
                format!(
                    "does not apply to {} limits: an MCP request has no tokens or cost, so \
                     only rpm (each user's requests per window) can be set",
                    l.scope
                ),
            )
        };
        if l.tpm.is_some() {
            return Err(only_rpm("tpm"));
        }
        if l.budget.is_some() {
            return Err(only_rpm("budget"));
        }
    }
    let mut body = serde_json::Map::new();
    for (name, v) in [("rpm", l.rpm), ("tpm", l.tpm)] {
        match v {
            Some(0) => return Err(cx.err(f(name), "must be at least 1")),
            Some(n) => {
                body.insert(name.into(), json!(n));
            }
            None => {}
        }
    }
    if let Some(b) = l.budget {
        budget(cx, i, b, &mut body)?;
    }
    if body.is_empty() {
        return Err(cx.err(f("scope"), "sets no limit: give rpm, tpm or a budget"));
    }
    // The policy service refuses at start what it would refuse over its admin API (a
    // user id that is not a UUID, an id with control characters, limits past 2^53...).
    let one = json!({ l.scope.as_str(): &body }).to_string();
    if let Err(e) = chokepoint_policy::seed_limits::parse(&one) {
        return Err(cx.err(f("scope"), e));
    }
    Ok((l.scope, Value::Object(body)))
}

fn budget(
    cx: &Ctx,
    i: usize,
    b: RawBudget,
    body: &mut serde_json::Map<String, Value>,
) -> Result<(), PolicyError> {
    let f = |n: &str| format!("limits[{i}].budget.{n}");
    let period_ok = match b.period.strip_prefix("rolling:") {
        Some(secs) => secs
            .parse::<u64>()
            .is_ok_and(|s| (1..=366 * 24 * 3600).contains(&s) && !secs.starts_with('0')),
        None => b.period == "day" || b.period == "month",
    };
    if !period_ok {
        return Err(cx.err(
            f("period"),
            format!("must be day, month or rolling:<secs>, not {:?}", b.period),
        ));
    }
    if b.usd.is_none() && b.tokens.is_none() {
        return Err(cx.err(f("period"), "a budget needs usd or tokens"));
    }
    if let Some(usd) = &b.usd {
        // Dollars to micro-dollars with the filter's exact decimal parser.
        let micros = chokepoint_filter::accounting::pricing::usd_per_mtok(usd, &f("usd"))
            .map_err(|e| cx.err(e.field, e.message))?;
        if micros == 0 {
            return Err(cx.err(f("usd"), "must be more than 0"));
        }
        body.insert("usd_micros".into(), json!(micros));
    }
    match b.tokens {
        Some(0) => return Err(cx.err(f("tokens"), "must be at least 1")),
        Some(t) => {
            body.insert("tokens".into(), json!(t));
        }
        None => {}
    }
    body.insert("period".into(), json!(b.period));
    Ok(())
}

/// The price table: written in the policy file, or `{file: PATH}` (relative to it), a
/// file of its own that can be refreshed from the providers' price lists without touching
/// the policy. Read and checked here, so an error names the prices file and its line.
fn prices(cx: &Ctx, value: Value, base_dir: &Path) -> Result<Value, PolicyError> {
    let file = match value.as_object() {
        Some(o) if o.contains_key("file") => match (o.len(), o.get("file")) {
            (1, Some(Value::String(f))) => f.clone(),
            _ => {
                return Err(cx.err(
                    "prices.file",
                    "a prices file is `prices: {file: PATH}` and nothing else",
                ))
            }
        },
        _ => return Ok(value),
    };
    let path = base_dir.join(&file);
    let shown = path.display().to_string();
    let text = read_bounded(&path, MAX_POLICY_FILE_BYTES).map_err(|m| cx.err("prices.file", m))?;
    let doc = yaml::load(&text).map_err(|message| {
        let (line, message) = split_line(&message);
        PolicyError {
            file: shown.clone(),
            line,
            field: String::new(),
            message,
        }
    })?;
    if let Err(e) = chokepoint_filter::accounting::pricing::PriceTable::parse(&doc.value, "prices")
    {
        // The filter names fields as `prices.models["m"].x`; the prices file has `models.m.x`.
        let field = e.field.replace("[\"", ".").replace("\"]", "");
        let inner = field.strip_prefix("prices.").unwrap_or("");
        return Err(PolicyError {
            file: shown,
            line: doc.line_of(inner),
            field: inner.to_string(),
            message: e.message,
        });
    }
    Ok(doc.value)
}

/// With a dollar budget (`budget_scope` names one), every model a route can reach needs a
/// price: its own, a glob that covers it, or the table's default. An unpriced model would
/// be booked at zero against the budget; the policy service refuses it at request time,
/// but a file that leaves one unpriced is refused here first, naming the route.
fn every_model_priced(
    cx: &Ctx,
    models: &Value,
    prices: Option<&Value>,
    providers: &[Provider],
    budget_scope: &str,
) -> Result<(), PolicyError> {
    let table = match prices {
        None => chokepoint_filter::accounting::pricing::PriceTable::default(),
        // Malformed prices are reported by the filter's own parser later, with their field.
        Some(p) => match chokepoint_filter::accounting::pricing::PriceTable::parse(p, "prices") {
            Ok(t) => t,
            Err(_) => return Ok(()),
        },
    };
    if table.has_default() {
        return Ok(());
    }
    let why = |what: &str| {
        format!(
            "{what} has no price, and {budget_scope} has a dollar budget: add it to prices.models \
             (a `*` glob may cover a family, e.g. \"claude-opus-5*\") or set prices.default, or \
             it would be refused under that budget"
        )
    };
    let routes = models.get("routes").and_then(Value::as_array);
    for (i, r) in routes.into_iter().flatten().enumerate() {
        let Some(model) = r.get("model").and_then(Value::as_str) else {
            continue;
        };
        let priced = if model.contains('*') {
            table.glob_patterns().any(|p| glob_covers(p, model))
        } else {
            table.lookup(model).is_some()
        };
        if !priced {
            return Err(cx.err(
                format!("models.routes[{i}].model"),
                why(&format!("the route {model:?}")),
            ));
        }
    }
    for (i, p) in providers.iter().enumerate() {
        for model in p.deployments.iter().flat_map(|d| d.values()) {
            if table.lookup(model).is_none() {
                return Err(cx.err(
                    format!("providers[{i}].deployments"),
                    why(&format!("the deployed model {model:?}")),
                ));
            }
        }
    }
    Ok(())
}

/// Whether every name the glob `route` matches is matched by the glob `price` too. Sound,
/// not complete: the same pattern, `*`, or a `prefix*` price over a route whose fixed
/// start begins with that prefix (`claude-*` covers `claude-opus-*`).
fn glob_covers(price: &str, route: &str) -> bool {
    if price == route || price == "*" {
        return true;
    }
    let Some(prefix) = price.strip_suffix('*').filter(|p| !p.contains('*')) else {
        return false;
    };
    route
        .split('*')
        .next()
        .is_some_and(|fixed| fixed.starts_with(prefix))
}

pub(super) fn env_name(cx: &Ctx, field: &str, name: &str) -> Result<(), PolicyError> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(cx.err(
            field,
            format!("{name:?} is not an environment variable name (A-Z, 0-9, _)"),
        ))
    }
}

pub(crate) fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::filter_path_to_policy;

    /// The filter's guardrails fields by the policy file's names, where its errors point.
    #[test]
    fn guardrail_fields_of_the_filter_are_the_policy_files() {
        for (filter, policy) in [
            (
                "guardrails.checks[2].service.cluster",
                "guardrails.checks[2].service.url",
            ),
            (
                "guardrails.checks[2].service.authority",
                "guardrails.checks[2].service.url",
            ),
            (
                "guardrails.checks[2].service.path",
                "guardrails.checks[2].service.url",
            ),
            (
                "guardrails.checks[2].service.timeout_ms",
                "guardrails.checks[2].service.timeout_ms",
            ),
            (
                "guardrails.checks[0].scope.groups[1]",
                "guardrails.checks[0].scope.groups[1]",
            ),
            ("guardrails.checks", "guardrails.checks"),
            ("guardrails.rules[7].regex", "guardrails.rules_file"),
            ("guardrails.cache_entries", "guardrails"),
            ("guardrails.max_response_scan_bytes", "guardrails"),
            ("guardrails.mask_key_env", "guardrails.mask_key_env"),
        ] {
            assert_eq!(filter_path_to_policy(filter), policy, "{filter}");
        }
    }
}
