//! What a call cost and the record of it: usage read from each provider's response
//! stream ([`sse`], [`usage`], [`meter`]), priced ([`pricing`]), written as one
//! [`record`] and as stats ([`telemetry`]), then carried to the ledger ([`outbox`],
//! [`delivery`]).

pub mod attribution;
pub mod delivery;
pub mod meter;
pub mod outbox;
pub mod pricing;
pub mod record;
pub mod sse;
pub mod telemetry;
pub mod usage;
