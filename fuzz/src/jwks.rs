//! JWKS documents (`filter/src/identity/jwks.rs`): inline ones from the configuration
//! (`KeySet::from_jwks`, strict) and fetched ones from the identity provider
//! (`KeySet::from_fetched`, lenient), from arbitrary bytes.
//!
//! Invariants: an accepted set holds between 1 and `MAX_KEYS` keys, every one a
//! candidate for its own algorithm and `kid`; the lenient parse accepts whatever the
//! strict one does, with the same keys and nothing skipped.

use chokepoint_filter::identity::jwks::{KeySet, ALGORITHMS, MAX_KEYS};

fn check(set: &KeySet) {
    assert!(!set.keys.is_empty() && set.keys.len() <= MAX_KEYS);
    for entry in &set.keys {
        let alg = entry.key.algorithm();
        assert!(ALGORITHMS.contains(&alg));
        assert!(set.candidates(entry.kid.as_deref(), alg).next().is_some());
    }
}

pub fn run(data: &[u8]) {
    let fetched = KeySet::from_fetched(data);
    if let Ok((set, skipped)) = &fetched {
        check(set);
        assert!(set.keys.len() + skipped <= MAX_KEYS);
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        assert!(fetched.is_err());
        return;
    };
    if let Ok(mut set) = KeySet::from_jwks(&value) {
        check(&set);
        let (lenient, skipped) = fetched.expect("lenient accepts what strict accepts");
        assert_eq!(skipped, 0);
        assert_eq!(lenient.keys.len(), set.keys.len());
        set.add_hmac(b"fuzz-hmac-secret-of-at-least-32-bytes!!");
        assert!(set.candidates(Some("any"), "HS256").next().is_some());
    }
}
