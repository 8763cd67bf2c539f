//! Gemini in an agent loop (tool_call.rs): a `functionCall` part carrying a
//! `thoughtSignature`, as Gemini 3 models sign their calls, or text quoting the
//! `functionResponse` a request brings back. Also Gemini's check on the calls of the
//! current turn a request carries back (https://ai.google.dev/gemini-api/docs/thought-signatures):
//! a signature must be one it issued, and a Gemini 3 model refuses a call that comes back
//! without its signature.

use serde_json::{json, Value};

use super::faults::Faults;
use super::signature::Signer;
use super::tool_call::{quote, result_text, Turn};

/// Quotes the result when the last content brings a `functionResponse`; else calls the
/// tool `x-mock-tool-call` names when a function declaration offers it.
pub fn turn(body: &Value, faults: &Faults) -> Turn {
    let Some(call) = &faults.tool_call else {
        return Turn::Text;
    };
    let contents = body.get("contents").and_then(Value::as_array);
    let last_parts = contents
        .and_then(|c| c.last())
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array);
    let response = last_parts.into_iter().flatten().find_map(|p| {
        p.get("functionResponse")
            .or(p.get("function_response"))
            .map(|r| r.get("response").unwrap_or(r))
    });
    if let Some(response) = response {
        return Turn::Quote(quote(&result_text(response)));
    }
    let declared = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            t.get("functionDeclarations")
                .or(t.get("function_declarations"))
        })
        .filter_map(Value::as_array)
        .flatten()
        .any(|d| d.get("name").and_then(Value::as_str) == Some(call.name.as_str()));
    if declared && call.object().is_some() {
        Turn::Call(call.clone())
    } else {
        Turn::Text
    }
}

/// The parts of the model's answer for a loop turn, and the tokens they count.
pub fn parts(turn: &Turn, signer: &Signer) -> (Value, u64) {
    use super::text::estimate_tokens;
    match turn {
        Turn::Call(call) => {
            let args = call.object().unwrap_or_default();
            let tokens = estimate_tokens(args.to_string().len());
            let part = json!({
                "functionCall": {"name": call.name, "args": args},
                "thoughtSignature": signer.seal(&turn.thought()),
            });
            (json!([part]), tokens)
        }
        Turn::Quote(text) => (json!([{"text": text}]), estimate_tokens(text.len())),
        Turn::Text => (json!([]), 0),
    }
}

/// Gemini's check on the `functionCall` parts of earlier model turns, with its errors.
pub fn check_signatures(body: &Value, model: &str, signer: &Signer) -> Result<(), String> {
    let contents = body.get("contents").and_then(Value::as_array);
    let contents: Vec<&Value> = contents.into_iter().flatten().collect();
    // The current turn starts after the last user content that is not a function's
    // response: only its calls must carry their signatures.
    let is_response = |c: &Value| {
        c.get("parts").and_then(Value::as_array).is_some_and(|p| {
            p.iter().any(|p| {
                p.get("functionResponse")
                    .or(p.get("function_response"))
                    .is_some()
            })
        })
    };
    let turn_start = contents
        .iter()
        .rposition(|c| c.get("role").and_then(Value::as_str) == Some("user") && !is_response(c))
        .map_or(0, |i| i + 1);
    // Google's thought-signatures page: only the current turn is validated.
    for (i, content) in contents.iter().enumerate().skip(turn_start) {
        if content.get("role").and_then(Value::as_str) != Some("model") {
            continue;
        }
        let parts = content.get("parts").and_then(Value::as_array);
        // Gemini signs the first call of a turn's parallel calls only.
        let first_call = parts
            .into_iter()
            .flatten()
            .find(|p| p.get("functionCall").or(p.get("function_call")).is_some());
        let Some(part) = first_call else { continue };
        let signature = part
            .get("thoughtSignature")
            .or(part.get("thought_signature"))
            .and_then(Value::as_str);
        match signature {
            Some(s) if signer.open(s).is_some() => {}
            Some(_) => return Err("Corrupted thought signature.".into()),
            None if generation(model) >= 3 => {
                let name = part
                    .pointer("/functionCall/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                return Err(format!(
                    "Function call is missing a thought_signature in functionCall parts. This \
                     is required for tools to work correctly, and missing thought_signature \
                     may lead to degraded model performance. Additional data, function call \
                     `default_api:{name}` , position {}. Please refer to \
                     https://ai.google.dev/gemini-api/docs/thought-signatures for more \
                     details.",
                    i + 1
                ));
            }
            None => {}
        }
    }
    Ok(())
}

/// 3 for `gemini-3.8-flash`; 0 when the name says nothing.
fn generation(model: &str) -> u32 {
    let name = model.rsplit('/').next().unwrap_or(model);
    name.strip_prefix("gemini-")
        .and_then(|rest| rest.split(['.', '-']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::generation;

    #[test]
    fn reads_the_model_generation() {
        assert_eq!(generation("gemini-3.8-flash"), 3);
        assert_eq!(generation("models/gemini-4-argon"), 4);
        assert_eq!(generation("gemini-2.5-pro"), 2);
        assert_eq!(generation("text-embedding"), 0);
    }
}
