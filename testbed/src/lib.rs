pub mod devtoken;
pub mod mock;
pub mod stack;
