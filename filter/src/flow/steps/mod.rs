//! The request path, one file per step, in the order they run. Adding a step (a
//! guardrail, an MCP policy check) is a new file here and one line in [`PIPELINE`].

mod admit;
mod authenticate;
mod classify;
mod edit;
mod forward;
mod models;
mod out_of_sight;
mod route;
mod screen;
mod strip;

use super::step::Step;

/// Every request's steps. `classify` ends by waiting for the body (`Go::Body`): the steps
/// after it see it scanned. The last step is always `forward`, which `Go::Forward` jumps
/// to.
pub static PIPELINE: [&dyn Step; 9] = [
    &strip::Strip,
    &screen::Screen,
    &authenticate::Authenticate,
    &classify::Classify,
    &route::Route,
    &out_of_sight::OutOfSight,
    &edit::Edit,
    &admit::Admit,
    &forward::Forward,
];
