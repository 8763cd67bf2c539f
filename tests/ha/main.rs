//! The `ha` layer: the gateway under load while one part of it fails, each run ending
//! with what the ledger holds against the access log.

mod sentinel;
