//! Model prices and the cost of a response, in integer micro-dollars.
//!
//! Prices are configured as decimal US dollars per million tokens (as providers publish
//! them) and held as integer micro-dollars per million tokens, so "2.50" is exactly
//! 2_500_000 and no float rounding ever reaches a budget. A cost is rounded up to the next
//! micro-dollar: many tiny requests must not each round down to free.
//!
//! Reasoning tokens have no price of their own: [`Usage::output_tokens`] already includes
//! them for every provider and they are billed as output.

use std::collections::HashMap;

use serde::Deserialize;

use crate::usage::Usage;

/// Micro-dollars per dollar, and tokens per priced unit (a million).
const MICROS: u64 = 1_000_000;
/// Decimal places a price may have: one micro-dollar per million tokens.
const MAX_DECIMALS: usize = 6;
/// No model costs this much; a larger number is a typo (cents for dollars, a missing dot).
pub const MAX_USD_PER_MTOK: u64 = 1_000_000;

/// One model's prices, in micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub input: u64,
    pub cached_input: u64,
    /// Writing a prompt cache (Anthropic charges a premium over input for it).
    pub cache_write: u64,
    pub output: u64,
}

/// Cost of `usage` at `price`, in micro-dollars, rounded up. Saturates at `u64::MAX`
/// rather than wrapping, whatever the counts.
pub fn cost_micros(usage: &Usage, price: &Price) -> u64 {
    let term = |tokens: u64, per_mtok: u64| u128::from(tokens).saturating_mul(u128::from(per_mtok));
    let total = term(usage.uncached_input_tokens(), price.input)
        .saturating_add(term(usage.cached_input_tokens, price.cached_input))
        .saturating_add(term(usage.cache_creation_input_tokens, price.cache_write))
        .saturating_add(term(usage.output_tokens, price.output));
    u64::try_from(total.div_ceil(u128::from(MICROS))).unwrap_or(u64::MAX)
}

/// Prices by exact model name, with an optional fallback for models not listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceTable {
    models: HashMap<String, Price>,
    default: Option<Price>,
}

/// A price configuration error that names the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for PriceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> PriceError {
    PriceError {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    models: HashMap<String, serde_json::Value>,
    #[serde(default)]
    default: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    input_per_mtok_usd: serde_json::Value,
    output_per_mtok_usd: serde_json::Value,
    #[serde(default)]
    cached_input_per_mtok_usd: Option<serde_json::Value>,
    #[serde(default)]
    cache_write_per_mtok_usd: Option<serde_json::Value>,
}

impl PriceTable {
    /// Reads `{"models": {"<model>": <price>, ...}, "default": <price>}` where a price is
    /// `{"input_per_mtok_usd", "output_per_mtok_usd", "cached_input_per_mtok_usd"?,
    /// "cache_write_per_mtok_usd"?}`. The optional two default to the input price, which
    /// never undercharges. `path` is where the table sits in the configuration, for errors.
    pub fn parse(value: &serde_json::Value, path: &str) -> Result<PriceTable, PriceError> {
        if !value.is_object() {
            return Err(err(path, "must be an object"));
        }
        let raw = RawTable::deserialize(value).map_err(|e| err(path, e.to_string()))?;
        let mut models = HashMap::with_capacity(raw.models.len());
        for (name, price) in &raw.models {
            let field = format!("{path}.models[{name:?}]");
            if name.is_empty() {
                return Err(err(field, "model name must not be empty"));
            }
            models.insert(name.clone(), parse_price(price, &field)?);
        }
        let default = match &raw.default {
            None | Some(serde_json::Value::Null) => None,
            Some(price) => Some(parse_price(price, &format!("{path}.default"))?),
        };
        Ok(PriceTable { models, default })
    }

    /// The model's price, else the default, else `None` (the caller decides whether an
    /// unpriced model may run).
    /// Whether the model has its own price (and so its own stats series).
    pub fn is_listed(&self, model: &str) -> bool {
        self.models.contains_key(model)
    }

    pub fn lookup(&self, model: &str) -> Option<&Price> {
        self.models.get(model).or(self.default.as_ref())
    }
}

fn parse_price(value: &serde_json::Value, path: &str) -> Result<Price, PriceError> {
    if !value.is_object() {
        return Err(err(path, "must be an object"));
    }
    let raw = RawPrice::deserialize(value).map_err(|e| err(path, e.to_string()))?;
    let field = |name: &str| format!("{path}.{name}");
    let input = usd_per_mtok(&raw.input_per_mtok_usd, &field("input_per_mtok_usd"))?;
    let optional = |v: &Option<serde_json::Value>, name: &str| match v {
        None | Some(serde_json::Value::Null) => Ok(input),
        Some(v) => usd_per_mtok(v, &field(name)),
    };
    Ok(Price {
        input,
        cached_input: optional(&raw.cached_input_per_mtok_usd, "cached_input_per_mtok_usd")?,
        cache_write: optional(&raw.cache_write_per_mtok_usd, "cache_write_per_mtok_usd")?,
        output: usd_per_mtok(&raw.output_per_mtok_usd, &field("output_per_mtok_usd"))?,
    })
}

/// A price in US dollars per million tokens, from a JSON number or a decimal string, as
/// micro-dollars per million tokens.
pub fn usd_per_mtok(value: &serde_json::Value, field: &str) -> Result<u64, PriceError> {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        // Without serde_json's arbitrary precision a JSON number is already an f64; its
        // shortest round-trip form gives back the digits that were written (0.15 → "0.15"),
        // which the decimal parser then reads exactly. Display never uses an exponent.
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => u.to_string(),
            (None, Some(f)) => format!("{f}"),
            (None, None) => n.to_string(),
        },
        _ => {
            return Err(err(
                field,
                "must be a number or a decimal string, like \"2.50\"",
            ))
        }
    };
    parse_micros(&text).map_err(|m| err(field, m))
}

/// Parses a plain non-negative decimal (`"2"`, `"2.5"`, `"0.000001"`) into millionths.
fn parse_micros(text: &str) -> Result<u64, String> {
    if text.starts_with('-') {
        return Err("must not be negative".into());
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (text.contains('.') && !digits(fraction)) {
        return Err(format!(
            "must be a decimal number of US dollars per million tokens, like \"2.50\"; got {text:?}"
        ));
    }
    if fraction.len() > MAX_DECIMALS {
        return Err(format!(
            "has more than {MAX_DECIMALS} decimal places (the smallest unit is one \
             micro-dollar per million tokens)"
        ));
    }
    let too_large = || format!("must be at most {MAX_USD_PER_MTOK} US dollars per million tokens");
    let whole: u64 = whole
        .trim_start_matches('0')
        .parse::<u64>()
        .or_else(|e| match e.kind() {
            std::num::IntErrorKind::Empty => Ok(0),
            _ => Err(too_large()),
        })?;
    if whole > MAX_USD_PER_MTOK {
        return Err(too_large());
    }
    let scale = 10u64.pow((MAX_DECIMALS - fraction.len()) as u32);
    let fraction: u64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<u64>().map_err(|_| too_large())? * scale
    };
    let micros = whole * MICROS + fraction;
    if micros > MAX_USD_PER_MTOK * MICROS {
        return Err(too_large());
    }
    Ok(micros)
}

#[cfg(test)]
#[path = "pricing_tests.rs"]
mod tests;
