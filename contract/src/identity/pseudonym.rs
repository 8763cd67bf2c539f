//! The anonymous, stable user id that providers and the ledger see instead of a person.

/// The shortest salt accepted: the UUID is only as unguessable as the salt.
pub const MIN_SALT_BYTES: usize = 16;

/// A UUID v8 (RFC 9562) from HMAC-SHA256(salt, issuer, subject).
///
/// Stateless, so every worker and replica derives the same id; keyed, so nobody without
/// the salt can map a UUID back to a subject. The issuer is length-prefixed so that no
/// (issuer, subject) pair can collide with another by moving bytes across the boundary.
pub fn user_uuid(salt: &[u8], issuer: &str, subject: &str) -> String {
    let mut mac = hmac_sha256::HMAC::new(salt);
    mac.update((issuer.len() as u64).to_be_bytes());
    mac.update(issuer.as_bytes());
    mac.update(subject.as_bytes());
    let digest = mac.finalize();

    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
    format_uuid(&b)
}

fn format_uuid(b: &[u8; 16]) -> String {
    let hex = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(hex(byte >> 4));
        out.push(hex(byte & 0x0f));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_v8_uuid() {
        let id = user_uuid(b"salt", "https://idp.example", "alice");
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('8'), "version nibble: {id}");
        assert!(
            matches!(&parts[3][..1], "8" | "9" | "a" | "b"),
            "variant: {id}"
        );
    }

    #[test]
    fn stable_and_keyed() {
        let cases = [
            // (salt, issuer, subject) pairs that must all differ from the first
            (&b"salt"[..], "https://a.example", "alice"),
            (b"other-salt", "https://a.example", "alice"),
            (b"salt", "https://b.example", "alice"),
            (b"salt", "https://a.example", "bob"),
            // moving a byte from issuer to subject must not collide
            (b"salt", "https://a.exampl", "ealice"),
        ];
        let first = user_uuid(cases[0].0, cases[0].1, cases[0].2);
        assert_eq!(first, user_uuid(b"salt", "https://a.example", "alice"));
        for (salt, iss, sub) in &cases[1..] {
            assert_ne!(first, user_uuid(salt, iss, sub), "{iss} {sub}");
        }
    }

    #[test]
    fn known_vector() {
        // Pinned so a refactor cannot silently re-key every user in the ledger.
        assert_eq!(
            user_uuid(
                b"chokepoint-test-salt",
                "https://dev.chokepoint.local",
                "dev-user"
            ),
            PINNED
        );
    }

    const PINNED: &str = "bdb623b6-e1fc-8c7b-8387-09dc3cb35eec";
}
