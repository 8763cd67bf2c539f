//! Model prices and the cost of a response, in integer micro-dollars.
//!
//! Prices are configured as decimal US dollars per million tokens (as providers publish
//! them) and held as integer micro-dollars per million tokens, so "2.50" is exactly
//! 2_500_000 and no float rounding ever reaches a budget. A cost is rounded up to the next
//! micro-dollar: many tiny requests must not each round down to free.
//!
//! A model is priced by its exact name, else by the most specific `*` glob that matches it
//! (dated and suffixed variants such as `claude-haiku-4-5-20251001` share their family's
//! price), else by the table's default. Some providers bill a whole request at higher rates
//! once its prompt passes a threshold (`long_context`).
//!
//! Reasoning tokens have no price of their own: [`Usage::output_tokens`] already includes
//! them for every provider and they are billed as output.

use std::collections::HashMap;

use serde::Deserialize;

use crate::accounting::usage::report::Usage;
use crate::providers::glob::Glob;

/// Micro-dollars per dollar, and tokens per priced unit (a million).
const MICROS: u64 = 1_000_000;
/// Decimal places a price may have: one micro-dollar per million tokens.
const MAX_DECIMALS: usize = 6;
/// No model costs this much; a larger number is a typo (cents for dollars, a missing dot).
pub const MAX_USD_PER_MTOK: u64 = 1_000_000;

/// Per-token-kind rates, in micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    pub input: u64,
    pub cached_input: u64,
    /// Writing a prompt cache (Anthropic and newer OpenAI models charge a premium for it).
    pub cache_write: u64,
    /// Writing Anthropic's 1-hour prompt cache: twice the input price unless configured.
    pub cache_write_1h: u64,
    pub output: u64,
}

/// One model's prices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub rates: Rates,
    /// A request whose prompt is longer than this many tokens is billed, every token of
    /// it, at these rates instead (Anthropic's Haiku 5.5 above 100,000, OpenAI's GPT-6
    /// above 272,000, Gemini Pro above 200,000).
    pub long_context: Option<(u64, Rates)>,
}

impl Price {
    /// The rates a request with this usage is billed at.
    pub fn rates_for(&self, usage: &Usage) -> &Rates {
        match &self.long_context {
            Some((above, long)) if usage.input_tokens > *above => long,
            _ => &self.rates,
        }
    }
}

/// Cost of `usage` at `price`, in micro-dollars, rounded up. Saturates at `u64::MAX`
/// rather than wrapping, whatever the counts.
pub fn cost_micros(usage: &Usage, price: &Price) -> u64 {
    let r = price.rates_for(usage);
    let term = |tokens: u64, per_mtok: u64| u128::from(tokens).saturating_mul(u128::from(per_mtok));
    let total = term(usage.uncached_input_tokens(), r.input)
        .saturating_add(term(usage.cached_input_tokens, r.cached_input))
        .saturating_add(term(usage.cache_writes_5m(), r.cache_write))
        .saturating_add(term(usage.cache_write_1h_input_tokens, r.cache_write_1h))
        .saturating_add(term(usage.output_tokens, r.output));
    u64::try_from(total.div_ceil(u128::from(MICROS))).unwrap_or(u64::MAX)
}

/// Prices by exact model name and by glob, with an optional fallback for the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceTable {
    models: HashMap<String, Price>,
    /// `*` patterns, most specific (longest literal text) first, so the order a JSON
    /// object happens to keep never decides which price applies.
    globs: Vec<(Glob, Price)>,
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
    #[serde(default)]
    cache_write_1h_per_mtok_usd: Option<serde_json::Value>,
    #[serde(default)]
    long_context: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLongContext {
    above_input_tokens: u64,
    input_per_mtok_usd: serde_json::Value,
    output_per_mtok_usd: serde_json::Value,
    #[serde(default)]
    cached_input_per_mtok_usd: Option<serde_json::Value>,
    #[serde(default)]
    cache_write_per_mtok_usd: Option<serde_json::Value>,
    #[serde(default)]
    cache_write_1h_per_mtok_usd: Option<serde_json::Value>,
}

/// Longest model name or pattern accepted in the table (the gateway refuses longer names
/// in requests, so a longer key could never match): the policy service's bound on names.
pub const MAX_MODEL_NAME_BYTES: usize = chokepoint_contract::bounds::MAX_NAME_BYTES;

