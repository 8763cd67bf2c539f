//! Where a call goes and in whose terms: the provider APIs and their paths ([`api`]), the
//! configured providers ([`registry`]), the model routes ([`routes`]), the request body's
//! fields and edits ([`request_body`]), the provider key each upstream attempt carries
//! ([`key_injection`]) and local replies in each API's error shape ([`reply`]).

pub mod api;
pub mod glob;
pub mod key_injection;
pub mod registry;
pub mod reply;
pub mod request_body;
pub mod routes;
