//! The viewer rules against real JWTs (ES256 as chokepoint-token signs them, RS256 and
//! EdDSA as identity providers do), inline and fetched over HTTP from a JWKS endpoint.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use jwt_simple::prelude::*;
use serde_json::{json, Value};

use super::*;

const ISSUER: &str = "https://dev.chokepoint.local";
const AUDIENCE: &str = "chokepoint";
const SALT: &str = "chokepoint-test-salt";
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const NOW: u64 = 1_800_000_000;

struct Keys {
    es256: ES256KeyPair,
    rs256: RS256KeyPair,
    ed: Ed25519KeyPair,
    /// Same `kid` as `es256`, another key: a forged signature.
    forger: ES256KeyPair,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        es256: ES256KeyPair::generate().with_key_id("es-1"),
        rs256: RS256KeyPair::generate(2048).unwrap().with_key_id("rs-1"),
        ed: Ed25519KeyPair::generate().with_key_id("ed-1"),
        forger: ES256KeyPair::generate().with_key_id("es-1"),
    })
}

fn jwk(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn jwks(k: &Keys) -> Value {
    json!({"keys": [
        jwk(&k.es256.public_key().to_jwk()),
        jwk(&k.rs256.public_key().to_jwk()),
        jwk(&k.ed.public_key().to_jwk()),
    ]})
}

fn env(name: &str) -> Option<String> {
    (name == "CHOKEPOINT_UUID_SALT").then(|| SALT.to_owned())
}

fn viewers(file: Value) -> Viewers {
    let config = ViewerConfig::parse(&file.to_string()).unwrap();
    Viewers::new(config, Some(ADMIN_TOKEN), env).unwrap()
}

fn inline() -> Viewers {
    viewers(json!({
        "issuers": [{"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": jwks(keys())}],
        "admin_groups": ["spend-admins"],
    }))
}

/// Claims as chokepoint-token mints them: tenant and groups, an hour to live.
fn claims(sub: &str, groups: &[&str]) -> JWTClaims<Value> {
    Claims::with_custom_claims(
        json!({"tenant": "acme", "groups": groups}),
        jwt_simple::prelude::Duration::from_secs(3600),
    )
    .with_issuer(ISSUER)
    .with_audience(AUDIENCE)
    .with_subject(sub)
}

/// `claims` issued at `iat` seconds before NOW, valid `ttl` seconds from then.
fn at(mut c: JWTClaims<Value>, iat_ago: u64, ttl: u64) -> JWTClaims<Value> {
    c.issued_at = Some(UnixTimeStamp::from_secs(NOW - iat_ago));
    c.expires_at = Some(UnixTimeStamp::from_secs(NOW - iat_ago + ttl));
    c.invalid_before = Some(UnixTimeStamp::from_secs(NOW - iat_ago));
    c
}

fn es(c: JWTClaims<Value>) -> String {
    keys().es256.sign(c).unwrap()
}

fn bearer(token: &str) -> HeaderMap {
    header_map(header::AUTHORIZATION, &format!("Bearer {token}"))
}

fn cookie(token: &str) -> HeaderMap {
    header_map(
        header::COOKIE,
        &format!("theme=dark; {VIEWER_COOKIE}={token}"),
    )
}

fn header_map(name: header::HeaderName, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(name, HeaderValue::from_str(value).unwrap());
    h
}

fn user(sub: &str, groups: &[&str]) -> Result<Viewer, &'static str> {
    Ok(Viewer::User {
        user: user_uuid(SALT.as_bytes(), ISSUER, sub),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        tenant: Some("acme".into()),
    })
}

