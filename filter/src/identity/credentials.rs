//! Credential hygiene: which client headers never travel past the gateway.

/// Prefix of the gateway's own headers. A client must never be able to set one.
pub const GATEWAY_PREFIX: &str = "x-chokepoint-";

/// Headers that carry a credential for some provider or for the gateway itself. They are
/// removed before anything reads the request, and the provider key is added afterwards.
pub const CREDENTIAL_HEADERS: [&str; 7] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
    "cf-access-jwt-assertion",
];

/// Headers that pick the account a provider key bills or acts for: OpenAI's organization
/// and project (its SDK sends them from `OPENAI_ORG_ID` / `OPENAI_PROJECT_ID`), Google's
/// quota project. With the gateway's key they would let a client pick among the accounts
/// that key reaches, or fail the call outright when the key is not a member.
pub const ACCOUNT_HEADERS: [&str; 3] = [
    "openai-organization",
    "openai-project",
    "x-goog-user-project",
];

/// Headers that would change what reaches the provider past the gateway's checks: Google's
/// field mask (an answer without `usageMetadata` cannot be counted) and the method
/// overrides some APIs honour (a POST the gateway allowed turned into another method).
pub const SHAPING_HEADERS: [&str; 4] = [
    "x-goog-fieldmask",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Whether a client-sent header must be removed before the request goes anywhere.
/// Header names from Envoy are already lower-case.
pub fn must_strip(name: &str) -> bool {
    name.starts_with(GATEWAY_PREFIX)
        || CREDENTIAL_HEADERS.contains(&name)
        || ACCOUNT_HEADERS.contains(&name)
        || SHAPING_HEADERS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_credentials_and_gateway_headers() {
        let table = [
            ("authorization", true),
            ("x-api-key", true),
            ("api-key", true),
            ("x-goog-api-key", true),
            ("cookie", true),
            ("x-chokepoint-user", true),
            ("x-chokepoint-anything", true),
            ("openai-organization", true),
            ("openai-project", true),
            ("x-goog-user-project", true),
            ("x-goog-fieldmask", true),
            ("x-http-method-override", true),
            ("anthropic-version", false),
            ("openai-beta", false),
            ("content-type", false),
            ("x-request-id", false),
            ("x-chokepoin", false),
        ];
        for (name, want) in table {
            assert_eq!(must_strip(name), want, "{name}");
        }
    }
}
