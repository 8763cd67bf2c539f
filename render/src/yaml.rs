//! YAML to JSON with a line for every field, so an error can say where it is.
//!
//! serde's YAML crates drop positions once a value is parsed; this loader walks the
//! parser's events itself and records the line of every mapping key and sequence item
//! under the same path syntax serde_path_to_error prints (`providers[2].key_env`).

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

/// A parsed document and where each field was written.
#[derive(Debug)]
pub struct Document {
    pub value: Value,
    lines: HashMap<String, usize>,
}

impl Document {
    /// The 1-based line of `path`, or of its nearest parent that has one.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path.to_string();
        loop {
            if let Some(line) = self.lines.get(&p) {
                return Some(*line);
            }
            let cut = p.rfind(['.', '['])?;
            p.truncate(cut);
        }
    }
}

/// Parses one YAML document. Duplicate keys, several documents, non-string keys and
/// tags are refused: each would make the file mean something other than it reads.
pub fn load(text: &str) -> Result<Document, String> {
    let mut b = Builder::default();
    Parser::new_from_str(text)
        .load(&mut b, true)
        .map_err(|e| format!("line {}: {}", e.marker().line(), e.info()))?;
    if let Some(e) = b.error {
        return Err(e);
    }
    if b.documents > 1 {
        return Err("the policy file must hold one YAML document".into());
    }
    let value = b.root.unwrap_or(Value::Null);
    Ok(Document {
        value,
        lines: b.lines,
    })
}

enum Frame {
    Seq {
        path: String,
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        path: String,
        map: Map<String, Value>,
        pending_key: Option<String>,
        anchor: usize,
    },
}

/// Most values a document may expand to: aliases repeat whole subtrees, and nested ones
/// multiply (a few hundred bytes of "billion laughs" would otherwise take gigabytes).
const MAX_NODES: usize = 100_000;

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    lines: HashMap<String, usize>,
    /// Each anchor's value and how many values it holds.
    anchors: HashMap<usize, (Value, usize)>,
    nodes: usize,
    documents: usize,
    error: Option<String>,
}

impl Builder {
    fn fail(&mut self, mark: Marker, msg: String) {
        if self.error.is_none() {
            self.error = Some(format!("line {}: {msg}", mark.line()));
        }
    }

    /// The path a new value at the current position gets, recording its line.
    fn child_path(&mut self, mark: Marker) -> Option<String> {
        let path = match self.stack.last() {
            None => String::new(),
            Some(Frame::Seq { path, items, .. }) => format!("{path}[{}]", items.len()),
            Some(Frame::Map {
                path, pending_key, ..
            }) => {
                let key = pending_key.as_ref()?;
                if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                }
            }
        };
        self.lines.entry(path.clone()).or_insert(mark.line());
        Some(path)
    }

    fn push_value(&mut self, value: Value, anchor: usize, mark: Marker) {
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), count(&value)));
        }
        let key_path = match self.stack.last_mut() {
            None => {
                self.root = Some(value);
                return;
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(value);
                return;
            }
            Some(Frame::Map {
                map,
                pending_key,
                path,
                ..
            }) => {
                if let Some(k) = pending_key.take() {
                    map.insert(k, value);
                    return;
                }
                let Value::String(key) = value else {
                    return self.fail(mark, "mapping keys must be plain strings".into());
                };
                if map.contains_key(&key) {
                    return self.fail(mark, format!("duplicate key `{key}`"));
                }
                let key_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                *pending_key = Some(key);
                key_path
            }
        };
        // The key's own line, where an error about it should point.
        self.lines.insert(key_path, mark.line());
    }

    /// Counts `n` more values; past [`MAX_NODES`] the document is refused.
    fn grow(&mut self, n: usize, mark: Marker) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            self.fail(
                mark,
                format!("the document expands to more than {MAX_NODES} values (aliases?)"),
            );
            return false;
        }
        true
    }

    fn expecting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            })
        )
    }
}

/// How many values `v` holds, itself included.
fn count(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(count).sum::<usize>(),
        Value::Object(o) => 1 + o.values().map(count).sum::<usize>(),
        _ => 1,
    }
}

fn scalar(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match Yaml::from_str(&text) {
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::String(text)),
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Null => Value::Null,
        _ => Value::String(text),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::DocumentStart => self.documents += 1,
            Event::Scalar(text, style, anchor, tag) => {
                if !self.grow(1, mark) {
                    return;
                }
                if tag.is_some() {
                    return self.fail(mark, "YAML tags are not supported here".into());
                }
                if !self.expecting_key() {
                    self.child_path(mark);
                }
                self.push_value(scalar(text, style), anchor, mark);
            }
            Event::Alias(id) => {
                let Some((v, n)) = self.anchors.get(&id).cloned() else {
                    return self.fail(mark, "alias to an unknown anchor".into());
                };
                if !self.grow(n, mark) {
                    return;
                }
                if !self.expecting_key() {
                    self.child_path(mark);
                }
                self.push_value(v, 0, mark);
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                if !self.grow(1, mark) {
                    return;
                }
                if tag.is_some() {
                    return self.fail(mark, "YAML tags are not supported here".into());
                }
                if self.expecting_key() {
                    return self.fail(mark, "mapping keys must be plain strings".into());
                }
                let path = self.child_path(mark).unwrap_or_default();
                let is_seq = matches!(ev, Event::SequenceStart(..));
                self.stack.push(if is_seq {
                    Frame::Seq {
                        path,
                        items: Vec::new(),
                        anchor,
                    }
                } else {
                    Frame::Map {
                        path,
                        map: Map::new(),
                        pending_key: None,
                        anchor,
                    }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, anchor, .. }) => (Value::Array(items), anchor),
                    Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
                    None => return,
                };
                self.push_value(value, anchor, mark);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_lines() {
        let text = "a: 1\nb:\n  - x: true\n    y: \"2\"\n  - z: ~\nc: 1.5\nd: '07'\n";
        let d = load(text).unwrap();
        assert_eq!(
            d.value,
            serde_json::json!({"a": 1, "b": [{"x": true, "y": "2"}, {"z": null}], "c": 1.5, "d": "07"})
        );
        assert_eq!(d.line_of("a"), Some(1));
        assert_eq!(d.line_of("b"), Some(2));
        assert_eq!(d.line_of("b[0]"), Some(3));
        assert_eq!(d.line_of("b[0].y"), Some(4));
        assert_eq!(d.line_of("b[1].z"), Some(5));
        assert_eq!(d.line_of("b[1].nothing"), Some(5));
        assert_eq!(d.line_of("c"), Some(6));
    }

    #[test]
    fn refusals() {
        for (text, want) in [
            ("a: 1\na: 2\n", "line 2: duplicate key `a`"),
            ("? [1]\n: 2\n", "mapping keys must be plain strings"),
            ("a: !!str 1\n", "tags"),
            ("a: 1\n---\nb: 2\n", "one YAML document"),
            ("a: [1\n", "line"),
        ] {
            let e = load(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = format!("*a{}", i - 1);
            let items = [prev.as_str(); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        let e = load(&text).unwrap_err();
        assert!(e.contains("more than 100000 values"), "{e}");
    }

    #[test]
    fn anchors() {
        let d = load("base: &b {x: 1}\nother: *b\n").unwrap();
        assert_eq!(d.value["other"], serde_json::json!({"x": 1}));
    }
}
