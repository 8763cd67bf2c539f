//! Cold and warm JWT verification cost per algorithm, measured by the filter's own code.
//! Built for wasm32-wasip1 and run in V8 by `scripts/bench-jwt` (as inside Envoy), and
//! natively for comparison. Prints one JSON object per algorithm: `cold_us` is the median
//! of 15 batches of 8 signature checks, `cold_min_us` the fastest batch.

use std::time::Instant;

use chokepoint_filter::auth_state::AuthState;
use chokepoint_filter::config::Config;
use chokepoint_filter::identity::jwt::Verifier;
use chokepoint_filter::identity::token_cache::{TokenCache, Verified};
use chokepoint_filter::runtime::Runtime;
use jwt_simple::prelude::*;

const ISSUER: &str = "https://bench.test";

fn main() {
    let rs = RS256KeyPair::generate(2048).map(|k| k.with_key_id("rs"));
    let es = ES256KeyPair::generate().with_key_id("es");
    let ed = Ed25519KeyPair::generate().with_key_id("ed");
    let Ok(rs) = rs else {
        eprintln!("RSA key generation failed");
        std::process::exit(1);
    };
    let jwks = format!(
        r#"{{"keys":[{},{},{}]}}"#,
        rs.public_key().to_jwk(),
        es.public_key().to_jwk(),
        ed.public_key().to_jwk()
    );
    let config = format!(
        r#"{{"issuers":[{{"issuer":"{ISSUER}","audiences":["bench"],"jwks":{jwks}}}],
            "policy":{{"cluster":"p"}},
            "providers":[{{"name":"openai","api":"openai","cluster":"c","key_env":"K"}}]}}"#
    );
    let config = Config::parse(config.as_bytes()).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let rt = Runtime::new(config, |k| match k {
        "CHOKEPOINT_UUID_SALT" => Some("bench-salt-0123456789".into()),
        _ => Some("sk-bench".into()),
    })
    .unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let state = AuthState::new(&rt);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = || {
        Claims::create(jwt_simple::prelude::Duration::from_hours(1))
            .with_issuer(ISSUER)
            .with_audience("bench")
            .with_subject("alice")
    };
    let tokens = [
        ("RS256", rs.sign(claims()).unwrap_or_default()),
        ("ES256", es.sign(claims()).unwrap_or_default()),
        ("EdDSA", ed.sign(claims()).unwrap_or_default()),
    ];
    let verifier = Verifier {
        issuers: &rt.config.issuers,
        keys: &state.keys,
        max_token_bytes: rt.config.max_token_bytes,
        skew: rt.config.clock_skew,
    };
    let target = if cfg!(target_family = "wasm") {
        "wasm32-wasip1 (V8)"
    } else {
        "native"
    };
    for (alg, token) in &tokens {
        // Batches, and their median: on a shared VM one batch can take three times
        // another, and the median holds still where a single long average does not.
        let mut batches: Vec<f64> = (0..15)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..8 {
                    if verifier.verify(token, now).is_err() {
                        eprintln!("{alg}: token did not verify");
                        std::process::exit(1);
                    }
                }
                start.elapsed().as_secs_f64() * 1e6 / 8.0
            })
            .collect();
        batches.sort_by(f64::total_cmp);
        let cold_us = batches.get(batches.len() / 2).copied().unwrap_or(0.0);
        let cold_min_us = batches.first().copied().unwrap_or(0.0);

        let mut cache = TokenCache::new(10_000, 300, 60);
        if let Ok(v) = verifier.verify(token, now) {
            let verified = Verified {
                user: String::new(),
                token: v,
            };
            cache.insert(cache.key(token), verified, now);
        }
        let warm_iters = 20_000u32;
        let start = Instant::now();
        let mut hits = 0u32;
        for _ in 0..warm_iters {
            let key = cache.key(token);
            if cache.get(&key, now).is_some() {
                hits += 1;
            }
        }
        let warm_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(warm_iters);
        assert_eq!(hits, warm_iters);
        println!(
            r#"{{"target":"{target}","alg":"{alg}","token_bytes":{},"cold_us":{cold_us:.1},"cold_min_us":{cold_min_us:.1},"warm_us":{warm_us:.2}}}"#,
            token.len()
        );
    }
}
