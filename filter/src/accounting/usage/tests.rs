//! Real provider payloads (filter/fixtures) read whole, byte by byte and in 200 random
//! chunkings, with every line-ending style; plus the odd and broken inputs around them.

use proptest::prelude::*;

use super::estimate::{account, Answering};
use super::*;
use crate::accounting::usage::report::Usage;

macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            &include_bytes!(concat!("../../../fixtures/", $name))[..],
        )
    };
}

fn usage(input: u64, output: u64, cached: u64, reasoning: u64, creation: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached,
        reasoning_tokens: reasoning,
        cache_creation_input_tokens: creation,
        cache_write_1h_input_tokens: 0,
    }
}

struct Want {
    usage: Option<Usage>,
    usage_final: bool,
    completed: bool,
    error: Option<&'static str>,
    delivered: u64,
}

impl Want {
    fn report(&self) -> Report {
        Report {
            usage: self.usage,
            usage_final: self.usage_final,
            completed: self.completed,
            error: self.error.map(str::to_string),
            delivered_text_bytes: self.delivered,
            ..Report::default()
        }
    }
}

fn done(usage: Usage, delivered: u64) -> Want {
    Want {
        usage: Some(usage),
        usage_final: true,
        completed: true,
        error: None,
        delivered,
    }
}

fn failed(usage: Option<Usage>, usage_final: bool, error: &'static str, delivered: u64) -> Want {
    Want {
        usage,
        usage_final,
        completed: false,
        error: Some(error),
        delivered,
    }
}

/// Delivered byte counts were worked out independently of this code, from the fixtures'
/// decoded JSON strings.
fn streams() -> Vec<(&'static str, &'static [u8], Format, Want)> {
    use Format::*;
    vec![
        {
            let (n, b) = fixture!("openai_chat_stream.sse");
            (n, b, OpenAiChat, done(usage(1843, 217, 1792, 192, 0), 62))
        },
        {
            let (n, b) = fixture!("openai_chat_stream_no_usage.sse");
            let want = Want {
                usage: None,
                usage_final: false,
                completed: true,
                error: None,
                delivered: 25,
            };
            (n, b, OpenAiChat, want)
        },
        {
            // Legacy completions: the same usage chunk, the text in `choices[].text`.
            let (n, b) = fixture!("openai_completion_stream.sse");
            (n, b, OpenAiChat, done(usage(5, 4, 0, 0, 0), 14))
        },
        {
            let (n, b) = fixture!("openai_chat_stream_error.sse");
            (n, b, OpenAiChat, failed(None, false, "server_error", 16))
        },
        {
            let (n, b) = fixture!("openai_responses_stream.sse");
            (
                n,
                b,
                OpenAiResponses,
                done(usage(1290, 143, 1152, 128, 0), 52),
            )
        },
        {
            let (n, b) = fixture!("openai_responses_stream_failed.sse");
            let u = usage(58, 3, 0, 0, 0);
            (
                n,
                b,
                OpenAiResponses,
                failed(Some(u), true, "server_error", 13),
            )
        },
        {
            let (n, b) = fixture!("anthropic_stream.sse");
            (n, b, Anthropic, done(usage(25, 15, 0, 0, 0), 37))
        },
        {
            let (n, b) = fixture!("anthropic_stream_cache.sse");
            let u = usage(12 + 10240 + 1830, 89, 10240, 0, 1830);
            (n, b, Anthropic, done(u, 98))
        },
        {
            // The same writes, 1000 of them to the 1-hour cache (priced apart).
            let (n, b) = fixture!("anthropic_stream_cache_1h.sse");
            let u = Usage {
                cache_write_1h_input_tokens: 1000,
                ..usage(12 + 10240 + 1830, 89, 10240, 0, 1830)
            };
            (n, b, Anthropic, done(u, 98))
        },
        {
            let (n, b) = fixture!("anthropic_stream_error.sse");
            let u = usage(310, 1, 0, 0, 0);
            (
                n,
                b,
                Anthropic,
                failed(Some(u), false, "overloaded_error", 70),
            )
        },
        {
            let (n, b) = fixture!("gemini_stream.sse");
            (n, b, Gemini, done(usage(12, 14 + 400, 0, 400, 0), 118))
        },
        {
            let (n, b) = fixture!("gemini_stream_cache.sse");
            let u = usage(33012 + 310, 9 + 236, 32768, 236, 0);
            (n, b, Gemini, done(u, 38))
        },
        {
            let (n, b) = fixture!("gemini_stream_error.sse");
            let u = usage(40, 3, 0, 0, 0);
            (n, b, Gemini, failed(Some(u), false, "UNAVAILABLE", 14))
        },
    ]
}

