//! Usage to charge when the provider's own count is missing or was cut short: the client
//! went away, the upstream connection broke, or usage reporting was off. Undercharging is
//! the failure that matters (it lets a budget be overspent without limit by aborting
//! streams), so a response that delivered text is never charged zero output.
//!
//! The estimate is about 4 bytes of UTF-8 text per token, the usual figure for English
//! with current tokenizers. What a provider generates out of sight (reasoning it never
//! streams, the rest of an answer cut short) is estimated from how long it was answering:
//! at least [`HIDDEN_TOKENS_PER_SEC`], a pace every current model exceeds while it
//! generates (the slowest "pro" models run at about 11 tokens a second), so the estimate
//! stays under what was really generated, never at the request's whole output cap. Only
//! the provider's own count is exact; estimated records say so.

use super::report::{Report, Usage};

/// Bytes of text per token assumed by the estimate.
pub const BYTES_PER_TOKEN: u64 = 4;

/// Output tokens per second taken as generated, unseen, while an interrupted answer was
/// being answered.
pub const HIDDEN_TOKENS_PER_SEC: u64 = 10;

/// How long the provider was answering (response headers to the end, however it came),
/// and the most output the request could produce (its cap times its outputs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answering {
    pub millis: u64,
    pub output_bound: u64,
}

impl Answering {
    /// Output taken as generated out of sight during an interrupted answer: at least one
    /// token (the provider began answering), at most the request's bound.
    fn unseen_output(self) -> u64 {
        let paced = self.millis.saturating_mul(HIDDEN_TOKENS_PER_SEC) / 1000;
        paced.max(1).min(self.output_bound.max(1))
    }
}

/// What a request that reached the provider but got no answer (the client or the upstream
/// went away before the response headers) is charged: its input, estimated. The provider
/// read the prompt; nothing is known to have been generated.
pub fn unanswered(request_prompt_bytes: u64) -> Accounted {
    Accounted {
        usage: Usage {
            input_tokens: tokens_for_bytes(request_prompt_bytes),
            ..Usage::default()
        },
        estimated: true,
    }
}

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

/// Settles a successful response's usage from its report. `request_prompt_bytes` is the
/// size of the prompt as the request body measured it, for when the provider never said.
///
/// - Final usage is used as reported.
/// - A running count cut short keeps its input counts and raises its output to what the
///   delivered text implies.
/// - No usage at all is estimated whole.
/// - An answer that did not complete is charged at least what the provider is taken to
///   have generated unseen meanwhile (see [`Answering`]): never zero output.
///
/// A reported (even final) output of zero for a response that delivered text is not
/// believed either.
pub fn account(report: &Report, request_prompt_bytes: u64, answering: Answering) -> Accounted {
    let delivered = tokens_for_bytes(report.delivered_text_bytes);
    let unseen = if report.completed {
        0
    } else {
        answering.unseen_output()
    };
    let Some(mut usage) = report.usage else {
        return Accounted {
            usage: Usage {
                input_tokens: tokens_for_bytes(request_prompt_bytes),
                output_tokens: delivered.max(unseen),
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
        usage.output_tokens = usage.output_tokens.max(delivered).max(unseen);
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

    fn report(usage: Option<Usage>, usage_final: bool, delivered: u64, completed: bool) -> Report {
        Report {
            usage,
            usage_final,
            completed,
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

    /// Answering for `millis`, with the request's output bound.
    fn after(millis: u64, output_bound: u64) -> Answering {
        Answering {
            millis,
            output_bound,
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
        let quick = after(0, 4096);
        let table = [
            (
                "final usage as is",
                report(Some(cached), true, 400, true),
                999,
                quick,
                exact(cached),
            ),
            (
                "nothing known, completed without usage",
                report(None, false, 0, true),
                0,
                quick,
                guess(usage(0, 0)),
            ),
            (
                "cut at once: the provider began answering, never zero output",
                report(None, false, 0, false),
                0,
                quick,
                guess(usage(0, 1)),
            ),
            (
                "prompt only",
                report(None, false, 0, true),
                10,
                quick,
                guess(usage(3, 0)),
            ),
            (
                "one byte is one token",
                report(None, false, 1, true),
                1,
                quick,
                guess(usage(1, 1)),
            ),
            (
                "rounds up",
                report(None, false, 9, true),
                8,
                quick,
                guess(usage(2, 3)),
            ),
            (
                "exact multiple",
                report(None, false, 8, true),
                4,
                quick,
                guess(usage(1, 2)),
            ),
            (
                "cut after message_start keeps input, raises output",
                report(Some(usage(25, 1)), false, 400, false),
                4,
                quick,
                guess(usage(25, 100)),
            ),
            (
                "running count above the estimate stays",
                report(Some(usage(25, 500)), false, 400, false),
                4,
                quick,
                guess(usage(25, 500)),
            ),
            (
                "running count without input",
                report(Some(usage(0, 1)), false, 4, false),
                40,
                quick,
                guess(usage(10, 1)),
            ),
            (
                "final zero output with text delivered",
                report(Some(usage(5, 0)), true, 4, true),
                0,
                quick,
                guess(usage(5, 1)),
            ),
            (
                "final zero output without text",
                report(Some(usage(5, 0)), true, 0, true),
                0,
                quick,
                exact(usage(5, 0)),
            ),
            (
                "hidden reasoning: 30 s answering, nothing visible, then cut",
                report(None, false, 0, false),
                400,
                after(30_000, 32_000),
                guess(usage(100, 300)),
            ),
            (
                "a running count under the pace is raised to it",
                report(Some(usage(25, 3)), false, 0, false),
                0,
                after(2_000, 32_000),
                guess(usage(25, 20)),
            ),
            (
                "an interrupted agent turn is not charged its whole cap",
                report(None, false, 2_000, false),
                4_000,
                after(20_000, 32_000),
                guess(usage(1_000, 500)),
            ),
            (
                "the pace never passes the request's output bound",
                report(None, false, 0, false),
                0,
                after(600_000, 1_000),
                guess(usage(0, 1_000)),
            ),
            (
                "visible text past the pace counts in full",
                report(None, false, 4_000, false),
                0,
                after(10_000, 32_000),
                guess(usage(0, 1_000)),
            ),
            (
                "huge counts do not overflow",
                report(None, false, u64::MAX, false),
                u64::MAX,
                after(u64::MAX, u64::MAX),
                guess(usage(u64::MAX / 4 + 1, u64::MAX / 4 + 1)),
            ),
        ];
        for (name, report, prompt, answering, want) in table {
            assert_eq!(account(&report, prompt, answering), want, "{name}");
        }
    }

    #[test]
    fn an_unanswered_request_is_charged_its_input() {
        assert_eq!(
            unanswered(4_000),
            Accounted {
                usage: usage(1_000, 0),
                estimated: true
            }
        );
    }
}
