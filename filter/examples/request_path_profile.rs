//! The request path's own work, step by step: one caller's requests driven through the
//! real steps against a host that only counts what it is asked, for callgrind
//! (`scripts/bench-steps` reads the instruction counts of each step's function from it).
//!
//! `request_path_profile full|identity N [--quiet]`: N measured requests after a warm-up
//! (the token verified once, the lease granted), with the shipped example's filter
//! configuration (`envoy/compose/envoy.yaml`: guardrails, attribution, output caps, the
//! upstream key injector) and leases of 64 slots as the benchmark runs it. `full` is an
//! OpenAI chat completion, non-streaming, admitted from a lease slot, its JSON answer
//! counted and its record written; `identity` is `mode: identity`. The measured requests
//! run inside `measured`, the function callgrind is told to count
//! (`--toggle-collect=request_path_profile::measured`). Prints, as JSON, the host calls per request by kind:
//! what each costs in Envoy (about 1,300 instructions) is not in the native count.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use chokepoint_filter::accounting::outbox::Outbox;
use chokepoint_filter::accounting::telemetry::{self, Outcome};
use chokepoint_filter::auth_state::AuthState;
use chokepoint_filter::config::Config;
use chokepoint_filter::flow::{Flow, Next};
use chokepoint_filter::host::{Clock, Counter, HeaderList, Host, HostError};
use chokepoint_filter::identity::jwks_sync::{CasMismatch, SharedData};
use chokepoint_filter::providers::key_injection::{Injector, PROVIDER_HEADER};
use chokepoint_filter::providers::reply::Reply;
use chokepoint_filter::runtime::Runtime;
use chokepoint_filter::wasm::header_pairs;
use jwt_simple::prelude::*;

const ENVOY_YAML: &str = include_str!("../../envoy/compose/envoy.yaml");
/// The answer, compacted as the benchmark's mock upstream writes it.
const ANSWER: &[u8] = include_bytes!("../fixtures/openai_chat.json");
const BODY: &[u8] = br#"{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":"Benchmark me."}]}"#;
const NOW_MS: u64 = 1_800_000_000_000;
const ISSUER: &str = "https://dev.chokepoint.local";

/// The hostcalls the wasm host makes, by the proxy-wasm ABI's names.
#[derive(Clone, Copy)]
enum Kind {
    GetCurrentTime,
    RandomGet,
    GetSharedData,
    SetSharedData,
    GetHeaderMapPairs,
    ReplaceHeaderMapValue,
    RemoveHeaderMapValue,
    GetBufferBytes,
    HttpCall,
    SendLocalResponse,
    GetHeaderMapValue,
    ContinueStream,
    IncrementMetric,
    RecordMetric,
    GetProperty,
    SetBufferBytes,
    SetProperty,
    EnqueueSharedQueue,
}

const KINDS: [&str; 18] = [
    "get_current_time",
    "random_get",
    "get_shared_data",
    "set_shared_data",
    "get_header_map_pairs",
    "replace_header_map_value",
    "remove_header_map_value",
    "get_buffer_bytes",
    "http_call",
    "send_local_response",
    "get_header_map_value",
    "continue_stream",
    "increment_metric",
    "record_metric",
    "get_property",
    "set_buffer_bytes",
    "set_property",
    "enqueue_shared_queue",
];

/// A host that answers as Envoy would and counts each call by the hostcall it makes.
struct CountingHost {
    /// The request's headers as Envoy serializes them for the filter.
    serialized_headers: Vec<u8>,
    response_headers: Vec<(String, String)>,
    outbox: Rc<RefCell<Outbox>>,
    calls: Rc<RefCell<[u64; KINDS.len()]>>,
    answer: Vec<u8>,
    /// Pausing callouts (no lease slot): each is answered with a lease.
    dispatched: u32,
}

impl CountingHost {
    // An array, not a map: the count's own cost falls inside the steps' counts.
    fn call(&self, kind: Kind) {
        if let Some(n) = self.calls.borrow_mut().get_mut(kind as usize) {
            *n += 1;
        }
    }
}

