//! The small surfaces the logic needs from Envoy: [`Host`] for a request, [`RootHost`] for
//! the root context's background work. The wasm layer implements them with proxy-wasm
//! hostcalls; tests implement them with a fake that records what happened.

use std::time::Duration;

use crate::accounting::telemetry::Outcome;
use crate::identity::jwks_sync::SharedData;
use crate::identity::jwt::AuthError;
use crate::providers::reply::Reply;

/// A hostcall failed. Carries only a static description: host errors end as a 500 reply
/// and a counter, never as a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub &'static str);

/// Time and randomness, from the host.
pub trait Clock {
    fn now_secs(&self) -> u64;
    fn now_ms(&self) -> u64;
    /// A fresh random id (128 bits, hex) from the host's CSPRNG.
    fn random_id(&self) -> String;
}

pub trait Host: SharedData + Clock {
    fn request_headers(&self) -> Result<HeaderList, HostError>;
    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> Result<(), HostError>;
    fn request_body(&self, size: usize) -> Result<Vec<u8>, HostError>;
    /// Starts an HTTP callout; the answer arrives later with the returned token.
    fn dispatch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<u32, HostError>;
    fn send_reply(&mut self, reply: &Reply) -> Result<(), HostError>;
    /// A header of the callout answer being handled (only while a step's `answered`
    /// runs).
    fn callout_header(&self, name: &str) -> Option<String>;
    fn resume_request(&mut self) -> Result<(), HostError>;
    /// Lets a response paused in its body callback go on (after a guardrail service
    /// judged the answer held for it).
    fn resume_response(&mut self) -> Result<(), HostError>;
    fn count(&mut self, counter: Counter);
    /// `:status` and `content-type` of the response.
    fn response_status_and_type(&self) -> (Option<u32>, Option<String>);
    fn response_header(&self, name: &str) -> Option<String>;
    fn response_body(&self, size: usize) -> Result<Vec<u8>, HostError>;
    /// Envoy's response flags once the exchange is over (`None`: unreadable). Zero: it
    /// ended without a reset, timeout or hang-up.
    fn response_flags(&self) -> Option<u64>;
    fn set_request_body(&mut self, body: &[u8]) -> Result<(), HostError>;
    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError>;
    /// Replaces the response body Envoy holds now (this callback's chunk, or all it
    /// buffered), its first `size` bytes, with `bytes`. Always from the start: Envoy
    /// refuses a start inside the buffer, and the SDK would trap on the refusal.
    fn replace_response_body(&mut self, size: usize, bytes: &[u8]) -> Result<(), HostError>;
    /// Filter state the access log can print (`wasm.<name>`).
    fn set_filter_state(&mut self, name: &str, value: &[u8]);
    /// Hands a usage record to the root's delivery queue; false when it could not.
    fn enqueue_usage(&mut self, record: &[u8]) -> bool;
    /// The usage stats of one finished exchange (see `telemetry`).
    fn record_outcome(&mut self, outcome: &Outcome);
}

/// A header map as read once from the host: every name and value in one buffer, so
/// reading a request's headers costs two allocations, not two per header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderList {
    text: String,
    /// Where each pair's name and value end in `text`; a pair starts where the one
    /// before it ended.
    ends: Vec<(usize, usize)>,
}

impl HeaderList {
    pub fn with_capacity(pairs: usize, bytes: usize) -> HeaderList {
        HeaderList {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(pairs),
        }
    }

    pub fn push(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let name_end = self.text.len();
        self.text.push_str(value);
        self.ends.push((name_end, self.text.len()));
    }

    /// The pairs in the host's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.ends.iter().map(move |&(name_end, value_end)| {
            let name = self.text.get(start..name_end).unwrap_or_default();
            let value = self.text.get(name_end..value_end).unwrap_or_default();
            start = value_end;
            (name, value)
        })
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for HeaderList {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> HeaderList {
        let mut list = HeaderList::default();
        for (name, value) in pairs {
            list.push(name.as_ref(), value.as_ref());
        }
        list
    }
}

/// 128 bits as the 32 lowercase hex digits of a request id (what `format!("{n:032x}")`
/// writes, without the formatting machinery: one per request).
pub fn hex_id(n: u128) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..32)
        .rev()
        .map(|i| {
            let nibble = ((n >> (i * 4)) & 0xf) as usize;
            char::from(HEX.get(nibble).copied().unwrap_or(b'0'))
        })
        .collect()
}

/// What the root context's background work (key refresh, usage delivery, lease renewal;
/// see `background`) needs: callouts, the shared usage queue, stats, shared data, time.
pub trait RootHost: SharedData + Clock {
    /// Starts an HTTP callout (no body: a GET); the answer arrives later with the token.
    fn call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError>;
    /// The next item of the shared usage queue every worker feeds, if any.
    fn dequeue_usage(&mut self) -> Option<Vec<u8>>;
    /// Puts an item straight back into the shared queue; false when it could not.
    fn requeue_usage(&mut self, item: &[u8]) -> bool;
    /// Hands an item to this worker's outbox, as a request's record goes; false when it
    /// could not.
    fn push_usage(&mut self, item: &[u8]) -> bool;
    /// Moves this worker's outbox into the shared queue; false when an enqueue failed.
    fn flush_outbox(&mut self) -> bool;
    fn add(&mut self, counter: Counter, n: u64);
}

