//! The `mcp:` section: the MCP servers clients reach through the gateway at
//! `/mcp/<name>`, what the gateway sends each in place of the client's token, and who
//! may use which tools, prompts and resources.

use std::collections::HashSet;
use std::path::Path;

use super::load::{ca_file, env_name, Ctx};
use super::{Mcp, McpCredential, McpRule, McpServer, PolicyError};
use crate::policy_file::{RawMcp, RawMcpRule};
use crate::url::Url;

/// Headers a credential must not use: hop-by-hop headers (a proxy drops or rewrites
/// them), HTTP's own framing and routing, and MCP's transport headers.
const RESERVED_HEADERS: [&str; 15] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "accept",
    "cookie",
    "last-event-id",
];

pub(super) fn mcp(cx: &Ctx, raw: RawMcp, base_dir: &Path) -> Result<Mcp, PolicyError> {
    let public_url = match raw.public_url {
        None => None,
        Some(text) => {
            let url = Url::parse(&text).map_err(|m| cx.err("mcp.public_url", m))?;
            if !url.path.is_empty() {
                return Err(cx.err(
                    "mcp.public_url",
                    "must be the gateway's origin without a path: servers are served at <public_url>/mcp/<name>",
                ));
            }
            Some(url)
        }
    };
    if raw.servers.is_empty() {
        return Err(cx.err("mcp.servers", "names no server; leave mcp out instead"));
    }
    let mut names = HashSet::new();
    let mut servers = Vec::new();
    for (i, s) in raw.servers.into_iter().enumerate() {
        let f = |n: &str| format!("mcp.servers[{i}].{n}");
        if !server_name(&s.name) {
            return Err(cx.err(
                f("name"),
                format!(
                    "{:?} must be 1-64 characters of a-z, 0-9 and -, not starting or ending with -",
                    s.name
                ),
            ));
        }
        if !names.insert(s.name.clone()) {
            return Err(cx.err(f("name"), format!("duplicate MCP server {:?}", s.name)));
        }
        let url = Url::parse(&s.url).map_err(|m| cx.err(f("url"), m))?;
        if url.path.is_empty() {
            return Err(cx.err(f("url"), "needs the server's MCP endpoint path (e.g. /mcp)"));
        }
        let ca = ca_file(cx, &f("ca_file"), s.ca_file.as_deref(), &url, base_dir)?;
        let credential = match s.credential {
            None => None,
            Some(c) => {
                credential_header(cx, &f("credential.header"), &c.header)?;
                if let Some(scheme) = &c.scheme {
                    let ok = !scheme.is_empty() && scheme.bytes().all(is_token_byte);
                    if !ok {
                        return Err(cx.err(
                            f("credential.scheme"),
                            format!("{scheme:?} is not an authentication scheme (e.g. Bearer)"),
                        ));
                    }
                }
                env_name(cx, &f("credential.env"), &c.env)?;
                Some(McpCredential {
                    header: c.header,
                    scheme: c.scheme,
                    env: c.env,
                })
            }
        };
        servers.push(McpServer {
            name: s.name,
            url,
            ca,
            credential,
            tools: rules(cx, &f("tools"), s.tools)?,
            prompts: rules(cx, &f("prompts"), s.prompts)?,
            resources: rules(cx, &f("resources"), s.resources)?,
        });
    }
    Ok(Mcp {
        public_url,
        servers,
    })
}

/// `[a-z0-9-]{1,64}`, no leading or trailing `-`: a path segment and a cluster name
/// (also of a guardrail check).
pub(super) fn server_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// RFC 9110's `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn credential_header(cx: &Ctx, field: &str, header: &str) -> Result<(), PolicyError> {
    let bad = |why: &str| Err(cx.err(field, format!("{header:?} {why}")));
    if header.starts_with(':') {
        return bad("is a pseudo-header");
    }
    if header.is_empty() || !header.bytes().all(is_token_byte) {
        return bad("is not a header name");
    }
    if header.bytes().any(|b| b.is_ascii_uppercase()) {
        return bad("must be lowercase (HTTP/2 header names are)");
    }
    if header.starts_with("x-chokepoint-") {
        return bad("is one of the gateway's own headers");
    }
    if header.starts_with("mcp-") || RESERVED_HEADERS.contains(&header) {
        return bad("is a hop-by-hop, framing or MCP transport header");
    }
    Ok(())
}

fn rules(cx: &Ctx, field: &str, raw: Vec<RawMcpRule>) -> Result<Vec<McpRule>, PolicyError> {
    let mut out = Vec::new();
    for (j, r) in raw.into_iter().enumerate() {
        let f = |n: &str| format!("{field}[{j}].{n}");
        if r.pattern.is_empty() || r.pattern.chars().any(char::is_control) {
            return Err(cx.err(
                f("match"),
                format!("{:?} must be a name or a `*` glob", r.pattern),
            ));
        }
        let deny = r.deny.unwrap_or(false);
        if deny && (r.allow_groups.is_some() || r.allow_tenants.is_some()) {
            return Err(cx.err(
                f("deny"),
                "a rule either denies everyone or lists who is allowed, not both",
            ));
        }
        for (name, list) in [
            ("allow_groups", &r.allow_groups),
            ("allow_tenants", &r.allow_tenants),
        ] {
            if list.iter().flatten().any(|v| v.is_empty()) {
                return Err(cx.err(f(name), "names an empty group or tenant"));
            }
        }
        let listed = |l: &Option<Vec<String>>| l.as_ref().map(Vec::len);
        if let (Some(0), None | Some(0)) | (None, Some(0)) =
            (listed(&r.allow_groups), listed(&r.allow_tenants))
        {
            return Err(cx.err(
                f(if r.allow_groups.is_some() { "allow_groups" } else { "allow_tenants" }),
                "lists nobody: write deny: true to refuse everyone, or leave the lists out to allow all",
            ));
        }
        out.push(McpRule {
            pattern: r.pattern,
            deny,
            allow_groups: r.allow_groups,
            allow_tenants: r.allow_tenants,
        });
    }
    Ok(out)
}
