//! The few URL shapes the policy file takes: `http(s)://host[:port][/path]`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Without a trailing slash; empty for the root.
    pub path: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{text:?} must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(format!("{text:?} must not have a query or fragment"));
        }
        if authority.contains('@') {
            return Err(format!(
                "{text:?} must not carry credentials: keys come from key_env"
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => {
                let port: u16 = p
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{text:?} has an invalid port {p:?}"))?;
                (h, port)
            }
            None => (authority, if tls { 443 } else { 80 }),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !host_ok {
            return Err(format!("{text:?} has an invalid host {host:?}"));
        }
        Ok(Url {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            path: path.trim_end_matches('/').to_string(),
        })
    }

    /// Whether the host is an IP address (a STATIC cluster) rather than a DNS name.
    pub fn is_ip(&self) -> bool {
        self.host.parse::<std::net::Ipv4Addr>().is_ok()
    }

    /// 443 for https, 80 for http.
    pub fn default_port(&self) -> u16 {
        if self.tls {
            443
        } else {
            80
        }
    }

    /// `scheme://authority`, the form of a public URL.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority())
    }

    pub fn authority(&self) -> String {
        if self.port == self.default_port() {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok = |t: &str, tls, host: &str, port, path: &str| {
            assert_eq!(
                Url::parse(t).unwrap(),
                Url {
                    tls,
                    host: host.into(),
                    port,
                    path: path.into()
                },
                "{t}"
            )
        };
        ok(
            "https://api.openai.com/v1",
            true,
            "api.openai.com",
            443,
            "/v1",
        );
        ok("http://127.0.0.1:8000/v1/", false, "127.0.0.1", 8000, "/v1");
        ok("https://Egress.Corp:8443", true, "egress.corp", 8443, "");
        for bad in [
            "ftp://x",
            "api.openai.com",
            "https://",
            "http://h:0",
            "http://h:99999",
            "https://u:p@h",
            "https://h/x?y=1",
            "https://h h",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
