//! Test fixtures: a private redis-server on a unix socket (or, with
//! `CHOKEPOINT_TEST_REDIS=cluster`, a private three-node Redis Cluster: `cluster`), the
//! service started in-process on two ephemeral ports (gateway and admin), and an HTTP
//! client for it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chokepoint_contract::validate::Schema;
use chokepoint_policy::{run, Clock, ClusterConfig, Config, Error, Listeners};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
pub use crate::cluster::{on_cluster, skip_on_cluster, RedisConnection};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

pub(crate) fn next_id() -> u32 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A fresh temp dir per test, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "chokepoint-policy-test-{}-{}",
            std::process::id(),
            next_id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A redis-server listening only on a unix socket (no TCP port, so no port races),
/// without persistence unless started `persistent`, killed by PID on drop. With
/// `CHOKEPOINT_TEST_REDIS=cluster`, [`RedisServer::start`] starts a three-node cluster
/// instead; the methods that act on "the" process (kill, restart, signals, persistence)
/// panic there, and tests that need them skip themselves (see [`skip_on_cluster`]).
pub struct RedisServer {
    child: Option<Child>,
    cluster: Option<Cluster>,
    /// Where [`RedisServer::start_cluster`] will start the cluster.
    pending_cluster: Vec<(u16, u16)>,
    socket: PathBuf,
    /// Append-only file, fsynced on every write, in the server's temp dir.
    persistent: bool,
    // Declared last: the directory goes after the process that uses it.
    dir: TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        let dir = TempDir::new();
        let socket = dir.path().join("redis.sock");
        let mut server = Self {
            child: None,
            cluster: None,
            pending_cluster: Vec::new(),
            socket,
            persistent: false,
            dir,
        };
        if on_cluster() {
            server.cluster = Some(Cluster::start(server.dir.path()));
        } else {
            server.spawn();
        }
        server
    }

    /// Like [`RedisServer::start`], with `--appendonly yes --appendfsync always`: what
    /// it acknowledged survives a kill and restart.
    pub fn start_persistent() -> Self {
        let dir = TempDir::new();
        let socket = dir.path().join("redis.sock");
        let mut server = Self {
            child: None,
            cluster: None,
            pending_cluster: Vec::new(),
            socket,
            persistent: true,
            dir,
        };
        server.spawn();
        server
    }

    /// A server that is not running yet; `restart` brings it up on its socket path.
    pub fn not_started() -> Self {
        let dir = TempDir::new();
        let socket = dir.path().join("redis.sock");
        Self {
            child: None,
            cluster: None,
            pending_cluster: Vec::new(),
            socket,
            persistent: false,
            dir,
        }
    }

    /// The single server's URL (not in cluster mode: see [`RedisServer::service_env`]).
    pub fn url(&self) -> String {
        self.single_only("url");
        format!("unix://{}", self.socket.display())
    }

    /// Where the service finds this Redis: the URL, or the cluster's nodes.
    pub fn apply(&self, config: &mut Config) {
        let nodes = match &self.cluster {
            Some(cluster) => cluster.nodes(),
            None if !self.pending_cluster.is_empty() => self
                .pending_cluster
                .iter()
                .map(|&(port, _)| ("127.0.0.1".to_owned(), port))
                .collect(),
            None => {
                config.redis_url = self.url();
                return;
            }
        };
        config.redis_cluster = Some(ClusterConfig {
            nodes,
            username: None,
            password: None,
        });
    }

    /// The same as the service binary's environment.
    pub fn service_env(&self) -> Vec<(&'static str, String)> {
        match &self.cluster {
            Some(cluster) => vec![("CHOKEPOINT_REDIS_CLUSTER_NODES", cluster.nodes_shown())],
            None => vec![("CHOKEPOINT_REDIS_URL", self.url())],
        }
    }

    /// Kills one node of the cluster (cluster mode only).
    pub fn kill_cluster_node(&mut self, index: usize) {
        self.cluster
            .as_mut()
            .expect("kill_cluster_node: not in cluster mode")
            .kill_node(index);
    }

    /// Starts a killed cluster node again (cluster mode only).
    pub fn restart_cluster_node(&mut self, index: usize) {
        self.cluster
            .as_mut()
            .expect("restart_cluster_node: not in cluster mode")
            .restart_node(index);
    }

    /// A cluster that is not running yet, on these (port, bus port) pairs; `start_cluster`
    /// brings it up there (cluster mode only).
    pub fn cluster_not_started(ports: Vec<(u16, u16)>) -> Self {
        let dir = TempDir::new();
        let socket = dir.path().join("redis.sock");
        Self {
            child: None,
            cluster: None,
            pending_cluster: ports,
            socket,
            persistent: false,
            dir,
        }
    }

    pub fn start_cluster(&mut self) {
        self.cluster = Some(Cluster::start_on(self.dir.path(), &self.pending_cluster));
    }

    fn single_only(&self, what: &str) {
        assert!(
            self.cluster.is_none(),
            "RedisServer::{what} acts on one redis-server; a test that needs it must skip \
             itself in cluster mode (support::skip_on_cluster)"
        );
    }

    pub fn pid(&self) -> u32 {
        self.single_only("pid");
        self.child.as_ref().expect("redis is running").id()
    }

    pub fn kill(&mut self) {
        self.single_only("kill");
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts (again) on the same socket path, as a restarted Redis would come back.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// A direct connection to this Redis: the cluster client in cluster mode.
    pub async fn connection(&self) -> RedisConnection {
        if let Some(cluster) = &self.cluster {
            return cluster.connection().await;
        }
        RedisConnection::Single(
            redis::Client::open(self.url())
                .expect("redis url")
                .get_multiplexed_async_connection()
                .await
                .expect("connect to test redis"),
        )
    }

    fn spawn(&mut self) {
        self.single_only("spawn");
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args(["--unixsocketperm", "700", "--save", ""])
            .args(if self.persistent {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "everysec"]
            })
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed?)");
        let deadline = Instant::now() + Duration::from_secs(10);
        // A socket file left by a killed predecessor refuses connections until the new
        // server has replaced it, so a successful connect means this server is up.
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("redis-server exited early: {status}");
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The cluster stops its nodes (and shows their logs if the test failed) itself.
        drop(self.cluster.take());
    }
}

