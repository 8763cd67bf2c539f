//! Finding the caller's token among the request headers, from the configured sources in
//! order: a header (with or without an auth scheme) or a cookie.

use crate::config::TokenSource;
use crate::host::HeaderList;
use crate::identity::jwt::AuthError;

/// Request headers as name and value pairs: the filter's [`HeaderList`], or owned pairs.
pub trait Pairs {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl Pairs for HeaderList {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter()
    }
}

impl Pairs for [(String, String)] {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Pairs for Vec<(String, String)> {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.as_slice().pairs()
    }
}

/// The token from the first configured source present in `headers`. A source present
/// twice (two Authorization headers, two cookies of the name) is refused: two credentials
/// invite confusion over which one a later component reads.
pub fn find<'h, H: Pairs + ?Sized>(
    sources: &[TokenSource],
    headers: &'h H,
) -> Result<&'h str, AuthError> {
    for source in sources {
        match source {
            TokenSource::Header { name, scheme } => {
                let mut values = headers.pairs().filter(|(k, _)| k == name).map(|(_, v)| v);
                let Some(first) = values.next() else { continue };
                if values.next().is_some() {
                    return Err(AuthError::Malformed);
                }
                return with_scheme(first, scheme.as_deref()).ok_or(AuthError::Malformed);
            }
            TokenSource::Cookie { name } => {
                let mut found = headers
                    .pairs()
                    .filter(|(k, _)| *k == "cookie")
                    .flat_map(|(_, v)| v.split(';'))
                    .filter_map(|pair| pair.trim().split_once('='))
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.trim());
                let Some(first) = found.next() else { continue };
                if found.next().is_some() || first.is_empty() {
                    return Err(AuthError::Malformed);
                }
                return Ok(first);
            }
        }
    }
    Err(AuthError::Missing)
}

/// `<scheme> <token>` with the scheme case-insensitive; without a scheme, the whole value.
fn with_scheme<'v>(value: &'v str, scheme: Option<&str>) -> Option<&'v str> {
    let value = value.trim();
    let token = match scheme {
        None => value,
        Some(scheme) => {
            let (s, t) = value.split_once(' ')?;
            if !s.eq_ignore_ascii_case(scheme) {
                return None;
            }
            t.trim()
        }
    };
    (!token.is_empty()).then_some(token)
}

/// Header names the sources read, to strip once the token has been taken.
pub fn header_names(sources: &[TokenSource]) -> impl Iterator<Item = &str> {
    sources.iter().map(|s| match s {
        TokenSource::Header { name, .. } => name.as_str(),
        TokenSource::Cookie { .. } => "cookie",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderList {
        pairs.iter().copied().collect()
    }

    #[test]
    fn table() {
        let bearer = TokenSource::Header {
            name: "authorization".into(),
            scheme: Some("Bearer".into()),
        };
        let cf = TokenSource::Header {
            name: "cf-access-jwt-assertion".into(),
            scheme: None,
        };
        let cookie = TokenSource::Cookie {
            name: "CF_Authorization".into(),
        };
        let all = [bearer.clone(), cf.clone(), cookie.clone()];
        let only_bearer = [bearer];
        type Case<'a> = (
            &'a str,
            &'a [TokenSource],
            HeaderList,
            Result<&'a str, AuthError>,
        );
        let table: Vec<Case> = vec![
            (
                "bearer",
                &all,
                h(&[("authorization", "Bearer abc")]),
                Ok("abc"),
            ),
            (
                "scheme any case",
                &all,
                h(&[("authorization", "bEaReR  abc ")]),
                Ok("abc"),
            ),
            (
                "basic refused",
                &all,
                h(&[("authorization", "Basic abc")]),
                Err(AuthError::Malformed),
            ),
            (
                "empty bearer",
                &all,
                h(&[("authorization", "Bearer ")]),
                Err(AuthError::Malformed),
            ),
            (
                "two authorization",
                &all,
                h(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]),
                Err(AuthError::Malformed),
            ),
            (
                "assertion header",
                &all,
                h(&[("cf-access-jwt-assertion", "xyz")]),
                Ok("xyz"),
            ),
            (
                "first source wins",
                &all,
                h(&[
                    ("cf-access-jwt-assertion", "xyz"),
                    ("authorization", "Bearer abc"),
                ]),
                Ok("abc"),
            ),
            (
                "cookie",
                &all,
                h(&[("cookie", "a=1; CF_Authorization=tok; b=2")]),
                Ok("tok"),
            ),
            (
                "cookie across headers",
                &all,
                h(&[("cookie", "a=1"), ("cookie", "CF_Authorization=tok")]),
                Ok("tok"),
            ),
            (
                "two cookies",
                &all,
                h(&[("cookie", "CF_Authorization=a; CF_Authorization=b")]),
                Err(AuthError::Malformed),
            ),
            (
                "cookie name is exact",
                &all,
                h(&[("cookie", "cf_authorization=tok")]),
                Err(AuthError::Missing),
            ),
            (
                "nothing",
                &all,
                h(&[("x-other", "1")]),
                Err(AuthError::Missing),
            ),
            (
                "source not configured",
                &only_bearer,
                h(&[("cf-access-jwt-assertion", "x")]),
                Err(AuthError::Missing),
            ),
        ];
        for (name, sources, headers, want) in table {
            assert_eq!(find(sources, &headers), want, "{name}");
            // Owned pairs (the fuzz target's) are read the same.
            let owned: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(find(sources, &owned), want, "{name}, owned pairs");
        }
    }
}
