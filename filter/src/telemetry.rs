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

pub fn metrics(o: &Outcome) -> Vec<Metric> {
    let scope = format!(
        "chokepoint.usage.provider.{}.model.{}",
        segment(o.provider),
        segment(o.model_label)
    );
    let mut out = vec![
        Metric::Counter(
            format!(
                "chokepoint.requests.status.{}xx.decision.{}",
                o.status / 100,
                segment(o.decision)
            ),
            1,
        ),
        Metric::Counter(format!("{scope}.input_tokens"), o.input_tokens),
        Metric::Counter(format!("{scope}.output_tokens"), o.output_tokens),
        Metric::Counter(
            format!("{scope}.cached_input_tokens"),
            o.cached_input_tokens,
        ),
        Metric::Counter(format!("{scope}.reasoning_tokens"), o.reasoning_tokens),
        Metric::Counter(format!("{scope}.cost_micros"), o.cost_micros),
    ];
    if o.estimated {
        out.push(Metric::Counter(format!("{scope}.estimated_requests"), 1));
    }
    if let Some(ttft) = o.ttft_ms {
        out.push(Metric::Histogram("chokepoint.ttft_ms".into(), ttft));
    }
    out
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
    }
}
