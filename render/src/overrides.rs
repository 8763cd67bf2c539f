//! Changes applied to a policy document before it is validated: how the local stack and
//! the tests point a policy file at the processes they started (mock providers, a
//! policy service on a chosen port, a run directory) without editing the file.
//!
//! A selector is a dotted path whose segments are `key`, `key[field=value]` (the list
//! item whose `field` equals `value`) or `key[+]` (append).

use serde_json::{Map, Value};

#[derive(Debug, Clone)]
pub struct Override {
    pub selector: String,
    pub value: Value,
}

impl Override {
    pub fn new(selector: impl Into<String>, value: impl Into<Value>) -> Override {
        Override {
            selector: selector.into(),
            value: value.into(),
        }
    }
}

pub fn apply(doc: &mut Value, o: &Override) -> Result<(), String> {
    let segments = split_outside_brackets(&o.selector);
    let mut cur = doc;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let (key, filter) = match seg.split_once('[') {
            Some((k, rest)) => (k, Some(rest.trim_end_matches(']'))),
            None => (*seg, None),
        };
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let obj = cur
            .as_object_mut()
            .ok_or_else(|| format!("{}: not an object", o.selector))?;
        let slot = obj.entry(key.to_string()).or_insert(match filter {
            Some(_) => Value::Array(Vec::new()),
            None => Value::Null,
        });
        cur = match filter {
            None => slot,
            Some("+") => {
                let list = slot
                    .as_array_mut()
                    .ok_or_else(|| format!("{}: {key} is not a list", o.selector))?;
                list.push(Value::Null);
                let n = list.len() - 1;
                &mut list[n]
            }
            Some(f) => {
                let (field, want) = f
                    .split_once('=')
                    .ok_or_else(|| format!("{}: bad filter {f:?}", o.selector))?;
                let list = slot
                    .as_array_mut()
                    .ok_or_else(|| format!("{}: {key} is not a list", o.selector))?;
                list.iter_mut()
                    .find(|item| item.get(field).and_then(Value::as_str) == Some(want))
                    .ok_or_else(|| format!("{}: no {key} item with {field} = {want}", o.selector))?
            }
        };
        if last {
            *cur = o.value.clone();
        }
    }
    Ok(())
}

/// Splits on `.` except inside `[...]`, where values (issuer URLs) have dots of their own.
fn split_outside_brackets(selector: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in selector.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                out.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&selector[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let mut d =
            json!({"providers": [{"name": "a", "base_url": "x"}, {"name": "b"}], "gateway": {}});
        for (sel, v) in [
            ("providers[name=b].base_url", json!("http://m")),
            ("gateway.failure_mode", json!("open")),
            ("audit.usage.flush_ms", json!(200)),
            ("issuers[+]", json!({"issuer": "https://i.example"})),
            (
                "issuers[issuer=https://i.example].jwks",
                json!({"inline": {}}),
            ),
        ] {
            apply(&mut d, &Override::new(sel, v)).unwrap();
        }
        assert_eq!(d["providers"][1]["base_url"], "http://m");
        assert_eq!(d["providers"][0]["base_url"], "x");
        assert_eq!(d["gateway"]["failure_mode"], "open");
        assert_eq!(d["audit"]["usage"]["flush_ms"], 200);
        assert_eq!(d["issuers"][0]["jwks"], json!({"inline": {}}));
        assert!(apply(&mut d, &Override::new("providers[name=zz].x", json!(1))).is_err());
    }
}
