//! Soak machinery (behind `scripts/soak` and `chokepoint-soak`): a weighted mix of
//! requests through the real stack, each kept as an [`Outcome`]; the rules that say which
//! outcomes are expected (a `503 policy_unavailable` only inside an outage window); and the
//! checks run afterwards against Envoy's access log and the policy service's ledger.
//! Bounded and loopback only: a soak, not a load test.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// xorshift64*: enough randomness for a traffic mix, with no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next_u64().is_multiple_of(n)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// The provider APIs a client may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    Responses,
    Messages,
    Gemini,
    Azure,
}

const STREAM_APIS: [Api; 5] = [
    Api::Chat,
    Api::Responses,
    Api::Messages,
    Api::Gemini,
    Api::Azure,
];

/// What one request of the mix is, and so what its answer should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Chat,
    ChatStream,
    Responses,
    ResponsesStream,
    Messages,
    MessagesStream,
    Gemini,
    GeminiStream,
    Azure,
    AzureStream,
    /// A stream the client drops after its first chunk.
    ClientAbort,
    /// A stream the provider cuts mid-way (`x-mock-cut-after`).
    UpstreamCut,
    /// Missing, garbage, expired, wrongly signed or wrongly addressed token: 401.
    BadToken,
    /// A caller of a tenant whose budget is spent: 429 `budget_exceeded`.
    OverBudget,
}

/// The mix, in percent.
pub const MIX: [(Kind, u64); 14] = [
    (Kind::Chat, 12),
    (Kind::ChatStream, 12),
    (Kind::Responses, 6),
    (Kind::ResponsesStream, 6),
    (Kind::Messages, 7),
    (Kind::MessagesStream, 7),
    (Kind::Gemini, 6),
    (Kind::GeminiStream, 6),
    (Kind::Azure, 5),
    (Kind::AzureStream, 4),
    (Kind::ClientAbort, 8),
    (Kind::UpstreamCut, 8),
    (Kind::BadToken, 7),
    (Kind::OverBudget, 6),
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chat => "openai chat",
            Kind::ChatStream => "openai chat, streamed",
            Kind::Responses => "openai responses",
            Kind::ResponsesStream => "openai responses, streamed",
            Kind::Messages => "anthropic messages",
            Kind::MessagesStream => "anthropic messages, streamed",
            Kind::Gemini => "gemini generateContent",
            Kind::GeminiStream => "gemini streamGenerateContent",
            Kind::Azure => "azure chat",
            Kind::AzureStream => "azure chat, streamed",
            Kind::ClientAbort => "client abort mid-stream",
            Kind::UpstreamCut => "upstream cut mid-stream",
            Kind::BadToken => "bad token",
            Kind::OverBudget => "over budget",
        }
    }

    fn api(self) -> Option<(Api, bool)> {
        Some(match self {
            Kind::Chat => (Api::Chat, false),
            Kind::ChatStream => (Api::Chat, true),
            Kind::Responses => (Api::Responses, false),
            Kind::ResponsesStream => (Api::Responses, true),
            Kind::Messages => (Api::Messages, false),
            Kind::MessagesStream => (Api::Messages, true),
            Kind::Gemini => (Api::Gemini, false),
            Kind::GeminiStream => (Api::Gemini, true),
            Kind::Azure => (Api::Azure, false),
            Kind::AzureStream => (Api::Azure, true),
            _ => return None,
        })
    }

    /// Whether a served request of this kind reaches a provider (and so the ledger).
    fn served(self) -> bool {
        !matches!(self, Kind::BadToken | Kind::OverBudget)
    }
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: Kind,
    /// Sent as `x-request-id`; the filter logs it as the record's `trace_id`.
    pub trace_id: String,
    pub path: String,
    /// `None`: no credential at all.
    pub token: Option<String>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
    /// Drop the response after its first body chunk.
    pub abort: bool,
}

/// The callers of the mix.
pub struct Callers {
    /// Tokens of ordinary users (tenant [`TENANT`]).
    pub users: Vec<String>,
    /// Tokens of users in the over-budget tenant [`BROKE_TENANT`].
    pub broke: Vec<String>,
    /// Tokens the gateway must refuse (`None`: no token).
    pub bad: Vec<Option<String>>,
}

