//! Any byte string handed to the request decoder must yield a request or an error, never a
//! panic. Run with `cargo +nightly fuzz run decode_request` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: broker::alloc_guard::GuardedAlloc = broker::alloc_guard::GuardedAlloc;

fuzz_target!(|data: &[u8]| {
    let _ = broker::protocol::decode_request(bytes::Bytes::copy_from_slice(data));
});
