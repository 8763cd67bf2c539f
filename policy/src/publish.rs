//! `chokepoint-policy publish`: access-log lines (the gateway's usage records, one JSON
//! object per line) turned into the published record (`contract/schema/published/`), one
//! JSON object per line, for a log shipper or a check of what the gateway exported.

use std::io::{BufRead, Write};

use chokepoint_contract::{published, UsageRecord};

/// Longest line read: a record is a few hundred bytes; a longer line is no record.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// What a run made of its input.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub published: u64,
    /// Lines that were no record, each reported on `errors` with its line number.
    pub rejected: u64,
}

/// Publishes each line of `input` to `output`; a line that is not a record is reported
/// on `errors` (`<source>:<line>: why`), never copied, and the rest go on.
pub fn run(
    source: &str,
    input: impl BufRead,
    mut output: impl Write,
    mut errors: impl Write,
) -> std::io::Result<Outcome> {
    let mut outcome = Outcome::default();
    for (i, line) in input.split(b'\n').enumerate() {
        let line = line?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let why = if line.len() > MAX_LINE_BYTES {
            format!("longer than {MAX_LINE_BYTES} bytes")
        } else {
            match serde_json::from_slice::<UsageRecord>(line) {
                Ok(record) if record.request_id.get().is_some() => {
                    serde_json::to_writer(&mut output, &published::to_json(&record))?;
                    output.write_all(b"\n")?;
                    outcome.published += 1;
                    continue;
                }
                Ok(_) => "no request_id: not a usage record".to_string(),
                Err(e) => format!("not a usage record: {e}"),
            }
        };
        writeln!(errors, "{source}:{}: {why}", i + 1)?;
        outcome.rejected += 1;
    }
    output.flush()?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chokepoint_contract::validate::{check, Schema};

    #[test]
    fn publishes_records_and_reports_the_rest_by_line() {
        let input = concat!(
            r#"{"request_id":"r1","trace_id":"t","user":"0190a6f2-7c1e-8b3a-9f00-1234567890ab","tenant":null,"groups":["eng"],"cost_center":null,"model":"gpt-4o-mini","model_key":"gpt-4o-mini","provider":"openai","format":"openai_chat","api":"openai","operation":"chat","stream":false,"input_tokens":13,"output_tokens":2,"cached_input_tokens":0,"reasoning_tokens":0,"cache_creation_input_tokens":0,"cost_micros":4,"estimated":false,"status":200,"decision":"allowed","latency_ms":9,"ttft_ms":8,"completed":true,"error":null,"ts_ms":1795640042000}"#,
            "\n\n",
            "not json\n",
            r#"{"trace_id":"t"}"#,
            "\n",
            r#"{"request_id":"r2","status":401,"decision":"unauthenticated","error":"missing_token","ts_ms":1795640042000}"#,
            "\r\n",
        );
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let outcome = run("usage.log", input.as_bytes(), &mut out, &mut err).unwrap();
        assert_eq!(
            outcome,
            Outcome {
                published: 2,
                rejected: 2
            }
        );
        let errors = String::from_utf8(err).unwrap();
        assert!(
            errors.starts_with("usage.log:3: not a usage record"),
            "{errors}"
        );
        assert!(errors.contains("usage.log:4: no request_id"), "{errors}");
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for line in &lines {
            check(Schema::PublishedRecord, line).unwrap();
        }
        assert_eq!(lines[0]["gen_ai.provider.name"], "openai");
        assert_eq!(lines[0]["gen_ai.usage.input_tokens"], 13);
        assert_eq!(lines[0]["chokepoint.date"], "2026-11-25");
        assert_eq!(lines[1]["http.response.status_code"], 401);
    }
}