pub const TENANT: &str = "soak";
pub const BROKE_TENANT: &str = "soak-broke";
pub const COST_CENTER: &str = "cc-soak";

/// Builds the requests of the mix.
pub struct Mixer {
    pub callers: Callers,
    prefix: String,
    n: u64,
    rng: Rng,
}

impl Mixer {
    pub fn new(callers: Callers, run_hex: &str, seed: u64) -> Mixer {
        let hex: String = run_hex
            .chars()
            .chain(std::iter::repeat('0'))
            .take(15)
            .collect();
        Mixer {
            callers,
            prefix: format!("{}-{}-4{}", &hex[0..8], &hex[8..12], &hex[12..15]),
            n: 0,
            rng: Rng::new(seed),
        }
    }

    /// The next request: a kind drawn from [`MIX`], a fresh `x-request-id` (a UUID whose
    /// last field counts requests).
    pub fn next_plan(&mut self) -> Plan {
        self.n += 1;
        let trace_id = format!("{}-8000-{:012x}", self.prefix, self.n);
        let total: u64 = MIX.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.next_u64() % total;
        let mut kind = Kind::Chat;
        for (k, w) in MIX {
            if roll < w {
                kind = k;
                break;
            }
            roll -= w;
        }
        self.plan(kind, trace_id)
    }

    pub fn plan(&mut self, kind: Kind, trace_id: String) -> Plan {
        let rng = &mut self.rng;
        let mut headers = Vec::new();
        let mut abort = false;
        let (api, stream) = match kind {
            Kind::ClientAbort => {
                abort = true;
                // Long and slow, so the client is gone well before the end.
                headers.push(("x-mock-words", "400".to_string()));
                headers.push(("x-mock-event-delay-ms", "15".to_string()));
                (*rng.pick(&STREAM_APIS), true)
            }
            Kind::UpstreamCut => {
                headers.push(("x-mock-words", rng.range(20, 120).to_string()));
                headers.push(("x-mock-cut-after", rng.range(2, 6).to_string()));
                (*rng.pick(&STREAM_APIS), true)
            }
            Kind::BadToken | Kind::OverBudget => (*rng.pick(&STREAM_APIS), rng.one_in(2)),
            k => k.api().unwrap_or((Api::Chat, false)),
        };
        if kind.served() && !matches!(kind, Kind::ClientAbort | Kind::UpstreamCut) {
            headers.push(("x-mock-words", rng.range(1, 150).to_string()));
            if stream && rng.one_in(3) {
                headers.push(("x-mock-event-delay-ms", rng.range(1, 8).to_string()));
            }
        }
        if api == Api::Messages {
            headers.push(("anthropic-version", "2023-06-01".to_string()));
            if rng.one_in(4) {
                headers.push(("x-mock-cache-read", rng.range(1, 40).to_string()));
            }
        }
        let prompt = {
            let words = rng.range(3, 60);
            let mut p = String::from("Soak test prompt:");
            for i in 0..words {
                p.push_str(&format!(" word{i}"));
            }
            p
        };
        let (path, body) = request(api, stream, &prompt);
        let token = match kind {
            Kind::BadToken => rng.pick(&self.callers.bad).clone(),
            Kind::OverBudget => Some(rng.pick(&self.callers.broke).clone()),
            _ => Some(rng.pick(&self.callers.users).clone()),
        };
        Plan {
            kind,
            trace_id,
            path,
            token,
            headers,
            body,
            abort,
        }
    }
}

/// Path and body of one request of `api`, as that provider's SDK sends it.
fn request(api: Api, stream: bool, prompt: &str) -> (String, Value) {
    let chat = json!({"model": "gpt-4o-mini", "stream": stream,
        "messages": [{"role": "user", "content": prompt}]});
    match api {
        Api::Chat => ("/v1/chat/completions".into(), chat),
        Api::Azure => (
            "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21".into(),
            chat,
        ),
        Api::Responses => (
            "/v1/responses".into(),
            json!({"model": "gpt-4.1-mini", "stream": stream, "input": prompt}),
        ),
        Api::Messages => (
            "/v1/messages".into(),
            json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": stream,
                "messages": [{"role": "user", "content": prompt}]}),
        ),
        Api::Gemini => {
            let path = if stream {
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
            } else {
                "/v1beta/models/gemini-2.5-flash:generateContent"
            };
            (
                path.into(),
                json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]}),
            )
        }
    }
}

