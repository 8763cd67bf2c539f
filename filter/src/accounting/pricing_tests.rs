//! Decimal parsing, table lookup and cost arithmetic at the extremes.

use serde_json::json;

use super::*;

#[test]
fn decimals_parse_exactly() {
    let table = [
        (json!("2.50"), 2_500_000),
        (json!("2.5"), 2_500_000),
        (json!("0"), 0),
        (json!("0.000001"), 1),
        (json!("007.10"), 7_100_000),
        (json!("1000000"), 1_000_000_000_000),
        (json!(2.5), 2_500_000),
        (json!(0.15), 150_000),
        (json!(0.075), 75_000),
        (json!(3), 3_000_000),
        (json!(1e-6), 1),
        (json!(1.1), 1_100_000),
        (json!(0.3), 300_000),
    ];
    for (value, want) in table {
        assert_eq!(usd_per_mtok(&value, "f"), Ok(want), "{value}");
    }
}

#[test]
fn bad_decimals_are_rejected_naming_the_field() {
    let table = [
        (json!("-1"), "negative"),
        (json!(-0.5), "negative"),
        (json!(-3), "negative"),
        (json!("NaN"), "decimal number"),
        (json!("inf"), "decimal number"),
        (json!(""), "decimal number"),
        (json!("."), "decimal number"),
        (json!("1."), "decimal number"),
        (json!(".5"), "decimal number"),
        (json!("1e3"), "decimal number"),
        (json!(" 1"), "decimal number"),
        (json!("1,5"), "decimal number"),
        (json!("+1"), "decimal number"),
        (json!("0.0000001"), "decimal places"),
        (json!(1e-7), "decimal places"),
        (json!("1000000.000001"), "at most"),
        (json!("99999999999999999999999"), "at most"),
        (json!(1e30), "at most"),
        (json!(null), "number or a decimal string"),
        (json!(true), "number or a decimal string"),
        (json!([1]), "number or a decimal string"),
    ];
    for (value, want) in table {
        let e = usd_per_mtok(&value, "prices.models[\"m\"].input_per_mtok_usd").unwrap_err();
        assert_eq!(
            e.field, "prices.models[\"m\"].input_per_mtok_usd",
            "{value}"
        );
        assert!(e.message.contains(want), "{value}: {}", e.message);
    }
}

fn usage(input: u64, cached: u64, creation: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached,
        reasoning_tokens: 0,
        cache_creation_input_tokens: creation,
        cache_write_1h_input_tokens: 0,
    }
}

#[test]
fn cost_is_exact_and_rounds_up() {
    // gpt-4o: $2.50 in, $1.25 cached, $10 out.
    let gpt4o = Price {
        rates: Rates {
            input: 2_500_000,
            cached_input: 1_250_000,
            cache_write: 2_500_000,
            cache_write_1h: 5_000_000,
            output: 10_000_000,
        },
        long_context: None,
    };
    // claude sonnet: $3 in, $0.30 cache read, $3.75 cache write, $15 out.
    let sonnet = Price {
        rates: Rates {
            input: 3_000_000,
            cached_input: 300_000,
            cache_write: 3_750_000,
            cache_write_1h: 6_000_000,
            output: 15_000_000,
        },
        long_context: None,
    };
    let table = [
        (usage(1_000_000, 0, 0, 0), gpt4o, 2_500_000),
        (usage(0, 0, 0, 1_000_000), gpt4o, 10_000_000),
        // 1000 uncached * 2.5 + 1000 cached * 1.25 + 100 out * 10 = 2500+1250+1000 µ$.
        (usage(2000, 1000, 0, 100), gpt4o, 4750),
        // One token at $2.50/Mtok is 2.5 µ$: rounds up to 3.
        (usage(1, 0, 0, 0), gpt4o, 3),
        (usage(0, 0, 0, 0), gpt4o, 0),
        // 1000 uncached*3 + 2000 read*0.3 + 500 write*3.75 + 10 out*15 = 3000+600+1875+150.
        (usage(3500, 2000, 500, 10), sonnet, 5625),
        // A part larger than its whole saturates instead of wrapping.
        (usage(10, 50, 0, 0), sonnet, 15),
        // Anthropic's 1-hour writes at their own rate ($6, twice the input), the rest of
        // the writes at the 5-minute rate: 1000 uncached*3 + 300 (5m)*3.75 + 200 (1h)*6.
        (
            Usage {
                cache_write_1h_input_tokens: 200,
                ..usage(1500, 0, 500, 0)
            },
            sonnet,
            5325,
        ),
        // All writes 1-hour (Claude Code with ENABLE_PROMPT_CACHING_1H): 1000 * 6.
        (
            Usage {
                cache_write_1h_input_tokens: 1000,
                ..usage(1000, 0, 1000, 0)
            },
            sonnet,
            6000,
        ),
    ];
    for (u, price, want) in table {
        assert_eq!(cost_micros(&u, &price), want, "{u:?}");
    }
}

