// STUB
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;
pub struct Rewriter {
    tail: Vec<u8>,
    max: usize,
}
impl Rewriter {
    pub fn new(max_event_bytes: usize) -> Rewriter {
        Rewriter {
            tail: Vec::new(),
            max: max_event_bytes,
        }
    }
    pub fn push(
        &mut self,
        chunk: &[u8],
        edit: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<Vec<u8>, Overflow> {
        self.tail.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.tail.windows(2).position(|w| w == b"\n\n") {
            let ev: Vec<u8> = self.tail.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&ev).to_string();
            let data: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or(l.strip_prefix("data:")))
                .collect();
            match edit(data.join("\n").as_bytes()) {
                Some(new) => {
                    for l in text.lines().filter(|l| !l.starts_with("data")) {
                        out.extend_from_slice(l.as_bytes());
                        out.push(b'\n');
                    }
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(&new);
                    out.extend_from_slice(b"\n\n");
                }
                None => out.extend_from_slice(&ev),
            }
        }
        if self.tail.len() > self.max {
            return Err(Overflow);
        }
        Ok(out)
    }
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.tail)
    }
    pub fn held(&self) -> usize {
        self.tail.len()
    }
}
