//! The record-batch splitter reads untrusted produce payloads: it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: broker::alloc_guard::GuardedAlloc = broker::alloc_guard::GuardedAlloc;

fuzz_target!(|data: &[u8]| {
    let _ = broker::batch::split_batches(&bytes::Bytes::copy_from_slice(data), 1 << 20);
});
