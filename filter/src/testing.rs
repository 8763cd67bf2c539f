//! Test support: a fake [`Host`] that records what the logic did, and signing keys whose
//! public halves go into a test configuration as an inline JWKS.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use jwt_simple::prelude::*;

use crate::auth_state::AuthState;
use crate::config::Config;
use crate::flow::Flow;
use crate::host::{Clock, Counter, Host, HostError, RootHost};
use crate::identity::jwks_sync::{CasMismatch, SharedData};
use crate::providers::reply::Reply;
use crate::runtime::Runtime;

pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "chokepoint";
pub const SALT: &str = "0123456789abcdef-test-salt";
pub const PROVIDER_KEY: &str = "sk-test-provider-key";
pub const ANTHROPIC_KEY: &str = "sk-ant-test-key";
pub const POLICY_TOKEN: &str = "test-policy-token-0123456789abcdef";
pub const NOW: u64 = 1_800_000_000;

pub struct Keys {
    pub es256: ES256KeyPair,
    pub rs256: RS256KeyPair,
    pub ed: Ed25519KeyPair,
}

impl Keys {
    /// One key set per test process: RSA key generation is slow in debug builds.
    pub fn new() -> &'static Keys {
        static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
        KEYS.get_or_init(Keys::generate)
    }

    fn generate() -> Keys {
        Keys {
            es256: ES256KeyPair::generate().with_key_id("es-1"),
            rs256: RS256KeyPair::generate(2048)
                .expect("rsa keygen")
                .with_key_id("rs-1"),
            ed: Ed25519KeyPair::generate().with_key_id("ed-1"),
        }
    }

    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = [
            self.es256.public_key().to_jwk(),
            self.rs256.public_key().to_jwk(),
            self.ed.public_key().to_jwk(),
        ]
        .iter()
        .map(|j| serde_json::from_str(j).expect("jwk json"))
        .collect();
        serde_json::json!({ "keys": keys })
    }

    pub fn config_json(&self) -> serde_json::Value {
        serde_json::json!({
            "issuers": [{"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": self.jwks()}],
            "policy": {"cluster": "policy", "timeout_ms": 500},
            "providers": [
                {"name": "openai", "api": "openai", "cluster": "provider_openai", "key_env": "OPENAI_API_KEY"},
                {"name": "anthropic", "api": "anthropic", "cluster": "provider_anthropic", "key_env": "ANTHROPIC_API_KEY"},
            ],
            "prices": {"models": {"gpt-4o-mini": {"input_per_mtok_usd": "0.15", "output_per_mtok_usd": "0.60"}}},
            "max_request_body_bytes": 1024,
            "hold_headers": true,
            "versions": {"policy": "sha256:00112233aabbccdd", "price": "sha256:ffeeddccbbaa9988"},
        })
    }

    pub fn runtime(&self) -> Rc<Runtime> {
        runtime_from(&self.config_json())
    }

    pub fn flow(&self) -> Flow {
        flow_for(self.runtime())
    }
}

