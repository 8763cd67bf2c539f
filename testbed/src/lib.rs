pub mod devtoken;
pub mod mock;
