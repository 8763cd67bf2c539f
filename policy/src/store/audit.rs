//! Reading the audit stream page by page for the export: `scripts/audit_page.lua`.

use redis::Value;

use super::{Store, StoreError};

/// One page of the audit stream and the stream's counters at that moment.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AuditPage {
    /// Entries the stream holds.
    pub length: u64,
    /// Entries ever added to it, trimmed ones included.
    pub entries_added: u64,
    /// The newest id it ever gave out (`0-0` before the first).
    pub last_id: String,
    pub entries: Vec<AuditEntry>,
}

/// A stream entry: its id and its `record` and `day` fields (`None` when missing).
#[derive(Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: String,
    pub record: Option<String>,
    pub day: Option<String>,
}

impl Store {
    /// The entries of `stream` from `start` (`-` or `(<id>`) to `end` (`+` or an id),
    /// at most `count`, with the stream's counters read atomically with them.
    pub async fn audit_page(
        &self,
        stream: &str,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<AuditPage, StoreError> {
        let mut invocation = self.inner.audit_page.key(stream);
        invocation.arg(start).arg(end).arg(count);
        let reply: Value = self
            .bounded(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        parse(reply).ok_or_else(|| {
            self.record(StoreError::UnexpectedReply(
                "audit_page.lua returned something else than {length, added, id, entries}"
                    .to_owned(),
            ))
        })
    }
}

fn parse(reply: Value) -> Option<AuditPage> {
    let Value::Array(parts) = reply else {
        return None;
    };
    let [length, added, last_id, entries] = <[Value; 4]>::try_from(parts).ok()?;
    let number = |value: Value| match value {
        Value::Int(n) => u64::try_from(n).ok(),
        _ => None,
    };
    let Value::Array(entries) = entries else {
        return None;
    };
    Some(AuditPage {
        length: number(length)?,
        entries_added: number(added)?,
        last_id: text(last_id)?,
        entries: entries.into_iter().map(entry).collect::<Option<Vec<_>>>()?,
    })
}

/// `[id, [field, value, ...]]`.
fn entry(value: Value) -> Option<AuditEntry> {
    let Value::Array(parts) = value else {
        return None;
    };
    let [id, fields] = <[Value; 2]>::try_from(parts).ok()?;
    let Value::Array(fields) = fields else {
        return None;
    };
    let mut entry = AuditEntry {
        id: text(id)?,
        record: None,
        day: None,
    };
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        match text(name)?.as_str() {
            "record" => entry.record = text(value),
            "day" => entry.day = text(value),
            _ => {}
        }
    }
    Some(entry)
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn reads_the_scripts_reply() {
        let reply = Value::Array(vec![
            Value::Int(2),
            Value::Int(5),
            bulk("9-1"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("9-0"),
                    Value::Array(vec![
                        bulk("record"),
                        bulk("{}"),
                        bulk("day"),
                        bulk("2026-12-07"),
                    ]),
                ]),
                Value::Array(vec![
                    bulk("9-1"),
                    Value::Array(vec![bulk("other"), bulk("x")]),
                ]),
            ]),
        ]);
        assert_eq!(
            parse(reply),
            Some(AuditPage {
                length: 2,
                entries_added: 5,
                last_id: "9-1".to_owned(),
                entries: vec![
                    AuditEntry {
                        id: "9-0".to_owned(),
                        record: Some("{}".to_owned()),
                        day: Some("2026-12-07".to_owned()),
                    },
                    AuditEntry {
                        id: "9-1".to_owned(),
                        record: None,
                        day: None,
                    },
                ],
            })
        );
        for bad in [
            Value::Nil,
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![
                Value::Int(-1),
                Value::Int(0),
                bulk("0-0"),
                Value::Array(vec![]),
            ]),
            Value::Array(vec![
                Value::Int(0),
                Value::Int(0),
                bulk("0-0"),
                Value::Int(3),
            ]),
        ] {
            assert_eq!(parse(bad.clone()), None, "{bad:?}");
        }
    }
}