pub struct Service {
    /// The gateway listener: authorize, usage (with [`GATEWAY_TOKEN`]), healthz.
    pub base: String,
    /// The admin listener: the admin API, metrics, healthz.
    pub admin_base: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

impl Service {
    /// Starts the service; a config without a gateway token gets [`GATEWAY_TOKEN`], the
    /// one the helpers send.
    pub async fn start(mut config: Config) -> Self {
        // The service's own log on stderr, to see why a test got a 503 (not captured per
        // test: the service logs from the runtime's threads).
        if std::env::var_os("CHOKEPOINT_TEST_LOG").is_some() {
            chokepoint_policy::stderr_log::install(log::Level::Info);
        }
        config
            .gateway_token
            .get_or_insert_with(|| GATEWAY_TOKEN.to_owned());
        // The cluster's key layout on one Redis: every script call one hash tag.
        if cluster_layout() {
            config.redis_cluster_layout = true;
        }
        let listeners = listeners().await;
        let addr = listeners.gateway.local_addr().expect("local addr");
        let admin_addr = listeners.admin.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listeners, config, async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        Self {
            base: format!("http://{addr}"),
            admin_base: format!("http://{admin_addr}"),
            http,
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("service task")
    }

    pub async fn authorize(&self, user: &str) -> (StatusCode, Value) {
        self.authorize_body(&serde_json::json!({
            "request_id": format!("req-{}", next_id()),
            "user": user,
            "tenant": "acme",
            "groups": ["eng"],
            "model": "gpt-4o-mini",
            "provider": "openai",
            "stream": false,
        }))
        .await
    }

    /// A POST to the gateway listener, as the filter sends it (with the gateway token).
    pub fn gateway_post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(GATEWAY_TOKEN)
    }

