//! The `*` glob of routes, prices and issuer trust lists: `*` matches any run of
//! characters (including none), everything else is literal. Here because the filter and
//! the policy service must read an issuer's trust list alike.

/// Whether `text` matches `pattern`. Allocates nothing.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let stars = pattern.bytes().filter(|b| *b == b'*').count();
    if stars == 0 {
        return pattern == text;
    }
    let first = pattern.split('*').next().unwrap_or("");
    let last = pattern.rsplit('*').next().unwrap_or("");
    let Some(rest) = text.strip_prefix(first) else {
        return false;
    };
    let Some(mut middle) = rest.strip_suffix(last) else {
        return false;
    };
    for mid in pattern.split('*').skip(1).take(stars - 1) {
        match middle.find(mid) {
            Some(at) => middle = middle.get(at + mid.len()..).unwrap_or(""),
            None => return false,
        }
    }
    true
}