impl Clock for CountingHost {
    fn now_secs(&self) -> u64 {
        self.call(Kind::GetCurrentTime);
        NOW_MS / 1000
    }
    fn now_ms(&self) -> u64 {
        self.call(Kind::GetCurrentTime);
        NOW_MS
    }
    fn random_id(&self) -> String {
        // WASI random_get, then formatted in the filter as the wasm host does.
        self.call(Kind::RandomGet);
        chokepoint_filter::host::hex_id(jwt_simple::reexports::rand::random())
    }
}

impl SharedData for CountingHost {
    fn get_shared(&self, _key: &str) -> (Option<Vec<u8>>, u32) {
        self.call(Kind::GetSharedData);
        (None, 0)
    }
    fn set_shared(&mut self, _key: &str, _value: &[u8], _cas: u32) -> Result<(), CasMismatch> {
        self.call(Kind::SetSharedData);
        Ok(())
    }
}

fn find(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

impl Host for CountingHost {
    fn request_headers(&self) -> Result<HeaderList, HostError> {
        // As the wasm host reads them: the serialized map decoded into one list.
        self.call(Kind::GetHeaderMapPairs);
        header_pairs::parse_list(&self.serialized_headers).ok_or(HostError("header map"))
    }
    fn set_request_header(&mut self, _name: &str, value: Option<&str>) -> Result<(), HostError> {
        self.call(if value.is_some() {
            Kind::ReplaceHeaderMapValue
        } else {
            Kind::RemoveHeaderMapValue
        });
        Ok(())
    }
    fn request_body(&self, size: usize) -> Result<Vec<u8>, HostError> {
        self.call(Kind::GetBufferBytes);
        Ok(BODY.iter().take(size).copied().collect())
    }
    fn dispatch(
        &mut self,
        _cluster: &str,
        _headers: &[(&str, &str)],
        _body: &[u8],
        _timeout: Duration,
    ) -> Result<u32, HostError> {
        self.call(Kind::HttpCall);
        self.dispatched += 1;
        Ok(self.dispatched)
    }
    fn send_reply(&mut self, reply: &Reply) -> Result<(), HostError> {
        self.call(Kind::SendLocalResponse);
        eprintln!("unexpected local reply {}: {}", reply.status, reply.body);
        std::process::exit(1);
    }
    fn callout_header(&self, name: &str) -> Option<String> {
        self.call(Kind::GetHeaderMapValue);
        (name == ":status").then(|| "200".to_string())
    }
    fn resume_request(&mut self) -> Result<(), HostError> {
        self.call(Kind::ContinueStream);
        Ok(())
    }
    fn resume_response(&mut self) -> Result<(), HostError> {
        self.call(Kind::ContinueStream);
        Ok(())
    }
    fn count(&mut self, _counter: Counter) {
        self.call(Kind::IncrementMetric);
    }
    fn response_status_and_type(&self) -> (Option<u32>, Option<String>) {
        // Two header reads, as the wasm host makes them.
        self.call(Kind::GetHeaderMapValue);
        self.call(Kind::GetHeaderMapValue);
        let status = find(&self.response_headers, ":status").and_then(|s| s.parse().ok());
        (status, find(&self.response_headers, "content-type"))
    }
    fn response_header(&self, name: &str) -> Option<String> {
        self.call(Kind::GetHeaderMapValue);
        find(&self.response_headers, name)
    }
    fn response_body(&self, size: usize) -> Result<Vec<u8>, HostError> {
        self.call(Kind::GetBufferBytes);
        Ok(self.answer.iter().take(size).copied().collect())
    }
    fn response_flags(&self) -> Option<u64> {
        self.call(Kind::GetProperty);
        Some(0)
    }
    fn set_request_body(&mut self, _body: &[u8]) -> Result<(), HostError> {
        self.call(Kind::SetBufferBytes);
        Ok(())
    }
    fn set_response_header(&mut self, _name: &str, _value: &str) -> Result<(), HostError> {
        self.call(Kind::ReplaceHeaderMapValue);
        Ok(())
    }
    fn remove_response_header(&mut self, _name: &str) -> Result<(), HostError> {
        self.call(Kind::RemoveHeaderMapValue);
        Ok(())
    }
    fn replace_response_body(&mut self, _size: usize, _bytes: &[u8]) -> Result<(), HostError> {
        self.call(Kind::SetBufferBytes);
        Ok(())
    }
    fn set_filter_state(&mut self, _name: &str, _value: &[u8]) {
        self.call(Kind::SetProperty);
    }
    fn enqueue_usage(&mut self, record: &[u8]) -> bool {
        // The worker's outbox, as the wasm host keeps it: a full bundle is one enqueue.
        if self.outbox.borrow_mut().push(record).is_some() {
            self.call(Kind::EnqueueSharedQueue);
        }
        true
    }
    fn record_outcome(&mut self, outcome: &Outcome) {
        // The wasm host's stat ids are cached per label set; one hostcall per stat.
        let (class, decision, provider, model) = telemetry::labels(outcome);
        std::hint::black_box((class, decision, provider, model));
        for (value, histogram) in telemetry::values(outcome)
            .into_iter()
            .zip(telemetry::IS_HISTOGRAM)
        {
            if value.is_some() {
                self.call(if histogram {
                    Kind::RecordMetric
                } else {
                    Kind::IncrementMetric
                });
            }
        }
    }
}

/// The gateway filter's and the key injector's configurations from the shipped example.
fn shipped_configs() -> Result<(serde_json::Value, String), String> {
    let mut values = ENVOY_YAML
        .lines()
        .filter_map(|l| l.trim().strip_prefix("value: "))
        .filter_map(|v| serde_json::from_str::<String>(v).ok());
    let filter = values
        .find(|v| v.starts_with("{\"issuers\""))
        .ok_or("no gateway filter configuration in envoy/compose/envoy.yaml")?;
    let injector = values
        .find(|v| v.starts_with("{\"inject_keys\""))
        .ok_or("no key injector configuration in envoy/compose/envoy.yaml")?;
    let filter = serde_json::from_str(&filter).map_err(|e| e.to_string())?;
    Ok((filter, injector))
}

fn compact(json: &[u8]) -> Vec<u8> {
    serde_json::from_slice::<serde_json::Value>(json)
        .and_then(|v| serde_json::to_vec(&v))
        .unwrap_or_else(|_| json.to_vec())
}

fn env(name: &str) -> Option<String> {
    // Every secret the configuration names, long enough for each check.
    Some(format!("profile-value-of-{name}-0123456789abcdef"))
}

struct Setup {
    rt: Rc<Runtime>,
    auth: Rc<RefCell<AuthState>>,
    injector: Injector,
    bearer: String,
    identity: bool,
}

fn setup(mode: &str) -> Result<Setup, String> {
    let (mut config, injector) = shipped_configs()?;
    let key = ES256KeyPair::generate().with_key_id("profile");
    let jwk: serde_json::Value =
        serde_json::from_str(&key.public_key().to_jwk()).map_err(|e| e.to_string())?;
    // The same issuer with its keys inline (no IdP to fetch them from).
    let issuer = config
        .pointer_mut("/issuers/0")
        .and_then(|i| i.as_object_mut())
        .ok_or("no issuer")?;
    issuer.remove("jwks_uri");
    issuer.insert("jwks".into(), serde_json::json!({ "keys": [jwk] }));
    let policy = config
        .get_mut("policy")
        .and_then(|p| p.as_object_mut())
        .ok_or("no policy")?;
    policy.insert("lease_slots".into(), 64.into());
    let identity = mode == "identity";
    if identity {
        let top = config.as_object_mut().ok_or("not an object")?;
        top.insert("mode".into(), "identity".into());
    }
    let config = Config::parse(config.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let rt = Rc::new(Runtime::new(config, env).map_err(|e| e.to_string())?);
    let auth = Rc::new(RefCell::new(AuthState::new(&rt)));
    let injector = Injector::parse(injector.as_bytes(), env).map_err(|e| e.to_string())?;
    let mut claims = Claims::create(jwt_simple::prelude::Duration::from_hours(1))
        .with_issuer(ISSUER)
        .with_audience("chokepoint")
        .with_subject("bench-user");
    // Valid at the host's clock.
    let now = NOW_MS / 1000;
    claims.issued_at = Some(UnixTimeStamp::from_secs(now - 10));
    claims.invalid_before = Some(UnixTimeStamp::from_secs(now - 10));
    claims.expires_at = Some(UnixTimeStamp::from_secs(now + 3600));
    let token = key.sign(claims).map_err(|e| e.to_string())?;
    Ok(Setup {
        rt,
        auth,
        injector,
        bearer: format!("Bearer {token}"),
        identity,
    })
}

fn request_headers(bearer: &str) -> Vec<(String, String)> {
    [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "127.0.0.1:10000"),
        (":scheme", "http"),
        ("content-type", "application/json"),
        ("content-length", "96"),
        ("accept", "*/*"),
        ("authorization", bearer),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "4c1b7e6a-1f0e-4b8e-9f53-0d3c1c0b9a77"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One request, all of Envoy's callbacks in order. Returns whether it called out.
#[inline(never)]
fn request(s: &Setup, host: &mut CountingHost) -> bool {
    let mut flow = Flow::new(Rc::clone(&s.rt), Rc::clone(&s.auth));
    let mut called_out = false;
    flow.on_request_headers(host, false);
    if flow.on_request_body(host, BODY.len(), true) == Next::Pause {
        called_out = true;
        let lease = br#"{"allow":true,"slots":64}"#;
        let call = host.dispatched;
        flow.on_callout_response(host, call, Some(200), lease);
    }
    if !s.identity {
        upstream_attempt(s, host);
    }
    flow.on_response_headers(host);
    let size = host.answer.len();
    flow.on_response_body(host, size, true);
    flow.on_log(host);
    called_out
}

/// The key injector's context for the one attempt: the provider from the endpoint's
/// metadata, its key set and the others' removed, the provider named on the answer.
#[inline(never)]
fn upstream_attempt(s: &Setup, host: &mut CountingHost) {
    host.call(Kind::GetProperty);
    for (name, value) in s.injector.edits("openai").unwrap_or_default() {
        let _ = host.set_request_header(name, value.as_deref());
    }
    host.call(Kind::ReplaceHeaderMapValue);
}

/// The root's lease renewals, done between requests as its timer does them.
fn renew(s: &Setup, n: &mut u64) {
    let ttl = u64::try_from(s.rt.config.policy.lease_ttl.as_millis()).unwrap_or(u64::MAX);
    let mut auth = s.auth.borrow_mut();
    for r in auth.leases.renewals(NOW_MS, 1000) {
        *n += 1;
        let _ = auth
            .leases
            .renewed(&r, &format!("renewal-{n}"), r.slots.max(2), NOW_MS, ttl);
    }
}

/// A counted request: callgrind collects inside this function only, so the warm-up and
/// the root's renewals between requests are left out.
#[inline(never)]
fn measured(s: &Setup, host: &mut CountingHost) -> bool {
    request(s, host)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("full", String::as_str);
    let n: u64 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(2000);
    if !matches!(mode, "full" | "identity") {
        eprintln!("usage: request_path_profile full|identity [N]");
        std::process::exit(2);
    }
    let s = match setup(mode) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("setup: {e}");
            std::process::exit(1);
        }
    };
    let calls = Rc::new(RefCell::new([0u64; KINDS.len()]));
    let mut host = CountingHost {
        serialized_headers: header_pairs::serialize(&request_headers(&s.bearer)),
        response_headers: vec![
            (":status".into(), "200".into()),
            ("content-type".into(), "application/json".into()),
            (PROVIDER_HEADER.into(), "openai".into()),
        ],
        answer: compact(ANSWER),
        outbox: Rc::default(),
        calls: Rc::clone(&calls),
        dispatched: 0,
    };
    let mut renewals = 0;
    // Warm-up: the token verified and cached, the lease granted and renewed, the
    // guardrails' verdict cached, the outbox cycled.
    for _ in 0..200 {
        request(&s, &mut host);
        renew(&s, &mut renewals);
    }
    *calls.borrow_mut() = [0; KINDS.len()];
    let mut callouts = 0u64;
    for _ in 0..n {
        callouts += u64::from(measured(&s, &mut host));
        renew(&s, &mut renewals);
    }
    let per_request: BTreeMap<&str, f64> = KINDS
        .iter()
        .zip(calls.borrow().iter())
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| (*k, *v as f64 / n as f64))
        .collect();
    let total: f64 = per_request.values().sum();
    let out = serde_json::json!({
        "mode": mode,
        "requests": n,
        "callouts_per_request": callouts as f64 / n as f64,
        "host_calls_per_request": total,
        "host_calls": per_request,
    });
    println!("{out}");
}
