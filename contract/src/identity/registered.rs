//! The registered claims read strictly from a token's raw payload, before any key is
//! touched. jwt-simple is lenient with odd numbers (an `exp` of -1 is accepted there and
//! never expires), so the time claims must be non-negative integers in range before the
//! token goes anywhere near it; and `iss` picks the issuer whose keys check it.

use serde::Deserialize;

/// Later than any real token expiry (year 3000); larger values are garbage or an attack.
pub const MAX_TIMESTAMP: u64 = 32_503_680_000;

/// What the payload's registered claims say, unverified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub iss: String,
    pub exp: u64,
}

/// Why the registered claims are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisteredRefusal {
    /// Not a JSON object, no `exp`, a time claim that is not a whole number in range,
    /// an `iss` that is not a string.
    Malformed,
    /// No `iss` at all: no issuer to check it against.
    NoIssuer,
}

#[derive(Deserialize)]
struct Raw {
    iss: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    iat: Option<serde_json::Value>,
}

/// Reads the decoded (base64url-decoded) payload of a JWT.
pub fn read(payload: &[u8]) -> Result<Registered, RegisteredRefusal> {
    let raw: Raw = serde_json::from_slice(payload).map_err(|_| RegisteredRefusal::Malformed)?;
    let timestamp = |v: &serde_json::Value| {
        v.as_u64()
            .filter(|t| *t <= MAX_TIMESTAMP)
            .ok_or(RegisteredRefusal::Malformed)
    };
    let exp = timestamp(raw.exp.as_ref().ok_or(RegisteredRefusal::Malformed)?)?;
    for t in [&raw.nbf, &raw.iat].into_iter().flatten() {
        timestamp(t)?;
    }
    let iss = match raw.iss {
        Some(serde_json::Value::String(s)) => s,
        Some(_) => return Err(RegisteredRefusal::Malformed),
        None => return Err(RegisteredRefusal::NoIssuer),
    };
    Ok(Registered { iss, exp })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strictly() {
        let ok = |iss: &str, exp: u64| {
            Ok(Registered {
                iss: iss.into(),
                exp,
            })
        };
        let cases: [(&str, Result<Registered, RegisteredRefusal>); 11] = [
            (r#"{"iss":"i","exp":5}"#, ok("i", 5)),
            (r#"{"iss":"i","exp":5,"nbf":1,"iat":1}"#, ok("i", 5)),
            (r#"{"iss":"i","exp":32503680000}"#, ok("i", MAX_TIMESTAMP)),
            (
                r#"{"iss":"i","exp":32503680001}"#,
                Err(RegisteredRefusal::Malformed),
            ),
            (r#"{"iss":"i"}"#, Err(RegisteredRefusal::Malformed)),
            (r#"{"iss":"i","exp":-1}"#, Err(RegisteredRefusal::Malformed)),
            (
                r#"{"iss":"i","exp":1e30}"#,
                Err(RegisteredRefusal::Malformed),
            ),
            (
                r#"{"iss":"i","exp":"2099"}"#,
                Err(RegisteredRefusal::Malformed),
            ),
            (
                r#"{"iss":"i","exp":5,"nbf":-3}"#,
                Err(RegisteredRefusal::Malformed),
            ),
            (r#"{"iss":7,"exp":5}"#, Err(RegisteredRefusal::Malformed)),
            (r#"{"exp":5}"#, Err(RegisteredRefusal::NoIssuer)),
        ];
        for (payload, want) in cases {
            assert_eq!(read(payload.as_bytes()), want, "{payload}");
        }
        assert_eq!(read(b"[1]"), Err(RegisteredRefusal::Malformed));
        assert_eq!(read(b"\xff"), Err(RegisteredRefusal::Malformed));
    }
}
