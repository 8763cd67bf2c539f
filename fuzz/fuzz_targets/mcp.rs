#![no_main]
// Thin wrapper: the body is chokepoint_fuzz::mcp::run, shared with the regression tests.
libfuzzer_sys::fuzz_target!(|data: &[u8]| chokepoint_fuzz::mcp::run(data));
