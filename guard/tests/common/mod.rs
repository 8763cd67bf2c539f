//! The rules file as the tests read it: YAML through yaml-rust2 into the serde structs.

#![allow(dead_code)]

use chokepoint_guard::Rule;
use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

fn json(y: &Yaml) -> Value {
    match y {
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(r) => Value::Number(Number::from_f64(r.parse().unwrap()).unwrap()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), json(v)))
                .collect::<Map<_, _>>(),
        ),
        Yaml::Null => Value::Null,
        other => panic!("unexpected YAML {other:?}"),
    }
}

pub fn rules_from_yaml(text: &str) -> Vec<Rule> {
    let docs = YamlLoader::load_from_str(text).unwrap();
    serde_json::from_value(json(&docs[0])).unwrap()
}

pub fn builtin_rules() -> Vec<Rule> {
    rules_from_yaml(chokepoint_guard::BUILTIN_YAML)
}
