//! Dev tokens must verify with nothing but the published JWKS, and the bad
//! tokens tests rely on must really be bad.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chokepoint_dev::devtoken::{self, DevKey, TokenSpec, DEFAULT_AUDIENCE, DEFAULT_ISSUER};
use jwt_simple::prelude::{
    ECDSAP256PublicKeyLike, ES256PublicKey, JWTClaims, Token, VerificationOptions,
};
use serde_json::{json, Map, Value};

type Claims = JWTClaims<Map<String, Value>>;

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!(
            "chokepoint-devtoken-test-{}-{tag}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ))
        .join("dev-key.json")
}

/// Rebuilds the verifying key the way a gateway would: from JWKS x/y only.
fn key_from_jwks(jwks: &str, kid: &str) -> ES256PublicKey {
    let v: Value = serde_json::from_str(jwks).unwrap();
    let keys = v["keys"].as_array().unwrap();
    let jwk = keys.iter().find(|k| k["kid"] == kid).expect("kid in JWKS");
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");
    assert!(jwk.get("d").is_none(), "private part must not be published");
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
    assert_eq!((x.len(), y.len()), (32, 32));
    let mut point = vec![0x04];
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    ES256PublicKey::from_bytes(&point).unwrap()
}

fn strict() -> VerificationOptions {
    VerificationOptions {
        allowed_issuers: Some(HashSet::from([DEFAULT_ISSUER.to_string()])),
        allowed_audiences: Some(HashSet::from([DEFAULT_AUDIENCE.to_string()])),
        ..Default::default()
    }
}

fn verify(key: &DevKey, token: &str) -> Result<Claims, jwt_simple::Error> {
    key_from_jwks(&key.jwks_json(), key.kid())
        .verify_token::<Map<String, Value>>(token, Some(strict()))
}

#[test]
fn minted_token_verifies_with_key_from_jwks() {
    let key = DevKey::generate("test-kid-1");
    let token = key.mint(
        &TokenSpec::new("alice")
            .with_tenant("acme")
            .with_groups(["eng", "admins"]),
    );

    let meta = Token::decode_metadata(&token).unwrap();
    assert_eq!(meta.algorithm(), "ES256");
    assert_eq!(meta.key_id(), Some("test-kid-1"));

    let claims = verify(&key, &token).expect("token verifies");
    assert_eq!(claims.subject.as_deref(), Some("alice"));
    assert_eq!(claims.issuer.as_deref(), Some(DEFAULT_ISSUER));
    assert_eq!(claims.custom["tenant"], "acme");
    assert_eq!(claims.custom["groups"], json!(["eng", "admins"]));
    assert!(claims.jwt_id.as_deref().is_some_and(|j| j.len() >= 16));
    let iat = claims.issued_at.unwrap().as_secs();
    assert_eq!(claims.expires_at.unwrap().as_secs() - iat, 3600);
    assert_eq!(claims.invalid_before.unwrap().as_secs(), iat);

    // Raw payload: aud is a plain string, all standard claims present.
    let payload = token.split('.').nth(1).unwrap();
    let raw: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(raw["aud"], DEFAULT_AUDIENCE);
    for claim in [
        "iat", "exp", "nbf", "iss", "aud", "sub", "jti", "tenant", "groups",
    ] {
        assert!(raw.get(claim).is_some(), "missing {claim}: {raw}");
    }
}

#[test]
fn jti_is_unique_per_token() {
    let key = DevKey::generate("k");
    let spec = TokenSpec::new("bob");
    let a = verify(&key, &key.mint(&spec)).unwrap();
    let b = verify(&key, &key.mint(&spec)).unwrap();
    assert_ne!(a.jwt_id, b.jwt_id);
}

#[test]
fn optional_claims_are_omitted_when_unset() {
    let key = DevKey::generate("k");
    let claims = verify(&key, &key.mint(&TokenSpec::new("bob"))).unwrap();
    assert!(!claims.custom.contains_key("tenant"));
    assert!(!claims.custom.contains_key("groups"));
}

