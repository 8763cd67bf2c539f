//! chokepoint-login against the mock IdP (chokepoint-dev's, in process, on a random port):
//! each OAuth flow, the cache, expiry and refresh, and the failures a user meets.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chokepoint_dev::devtoken::DevKey;
use chokepoint_dev::idp::oauth::{Client, OAuth, Settings};
use chokepoint_dev::idp::Jwks;
use serde_json::{json, Value};

const SECRET: &str = "robot secret/with:odd+chars";

struct Idp {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Idp {
    /// Tokens live `ttl_secs`; device codes are polled every second.
    fn start(ttl_secs: u64) -> Idp {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", std_listener.local_addr().unwrap());
        let key = DevKey::generate("login-test");
        let oauth = OAuth::new(Settings {
            key: key.clone(),
            issuer: "https://idp.chokepoint.test".into(),
            audience: "chokepoint".into(),
            clients: vec![
                Client {
                    client_id: "chokepoint-cli".into(),
                    client_secret: None,
                    subject: None,
                    tenant: None,
                    groups: vec![],
                },
                Client {
                    client_id: "ci-robot".into(),
                    client_secret: Some(SECRET.into()),
                    subject: Some("ci-robot".into()),
                    tenant: Some("ci".into()),
                    groups: vec!["robots".into()],
                },
            ],
            token_ttl: Duration::from_secs(ttl_secs),
            device_ttl: Duration::from_secs(30),
            device_interval: Duration::from_secs(1),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                chokepoint_dev::idp::serve(
                    listener,
                    Jwks::Inline(key.jwks_json()),
                    Some(oauth),
                    async {
                        let _ = rx.await;
                    },
                )
                .await
                .unwrap();
            });
        });
        Idp {
            url,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    fn post(&self, path: &str, body: Value) -> u16 {
        ureq::post(&format!("{}{path}", self.url))
            .config()
            .http_status_as_error(false)
            .build()
            .content_type("application/json")
            .send(body.to_string())
            .unwrap()
            .status()
            .as_u16()
    }

    /// Tokens issued so far, by grant type.
    fn issued(&self, grant: &str) -> u64 {
        let text = ureq::get(&format!("{}/__idp/stats", self.url))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let stats: Value = serde_json::from_str(&text).unwrap();
        stats["oauth"]["tokens_issued"][grant].as_u64().unwrap_or(0)
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A user's machine: a cache home of its own and the helper's configuration.
struct User {
    home: PathBuf,
    env: Vec<(String, String)>,
}

impl User {
    fn new(name: &str, idp: &Idp, client_id: &str) -> User {
        let home =
            std::env::temp_dir().join(format!("chokepoint-login-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).unwrap();
        let env = vec![
            (
                "CHOKEPOINT_LOGIN_TOKEN_URL".into(),
                format!("{}/oauth/token", idp.url),
            ),
            (
                "CHOKEPOINT_LOGIN_DEVICE_URL".into(),
                format!("{}/oauth/device", idp.url),
            ),
            ("CHOKEPOINT_LOGIN_CLIENT_ID".into(), client_id.into()),
            ("CHOKEPOINT_LOGIN_ALLOW_HTTP".into(), "true".into()),
        ];
        User { home, env }
    }

    fn set(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.into(), value.into()));
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chokepoint-login"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn cache_file(&self, client_id: &str) -> PathBuf {
        self.home
            .join("cache")
            .join("chokepoint")
            .join(format!("{client_id}.json"))
    }

    /// `chokepoint-login login`, approved (or denied) at the IdP as the person would.
    fn device_login(&self, idp: &Idp, approval: Value) -> Output {
        let mut child = self
            .command(&["login"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut shown = String::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap() > 0 {
            shown.push_str(&line);
            if line.contains("enter the code") {
                break;
            }
            line.clear();
        }
        let code = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(shown.contains(&format!("{}/device", idp.url)), "{shown}");
        let mut approval = approval;
        approval["user_code"] = Value::from(code);
        assert_eq!(idp.post("/__idp/device/approve", approval), 204);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        let mut out = child.wait_with_output().unwrap();
        out.stderr = (shown + &rest).into_bytes();
        out
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The one token a successful run prints, and its claims.
fn token_of(out: &Output) -> (String, Value) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
    let text = stdout(out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stdout, the token: {text:?}");
    let payload = lines[0].split('.').nth(1).expect("a JWT");
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    (lines[0].to_string(), claims)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn client_credentials_from_a_secret_file_cached_until_near_expiry() {
    let idp = Idp::start(3600);
    let mut user = User::new("cc", &idp, "ci-robot");
    let secret = user.home.join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    user.set(
        "CHOKEPOINT_LOGIN_CLIENT_SECRET_FILE",
        secret.to_str().unwrap(),
    );

    let (first, claims) = token_of(&user.run(&[]));
    assert_eq!(claims["sub"], "ci-robot");
    assert_eq!(claims["tenant"], "ci");
    assert_eq!(claims["groups"], json!(["robots"]));
    assert_eq!(claims["iss"], "https://idp.chokepoint.test");
    assert_eq!(idp.issued("client_credentials"), 1);
    let cache = user.cache_file("ci-robot");
    assert_eq!(mode(&cache), 0o600);
    assert_eq!(mode(cache.parent().unwrap()), 0o700);
    let cached: Value = serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert!(
        cached.get("refresh_token").is_none(),
        "no refresh token for client credentials"
    );

    // Reused: no second request.
    let (again, _) = token_of(&user.run(&["token"]));
    assert_eq!(again, first);
    assert_eq!(idp.issued("client_credentials"), 1);

    // A margin longer than the token's life: a new one every time.
    user.set("CHOKEPOINT_LOGIN_MARGIN_SECS", "3601");
    let (renewed, _) = token_of(&user.run(&[]));
    assert_ne!(renewed, first);
    assert_eq!(idp.issued("client_credentials"), 2);
}

#[test]
fn client_secret_from_the_environment_and_a_wrong_one_refused() {
    let idp = Idp::start(3600);
    let mut user = User::new("cc-env", &idp, "ci-robot");
    user.set("CHOKEPOINT_LOGIN_CLIENT_SECRET", SECRET);
    let (_, claims) = token_of(&user.run(&[]));
    assert_eq!(claims["sub"], "ci-robot");

    user.set("CHOKEPOINT_LOGIN_CLIENT_SECRET", "wrong");
    user.set(
        "CHOKEPOINT_LOGIN_CACHE",
        user.home.join("other.json").to_str().unwrap(),
    );
    let out = user.run(&[]);
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("refused: invalid_client"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("wrong"),
        "the secret is not echoed: {}",
        stderr(&out)
    );
}

#[test]
fn device_login_then_cached_then_refreshed_with_rotation() {
    // Tokens of an hour, renewed when less than 60 s are left: reused. The margin is
    // raised past the token's life below to make it due, so no step races the clock.
    let idp = Idp::start(3600);
    let mut user = User::new("device", &idp, "chokepoint-cli");
    user.set("CHOKEPOINT_LOGIN_MARGIN_SECS", "60");

    let out = user.run(&[]);
    assert!(
        !out.status.success(),
        "not signed in, no terminal: an error"
    );
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("not signed in: run `chokepoint-login login`"),
        "{}",
        stderr(&out)
    );

    let out = user.device_login(
        &idp,
        json!({"subject": "alice", "tenant": "acme", "groups": ["eng"]}),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "login prints nothing on stdout");
    assert!(stderr(&out).contains("signed in"), "{}", stderr(&out));
    assert_eq!(
        idp.issued("urn:ietf:params:oauth:grant-type:device_code"),
        1
    );
    let cache = user.cache_file("chokepoint-cli");
    assert_eq!(mode(&cache), 0o600);
    let read_cache =
        || -> Value { serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap() };
    let first_refresh = read_cache()["refresh_token"].as_str().unwrap().to_string();

    let (first, claims) = token_of(&user.run(&[]));
    assert_eq!(
        (claims["sub"].as_str(), claims["tenant"].as_str()),
        (Some("alice"), Some("acme"))
    );
    assert_eq!(claims["client_id"], "chokepoint-cli");
    assert_eq!(first, read_cache()["access_token"].as_str().unwrap());
    assert_eq!(idp.issued("refresh_token"), 0, "the fresh token was reused");

    user.set("CHOKEPOINT_LOGIN_MARGIN_SECS", "3601");
    let (second, claims) = token_of(&user.run(&[]));
    assert_ne!(second, first);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(idp.issued("refresh_token"), 1);
    let rotated = read_cache()["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rotated, first_refresh, "the rotated refresh token was kept");

    // Sessions ended at the IdP: a clear error, the cache gone.
    assert_eq!(idp.post("/__idp/revoke", json!({})), 204);
    let out = user.run(&[]);
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("the sign-in has ended"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("run `chokepoint-login login`"),
        "{}",
        stderr(&out)
    );
    assert!(!cache.exists());
}

#[test]
fn a_denied_device_login_fails() {
    let idp = Idp::start(3600);
    let user = User::new("denied", &idp, "chokepoint-cli");
    let out = user.device_login(&idp, json!({"deny": true}));
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("the sign-in was denied"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn idp_down_is_a_clear_error_unless_the_cached_token_is_still_valid() {
    let mut idp = Idp::start(61);
    let mut user = User::new("down", &idp, "ci-robot");
    user.set("CHOKEPOINT_LOGIN_CLIENT_SECRET", SECRET);
    user.set("CHOKEPOINT_LOGIN_TIMEOUT_SECS", "2");
    let (first, _) = token_of(&user.run(&[]));
    idp.stop();

    // Inside the margin but not expired: the cached token, with a warning.
    user.set("CHOKEPOINT_LOGIN_MARGIN_SECS", "120");
    let out = user.run(&[]);
    let (again, _) = token_of(&out);
    assert_eq!(again, first);
    assert!(
        stderr(&out).contains("using the cached token"),
        "{}",
        stderr(&out)
    );

    // Nothing cached: an error naming the endpoint, within the timeout.
    user.set(
        "CHOKEPOINT_LOGIN_CACHE",
        user.home.join("empty.json").to_str().unwrap(),
    );
    let started = Instant::now();
    let out = user.run(&[]);
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains(&format!("{}/oauth/token", idp.url)),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exec_sets_each_variable_to_the_token() {
    let idp = Idp::start(3600);
    let mut user = User::new("exec", &idp, "ci-robot");
    user.set("CHOKEPOINT_LOGIN_CLIENT_SECRET", SECRET);
    let (token, _) = token_of(&user.run(&[]));
    let out = user.run(&[
        "exec",
        "--env",
        "GEMINI_API_KEY",
        "--env",
        "CHOKEPOINT_TOKEN",
        "--",
        "sh",
        "-c",
        "printf '%s\\n%s\\n' \"$GEMINI_API_KEY\" \"$CHOKEPOINT_TOKEN\"",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{token}\n{token}\n"));
}

#[test]
fn plain_http_and_missing_settings_are_refused() {
    let idp = Idp::start(3600);
    let mut user = User::new("config", &idp, "ci-robot");
    user.set("CHOKEPOINT_LOGIN_CLIENT_SECRET", SECRET);
    user.set("CHOKEPOINT_LOGIN_ALLOW_HTTP", "false");
    let out = user.run(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("must be https://"),
        "{}",
        stderr(&out)
    );
    assert_eq!(idp.issued("client_credentials"), 0);

    user.env.retain(|(k, _)| k != "CHOKEPOINT_LOGIN_TOKEN_URL");
    let out = user.run(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no token endpoint"),
        "{}",
        stderr(&out)
    );
}
