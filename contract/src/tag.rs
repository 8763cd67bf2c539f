//! The `allow` field of a decision, which tells an allow from a denial.

use serde::{Serialize, Serializer};

/// A boolean that is always `B`: an allow's `allow` is `true`, a denial's `false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tag<const B: bool>;

impl<const B: bool> Serialize for Tag<B> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(B)
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
