//! A global allocator that keeps hostile length prefixes from aborting the process.
//!
//! The request decoder (kafka-protocol 0.18) reserves `Vec::with_capacity(n)` from the
//! element count a request *claims*, before reading any element. A 20-byte Metadata frame
//! claiming two billion topics asks for ~140 GB at once; the kernel refuses that outright
//! and Rust aborts the whole process, so one unauthenticated packet could kill the agent.
//!
//! This allocator serves allocations of [`LARGE`] bytes and more with an anonymous
//! `mmap(MAP_NORESERVE)` mapping. The kernel grants such a mapping lazily (no memory is
//! committed until pages are touched), so the decoder runs out of input after a few
//! elements, returns an error, and the mapping is unmapped: the frame is refused and the
//! connection closed like any other malformed frame. Everything smaller goes to the system
//! allocator, jemalloc, so the hot path is untouched. (The proper fix belongs in the
//! decoder: bound the reservation by the bytes left in the frame.)
//!
//! jemalloc rather than the C library's allocator: segment buffers and request frames are
//! megabytes each and come and go many times a second; jemalloc keeps freed pages for
//! reuse instead of returning them to the kernel at once, which saves a page fault and a
//! page clear for every 4 KiB produced (a third of the produce path's CPU before).

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};

use tikv_jemallocator::Jemalloc;

/// jemalloc settings: freed pages go back to the kernel within ~200 ms (from a background
/// thread), so the process's resident size follows its live data instead of the churn of
/// the last seconds: the memory budget (`--memory-limit`) is about RSS.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8] = b"background_thread:true,dirty_decay_ms:200,muzzy_decay_ms:0\0";

/// Allocations at least this big are served by `mmap`.
pub const LARGE: usize = 1 << 30;
const PAGE: usize = 4096;

pub struct GuardedAlloc;

fn is_large(layout: &Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= PAGE
}

// SAFETY: every method upholds the GlobalAlloc contract:
// * small layouts are forwarded to jemalloc untouched, with the same layout on both sides
//   (the contract guarantees `dealloc`/`realloc` get the layout used to allocate, so
//   `is_large` routes a pointer back to the allocator that made it);
// * large layouts get a fresh private anonymous mapping, page-aligned (hence aligned for
//   any `align <= PAGE`, which `is_large` requires) and zero-filled, of exactly
//   `layout.size()` bytes, released with `munmap` of the same size;
// * a failed `mmap` returns null, which callers treat as allocation failure.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_large(&layout) {
            return unsafe { Jemalloc.alloc(layout) };
        }
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !is_large(&layout) {
            return unsafe { Jemalloc.alloc_zeroed(layout) };
        }
        // Anonymous mappings are zero-filled by the kernel.
        unsafe { self.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !is_large(&layout) {
            return unsafe { Jemalloc.dealloc(ptr, layout) };
        }
        unsafe {
            libc::munmap(ptr.cast(), layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        if !is_large(&layout) && !is_large(&new_layout) {
            return unsafe { Jemalloc.realloc(ptr, layout, new_size) };
        }
        // Crossing the threshold (or staying above it): move between allocators.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservations_do_not_abort() {
        // ~128 GB of address space: refused by the regular allocators, granted lazily here.
        let mut v: Vec<u64> = Vec::with_capacity(16 << 30);
        v.push(1);
        v.push(2);
        assert_eq!(v.iter().sum::<u64>(), 3);
        let mut small: Vec<u8> = Vec::with_capacity(10);
        small.extend_from_slice(b"hello");
        assert_eq!(&small, b"hello");
    }

    #[test]
    fn realloc_across_the_threshold_keeps_contents() {
        let mut v: Vec<u8> = vec![7; 1000];
        v.reserve_exact(LARGE);
        assert!(v.iter().all(|b| *b == 7));
        v.shrink_to(2000);
        assert_eq!(v.len(), 1000);
        assert!(v.iter().all(|b| *b == 7));
    }
}
