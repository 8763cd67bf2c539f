//! Where a call goes and in whose terms: one module per provider API ([`openai`],
//! [`anthropic`], [`gemini`], [`azure`]) registered in [`api`], the
//! configured providers ([`registry`]), the model routes ([`routes`]), the request body's
//! fields and edits ([`request_body`]), the provider key each upstream attempt carries
//! ([`key_injection`]) and local replies in each API's error shape ([`reply`]).

pub mod anthropic;
pub mod api;
pub mod apis;
pub mod azure;
pub mod gemini;
pub mod glob;
pub mod key_injection;
pub mod openai;
pub mod registry;
pub mod reply;
pub mod request_body;
pub mod routes;
