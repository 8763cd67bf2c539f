//! Every TLS upstream of every target verifies the upstream's own name: Envoy clusters
//! (bootstrap, compose, the Istio EnvoyFilter) carry SNI and an exact SAN matcher, Istio
//! DestinationRules `sni` and `subjectAltNames`, Envoy Gateway Backends `sni` and a
//! BackendTLSPolicy `hostname`; each against the system CAs or the upstream's own
//! `ca_file`. The table names every render target: a new one fails here until it says
//! where its upstreams are.

use std::path::{Path, PathBuf};

use chokepoint_render::bundle::{self, Options};
use chokepoint_render::policy::Policy;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A syntactically valid bundle; nothing here parses the certificate itself.
const CORP_CA: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBcorpCA+test/only=\n-----END CERTIFICATE-----\n";

/// The example policy plus a private-CA model server, a plain-http one and a second
/// issuer whose JWKS sits behind the same private CA, written into `dir`.
fn policy(dir: &Path) -> Policy {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("corp-ca.pem"), format!("# corp root\n{CORP_CA}")).unwrap();
    let text = std::fs::read_to_string(root().join("envoy/examples/policy.yaml"))
        .unwrap()
        .replacen(
            "\nproviders:\n",
            "\nproviders:\n  - name: corp\n    kind: openai\n    base_url: https://models.corp.example:8443/v1\n    key_env: CORP_API_KEY\n    ca_file: corp-ca.pem\n  - name: vllm\n    kind: openai\n    base_url: http://10.0.0.5:8000/v1\n    key_env: VLLM_API_KEY\n",
            1,
        )
        .replacen(
            "\nissuers:\n",
            // Two issuers: each says what it may assert (the example's own does).
            "\nissuers:\n  - issuer: https://idp.corp.example\n    audiences: [chokepoint]\n    trust: {tenants: [corp], groups: [], cost_centers: []}\n    jwks:\n      uri: https://idp.corp.example/keys\n      ca_file: corp-ca.pem\n",
            1,
        )
        .replace(
            "../prices.yaml",
            &root().join("envoy/prices.yaml").to_string_lossy(),
        );
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    Policy::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// How one upstream is reached: host and port, and its TLS if any.
#[derive(Debug, Clone, PartialEq)]
struct Site {
    host: String,
    port: u16,
    tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq)]
struct Tls {
    sni: Option<String>,
    /// The names the certificate must carry.
    names: Vec<String>,
    /// `None`: the system bundle; else the PEM trusted.
    ca: Option<String>,
}

fn docs(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|d| d.trim_start_matches("---\n"))
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
        })
        .map(|d| {
            chokepoint_render::yaml::load(d)
                .unwrap_or_else(|e| panic!("{e}\n{d}"))
                .value
        })
        .collect()
}

fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(o) => {
            out.push(v);
            o.values().for_each(|x| walk(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
        _ => {}
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Envoy clusters anywhere in the documents (a bootstrap, EnvoyFilter patches).
fn envoy_sites(docs: &[Value]) -> Vec<Site> {
    let mut nodes = Vec::new();
    docs.iter().for_each(|d| walk(d, &mut nodes));
    nodes
        .into_iter()
        .filter(|n| n.get("load_assignment").is_some())
        .map(|c| {
            let addr = &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
                ["address"]["socket_address"];
            let tls = c.get("transport_socket").map(|t| {
                let t = &t["typed_config"];
                assert_eq!(
                    s(&t["@type"]),
                    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
                );
                let v = &t["common_tls_context"]["validation_context"];
                let names = v["match_typed_subject_alt_names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        assert!(
                            matches!(m["san_type"].as_str(), Some("DNS" | "IP_ADDRESS")),
                            "{m}"
                        );
                        s(&m["matcher"]["exact"])
                    })
                    .collect();
                let ca = match (v["trusted_ca"]["filename"].as_str(), v["trusted_ca"]["inline_string"].as_str()) {
                    (Some(f), None) => {
                        assert_eq!(f, chokepoint_render::tls::SYSTEM_CA_BUNDLE);
                        None
                    }
                    (None, Some(pem)) => Some(pem.to_string()),
                    other => panic!("no trusted_ca in {c}: {other:?}"),
                };
                Tls {
                    sni: t["sni"].as_str().map(str::to_string),
                    names,
                    ca,
                }
            });
            Site {
                host: s(&addr["address"]),
                port: addr["port_value"].as_u64().unwrap() as u16,
                tls,
            }
        })
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// Istio ServiceEntries and the DestinationRule of each host (with its CA Secret).
fn istio_sites(docs: &[Value]) -> Vec<Site> {
    of_kind(docs, "ServiceEntry")
        .into_iter()
        .map(|se| {
            let host = s(&se["spec"]["hosts"][0]);
            let dr = of_kind(docs, "DestinationRule")
                .into_iter()
                .find(|dr| dr["spec"]["host"] == host.as_str());
            let tls = dr.map(|dr| {
                let t = &dr["spec"]["trafficPolicy"]["tls"];
                assert_eq!(t["mode"], "SIMPLE", "{dr}");
                let ca = t["credentialName"].as_str().map(|name| {
                    let secret = of_kind(docs, "Secret")
                        .into_iter()
                        .find(|x| x["metadata"]["name"] == name)
                        .unwrap_or_else(|| panic!("no Secret {name}"));
                    assert_eq!(secret["metadata"]["namespace"], dr["metadata"]["namespace"]);
                    s(&secret["stringData"]["cacert"])
                });
                Tls {
                    sni: t["sni"].as_str().map(str::to_string),
                    names: t["subjectAltNames"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(s)
                        .collect(),
                    ca,
                }
            });
            Site {
                host,
                port: se["spec"]["ports"][0]["number"].as_u64().unwrap() as u16,
                tls,
            }
        })
        .collect()
}

/// Envoy Gateway Backends with their own TLS and their BackendTLSPolicy: both must say
/// the same (Envoy Gateway merges them, the policy winning).
fn gateway_sites(docs: &[Value]) -> Vec<Site> {
    let ca_of = |v: &Value| -> Option<String> {
        if v["wellKnownCACertificates"] == "System" {
            assert!(v.get("caCertificateRefs").is_none(), "{v}");
            return None;
        }
        let r = &v["caCertificateRefs"][0];
        assert_eq!(
            (r["group"].as_str(), r["kind"].as_str()),
            (Some(""), Some("ConfigMap"))
        );
        let cm = of_kind(docs, "ConfigMap")
            .into_iter()
            .find(|c| c["metadata"]["name"] == r["name"])
            .unwrap_or_else(|| panic!("no ConfigMap {}", r["name"]));
        Some(s(&cm["data"]["ca.crt"]))
    };
    of_kind(docs, "Backend")
        .into_iter()
        .map(|b| {
            // A host name is an fqdn endpoint, an address an ip one.
            let endpoint = &b["spec"]["endpoints"][0];
            let fqdn = match endpoint.get("ip") {
                Some(ip) => serde_json::json!({"hostname": ip["address"], "port": ip["port"]}),
                None => endpoint["fqdn"].clone(),
            };
            let name = &b["metadata"]["name"];
            let policy = of_kind(docs, "BackendTLSPolicy").into_iter().find(|p| {
                let t = &p["spec"]["targetRefs"][0];
                t["kind"] == "Backend"
                    && t["group"] == "gateway.envoyproxy.io"
                    && &t["name"] == name
            });
            let tls = match (b["spec"].get("tls"), policy) {
                (None, None) => None,
                (Some(bt), Some(p)) => {
                    let v = &p["spec"]["validation"];
                    assert_eq!(ca_of(bt), ca_of(v), "{b}\n{p}");
                    assert_eq!(bt["sni"], v["hostname"], "{b}\n{p}");
                    // Without subjectAltNames the policy's hostname is the name verified.
                    assert!(v.get("subjectAltNames").is_none(), "{p}");
                    Some(Tls {
                        sni: bt["sni"].as_str().map(str::to_string),
                        names: vec![s(&v["hostname"])],
                        ca: ca_of(v),
                    })
                }
                other => panic!(
                    "Backend {name}: TLS without a BackendTLSPolicy or the reverse: {other:?}"
                ),
            };
            Site {
                host: s(&fqdn["hostname"]),
                port: fqdn["port"].as_u64().unwrap() as u16,
                tls,
            }
        })
        .collect()
}

/// Each site is verified as the policy says, and every upstream the target must reach
/// is there.
fn check(target: &str, sites: &[Site], want: &[(String, u16, bool, Option<String>)]) {
    assert!(!sites.is_empty(), "{target}: no upstream found");
    for (host, port, https, ca) in want {
        let site = sites
            .iter()
            .find(|x| &x.host == host && x.port == *port)
            .unwrap_or_else(|| panic!("{target}: no upstream {host}:{port} in {sites:#?}"));
        match (&site.tls, https) {
            (None, false) => {}
            (Some(t), true) => {
                let ip = host.parse::<std::net::Ipv4Addr>().is_ok();
                assert_eq!(
                    t.sni.as_deref(),
                    (!ip).then_some(host.as_str()),
                    "{target}: SNI of {host}"
                );
                assert_eq!(
                    t.names,
                    std::slice::from_ref(host),
                    "{target}: names verified for {host}"
                );
                assert_eq!(&t.ca, ca, "{target}: trust of {host}");
            }
            (tls, _) => panic!("{target}: {host}:{port} https={https} but TLS {tls:?}"),
        }
    }
    // Nothing else carries TLS unchecked (the policy service, chains' members: each
    // cluster is a site of its own).
    for site in sites {
        if let Some(t) = &site.tls {
            assert_eq!(
                t.names,
                std::slice::from_ref(&site.host),
                "{target}: {site:?}"
            );
        }
    }
}

#[test]
fn every_tls_upstream_of_every_target_verifies_its_name() {
    let dir = std::env::temp_dir().join(format!("chokepoint-upstream-tls-{}", std::process::id()));
    let policy = policy(&dir);
    let corp = Some(CORP_CA.to_string());
    let upstreams: Vec<(String, u16, bool, Option<String>)> = policy
        .upstreams()
        .iter()
        .map(|u| {
            (
                u.url.host.clone(),
                u.url.port,
                u.url.tls,
                u.ca.map(|c| c.pem.clone()),
            )
        })
        .collect();
    // The fixture covers what it claims to: a private CA, a system-CA host, plain http,
    // a JWKS host that is not a provider's, a guardrail service.
    for (host, ca) in [
        ("models.corp.example", &corp),
        ("idp.corp.example", &corp),
        ("api.openai.com", &None),
        ("login.example.com", &None),
        ("dlp.example.com", &None),
    ] {
        assert!(
            upstreams
                .iter()
                .any(|(h, _, tls, c)| h == host && *tls && c == ca),
            "{host} in {upstreams:?}"
        );
    }
    assert!(upstreams
        .iter()
        .any(|(h, _, tls, _)| h == "10.0.0.5" && !tls));

    let o = Options::default();
    for target in bundle::TARGETS {
        let text = bundle::render(&policy, target, &o).unwrap();
        let sites = match target {
            // Envoy clusters the renderer writes itself; the policy service is one.
            "bootstrap" | "istio-envoyfilter" => {
                let sites = envoy_sites(&docs(&text));
                let ps = &policy.policy_service.url;
                let mut want = upstreams.clone();
                want.push((ps.host.clone(), ps.port, ps.tls, None));
                check(target, &sites, &want);
                sites
            }
            "istio-wasmplugin" | "istio-trafficextension" => {
                let sites = istio_sites(&docs(&text));
                check(target, &sites, &upstreams);
                sites
            }
            "envoy-gateway" => {
                let sites = gateway_sites(&docs(&text));
                check(target, &sites, &upstreams);
                sites
            }
            // The policy service fetches each JWKS uri itself: the URL, verified against
            // the issuer's own CA bundle.
            "policy-identity" => {
                let file: serde_json::Value = serde_json::from_str(&text).unwrap();
                for (i, issuer) in policy.issuers.iter().enumerate() {
                    if let chokepoint_render::policy::Keys::Uri { url, ca, .. } = &issuer.keys {
                        let u = &file["issuers"][i]["jwks_url"];
                        let got = u["url"].as_str().unwrap();
                        assert_eq!(got, format!("{}{}", url.origin(), url.path), "{target}");
                        assert_eq!(
                            u["ca_pem"].as_str(),
                            ca.as_ref().map(|c| c.pem.as_str()),
                            "{target}: {got}"
                        );
                    }
                }
                continue;
            }
            // Configuration only (or who may connect to the policy service, what the
            // workloads may not reach, or the policy service and its Redis themselves):
            // no connection the gateway makes is described.
            "plugin-config"
            | "injector-config"
            | "ecds"
            | "limits"
            | "istio-meshconfig"
            | "istio-networkpolicy"
            | "istio-gateway-keys"
            | "envoy-gateway-networkpolicy"
            | "istio-lockdown"
            | "envoy-gateway-lockdown"
            | "kubernetes-policy"
            | "kubernetes-redis" => {
                assert!(
                    !text.contains("load_assignment") && !text.contains("transport_socket"),
                    "{target}"
                );
                continue;
            }
            other => panic!("new target {other:?}: add where its upstreams are to this table"),
        };
        assert!(sites.iter().any(|x| x.tls.is_some()), "{target}");
    }

    // Compose renders the bootstrap for containers: the same clusters.
    let files = chokepoint_render::compose::files(&policy, &dir).unwrap();
    let (_, boot) = files
        .iter()
        .find(|(p, _)| p.ends_with("compose/envoy.yaml"))
        .unwrap();
    let ps = &policy.policy_service.url;
    let mut want = upstreams.clone();
    want.push((ps.host.clone(), ps.port, ps.tls, None));
    check("compose", &envoy_sites(&docs(boot)), &want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fallback chain's aggregate cluster has no transport of its own: each member
/// cluster verifies its own provider's name, whichever attempt reaches it.
#[test]
fn fallback_members_verify_their_own_names() {
    let dir = std::env::temp_dir().join(format!(
        "chokepoint-upstream-tls-chain-{}",
        std::process::id()
    ));
    let policy = policy(&dir);
    let clusters = chokepoint_render::envoy::clusters(&policy);
    let chain = clusters
        .iter()
        .find(|c| c["name"] == "chain_openai__openai-backup")
        .expect("the example's gpt-4o-mini fallback chain");
    assert!(chain.get("transport_socket").is_none(), "{chain}");
    for member in chain["cluster_type"]["typed_config"]["clusters"]
        .as_array()
        .unwrap()
    {
        let c = clusters.iter().find(|c| &c["name"] == member).unwrap();
        let t = &c["transport_socket"]["typed_config"];
        let host = &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"]["address"];
        assert_eq!(&t["sni"], host, "{member}");
        assert_eq!(
            &t["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]
                ["matcher"]["exact"],
            host,
            "{member}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