#[tokio::test]
async fn each_rule_and_each_refusal() {
    let k = keys();
    let good = |sub: &str, groups: &[&str]| at(claims(sub, groups), 10, 3600);
    let forged = k.forger.sign(good("alice", &["ml"])).unwrap();
    let none = {
        let parts: Vec<String> = es(good("alice", &[]))
            .split('.')
            .map(str::to_owned)
            .collect();
        format!("eyJhbGciOiJub25lIn0.{}.", parts[1])
    };
    let huge = format!("{}{}", es(good("alice", &[])), "A".repeat(9000));
    let cases: Vec<(&str, HeaderMap, Result<Viewer, &str>)> = vec![
        ("admin token", bearer(ADMIN_TOKEN), Ok(Viewer::Admin)),
        (
            "admin token, lower-case scheme",
            header_map(header::AUTHORIZATION, &format!("bearer {ADMIN_TOKEN}")),
            Ok(Viewer::Admin),
        ),
        (
            "admin token in the cookie",
            cookie(ADMIN_TOKEN),
            Ok(Viewer::Admin),
        ),
        (
            "ES256 user",
            bearer(&es(good("alice", &["ml"]))),
            user("alice", &["ml"]),
        ),
        (
            "RS256 user",
            bearer(&k.rs256.sign(good("bob", &[])).unwrap()),
            user("bob", &[]),
        ),
        (
            "EdDSA user",
            bearer(&k.ed.sign(good("carol", &["eng"])).unwrap()),
            user("carol", &["eng"]),
        ),
        (
            "user in the cookie",
            cookie(&es(good("alice", &["ml"]))),
            user("alice", &["ml"]),
        ),
        (
            "admin group",
            bearer(&es(good("dana", &["eng", "spend-admins"]))),
            Ok(Viewer::Admin),
        ),
        (
            "admin group as a string claim",
            bearer(&es(
                at(claims("dana", &[]), 10, 3600).with_custom_claims_replaced()
            )),
            Ok(Viewer::Admin),
        ),
        (
            "expired within the leeway",
            bearer(&es(at(claims("alice", &[]), 3630, 3600))),
            user("alice", &[]),
        ),
        (
            "expired",
            bearer(&es(at(claims("alice", &[]), 7200, 3600))),
            Err("expired"),
        ),
        (
            "not yet valid",
            bearer(&es(at(claims("alice", &[]), 0, 3600)
                .invalid_before(UnixTimeStamp::from_secs(NOW + 600)))),
            Err("not_yet_valid"),
        ),
        (
            "wrong audience",
            bearer(&es(good("alice", &[]).with_audience("another-app"))),
            Err("wrong_audience"),
        ),
        (
            "unknown issuer",
            bearer(&es(good("alice", &[]).with_issuer("https://evil.example"))),
            Err("wrong_issuer"),
        ),
        ("forged signature", bearer(&forged), Err("bad_signature")),
        (
            "unknown key",
            bearer(
                &ES256KeyPair::generate()
                    .with_key_id("es-9")
                    .sign(good("alice", &[]))
                    .unwrap(),
            ),
            Err("unknown_key"),
        ),
        ("alg none", bearer(&none), Err("malformed")),
        ("not a JWT", bearer("not-a-jwt"), Err("malformed")),
        (
            "wrong admin token",
            bearer("admin-token-0123456789abcdeX"),
            Err("malformed"),
        ),
        ("too large", bearer(&huge), Err("too_large")),
        ("no credentials", HeaderMap::new(), Err("missing")),
        (
            "basic scheme",
            header_map(header::AUTHORIZATION, "Basic YWRtaW46YWRtaW4="),
            Err("missing"),
        ),
        (
            "empty bearer",
            header_map(header::AUTHORIZATION, "Bearer "),
            Err("missing"),
        ),
        (
            "another cookie only",
            header_map(header::COOKIE, "theme=dark"),
            Err("missing"),
        ),
    ];
    let v = inline();
    for (name, headers, want) in cases {
        let got = v.resolve(&headers, NOW).await;
        match (&got, &want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w, "{name}"),
            (Err(e), Err(code)) => {
                assert_eq!(e.code, *code, "{name}: {e:?}");
                assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{name}");
                // The answer never carries the credential back.
                let shown = e.body().to_string();
                let sent = headers
                    .values()
                    .map(|v| v.to_str().unwrap().to_owned())
                    .collect::<Vec<_>>();
                for s in sent {
                    let credential = s.rsplit([' ', '=']).next().unwrap();
                    if credential.len() > 8 {
                        assert!(!shown.contains(credential), "{name}: {shown}");
                    }
                }
            }
            _ => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

/// A JWT of this claims set with `groups` as one space-separated string.
trait GroupsAsString {
    fn with_custom_claims_replaced(self) -> Self;
}

impl GroupsAsString for JWTClaims<Value> {
    fn with_custom_claims_replaced(mut self) -> Self {
        self.custom = json!({"tenant": "acme", "groups": "eng spend-admins"});
        self
    }
}

#[tokio::test]
async fn the_uuid_is_the_gateways() {
    // The pinned vector of the shared pseudonym (contract/src/identity/pseudonym.rs), which
    // the filter records every request's user under: the page's user for a token of
    // that issuer and subject, with the gateway's salt, is the ledger's.
    let v = inline();
    let token = es(at(claims("dev-user", &["ml"]), 10, 3600));
    let got = v.resolve(&bearer(&token), NOW).await.unwrap();
    assert_eq!(
        got,
        Viewer::User {
            user: "bdb623b6-e1fc-8c7b-8387-09dc3cb35eec".into(),
            groups: vec!["ml".into()],
            tenant: Some("acme".into()),
        }
    );
    // And it is the filter's verifier's answer, mapped by the filter's claim rules.
    let issuers = &v.issuers;
    let mut store = chokepoint_filter::identity::keystore::KeyStore::default();
    let set = chokepoint_filter::identity::jwks::KeySet::from_jwks(&jwks(keys())).unwrap();
    store.replace(ISSUER, set, 0);
    let verified = Verifier {
        issuers,
        keys: &store,
        max_token_bytes: 8192,
        skew: std::time::Duration::from_secs(60),
    }
    .verify(&token, NOW)
    .unwrap();
    assert_eq!(
        user_uuid(SALT.as_bytes(), &verified.issuer, &verified.subject),
        "bdb623b6-e1fc-8c7b-8387-09dc3cb35eec"
    );
}

#[tokio::test]
async fn trust_and_claim_mapping_follow_the_issuer() {
    let v = viewers(json!({
        "issuers": [
            {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": jwks(keys()),
             "tenant_claim": "org", "groups_claim": "roles",
             "trust": {"tenants": ["acme"], "groups": ["ml-*", "spend-admins"], "cost_centers": ["*"]}},
            {"issuer": "https://other.example", "audiences": [AUDIENCE], "jwks": jwks(keys()),
             "trust": {"tenants": ["globex"], "groups": ["eng-*"], "cost_centers": ["*"]}},
        ],
        "admin_groups": ["spend-admins"],
    }));
    let token = |custom: Value, iss: &str| {
        let c = Claims::with_custom_claims(custom, jwt_simple::prelude::Duration::from_secs(600))
            .with_issuer(iss)
            .with_audience(AUDIENCE)
            .with_subject("erin");
        es(at(c, 10, 600))
    };
    let cases: Vec<(Value, &str, Result<Viewer, &str>)> = vec![
        (
            json!({"org": "acme", "roles": ["ml-a", "eng"]}),
            ISSUER,
            Ok(Viewer::User {
                user: user_uuid(SALT.as_bytes(), ISSUER, "erin"),
                groups: vec!["ml-a".into()],
                tenant: Some("acme".into()),
            }),
        ),
        (json!({"org": "globex"}), ISSUER, Err("tenant_not_allowed")),
        // The other issuer may not make anyone an admin: the group is not its to assert.
        (
            json!({"tenant": "globex", "groups": ["spend-admins", "eng-a"]}),
            "https://other.example",
            Ok(Viewer::User {
                user: user_uuid(SALT.as_bytes(), "https://other.example", "erin"),
                groups: vec!["eng-a".into()],
                tenant: Some("globex".into()),
            }),
        ),
        (
            json!({"org": "acme", "roles": ["spend-admins"]}),
            ISSUER,
            Ok(Viewer::Admin),
        ),
    ];
    for (custom, iss, want) in cases {
        let got = v.resolve(&bearer(&token(custom.clone(), iss)), NOW).await;
        assert_eq!(got.map_err(|e| e.code), want, "{custom}");
    }
}

#[tokio::test]
async fn only_the_admin_token_without_issuers() {
    let v = Viewers::new(ViewerConfig::admin_token_only(), Some(ADMIN_TOKEN), |_| {
        None
    })
    .unwrap();
    let jwt = es(at(claims("alice", &[]), 10, 3600));
    assert_eq!(
        v.resolve(&bearer(ADMIN_TOKEN), NOW).await,
        Ok(Viewer::Admin)
    );
    assert_eq!(
        v.resolve(&bearer(&jwt), NOW).await.map_err(|e| e.code),
        Err("wrong_issuer")
    );
    // No admin token configured: nobody is an admin by sending an empty or any token.
    let closed = Viewers::new(ViewerConfig::admin_token_only(), None, |_| None).unwrap();
    for h in [bearer(ADMIN_TOKEN), bearer(&jwt), HeaderMap::new()] {
        assert!(closed.resolve(&h, NOW).await.is_err());
    }
}

#[test]
fn refuses_to_start_without_the_salt_or_a_strong_hmac_secret() {
    let file =
        json!({"issuers": [{"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": jwks(keys())}]});
    let config = || ViewerConfig::parse(&file.to_string()).unwrap();
    let err = Viewers::new(config(), None, |_| Some("short".into()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("uuid_salt_env") && err.contains("CHOKEPOINT_UUID_SALT"),
        "{err}"
    );
    assert!(!err.contains("short"), "{err}");
    let hmac = json!({"issuers": [{"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": jwks(keys()),
        "algorithms": ["HS256"], "hmac_secret_env": "IDP_SECRET"}]});
    let config = ViewerConfig::parse(&hmac.to_string()).unwrap();
    let err = Viewers::new(config, None, |n| {
        Some(if n == "IDP_SECRET" {
            "too-short".into()
        } else {
            SALT.into()
        })
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("issuers[0].hmac_secret_env"), "{err}");
}

#[test]
fn the_identity_file_is_checked_field_by_field() {
    let jwks = jwks(keys());
    let issuer = |extra: Value| {
        let mut i = json!({"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": jwks});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                i.as_object_mut().unwrap().remove(k);
            } else {
                i[k] = v.clone();
            }
        }
        i
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"issuers": [], "admin_group": []}),
            "unknown field `admin_group`",
        ),
        (
            json!({"issuers": [issuer(json!({"audiences": []}))]}),
            "issuers[0].audiences",
        ),
        (
            json!({"issuers": [issuer(json!({"issuer": " "}))]}),
            "issuers[0].issuer",
        ),
        (json!({"issuers": [issuer(json!({}))," "]}), "(root)"),
        (
            json!({"issuers": [issuer(json!({})), issuer(json!({}))]}),
            "duplicate issuer",
        ),
        (
            json!({"issuers": [issuer(json!({"jwks": null}))]}),
            "issuers[0].jwks",
        ),
        (
            json!({"issuers": [issuer(json!({"jwks_url": {"url": "https://idp.example/jwks"}}))]}),
            "issuers[0].jwks",
        ),
        (
            json!({"issuers": [issuer(json!({"jwks": {"keys": [{"kty": "oct"}]}}))]}),
            "issuers[0].jwks: keys[0]",
        ),
        (
            json!({"issuers": [issuer(json!({"jwks": null, "jwks_url": {"url": "ftp://idp"}}))]}),
            "issuers[0].jwks_url.url",
        ),
        (
            json!({"issuers": [issuer(json!({"jwks": null, "jwks_url": {"url": "https://idp/j", "refresh_secs": 1}}))]}),
            "issuers[0].jwks_url.refresh_secs",
        ),
        (
            json!({"issuers": [issuer(json!({"jwks": null, "jwks_url": {"url": "https://idp/j", "timeout_ms": 0}}))]}),
            "issuers[0].jwks_url.timeout_ms",
        ),
        (
            json!({"issuers": [issuer(json!({"algorithms": ["none"]}))]}),
            "issuers[0].algorithms",
        ),
        (
            json!({"issuers": [issuer(json!({"algorithms": ["HS256"]}))]}),
            "issuers[0].algorithms",
        ),
        (
            json!({"issuers": [issuer(json!({"hmac_secret_env": "A=b"}))]}),
            "issuers[0].hmac_secret_env",
        ),
        (
            json!({"issuers": [issuer(json!({"groups_claim": ""}))]}),
            "issuers[0].groups_claim",
        ),
        (
            json!({"issuers": [issuer(json!({"trust": {"tenants": [""], "groups": [], "cost_centers": []}}))]}),
            "issuers[0].trust.tenants",
        ),
        (
            json!({"issuers": [issuer(json!({})), issuer(json!({"issuer": "https://b", "trust": {"tenants": ["*"], "groups": ["*"], "cost_centers": ["*"]}}))]}),
            "issuers[0].trust",
        ),
        (json!({"admin_groups": ["ok", "a,b"]}), "admin_groups[1]"),
        (json!({"admin_groups": [""]}), "admin_groups[0]"),
        (json!({"uuid_salt_env": "SALT=value"}), "uuid_salt_env"),
        (json!({"max_token_bytes": 10}), "max_token_bytes"),
        (json!({"clock_skew_secs": 601}), "clock_skew_secs"),
    ];
    for (file, want) in cases {
        let err = ViewerConfig::parse(&file.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{file}: {err}");
    }
    let ok = ViewerConfig::parse(
        &json!({"issuers": [issuer(json!({}))], "admin_groups": ["spend-admins"]}).to_string(),
    )
    .unwrap();
    assert_eq!(ok.admin_groups, ["spend-admins"]);
    assert_eq!(ok.uuid_salt_env, "CHOKEPOINT_UUID_SALT");
}

