// STUB
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    pub answered: bool,
    pub rpc_error: Option<i64>,
    pub tool_error: bool,
}
pub fn of_message(message: &[u8], id: &str) -> Option<Outcome> {
    let v: serde_json::Value = serde_json::from_slice(message).ok()?;
    let want: serde_json::Value = serde_json::from_str(id).ok()?;
    if v.get("id")? != &want {
        return None;
    }
    Some(Outcome {
        answered: true,
        rpc_error: v
            .get("error")
            .and_then(|e| e.get("code"))
            .and_then(|c| c.as_i64()),
        tool_error: v
            .get("result")
            .and_then(|r| r.get("isError"))
            .and_then(|b| b.as_bool())
            .unwrap_or(false),
    })
}
pub struct Watch {
    sse: bool,
    id: String,
    buf: Vec<u8>,
    max: usize,
    out: Outcome,
}
impl Watch {
    pub fn new(sse: bool, id: String, max_bytes: usize) -> Watch {
        Watch {
            sse,
            id,
            buf: Vec::new(),
            max: max_bytes,
            out: Outcome::default(),
        }
    }
    pub fn push(&mut self, chunk: &[u8]) {
        if self.buf.len() + chunk.len() <= self.max * 4 {
            self.buf.extend_from_slice(chunk);
        }
    }
    pub fn finish(&mut self) -> Outcome {
        if self.sse {
            let text = String::from_utf8_lossy(&self.buf).to_string();
            for l in text.lines() {
                if let Some(d) = l.strip_prefix("data: ") {
                    if let Some(o) = of_message(d.as_bytes(), &self.id) {
                        self.out = o;
                    }
                }
            }
        } else if let Some(o) = of_message(&self.buf, &self.id) {
            self.out = o;
        }
        let _ = self.max;
        self.out
    }
}
