//! The `mcp` section of the plugin configuration: the MCP servers the gateway serves at
//! `/mcp/<name>`, the credential each gets instead of the caller's token, and who may use
//! which of their tools, prompts and resources. Parsed in two steps like the rest of the
//! configuration: serde rejecting unknown fields, then the validated form.

use std::collections::HashSet;

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::providers::glob::Glob;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMcp {
    public_url: String,
    servers: Vec<RawServer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    name: String,
    cluster: String,
    path: String,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    credential: Option<RawCredential>,
    #[serde(default)]
    tools: Vec<RawRule>,
    #[serde(default)]
    prompts: Vec<RawRule>,
    #[serde(default)]
    resources: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    header: String,
    #[serde(default)]
    prefix: String,
    env: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    pattern: String,
    #[serde(default)]
    deny: bool,
    #[serde(default)]
    allow_groups: Vec<String>,
    #[serde(default)]
    allow_tenants: Vec<String>,
}

/// The validated MCP configuration.
#[derive(Debug)]
pub struct McpConfig {
    /// The gateway's public origin (`https://gateway.example.com`): each server's RFC 9728
    /// resource is `<public_url>/mcp/<name>`. From configuration, never from the request's
    /// `Host`, which the client chooses.
    pub public_url: String,
    pub servers: Vec<McpServer>,
}

#[derive(Debug)]
pub struct McpServer {
    pub name: String,
    /// The Envoy cluster of the upstream server.
    pub cluster: String,
    /// The upstream's MCP endpoint path (`/mcp`).
    pub path: String,
    /// The upstream's host (and port) as its requests name it: what the aggregate
    /// endpoint's own calls to it carry (`:authority`); the cluster's name by default.
    pub authority: String,
    pub credential: Option<Credential>,
    pub tools: Vec<Rule>,
    pub prompts: Vec<Rule>,
    pub resources: Vec<Rule>,
}

/// The header the upstream reads the gateway's credential from: `<prefix><secret>`, the
/// secret from the Envoy process's environment variable `env` (the name only here).
#[derive(Debug, Clone)]
pub struct Credential {
    pub header: String,
    pub prefix: String,
    pub env: String,
}

/// Who may use the tools (prompts, resources) a pattern matches.
#[derive(Debug, Clone)]
pub struct Rule {
    pub pattern: Pattern,
    pub access: Access,
}

#[derive(Debug, Clone)]
pub enum Pattern {
    Exact(String),
    Glob(Glob),
}

impl Pattern {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(p) => p == name,
            Pattern::Glob(g) => g.matches(name),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Pattern::Exact(p) => p,
            Pattern::Glob(g) => &g.pattern,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Everyone,
    Nobody,
    /// Callers in any of these groups, or of any of these tenants.
    Only {
        groups: Vec<String>,
        tenants: Vec<String>,
    },
}

/// Longest server name: it is a path segment, a cluster name and a limit scope id.
pub const MAX_SERVER_NAME_BYTES: usize = 64;

