//! Who a company token names, read the same way by the filter (which verifies it on every
//! request) and by the policy service (which verifies it for its pages): the registered
//! claims a token must carry, the issuer's claim mapping to tenant, groups and cost
//! centre with the values it is trusted to assert, and the pseudonymous user UUID. The
//! signature checks stay with each caller (they differ in what their crypto costs); what
//! a verified token *means* is decided here, once.

pub mod claims;
pub mod pseudonym;
pub mod registered;

pub use claims::{ClaimRefusal, ClaimRules, Identity, Patterns, Trust};
pub use pseudonym::user_uuid;
