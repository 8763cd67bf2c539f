//! The request path, one file per step, in the order they run. Adding a step (a
//! guardrail, an MCP policy check) is a new file here and one line in [`PIPELINE`].

mod admit;
mod aggregate;
mod authenticate;
mod await_body;
mod classify;
mod edit;
mod forward;
mod guard;
mod guard_service;
mod mcp_policy;
mod metadata;
mod models;
mod out_of_sight;
mod route;
mod screen;
mod strip;
mod upstream;

use super::step::Step;
pub use guard::GUARDRAIL_BLOCKED;
pub use guard_service::GUARDRAIL_UNAVAILABLE;
pub(super) use guard_service::{check_name, mode, service_of, verdict_cache};

/// Every request's steps. `await_body` waits for the body (`Go::Body`): the steps after it
/// see it scanned. The last step is always `forward`, which `Go::Forward` jumps
/// to.
pub static PIPELINE: [&dyn Step; 14] = [
    &strip::Strip,
    &metadata::Metadata,
    &screen::Screen,
    &authenticate::Authenticate,
    &classify::Classify,
    &await_body::AwaitBody,
    &route::Route,
    &mcp_policy::McpPolicy,
    &aggregate::Aggregate,
    &out_of_sight::OutOfSight,
    &guard::Guard,
    &edit::Edit,
    &admit::Admit,
    &forward::Forward,
];

#[cfg(test)]
mod tests {
    use super::PIPELINE;

    /// The request path's diagram in docs/architecture.md chains exactly these steps, in
    /// this order, then the response side's `count` and `record`: the page cannot drift
    /// from the code.
    #[test]
    fn the_architecture_page_draws_this_pipeline() {
        let page = include_str!("../../../../docs/architecture.md");
        let diagram = page
            .split("```mermaid")
            .nth(1)
            .and_then(|d| d.split("```").next())
            .expect("a mermaid diagram");
        // Its chain: the `a --> b` lines between two bare step names.
        let edges: Vec<(&str, &str)> = diagram
            .lines()
            .filter_map(|l| l.trim().split_once(" --> "))
            .filter(|(a, b)| {
                [a, b]
                    .iter()
                    .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            })
            .collect();
        let mut chain = vec!["strip"];
        while let Some((_, next)) = edges.iter().find(|(from, _)| Some(from) == chain.last()) {
            chain.push(next);
        }
        let mut want: Vec<&str> = PIPELINE.iter().map(|s| s.name()).collect();
        want.extend(["count", "record"]);
        assert_eq!(chain, want);
    }
}
