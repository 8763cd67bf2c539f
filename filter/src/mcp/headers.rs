// STUB
use super::error::RpcError;
use super::message::Message;
#[derive(Debug, Clone, Default)]
pub struct Mirrored {
    pub protocol_version: Option<String>,
    pub method: Option<String>,
    pub name: Option<String>,
}
pub fn requires_mirroring(version: &str) -> bool {
    version >= "2026-07-28"
}
pub fn decode(value: &str) -> Option<String> {
    Some(value.to_string())
}
pub fn check(sent: &Mirrored, message: &Message) -> Result<(), RpcError> {
    if let (Some(h), Some(b)) = (&sent.name, &message.name) {
        if h != b {
            return Err(
                RpcError::new(super::error::HEADER_MISMATCH, "Header mismatch")
                    .with_id(message.id.as_deref()),
            );
        }
    }
    Ok(())
}
