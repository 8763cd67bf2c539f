//! A field every sender must send, which a reader may still find missing.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value every sender sends ([`Required::new`] is the only way to make one to send),
/// read as [`None`] when the field is absent or null, so that the reader says what is
/// missing in its own words and order: the policy service answers `missing_field`,
/// the filter falls back to a default, where serde would stop at the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Required<T>(Option<T>);

impl<T> Required<T> {
    pub fn new(value: T) -> Self {
        Self(Some(value))
    }

    /// The value, or `None` when the payload read lacked it.
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }

    pub fn into_option(self) -> Option<T> {
        self.0
    }
}

impl<T: Serialize> Serialize for Required<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Required<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::deserialize(deserializer).map(Self)
    }
}

/// The value's own schema: the field is required and never null.
#[cfg(test)]
impl<T: schemars::JsonSchema> schemars::JsonSchema for Required<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}
