//! The compose stack: `docker-compose.yml` and the container bootstrap, rendered from a
//! policy file whose endpoints are compose service names (`envoy/compose/chokepoint.yaml`).
//! Secrets and machine paths stay `${VAR}`s, filled from the environment or an env file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::bundle::{self, Options};
use crate::network_policy::POLICY_ADMIN_PORT;
use crate::plugin;
use crate::policy::Policy;

/// Where the container bootstrap expects the filter (compose mounts it there).
pub const WASM_IN_CONTAINER: &str = "/etc/envoy/chokepoint_filter.wasm";
const GATEWAY_PORT: u16 = 10000;
const ADMIN_PORT: u16 = 9901;

const HEADER: &str = "\
# Rendered by `chokepoint-config compose` from envoy/compose/chokepoint.yaml; edit that.
# chokepoint on real containers: Redis, the policy service, the mock providers, a mock
# identity provider and Envoy with the chokepoint filter. For docker-compose 1.29 (file
# format 2.4: healthchecks, depends_on conditions and init).
#
# Every runtime value comes from the environment (or an --env-file): nothing secret and
# no machine path is in this file. Required:
#   CHOKEPOINT_WASM          host path of the filter (.wasm), mounted read-only into envoy
#   CHOKEPOINT_JWKS_FILE     host path of the JWKS the idp service serves (the public keys
#                            of the tokens' issuer, e.g. `chokepoint-token --jwks`)
#   CHOKEPOINT_ADMIN_TOKEN   bearer token of the policy service's /v1/admin/* API
#   CHOKEPOINT_MOCK_API_KEY  the key the mock provider accepts
#   and Envoy's secrets, listed under the envoy service (the UUID salt, the policy
#   service's gateway token, which the policy service gets too, and each provider's
#   key; here the mock's key)
# Optional:
#   CHOKEPOINT_IMAGE                  runtime image (default chokepoint-runtime:local,
#                                     built from envoy/compose/Dockerfile)
#   CHOKEPOINT_REQUESTS_PER_WINDOW    default per-user request limit (default 60)
#
# Only two ports are published, on loopback and on ephemeral host ports (read them back
# with `docker-compose -p NAME port envoy 10000`): the gateway and the policy service's
# admin listener (its admin API and metrics). Envoy's admin interface listens on the
# container's loopback only (its healthcheck runs inside the container: `docker-compose
# exec envoy curl 127.0.0.1:9901/stats`); the policy service's gateway listener, Redis,
# the mock and the idp are reachable only by the services.
#
#   docker-compose -p NAME -f envoy/docker-compose.yml --env-file ENV up -d
#   docker-compose -p NAME -f envoy/docker-compose.yml --env-file ENV down -v
# scripts/test-compose builds the image, writes ENV and runs a smoke test against it.
";

fn service_header(out: &mut String, name: &str) {
    let _ = writeln!(out, "  {name}:");
    let _ = writeln!(
        out,
        "    image: ${{CHOKEPOINT_IMAGE:-chokepoint-runtime:local}}"
    );
    let _ = writeln!(out, "    init: true");
}

fn healthcheck(out: &mut String, test: &str, retries: u32) {
    let _ = writeln!(out, "    healthcheck:");
    let _ = writeln!(out, "      test: {test}");
    let _ = writeln!(out, "      interval: 1s");
    let _ = writeln!(out, "      timeout: 3s");
    let _ = writeln!(out, "      retries: {retries}");
}

