//! TLS upstreams for the tests: a CA and server certificates made by `openssl` at run
//! time (valid one day, nothing committed), and a second Envoy that terminates TLS with
//! them in front of a plain-http test server, one listener per certificate, counting
//! connections and HTTP requests per listener.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chokepoint_dev::stack::process::{self, Managed};
use serde_json::{json, Value};

use crate::support;

/// A certificate authority in `dir`, and the server certificates it issued.
pub struct Pki {
    dir: PathBuf,
    name: String,
    serial: u32,
}

/// A server certificate and its key.
#[derive(Clone)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl is needed to make test certificates: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// A new CA (`<name>.pem`) with an EC P-256 key, valid for a day.
    pub fn new(dir: &Path, name: &str) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-subj",
                &format!("/CN=chokepoint test {name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Pki {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            serial: 1,
        }
    }

    /// The CA's certificate (what a `ca_file` names).
    pub fn ca(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    /// A server certificate for `dns_name` (subject and only SAN), signed by this CA.
    pub fn issue(&mut self, dns_name: &str) -> Leaf {
        self.serial += 1;
        let base = format!("{}-{}-{dns_name}", self.name, self.serial);
        let ext = format!("{base}.ext");
        std::fs::write(
            self.dir.join(&ext),
            format!(
                "subjectAltName=DNS:{dns_name}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .unwrap();
        let (key, csr, cert) = (
            format!("{base}.key"),
            format!("{base}.csr"),
            format!("{base}.pem"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={dns_name}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{}.pem", self.name),
                "-CAkey",
                &format!("{}.key", self.name),
                "-set_serial",
                &self.serial.to_string(),
                "-days",
                "1",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
        );
        Leaf {
            cert: self.dir.join(cert),
            key: self.dir.join(key),
        }
    }
}

/// One TLS listener of the front: its certificate and the plain-http port behind it.
pub struct Listener {
    pub name: &'static str,
    pub leaf: Leaf,
    pub backend_port: u16,
}

/// An Envoy terminating TLS on one loopback port per [`Listener`].
pub struct TlsFront {
    admin: String,
    ports: Vec<(&'static str, u16)>,
    _proc: Managed,
}

impl TlsFront {
    pub async fn start(dir: &Path, listeners: &[Listener]) -> TlsFront {
        let envoy = std::env::var_os("CHOKEPOINT_ENVOY")
            .map_or_else(|| support::root().join(".venv/bin/envoy"), PathBuf::from);
        let path = |p: &Path| p.to_string_lossy().to_string();
        let ls: Vec<Value> = listeners
            .iter()
            .map(|l| {
                json!({
                    "name": l.name,
                    "stat_prefix": l.name,
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                    "filter_chains": [{
                        "transport_socket": {
                            "name": "envoy.transport_sockets.tls",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                                "common_tls_context": {"tls_certificates": [{
                                    "certificate_chain": {"filename": path(&l.leaf.cert)},
                                    "private_key": {"filename": path(&l.leaf.key)},
                                }]},
                            }
                        },
                        "filters": [{
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                "stat_prefix": l.name,
                                "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                                    {"match": {"prefix": "/"}, "route": {"cluster": l.name, "timeout": "30s"}}
                                ]}]},
                                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                            }
                        }],
                    }],
                })
            })
            .collect();
        let clusters: Vec<Value> = listeners
            .iter()
            .map(|l| {
                json!({
                    "name": l.name,
                    "type": "STATIC",
                    "connect_timeout": "2s",
                    "load_assignment": {"cluster_name": l.name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": l.backend_port}}}}]}]},
                })
            })
            .collect();
        let boot = json!({
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {"listeners": ls, "clusters": clusters},
        });
        let config = dir.join("tls-front.json");
        std::fs::write(&config, boot.to_string()).unwrap();
        let admin_file = dir.join("tls-front.admin");
        let mut cmd = Command::new(envoy);
        cmd.arg("-c")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .args(["--use-dynamic-base-id", "--concurrency", "1", "-l", "warn"]);
        let mut proc = Managed::spawn("tls front", cmd, &dir.join("tls-front.log")).unwrap();
        let admin = process::wait_for_file(&admin_file, &mut proc, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("TLS front did not start: {e}"));
        let admin = format!("http://{admin}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let ports = loop {
            let v: Value = reqwest::get(format!("{admin}/listeners?format=json"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let ports: Vec<(&'static str, u16)> = listeners
                .iter()
                .filter_map(|l| {
                    let found = v["listener_statuses"]
                        .as_array()?
                        .iter()
                        .find(|s| s["name"] == l.name)?;
                    let port = found["local_address"]["socket_address"]["port_value"].as_u64()?;
                    Some((l.name, u16::try_from(port).ok().filter(|p| *p > 0)?))
                })
                .collect();
            if ports.len() == listeners.len() {
                break ports;
            }
            assert!(Instant::now() < deadline, "TLS front listeners: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        TlsFront {
            admin,
            ports,
            _proc: proc,
        }
    }

    pub fn port(&self, listener: &str) -> u16 {
        self.ports
            .iter()
            .find(|(n, _)| *n == listener)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no listener {listener}"))
    }

    /// One counter of the front's, 0 when absent (`listener.<name>.downstream_cx_total`,
    /// `http.<name>.downstream_rq_total`, ...).
    pub async fn stat(&self, name: &str) -> u64 {
        let text = reqwest::get(format!("{}/stats?filter=^{name}$", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter_map(|l| l.strip_prefix(&format!("{name}: ")))
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum()
    }

    /// What a listener saw: TCP connections, completed TLS handshakes, HTTP requests.
    pub async fn seen(&self, listener: &str) -> (u64, u64, u64) {
        (
            self.stat(&format!("listener.{listener}.downstream_cx_total"))
                .await,
            self.stat(&format!("listener.{listener}.ssl.handshake"))
                .await,
            self.stat(&format!("http.{listener}.downstream_rq_total"))
                .await,
        )
    }
}