/// A JWKS endpoint on loopback serving whatever `doc` holds, counting fetches; `doc`
/// empty answers 503.
struct Idp {
    url: String,
    doc: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

async fn idp(doc: String) -> Idp {
    let doc = Arc::new(Mutex::new(doc));
    let hits = Arc::new(AtomicUsize::new(0));
    let (d, h) = (doc.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (d, h) = (d.clone(), h.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let body = d.lock().unwrap().clone();
                if body.is_empty() {
                    (StatusCode::SERVICE_UNAVAILABLE, String::new())
                } else {
                    (StatusCode::OK, body)
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Idp {
        url: format!("http://{addr}/jwks.json"),
        doc,
        hits,
    }
}

/// (step, what the IdP serves from now on (`""`: down), the token, seconds after NOW,
/// the viewer's user or the error code, fetches so far)
type Step = (
    &'static str,
    Option<String>,
    String,
    u64,
    Result<(), &'static str>,
    usize,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_keys_are_cached_refreshed_and_rotated() {
    let k = keys();
    let only_es =
        |key: &ES256KeyPair| json!({"keys": [jwk(&key.public_key().to_jwk())]}).to_string();
    let idp = idp(String::new()).await;
    let v = viewers(json!({
        "issuers": [{"issuer": ISSUER, "audiences": [AUDIENCE],
                     "jwks_url": {"url": idp.url, "refresh_secs": 300, "timeout_ms": 2000}}],
    }));
    let token =
        |key: &ES256KeyPair, t: u64| key.sign(at(claims("alice", &[]), 10, 3600 + t)).unwrap();
    let rotated = ES256KeyPair::generate().with_key_id("es-2");
    let another = ES256KeyPair::generate().with_key_id("es-3");
    let steps: Vec<Step> = vec![
        (
            "IdP down, no keys yet",
            None,
            token(&k.es256, 0),
            0,
            Err("jwks_unavailable"),
            1,
        ),
        (
            "retry paused for 2 s",
            None,
            token(&k.es256, 0),
            1,
            Err("jwks_unavailable"),
            1,
        ),
        (
            "IdP up: fetched",
            Some(only_es(&k.es256)),
            token(&k.es256, 0),
            2,
            Ok(()),
            2,
        ),
        (
            "cached",
            Some(only_es(&rotated)),
            token(&k.es256, 0),
            50,
            Ok(()),
            2,
        ),
        (
            "rotated key: its unknown kid refetches",
            None,
            token(&rotated, 0),
            100,
            Ok(()),
            3,
        ),
        (
            "another unknown kid within the minute: no refetch",
            Some(only_es(&another)),
            token(&another, 0),
            130,
            Err("unknown_key"),
            3,
        ),
        (
            "after the minute it refetches",
            None,
            token(&another, 0),
            161,
            Ok(()),
            4,
        ),
        (
            "refreshed after refresh_secs; IdP down: last good set kept",
            Some(String::new()),
            token(&another, 500),
            461,
            Ok(()),
            5,
        ),
    ];
    for (step, serve, token, offset, want, fetches) in steps {
        if let Some(doc) = serve {
            *idp.doc.lock().unwrap() = doc;
        }
        let got = v.resolve(&bearer(&token), NOW + offset).await;
        match (&got, want) {
            (Ok(Viewer::User { user, .. }), Ok(())) => {
                assert_eq!(*user, user_uuid(SALT.as_bytes(), ISSUER, "alice"), "{step}")
            }
            (Err(e), Err(code)) => assert_eq!(e.code, code, "{step}: {e:?}"),
            _ => panic!("{step}: got {got:?}, want {want:?}"),
        }
        assert_eq!(idp.hits.load(Ordering::SeqCst), fetches, "{step}");
    }
}
