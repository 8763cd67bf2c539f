//! The few JSON reading tools the MCP modules share: members read as raw text (so an
//! argument or a tool definition is never materialised), a member's presence told apart
//! from `null`, and where a raw value lies in the bytes it was read from.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// For `#[serde(default, borrow, deserialize_with = "present")]`: a member that is
/// there, `null` included, is `Some`; `Option<&RawValue>` alone reads `null` as absent.
pub(super) fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

/// `text` read as a JSON object into `T`. Derived structs also accept a JSON array
/// (their members by position), so anything not opening with `{` is refused first.
/// Duplicate members `T` reads are an error: the gateway must never read one and the
/// server the other.
pub(super) fn object<'a, T: Deserialize<'a>>(text: &'a [u8]) -> Option<T> {
    if first_byte(text) != Some(b'{') {
        return None;
    }
    serde_json::from_slice(text).ok()
}

/// The first byte that is not JSON whitespace.
pub(super) fn first_byte(text: &[u8]) -> Option<u8> {
    text.iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// A JSON string's value; `None` for any other JSON value.
pub(super) fn string(raw: &RawValue) -> Option<String> {
    serde_json::from_str(raw.get()).ok()
}

/// Where `part`, a slice of `whole`, starts in it.
pub(super) fn offset(whole: &[u8], part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (start.checked_add(part.len())? <= whole.len()).then_some(start)
}