/// How a request ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The whole body arrived.
    Complete,
    /// The client dropped the response after its first chunk, as planned.
    Aborted,
    /// The body broke off (connection reset, truncated chunked body).
    BodyError(String),
    /// No response at all.
    SendError(String),
    /// Past the client's timeout: a hang.
    Timeout,
}

/// One request as the client saw it. Times are milliseconds since the load started.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: Kind,
    pub trace_id: String,
    /// `x-chokepoint-request-id` of the response, when there was one.
    pub gateway_id: Option<String>,
    pub status: Option<u16>,
    /// `error.code` of an error body.
    pub code: Option<String>,
    pub start_ms: u64,
    pub end_ms: u64,
    pub ending: Ending,
    pub bytes: u64,
    /// What a partly delivered stream (client abort, upstream cut) brought the client, up
    /// to [`KEPT_BODY`] bytes: whether it held text decides whether output is charged.
    pub partial_body: Vec<u8>,
}

/// How much of a partly delivered stream is kept.
pub const KEPT_BODY: usize = 64 * 1024;

/// Sends `plan` and reads the answer within `timeout`.
pub async fn execute(
    client: &reqwest::Client,
    gateway: &str,
    plan: &Plan,
    t0: Instant,
    timeout: Duration,
) -> Outcome {
    let mut out = Outcome {
        kind: plan.kind,
        trace_id: plan.trace_id.clone(),
        gateway_id: None,
        status: None,
        code: None,
        start_ms: t0.elapsed().as_millis() as u64,
        end_ms: 0,
        ending: Ending::Timeout,
        bytes: 0,
        partial_body: Vec::new(),
    };
    let ending = tokio::time::timeout(timeout, exchange(client, gateway, plan, &mut out)).await;
    out.ending = ending.unwrap_or(Ending::Timeout);
    out.end_ms = t0.elapsed().as_millis() as u64;
    out
}

async fn exchange(
    client: &reqwest::Client,
    gateway: &str,
    plan: &Plan,
    out: &mut Outcome,
) -> Ending {
    let mut req = client
        .post(format!("{gateway}{}", plan.path))
        .header("x-request-id", &plan.trace_id)
        .json(&plan.body);
    if let Some(t) = &plan.token {
        req = req.bearer_auth(t);
    }
    for (k, v) in &plan.headers {
        req = req.header(*k, v);
    }
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Ending::SendError(error_chain(&e)),
    };
    out.status = Some(resp.status().as_u16());
    out.gateway_id = resp
        .headers()
        .get("x-chokepoint-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !resp.status().is_success() {
        return match resp.bytes().await {
            Ok(b) => {
                out.bytes = b.len() as u64;
                out.code = serde_json::from_slice::<Value>(&b)
                    .ok()
                    .and_then(|v| gateway_code(&v));
                Ending::Complete
            }
            Err(e) => Ending::BodyError(error_chain(&e)),
        };
    }
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                out.bytes += c.len() as u64;
                if matches!(plan.kind, Kind::ClientAbort | Kind::UpstreamCut) {
                    let room = KEPT_BODY.saturating_sub(out.partial_body.len());
                    out.partial_body.extend_from_slice(&c[..c.len().min(room)]);
                }
                if plan.abort {
                    // Dropping the response closes the connection mid-stream.
                    return Ending::Aborted;
                }
            }
            Ok(None) => return Ending::Complete,
            Err(e) => return Ending::BodyError(error_chain(&e)),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// A time the policy service could not answer (it was down, or Redis was).
#[derive(Debug, Clone)]
pub struct Window {
    pub what: String,
    /// Just before the component was stopped.
    pub start_ms: u64,
    /// When the policy service's `/healthz` answered 200 again.
    pub end_ms: u64,
}

/// The gateway's failure class in an error of any API's shape: `error.code` (OpenAI's and
/// Anthropic's), or the `ErrorInfo` reason of Google's (whose `error.code` is the status).
fn gateway_code(v: &Value) -> Option<String> {
    v["error"]["code"]
        .as_str()
        .or_else(|| v["error"]["details"][0]["reason"].as_str())
        .map(str::to_owned)
}

