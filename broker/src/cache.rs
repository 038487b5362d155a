//! The read-through cache of segment-file chunks (DESIGN.md section 4).
//!
//! Objects are read in aligned chunks of [`CHUNK_BYTES`]; a miss fetches the whole chunk
//! with one ranged GET, and concurrent misses for the same chunk share that GET. Freshly
//! committed segments are inserted by the produce path, so tailing consumers are served
//! from memory. Capacity is bounded in bytes (LRU-like eviction).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use moka::future::Cache;
use moka::policy::EvictionPolicy;

use crate::bucket::{Bucket, BucketError};
use crate::metrics::Metrics;

pub const CHUNK_BYTES: u64 = 1 << 20;
/// Chunk GETs a prefetch keeps in flight at once.
const PREFETCH_PARALLEL: usize = 8;
/// Chunks one prefetch loads at most.
const PREFETCH_MAX_CHUNKS: usize = 64;

/// A byte range of an object to read: (key, object size, offset, length).
pub type Span<'a> = (&'a Arc<str>, u64, u64, u64);

#[derive(Clone)]
pub struct ChunkCache {
    cache: Cache<(Arc<str>, u64), Bytes>,
    bucket: Bucket,
    metrics: Metrics,
}

impl ChunkCache {
    pub fn new(bucket: Bucket, capacity_bytes: u64, metrics: Metrics) -> Self {
        let gauge = metrics.read_cache_bytes.clone();
        // Least recently used goes first. moka's default (TinyLFU) admits a new chunk only if
        // it was asked for more often than the one it would evict: a consumer reading a log
        // front to back asks for each chunk once, so its chunks would mostly not be kept.
        let cache = Cache::builder()
            .eviction_policy(EvictionPolicy::lru())
            .max_capacity(capacity_bytes)
            .weigher(|_k: &(Arc<str>, u64), v: &Bytes| v.len().min(u32::MAX as usize) as u32)
            .eviction_listener(move |_k, v: Bytes, _cause| {
                gauge.sub(v.len() as i64);
            })
            .build();
        ChunkCache {
            cache,
            bucket,
            metrics,
        }
    }

    /// Caches a whole object just written. Each chunk gets its own copy: a slice would keep
    /// the whole multi-megabyte segment allocation alive for as long as any one chunk of it
    /// stays cached, and the cache's byte count would no longer bound its memory.
    pub fn insert_object(&self, key: &str, object: Bytes) {
        let key: Arc<str> = Arc::from(key);
        let mut start = 0u64;
        while start < object.len() as u64 {
            let end = (start + CHUNK_BYTES).min(object.len() as u64);
            let chunk = Bytes::copy_from_slice(&object[start as usize..end as usize]);
            self.metrics.read_cache_bytes.add(chunk.len() as i64);
            let cache = self.cache.clone();
            let k = (key.clone(), start / CHUNK_BYTES);
            // moka's insert is async only to run eviction work; do it off the hot path.
            tokio::spawn(async move {
                cache.insert(k, chunk).await;
                // Evict now rather than eventually: the capacity is a memory budget.
                cache.run_pending_tasks().await;
            });
            start = end;
        }
    }

    async fn chunk(
        &self,
        key: &Arc<str>,
        index: u64,
        object_size: u64,
    ) -> Result<Bytes, Arc<BucketError>> {
        self.cache
            .try_get_with((key.clone(), index), async {
                self.metrics.read_cache_misses.inc();
                let start = index * CHUNK_BYTES;
                let end = (start + CHUNK_BYTES).min(object_size);
                let bytes = self.bucket.get_range(key, start..end).await?;
                self.metrics.read_cache_bytes.add(bytes.len() as i64);
                Ok(bytes)
            })
            .await
    }

    /// Loads the chunks holding `spans` into the cache, several GETs at once, so that a
    /// read of many small objects (a consumer catching up on an agent whose cache is cold)
    /// waits for about one round trip per [`PREFETCH_PARALLEL`] objects instead of one per
    /// object. Errors are left for the read that follows to report.
    pub async fn prefetch(&self, spans: &[Span<'_>]) {
        let mut chunks: Vec<(Arc<str>, u64, u64)> = Vec::new();
        for &(key, size, offset, len) in spans {
            if len == 0 {
                continue;
            }
            for index in offset / CHUNK_BYTES..=(offset + len - 1) / CHUNK_BYTES {
                if !chunks.iter().any(|(k, i, _)| k == key && *i == index) {
                    chunks.push((key.clone(), index, size));
                }
            }
            if chunks.len() >= PREFETCH_MAX_CHUNKS {
                break;
            }
        }
        chunks.truncate(PREFETCH_MAX_CHUNKS);
        if chunks.len() < 2 {
            return; // nothing to overlap
        }
        futures::stream::iter(chunks)
            .for_each_concurrent(PREFETCH_PARALLEL, |(key, index, size)| async move {
                let _ = self.chunk(&key, index, size).await;
            })
            .await;
    }

    /// Appends `len` bytes at `offset` of object `key` to `out`.
    pub async fn read_into(
        &self,
        key: &Arc<str>,
        object_size: u64,
        offset: u64,
        len: u64,
        out: &mut BytesMut,
    ) -> Result<(), Arc<BucketError>> {
        let mut pieces = Vec::new();
        self.slices(key, object_size, offset, len, &mut pieces)
            .await?;
        for (chunk, range) in pieces {
            out.extend_from_slice(&chunk[range]);
        }
        Ok(())
    }

    /// Pushes the `len` bytes at `offset` of object `key` to `out` as the cached chunks
    /// that hold them and the range of each (no copy).
    pub async fn slices(
        &self,
        key: &Arc<str>,
        object_size: u64,
        offset: u64,
        len: u64,
        out: &mut Vec<(Bytes, std::ops::Range<usize>)>,
    ) -> Result<(), Arc<BucketError>> {
        let end = offset + len;
        let mut pos = offset;
        while pos < end {
            let index = pos / CHUNK_BYTES;
            let chunk = self.chunk(key, index, object_size).await?;
            let chunk_start = index * CHUNK_BYTES;
            let from = (pos - chunk_start) as usize;
            let to = ((end - chunk_start) as usize).min(chunk.len());
            if from >= to {
                return Err(Arc::new(BucketError::Corrupt(format!(
                    "object {key} is shorter than its metadata says"
                ))));
            }
            out.push((chunk, from..to));
            pos = chunk_start + to as u64;
        }
        Ok(())
    }
}
