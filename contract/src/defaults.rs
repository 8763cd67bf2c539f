//! Fields with a default. Read: absent and null both mean the default, as they always
//! have on this wire; any other value is read as the field's type, so a wrong type is
//! still refused with serde's message naming the field. Written: some are left out
//! while they hold their default, so the common request keeps its documented shape.

use serde::{Deserialize, Deserializer};

pub fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

pub fn or_true<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(true))
}

pub fn yes() -> bool {
    true
}

pub fn is_true(b: &bool) -> bool {
    *b
}

pub fn is_zero(n: &u64) -> bool {
    *n == 0
}