/// How the outcome compares with what the gateway must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Expected,
    /// `503 policy_unavailable` overlapping an outage window: the failure mode `closed`.
    Outage(usize),
    Hang,
    Unexpected(String),
}

/// Slack around each outage window: a callout started just before the window may time
/// out inside it, one answered just after may have been decided inside it.
pub struct Margins {
    pub before_ms: u64,
    pub after_ms: u64,
}

pub fn classify(o: &Outcome, windows: &[Window], m: &Margins) -> Verdict {
    if o.ending == Ending::Timeout {
        return Verdict::Hang;
    }
    let status = match (o.status, &o.ending) {
        (Some(s), _) => s,
        (None, Ending::SendError(e)) => return Verdict::Unexpected(format!("no response: {e}")),
        (None, e) => return Verdict::Unexpected(format!("no status ({e:?})")),
    };
    let code = o.code.as_deref().unwrap_or("");
    if status == 503 && code == "policy_unavailable" && o.kind != Kind::BadToken {
        let window = windows.iter().position(|w| {
            o.start_ms <= w.end_ms + m.after_ms && o.end_ms + m.before_ms >= w.start_ms
        });
        return match window {
            Some(i) => Verdict::Outage(i),
            None => Verdict::Unexpected("503 policy_unavailable outside any outage".into()),
        };
    }
    let ok = match o.kind {
        Kind::BadToken => status == 401,
        Kind::OverBudget => status == 429 && code == "budget_exceeded",
        Kind::ClientAbort => status == 200 && o.ending == Ending::Aborted,
        Kind::UpstreamCut => status == 200 && matches!(o.ending, Ending::BodyError(_)),
        _ => status == 200 && o.ending == Ending::Complete,
    };
    if ok {
        return Verdict::Expected;
    }
    let what = match (&o.ending, o.kind) {
        (Ending::Complete, Kind::UpstreamCut) if status == 200 => {
            "the cut stream ended cleanly for the client".to_string()
        }
        (Ending::BodyError(e), _) => format!("{status}, body broke off: {e}"),
        _ if code.is_empty() => format!("{status}"),
        _ => format!("{status} {code}"),
    };
    Verdict::Unexpected(what)
}

/// What the record of a request must say, given what the client saw.
fn record_disagrees(o: &Outcome, v: &Verdict, rec: &Value) -> Option<String> {
    let decision = rec["decision"].as_str().unwrap_or("");
    let want = match v {
        Verdict::Outage(_) => "policy_unavailable",
        Verdict::Expected => match o.kind {
            Kind::BadToken => "unauthenticated",
            Kind::OverBudget => "denied",
            _ => "allowed",
        },
        _ => return None,
    };
    if decision != want {
        return Some(format!("decision {decision:?}, expected {want:?}"));
    }
    if let Some(s) = o.status {
        if rec["status"].as_u64() != Some(u64::from(s)) {
            return Some(format!("status {} but the client saw {s}", rec["status"]));
        }
    }
    if let (Some(id), Some(rid)) = (&o.gateway_id, rec["request_id"].as_str()) {
        if id != rid {
            return Some(format!("request_id {rid} but x-chokepoint-request-id {id}"));
        }
    }
    if *v == Verdict::Expected && o.kind.served() {
        let completed = rec["completed"].as_bool().unwrap_or(false);
        let full = !matches!(o.kind, Kind::ClientAbort | Kind::UpstreamCut);
        if completed != full {
            return Some(format!("completed {completed}, expected {full}"));
        }
        if full && rec["estimated"] != false {
            return Some("estimated usage for a complete answer".into());
        }
        if rec["input_tokens"].as_u64().unwrap_or(0) == 0 {
            return Some("no input charged for a request a provider served".into());
        }
        let format = rec["format"].as_str().unwrap_or("");
        if !full
            && rec["output_tokens"].as_u64().unwrap_or(0) == 0
            && delivered_text(format, &o.partial_body)
        {
            return Some(format!(
                "no output charged, but the client received text ({format})"
            ));
        }
    }
    None
}