/// Built-in rules as `chokepoint-config` renders them into the filter's configuration
/// (copied from guard/rules/builtin.yaml, without examples): two secrets, one personal.
pub fn guard_rules() -> serde_json::Value {
    serde_json::json!([
        {"id": "aws-access-key-id", "category": "secret", "description": "AWS access key ID",
         "regex": r"(?-u:\b)((?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z2-7]{16})(?-u:\b)",
         "group": 1, "keywords": ["akia", "asia", "agpa", "aida", "aroa", "anpa", "anva", "aipa"]},
        {"id": "github-token", "category": "secret",
         "description": "GitHub personal access, OAuth, app and refresh tokens",
         "regex": r"(?-u:\b)((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?-u:\b)",
         "group": 1, "keywords": ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"]},
        {"id": "email-address", "category": "personal", "description": "E-mail address",
         "regex": r"(?-u:\b)[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?-u:\b)",
         "keywords": ["@"]},
    ])
}

/// The test configuration with `guardrails` of these checks and the rules above.
pub fn guarded_config(keys: &Keys, checks: serde_json::Value) -> serde_json::Value {
    let mut c = keys.config_json();
    c["guardrails"] = serde_json::json!({"rules": guard_rules(), "checks": checks});
    c
}

/// An issuer whose keys are fetched from its IdP (`idp` cluster, `/jwks.json`).
pub const REMOTE: &str = "https://remote.test";

/// The test configuration plus [`REMOTE`], each issuer trusted with any tenant, group and
/// cost centre (required once there are two).
pub fn remote_config(keys: &Keys) -> serde_json::Value {
    let mut c = keys.config_json();
    let any = serde_json::json!({"tenants": ["*"], "groups": ["*"], "cost_centers": ["*"]});
    c["issuers"][0]["trust"] = any.clone();
    if let Some(issuers) = c["issuers"].as_array_mut() {
        issuers.push(serde_json::json!({
            "issuer": REMOTE, "audiences": [AUDIENCE],
            "jwks_uri": {"cluster": "idp", "path": "/jwks.json", "refresh_secs": 60},
            "trust": any,
        }));
    }
    c
}

pub fn runtime_from(config: &serde_json::Value) -> Rc<Runtime> {
    let config = Config::parse(config.to_string().as_bytes()).expect("config");
    Rc::new(Runtime::new(config, env).expect("runtime"))
}

/// A request flow with fresh per-VM state (keys from the config, empty token cache).
pub fn flow_for(rt: Rc<Runtime>) -> Flow {
    let auth = Rc::new(std::cell::RefCell::new(AuthState::new(&rt)));
    Flow::new(rt, auth)
}

pub fn env(name: &str) -> Option<String> {
    match name {
        "CHOKEPOINT_UUID_SALT" => Some(SALT.into()),
        "OPENAI_API_KEY" => Some(PROVIDER_KEY.into()),
        "ANTHROPIC_API_KEY" => Some(ANTHROPIC_KEY.into()),
        "CHOKEPOINT_POLICY_TOKEN" => Some(POLICY_TOKEN.into()),
        _ => None,
    }
}

/// Claims valid at [`NOW`] for subject `alice`.
pub fn claims() -> JWTClaims<serde_json::Map<String, serde_json::Value>> {
    let mut custom = serde_json::Map::new();
    custom.insert("tenant".into(), "acme".into());
    custom.insert("groups".into(), serde_json::json!(["ml", "eng"]));
    let mut c = Claims::with_custom_claims(custom, jwt_simple::prelude::Duration::from_hours(1))
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE)
        .with_subject("alice");
    c.issued_at = Some(UnixTimeStamp::from_secs(NOW - 10));
    c.invalid_before = Some(UnixTimeStamp::from_secs(NOW - 10));
    c.expires_at = Some(UnixTimeStamp::from_secs(NOW + 3600));
    c
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub timeout: Duration,
}

/// Records everything the request logic asks of the host.
#[derive(Default)]
pub struct FakeHost {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub dispatched: Vec<Dispatched>,
    pub replies: Vec<Reply>,
    pub resumed: u32,
    /// Times a paused response was let go.
    pub resumed_response: u32,
    pub counters: HashMap<String, u64>,
    pub fail_dispatch: bool,
    pub now: u64,
    pub response_status: Option<u32>,
    pub response_type: Option<String>,
    pub response_chunk: Vec<u8>,
    /// What `response_flags` answers (unreadable by default).
    pub response_flags: Option<u64>,
    pub response_headers: Vec<(String, String)>,
    pub removed_response_headers: Vec<String>,
    /// The headers of the callout answer a test delivers.
    pub callout_headers: Vec<(String, String)>,
    pub filter_state: HashMap<String, Vec<u8>>,
    pub queued: Vec<Vec<u8>>,
    pub metrics: Vec<crate::accounting::telemetry::Metric>,
    pub shared: HashMap<String, (Vec<u8>, u32)>,
    pub shared_queue: std::collections::VecDeque<Vec<u8>>,
    /// The headers went upstream (the test says when, as Envoy would on `Continue`):
    /// writing them after that changes nothing the provider sees.
    pub headers_gone: bool,
    /// Headers written after they went.
    pub late_header_writes: Vec<String>,
}

