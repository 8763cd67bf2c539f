// STUB
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
}
impl ListKind {
    pub fn of_method(method: &str) -> Option<ListKind> {
        match method {
            "tools/list" => Some(ListKind::Tools),
            "prompts/list" => Some(ListKind::Prompts),
            "resources/list" => Some(ListKind::Resources),
            _ => None,
        }
    }
}
pub struct Filtered {
    pub body: Vec<u8>,
    pub removed: usize,
}
pub fn filter(
    message: &[u8],
    kind: ListKind,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Option<Filtered>, ()> {
    let mut v: serde_json::Value = serde_json::from_slice(message).map_err(|_| ())?;
    let key = match kind {
        ListKind::Tools => "tools",
        ListKind::Prompts => "prompts",
        ListKind::Resources => "resources",
    };
    let field = if kind == ListKind::Resources {
        "uri"
    } else {
        "name"
    };
    let Some(list) = v
        .get_mut("result")
        .and_then(|r| r.get_mut(key))
        .and_then(|l| l.as_array_mut())
    else {
        return Ok(None);
    };
    let before = list.len();
    list.retain(|e| {
        e.get(field)
            .and_then(|n| n.as_str())
            .is_none_or(|n| keep(n))
    });
    let removed = before - list.len();
    Ok(Some(Filtered {
        body: serde_json::to_vec(&v).map_err(|_| ())?,
        removed,
    }))
}