fn bodies() -> Vec<(&'static str, &'static [u8], Format, Want)> {
    use Format::*;
    let error = |e| failed(None, false, e, 0);
    vec![
        {
            // Final usage with output: the texts are not measured (nothing needs them).
            let (n, b) = fixture!("openai_chat.json");
            (n, b, OpenAiChat, done(usage(2006, 10, 1920, 0, 0), 0))
        },
        {
            let (n, b) = fixture!("openai_chat_error.json");
            (n, b, OpenAiChat, error("rate_limit_exceeded"))
        },
        {
            let (n, b) = fixture!("openai_response.json");
            (n, b, OpenAiResponses, done(usage(328, 214, 0, 192, 0), 88))
        },
        {
            // The Responses API answers errors in the same shape as chat completions.
            let (n, b) = fixture!("openai_chat_error.json");
            (n, b, OpenAiResponses, error("rate_limit_exceeded"))
        },
        {
            let (n, b) = fixture!("anthropic_message.json");
            let u = usage(21 + 188086, 393, 0, 0, 188086);
            (n, b, Anthropic, done(u, 60))
        },
        {
            let (n, b) = fixture!("anthropic_error.json");
            (n, b, Anthropic, error("rate_limit_error"))
        },
        {
            let (n, b) = fixture!("gemini_response.json");
            (n, b, Gemini, done(usage(8, 10 + 1023, 0, 1023, 0), 49))
        },
        {
            let (n, b) = fixture!("openai_completion.json");
            (n, b, OpenAiChat, done(usage(5, 7, 0, 0, 0), 0))
        },
        {
            // Whole, and no usage: the request is the estimate.
            let (n, b) = fixture!("gemini_embeddings.json");
            let want = Want {
                usage: None,
                usage_final: false,
                completed: true,
                error: None,
                delivered: 0,
            };
            (n, b, Gemini, want)
        },
        {
            let (n, b) = fixture!("gemini_stream_array.json");
            (n, b, Gemini, done(usage(6, 8, 0, 0, 0), 24))
        },
        {
            let (n, b) = fixture!("gemini_error.json");
            (n, b, Gemini, error("RESOURCE_EXHAUSTED"))
        },
    ]
}

fn feed<'a>(format: Format, max: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Report {
    let mut accountant = StreamAccountant::new(format, max);
    for chunk in chunks {
        accountant.feed(chunk);
    }
    accountant.finish()
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }

    fn chunks<'a>(&mut self, input: &'a [u8]) -> Vec<&'a [u8]> {
        let max_piece = 1 + self.next() % 300;
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at((1 + self.next() % max_piece).min(rest.len()));
            out.push(piece);
            rest = tail;
        }
        out
    }
}

/// The fixture as sent, and re-terminated with each other line ending the spec allows.
fn line_ending_variants(bytes: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let lf: Vec<u8> = String::from_utf8(bytes.to_vec())
        .unwrap()
        .replace("\r\n", "\n")
        .into_bytes();
    let with = |ending: &str| {
        String::from_utf8(lf.clone())
            .unwrap()
            .replace('\n', ending)
            .into_bytes()
    };
    vec![
        ("as sent", bytes.to_vec()),
        ("lf", lf.clone()),
        ("crlf", with("\r\n")),
        ("cr", with("\r")),
    ]
}

