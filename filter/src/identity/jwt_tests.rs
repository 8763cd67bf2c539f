//! The bad-token corpus: every token here must be refused with the right class.

use base64::Engine as _;
use jwt_simple::prelude::*;

use super::*;
use crate::testing::{self, Keys, AUDIENCE, ISSUER, NOW};

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn raw_token(header: serde_json::Value, payload: serde_json::Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        b64(sig)
    )
}

/// `token` with its payload swapped for one naming another subject, header and
/// signature kept.
fn with_tampered_payload(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut tampered = good_payload();
    tampered["sub"] = "mallory".into();
    format!(
        "{}.{}.{}",
        parts[0],
        b64(tampered.to_string().as_bytes()),
        parts[2]
    )
}

fn good_payload() -> serde_json::Value {
    serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": NOW - 10, "exp": NOW + 600})
}

fn verify(keys: &Keys, token: &str) -> Result<VerifiedToken, AuthError> {
    let rt = keys.runtime();
    let store = crate::auth_state::AuthState::new(&rt).keys;
    let v = Verifier {
        issuers: &rt.config.issuers,
        keys: &store,
        max_token_bytes: rt.config.max_token_bytes,
        skew: rt.config.clock_skew,
    };
    v.verify(token, NOW)
}

#[test]
fn accepts_each_algorithm() {
    let keys = Keys::new();
    let tokens = [
        keys.es256.sign(testing::claims()).unwrap(),
        keys.rs256.sign(testing::claims()).unwrap(),
        keys.ed.sign(testing::claims()).unwrap(),
    ];
    for t in tokens {
        let v = verify(keys, &t).unwrap();
        assert_eq!(v.subject, "alice");
        assert_eq!(v.issuer, ISSUER);
        assert_eq!(v.tenant.as_deref(), Some("acme"));
        assert_eq!(v.groups, ["ml", "eng"]);
        assert_eq!(v.expires_at, NOW + 3600);
    }
}

