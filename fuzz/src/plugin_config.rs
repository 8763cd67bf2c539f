//! The plugin configuration Envoy hands the filter at load (`filter/src/config/mod.rs` with
//! its providers, routes, prices and inline JWKS), the key injector's configuration
//! (`filter/src/providers/key_injection.rs`), and the runtime built from an accepted one.
//!
//! Invariants: a configuration is the gateway's or the injector's, never both
//! (`is_injector_config` decides); every error names a field; an accepted configuration
//! builds its runtime and per-VM state; the injector's header edits set exactly one key
//! and never remove the header they set; pricing any usage of any listed model saturates
//! rather than overflowing.

use chokepoint_filter::accounting::pricing::cost_micros;
use chokepoint_filter::accounting::usage::report::Usage;
use chokepoint_filter::auth_state::AuthState;
use chokepoint_filter::config::Config;
use chokepoint_filter::providers::key_injection::{is_injector_config, Injector};
use chokepoint_filter::runtime::Runtime;

use crate::fixtures;

const HUGE: Usage = Usage {
    input_tokens: u64::MAX,
    output_tokens: u64::MAX,
    cached_input_tokens: u64::MAX,
    reasoning_tokens: u64::MAX,
    cache_creation_input_tokens: u64::MAX,
    cache_write_1h_input_tokens: u64::MAX,
};

pub fn run(data: &[u8]) {
    let injector_shaped = is_injector_config(data);
    match Config::parse(data) {
        Ok(config) => {
            assert!(!injector_shaped, "both a gateway and an injector config");
            let models: Vec<String> = config
                .routes
                .iter()
                .flat_map(|r| r.routes.iter().map(|r| r.pattern.clone()))
                .collect();
            for model in &models {
                if let Some(price) = config.prices.lookup(model) {
                    let _ = cost_micros(&HUGE, price);
                    let _ = cost_micros(&Usage::default(), price);
                }
            }
            if let Ok(rt) = Runtime::new(config, fixtures::env) {
                let _ = AuthState::new(&rt);
            }
        }
        Err(e) => assert!(!e.field.is_empty() && !e.message.is_empty(), "{e:?}"),
    }
    match Injector::parse(data, fixtures::env) {
        Ok(injector) => {
            assert!(injector_shaped, "an injector config not recognised as one");
            let text = crate::text(data);
            // Provider names are JSON strings of the input; try every string-ish token.
            for name in text.split('"').take(64) {
                if let Some(edits) = injector.headers_for(name) {
                    let set: Vec<_> = edits.iter().filter(|(_, v)| v.is_some()).collect();
                    assert_eq!(set.len(), 1, "{edits:?}");
                    let header = set[0].0;
                    assert_eq!(
                        edits.iter().filter(|(h, _)| *h == header).count(),
                        1,
                        "the key header is also removed: {edits:?}"
                    );
                }
            }
        }
        Err(e) => assert!(!e.field.is_empty() && !e.message.is_empty(), "{e:?}"),
    }
}