#[test]
fn streams_agree_however_they_are_cut() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    for (name, bytes, format, want) in streams() {
        for (ending, input) in line_ending_variants(bytes) {
            let whole = feed(format, 1 << 20, [input.as_slice()]);
            assert_eq!(whole, want.report(), "{name} ({ending})");
            let bytewise = feed(format, 1 << 20, input.chunks(1));
            assert_eq!(bytewise, whole, "{name} ({ending}) byte by byte");
            for _ in 0..200 {
                let chunks = rng.chunks(&input);
                assert_eq!(
                    feed(format, 1 << 20, chunks.iter().copied()),
                    whole,
                    "{name} ({ending}) in {} chunks",
                    chunks.len()
                );
            }
        }
    }
}

#[test]
fn bodies_are_read_whole() {
    for (name, bytes, format, want) in bodies() {
        assert_eq!(from_body(format, bytes), want.report(), "{name}");
    }
}

/// Every prefix of every stream is a stream cut there: nothing may panic, delivered text
/// only grows, and the settled usage never charges zero output for delivered text.
#[test]
fn cut_streams_are_estimated_never_free() {
    for (name, bytes, format, _) in streams() {
        let mut last_delivered = 0;
        for cut in 0..=bytes.len() {
            let report = feed(format, 1 << 20, [&bytes[..cut]]);
            assert!(
                report.delivered_text_bytes >= last_delivered,
                "{name} at {cut}"
            );
            last_delivered = report.delivered_text_bytes;
            let settled = account(&report, 400, Answering::default());
            // Text was delivered, or the answer began and did not complete.
            if report.delivered_text_bytes > 0 || !report.completed {
                assert!(settled.usage.output_tokens > 0, "{name} at {cut}");
            }
            if !report.usage_final {
                assert!(settled.estimated, "{name} at {cut}");
            }
        }
    }
}

#[test]
fn stream_cut_mid_event_is_flagged() {
    let (_, bytes) = fixture!("anthropic_stream.sse");
    let cut = bytes.len() - 10;
    let report = feed(Format::Anthropic, 1 << 20, [&bytes[..cut]]);
    assert!(report.ended_mid_event);
    assert!(!report.completed);
    // message_delta came, so the output count is the provider's own.
    assert!(report.usage_final);
    assert_eq!(report.usage.map(|u| u.output_tokens), Some(15));
}

#[test]
fn anthropic_cut_after_message_start_is_estimated_from_text() {
    let (_, bytes) = fixture!("anthropic_stream_error.sse");
    let report = feed(Format::Anthropic, 1 << 20, [bytes]);
    let settled = account(&report, 0, Answering::default());
    assert!(settled.estimated);
    assert_eq!(settled.usage.input_tokens, 310);
    assert_eq!(settled.usage.output_tokens, 70u64.div_ceil(4));
}

#[test]
fn malformed_events_are_counted_not_fatal() {
    for format in [
        Format::OpenAiChat,
        Format::OpenAiResponses,
        Format::Anthropic,
        Format::Gemini,
    ] {
        let input = b"data: {not json\n\ndata: [1,2]\n\ndata: \"str\"\n\ndata: \xff\xfe\n\n";
        let report = feed(format, 1 << 20, [&input[..]]);
        assert_eq!(report.malformed_events, 4, "{format:?}");
        assert_eq!(report.usage, None);
        let report = from_body(format, b"<html>bad gateway</html>");
        assert_eq!(report.malformed_events, 1, "{format:?}");
        assert!(!report.completed);
    }
}

#[test]
fn oversized_events_are_reported() {
    let big = format!(
        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
        "x".repeat(500)
    );
    let input = big + "data: [DONE]\n\n";
    let report = feed(Format::OpenAiChat, 256, [input.as_bytes()]);
    assert_eq!(report.oversized_events, 1);
    assert_eq!(report.delivered_text_bytes, 0);
    assert!(report.completed);
}

