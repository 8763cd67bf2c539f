//! Hash tags: what Redis Cluster hashes a key by. Keys with one tag always share a slot,
//! so the cluster layout groups a call's keys by tag (see `sharded_authorize` and
//! `sharded_usage`), and checks every script call it makes against it.

/// The part of `key` Redis Cluster hashes: the text between the first `{` and the first
/// `}` after it when that is not empty, else the whole key.
pub fn hash_tag(key: &str) -> &str {
    let Some(open) = key.find('{') else {
        return key;
    };
    match key[open + 1..].find('}') {
        Some(0) | None => key,
        Some(len) => &key[open + 1..open + 1 + len],
    }
}

/// Whether every key hashes by one tag, as one script call in a cluster must (Redis
/// checks only that they share a slot; one tag is the stronger rule the layout keeps).
pub fn one_tag<'a>(mut keys: impl Iterator<Item = &'a str>) -> bool {
    let Some(first) = keys.next() else {
        return true;
    };
    let tag = hash_tag(first);
    keys.all(|key| hash_tag(key) == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_cluster_spec() {
        // The examples of the Redis Cluster specification, and the layout's own keys.
        let cases = [
            ("{user1000}.following", "user1000"),
            ("foo{}{bar}", "foo{}{bar}"),
            ("foo{{bar}}zap", "{bar"),
            ("foo{bar}{zap}", "bar"),
            ("plain", "plain"),
            ("open{only", "open{only"),
            ("ck:ledger:user:{u-1}:2026-12-07", "u-1"),
            ("ck:usage:log", "ck:usage:log"),
            ("ck:mcp:{*}:2026-12-07", "*"),
        ];
        for (key, tag) in cases {
            assert_eq!(hash_tag(key), tag, "{key}");
        }
        assert!(one_tag(
            ["ck:rate:user:{a}", "ck:roll:user:{a}"].into_iter()
        ));
        assert!(!one_tag(
            ["ck:rate:user:{a}", "ck:limits:user:{*}"].into_iter()
        ));
        assert!(one_tag(std::iter::empty()));
    }
}
