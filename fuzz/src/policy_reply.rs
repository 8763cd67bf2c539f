//! The policy service's answer to the filter's authorize callout
//! (`filter/src/admission/authorize.rs`): whatever comes back, the filter must reach one
//! deterministic decision.
//!
//! Layout: byte 0 picks the callout's HTTP status; the rest is the answer's body.
//!
//! Invariants: anything but a 200 is `Unavailable`; a denial asks the client to wait at
//! least a second and its 429 reply is JSON with printable headers; an allow's quota
//! headers are well-formed header values.

use chokepoint_filter::admission::authorize::{decide, quota_headers, Decision};
use chokepoint_filter::providers::reply::rate_limited;

const STATUSES: [Option<u32>; 8] = [
    Some(200),
    Some(200),
    Some(200),
    Some(200),
    None,
    Some(400),
    Some(503),
    Some(204),
];

pub fn run(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(selector % 8)];
    match decide(status, body) {
        Decision::Allow(quota) => {
            assert_eq!(status, Some(200));
            for (name, value) in quota_headers(&quota) {
                assert!(name.starts_with("x-ratelimit-"));
                assert!(!value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric()));
            }
        }
        Decision::Deny {
            reason,
            message,
            retry_after_secs,
        } => {
            assert_eq!(status, Some(200));
            assert!(retry_after_secs >= 1);
            // The denial reaches the client as a 429 in OpenAI's error shape.
            let reply = rate_limited(&reason, &message, retry_after_secs);
            let body: serde_json::Value =
                serde_json::from_str(&reply.body).expect("the reply body is JSON");
            assert_eq!(body["error"]["code"], reason.as_str());
            for (_, value) in &reply.headers {
                assert!(
                    value.bytes().all(|b| (0x20..0x7f).contains(&b)),
                    "{value:?}"
                );
            }
        }
        Decision::Unavailable(why) => assert!(!why.is_empty()),
    }
}
