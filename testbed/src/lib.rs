pub mod bench;
pub mod devtoken;
pub mod idp;
pub mod mock;
pub mod peers;
pub mod soak;
pub mod stack;
pub mod utc;
