//! Issue 12, finding 3: decompression bombs in the message browser. Two hostile batches
//! are produced over the Kafka port into a topic of `default` (a 143-byte snappy batch
//! claiming 4 GiB, and a zstd batch of 512 MiB of zeros in about 16 KB), then viewed
//! through the JSON API and the console page. Before the cap the first took the process
//! to 4.1 GiB and the second to 1 GiB. Now each batch is shown as an error entry naming the
//! 64 MiB limit, the records after them are shown as usual, and the process's resident
//! size grows by less than [`RSS_BOUND`] while they are viewed.
//!
//! Then 40 zstd batches of one 8 MiB record each (each under the cap, 320 MiB together)
//! are read in one go: the read stops when its 64 MiB decompression budget is spent.
//!
//! This file holds one test so nothing else runs in the process while memory is measured.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use common::{app, Browser};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

// The binary's allocator (jemalloc, with the mmap path for huge reservations), so resident
// size is measured as `sluice serve` would show it.
#[global_allocator]
static ALLOC: broker::alloc_guard::GuardedAlloc = broker::alloc_guard::GuardedAlloc;

/// The most resident memory viewing both bombs may add: the 64 MiB cap, plus the
/// buffer's last doubling, plus slack for the allocator and the page.
const RSS_BOUND: u64 = 192 << 20;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages in statm");
    pages * 4096
}

/// Samples the resident size every millisecond until stopped; returns the peak.
struct PeakRss {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakRss {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_bytes()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        PeakRss {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.peak.load(Ordering::Relaxed).max(rss_bytes())
    }
}

/// A v2 batch of `count` records whose records section is `records` as given (already
/// compressed with codec `codec`), with a correct length and CRC.
fn batch(codec: i16, count: i32, records: &[u8]) -> Vec<u8> {
    let now = broker::clock::now_ms();
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&0i32.to_be_bytes()); // batch length, below
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&codec.to_be_bytes()); // attributes
    b.extend_from_slice(&(count - 1).to_be_bytes()); // last offset delta
    b.extend_from_slice(&now.to_be_bytes()); // base timestamp
    b.extend_from_slice(&now.to_be_bytes()); // max timestamp
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&count.to_be_bytes());
    assert_eq!(b.len(), 61);
    b.extend_from_slice(records);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// One uncompressed record with `value`, as a records section.
fn plain_record(value: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    varint(&mut body, 0); // timestamp delta
    varint(&mut body, 0); // offset delta
    varint(&mut body, -1); // no key
    varint(&mut body, value.len() as i64);
    body.extend_from_slice(value);
    varint(&mut body, 0); // no headers
    let mut out = Vec::new();
    varint(&mut out, body.len() as i64);
    out.extend_from_slice(&body);
    out
}

/// Raw snappy claiming 4 GiB - 1 of output: the length, a one-byte literal and 25 copies
/// of 64 bytes (offset 1), 82 bytes in all.
fn snappy_bomb() -> Vec<u8> {
    let mut s = vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00];
    for _ in 0..25 {
        s.extend_from_slice(&[0xfe, 0x01, 0x00]);
    }
    s
}

/// 512 MiB of zeros through zstd's streaming encoder (never held in memory at once).
fn zstd_bomb() -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..512 {
        e.write_all(&zeros).unwrap();
    }
    e.finish().unwrap()
}