#[test]
fn huge_counts_saturate() {
    let max_price = Price {
        rates: Rates {
            input: u64::MAX,
            cached_input: u64::MAX,
            cache_write: u64::MAX,
            cache_write_1h: u64::MAX,
            output: u64::MAX,
        },
        long_context: None,
    };
    let all_max = usage(u64::MAX, u64::MAX / 3, u64::MAX / 3, u64::MAX);
    assert_eq!(cost_micros(&all_max, &max_price), u64::MAX);
    let parsed_max = Price {
        rates: Rates {
            input: MAX_USD_PER_MTOK * MICROS,
            cached_input: 0,
            cache_write: 0,
            cache_write_1h: 0,
            output: MAX_USD_PER_MTOK * MICROS,
        },
        long_context: None,
    };
    // u64::MAX tokens at the largest configurable price: still no overflow, just a cap.
    assert_eq!(
        cost_micros(&usage(u64::MAX, 0, 0, 0), &parsed_max),
        u64::MAX
    );
    // Large but representable: 10^12 tokens at $1/Mtok is $10^6 = 10^12 µ$.
    let one_dollar = Price {
        rates: Rates {
            input: MICROS,
            ..Rates::default()
        },
        long_context: None,
    };
    assert_eq!(
        cost_micros(&usage(1_000_000_000_000, 0, 0, 0), &one_dollar),
        1_000_000_000_000
    );
}

#[test]
fn table_lookup_and_defaults() {
    let table = PriceTable::parse(
        &json!({
            "models": {
                "gpt-4o": {"input_per_mtok_usd": "2.50", "cached_input_per_mtok_usd": 1.25,
                           "output_per_mtok_usd": 10},
                "claude-sonnet-4-5": {"input_per_mtok_usd": 3, "output_per_mtok_usd": "15",
                                      "cached_input_per_mtok_usd": "0.30",
                                      "cache_write_per_mtok_usd": "3.75"}
            },
            "default": {"input_per_mtok_usd": "1", "output_per_mtok_usd": "2"}
        }),
        "prices",
    )
    .unwrap();
    assert_eq!(
        table.lookup("gpt-4o"),
        Some(&Price {
            rates: Rates {
                input: 2_500_000,
                cached_input: 1_250_000,
                cache_write: 2_500_000,
                cache_write_1h: 5_000_000,
                output: 10_000_000,
            },
            long_context: None,
        })
    );
    assert_eq!(
        table
            .lookup("claude-sonnet-4-5")
            .map(|p| p.rates.cache_write),
        Some(3_750_000)
    );
    // The 1-hour cache write defaults to twice the input price (Anthropic's rate for it).
    assert_eq!(
        table
            .lookup("claude-sonnet-4-5")
            .map(|p| p.rates.cache_write_1h),
        Some(6_000_000)
    );
    let set = PriceTable::parse(
        &json!({"models": {"m": {"input_per_mtok_usd": "1", "output_per_mtok_usd": "2",
                                 "cache_write_1h_per_mtok_usd": "1.75"}}}),
        "prices",
    )
    .unwrap();
    assert_eq!(
        set.lookup("m").map(|p| p.rates.cache_write_1h),
        Some(1_750_000)
    );
    // Exact names only: no prefix or case folding.
    assert_eq!(
        table.lookup("GPT-4o").map(|p| p.rates.input),
        Some(1_000_000)
    );
    assert_eq!(
        table.lookup("gpt-4o-mini").map(|p| p.rates.output),
        Some(2_000_000)
    );

    let no_default = PriceTable::parse(&json!({"models": {}}), "prices").unwrap();
    assert_eq!(no_default.lookup("anything"), None);
    assert_eq!(
        PriceTable::parse(&json!({}), "prices").unwrap(),
        PriceTable::default()
    );
}

