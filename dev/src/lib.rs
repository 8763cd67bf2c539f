//! What `scripts/run` runs, and what the tests and performance tools start through it: the
//! stack supervisor ([`stack`]: Redis, the policy service, mock providers, a mock IdP and
//! Envoy with the filter), the mock providers ([`mock`]), the mock IdP ([`idp`]) and the
//! dev token minter ([`devtoken`]).

pub mod devtoken;
pub mod idp;
pub mod mock;
pub mod stack;
pub mod utc;