/// Whether a (possibly truncated) stream of `format` carried any completion text: the
/// gateway must then charge output, estimated if the provider's usage never came.
pub fn delivered_text(format: &str, body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let non_empty = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .any(|e| match format {
            "openai_chat" => e["choices"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| non_empty(&c["delta"]["content"]))),
            "openai_responses" => {
                e["type"] == "response.output_text.delta" && non_empty(&e["delta"])
            }
            "anthropic" => e["type"] == "content_block_delta" && non_empty(&e["delta"]["text"]),
            "gemini" => e["candidates"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["content"]["parts"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| non_empty(&p["text"])))
                })
            }),
            _ => false,
        })
}

/// The access log, parsed: one JSON usage record per line.
pub struct AccessLog {
    pub records: Vec<Value>,
    /// Lines that are not a JSON object (e.g. `-`: no usage record in filter state).
    pub malformed: Vec<String>,
}

pub fn read_access_log(path: &std::path::Path) -> AccessLog {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut log = AccessLog {
        records: Vec::new(),
        malformed: Vec::new(),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => log.records.push(v),
            _ => log.malformed.push(line.chars().take(200).collect()),
        }
    }
    log
}

/// The ledger fields compared, as the policy service names them.
pub const LEDGER_FIELDS: [&str; 8] = [
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cache_creation_input_tokens",
    "cost_micros",
    "estimated_requests",
];

/// A ledger hash the check reads: `(scope, id, YYYY-MM-DD)`.
pub type LedgerKey = (&'static str, String, String);
pub type Totals = [u64; LEDGER_FIELDS.len()];

/// Whether a record is charged: it reached a provider, for a known caller.
pub fn charged(rec: &Value) -> bool {
    matches!(
        rec["decision"].as_str(),
        Some("allowed" | "allowed_fail_open")
    ) && rec["user"].is_string()
}

/// What the ledger must hold: the sums of the charged records, per user, tenant and cost
/// centre, on each record's own UTC day. Every user, tenant and cost centre that appears
/// in any record is listed, so one with only refused requests must show zeros.
pub fn expected_ledger(records: &[Value]) -> BTreeMap<LedgerKey, Totals> {
    let mut out: BTreeMap<LedgerKey, Totals> = BTreeMap::new();
    for rec in records {
        let day = utc_day(rec["ts_ms"].as_u64().unwrap_or(0));
        let scopes = [
            ("user", rec["user"].as_str()),
            ("tenant", rec["tenant"].as_str()),
            ("cost_center", rec["cost_center"].as_str()),
        ];
        for (scope, id) in scopes {
            let Some(id) = id.filter(|s| !s.trim().is_empty()) else {
                continue;
            };
            let t = out
                .entry((scope, id.to_string(), day.clone()))
                .or_insert([0; LEDGER_FIELDS.len()]);
            if charged(rec) {
                t[0] += 1;
                for (i, f) in LEDGER_FIELDS.iter().enumerate().skip(1) {
                    t[i] += match *f {
                        "estimated_requests" => u64::from(rec["estimated"] == true),
                        f => rec[f].as_u64().unwrap_or(0),
                    };
                }
            }
        }
    }
    out
}

/// The ledger totals the policy service's admin listener reports for `key`.
pub async fn ledger_totals(
    client: &reqwest::Client,
    policy_admin_url: &str,
    admin_token: &str,
    key: &LedgerKey,
) -> Result<Totals, String> {
    let (scope, id, day) = key;
    let v: Value = client
        .get(format!(
            "{policy_admin_url}/v1/admin/usage?scope={scope}&id={}&period={day}",
            query_escape(id)
        ))
        .bearer_auth(admin_token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let mut t = [0; LEDGER_FIELDS.len()];
    for (i, f) in LEDGER_FIELDS.iter().enumerate() {
        t[i] = v[*f]
            .as_u64()
            .ok_or_else(|| format!("ledger {scope}/{id}/{day}: no {f} in {v}"))?;
    }
    Ok(t)
}

/// Percent-encodes everything but unreserved characters (ids are UUIDs and plain names).
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub use chokepoint_dev::utc::day as utc_day;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The access-log side of the checks.
#[derive(Debug, Default)]
pub struct RecordCheck {
    pub client_requests: usize,
    pub records: usize,
    /// Records written before the load started (readiness probes).
    pub pre_load: usize,
    pub missing: Vec<String>,
    pub duplicated: Vec<String>,
    /// Records of no request the client sent (after the load started).
    pub strays: Vec<String>,
    /// Gateway request ids appearing in more than one record.
    pub duplicate_request_ids: Vec<String>,
    pub malformed: usize,
    /// Records that contradict what the client saw.
    pub disagreements: Vec<String>,
}

impl RecordCheck {
    pub fn passed(&self) -> bool {
        self.missing.is_empty()
            && self.duplicated.is_empty()
            && self.strays.is_empty()
            && self.duplicate_request_ids.is_empty()
            && self.malformed == 0
    }
}

/// Every request the client sent has exactly one record (keyed by the `x-request-id` the
/// client sent, which the filter logs as `trace_id`), and every record after the load
/// started belongs to one of them.
pub fn check_records(
    outcomes: &[(Outcome, Verdict)],
    log: &AccessLog,
    load_start_epoch_ms: u64,
) -> RecordCheck {
    let mut by_trace: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut c = RecordCheck {
        client_requests: outcomes.len(),
        records: log.records.len(),
        malformed: log.malformed.len(),
        ..RecordCheck::default()
    };
    for rec in &log.records {
        if let Some(id) = rec["request_id"].as_str() {
            *ids.entry(id).or_default() += 1;
        }
        if rec["ts_ms"].as_u64().unwrap_or(0) < load_start_epoch_ms {
            c.pre_load += 1;
            continue;
        }
        by_trace
            .entry(rec["trace_id"].as_str().unwrap_or(""))
            .or_default()
            .push(rec);
    }
    c.duplicate_request_ids = ids
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, n)| format!("{id} ({n} records)"))
        .collect();
    let mut sent: BTreeSet<&str> = BTreeSet::new();
    for (o, v) in outcomes {
        sent.insert(o.trace_id.as_str());
        match by_trace.get(o.trace_id.as_str()).map(Vec::as_slice) {
            None | Some([]) => c.missing.push(format!(
                "{} ({}, {:?}, {:?})",
                o.trace_id,
                o.kind.name(),
                o.status,
                o.ending
            )),
            Some([rec]) => {
                if let Some(why) = record_disagrees(o, v, rec) {
                    c.disagreements
                        .push(format!("{} ({}): {why}", o.trace_id, o.kind.name()));
                }
            }
            Some(recs) => c
                .duplicated
                .push(format!("{} ({} records)", o.trace_id, recs.len())),
        }
    }
    for (trace, recs) in &by_trace {
        if !sent.contains(trace) {
            for r in recs {
                c.strays
                    .push(format!("trace_id {trace:?} request_id {}", r["request_id"]));
            }
        }
    }
    c
}