#[test]
fn rejects_the_bad_token_corpus() {
    let keys = Keys::new();
    let good = keys.es256.sign(testing::claims()).unwrap();
    let parts: Vec<&str> = good.split('.').collect();

    let mut corpus: Vec<(&str, String, AuthError)> = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        corpus.push((
            "alg none",
            raw_token(
                serde_json::json!({"alg": alg, "typ": "JWT"}),
                good_payload(),
                b"",
            ),
            AuthError::Malformed,
        ));
    }
    // HS256 "signed" with the public key as the HMAC secret: the classic confusion attack.
    let hs = HS256Key::from_bytes(keys.rs256.public_key().to_pem().unwrap().as_bytes());
    corpus.push((
        "hs256 with public key",
        hs.authenticate(testing::claims()).unwrap(),
        AuthError::Malformed,
    ));

    let mut no_exp = testing::claims();
    no_exp.expires_at = None;
    corpus.push((
        "no exp",
        keys.es256.sign(no_exp).unwrap(),
        AuthError::Malformed,
    ));

    for exp in [
        serde_json::json!(-1),
        serde_json::json!(1e30),
        serde_json::json!("2099-01-01"),
    ] {
        // Signed properly, so only the claim can be at fault: the odd `exp` rides in the
        // custom claims, which serialize flat next to the (absent) standard one.
        let mut c = testing::claims();
        c.expires_at = None;
        c.custom.insert("exp".into(), exp);
        corpus.push(("odd exp", keys.es256.sign(c).unwrap(), AuthError::Malformed));
    }

    let crit = raw_token(
        serde_json::json!({"alg": "ES256", "kid": "es-1", "crit": ["exp"]}),
        good_payload(),
        &[0u8; 64],
    );
    corpus.push(("crit", crit, AuthError::Malformed));

    let traversal = copy(&keys.es256).with_key_id("../../dev/null");
    corpus.push((
        "kid traversal",
        traversal.sign(testing::claims()).unwrap(),
        AuthError::UnknownKey,
    ));
    let unknown = ES256KeyPair::generate().with_key_id("not-known");
    corpus.push((
        "unknown kid",
        unknown.sign(testing::claims()).unwrap(),
        AuthError::UnknownKey,
    ));
    let same_kid_other_key = ES256KeyPair::generate().with_key_id("es-1");
    corpus.push((
        "other key, known kid",
        same_kid_other_key.sign(testing::claims()).unwrap(),
        AuthError::BadSignature,
    ));

    corpus.push((
        "tampered payload",
        with_tampered_payload(&good),
        AuthError::BadSignature,
    ));

    let mut expired = testing::claims();
    expired.expires_at = Some(UnixTimeStamp::from_secs(NOW - 120));
    corpus.push((
        "expired",
        keys.es256.sign(expired).unwrap(),
        AuthError::Expired,
    ));
    let mut future = testing::claims();
    future.invalid_before = Some(UnixTimeStamp::from_secs(NOW + 600));
    corpus.push((
        "nbf future",
        keys.es256.sign(future).unwrap(),
        AuthError::NotYetValid,
    ));
    let mut issued_later = testing::claims();
    issued_later.issued_at = Some(UnixTimeStamp::from_secs(NOW + 600));
    corpus.push((
        "iat in the future",
        keys.es256.sign(issued_later).unwrap(),
        AuthError::NotYetValid,
    ));
    let wrong_aud = testing::claims().with_audience("someone-else");
    corpus.push((
        "wrong aud",
        keys.es256.sign(wrong_aud).unwrap(),
        AuthError::WrongAudience,
    ));
    let wrong_iss = testing::claims().with_issuer("https://evil.test");
    corpus.push((
        "wrong iss",
        keys.es256.sign(wrong_iss).unwrap(),
        AuthError::WrongIssuer,
    ));

    corpus.push(("one segment", parts[0].to_string(), AuthError::Malformed));
    corpus.push((
        "two segments",
        format!("{}.{}", parts[0], parts[1]),
        AuthError::Malformed,
    ));
    corpus.push(("four segments", format!("{good}.x"), AuthError::Malformed));
    corpus.push((
        "non-base64",
        format!("{}.@@@.{}", parts[0], parts[2]),
        AuthError::Malformed,
    ));
    corpus.push((
        "not json",
        format!("{}.{}.{}", b64(b"{"), parts[1], parts[2]),
        AuthError::Malformed,
    ));
    corpus.push(("64 KiB", "a".repeat(64 * 1024), AuthError::TooLarge));
    corpus.push(("empty", String::new(), AuthError::Missing));

    let mut jku = copy(&keys.es256);
    jku.attach_metadata(KeyMetadata::default().with_key_set_url("https://evil.test/jwks"))
        .unwrap();
    corpus.push((
        "jku header",
        jku.sign(testing::claims()).unwrap(),
        AuthError::Malformed,
    ));
    let mut jwk = copy(&keys.es256);
    jwk.attach_metadata(KeyMetadata::default().with_public_key("{}"))
        .unwrap();
    corpus.push((
        "embedded jwk",
        jwk.sign(testing::claims()).unwrap(),
        AuthError::Malformed,
    ));
    corpus.push((
        "all-zero es256 signature",
        format!("{}.{}.{}", parts[0], parts[1], b64(&[0u8; 64])),
        AuthError::BadSignature,
    ));

    for (name, token, want) in corpus {
        assert_eq!(verify(keys, &token).map(|v| v.subject), Err(want), "{name}");
    }
}

#[test]
fn skew_is_applied_both_ways() {
    let keys = Keys::new();
    let mut just_expired = testing::claims();
    just_expired.expires_at = Some(UnixTimeStamp::from_secs(NOW - 30));
    assert!(
        verify(keys, &keys.es256.sign(just_expired).unwrap()).is_ok(),
        "within 60 s skew"
    );
    let mut almost_valid = testing::claims();
    almost_valid.invalid_before = Some(UnixTimeStamp::from_secs(NOW + 30));
    assert!(
        verify(keys, &keys.es256.sign(almost_valid).unwrap()).is_ok(),
        "within 60 s skew"
    );
}

