//! Sharing fetched JWKS across Envoy workers through proxy-wasm shared data, so that the
//! identity provider sees one fetch per refresh whatever the worker count.
//!
//! Per issuer, three shared-data keys:
//! - `chokepoint.jwks.<issuer>`: the last good JWKS, as `<fetched_at_secs>\n<json>`;
//! - `chokepoint.jwks_lease.<issuer>`: `<until_secs>`; whoever moves it forward with a
//!   compare-and-swap is the one worker that fetches until then;
//! - `chokepoint.jwks_refetch.<issuer>`: `<until_secs>`; the same gate for refetches
//!   triggered by a token with an unknown `kid`, at most one a minute.

/// Compare-and-swap storage shared by every VM of the plugin (Envoy's shared data).
pub trait SharedData {
    /// The value and its version; version 0 when the key does not exist.
    fn get_shared(&self, key: &str) -> (Option<Vec<u8>>, u32);
    /// Writes when the version still matches (`cas` 0: unconditionally).
    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), CasMismatch>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasMismatch;

/// How long one fetcher holds the lease before another worker may try.
pub const LEASE_SECS: u64 = 10;
/// Pause after a failed fetch before the next attempt, while no key set exists yet.
pub const RETRY_SECS_NO_KEYS: u64 = 2;
/// Pause after a failed refresh while a good key set is in use.
pub const RETRY_SECS_WITH_KEYS: u64 = 30;
/// At most one unknown-`kid` refetch per issuer in this window.
pub const REFETCH_INTERVAL_SECS: u64 = 60;

pub fn doc_key(issuer: &str) -> String {
    format!("chokepoint.jwks.{issuer}")
}

fn lease_key(issuer: &str) -> String {
    format!("chokepoint.jwks_lease.{issuer}")
}

fn refetch_key(issuer: &str) -> String {
    format!("chokepoint.jwks_refetch.{issuer}")
}

/// A JWKS as stored in shared data.
#[derive(Debug, PartialEq, Eq)]
pub struct Doc {
    pub fetched_at: u64,
    pub jwks: Vec<u8>,
    pub version: u32,
}

pub fn read_doc(sd: &dyn SharedData, issuer: &str) -> Option<Doc> {
    let (value, version) = sd.get_shared(&doc_key(issuer));
    let value = value?;
    let nl = value.iter().position(|b| *b == b'\n')?;
    let (head, rest) = value.split_at(nl);
    let fetched_at = std::str::from_utf8(head).ok()?.parse().ok()?;
    Some(Doc {
        fetched_at,
        jwks: rest.get(1..).unwrap_or_default().to_vec(),
        version,
    })
}

/// Stores a good JWKS for every worker.
pub fn publish(sd: &mut dyn SharedData, issuer: &str, now: u64, jwks: &[u8]) {
    let mut value = Vec::with_capacity(jwks.len() + 12);
    value.extend_from_slice(now.to_string().as_bytes());
    value.push(b'\n');
    value.extend_from_slice(jwks);
    // Unconditional: the newest good set wins, and a lost race only means a fresher one.
    let _ = sd.set_shared(&doc_key(issuer), &value, 0);
}

/// Whether this worker should fetch now: the keys are missing or due for refresh, and it
/// won the lease. `doc` is what shared data holds now.
pub fn should_fetch(
    sd: &mut dyn SharedData,
    issuer: &str,
    doc: Option<&Doc>,
    refresh_secs: u64,
    now: u64,
) -> bool {
    let due = doc.is_none_or(|d| now >= d.fetched_at.saturating_add(refresh_secs));
    due && take_gate(sd, &lease_key(issuer), now, LEASE_SECS)
}

/// After a failed fetch: hold everyone off for a while, shorter while no keys exist.
pub fn backoff(sd: &mut dyn SharedData, issuer: &str, have_keys: bool, now: u64) {
    let pause = if have_keys {
        RETRY_SECS_WITH_KEYS
    } else {
        RETRY_SECS_NO_KEYS
    };
    let _ = sd.set_shared(&lease_key(issuer), (now + pause).to_string().as_bytes(), 0);
}

/// After a successful fetch: the next one is governed by the refresh time, not the lease.
pub fn release(sd: &mut dyn SharedData, issuer: &str) {
    let _ = sd.set_shared(&lease_key(issuer), b"0", 0);
}

