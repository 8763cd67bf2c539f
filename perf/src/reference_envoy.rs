//! The reference Envoys of the benchmark (the same Envoy and upstream, no filter or one
//! reference filter), and Envoy's memory by worker count with and without chokepoint.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use chokepoint_render::envoy::MEMORY_RELEASE_BYTES;

use crate::bench::rss_kib;
use chokepoint_dev::stack::process::{self, Managed};
use chokepoint_dev::stack::{gateway_port, Stack};

/// What a reference Envoy runs before its router.
pub enum Extra<'a> {
    None,
    /// Envoy's own JWT filter with this JWKS.
    JwtAuthn(&'a str),
    /// A wasm filter that does nothing, from this file.
    EmptyWasm(&'a std::path::Path),
}

/// The empty wasm filter (`perf/empty-filter`) as cargo builds it in the repository at
/// `root` (scripts/bench and scripts/bench-instructions build it; the chokepoint filter
/// ships from elsewhere, scripts/build-filter).
pub fn empty_filter_wasm(root: &std::path::Path) -> std::path::PathBuf {
    root.join("target/wasm32-wasip1/release/chokepoint_empty_filter.wasm")
}

/// The same Envoy, same upstream, no filters (or one reference filter): the reference.
pub async fn bare_envoy(
    stack: &Stack,
    dir: &std::path::Path,
    name: &str,
    extra: Extra<'_>,
    workers: u32,
) -> Result<(String, Managed), String> {
    let cfg = write_config(stack, dir, name, extra)?;
    let admin_file = dir.join(format!("{name}-admin.addr"));
    // An earlier instance of the same name left its address behind.
    let _ = std::fs::remove_file(&admin_file);
    let mut cmd = Command::new(&stack.opts.envoy);
    cmd.arg("-c")
        .arg(&cfg)
        .arg("--admin-address-path")
        .arg(&admin_file)
        .args(["--use-dynamic-base-id", "--concurrency"])
        .arg(workers.to_string())
        .args(["-l", "warn"]);
    let mut proc = Managed::spawn(name, cmd, &dir.join(format!("{name}-envoy.log")))
        .map_err(|e| e.to_string())?;
    let admin = process::wait_for_file(&admin_file, &mut proc, Duration::from_secs(30))?;
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(port) = gateway_port(&client, &format!("http://{admin}")).await {
            return Ok((format!("http://127.0.0.1:{port}"), proc));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("bare Envoy's listener never came up".into())
}

/// Writes the configuration of the reference Envoy `name` into `dir`
/// (`{name}-envoy.yaml`) and returns its path.
pub fn write_config(
    stack: &Stack,
    dir: &std::path::Path,
    name: &str,
    extra: Extra<'_>,
) -> Result<PathBuf, String> {
    let mock_port = stack
        .mock_url
        .as_deref()
        .and_then(|u| u.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or("no mock")?;
    // Envoy's own JWT filter with the same key (inline JWKS), the token in `x-jwt` (the
    // upstream's key travels in `authorization`), and its verified-token cache on.
    let extra_filter = match extra {
        Extra::JwtAuthn(jwks) => format!(
            r#"
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                dev:
                  issuer: {issuer}
                  audiences: [{audience}]
                  from_headers: [{{name: x-jwt}}]
                  forward: false
                  local_jwks: {{inline_string: '{jwks}'}}
                  jwt_cache_config: {{jwt_cache_size: 1000}}
              rules:
              - match: {{prefix: "/"}}
                requires: {{provider_name: dev}}"#,
            issuer = chokepoint_dev::devtoken::DEFAULT_ISSUER,
            audience = chokepoint_dev::devtoken::DEFAULT_AUDIENCE,
            jwks = jwks.replace('\'', "''"),
        ),
        // The same runtime and failure policy as chokepoint's filter.
        Extra::EmptyWasm(path) => format!(
            r#"
          - name: empty
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: empty
                failure_policy: FAIL_CLOSED
                vm_config:
                  vm_id: empty
                  runtime: envoy.wasm.runtime.v8
                  code: {{local: {{filename: '{path}'}}}}"#,
            path = path.display().to_string().replace('\'', "''"),
        ),
        Extra::None => String::new(),
    };
    // The allocator setting of chokepoint's own bootstrap, so RSS compares like with like.
    let yaml = format!(
        r#"node: {{id: bare, cluster: bare}}
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}
memory_allocator_manager: {{bytes_to_release: {release}, memory_release_interval: 1s}}
static_resources:
  listeners:
  - name: gateway
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bare
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: upstream, timeout: 600s}}
          http_filters:{extra_filter}
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 2s
    load_assignment: {{cluster_name: upstream, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {mock_port}}}}}}}}}]}}]}}