fn copy(k: &ES256KeyPair) -> ES256KeyPair {
    ES256KeyPair::from_bytes(&k.to_bytes())
        .unwrap()
        .with_key_id("es-1")
}

/// RS256 goes through the filter's own RSA check (`rsa`, `rs256_key`) with jwt-simple
/// still judging everything else: the same verdicts as for the other algorithms.
#[test]
fn rs256_tokens_get_the_same_verdicts() {
    let keys = Keys::new();
    let sign =
        |c: JWTClaims<serde_json::Map<String, serde_json::Value>>| keys.rs256.sign(c).unwrap();
    let good = sign(testing::claims());
    let parts: Vec<&str> = good.split('.').collect();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[2])
        .unwrap();
    let with_sig = |s: &[u8]| format!("{}.{}.{}", parts[0], parts[1], b64(s));
    let at = |t: u64| Some(UnixTimeStamp::from_secs(t));

    let mut expired = testing::claims();
    expired.expires_at = at(NOW - 120);
    let mut just_expired = testing::claims();
    just_expired.expires_at = at(NOW - 30);
    let mut future = testing::claims();
    future.invalid_before = at(NOW + 600);
    let mut almost_valid = testing::claims();
    almost_valid.invalid_before = at(NOW + 30);
    let mut issued_later = testing::claims();
    issued_later.issued_at = at(NOW + 600);
    let mut no_exp = testing::claims();
    no_exp.expires_at = None;
    let mut flipped = sig.clone();
    flipped[17] ^= 0x40;
    let other = RS256KeyPair::generate(2048).unwrap().with_key_id("rs-1");
    let as_rs384 = raw_token(
        serde_json::json!({"alg": "RS384", "kid": "rs-1", "typ": "JWT"}),
        good_payload(),
        &sig,
    );

    let cases: Vec<(&str, String, Result<&str, AuthError>)> = vec![
        ("good", good.clone(), Ok("alice")),
        ("expired", sign(expired), Err(AuthError::Expired)),
        ("expired within skew", sign(just_expired), Ok("alice")),
        ("nbf future", sign(future), Err(AuthError::NotYetValid)),
        ("nbf within skew", sign(almost_valid), Ok("alice")),
        (
            "iat future",
            sign(issued_later),
            Err(AuthError::NotYetValid),
        ),
        ("no exp", sign(no_exp), Err(AuthError::Malformed)),
        (
            "wrong aud",
            sign(testing::claims().with_audience("someone-else")),
            Err(AuthError::WrongAudience),
        ),
        (
            "wrong iss",
            sign(testing::claims().with_issuer("https://evil.test")),
            Err(AuthError::WrongIssuer),
        ),
        (
            "tampered payload",
            with_tampered_payload(&good),
            Err(AuthError::BadSignature),
        ),
        (
            "one bit of the signature",
            with_sig(&flipped),
            Err(AuthError::BadSignature),
        ),
        (
            "zero signature",
            with_sig(&[0; 256]),
            Err(AuthError::BadSignature),
        ),
        (
            "short signature",
            with_sig(&sig[1..]),
            Err(AuthError::BadSignature),
        ),
        (
            "empty signature",
            with_sig(&[]),
            Err(AuthError::BadSignature),
        ),
        (
            "signature not base64",
            format!("{}.{}.@@@", parts[0], parts[1]),
            Err(AuthError::Malformed),
        ),
        (
            "other key, known kid",
            other.sign(testing::claims()).unwrap(),
            Err(AuthError::BadSignature),
        ),
        // The key decides the algorithm: an RS256 signature under an RS384 header finds
        // no RS384 key.
        ("alg swapped", as_rs384, Err(AuthError::UnknownKey)),
    ];
    for (name, token, want) in cases {
        let got = verify(keys, &token).map(|v| v.subject);
        assert_eq!(got.as_deref().map_err(|e| *e), want, "{name}");
    }
}