fn curl(url: &str) -> String {
    format!(r#"["CMD", "curl", "-fsS", "-o", "/dev/null", "{url}"]"#)
}

/// Whether the policy names a compose service of the test bed (`mock`, `idp`).
fn uses_host(policy: &Policy, host: &str) -> bool {
    policy.providers.iter().any(|p| p.url.host == host)
        || policy
            .issuers
            .iter()
            .any(|i| matches!(&i.keys, crate::policy::Keys::Uri { url, .. } if url.host == host))
}

/// `docker-compose.yml`.
pub fn compose_file(policy: &Policy) -> String {
    let mut out = String::from(HEADER);
    out.push_str("version: \"2.4\"\n\nservices:\n");
    service_header(&mut out, "redis");
    out.push_str(
        "    # Append-only persistence on a named volume: the ledger and the limits survive a\n    \
         # restart of the container.\n    \
         command: >-\n      \
         redis-server --port 6379 --bind 0.0.0.0 --protected-mode no\n      \
         --dir /data --appendonly yes --appendfsync everysec\n    \
         volumes:\n      - redis-data:/data\n",
    );
    healthcheck(
        &mut out,
        r#"["CMD", "redis-cli", "-p", "6379", "ping"]"#,
        30,
    );

    let ps = &policy.policy_service;
    out.push('\n');
    service_header(&mut out, "policy");
    let _ = write!(
        out,
        "    command: >-\n      chokepoint-policy serve --listen 0.0.0.0:{port}\n      \
         --admin-listen 0.0.0.0:{POLICY_ADMIN_PORT}\n      \
         --requests-per-window ${{CHOKEPOINT_REQUESTS_PER_WINDOW:-{rpw}}}\n      \
         --window-secs {win} --reservation-ttl-secs {ttl}",
        port = ps.url.port,
        rpw = ps.requests_per_window,
        win = ps.window_secs,
        ttl = ps.reservation_ttl_secs,
    );
    if !ps.audit_stream {
        out.push_str("\n      --usage-audit-stream off");
    }
    if !policy.limits.is_empty() {
        out.push_str("\n      --limits /etc/chokepoint/limits.json");
    }
    out.push_str("\n      --identity /etc/chokepoint/identity.json");
    out.push_str(
        "\n    environment:\n      CHOKEPOINT_REDIS_URL: redis://redis:6379\n      \
         CHOKEPOINT_ADMIN_TOKEN: ${CHOKEPOINT_ADMIN_TOKEN:?set CHOKEPOINT_ADMIN_TOKEN}\n",
    );
    // The gateway's UUID salt, by the gateway's name for it: the service derives the
    // same user UUIDs from a viewer's company token.
    let salt = &policy.gateway.uuid_salt_env;
    let _ = writeln!(out, "      {salt}: ${{{salt}:?set {salt}}}");
    // The service reads its gateway token from this fixed name; Envoy's filter from the
    // policy file's token_env. One value for both.
    let token = &ps.token_env;
    let _ = writeln!(
        out,
        "      CHOKEPOINT_POLICY_TOKEN: ${{{token}:?set {token}}}"
    );
    out.push_str(
        "    volumes:\n      - ./compose/identity.json:/etc/chokepoint/identity.json:ro\n",
    );
    if !policy.limits.is_empty() {
        out.push_str("      - ./compose/limits.json:/etc/chokepoint/limits.json:ro\n");
    }
    let _ = writeln!(
        out,
        "    ports:\n      - \"127.0.0.1::{POLICY_ADMIN_PORT}\""
    );
    out.push_str("    depends_on:\n      redis: {condition: service_healthy}\n");
    healthcheck(
        &mut out,
        &curl(&format!("http://127.0.0.1:{}/healthz", ps.url.port)),
        30,
    );

    let mut depends = vec!["policy"];
    if uses_host(policy, "mock") {
        depends.push("mock");
        out.push_str(
            "\n  # The upstream of every provider: speaks the OpenAI, Anthropic, Gemini and Azure APIs.\n",
        );
        service_header(&mut out, "mock");
        out.push_str(
            "    command: chokepoint-mock --listen 0.0.0.0:8090 --name openai-mock\n    \
             environment:\n      \
             CHOKEPOINT_MOCK_API_KEY: ${CHOKEPOINT_MOCK_API_KEY:?set CHOKEPOINT_MOCK_API_KEY}\n",
        );
        healthcheck(&mut out, &curl("http://127.0.0.1:8090/__mock/requests"), 30);
    }
    if uses_host(policy, "idp") {
        depends.push("idp");
        out.push_str(
            "\n  # The issuer's JWKS at http://idp:8070/jwks.json (re-read from the file per request).\n",
        );
        service_header(&mut out, "idp");
        out.push_str(
            "    command: chokepoint-idp --listen 0.0.0.0:8070 --jwks-file /etc/chokepoint/jwks.json\n    \
             volumes:\n      \
             - ${CHOKEPOINT_JWKS_FILE:?set CHOKEPOINT_JWKS_FILE}:/etc/chokepoint/jwks.json:ro\n",
        );
        healthcheck(&mut out, &curl("http://127.0.0.1:8070/jwks.json"), 30);
    }

    out.push('\n');
    service_header(&mut out, "envoy");
    let _ = write!(
        out,
        "    # Envoy writes its access log every --file-flush-interval-msec (10 s by default): a\n    \
         # killed Envoy loses what it had not written, from the log and the reconciler.\n    \
         command: >-\n      envoy -c /etc/envoy/envoy.yaml --concurrency 2\n      \
         --file-flush-interval-msec {}\n      \
         --log-level warn --component-log-level wasm:info\n    \
         # The secrets reach the filter only through Envoy's environment (host_env_keys).\n    \
         environment:\n",
        crate::envoy::FILE_FLUSH_INTERVAL_MSEC
    );
    for key in plugin::env_keys(policy) {
        let _ = writeln!(out, "      {key}: ${{{key}:?set {key}}}");
    }
    let _ = write!(
        out,
        "    volumes:\n      - ./compose/envoy.yaml:/etc/envoy/envoy.yaml:ro\n      \
         - ${{CHOKEPOINT_WASM:?set CHOKEPOINT_WASM}}:{WASM_IN_CONTAINER}:ro\n      \
         - envoy-usage:/var/log/chokepoint\n    \
         ports:\n      - \"127.0.0.1::{GATEWAY_PORT}\"\n    \
         depends_on:\n"
    );
    for d in depends {
        let _ = writeln!(out, "      {d}: {{condition: service_healthy}}");
    }
    healthcheck(
        &mut out,
        &curl(&format!("http://127.0.0.1:{ADMIN_PORT}/ready")),
        60,
    );
    out.push_str("\nvolumes:\n  redis-data:\n  envoy-usage:\n");
    out
}

/// The files of the compose stack under `dir` (the repository's `envoy/`): the compose
/// file, the container bootstrap, the policy service's identity file and, with limit
/// sets, its limits.
pub fn files(policy: &Policy, dir: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let o = Options {
        listen: "0.0.0.0".into(),
        port: GATEWAY_PORT,
        admin_port: ADMIN_PORT,
        wasm: WASM_IN_CONTAINER.into(),
        ..Options::default()
    };
    let mut out = vec![
        (dir.join("docker-compose.yml"), compose_file(policy)),
        (
            dir.join("compose/envoy.yaml"),
            bundle::render(policy, "bootstrap", &o)?,
        ),
        (
            dir.join("compose/identity.json"),
            bundle::render(policy, "policy-identity", &o)?,
        ),
    ];
    if !policy.limits.is_empty() {
        out.push((
            dir.join("compose/limits.json"),
            bundle::render(policy, "limits", &o)?,
        ));
    }
    Ok(out)
}
