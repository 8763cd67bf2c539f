//! MCP sessions bound to the user who opened them. A server's `Mcp-Session-Id` is a
//! bearer handle: whoever presents it rides the session. The gateway hands the client the
//! server's id sealed to the caller and the server (`<id>.<mac>`, a keyed MAC of both) and
//! takes the seal off on the way back, so another user's valid token with a leaked session
//! id gets a `404` (a session the client must open again), as the MCP security best
//! practices ask ("bind session IDs to user-specific information"). Stateless: every
//! worker and replica checks it with the same salt, nothing is stored.

/// Hex digits of the MAC: 128 bits.
const MAC_HEX: usize = 32;

/// Longest session id the gateway takes from a server (MCP ids are UUIDs or similar): a
/// longer one is taken off the answer rather than reach the client unsealed.
pub const MAX_SESSION_ID_BYTES: usize = 256;

/// The id the client gets for the server's `session`.
pub fn seal(salt: &[u8], user: &str, server: &str, session: &str) -> String {
    format!("{session}.{}", mac(salt, user, server, session))
}

/// The server's id, if `sealed` is one the gateway sealed for this user and server.
pub fn open<'a>(salt: &[u8], user: &str, server: &str, sealed: &'a str) -> Option<&'a str> {
    let (session, tag) = sealed.rsplit_once('.')?;
    let want = mac(salt, user, server, session);
    // Constant time: the comparison must not tell how much of a guess was right.
    let same = tag.len() == want.len()
        && tag
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same.then_some(session)
}

/// Whether a server's session id can be sealed and handed on: visible ASCII (MCP
/// transports, "Session Management"), bounded.
pub fn valid(session: &str) -> bool {
    !session.is_empty()
        && session.len() <= MAX_SESSION_ID_BYTES
        && session.bytes().all(|b| b.is_ascii_graphic())
}

fn mac(salt: &[u8], user: &str, server: &str, session: &str) -> String {
    let mut mac = hmac_sha256::HMAC::new(salt);
    // Domain-separated from the salt's other use (user UUIDs), and length-prefixed so no
    // two triples can share bytes.
    mac.update(b"chokepoint mcp session\0");
    for part in [user, server, session] {
        mac.update((part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    let digest = mac.finalize();
    let hex = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    digest
        .iter()
        .flat_map(|b| [hex(b >> 4), hex(b & 0x0f)])
        .take(MAC_HEX)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: &[u8] = b"0123456789abcdef-test-salt";

    #[test]
    fn a_session_opens_only_for_its_user_and_server() {
        let sid = "f3a1c2d4-5e6f-4a8b-9c0d-1e2f3a4b5c6d";
        let sealed = seal(SALT, "alice", "everything", sid);
        assert!(valid(&sealed));
        let cases = [
            ("alice", "everything", sealed.clone(), Some(sid)),
            ("bob", "everything", sealed.clone(), None),
            ("alice", "github", sealed.clone(), None),
            ("alice", "everything", sid.to_string(), None),
            (
                "alice",
                "everything",
                format!("{sid}.{}", "0".repeat(MAC_HEX)),
                None,
            ),
            ("alice", "everything", format!("x{sealed}"), None),
            ("alice", "everything", String::new(), None),
        ];
        for (user, server, presented, want) in cases {
            assert_eq!(
                open(SALT, user, server, &presented),
                want,
                "{user} {server} {presented}"
            );
        }
        // A server id with dots of its own still opens.
        let dotted = seal(SALT, "alice", "everything", "a.b.c");
        assert_eq!(open(SALT, "alice", "everything", &dotted), Some("a.b.c"));
    }
}