/// Mebibytes, one decimal, from KiB.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Seconds, one decimal, from ms.
pub fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(kind: Kind, status: u16, code: &str, ending: Ending, t: (u64, u64)) -> Outcome {
        Outcome {
            kind,
            trace_id: "t".into(),
            gateway_id: None,
            status: Some(status),
            code: (!code.is_empty()).then(|| code.to_string()),
            start_ms: t.0,
            end_ms: t.1,
            ending,
            bytes: 0,
            partial_body: Vec::new(),
        }
    }

    #[test]
    fn a_503_is_expected_only_inside_an_outage() {
        let w = [Window {
            what: "policy".into(),
            start_ms: 10_000,
            end_ms: 12_000,
        }];
        let m = Margins {
            before_ms: 500,
            after_ms: 2000,
        };
        let o = |t| outcome(Kind::Chat, 503, "policy_unavailable", Ending::Complete, t);
        assert_eq!(classify(&o((11_000, 11_001)), &w, &m), Verdict::Outage(0));
        assert_eq!(classify(&o((13_900, 13_910)), &w, &m), Verdict::Outage(0));
        assert_eq!(classify(&o((9_000, 9_600)), &w, &m), Verdict::Outage(0));
        assert!(matches!(
            classify(&o((15_000, 15_010)), &w, &m),
            Verdict::Unexpected(_)
        ));
        let other = outcome(
            Kind::Chat,
            503,
            "no_healthy_upstream",
            Ending::Complete,
            (11_000, 11_001),
        );
        assert!(matches!(classify(&other, &w, &m), Verdict::Unexpected(_)));
        let bad = outcome(
            Kind::BadToken,
            401,
            "expired",
            Ending::Complete,
            (11_000, 11_001),
        );
        assert_eq!(classify(&bad, &w, &m), Verdict::Expected);
        let cut = outcome(Kind::UpstreamCut, 200, "", Ending::Complete, (1, 2));
        assert!(matches!(classify(&cut, &w, &m), Verdict::Unexpected(_)));
        let hang = outcome(Kind::Chat, 200, "", Ending::Timeout, (1, 2));
        assert_eq!(classify(&hang, &w, &m), Verdict::Hang);
    }

    #[test]
    fn the_ledger_expected_is_the_sum_of_charged_records() {
        let recs = [
            json!({"decision": "allowed", "user": "u1", "tenant": "t", "ts_ms": 0,
                "input_tokens": 3, "output_tokens": 4, "cost_micros": 5, "estimated": true}),
            json!({"decision": "allowed", "user": "u1", "tenant": "t", "ts_ms": 1,
                "input_tokens": 1, "output_tokens": 1, "cost_micros": 1, "estimated": false}),
            json!({"decision": "denied", "user": "u2", "tenant": "t", "ts_ms": 1,
                "input_tokens": 9, "output_tokens": 9}),
            json!({"decision": "unauthenticated", "user": null, "ts_ms": 1}),
        ];
        let e = expected_ledger(&recs);
        let day = "1970-01-01".to_string();
        assert_eq!(
            e[&("user", "u1".into(), day.clone())],
            [2, 4, 5, 0, 0, 0, 6, 1]
        );
        assert_eq!(e[&("user", "u2".into(), day.clone())], [0; 8]);
        assert_eq!(e[&("tenant", "t".into(), day)], [2, 4, 5, 0, 0, 0, 6, 1]);
        assert_eq!(e.len(), 3);
        assert_eq!(utc_day(1_764_028_800_000), "2025-11-25");
    }

    #[test]
    fn the_gateway_s_code_is_read_from_every_api_s_error_shape() {
        let cases = [
            (
                json!({"error": {"type": "rate_limit_error", "code": "budget_exceeded"}}),
                Some("budget_exceeded"),
            ),
            (
                json!({"type": "error", "error": {"type": "rate_limit_error", "code": "budget_exceeded"}}),
                Some("budget_exceeded"),
            ),
            (
                json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [{"reason": "budget_exceeded"}]}}),
                Some("budget_exceeded"),
            ),
            (json!({"error": {"code": 503}}), None),
        ];
        for (body, want) in cases {
            assert_eq!(gateway_code(&body).as_deref(), want, "{body}");
        }
    }

    #[test]
    fn text_in_a_truncated_stream_is_seen_per_format() {
        let cases = [
            (
                "openai_chat",
                r#"data: {"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
                false,
            ),
            (
                "openai_chat",
                r#"data: {"choices":[{"delta":{"content":"Hi"}}]}"#,
                true,
            ),
            (
                "openai_responses",
                r#"data: {"type":"response.created","response":{}}"#,
                false,
            ),
            (
                "openai_responses",
                r#"data: {"type":"response.output_text.delta","delta":"Hi"}"#,
                true,
            ),
            (
                "anthropic",
                r#"data: {"type":"message_start","message":{}}"#,
                false,
            ),
            (
                "anthropic",
                r#"data: {"type":"content_block_delta","delta":{"type":"text_delta","text":"Hi"}}"#,
                true,
            ),
            (
                "gemini",
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\r\n",
                true,
            ),
            (
                "gemini",
                r#"data: {"candidates":[{"content":{"parts":[{"te"#,
                false,
            ),
        ];
        for (format, body, want) in cases {
            assert_eq!(
                delivered_text(format, body.as_bytes()),
                want,
                "{format}: {body}"
            );
        }
    }

    #[test]
    fn the_mix_names_unique_uuids() {
        let callers = Callers {
            users: vec!["u".into()],
            broke: vec!["b".into()],
            bad: vec![None],
        };
        let mut m = Mixer::new(callers, "0123456789abcdef", 7);
        let a = m.next_plan().trace_id;
        let b = m.next_plan().trace_id;
        assert_ne!(a, b);
        assert_eq!(a.len(), 36, "{a}");
        assert_eq!(MIX.iter().map(|(_, w)| w).sum::<u64>(), 100);
    }
}