impl PriceTable {
    /// Reads `{"models": {"<model or glob>": <price>, ...}, "default": <price>}` where a
    /// price is `{"input_per_mtok_usd", "output_per_mtok_usd", "cached_input_per_mtok_usd"?,
    /// "cache_write_per_mtok_usd"?, "cache_write_1h_per_mtok_usd"?, "long_context"?:
    /// {"above_input_tokens", ...the same rates}}`. The optional rates default to the input
    /// price, which never undercharges, except the 1-hour cache write: twice the input
    /// price, Anthropic's published rate for it.
    /// `path` is where the table sits in the configuration, for errors.
    pub fn parse(value: &serde_json::Value, path: &str) -> Result<PriceTable, PriceError> {
        if !value.is_object() {
            return Err(err(path, "must be an object"));
        }
        let raw = RawTable::deserialize(value).map_err(|e| err(path, e.to_string()))?;
        let mut models = HashMap::with_capacity(raw.models.len());
        let mut globs = Vec::new();
        for (name, price) in &raw.models {
            let field = format!("{path}.models[{name:?}]");
            if name.is_empty()
                || name.len() > MAX_MODEL_NAME_BYTES
                || name.chars().any(|c| c.is_control() || c == '?' || c == '[')
            {
                return Err(err(
                    field,
                    format!(
                        "must be a model name or a `*` glob of at most {MAX_MODEL_NAME_BYTES} bytes"
                    ),
                ));
            }
            let price = parse_price(price, &field)?;
            if name.contains('*') {
                globs.push((Glob::new(name), price));
            } else {
                models.insert(name.clone(), price);
            }
        }
        globs.sort_by(|(a, _), (b, _)| {
            b.literal_len()
                .cmp(&a.literal_len())
                .then_with(|| a.pattern.cmp(&b.pattern))
        });
        let default = match &raw.default {
            None | Some(serde_json::Value::Null) => None,
            Some(price) => Some(parse_price(price, &format!("{path}.default"))?),
        };
        Ok(PriceTable {
            models,
            globs,
            default,
        })
    }

    /// The model's price: its own, else its most specific glob's, else the default, else
    /// `None` (the policy service then refuses it under a dollar budget).
    pub fn lookup(&self, model: &str) -> Option<&Price> {
        self.entry(model).map(|(_, p)| p).or(self.default.as_ref())
    }

    /// The name the table prices `model` under: the model itself when it has its own
    /// price, the glob pattern that prices it, or `None` (the default, or no price).
    /// Bounded by the table, so it can key ledgers and stats whatever clients send.
    pub fn key_of(&self, model: &str) -> Option<&str> {
        self.entry(model).map(|(key, _)| key)
    }

    /// The entry that prices `model` (its own or its glob's), with its key: one pass,
    /// for the request path, which needs both.
    pub fn entry(&self, model: &str) -> Option<(&str, &Price)> {
        if let Some((name, price)) = self.models.get_key_value(model) {
            return Some((name.as_str(), price));
        }
        self.globs
            .iter()
            .find(|(g, _)| g.matches(model))
            .map(|(g, p)| (g.pattern.as_str(), p))
    }

    /// Whether the table has a price for every model (a default).
    pub fn has_default(&self) -> bool {
        self.default.is_some()
    }

    /// The price of models nothing else prices.
    pub fn default_price(&self) -> Option<&Price> {
        self.default.as_ref()
    }

    /// The glob patterns, most specific first.
    pub fn glob_patterns(&self) -> impl Iterator<Item = &str> {
        self.globs.iter().map(|(g, _)| g.pattern.as_str())
    }
}

fn parse_price(value: &serde_json::Value, path: &str) -> Result<Price, PriceError> {
    if !value.is_object() {
        return Err(err(path, "must be an object"));
    }
    let raw = RawPrice::deserialize(value).map_err(|e| err(path, e.to_string()))?;
    let rates = parse_rates(
        [&raw.input_per_mtok_usd, &raw.output_per_mtok_usd],
        [
            &raw.cached_input_per_mtok_usd,
            &raw.cache_write_per_mtok_usd,
            &raw.cache_write_1h_per_mtok_usd,
        ],
        path,
    )?;
    let long_context = match &raw.long_context {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => {
            let field = format!("{path}.long_context");
            if !v.is_object() {
                return Err(err(field, "must be an object"));
            }
            let l = RawLongContext::deserialize(v).map_err(|e| err(&field, e.to_string()))?;
            if l.above_input_tokens == 0 {
                return Err(err(
                    format!("{field}.above_input_tokens"),
                    "must be at least 1",
                ));
            }
            let long = parse_rates(
                [&l.input_per_mtok_usd, &l.output_per_mtok_usd],
                [
                    &l.cached_input_per_mtok_usd,
                    &l.cache_write_per_mtok_usd,
                    &l.cache_write_1h_per_mtok_usd,
                ],
                &field,
            )?;
            Some((l.above_input_tokens, long))
        }
    };
    Ok(Price {
        rates,
        long_context,
    })
}

/// `[input, output]` and the optional `[cached input, cache write, 1-hour cache write]`
/// rates, the optional ones defaulting to the input rate (the 1-hour write to twice it).
fn parse_rates(
    [input, output]: [&serde_json::Value; 2],
    [cached, write, write_1h]: [&Option<serde_json::Value>; 3],
    path: &str,
) -> Result<Rates, PriceError> {
    let field = |name: &str| format!("{path}.{name}");
    let input = usd_per_mtok(input, &field("input_per_mtok_usd"))?;
    let optional = |v: &Option<serde_json::Value>, name: &str| match v {
        None | Some(serde_json::Value::Null) => Ok(input),
        Some(v) => usd_per_mtok(v, &field(name)),
    };
    Ok(Rates {
        input,
        cached_input: optional(cached, "cached_input_per_mtok_usd")?,
        cache_write: optional(write, "cache_write_per_mtok_usd")?,
        cache_write_1h: match write_1h {
            None | Some(serde_json::Value::Null) => input.saturating_mul(2),
            Some(v) => usd_per_mtok(v, &field("cache_write_1h_per_mtok_usd"))?,
        },
        output: usd_per_mtok(output, &field("output_per_mtok_usd"))?,
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
