//! Usage to charge when the provider's own count is missing or was cut short: the client
//! went away, the upstream connection broke, or usage reporting was off. Undercharging is
//! the failure that matters (it lets a budget be overspent without limit by aborting
//! streams), so a response that delivered text is never charged zero output.
//!
//! The estimate is about 4 bytes of UTF-8 text per token, the usual figure for English
//! with current tokenizers. Reasoning a provider never streamed is invisible here, so an
//! estimate for a reasoning model is low; only the provider's count is exact.

use super::{Report, Usage};

/// Bytes of text per token assumed by the estimate.
pub const BYTES_PER_TOKEN: u64 = 4;

/// The usage to charge, and whether any of it is the gateway's guess.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accounted {
    pub usage: Usage,
    pub estimated: bool,
}

/// Tokens for `bytes` of text: rounded up, so any text is at least one token.
pub fn tokens_for_bytes(bytes: u64) -> u64 {
    bytes.div_ceil(BYTES_PER_TOKEN)
}

/// Settles a response's usage from its report. `request_prompt_bytes` is the size of the
/// prompt as the request body measured it, for when the provider never said.
///
/// - Final usage is used as reported.
/// - A running count cut short keeps its input counts and raises its output to what the
///   delivered text implies.
/// - No usage at all is estimated whole.
///
/// A reported (even final) output of zero for a response that delivered text is not
/// believed either.
pub fn account(report: &Report, request_prompt_bytes: u64) -> Accounted {
    let delivered = tokens_for_bytes(report.delivered_text_bytes);
    let Some(mut usage) = report.usage else {
        return Accounted {
            usage: Usage {
                input_tokens: tokens_for_bytes(request_prompt_bytes),
                output_tokens: delivered,
                ..Usage::default()
            },
            estimated: true,
        };
    };
    let mut estimated = false;
    if !report.usage_final {
        if usage.input_tokens == 0 {
            usage.input_tokens = tokens_for_bytes(request_prompt_bytes);
        }
        usage.output_tokens = usage.output_tokens.max(delivered);
        estimated = true;
    } else if usage.output_tokens == 0 && delivered > 0 {
        usage.output_tokens = delivered;
        estimated = true;
    }
    Accounted { usage, estimated }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(usage: Option<Usage>, usage_final: bool, delivered: u64) -> Report {
        Report {
            usage,
            usage_final,
            delivered_text_bytes: delivered,
            ..Report::default()
        }
    }

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            ..Usage::default()
        }
    }

    #[test]
    fn table() {
        let exact = |u| Accounted {
            usage: u,
            estimated: false,
        };
        let guess = |u| Accounted {
            usage: u,
            estimated: true,
        };
        let cached = Usage {
            cached_input_tokens: 90,
            ..usage(100, 7)
        };
        let table = [
            (
                "final usage as is",
                report(Some(cached), true, 400),
                999,
                exact(cached),
            ),
            (
                "nothing known",
                report(None, false, 0),
                0,
                guess(usage(0, 0)),
            ),
            (
                "prompt only",
                report(None, false, 0),
                10,
                guess(usage(3, 0)),
            ),
            (
                "one byte is one token",
                report(None, false, 1),
                1,
                guess(usage(1, 1)),
            ),
            ("rounds up", report(None, false, 9), 8, guess(usage(2, 3))),
            (
                "exact multiple",
                report(None, false, 8),
                4,
                guess(usage(1, 2)),
            ),
            (
                "cut after message_start keeps input, raises output",
                report(Some(usage(25, 1)), false, 400),
                4,
                guess(usage(25, 100)),
            ),
            (
                "running count above the estimate stays",
                report(Some(usage(25, 500)), false, 400),
                4,
                guess(usage(25, 500)),
            ),
            (
                "running count without input",
                report(Some(usage(0, 1)), false, 4),
                40,
                guess(usage(10, 1)),
            ),
            (
                "final zero output with text delivered",
                report(Some(usage(5, 0)), true, 4),
                0,
                guess(usage(5, 1)),
            ),
            (
                "final zero output without text",
                report(Some(usage(5, 0)), true, 0),
                0,
                exact(usage(5, 0)),
            ),
            (
                "huge counts do not overflow",
                report(None, false, u64::MAX),
                u64::MAX,
                guess(usage(u64::MAX / 4 + 1, u64::MAX / 4 + 1)),
            ),
        ];
        for (name, report, prompt, want) in table {
            assert_eq!(account(&report, prompt), want, "{name}");
        }
    }
}