/// The headers an upstream credential may not be set in: the gateway's own, hop-by-hop
/// and pseudo-headers.
const RESERVED_HEADERS: [&str; 7] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "cookie",
];

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// A server name: lowercase letters, digits and inner `-`.
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SERVER_NAME_BYTES
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl McpConfig {
    pub fn validate(raw: RawMcp) -> Result<McpConfig, ConfigError> {
        let public_url = raw.public_url.trim_end_matches('/').to_string();
        let origin_ok = ["http://", "https://"]
            .iter()
            .any(|s| public_url.strip_prefix(s).is_some_and(valid_authority));
        if !origin_ok {
            return Err(err(
                "mcp.public_url",
                "must be the gateway's public origin, http(s)://host[:port], without a path",
            ));
        }
        let mut names = HashSet::new();
        let mut servers = Vec::with_capacity(raw.servers.len());
        for (i, rs) in raw.servers.into_iter().enumerate() {
            let field = |f: &str| format!("mcp.servers[{i}].{f}");
            if !valid_server_name(&rs.name) {
                return Err(err(
                    field("name"),
                    format!(
                        "must be 1 to {MAX_SERVER_NAME_BYTES} of a-z, 0-9 and inner '-' (it is the path /mcp/<name>)"
                    ),
                ));
            }
            if !names.insert(rs.name.clone()) {
                return Err(err(
                    field("name"),
                    format!("duplicate server {:?}", rs.name),
                ));
            }
            if rs.cluster.is_empty() || rs.cluster.chars().any(|c| c.is_whitespace()) {
                return Err(err(field("cluster"), "must name an Envoy cluster"));
            }
            if !rs.path.starts_with('/') || rs.path.bytes().any(|b| !b.is_ascii_graphic()) {
                return Err(err(
                    field("path"),
                    "must be the upstream's MCP endpoint path, starting with '/'",
                ));
            }
            let authority = rs.authority.unwrap_or_else(|| rs.cluster.clone());
            if !valid_authority(&authority) {
                return Err(err(field("authority"), "must be host[:port]"));
            }
            let credential = match rs.credential {
                None => None,
                Some(c) => Some(credential(c, &|f| field(&format!("credential.{f}")))?),
            };
            let rules = |list: Vec<RawRule>, kind: &str| -> Result<Vec<Rule>, ConfigError> {
                list.into_iter()
                    .enumerate()
                    .map(|(j, r)| rule(r, &field(&format!("{kind}[{j}]"))))
                    .collect()
            };
            servers.push(McpServer {
                tools: rules(rs.tools, "tools")?,
                prompts: rules(rs.prompts, "prompts")?,
                resources: rules(rs.resources, "resources")?,
                name: rs.name,
                cluster: rs.cluster,
                path: rs.path,
                authority,
                credential,
            });
        }
        Ok(McpConfig {
            public_url,
            servers,
        })
    }

    pub fn server(&self, name: &str) -> Option<(usize, &McpServer)> {
        self.servers
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
    }
}

fn valid_authority(a: &str) -> bool {
    !a.is_empty()
        && a.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        })
}

fn credential(c: RawCredential, field: &dyn Fn(&str) -> String) -> Result<Credential, ConfigError> {
    let header = c.header.to_ascii_lowercase();
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if header.is_empty()
        || !header.bytes().all(token_char)
        || header.starts_with("x-chokepoint-")
        || RESERVED_HEADERS.contains(&header.as_str())
    {
        return Err(err(
            field("header"),
            "must be a header name the upstream reads, not a hop-by-hop header or the gateway's own",
        ));
    }
    if c.prefix.bytes().any(|b| b.is_ascii_control()) {
        return Err(err(field("prefix"), "must not contain control characters"));
    }
    if c.env.is_empty()
        || !c
            .env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(err(
            field("env"),
            "must name an environment variable of the Envoy process",
        ));
    }
    Ok(Credential {
        header,
        prefix: c.prefix,
        env: c.env,
    })
}

fn rule(r: RawRule, field: &str) -> Result<Rule, ConfigError> {
    if r.pattern.is_empty() || r.pattern.chars().any(char::is_control) {
        return Err(err(
            format!("{field}.match"),
            "must be a name or a `*` glob",
        ));
    }
    let named = |list: &[String]| list.iter().all(|n| !n.is_empty());
    if !named(&r.allow_groups) || !named(&r.allow_tenants) {
        return Err(err(
            format!("{field}.allow_groups"),
            "group and tenant names must not be empty",
        ));
    }
    let limited = !r.allow_groups.is_empty() || !r.allow_tenants.is_empty();
    let access = match (r.deny, limited) {
        (true, true) => {
            return Err(err(
                format!("{field}.deny"),
                "a rule either denies everyone or allows some groups or tenants, not both",
            ))
        }
        (true, false) => Access::Nobody,
        (false, true) => Access::Only {
            groups: r.allow_groups,
            tenants: r.allow_tenants,
        },
        (false, false) => Access::Everyone,
    };
    let pattern = if r.pattern.contains('*') {
        Pattern::Glob(Glob::new(&r.pattern))
    } else {
        Pattern::Exact(r.pattern)
    };
    Ok(Rule { pattern, access })
}