/// Whether this request may refetch the JWKS for an unknown `kid` (one per issuer a minute).
pub fn may_refetch(sd: &mut dyn SharedData, issuer: &str, now: u64) -> bool {
    take_gate(sd, &refetch_key(issuer), now, REFETCH_INTERVAL_SECS)
}

/// Moves a `<until_secs>` gate to `now + hold` if it has passed; true for exactly one
/// contender, thanks to the compare-and-swap.
fn take_gate(sd: &mut dyn SharedData, key: &str, now: u64, hold: u64) -> bool {
    let (value, mut version) = sd.get_shared(key);
    let until: u64 = value
        .as_deref()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if until > now {
        return false;
    }
    if version == 0 {
        // Create the key first, so the real claim below is a compare-and-swap too.
        let _ = sd.set_shared(key, b"0", 0);
        match sd.get_shared(key) {
            (Some(v), ver) if v == b"0" => version = ver,
            _ => return false,
        }
    }
    sd.set_shared(key, (now + hold).to_string().as_bytes(), version)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Shared data with Envoy's semantics: versions start at 1 and grow on every write.
    #[derive(Default)]
    pub struct FakeShared(HashMap<String, (Vec<u8>, u32)>);

    impl SharedData for FakeShared {
        fn get_shared(&self, key: &str) -> (Option<Vec<u8>>, u32) {
            match self.0.get(key) {
                Some((v, ver)) => (Some(v.clone()), *ver),
                None => (None, 0),
            }
        }
        fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), CasMismatch> {
            let cur = self.0.get(key).map_or(0, |(_, v)| *v);
            if cas != 0 && cas != cur {
                return Err(CasMismatch);
            }
            self.0.insert(key.to_string(), (value.to_vec(), cur + 1));
            Ok(())
        }
    }

    #[test]
    fn one_fetcher_per_refresh_whatever_the_worker_count() {
        let mut sd = FakeShared::default();
        let workers = 8;
        // Start-up: no keys anywhere; exactly one worker wins.
        let winners = (0..workers)
            .filter(|_| should_fetch(&mut sd, "i", None, 300, 1000))
            .count();
        assert_eq!(winners, 1);
        publish(&mut sd, "i", 1000, br#"{"keys":[]}"#);
        release(&mut sd, "i");
        let doc = read_doc(&sd, "i").unwrap();
        assert_eq!(doc.fetched_at, 1000);
        assert_eq!(doc.jwks, br#"{"keys":[]}"#);
        // Not due yet: nobody fetches.
        let winners = (0..workers)
            .filter(|_| should_fetch(&mut sd, "i", Some(&doc), 300, 1299))
            .count();
        assert_eq!(winners, 0);
        // Due: one fetch again.
        let winners = (0..workers)
            .filter(|_| should_fetch(&mut sd, "i", Some(&doc), 300, 1300))
            .count();
        assert_eq!(winners, 1);
    }

    #[test]
    fn failures_back_off_and_a_stuck_lease_expires() {
        let mut sd = FakeShared::default();
        assert!(should_fetch(&mut sd, "i", None, 300, 100));
        // The fetcher never answered: the lease expires after LEASE_SECS.
        assert!(!should_fetch(&mut sd, "i", None, 300, 100 + LEASE_SECS - 1));
        assert!(should_fetch(&mut sd, "i", None, 300, 100 + LEASE_SECS));
        backoff(&mut sd, "i", false, 200);
        assert!(!should_fetch(
            &mut sd,
            "i",
            None,
            300,
            200 + RETRY_SECS_NO_KEYS - 1
        ));
        assert!(should_fetch(
            &mut sd,
            "i",
            None,
            300,
            200 + RETRY_SECS_NO_KEYS
        ));
    }

    #[test]
    fn unknown_kid_refetch_at_most_once_a_minute() {
        let mut sd = FakeShared::default();
        assert!(may_refetch(&mut sd, "i", 1000));
        assert!(!may_refetch(&mut sd, "i", 1001));
        assert!(!may_refetch(&mut sd, "i", 1059));
        assert!(may_refetch(&mut sd, "i", 1060));
        assert!(may_refetch(&mut sd, "other", 1001), "per issuer");
    }

    #[test]
    fn garbage_in_shared_data_is_not_a_doc() {
        let mut sd = FakeShared::default();
        let _ = sd.set_shared(&doc_key("i"), b"no newline", 0);
        assert_eq!(read_doc(&sd, "i"), None);
        let _ = sd.set_shared(&doc_key("i"), b"abc\n{}", 0);
        assert_eq!(read_doc(&sd, "i"), None);
    }
}
