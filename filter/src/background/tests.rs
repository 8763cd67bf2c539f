//! The root's background work against the fake host: what it sends, when, and what each
//! answer does to the queue, the keys and the leases.

use std::cell::RefCell;
use std::rc::Rc;

use jwt_simple::prelude::*;

use super::Background;
use crate::admission::lease::{LeaseAsk, LeaseTable};
use crate::auth_state::AuthState;
use crate::host::Clock;
use crate::testing::{self, remote_config, FakeHost, Keys, REMOTE};

fn background(config: &serde_json::Value) -> (Background, Rc<RefCell<AuthState>>) {
    let rt = testing::runtime_from(config);
    let auth = Rc::new(RefCell::new(AuthState::new(&rt)));
    (Background::new(rt, Rc::clone(&auth)), auth)
}

fn host() -> FakeHost {
    FakeHost {
        now: testing::NOW,
        ..FakeHost::default()
    }
}

fn header<'a>(d: &'a testing::Dispatched, name: &str) -> Option<&'a str> {
    d.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn record(id: &str) -> Vec<u8> {
    format!(r#"{{"request_id":"{id}","user":"u","input_tokens":1}}"#).into_bytes()
}

fn counter(host: &FakeHost, name: &str) -> u64 {
    host.counters.get(name).copied().unwrap_or(0)
}

#[test]
fn usage_goes_to_the_ledger_in_one_authenticated_batch() {
    let (mut bg, _) = background(&Keys::new().config_json());
    let mut host = host();
    host.shared_queue.extend([record("a"), record("b")]);
    bg.tick(&mut host);
    assert_eq!(host.dispatched.len(), 1);
    let sent = &host.dispatched[0];
    assert_eq!(sent.cluster, "policy");
    assert_eq!(header(sent, ":path"), Some("/v1/usage"));
    assert_eq!(header(sent, ":method"), Some("POST"));
    let bearer = format!("Bearer {}", testing::POLICY_TOKEN);
    assert_eq!(header(sent, "authorization"), Some(bearer.as_str()));
    let body: serde_json::Value = serde_json::from_str(&sent.body).unwrap();
    assert_eq!(body["records"].as_array().map(Vec::len), Some(2));
    assert!(host.shared_queue.is_empty());

    bg.answered(
        &mut host,
        101,
        Some(200),
        br#"{"accepted":2,"duplicates":0}"#,
    );
    assert_eq!(counter(&host, "chokepoint.usage.delivered_records"), 2);
    assert_eq!(host.dispatched.len(), 1, "nothing else to send");
}

/// What one answer to a two-record batch leads to.
struct AnswerCase {
    status: Option<u32>,
    body: &'static str,
    /// Callouts made in all, and the record count of the second, if any.
    dispatches: usize,
    second_records: Option<usize>,
    counter: &'static str,
    count: u64,
}

#[test]
fn answers_split_drop_or_keep_the_batch() {
    let cases = [
        // A refused batch is sent again one record at a time, at once.
        AnswerCase {
            status: Some(400),
            body: "{}",
            dispatches: 2,
            second_records: Some(1),
            counter: "chokepoint.usage.dead_lettered",
            count: 0,
        },
        // An outage keeps the batch for a retry after the backoff: nothing now.
        AnswerCase {
            status: None,
            body: "",
            dispatches: 1,
            second_records: None,
            counter: "chokepoint.usage.delivery_failed",
            count: 1,
        },
        AnswerCase {
            status: Some(503),
            body: "{}",
            dispatches: 1,
            second_records: None,
            counter: "chokepoint.usage.delivery_failed",
            count: 1,
        },
    ];
    for c in cases {
        let (mut bg, _) = background(&Keys::new().config_json());
        let mut host = host();
        host.shared_queue.extend([record("a"), record("b")]);
        bg.tick(&mut host);
        bg.answered(&mut host, 101, c.status, c.body.as_bytes());
        assert_eq!(host.dispatched.len(), c.dispatches, "{:?}", c.status);
        if let Some(n) = c.second_records {
            let v: serde_json::Value = serde_json::from_str(&host.dispatched[1].body).unwrap();
            assert_eq!(
                v["records"].as_array().map(Vec::len),
                Some(n),
                "{:?}",
                c.status
            );
        }
        assert_eq!(
            counter(&host, c.counter),
            c.count,
            "{:?} {}",
            c.status,
            c.counter
        );
    }
}

#[test]
fn a_refused_single_record_is_dropped_and_counted() {
    let (mut bg, _) = background(&Keys::new().config_json());
    let mut host = host();
    host.shared_queue.push_back(record("bad"));
    bg.tick(&mut host);
    bg.answered(&mut host, 101, Some(400), b"{}");
    assert_eq!(counter(&host, "chokepoint.usage.dead_lettered"), 1);
    assert!(host.shared_queue.is_empty());
}

#[test]
fn an_unacknowledged_batch_goes_back_to_the_queue_at_shutdown() {
    let (mut bg, _) = background(&Keys::new().config_json());
    let mut host = host();
    host.shared_queue.extend([record("a"), record("b")]);
    bg.tick(&mut host);
    assert!(host.shared_queue.is_empty());
    // What a request left in this worker's outbox goes too.
    host.queued.push(record("c"));
    bg.shutdown(&mut host);
    assert_eq!(host.shared_queue.len(), 3, "{:?}", host.shared_queue);
    assert!(host.queued.is_empty());
}

#[test]
fn the_outbox_is_flushed_on_every_tick() {
    let (mut bg, _) = background(&Keys::new().config_json());
    let mut host = host();
    host.queued.push(record("a"));
    bg.tick(&mut host);
    // Into the shared queue, then straight into the batch.
    assert!(host.queued.is_empty());
    assert_eq!(host.dispatched.len(), 1);
}

#[test]
fn remote_keys_are_fetched_once_and_shared() {
    let (mut bg, auth) = background(&remote_config(Keys::new()));
    let mut host = host();
    bg.tick(&mut host);
    assert_eq!(host.dispatched.len(), 1);
    let fetch = &host.dispatched[0];
    assert_eq!(fetch.cluster, "idp");
    assert_eq!(header(fetch, ":method"), Some("GET"));
    assert_eq!(header(fetch, ":path"), Some("/jwks.json"));
    assert_eq!(
        header(fetch, "authorization"),
        None,
        "the IdP gets no gateway token"
    );
    // Still out: no second fetch on the next slow tick.
    host.now += 2;
    bg.tick(&mut host);
    assert_eq!(host.dispatched.len(), 1);

    let key = ES256KeyPair::generate().with_key_id("k");
    let jwks = format!("{{\"keys\":[{}]}}", key.public_key().to_jwk());
    bg.answered(&mut host, 101, Some(200), jwks.as_bytes());
    assert_eq!(counter(&host, "chokepoint.jwks.fetched"), 1);
    let doc = crate::identity::jwks_sync::read_doc(&host, REMOTE).expect("published");
    assert_eq!(doc.jwks, jwks.as_bytes());
    assert_eq!(auth.borrow().keys.version(REMOTE), Some(doc.version));
}

#[test]
fn a_failed_fetch_backs_off() {
    for (status, body) in [(None, ""), (Some(500), "{}"), (Some(200), "not a jwks")] {
        let (mut bg, auth) = background(&remote_config(Keys::new()));
        let mut host = host();
        bg.tick(&mut host);
        bg.answered(&mut host, 101, status, body.as_bytes());
        assert_eq!(
            counter(&host, "chokepoint.jwks.fetch_failed"),
            1,
            "{status:?}"
        );
        assert_eq!(auth.borrow().keys.version(REMOTE), None, "{status:?}");
        // Not on the next slow tick: the backoff holds every worker off, for a short
        // while as no keys exist yet.
        host.now += 1;
        bg.tick(&mut host);
        assert_eq!(host.dispatched.len(), 1, "{status:?}");
        host.now += crate::identity::jwks_sync::RETRY_SECS_NO_KEYS - 1;
        bg.tick(&mut host);
        assert_eq!(host.dispatched.len(), 2, "{status:?}");
    }
}

fn lease_config() -> serde_json::Value {
    let mut c = Keys::new().config_json();
    c["policy"]["lease_slots"] = 8.into();
    c
}

fn ask() -> LeaseAsk {
    LeaseAsk {
        user: "u".into(),
        tenant: Some("acme".into()),
        groups: vec!["ml".into()],
        model: Some("gpt-4o-mini".into()),
        model_key: Some("gpt-4o-mini".into()),
        priced: true,
        cost_center: None,
        provider: "openai".into(),
        stream: true,
        reserve_tokens: 7,
        reserve_cost_micros: 3,
        mcp: None,
    }
}

/// A caller holding a lease of 4 whose spare slots ran low, so a renewal is due.
fn low_on_slots(auth: &RefCell<AuthState>, now_ms: u64) {
    let key = LeaseTable::key("u", Some("acme"), None, Some("gpt-4o-mini"));
    let mut auth = auth.borrow_mut();
    auth.leases.ask(&key, now_ms, 50);
    auth.leases.grant(&key, "r1", 4, ask(), now_ms, 60_000);
    for _ in 0..2 {
        assert!(auth.leases.take(&key, 7, 3, now_ms).is_some());
    }
}

#[test]
fn a_renewal_asks_again_as_the_caller_last_did() {
    let (mut bg, auth) = background(&lease_config());
    let mut host = host();
    low_on_slots(&auth, host.now_ms());
    bg.tick(&mut host);
    let renewal = host
        .dispatched
        .iter()
        .find(|d| header(d, ":path") == Some("/v1/authorize"))
        .expect("a renewal");
    let v: serde_json::Value = serde_json::from_str(&renewal.body).unwrap();
    assert_eq!(v["user"], "u");
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["model_key"], "gpt-4o-mini");
    assert_eq!(v["reserve_tokens"], 7);
    assert_eq!(v["reserve_cost_micros"], 3);
    assert!(v["lease_slots"].as_u64().unwrap() >= 2);
    assert_eq!(v["request_id"].as_str(), header(renewal, "x-request-id"));
    let bearer = format!("Bearer {}", testing::POLICY_TOKEN);
    assert_eq!(header(renewal, "authorization"), Some(bearer.as_str()));

    let token = 100 + host.dispatched.len() as u32;
    let allow = br#"{"allow":true,"slots":4}"#;
    bg.answered(&mut host, token, Some(200), allow);
    assert_eq!(counter(&host, "chokepoint.authorize.lease_renewed"), 1);
    assert!(auth.borrow().leases.holds_slots());
}

#[test]
fn slots_past_their_time_go_back_with_the_usage() {
    let (mut bg, auth) = background(&lease_config());
    let mut host = host();
    low_on_slots(&auth, host.now_ms());
    bg.shutdown(&mut host);
    // The spare slot left (of three, two taken), as a release (a JSON string) in the
    // shared queue.
    let released: Vec<String> = host
        .shared_queue
        .iter()
        .filter_map(|i| serde_json::from_slice::<String>(i).ok())
        .collect();
    assert_eq!(released, ["r1.4"], "{:?}", host.shared_queue);
    let key = LeaseTable::key("u", Some("acme"), None, Some("gpt-4o-mini"));
    let now = host.now_ms();
    assert_eq!(auth.borrow_mut().leases.take(&key, 7, 3, now), None);
}