impl FakeHost {
    /// A request with these headers; `:path` defaults to `/v1/chat/completions`.
    pub fn with_headers(headers: &[(&str, &str)]) -> FakeHost {
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !headers.iter().any(|(k, _)| k == ":path") {
            headers.push((":path".into(), "/v1/chat/completions".into()));
        }
        if !headers.iter().any(|(k, _)| k == ":method") {
            headers.push((":method".into(), "POST".into()));
        }
        FakeHost {
            headers,
            now: NOW,
            ..Default::default()
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn count_of(&self, c: Counter) -> u64 {
        self.counters.get(&c.stat_name()).copied().unwrap_or(0)
    }

    fn record_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<u32, HostError> {
        if self.fail_dispatch {
            return Err(HostError("no such cluster"));
        }
        self.dispatched.push(Dispatched {
            cluster: cluster.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
            timeout,
        });
        Ok(100 + self.dispatched.len() as u32)
    }
}

/// Holds what a request sends to the policy service, and the usage record it leaves in
/// filter state, to the contract's schemas: `target` is the callout's `:path` or the
/// filter state's name.
#[cfg(not(target_arch = "wasm32"))]
fn check_contract(target: &str, payload: &[u8]) {
    use chokepoint_contract::validate::{check_text, Schema};
    let schema = match target {
        chokepoint_contract::paths::AUTHORIZE_PATH => Schema::AuthorizeRequest,
        crate::flow::USAGE_FILTER_STATE => Schema::UsageRecord,
        _ => return,
    };
    if let Err(e) = check_text(schema, payload) {
        panic!("{e}\npayload: {}", String::from_utf8_lossy(payload));
    }
    // And the record as published (OpenTelemetry attributes, the Parquet table) to its.
    if schema == Schema::UsageRecord {
        let record: chokepoint_contract::UsageRecord =
            serde_json::from_slice(payload).expect("a record the schema passed reads");
        let published = chokepoint_contract::published::to_json(&record);
        if let Err(e) = chokepoint_contract::validate::check(Schema::PublishedRecord, &published) {
            panic!("{e}\npublished: {published}");
        }
    }
}

/// The validator is a native dev-dependency; serde_json writes the same bytes in V8.
#[cfg(target_arch = "wasm32")]
fn check_contract(_: &str, _: &[u8]) {}

impl Host for FakeHost {
    fn request_headers(&self) -> Result<crate::host::HeaderList, HostError> {
        Ok(self.headers.iter().map(|(k, v)| (k, v)).collect())
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        if self.headers_gone {
            self.late_header_writes.push(name.to_string());
        }
        self.headers.retain(|(k, _)| k != name);
        if let Some(v) = value {
            self.headers.push((name.to_string(), v.to_string()));
        }
        Ok(())
    }

    fn request_body(&self, size: usize) -> Result<Vec<u8>, HostError> {
        Ok(self.body.iter().take(size).copied().collect())
    }

    fn dispatch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<u32, HostError> {
        let path = headers.iter().find(|(k, _)| *k == ":path");
        check_contract(path.map_or("", |(_, v)| *v), body);
        self.record_call(cluster, headers, body, timeout)
    }

    fn send_reply(&mut self, reply: &Reply) -> Result<(), HostError> {
        self.replies.push(reply.clone());
        Ok(())
    }

    fn resume_request(&mut self) -> Result<(), HostError> {
        self.resumed += 1;
        Ok(())
    }

    fn resume_response(&mut self) -> Result<(), HostError> {
        self.resumed_response += 1;
        Ok(())
    }

    fn count(&mut self, counter: Counter) {
        *self.counters.entry(counter.stat_name()).or_default() += 1;
    }

    fn response_status_and_type(&self) -> (Option<u32>, Option<String>) {
        (self.response_status, self.response_type.clone())
    }

    fn response_flags(&self) -> Option<u64> {
        self.response_flags
    }

    fn response_header(&self, name: &str) -> Option<String> {
        self.response_headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn response_body(&self, size: usize) -> Result<Vec<u8>, HostError> {
        Ok(self.response_chunk.iter().take(size).copied().collect())
    }

    fn set_request_body(&mut self, body: &[u8]) -> Result<(), HostError> {
        self.body = body.to_vec();
        Ok(())
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        // Envoy's replace: the header's one value from now on.
        self.response_headers.retain(|(k, _)| k != name);
        self.response_headers.push((name.into(), value.into()));
        Ok(())
    }

    fn callout_header(&self, name: &str) -> Option<String> {
        self.callout_headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError> {
        self.response_headers.retain(|(k, _)| k != name);
        self.removed_response_headers.push(name.into());
        Ok(())
    }

    fn replace_response_body(&mut self, size: usize, bytes: &[u8]) -> Result<(), HostError> {
        if size > self.response_chunk.len() {
            return Err(HostError("replace past the buffer"));
        }
        self.response_chunk.splice(..size, bytes.iter().copied());
        Ok(())
    }

    fn set_filter_state(&mut self, name: &str, value: &[u8]) {
        check_contract(name, value);
        self.filter_state.insert(name.into(), value.to_vec());
    }

    fn enqueue_usage(&mut self, record: &[u8]) -> bool {
        self.queued.push(record.to_vec());
        true
    }

    fn record_outcome(&mut self, outcome: &crate::accounting::telemetry::Outcome) {
        self.metrics
            .extend(crate::accounting::telemetry::metrics(outcome));
    }
}

impl Clock for FakeHost {
    fn now_secs(&self) -> u64 {
        self.now
    }

    fn now_ms(&self) -> u64 {
        self.now * 1000
    }

    fn random_id(&self) -> String {
        format!("{:032x}", 0xfeed)
    }
}

/// The root's side: the same callouts and counters; `queued` is this worker's outbox and
/// `shared_queue` the queue every worker feeds.
impl RootHost for FakeHost {
    fn call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError> {
        // Unchecked: the root's tests send records of their own making (a bad one too).
        self.record_call(cluster, headers, body.unwrap_or_default(), timeout)
    }

    fn dequeue_usage(&mut self) -> Option<Vec<u8>> {
        self.shared_queue.pop_front()
    }

    fn requeue_usage(&mut self, item: &[u8]) -> bool {
        self.shared_queue.push_back(item.to_vec());
        true
    }

    fn push_usage(&mut self, item: &[u8]) -> bool {
        Host::enqueue_usage(self, item)
    }

    fn flush_outbox(&mut self) -> bool {
        self.shared_queue.extend(self.queued.drain(..));
        true
    }

    fn add(&mut self, counter: Counter, n: u64) {
        *self.counters.entry(counter.stat_name()).or_default() += n;
    }
}

impl SharedData for FakeHost {
    fn get_shared(&self, key: &str) -> (Option<Vec<u8>>, u32) {
        match self.shared.get(key) {
            Some((v, ver)) => (Some(v.clone()), *ver),
            None => (None, 0),
        }
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), CasMismatch> {
        let cur = self.shared.get(key).map_or(0, |(_, v)| *v);
        if cas != 0 && cas != cur {
            return Err(CasMismatch);
        }
        self.shared
            .insert(key.to_string(), (value.to_vec(), cur + 1));
        Ok(())
    }
}