"#,
        release = MEMORY_RELEASE_BYTES,
    );
    let cfg = dir.join(format!("{name}-envoy.yaml"));
    std::fs::write(&cfg, yaml).map_err(|e| e.to_string())?;
    Ok(cfg)
}

/// Envoy's idle RSS at one worker count.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RssPoint {
    pub workers: u32,
    pub bare_kib: u64,
    pub chokepoint_kib: u64,
}

/// How long an Envoy idles before its RSS is read: the module compiled, and the freed
/// compile memory returned at `MEMORY_RELEASE_BYTES` a second.
const RSS_SETTLE: Duration = Duration::from_secs(4);

/// Idle RSS of bare Envoy and of the stack's Envoy (filter loaded, one request served) at
/// each worker count. Restarts the stack's Envoy; it runs with the last count afterwards.
pub async fn rss_by_workers(
    stack: &mut Stack,
    dir: &std::path::Path,
    counts: &[u32],
) -> Result<Vec<RssPoint>, String> {
    let mut points = Vec::new();
    for &workers in counts {
        let (_, mut bare) = bare_envoy(stack, dir, "rss-bare", Extra::None, workers).await?;
        tokio::time::sleep(RSS_SETTLE).await;
        let bare_kib = rss_kib(bare.pid().unwrap_or(0));
        bare.stop(Duration::from_secs(5));
        stack.opts.envoy_concurrency = workers;
        stack.restart_envoy().await?;
        tokio::time::sleep(RSS_SETTLE).await;
        let chokepoint_kib = rss_kib(stack.envoy_pid().unwrap_or(0));
        points.push(RssPoint {
            workers,
            bare_kib,
            chokepoint_kib,
        });
    }
    Ok(points)
}

/// The memory the filter adds as `fixed + per_worker * workers` (KiB, least squares over
/// the points): V8 compiles the module once per process, so most of it does not grow with
/// the workers, and dividing one point by its worker count would hide that.
pub fn added_rss_fit(points: &[RssPoint]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let xs = points.iter().map(|p| f64::from(p.workers));
    let ys = points
        .iter()
        .map(|p| p.chokepoint_kib as f64 - p.bare_kib as f64);
    let (mx, my) = (xs.clone().sum::<f64>() / n, ys.clone().sum::<f64>() / n);
    let sxx: f64 = xs.clone().map(|x| (x - mx) * (x - mx)).sum();
    if points.len() < 2 || sxx == 0.0 {
        return None;
    }
    let sxy: f64 = xs.zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let per_worker = sxy / sxx;
    Some((my - per_worker * mx, per_worker))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(workers: u32, bare_kib: u64, chokepoint_kib: u64) -> RssPoint {
        RssPoint {
            workers,
            bare_kib,
            chokepoint_kib,
        }
    }

    #[test]
    fn fits_the_fixed_and_per_worker_parts() {
        type Case = (&'static str, Vec<RssPoint>, Option<(f64, f64)>);
        let cases: &[Case] = &[
            (
                "exact line",
                vec![p(1, 100, 160), p(2, 100, 170), p(4, 100, 190)],
                Some((50.0, 10.0)),
            ),
            (
                "bare grows too",
                vec![p(1, 100, 150), p(3, 120, 190)],
                Some((40.0, 10.0)),
            ),
            (
                "flat",
                vec![p(1, 64, 120), p(4, 65, 121)],
                Some((56.0, 0.0)),
            ),
            ("one point", vec![p(2, 100, 150)], None),
            (
                "one worker count",
                vec![p(2, 100, 150), p(2, 100, 160)],
                None,
            ),
            ("none", vec![], None),
        ];
        for (what, points, want) in cases {
            let got = added_rss_fit(points);
            match (got, want) {
                (Some((f, w)), Some((wf, ww))) => {
                    assert!(
                        (f - wf).abs() < 1e-9 && (w - ww).abs() < 1e-9,
                        "{what}: {got:?}"
                    )
                }
                _ => assert_eq!(got, *want, "{what}"),
            }
        }
    }
}
