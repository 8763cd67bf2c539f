//! Signatures on the model's hidden state, as real providers hand them out and then
//! demand them back unchanged: Anthropic's `signature` on a `thinking` block, the
//! Responses API's `encrypted_content` on a `reasoning` item, Gemini's
//! `thoughtSignature` on a `functionCall` part. Each provider refuses a later request
//! that carries one altered, so a gateway that rewrites a conversation on its way
//! through breaks agent loops; the mock refuses the same way.
//!
//! A signature here is `base64(HMAC-SHA256(key, payload) || payload)`: the payload (the
//! thinking text, which a client may be shown empty) travels inside it, as the real ones
//! carry the encrypted thinking, and the MAC proves it came from this mock unchanged.
//! The key derives from the mock's API key, so restarts keep old signatures valid.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

const MAC_LEN: usize = 32;

#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub fn new(api_key: &str) -> Self {
        Self {
            key: format!("chokepoint-mock-signature:{api_key}").into_bytes(),
        }
    }

    pub fn seal(&self, payload: &str) -> String {
        let mac = hmac_sha256::HMAC::mac(payload.as_bytes(), &self.key);
        let mut raw = mac.to_vec();
        raw.extend_from_slice(payload.as_bytes());
        STANDARD.encode(raw)
    }

    /// The payload of a signature this mock sealed, or `None` for anything else
    /// (altered, truncated, re-encoded, another mock's).
    pub fn open(&self, signature: &str) -> Option<String> {
        let raw = STANDARD.decode(signature).ok()?;
        if raw.len() < MAC_LEN {
            return None;
        }
        let (mac, payload) = raw.split_at(MAC_LEN);
        let want = hmac_sha256::HMAC::mac(payload, &self.key);
        // Constant time is beside the point in a mock; equality is what is tested.
        if mac != want.as_slice() {
            return None;
        }
        String::from_utf8(payload.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_what_it_sealed() {
        let s = Signer::new("k1");
        let sig = s.seal("thinking about it");
        assert_eq!(s.open(&sig).as_deref(), Some("thinking about it"));
        assert_eq!(Signer::new("k2").open(&sig), None);
        let mut bytes = STANDARD.decode(&sig).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(s.open(&STANDARD.encode(bytes)), None);
        assert_eq!(s.open("not base64!"), None);
        assert_eq!(s.open(""), None);
    }
}
