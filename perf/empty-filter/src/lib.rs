//! An HTTP filter that does nothing: every callback continues. Loaded into the same Envoy
//! as bare Envoy's reference, it shows what a V8 wasm context per request costs before
//! a filter does any work, the floor under chokepoint's identity-only row.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(EmptyRoot) });
}}

struct EmptyRoot;

impl Context for EmptyRoot {}

impl RootContext for EmptyRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Empty))
    }
}

struct Empty;

impl Context for Empty {}

impl HttpContext for Empty {}
