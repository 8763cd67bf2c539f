//! The request-body fields the filter reads and the edits it makes
//! (`filter/src/providers/request_body.rs`).
//!
//! Layout: byte 0 picks the edits (model, include_usage, user field, output cap), the
//! rest is the body.
//!
//! Invariants: a body the filter accepted is still accepted after its edits, with the
//! same `stream`; an edited model reads back as the new model; a written output cap
//! reads back from its API's field; edits keep the body a JSON object.

use chokepoint_filter::providers::request_body::{
    edit, is_json_content_type, parse, scan, CapField, Edits, UserField,
};

const CAPS: [CapField; 4] = [
    CapField::Chat,
    CapField::Responses,
    CapField::Anthropic,
    CapField::Gemini,
];

pub fn run(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let before = parse(body);
    if let Err(e) = &before {
        assert!(!e.message().is_empty());
    }
    let cap = (flags & 0x08 != 0).then(|| (CAPS[usize::from(flags >> 4 & 3)], 77_u64));
    let edits = Edits {
        model: (flags & 0x01 != 0).then_some("gpt-4.1-mini"),
        include_usage: flags & 0x02 != 0,
        user: match flags >> 6 {
            1 => Some((UserField::OpenAi, "0190a6f2-7c1e-8b3a-9f00-1234567890ab")),
            2 => Some((UserField::Anthropic, "0190a6f2-7c1e-8b3a-9f00-1234567890ab")),
            _ => None,
        },
        output_cap: cap,
    };
    if let Some(edited) = edit(body, edits) {
        // Checked by the filter's own scan: members the gateway never reads pass through
        // as sent, so a lone surrogate escape in a prompt (which serde_json refuses to
        // build a string from, and Python's json accepts) stays the provider's to judge.
        assert!(
            scan(&edited).is_ok() && edited.first() == Some(&b'{'),
            "an edited body is a JSON object"
        );
        let after = parse(&edited);
        if let Ok(before) = &before {
            let after = after
                .as_ref()
                .unwrap_or_else(|e| panic!("an accepted body was refused after edits: {e:?}"));
            assert_eq!(before.stream, after.stream);
            if let Some(model) = edits.model {
                assert_eq!(after.model.as_deref(), Some(model));
            } else {
                assert_eq!(before.model, after.model);
            }
            if let Some((field, cap)) = cap {
                let c = after.caps;
                let got = match field {
                    CapField::Chat => c.max_completion_tokens,
                    CapField::Responses => c.max_output_tokens,
                    CapField::Anthropic | CapField::Completions => c.max_tokens,
                    CapField::Gemini => c.gemini_max_output_tokens,
                };
                assert_eq!(got, Some(cap), "cap written in its API's field reads back");
            }
        }
    }
    let _ = is_json_content_type(&crate::text(body));
}
