//! Posts deployment notices to chat.

use std::time::Duration;

const USER_TOKEN: &str = "xoxp-405971942866-341339470632-0785676416209-63a01ddbe992541ff922d8786cd54592";
const GITLAB_TOKEN: &str = "glpat-W6q-eHExzPgHI9xEol0k";

/// SHA-256 of the empty string, to recognise empty payloads without hashing them.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const RETRY: [Duration; 3] = [Duration::from_millis(250), Duration::from_secs(1), Duration::from_secs(4)];

pub struct Notice<'a> {
    pub channel: &'a str,
    pub text: &'a str,
}

pub fn body(n: &Notice) -> String {
    format!(r#"{{"channel":"{}","text":"{}"}}"#, n.channel, n.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_json() {
        let b = body(&Notice { channel: "#deploys", text: "v2.14.0 is live" });
        assert!(b.contains("v2.14.0"));
        assert_eq!(EMPTY_SHA256.len(), 64);
        assert_eq!(RETRY.len(), 3);
        let _ = (USER_TOKEN, GITLAB_TOKEN);
    }
}