#[test]
fn issuer_audience_and_ttl_are_configurable() {
    let key = DevKey::generate("k");
    let token = key.mint(
        &TokenSpec::new("carol")
            .with_issuer("https://other")
            .with_audience("someone-else")
            .with_ttl(Duration::from_secs(60)),
    );
    assert!(
        verify(&key, &token).is_err(),
        "strict options reject other iss/aud"
    );
    let claims = key
        .public_key()
        .verify_token::<Map<String, Value>>(&token, None)
        .unwrap();
    assert_eq!(claims.issuer.as_deref(), Some("https://other"));
    assert!(claims
        .audiences
        .unwrap()
        .contains(&HashSet::from(["someone-else".to_string()])));
    assert_eq!(
        claims.expires_at.unwrap().as_secs() - claims.issued_at.unwrap().as_secs(),
        60
    );
}

#[test]
fn expired_token_fails_verification() {
    let key = DevKey::generate("k");
    let token = key.mint(&TokenSpec::new("alice").expired(Duration::from_secs(3600)));
    assert!(verify(&key, &token).is_err());
    let claims = key
        .public_key()
        .verify_token::<Map<String, Value>>(
            &token,
            Some(VerificationOptions {
                time_tolerance: Some(jwt_simple::prelude::Duration::from_hours(3)),
                ..Default::default()
            }),
        )
        .expect("valid apart from its expiry");
    assert!(claims.expires_at.unwrap().as_secs() + 3000 < now_secs());
}

#[test]
fn not_yet_valid_token_fails_verification() {
    let key = DevKey::generate("k");
    let token = key.mint(
        &TokenSpec::new("alice").with_not_before(SystemTime::now() + Duration::from_secs(7200)),
    );
    assert!(verify(&key, &token).is_err());
}

#[test]
fn token_from_another_key_fails_verification() {
    let trusted = DevKey::generate("same-kid");
    let attacker = DevKey::generate("same-kid");
    let token = attacker.mint(&TokenSpec::new("alice"));
    assert!(verify(&trusted, &token).is_err());
    assert!(verify(&attacker, &token).is_ok());
}

#[test]
fn extra_claims_override_and_remove() {
    let key = DevKey::generate("k");
    let token = key.mint(
        &TokenSpec::new("alice")
            .with_tenant("acme")
            .with_claim("email", json!("alice@example.com"))
            .with_claim("tenant", json!("override"))
            .with_claim("iss", json!("https://forged"))
            .with_claim("exp", Value::Null),
    );
    let payload = token.split('.').nth(1).unwrap();
    let raw: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(raw["email"], "alice@example.com");
    assert_eq!(raw["tenant"], "override");
    assert_eq!(raw["iss"], "https://forged");
    assert!(raw.get("exp").is_none());
    // Each claim appears exactly once in the JSON text.
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(text.matches("\"iss\"").count(), 1);
    assert_eq!(text.matches("\"tenant\"").count(), 1);
}

