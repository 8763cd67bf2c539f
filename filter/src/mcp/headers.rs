//! MCP 2026-07-28's Standard Request Headers (SEP-2243): `Mcp-Method` and `Mcp-Name`
//! mirror the body so that load balancers can route without reading it, and
//! `MCP-Protocol-Version` must equal the body's `_meta` protocol version
//! (https://modelcontextprotocol.io/specification/2026-07-28/basic/transports/streamable-http,
//! "Standard Request Headers", "Value Encoding", "Server Validation").
//!
//! The gateway always decides on the body; the headers are only checked against it. A
//! header that disagrees is refused in every revision, since a component that trusts the
//! header would act on a different request than the server runs (the spec's
//! confused-deputy case).

use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use super::error::{RpcError, HEADER_MISMATCH};
use super::message::{Kind, Message};

/// The first revision whose requests carry the mirrored headers.
const MIRRORING_SINCE: &str = "2026-07-28";
/// Values quoted back in an error are cut to this many characters.
const MAX_QUOTED_CHARS: usize = 64;
const SENTINEL_START: &str = "=?base64?";
const SENTINEL_END: &str = "?=";

/// The sentinel's padding is taken either way: the decoded value is compared with the
/// body, so leniency here lets no mismatch through.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The request headers that mirror the body, as sent (raw values).
#[derive(Debug, Clone, Default)]
pub struct Mirrored {
    pub protocol_version: Option<String>,
    pub method: Option<String>,
    pub name: Option<String>,
}

/// Whether `version` (an MCP-Protocol-Version value) is a revision that requires the mirrored headers (2026-07-28 or later; compare as dates YYYY-MM-DD; garbage -> false).
pub fn requires_mirroring(version: &str) -> bool {
    is_date(version) && version >= MIRRORING_SINCE
}

/// `YYYY-MM-DD` with a plausible month and day: then comparing the text compares dates.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let number = |r: std::ops::Range<usize>| s.get(r).and_then(|d| d.parse::<u8>().ok());
    b.len() == 10
        && digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && number(5..7).is_some_and(|m| (1..=12).contains(&m))
        && number(8..10).is_some_and(|d| (1..=31).contains(&d))
}

/// Decodes a value sent as `=?base64?<base64 of UTF-8>?=`; other values as they are. None: invalid encoding.
///
/// A plain value must be what a client may send plainly: visible ASCII, space and tab
/// (RFC 9110 field values); anything else had to be encoded ("Value Encoding").
pub fn decode(value: &str) -> Option<String> {
    if let Some(encoded) = value
        .strip_prefix(SENTINEL_START)
        .and_then(|v| v.strip_suffix(SENTINEL_END))
    {
        let bytes = BASE64.decode(encoded).ok()?;
        return String::from_utf8(bytes).ok();
    }
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        .then(|| value.to_owned())
}

/// Checks the headers against the body. For a version that requires mirroring: Mcp-Method required on every request and notification, Mcp-Name required for tools/call, prompts/get, resources/read; MCP-Protocol-Version must equal meta_protocol_version when the body has one. For any version: a header that is present must match the body (after decode), since the gateway's decisions are always taken on the body and a lying header is a confused-deputy attempt. Errors: HEADER_MISMATCH (-32020) with the request's id and a message in the spec's style ("Header mismatch: Mcp-Name header value 'a' does not match body value 'b'", values clipped to 64 printable chars).
///
/// Only `Mcp-Name` may be sent encoded: the spec gives `Mcp-Method` and
/// `MCP-Protocol-Version` no encoded form, so they are compared as sent. A body that
/// claims a mirroring revision in `_meta` without any `MCP-Protocol-Version` header is
/// refused as a missing header: leaving the header out must not skip the checks.
pub fn check(sent: &Mirrored, message: &Message) -> Result<(), RpcError> {
    let fail = |text: String| {
        Err(
            RpcError::new(HEADER_MISMATCH, format!("Header mismatch: {text}"))
                .with_id(message.id.as_deref()),
        )
    };
    let version = sent.protocol_version.as_deref();
    match (version, message.meta_protocol_version.as_deref()) {
        (Some(header), Some(body)) if header != body => {
            return fail(mismatch("MCP-Protocol-Version", header, body))
        }
        (None, Some(body)) if requires_mirroring(body) => {
            return fail("required MCP-Protocol-Version header is missing".to_owned())
        }
        _ => {}
    }
    let mirroring = version.is_some_and(requires_mirroring);
    let method = message.method.as_deref();
    match (sent.method.as_deref(), method) {
        (Some(header), Some(body)) if header != body => {
            return fail(mismatch("Mcp-Method", header, body))
        }
        (Some(header), None) => {
            return fail(format!(
                "Mcp-Method header value '{}' but the body is a response",
                clip(header)
            ))
        }
        (None, Some(_)) if mirroring && message.kind != Kind::Response => {
            return fail("required Mcp-Method header is missing".to_owned())
        }
        _ => {}
    }
    let name_required = matches!(
        method,
        Some("tools/call" | "prompts/get" | "resources/read")
    );
    match (sent.name.as_deref(), message.name.as_deref()) {
        (Some(header), body) => {
            let Some(decoded) = decode(header) else {
                return fail(format!(
                    "Mcp-Name header value '{}' is neither plain visible ASCII nor valid =?base64?...?= UTF-8",
                    clip(header)
                ));
            };
            match body {
                Some(body) if decoded == body => {}
                Some(body) => return fail(mismatch("Mcp-Name", &decoded, body)),
                None => {
                    return fail(format!(
                        "Mcp-Name header value '{}' but {} names nothing",
                        clip(&decoded),
                        clip(method.unwrap_or("a response"))
                    ))
                }
            }
        }
        (None, Some(_)) if mirroring && name_required => {
            return fail("required Mcp-Name header is missing".to_owned())
        }
        _ => {}
    }
    Ok(())
}

fn mismatch(header: &str, sent: &str, body: &str) -> String {
    format!(
        "{header} header value '{}' does not match body value '{}'",
        clip(sent),
        clip(body)
    )
}

/// A value quoted in an error: printable ASCII only, and short.
fn clip(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_QUOTED_CHARS)
        .collect()
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
