//! The headers of every callout to the policy service: a request's decision, a lease
//! renewal, a usage batch. Built in this one place so that none leaves without the
//! gateway's credential, which the service demands on all of them.

use crate::runtime::Runtime;

pub use chokepoint_contract::paths::AUTHORIZE_PATH;

/// `POST path` on the policy cluster, JSON, with the gateway token; `request_id` (a
/// decision's own id) travels as `x-request-id` for the service's logs.
pub fn headers<'a>(
    rt: &'a Runtime,
    path: &'a str,
    request_id: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut headers = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", rt.config.policy.authority.as_str()),
        ("content-type", "application/json"),
    ];
    if let Some(authorization) = &rt.policy_authorization {
        headers.push(("authorization", authorization.as_str()));
    }
    if let Some(id) = request_id {
        headers.push(("x-request-id", id));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{runtime_from, Keys, POLICY_TOKEN};

    #[test]
    fn every_callout_carries_the_gateway_token() {
        let rt = runtime_from(&Keys::new().config_json());
        let bearer = format!("Bearer {POLICY_TOKEN}");
        let usage_path = rt.config.usage.path.clone();
        // (path, request id): a decision or renewal, and a usage batch.
        for (path, id) in [(AUTHORIZE_PATH, Some("req-1")), (usage_path.as_str(), None)] {
            let headers = headers(&rt, path, id);
            let get = |name: &str| {
                let values: Vec<&str> = headers
                    .iter()
                    .filter(|(k, _)| *k == name)
                    .map(|(_, v)| *v)
                    .collect();
                values
            };
            assert_eq!(get("authorization"), [bearer.as_str()], "{path}");
            assert_eq!(get(":path"), [path]);
            assert_eq!(get(":method"), ["POST"]);
            assert_eq!(get("x-request-id"), id.into_iter().collect::<Vec<_>>());
        }
    }
}
