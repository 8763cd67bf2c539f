//! The proxy-wasm hostcalls the filter makes while requests are in flight, over the raw
//! ABI. The SDK's wrappers (`proxy_wasm::hostcalls`) panic on any status they do not
//! expect (a map that is not available now, a buffer that is gone) and unwrap
//! `String::from_utf8` on header values, which a client or provider controls: a panic
//! traps the VM and every request on the worker with it. These return an error instead,
//! which the filter turns into a reply or a counter. Statuses are read as plain integers:
//! a code the host adds later must not be transmuted into an enum that lacks it.
//!
//! HTTP callouts stay with the SDK (`hostcalls::dispatch_http_call`): its dispatcher must
//! register each token to route the answer back to the context that asked.

use std::ptr::{null, null_mut};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_wasm::types::{BufferType, MapType, StreamType};

use crate::wasm::header_pairs;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map: MapType, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map: MapType,
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map: MapType,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: MapType, key: *const u8, key_size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer: BufferType,
        start: usize,
        max_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer: BufferType,
        start: usize,
        size: usize,
        data: *const u8,
        data_size: usize,
    ) -> u32;
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_continue_stream(stream: StreamType) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path: *const u8,
        path_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_enqueue_shared_queue(queue: u32, value: *const u8, value_size: usize) -> u32;
    fn proxy_dequeue_shared_queue(queue: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_increment_metric(metric: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric: u32, value: u64) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
}

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
const EMPTY: u32 = 7;
/// `set_shared_data` lost a race: the value changed since it was read.
pub const CAS_MISMATCH: u32 = 8;

/// A hostcall's non-`Ok` status (or a reply the filter could not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u32);

fn status(code: u32) -> Result<(), Status> {
    if code == OK {
        Ok(())
    } else {
        Err(Status(code))
    }
}

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

/// Calls a hostcall that may return a buffer: `Ok(None)` when it answers "not found".
fn read(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Result<Option<Vec<u8>>, Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    match call(&mut data, &mut size) {
        // SAFETY: on success the host hands over a buffer from our allocator (or null).
        OK => Ok(Some(unsafe { host_bytes(data, size) })),
        NOT_FOUND | EMPTY => Ok(None),
        code => Err(Status(code)),
    }
}

/// Every pair of a header map; values that are not UTF-8 are read lossily.
pub fn header_pairs(map: MapType) -> Result<crate::host::HeaderList, Status> {
    // SAFETY: the pointers are live for the call.
    let bytes = read(|d, s| unsafe { proxy_get_header_map_pairs(map, d, s) })?;
    header_pairs::parse_list(&bytes.unwrap_or_default()).ok_or(Status(u32::MAX))
}

/// One header's value (lossy when not UTF-8); `None` when absent or not available now.
pub fn header(map: MapType, name: &str) -> Option<String> {
    // SAFETY: `name` and the pointers are live for the call.
    read(|d, s| unsafe { proxy_get_header_map_value(map, name.as_ptr(), name.len(), d, s) })
        .ok()
        .flatten()
        .map(header_pairs::text)
}

/// Sets (replaces) a header, or removes it when `value` is `None`.
pub fn set_header(map: MapType, name: &str, value: Option<&str>) -> Result<(), Status> {
    // SAFETY: `name` and `value` are live for the call.
    status(unsafe {
        match value {
            Some(v) => {
                proxy_replace_header_map_value(map, name.as_ptr(), name.len(), v.as_ptr(), v.len())
            }
            None => proxy_remove_header_map_value(map, name.as_ptr(), name.len()),
        }
    })
}

/// Up to `max` bytes of a buffer from `start` (empty when there is none).
pub fn buffer(kind: BufferType, start: usize, max: usize) -> Result<Vec<u8>, Status> {
    // SAFETY: the pointers are live for the call.
    read(|d, s| unsafe { proxy_get_buffer_bytes(kind, start, max, d, s) })
        .map(Option::unwrap_or_default)
}

/// Replaces `size` bytes of a buffer from `start` with `data`.
pub fn set_buffer(kind: BufferType, start: usize, size: usize, data: &[u8]) -> Result<(), Status> {
    // SAFETY: `data` is live for the call.
    status(unsafe { proxy_set_buffer_bytes(kind, start, size, data.as_ptr(), data.len()) })
}

/// Answers the request locally.
pub fn send_response(code: u32, headers: &[(&str, &str)], body: &[u8]) -> Result<(), Status> {
    let headers = header_pairs::serialize(headers);
    // SAFETY: `headers` and `body` are live for the call; no details (null, 0).
    status(unsafe {
        proxy_send_local_response(
            code,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

/// Resumes a paused request.
pub fn resume_request() -> Result<(), Status> {
    // SAFETY: no pointers.
    status(unsafe { proxy_continue_stream(StreamType::HttpRequest) })
}

/// Resumes a paused response (`continueEncoding`).
pub fn resume_response() -> Result<(), Status> {
    // SAFETY: no pointers.
    status(unsafe { proxy_continue_stream(StreamType::HttpResponse) })
}

/// A property (`None`: absent).
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let path = path.join("\0");
    // SAFETY: `path` and the pointers are live for the call.
    read(|d, s| unsafe { proxy_get_property(path.as_ptr(), path.len(), d, s) })
}

/// Sets a property (filter state) of the stream.
pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), Status> {
    let path = path.join("\0");
    // SAFETY: `path` and `value` are live for the call.
    status(unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) })
}

/// A shared-data value and its CAS (`None` and 0: absent).
pub fn shared_data(key: &str) -> Result<(Option<Vec<u8>>, u32), Status> {
    let mut cas: u32 = 0;
    // SAFETY: `key`, `cas` and the pointers are live for the call.
    let value =
        read(|d, s| unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), d, s, &mut cas) })?;
    Ok((value, cas))
}

/// Writes a shared-data value if its CAS still matches (0: unconditionally).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    // SAFETY: `key` and `value` are live for the call.
    status(unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

pub fn enqueue(queue: u32, item: &[u8]) -> Result<(), Status> {
    // SAFETY: `item` is live for the call.
    status(unsafe { proxy_enqueue_shared_queue(queue, item.as_ptr(), item.len()) })
}

/// The next item of a shared queue (`None`: empty).
pub fn dequeue(queue: u32) -> Result<Option<Vec<u8>>, Status> {
    // SAFETY: the pointers are live for the call.
    read(|d, s| unsafe { proxy_dequeue_shared_queue(queue, d, s) })
}

pub fn increment_metric(id: u32, by: i64) -> Result<(), Status> {
    // SAFETY: no pointers.
    status(unsafe { proxy_increment_metric(id, by) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    // SAFETY: no pointers.
    status(unsafe { proxy_record_metric(id, value) })
}

/// Envoy's clock (the epoch when it cannot be read).
pub fn now() -> SystemTime {
    let mut nanos: u64 = 0;
    // SAFETY: `nanos` is live for the call.
    match unsafe { proxy_get_current_time_nanoseconds(&mut nanos) } {
        OK => UNIX_EPOCH + Duration::from_nanos(nanos),
        _ => UNIX_EPOCH,
    }
}