    /// Every decision the service gives is held to the contract's schema.
    pub async fn authorize_body(&self, body: &Value) -> (StatusCode, Value) {
        let response = self
            .gateway_post("/v1/authorize")
            .json(body)
            .send()
            .await
            .expect("send authorize");
        let (status, answer) = json_of(response).await;
        if status == StatusCode::OK {
            meets(Schema::Decision, &answer);
        }
        (status, answer)
    }

    /// `POST /v1/usage` with `{"records": records}`.
    pub async fn post_usage(&self, records: &[Value]) -> (StatusCode, Value) {
        self.post_usage_raw(&serde_json::json!({ "records": records }).to_string())
            .await
    }

    /// Every answer the ledger gives a batch is held to the contract's schema.
    pub async fn post_usage_raw(&self, body: &str) -> (StatusCode, Value) {
        let response = self
            .gateway_post("/v1/usage")
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("send usage");
        let (status, answer) = json_of(response).await;
        if status == StatusCode::OK {
            meets(Schema::UsageAnswer, &answer);
        }
        (status, answer)
    }

    /// `GET /v1/admin/usage` with `token` as the bearer token (none when `None`).
    pub async fn admin_usage(
        &self,
        token: Option<&str>,
        query: &[(&str, &str)],
    ) -> reqwest::Response {
        let query: Vec<String> = query
            .iter()
            .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
            .collect();
        let mut request = self.http.get(format!(
            "{}/v1/admin/usage?{}",
            self.admin_base,
            query.join("&")
        ));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("send admin usage")
    }

    /// Ledger totals for one scope, id and period, read with the admin token.
    pub async fn ledger(&self, scope: &str, id: &str, period: &str) -> Value {
        let response = self
            .admin_usage(
                Some(ADMIN_TOKEN),
                &[("scope", scope), ("id", id), ("period", period)],
            )
            .await;
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "{scope} {id} {period}: {body}");
        body
    }

    /// An admin call with [`ADMIN_TOKEN`]: `method` on `path`, with `body` as JSON.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.admin_base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(body);
        }
        json_of(request.send().await.expect("send admin call")).await
    }

    /// `PUT /v1/admin/limits/<kind>/<id>`, asserting a 200.
    pub async fn set_limits(&self, kind: &str, id: &str, limits: Value) {
        let path = format!("/v1/admin/limits/{kind}/{}", percent_encode(id));
        let (status, body) = self.admin(reqwest::Method::PUT, &path, Some(&limits)).await;
        assert_eq!(status, StatusCode::OK, "PUT {path} {limits}: {body}");
    }

    /// `GET /v1/admin/spend`, asserting a 200.
    pub async fn spend(&self, kind: &str, id: &str, period: Option<&str>) -> Value {
        let mut path = format!(
            "/v1/admin/spend?scope_kind={kind}&id={}",
            percent_encode(id)
        );
        if let Some(period) = period {
            path.push_str(&format!("&period={period}"));
        }
        let (status, body) = self.admin(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// A GET on the gateway listener.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("send get")
    }

    /// A GET on the admin listener.
    pub async fn get_admin(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.admin_base))
            .send()
            .await
            .expect("send get")
    }

    pub async fn metrics(&self) -> String {
        let response = self.get_admin("/metrics").await;
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.expect("metrics body")
    }
}

/// A gateway and an admin listener on free ports.
pub async fn listeners() -> Listeners {
    Listeners {
        gateway: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        admin: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    }
}

pub async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("response body");
    assert!(
        content_type.starts_with("application/json"),
        "{status} with content-type {content_type:?}: {text}"
    );
    let body = serde_json::from_str(&text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"));
    (status, body)
}

/// A UUID no other test uses.
pub fn new_user() -> String {
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        std::process::id(),
        next_id()
    )
}

pub fn config(redis: &RedisServer, limit: u64, window: Duration) -> Config {
    let mut config = Config {
        requests_per_window: limit,
        window,
        ..Config::default()
    };
    redis.apply(&mut config);
    config
}

/// Encodes everything but RFC 3986 unreserved characters (reqwest's own `query` needs a
/// feature the workspace does not enable).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether the services under test call Redis in the cluster's key layout
/// (`CHOKEPOINT_TEST_REDIS_LAYOUT=cluster`, see [`Service::start`]), as they do against
/// a cluster.
pub fn cluster_layout() -> bool {
    std::env::var("CHOKEPOINT_TEST_REDIS_LAYOUT").as_deref() == Ok("cluster")
        || crate::cluster::on_cluster()
}

