//! Whether a call may go ahead: the worst case it could cost ([`output_bound`]), the
//! policy service's decision ([`authorize`]) and the budget slices held locally so most
//! calls need no callout ([`lease`]).

pub mod authorize;
pub mod lease;
pub mod output_bound;
pub mod policy_callout;