#[test]
fn table_errors_name_the_field() {
    let table = [
        (
            json!({"models": {"m": {"input_per_mtok_usd": "x", "output_per_mtok_usd": 1}}}),
            "prices.models[\"m\"].input_per_mtok_usd",
        ),
        (
            json!({"models": {"m": {"input_per_mtok_usd": 1, "output_per_mtok_usd": -1}}}),
            "prices.models[\"m\"].output_per_mtok_usd",
        ),
        (
            json!({"default": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 1,
                               "cached_input_per_mtok_usd": "0.1234567"}}),
            "prices.default.cached_input_per_mtok_usd",
        ),
        (
            json!({"models": {"m": {"input_per_mtok_usd": 1}}}),
            "prices.models[\"m\"]",
        ),
        (
            json!({"models": {"m": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 1,
                                    "output_usd": 1}}}),
            "prices.models[\"m\"]",
        ),
        (
            json!({"models": {"": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 1}}}),
            "prices.models[\"\"]",
        ),
        (json!({"modles": {}}), "prices"),
        (json!([]), "prices"),
    ];
    for (value, field) in table {
        let e = PriceTable::parse(&value, "prices").unwrap_err();
        assert_eq!(e.field, field, "{value}: {e}");
    }
}

#[test]
fn globs_price_families_most_specific_first() {
    let p = |input: &str| json!({"input_per_mtok_usd": input, "output_per_mtok_usd": "1"});
    let table = PriceTable::parse(
        &json!({"models": {
            "claude-*": p("9"),
            "claude-haiku-4-5*": p("1"),
            "claude-haiku-4-5-20251001": p("2"),
            "*-mini": p("3"),
        }}),
        "prices",
    )
    .unwrap();
    // (model, input price in dollars, the name it is keyed under)
    let cases: [(&str, Option<u64>, Option<&str>); 7] = [
        (
            "claude-haiku-4-5-20251001",
            Some(2),
            Some("claude-haiku-4-5-20251001"),
        ),
        ("claude-haiku-4-5", Some(1), Some("claude-haiku-4-5*")),
        ("claude-haiku-4-5[1m]", Some(1), Some("claude-haiku-4-5*")),
        ("claude-opus-5-5", Some(9), Some("claude-*")),
        ("gpt-6-mini", Some(3), Some("*-mini")),
        // A longer literal text wins over the order of the file.
        ("claude-x-mini", Some(9), Some("claude-*")),
        ("gemini-4-argon", None, None),
    ];
    for (model, input, key) in cases {
        assert_eq!(
            table.lookup(model).map(|p| p.rates.input / MICROS),
            input,
            "{model}"
        );
        assert_eq!(table.key_of(model), key, "{model}");
    }
}

#[test]
fn a_long_prompt_bills_the_whole_request_at_its_rates() {
    // Haiku 5.5: $0.10 / $0.50 up to 100,000 prompt tokens, $0.50 / $2.50 above.
    let table = PriceTable::parse(
        &json!({"models": {"claude-haiku-5-5": {
            "input_per_mtok_usd": "0.10", "cached_input_per_mtok_usd": "0.01",
            "output_per_mtok_usd": "0.50",
            "long_context": {"above_input_tokens": 100000, "input_per_mtok_usd": "0.50",
                             "cached_input_per_mtok_usd": "0.05", "output_per_mtok_usd": "2.50"}}}}),
        "prices",
    )
    .unwrap();
    let price = table.lookup("claude-haiku-5-5").copied().unwrap();
    let cases = [
        // 100,000 in * 0.10 + 1,000 out * 0.50 = 10,000 + 500 µ$.
        (usage(100_000, 0, 0, 1_000), 10_500),
        // One token more: every token at the upper rates, output too.
        (usage(100_001, 0, 0, 1_000), 50_001 + 2_500),
        // Cache reads count toward the prompt: 60,000 read + 50,000 fresh > 100,000.
        (usage(110_000, 60_000, 0, 0), 25_000 + 3_000),
    ];
    for (u, want) in cases {
        assert_eq!(cost_micros(&u, &price), want, "{u:?}");
    }
}

#[test]
fn glob_and_tier_errors_name_the_field() {
    let table = [
        (
            json!({"models": {"a?b": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 1}}}),
            "prices.models[\"a?b\"]",
        ),
        (
            json!({"models": {"m": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 1,
                "long_context": {"above_input_tokens": 0, "input_per_mtok_usd": 1,
                                 "output_per_mtok_usd": 1}}}}),
            "prices.models[\"m\"].long_context.above_input_tokens",
        ),
        (
            json!({"models": {"m": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 1,
                "long_context": {"above_input_tokens": 5, "input_per_mtok_usd": "x",
                                 "output_per_mtok_usd": 1}}}}),
            "prices.models[\"m\"].long_context.input_per_mtok_usd",
        ),
        (
            json!({"models": {"m": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 1,
                "long_context": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 1}}}}),
            "prices.models[\"m\"].long_context",
        ),
    ];
    for (value, field) in table {
        let e = PriceTable::parse(&value, "prices").unwrap_err();
        assert_eq!(e.field, field, "{value}: {e}");
    }
}
