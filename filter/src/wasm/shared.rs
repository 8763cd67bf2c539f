//! [`SharedData`] over Envoy's shared data hostcalls.

use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

use crate::jwks_sync::{CasMismatch, SharedData};

pub struct EnvoyShared;

impl SharedData for EnvoyShared {
    fn get_shared(&self, key: &str) -> (Option<Vec<u8>>, u32) {
        match hostcalls::get_shared_data(key) {
            Ok((value, cas)) => (value, cas.unwrap_or(0)),
            Err(_) => (None, 0),
        }
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), CasMismatch> {
        let cas = (cas != 0).then_some(cas);
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(CasMismatch),
            Err(e) => {
                log::warn!("shared data write failed for {key}: {e:?}");
                Err(CasMismatch)
            }
        }
    }
}
