//! Bearer-token verification (`filter/src/identity/jwt.rs`), the token sources that find the
//! token among the headers (`token_source.rs`) and the keys it is checked against
//! (`jwks.rs`, `keystore.rs`), under the fixed configuration of [`crate::fixtures`].
//!
//! Layout: byte 0 picks the mode (`% 4`):
//! - 0: the rest is the raw token;
//! - 1: the rest is request headers, `name: value` per line, handed to the token
//!   sources first;
//! - 2: the rest is `header-json \n payload-json`, signed HS256 with the HMAC issuer's
//!   secret, so the fuzzer reaches every claim check behind a good signature;
//! - 3: the same signed EdDSA with the key of `kid` `ed-1`.
//!
//! Invariants: a verified token names a configured issuer, a non-empty subject and an
//! expiry not yet past (with the configured skew); its tenant, cost centre and groups
//! are header-safe (no control characters, at most 256 bytes, groups without commas, at
//! most 64 of them); a token the sources found is non-empty and trimmed; `issuer_of`
//! agrees with the verified issuer.

use chokepoint_filter::config::Config;
use chokepoint_filter::identity::jwt::{issuer_of, AuthError, VerifiedToken, Verifier};
use chokepoint_filter::identity::keystore::KeyStore;
use chokepoint_filter::identity::token_source;

use crate::fixtures::{self, NOW};

struct State {
    config: Config,
    keys: KeyStore,
}

thread_local! {
    static STATE: State = {
        let config = Config::parse(fixtures::config_json().to_string().as_bytes())
            .expect("the fuzz configuration is valid");
        let hmac = [(fixtures::HMAC_ISSUER.to_owned(), fixtures::HMAC_SECRET.to_vec())]
            .into_iter()
            .collect();
        let keys = KeyStore::new(&config, hmac);
        State { config, keys }
    };
}

fn header_safe(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control)
}

fn check(state: &State, token: &str, result: &Result<VerifiedToken, AuthError>) {
    match result {
        Ok(v) => {
            let issuer = state
                .config
                .issuers
                .iter()
                .find(|i| i.issuer == v.issuer)
                .expect("verified by a configured issuer");
            assert!(!v.subject.is_empty());
            assert!(
                v.expires_at + state.config.clock_skew.as_secs() >= NOW,
                "an expired token verified: exp {}",
                v.expires_at
            );
            for claim in [&v.tenant, &v.cost_center].into_iter().flatten() {
                assert!(header_safe(claim), "claim {claim:?} is not header-safe");
            }
            assert!(v.groups.len() <= 64, "{} groups kept", v.groups.len());
            for g in &v.groups {
                assert!(header_safe(g) && !g.contains(','), "group {g:?} kept");
            }
            assert!(token.len() <= state.config.max_token_bytes);
            assert_eq!(issuer_of(token).as_deref(), Some(issuer.issuer.as_str()));
        }
        Err(e) => {
            assert!(!e.code().is_empty() && !e.message().is_empty());
            let _ = issuer_of(token);
        }
    }
}

fn verify(state: &State, token: &str) {
    let verifier = Verifier {
        issuers: &state.config.issuers,
        keys: &state.keys,
        max_token_bytes: state.config.max_token_bytes,
        skew: state.config.clock_skew,
    };
    let result = verifier.verify(token, NOW);
    check(state, token, &result);
}

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    STATE.with(|state| match mode % 4 {
        0 => verify(state, &crate::text(rest)),
        1 => {
            let text = crate::text(rest);
            let headers: Vec<(String, String)> = text
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim_start().to_owned()))
                .collect();
            if let Ok(token) = token_source::find(&state.config.token_sources, &headers) {
                assert!(
                    !token.is_empty() && token.trim() == token,
                    "token {token:?}"
                );
                verify(state, token);
            }
            let _ = token_source::header_names(&state.config.token_sources).count();
        }
        m => {
            let (header, payload) = crate::split_once(rest, b'\n');
            let token = if m == 2 {
                fixtures::sign_hs256(header, payload)
            } else {
                fixtures::sign_eddsa(header, payload)
            };
            verify(state, &token);
        }
    });
}
