//! The policy service's identity file (`chokepoint-policy serve --identity`): the
//! gateway's issuers as the filter reads them (audiences, algorithms, claim mapping,
//! trust) with their keys, the variable holding the gateway's UUID salt, the token bounds
//! the filter uses, and `ui.admin_groups`. With it the service verifies a viewer's
//! company JWT exactly as the gateway does and derives the same user UUID. Only names
//! of secrets, never a value: the salt and HMAC secrets stay in the environment.

use serde_json::{json, Map, Value};

use crate::policy::{Keys, Policy};

/// The file, from a validated policy.
pub fn identity_file(policy: &Policy) -> Value {
    let issuers: Vec<Value> = policy
        .issuers
        .iter()
        .map(|i| {
            // The filter's own issuer fields (issuer, audiences, algorithms,
            // hmac_secret_env, required_claims, *_claim, trust), which the service's
            // identity file takes under the same names.
            let mut entry: Map<String, Value> = i.fields.clone();
            match &i.keys {
                Keys::Inline(jwks) => {
                    entry.insert("jwks".into(), jwks.clone());
                }
                Keys::Uri {
                    url,
                    refresh_secs,
                    timeout_ms,
                    ca,
                } => {
                    let mut u = Map::new();
                    u.insert("url".into(), json!(format!("{}{}", url.origin(), url.path)));
                    if let Some(r) = refresh_secs {
                        u.insert("refresh_secs".into(), json!(r));
                    }
                    if let Some(t) = timeout_ms {
                        u.insert("timeout_ms".into(), json!(t));
                    }
                    if let Some(ca) = ca {
                        u.insert("ca_pem".into(), json!(ca.pem));
                    }
                    entry.insert("jwks_url".into(), Value::Object(u));
                }
            }
            Value::Object(entry)
        })
        .collect();
    let mut file = Map::new();
    file.insert("issuers".into(), Value::Array(issuers));
    file.insert("admin_groups".into(), json!(policy.ui.admin_groups));
    file.insert("uuid_salt_env".into(), json!(policy.gateway.uuid_salt_env));
    for bound in ["max_token_bytes", "clock_skew_secs"] {
        if let Some(v) = policy.gateway.passthrough.get(bound) {
            file.insert(bound.into(), v.clone());
        }
    }
    Value::Object(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example's issuers, keys and salt variable, as the service parses them.
    #[test]
    fn the_service_reads_the_gateways_issuers() {
        let mut policy = crate::policy::example();
        policy.ui.admin_groups = vec!["spend-admins".into()];
        let file = identity_file(&policy);
        let parsed = chokepoint_policy::viewer::ViewerConfig::parse(&file.to_string())
            .unwrap_or_else(|e| panic!("{e}: {file:#}"));
        assert_eq!(parsed.issuers.len(), policy.issuers.len());
        for (got, want) in parsed.issuers.iter().zip(&policy.issuers) {
            assert_eq!(got.issuer, want.issuer);
            let audiences: Vec<&str> = want.fields["audiences"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(got.audiences.len(), audiences.len());
            assert!(audiences.iter().all(|a| got.audiences.contains(*a)));
        }
        assert_eq!(parsed.admin_groups, ["spend-admins"]);
        assert_eq!(parsed.uuid_salt_env, policy.gateway.uuid_salt_env);
        // Names of secrets only.
        let text = file.to_string();
        assert!(!text.contains("BEGIN PRIVATE"), "{text}");
    }
}
