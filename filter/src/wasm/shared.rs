//! [`SharedData`] over Envoy's shared data hostcalls, and the worker's usage outbox in
//! front of the shared queue.

use std::cell::RefCell;

use super::abi;

use crate::accounting::outbox::Outbox;
use crate::identity::jwks_sync::{CasMismatch, SharedData};

thread_local! {
    /// One per VM (a worker), not per configuration: requests that outlive a
    /// configuration swap still land here, and the new root flushes them.
    static OUTBOX: RefCell<Outbox> = RefCell::new(Outbox::default());
}

/// Puts a usage record or a lease release in the outbox; a full bundle goes into the
/// queue at once. `false` when that enqueue failed (the bundle's items are lost).
pub fn outbox_push(queue: u32, item: &[u8]) -> bool {
    match OUTBOX.with(|o| o.borrow_mut().push(item)) {
        Some(bundle) => enqueue(queue, &bundle),
        None => true,
    }
}

/// Moves everything in the outbox into the queue; `false` if an enqueue failed.
pub fn outbox_flush(queue: u32) -> bool {
    let bundles = OUTBOX.with(|o| o.borrow_mut().drain());
    // Every bundle is tried, whatever happened to the one before.
    let failed = bundles.iter().filter(|b| !enqueue(queue, b)).count();
    failed == 0
}

pub fn enqueue(queue: u32, item: &[u8]) -> bool {
    let ok = abi::enqueue(queue, item).is_ok();
    if !ok {
        let (_, n, _) = crate::accounting::outbox::read_item(item);
        log::error!("{n} usage item(s) could not be queued for the ledger");
    }
    ok
}

pub struct EnvoyShared;

impl SharedData for EnvoyShared {
    fn get_shared(&self, key: &str) -> (Option<Vec<u8>>, u32) {
        abi::shared_data(key).unwrap_or((None, 0))
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), CasMismatch> {
        match abi::set_shared_data(key, value, cas) {
            Ok(()) => Ok(()),
            Err(abi::Status(abi::CAS_MISMATCH)) => Err(CasMismatch),
            Err(e) => {
                log::warn!("shared data write failed for {key}: {e:?}");
                Err(CasMismatch)
            }
        }
    }
}