#[test]
fn save_load_roundtrip_keeps_key_and_kid() {
    let path = temp_path("roundtrip");
    let key = DevKey::generate("persisted");
    key.save(&path).unwrap();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(file["kid"], "persisted");
    assert!(file["private_key_pem"]
        .as_str()
        .unwrap()
        .contains("PRIVATE KEY"));

    let loaded = DevKey::load(&path).unwrap();
    assert_eq!(loaded.kid(), "persisted");
    assert_eq!(loaded.jwks_json(), key.jwks_json());
    let token = loaded.mint(&TokenSpec::new("alice"));
    assert!(verify(&key, &token).is_ok());
    assert!(
        !format!("{loaded:?}").contains("PRIVATE"),
        "Debug must not print the key"
    );

    // Saving again replaces the file atomically, leaving no temp files.
    DevKey::generate("replaced").save(&path).unwrap();
    assert_eq!(DevKey::load(&path).unwrap().kid(), "replaced");
    let dir = path.parent().unwrap();
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn load_or_generate_creates_once_then_reuses() {
    let path = temp_path("log");
    let (first, generated) = DevKey::load_or_generate_reporting(&path).unwrap();
    assert!(generated);
    assert!(first.kid().starts_with("dev-"));
    let again = DevKey::load_or_generate(&path).unwrap();
    assert_eq!(again.kid(), first.kid());
    assert_eq!(again.jwks_json(), first.jwks_json());
    let (_, generated) = DevKey::load_or_generate_reporting(&path).unwrap();
    assert!(!generated);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn load_errors_are_clear() {
    let path = temp_path("bad");
    let err = DevKey::load(&path).unwrap_err();
    assert!(err.is_not_found());
    assert!(err.to_string().contains(path.to_str().unwrap()));

    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{\"kid\": \"x\", \"private_key_pem\": \"garbage\"}").unwrap();
    let err = DevKey::load(&path).unwrap_err();
    assert!(!err.is_not_found());
    assert!(err.to_string().contains("not a P-256 key"), "{err}");
    // A corrupt file is an error, never silently replaced.
    assert!(DevKey::load_or_generate(&path).is_err());

    std::fs::write(&path, "not json").unwrap();
    assert!(DevKey::load(&path).unwrap_err().to_string().contains("kid"));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn jwks_can_hold_several_keys() {
    let a = DevKey::generate("a");
    let b = DevKey::generate("b");
    let jwks = devtoken::jwks_json(&[a.clone(), b.clone()]);
    let token = b.mint(&TokenSpec::new("x"));
    key_from_jwks(&jwks, "b")
        .verify_token::<Map<String, Value>>(&token, None)
        .unwrap();
    assert!(key_from_jwks(&jwks, "a")
        .verify_token::<Map<String, Value>>(&token, None)
        .is_err());
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token_bin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chokepoint-token"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_mints_tokens_that_verify_against_its_jwks() {
    let path = temp_path("cli");
    let key_arg = path.to_str().unwrap();

    let out = token_bin(&[
        "alice", "--key", key_arg, "--tenant", "acme", "--groups", "eng,ops",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("generated new dev key"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim_end();
    assert_eq!(stdout.lines().count(), 1, "only the token on stdout");

    let out = token_bin(&["--jwks", "--key", key_arg]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "key exists now, nothing to report");
    let jwks = String::from_utf8(out.stdout).unwrap();
    let kid = Token::decode_metadata(token)
        .unwrap()
        .key_id()
        .unwrap()
        .to_string();
    let claims = key_from_jwks(&jwks, &kid)
        .verify_token::<Map<String, Value>>(token, Some(strict()))
        .unwrap();
    assert_eq!(claims.subject.as_deref(), Some("alice"));
    assert_eq!(claims.custom["tenant"], "acme");
    assert_eq!(claims.custom["groups"], json!(["eng", "ops"]));

    let out = token_bin(&[
        "bob",
        "--key",
        key_arg,
        "--issuer",
        "https://i",
        "--audience",
        "a",
        "--ttl-secs",
        "5",
        "--claim",
        "n=3",
        "--claim",
        "s=text",
    ]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = key_from_jwks(&jwks, &kid)
        .verify_token::<Map<String, Value>>(token.trim(), None)
        .unwrap();
    assert_eq!(claims.issuer.as_deref(), Some("https://i"));
    assert_eq!(
        claims.expires_at.unwrap().as_secs() - claims.issued_at.unwrap().as_secs(),
        5
    );
    assert_eq!(claims.custom["n"], 3);
    assert_eq!(claims.custom["s"], "text");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn cli_errors_are_clear() {
    let out = token_bin(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SUBJECT"));

    let path = temp_path("cli-bad");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "not json").unwrap();
    let out = token_bin(&["alice", "--key", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(path.to_str().unwrap()) && err.contains("not valid"),
        "{err}"
    );

    let out = token_bin(&[
        "alice",
        "--key",
        path.to_str().unwrap(),
        "--claim",
        "novalue",
    ]);
    assert!(!out.status.success());
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();

    let help = token_bin(&["--help"]);
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in ["--tenant", "--groups", "--key", "--jwks", "--ttl-secs"] {
        assert!(help.contains(flag), "{flag} missing from help");
    }
}