/// Produces one raw batch to partition 0 of `topic` in `default` (acks=all); returns the
/// partition's error code.
fn produce(addr: std::net::SocketAddr, topic: &str, batch: Vec<u8>) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch.into()))])]);
    let resp: ProduceResponse = common::kafka_call(addr, ApiKey::Produce, 9, &req);
    resp.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompression_bombs_are_refused_per_batch_within_a_memory_bound() {
    let app = app().await;
    let mut owner = Browser::new(&app);
    owner.sign_up("owner@example.com", "First").await;
    app.console
        .view
        .create_topic("default", "bombs", 1, &[])
        .await
        .unwrap();
    let addr = app.running.kafka_addr;
    let snappy = batch(2, 1, &snappy_bomb());
    let zstd = batch(4, 1, &zstd_bomb());
    assert!(snappy.len() < 150, "snappy bomb of {} bytes", snappy.len());
    assert!(zstd.len() < 64 << 10, "zstd bomb of {} bytes", zstd.len());
    let after = batch(0, 1, &plain_record(b"still readable"));
    tokio::task::spawn_blocking(move || {
        for b in [snappy, zstd, after] {
            assert_eq!(produce(addr, "bombs", b), 0, "produce accepted");
        }
    })
    .await
    .unwrap();

    let before = rss_bytes();
    let peak = PeakRss::start();
    let (status, api) = owner
        .json(
            "GET",
            "/api/v1/clusters/default/topics/bombs/messages?from=offset&offset=0",
            None,
            false,
        )
        .await;
    let page = owner
        .get("/clusters/default/topics/bombs/messages?from=offset&offset=0")
        .await;
    let newest = owner
        .get("/clusters/default/topics/bombs/messages?partition=0")
        .await;
    let peak = peak.finish();
    let grew = peak.saturating_sub(before);
    eprintln!(
        "rss before {} MiB, peak {} MiB, growth {} MiB (bound {} MiB)",
        before >> 20,
        peak >> 20,
        grew >> 20,
        RSS_BOUND >> 20
    );

    assert_eq!(status, StatusCode::OK, "{api}");
    let entries = api["records"].as_array().expect("an array of entries");
    assert_eq!(entries.len(), 3, "{api}");
    for (entry, codec) in entries[..2].iter().zip(["snappy", "zstd"]) {
        let error = entry["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(codec) && error.contains("limit of 64 MiB"),
            "{codec} batch refused naming the limit: {entry}"
        );
    }
    assert_eq!(entries[0]["offset"], 0);
    assert_eq!(entries[1]["offset"], 1);
    assert_eq!(entries[2]["value"], "still readable", "{api}");
    assert!(entries[2].get("error").is_none());

    for p in [&page, &newest] {
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        assert!(
            p.body.contains("limit of 64 MiB") && p.body.contains("still readable"),
            "{}",
            p.body
        );
    }
    assert!(
        grew < RSS_BOUND,
        "resident size grew by {} MiB viewing the bombs (bound {} MiB)",
        grew >> 20,
        RSS_BOUND >> 20
    );

    // Many batches each under the per-batch cap do not add up either: 40 zstd batches of
    // one 8 MiB record (320 MiB in all) are read only while the read's 64 MiB budget lasts.
    let big = {
        let section = plain_record(&vec![b'z'; 8 << 20]);
        batch(4, 1, &zstd::encode_all(&section[..], 3).unwrap())
    };
    tokio::task::spawn_blocking(move || {
        for _ in 0..40 {
            assert_eq!(produce(addr, "bombs", big.clone()), 0);
        }
    })
    .await
    .unwrap();
    let before = rss_bytes();
    let peak = PeakRss::start();
    let (status, api) = owner
        .json(
            "GET",
            "/api/v1/clusters/default/topics/bombs/messages?from=offset&offset=3&limit=50",
            None,
            false,
        )
        .await;
    let page = owner
        .get("/clusters/default/topics/bombs/messages?from=offset&offset=3&limit=50")
        .await;
    let grew = peak.finish().saturating_sub(before);
    eprintln!("many 8 MiB batches: growth {} MiB", grew >> 20);
    assert_eq!(status, StatusCode::OK, "{api}");
    let shown = api["records"].as_array().unwrap();
    assert!(
        (1..=8).contains(&shown.len()),
        "{} records of 8 MiB shown",
        shown.len()
    );
    assert!(shown
        .iter()
        .all(|r| r.get("error").is_none() && r["offset"].as_i64() >= Some(3)));
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        grew < RSS_BOUND,
        "resident size grew by {} MiB reading 40 batches of 8 MiB (bound {} MiB)",
        grew >> 20,
        RSS_BOUND >> 20
    );
}
