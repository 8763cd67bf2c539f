//! The `allow` field of a decision, which tells an allow from a denial.

use serde::de::{Error, Unexpected};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A boolean that is always `B`: written as `B`, and read only from `B`, so that a
/// [`Decision`](crate::Decision) is an allow or a denial by its `allow` field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tag<const B: bool>;

impl<const B: bool> Serialize for Tag<B> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(B)
    }
}

impl<'de, const B: bool> Deserialize<'de> for Tag<B> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = bool::deserialize(deserializer)?;
        if value != B {
            let expected = if B { "true" } else { "false" };
            return Err(D::Error::invalid_value(Unexpected::Bool(value), &expected));
        }
        Ok(Tag)
    }
}

#[cfg(test)]
impl<const B: bool> schemars::JsonSchema for Tag<B> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        if B { "True" } else { "False" }.into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "const": B })
    }
}