/// Everything the filter counts. One Envoy stat each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    AuthFailed(AuthError),
    Allowed,
    Denied,
    PolicyUnavailable,
    /// Decisions asked a second time, of another instance, after the first callout got
    /// no answer from the policy service.
    PolicyRetried,
    BadRequest,
    HostFailure,
    TokenCacheHit,
    TokenCacheMiss,
    JwksFetched,
    JwksFetchFailed,
    UsageQueueFailure,
    FailedOpen,
    UsageDelivered,
    UsageDeliveryFailed,
    /// Records the ledger refused as invalid, and dropped from delivery (each stays in the
    /// access log): never retried forever.
    UsageDeadLettered,
    LeaseServed,
    LeaseRenewed,
    /// The aggregate MCP endpoint could not reach a server (it was left out of a list,
    /// or a call to it refused).
    McpUpstreamFailed,
    /// A guardrail blocked a request (or masked values in it).
    GuardrailBlocked,
    GuardrailMasked,
    /// A guardrail service could not judge a request (down, slow, or no verdict), whatever
    /// its failure mode then did.
    GuardrailUnavailable,
}

impl Counter {
    pub fn all() -> Vec<Counter> {
        let mut all: Vec<Counter> = AuthError::ALL
            .iter()
            .map(|e| Counter::AuthFailed(*e))
            .collect();
        all.extend([
            Counter::Allowed,
            Counter::Denied,
            Counter::PolicyUnavailable,
            Counter::PolicyRetried,
            Counter::BadRequest,
            Counter::HostFailure,
            Counter::TokenCacheHit,
            Counter::TokenCacheMiss,
            Counter::JwksFetched,
            Counter::JwksFetchFailed,
            Counter::UsageQueueFailure,
            Counter::FailedOpen,
            Counter::UsageDelivered,
            Counter::UsageDeliveryFailed,
            Counter::UsageDeadLettered,
            Counter::LeaseServed,
            Counter::LeaseRenewed,
            Counter::McpUpstreamFailed,
            Counter::GuardrailBlocked,
            Counter::GuardrailMasked,
            Counter::GuardrailUnavailable,
        ]);
        all
    }

    /// The stat name, as Envoy shows it (prefixed `wasmcustom.`).
    pub fn stat_name(self) -> String {
        match self {
            Counter::AuthFailed(e) => format!("chokepoint.auth_failed.{}", e.code()),
            Counter::Allowed => "chokepoint.authorize.allowed".into(),
            Counter::Denied => "chokepoint.authorize.denied".into(),
            Counter::PolicyUnavailable => "chokepoint.authorize.unavailable".into(),
            Counter::PolicyRetried => "chokepoint.authorize.retried".into(),
            Counter::BadRequest => "chokepoint.bad_request".into(),
            Counter::HostFailure => "chokepoint.host_failure".into(),
            Counter::TokenCacheHit => "chokepoint.token_cache.hit".into(),
            Counter::TokenCacheMiss => "chokepoint.token_cache.miss".into(),
            Counter::JwksFetched => "chokepoint.jwks.fetched".into(),
            Counter::JwksFetchFailed => "chokepoint.jwks.fetch_failed".into(),
            Counter::UsageQueueFailure => "chokepoint.usage.queue_failed".into(),
            Counter::FailedOpen => "chokepoint.authorize.failed_open".into(),
            Counter::UsageDelivered => "chokepoint.usage.delivered_records".into(),
            Counter::UsageDeliveryFailed => "chokepoint.usage.delivery_failed".into(),
            Counter::UsageDeadLettered => "chokepoint.usage.dead_lettered".into(),
            Counter::LeaseServed => "chokepoint.authorize.lease_served".into(),
            Counter::LeaseRenewed => "chokepoint.authorize.lease_renewed".into(),
            Counter::McpUpstreamFailed => "chokepoint.mcp.upstream_failed".into(),
            Counter::GuardrailBlocked => "chokepoint.guardrail.blocked".into(),
            Counter::GuardrailMasked => "chokepoint.guardrail.masked".into(),
            Counter::GuardrailUnavailable => "chokepoint.guardrail.unavailable".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderList;

    #[test]
    fn a_header_list_gives_back_its_pairs_in_order() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[(":path", "/v1/chat/completions")],
            &[
                ("x-empty", ""),
                ("", "odd"),
                ("a", "caf\u{e9}"),
                ("a", "again"),
            ],
        ];
        for pairs in cases {
            let list: HeaderList = pairs.iter().copied().collect();
            let back: Vec<(&str, &str)> = list.iter().collect();
            assert_eq!(&back, pairs);
            assert_eq!(list.len(), pairs.len());
            assert_eq!(list.is_empty(), pairs.is_empty());
        }
    }

    #[test]
    fn hex_id_writes_what_format_does() {
        for n in [
            0,
            1,
            0xfeed,
            u128::MAX,
            1 << 127,
            0x0123_4567_89ab_cdef_0011_2233_4455_6677,
        ] {
            assert_eq!(super::hex_id(n), format!("{n:032x}"));
        }
    }
}
