//! Header-map reads over the raw proxy-wasm ABI. The SDK's `get_map` and `get_map_value`
//! panic on a value that is not UTF-8 (a client or provider can send one) and on any
//! status they do not expect; these return an error instead and decode through
//! [`crate::header_pairs`].

use std::ptr::null_mut;

use proxy_wasm::types::MapType;

use crate::header_pairs;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
}

/// The ABI's `Ok`. Statuses are read as plain integers: a code the host adds later must
/// not be transmuted into an enum that lacks it.
const OK: u32 = 0;

/// Takes ownership of a buffer the host filled through `proxy_on_memory_allocate` (the
/// SDK's allocator: a `Vec<u8>` of exactly `size` capacity, leaked).
///
/// # Safety
/// `data` must be null or such a buffer of `size` bytes, owned by nothing else.
unsafe fn host_bytes(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

/// Every pair of a header map; `None` when the host refused or sent malformed bytes.
pub fn pairs(map: MapType) -> Option<Vec<(String, String)>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: on success the host hands us a buffer from our allocator (or null).
    let bytes = unsafe {
        if proxy_get_header_map_pairs(map, &mut data, &mut size) != OK {
            return None;
        }
        host_bytes(data, size)
    };
    header_pairs::parse(&bytes)
}

/// One header's value; `None` when absent or the map cannot be read now.
pub fn value(map: MapType, name: &str) -> Option<String> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `pairs`; `name` outlives the call.
    unsafe {
        if proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut data, &mut size) != OK {
            return None;
        }
        Some(header_pairs::text(host_bytes(data, size)))
    }
}