/// The key that says a record was booked: its marker, or in the cluster layout the
/// marker of the call that logs it in the audit stream (each slot has its own).
pub fn marker(request_id: &str) -> String {
    if cluster_layout() {
        format!("ck:usage:seen:{{ck:usage:log}}:{request_id}")
    } else {
        format!("ck:usage:seen:{{{request_id}}}")
    }
}

/// A `KEYS` pattern matching every [`marker`].
pub fn marker_pattern() -> &'static str {
    if cluster_layout() {
        "ck:usage:seen:{ck:usage:log}:*"
    } else {
        "ck:usage:seen:*"
    }
}

/// What every request's (or lease slot's) own reservation key starts with: its record,
/// or in the cluster layout its index (its records are per scope).
pub fn reservation_prefix() -> &'static str {
    if cluster_layout() {
        "ck:resv:idx:"
    } else {
        "ck:resv:req:"
    }
}

/// The gateway token every service under test expects (see [`Service::start`]).
pub const GATEWAY_TOKEN: &str = "test-gateway-token-5b7e0c1d9a2f4e68";

/// The admin token of [`usage_config`].
pub const ADMIN_TOKEN: &str = "test-admin-token-3f9a";

/// A service with the admin endpoints enabled and a generous rate limit.
pub fn usage_config(redis: &RedisServer) -> Config {
    Config {
        admin_token: Some(ADMIN_TOKEN.to_owned()),
        ..config(redis, 1000, Duration::from_secs(60))
    }
}

/// Asserts the service's standard 503 body.
pub fn assert_unavailable(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["type"], "unavailable", "{body}");
    assert_eq!(body["error"]["code"], "redis_unavailable", "{body}");
    assert_eq!(
        body["error"]["message"], "policy store unavailable",
        "{body}"
    );
}

/// Polls `authorize` until it answers 200, for recovery tests.
pub async fn wait_until_allowed(service: &Service, user: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = service.authorize(user).await;
        if status == StatusCode::OK {
            return body;
        }
        assert_unavailable(status, &body);
        assert!(
            Instant::now() < deadline,
            "service did not recover within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A clock the test moves by hand, for budget periods (see `chokepoint_policy::Clock`).
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn at(ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(ms)))
    }

    pub fn clock(&self) -> Clock {
        let now = self.0.clone();
        Clock::from_fn(move || now.load(Ordering::SeqCst))
    }

    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(
            u64::try_from(by.as_millis()).expect("fits"),
            Ordering::SeqCst,
        );
    }
}

/// An authorize body with every scope and a reservation.
pub fn authorize_request(
    user: &str,
    tenant: &str,
    reserve_tokens: u64,
    reserve_cost_micros: u64,
) -> Value {
    serde_json::json!({
        "request_id": format!("req-{}", next_id()),
        "user": user,
        "tenant": tenant,
        "groups": ["eng"],
        "cost_center": "cc-1",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "stream": false,
        "reserve_tokens": reserve_tokens,
        "reserve_cost_micros": reserve_cost_micros,
    })
}

/// The usage record the filter sends for an authorized `request` (same scopes).
pub fn usage_for(request: &Value, input: u64, output: u64, cost_micros: u64) -> Value {
    serde_json::json!({
        "request_id": request["request_id"],
        "user": request["user"],
        "tenant": request["tenant"],
        "cost_center": request["cost_center"],
        "model": request["model"],
        "provider": "openai",
        "input_tokens": input,
        "output_tokens": output,
        "cost_micros": cost_micros,
    })
}

/// Panics, naming every violation, unless `payload` meets `schema`.
pub fn meets(schema: Schema, payload: &Value) {
    if let Err(e) = chokepoint_contract::validate::check(schema, payload) {
        panic!("{e}\npayload: {payload}");
    }
}

/// A fresh tenant name, so tests sharing nothing share no scope either.
pub fn new_tenant() -> String {
    format!("t{}-{}", std::process::id(), next_id())
}
