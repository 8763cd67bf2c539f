//! Who may use what on an MCP server: the first rule whose pattern matches a tool's (or
//! prompt's) name or a resource's URI decides; no rule matching allows it. A refusal names
//! the rule, so an admin can find it in the policy file.

use super::config::{Access, McpServer, Rule};
use crate::flow::Caller;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Tool,
    Prompt,
    Resource,
}

impl Subject {
    /// The list and the word for a subject, as the policy file and messages name them.
    pub fn list_name(self) -> &'static str {
        match self {
            Subject::Tool => "tools",
            Subject::Prompt => "prompts",
            Subject::Resource => "resources",
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Subject::Tool => "Tool",
            Subject::Prompt => "Prompt",
            Subject::Resource => "Resource",
        }
    }

    /// What a method names: `tools/call` a tool, `prompts/get` a prompt, reading or
    /// subscribing to a resource a resource.
    pub fn of_method(method: &str) -> Option<Subject> {
        match method {
            "tools/call" => Some(Subject::Tool),
            "prompts/get" => Some(Subject::Prompt),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                Some(Subject::Resource)
            }
            _ => None,
        }
    }
}

/// The rule that refuses `name` to `caller`, as `mcp.servers[<server>].<list>[<i>]`; `None`:
/// allowed.
pub fn refusing_rule(
    server: &McpServer,
    subject: Subject,
    name: &str,
    caller: &Caller,
) -> Option<String> {
    let rules = rules_of(server, subject);
    let (i, rule) = rules
        .iter()
        .enumerate()
        .find(|(_, r)| r.pattern.matches(name))?;
    (!allows(&rule.access, caller))
        .then(|| format!("mcp.servers[{}].{}[{i}]", server.name, subject.list_name()))
}

/// Whether the caller's lists of this subject need filtering at all: some rule could
/// refuse them something.
pub fn filters(server: &McpServer, subject: Subject, caller: &Caller) -> bool {
    rules_of(server, subject)
        .iter()
        .any(|r| !allows(&r.access, caller))
}

fn rules_of(server: &McpServer, subject: Subject) -> &[Rule] {
    match subject {
        Subject::Tool => &server.tools,
        Subject::Prompt => &server.prompts,
        Subject::Resource => &server.resources,
    }
}

fn allows(access: &Access, caller: &Caller) -> bool {
    match access {
        Access::Everyone => true,
        Access::Nobody => false,
        Access::Only { groups, tenants } => {
            groups.iter().any(|g| caller.groups.contains(g))
                || caller
                    .tenant
                    .as_ref()
                    .is_some_and(|t| tenants.iter().any(|a| a == t))
        }
    }
}
