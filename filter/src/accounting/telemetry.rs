//! Envoy stats for usage: names built here (host-free), emitted by the host. Model names
//! come from clients, so only models in the price table get their own series; the rest
//! share `other`, keeping the number of stats bounded.

/// One stat update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    Counter(String, u64),
    Histogram(String, u64),
}

/// A stat-name segment: Envoy splits names on `.`, Prometheus wants `[a-zA-Z0-9_]`.
pub fn segment(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() {
        out.push_str("none");
    }
    out
}

pub struct Outcome<'a> {
    pub model_label: &'a str,
    pub provider: &'a str,
    pub status: u32,
    pub decision: &'a str,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_micros: u64,
    pub estimated: bool,
    pub ttft_ms: Option<u64>,
}

/// How many stats one outcome can touch, in the fixed order of [`names`] and [`values`].
pub const STATS: usize = 8;

/// Which series an outcome lands in: outcomes with the same labels share names, so a host
/// builds them once per label set (see [`names`]).
pub fn labels<'a>(o: &Outcome<'a>) -> (u32, &'a str, &'a str, &'a str) {
    (o.status / 100, o.decision, o.provider, o.model_label)
}

/// Which of [`names`] are histograms (the rest are counters).
pub const IS_HISTOGRAM: [bool; STATS] = [false, false, false, false, false, false, false, true];

/// The names of an outcome's label set, in a fixed order.
pub fn names(o: &Outcome) -> [String; STATS] {
    let scope = format!(
        "chokepoint.usage.provider.{}.model.{}",
        segment(o.provider),
        segment(o.model_label)
    );
    [
        format!(
            "chokepoint.requests.status.{}xx.decision.{}",
            o.status / 100,
            segment(o.decision)
        ),
        format!("{scope}.input_tokens"),
        format!("{scope}.output_tokens"),
        format!("{scope}.cached_input_tokens"),
        format!("{scope}.reasoning_tokens"),
        format!("{scope}.cost_micros"),
        format!("{scope}.estimated_requests"),
        "chokepoint.ttft_ms".into(),
    ]
}

/// What an outcome adds to each of [`names`]: `None` when nothing (a counter adding zero,
/// no first token).
pub fn values(o: &Outcome) -> [Option<u64>; STATS] {
    let counter = |n: u64| (n > 0).then_some(n);
    [
        Some(1),
        counter(o.input_tokens),
        counter(o.output_tokens),
        counter(o.cached_input_tokens),
        counter(o.reasoning_tokens),
        counter(o.cost_micros),
        counter(u64::from(o.estimated)),
        o.ttft_ms,
    ]
}

/// An outcome's stat updates, by name (what a host without a cache of names emits).
pub fn metrics(o: &Outcome) -> Vec<Metric> {
    names(o)
        .into_iter()
        .zip(values(o))
        .zip(IS_HISTOGRAM)
        .filter_map(|((name, value), histogram)| {
            value.map(|v| {
                if histogram {
                    Metric::Histogram(name, v)
                } else {
                    Metric::Counter(name, v)
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_bounded() {
        assert_eq!(segment("gpt-4.1-mini"), "gpt_4_1_mini");
        assert_eq!(segment(""), "none");
        assert_eq!(segment(&"x".repeat(500)).len(), 64);
        let m = metrics(&Outcome {
            model_label: "gpt-4o",
            provider: "openai",
            status: 200,
            decision: "allowed",
            input_tokens: 3,
            output_tokens: 4,
            cached_input_tokens: 0,
            reasoning_tokens: 0,
            cost_micros: 9,
            estimated: false,
            ttft_ms: Some(12),
        });
        assert!(m.contains(&Metric::Counter(
            "chokepoint.usage.provider.openai.model.gpt_4o.output_tokens".into(),
            4
        )));
        assert!(m.contains(&Metric::Counter(
            "chokepoint.requests.status.2xx.decision.allowed".into(),
            1
        )));
        assert!(m.contains(&Metric::Histogram("chokepoint.ttft_ms".into(), 12)));
        // Counters that add nothing are not sent.
        assert_eq!(m.len(), 5, "{m:?}");
    }

    #[test]
    fn names_follow_the_labels_only() {
        let o = |status, decision, input_tokens, ttft_ms| Outcome {
            model_label: "gpt-4o",
            provider: "openai",
            status,
            decision,
            input_tokens,
            output_tokens: 0,
            cached_input_tokens: 0,
            reasoning_tokens: 0,
            cost_micros: 0,
            estimated: false,
            ttft_ms,
        };
        let (a, b) = (o(200, "allowed", 5, Some(3)), o(201, "allowed", 0, None));
        assert_eq!(labels(&a), labels(&b));
        assert_eq!(names(&a), names(&b), "one label set, one set of names");
        let c = o(429, "allowed", 5, None);
        assert_ne!(labels(&a), labels(&c));
        assert_ne!(names(&a)[0], names(&c)[0]);
        assert_eq!(
            values(&b),
            [Some(1), None, None, None, None, None, None, None]
        );
    }
}