#[test]
fn odd_but_valid_shapes() {
    let table: Vec<(Format, &str, Report)> = vec![
        (
            Format::OpenAiChat,
            // Counts of the wrong type are ignored, not fatal; [DONE] may carry spaces.
            "data: {\"choices\":null,\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":null,\
             \"prompt_tokens_details\":null}}\n\ndata:  [DONE] \n\n",
            Report {
                usage: Some(usage(5, 0, 0, 0, 0)),
                usage_final: true,
                completed: true,
                ..Report::default()
            },
        ),
        (
            Format::OpenAiChat,
            // An error label from the provider cannot inject into a log line.
            "data: {\"error\":{\"type\":\"bad type\\nX-Injected: 1\",\"code\":null}}\n\n",
            Report {
                error: Some("bad_type_X-Injected:_1".into()),
                ..Report::default()
            },
        ),
        (
            Format::OpenAiResponses,
            "event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"response\":\
             {\"status\":\"incomplete\",\"usage\":{\"input_tokens\":9,\"output_tokens\":4}}}\n\n",
            Report {
                usage: Some(usage(9, 4, 0, 0, 0)),
                usage_final: true,
                completed: true,
                ..Report::default()
            },
        ),
        (
            Format::OpenAiResponses,
            // The data's type is missing: the SSE event name stands in for it.
            "event: response.output_text.delta\ndata: {\"delta\":\"abc\"}\n\n\
             event: response.audio.delta\n\
             data: {\"type\":\"response.audio.delta\",\"delta\":\"AAAA\"}\n\n",
            Report {
                delivered_text_bytes: 3,
                ..Report::default()
            },
        ),
        (
            Format::Anthropic,
            // A later null count keeps the earlier one.
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":\
             {\"input_tokens\":7,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}\n\n\
             event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":\
             {\"input_tokens\":null,\"output_tokens\":40}}\n\n",
            Report {
                usage: Some(usage(10, 40, 3, 0, 0)),
                usage_final: true,
                ..Report::default()
            },
        ),
        (
            Format::Gemini,
            "data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":\
             {\"promptTokenCount\":11,\"totalTokenCount\":11}}\r\n\r\n",
            Report {
                usage: Some(usage(11, 0, 0, 0, 0)),
                usage_final: true,
                completed: true,
                ..Report::default()
            },
        ),
        (
            Format::Gemini,
            // Hostile counts saturate instead of overflowing.
            "data: {\"candidates\":[{\"finishReason\":\"STOP\"}],\"usageMetadata\":\
             {\"candidatesTokenCount\":18446744073709551615,\"thoughtsTokenCount\":5}}\n\n",
            Report {
                usage: Some(usage(0, u64::MAX, 0, 5, 0)),
                usage_final: true,
                completed: true,
                ..Report::default()
            },
        ),
    ];
    for (format, input, want) in table {
        assert_eq!(feed(format, 1 << 20, [input.as_bytes()]), want, "{input}");
    }
}

#[test]
fn long_error_labels_are_bounded() {
    let long = "e".repeat(10_000);
    let body = format!("{{\"error\":{{\"code\":\"{long}\"}}}}");
    let report = from_body(Format::OpenAiChat, body.as_bytes());
    assert_eq!(report.error.map(|e| e.len()), Some(64));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Fixtures with bytes overwritten at random, cut at random: never a panic, and the
    /// chunking never changes the answer.
    #[test]
    fn damaged_streams_agree_however_cut(
        which in 0usize..11,
        damage in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        seed in 1u64..u64::MAX,
    ) {
        let all = streams();
        let (_, bytes, format, _) = &all[which % all.len()];
        let mut input = bytes.to_vec();
        for (at, byte) in damage {
            let at = at % input.len();
            input[at] = byte;
        }
        let whole = feed(*format, 512, [input.as_slice()]);
        let chunks = XorShift(seed).chunks(&input);
        prop_assert_eq!(feed(*format, 512, chunks.iter().copied()), whole.clone());
        let settled = account(&whole, 0, Answering::default());
        prop_assert!(whole.delivered_text_bytes == 0 || settled.usage.output_tokens > 0);
    }
}
