//! The `telemetry:` section: where records go besides the access log and the ledger.
//! `otlp` sends each one as an OpenTelemetry log record, by Envoy's own OpenTelemetry
//! access logger, to a collector (docs/telemetry.md).

use super::load::Ctx;
use super::{Otlp, PolicyError};
use crate::policy_file::RawOtlp;
use crate::url::Url;

/// OTLP's standard gRPC port, where a collector listens unless told otherwise.
const OTLP_GRPC_PORT: u16 = 4317;
/// Envoy's own defaults, written out so the rendered file says what runs.
const DEFAULT_FLUSH_MS: u64 = 1000;
const DEFAULT_BUFFER_BYTES: u32 = 16 * 1024;
/// A record is about 2 KB; past this much held, Envoy's memory is the collector's buffer.
const MAX_BUFFER_BYTES: u32 = 4 << 20;

pub(super) fn otlp(cx: &Ctx, raw: RawOtlp) -> Result<Otlp, PolicyError> {
    let f = |n: &str| format!("telemetry.otlp.{n}");
    let url = Url::parse(&raw.endpoint).map_err(|m| cx.err(f("endpoint"), m))?;
    if url.path.ends_with("/v1/logs") {
        return Err(cx.err(
            f("endpoint"),
            "is the collector's base URL: logs go to <endpoint>/v1/logs, so leave /v1/logs out",
        ));
    }
    let grpc_port = raw.grpc_port.unwrap_or(OTLP_GRPC_PORT);
    if grpc_port == 0 {
        return Err(cx.err(f("grpc_port"), "must be a port (1-65535)"));
    }
    let service_name = raw.service_name.unwrap_or_else(|| "chokepoint".into());
    let name_ok = !service_name.is_empty()
        && service_name.len() <= 64
        && service_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        return Err(cx.err(
            f("service_name"),
            format!("{service_name:?} must be 1-64 characters of a-z, A-Z, 0-9, -, _ and ."),
        ));
    }
    let flush_ms = raw.flush_ms.unwrap_or(DEFAULT_FLUSH_MS);
    if !(10..=60_000).contains(&flush_ms) {
        return Err(cx.err(f("flush_ms"), "must be between 10 and 60000"));
    }
    let buffer_bytes = raw.buffer_bytes.unwrap_or(DEFAULT_BUFFER_BYTES);
    if !(1024..=MAX_BUFFER_BYTES).contains(&buffer_bytes) {
        return Err(cx.err(
            f("buffer_bytes"),
            format!("must be between 1024 and {MAX_BUFFER_BYTES}"),
        ));
    }
    Ok(Otlp {
        url,
        grpc_port,
        service_name,
        flush_ms,
        buffer_bytes,
    })
}
