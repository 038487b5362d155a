//! Fetch (DESIGN.md section 4): batch rows from metadata, bytes from the chunk cache,
//! base offsets patched in, size limits respected, long-poll woken by commits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::store_error_code;
use crate::acl::{Authz, Operation, ResourceType};
use crate::codes;
use crate::gate::Permit;
use crate::log::read_batch_pieces;
use crate::protocol::{Pieces, Splices};
use crate::quota::Direction;
use crate::session::Session;
use crate::state::Broker;
use crate::store::{BatchLocation, PartitionState, TopicMeta};

/// Batch rows read per page: at least, at most, and the batch size the first page of a
/// partition assumes (the Java client's default `batch.size`).
const MIN_PAGE_ROWS: i64 = 32;
const MAX_BATCH_ROWS: i64 = 1000;
const GUESSED_BATCH_BYTES: usize = 16 << 10;
/// Rows whose objects are fetched together ahead of the copy (see `ChunkCache::prefetch`).
const PREFETCH_WINDOW: usize = 64;
/// Partitions of one fetch read at once (each holds a database connection meanwhile).
const PARALLEL_PARTITIONS: usize = 4;
/// The longest a fetch may wait, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Answers a fetch, holding fetch-gate bytes for the response it builds.
///
/// The long-poll wait happens *before* any bytes are reserved (an idle tailing consumer
/// holds nothing); once there is something to read, the response is capped by the bytes
/// the gate grants, so the gate's count is an upper bound on fetch memory in flight.
pub async fn fetch(
    broker: &Arc<Broker>,
    session: &Session,
    version: i16,
    req: FetchRequest,
) -> (FetchResponse, Splices, Permit) {
    let deadline =
        Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if req.max_bytes <= 0 {
        usize::MAX
    } else {
        req.max_bytes as usize
    };
    // Resolve topics once; a fetch names them by name (< v13) or id (v13+).
    let mut topics = Vec::with_capacity(req.topics.len());
    let authz = broker.acls.authz(session).await;
    for t in &req.topics {
        topics.push(resolve(broker, session, &authz, version, t).await);
    }
    // One fetch may hold at most a quarter of the gate, so several consumers progress.
    let cap = (broker.fetch_gate.limit() / 4).max(1 << 20);
    let topic_ids: Vec<i64> = topics
        .iter()
        .filter_map(|t| t.as_ref().ok().and_then(|t| t.as_ref()).map(|t| t.id))
        .collect();
    // read_committed: records only below the last stable offset (KIP-98).
    let committed = req.isolation_level == 1;
    let mut commits = broker.commits().subscribe();
    loop {
        let mut seen = *commits.borrow_and_update();
        let heads = heads(broker, &topics).await;
        if Instant::now() >= deadline || anything_to_read(&req.topics, &heads, committed) {
            // Reserve for twice what is read: records gathered in pieces are not copied, but
            // small or oversized record sets are, into one buffer, while being encoded.
            let reserve = (max_bytes as u64).saturating_mul(2).min(cap);
            let mut permit = broker.fetch_gate.acquire(reserve).await;
            let _reader = broker
                .fetch_readers
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let (responses, splices, bytes) = read_all(
                broker,
                version,
                committed,
                &req.topics,
                &topics,
                &heads,
                (permit.bytes() / 2) as usize,
            )
            .await;
            let has_error = responses
                .iter()
                .any(|t| t.partitions.iter().any(|p| p.error_code != codes::NONE));
            if bytes >= min_bytes || has_error || Instant::now() >= deadline {
                broker.metrics.fetch_bytes.inc_by(bytes as u64);
                // Keep what encoding it will hold; the writer shrinks it to the frame.
                permit.shrink_to((2 * bytes + 4096).max(splices.held_bytes()) as u64);
                let throttle = broker
                    .quotas
                    .record(session, Direction::Fetch, bytes as u64)
                    .await;
                let response = FetchResponse::default()
                    .with_responses(responses)
                    .with_throttle_time_ms(throttle.as_millis() as i32);
                return (response, splices, permit);
            }
        }
        // Sleep until a commit that may concern these topics (other agents' commits, seen
        // through crate::commit_watch, concern every fetch), or the deadline.
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match tokio::time::timeout(deadline - now, commits.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
            let latest = *commits.borrow_and_update();
            if broker.commits().concerns(&topic_ids, seen) {
                break;
            }
            seen = latest;
        }
    }
}

type Resolved = Result<Option<Arc<TopicMeta>>, i16>;

/// The partition states of each requested topic: one query per topic and round.
type Heads = Vec<Result<HashMap<i32, PartitionState>, i16>>;

async fn heads(broker: &Broker, topics: &[Resolved]) -> Heads {
    let mut out = Vec::with_capacity(topics.len());
    for resolved in topics {
        out.push(match resolved {
            Ok(Some(topic)) => broker
                .meta
                .partition_states(topic.id)
                .await
                .map_err(|e| store_error_code(&e)),
            // Answered from the resolution's error; no states needed.
            _ => Ok(HashMap::new()),
        });
    }
    out
}

/// Whether any requested partition has records past its fetch offset (below the last
/// stable offset for `committed` reads) or an error to report.
fn anything_to_read(requested: &[FetchTopic], heads: &Heads, committed: bool) -> bool {
    for (t, states) in requested.iter().zip(heads) {
        let Ok(states) = states else {
            return true;
        };
        for p in &t.partitions {
            match states.get(&p.partition) {
                Some(state) if state.next_offset == p.fetch_offset => {}
                // Waiting for an open transaction to end.
                Some(state)
                    if committed
                        && p.fetch_offset >= state.last_stable_offset
                        && p.fetch_offset <= state.next_offset => {}
                _ => return true,
            }
        }
    }
    false
}

async fn resolve(
    broker: &Broker,
    session: &Session,
    authz: &Authz,
    version: i16,
    t: &FetchTopic,
) -> Resolved {
    // By name the check comes before the look-up (a refused key learns nothing).
    if version < 13 {
        authz.check(Operation::Read, ResourceType::Topic, &t.topic)?;
    }
    let found = if version >= 13 {
        broker.topics.get_by_id(&session.cluster, t.topic_id).await
    } else {
        broker.topics.get(&session.cluster, &t.topic).await
    };
    let found = found.map_err(|e| store_error_code(&e))?;
    if let Some(topic) = &found {
        authz.check(Operation::Read, ResourceType::Topic, &topic.name)?;
    }
    Ok(found)
}

/// One requested partition: its answer so far, and what to read for it.
struct Job<'a> {
    topic: usize,
    base: PartitionData,
    read: Option<Read<'a>>,
}

struct Read<'a> {
    topic: &'a TopicMeta,
    committed: bool,
    state: Result<Option<PartitionState>, i16>,
    partition: i32,
    offset: i64,
    limit: usize,
}

impl Read<'_> {
    async fn run(
        &self,
        broker: &Broker,
        max_bytes: usize,
        min_one: bool,
        total: &mut usize,
    ) -> PartitionRead {
        read_partition(
            broker,
            self.topic,
            self.committed,
            self.state,
            self.partition,
            self.offset,
            self.limit,
            max_bytes,
            min_one,
            total,
        )
        .await
    }

    /// Whether the partition has records past the fetch offset.
    fn has_records(&self) -> bool {
        let end = |s: &PartitionState| {
            if self.committed {
                s.last_stable_offset
            } else {
                s.next_offset
            }
        };
        matches!(self.state, Ok(Some(s)) if self.offset >= s.log_start_offset && self.offset < end(&s))
    }
}

/// Reads one partition within its own limit: (what it read, its bytes).
async fn read_alone(
    broker: &Broker,
    job: &Job<'_>,
    max_bytes: usize,
) -> (Option<PartitionRead>, usize) {
    let mut own = 0usize;
    let read = match &job.read {
        Some(r) => Some(r.run(broker, max_bytes, false, &mut own).await),
        None => None,
    };
    (read, own)
}

async fn read_all(
    broker: &Broker,
    version: i16,
    committed: bool,
    requested: &[FetchTopic],
    topics: &[Resolved],
    heads: &Heads,
    max_bytes: usize,
) -> (Vec<FetchableTopicResponse>, Splices, usize) {
    let mut out = Vec::with_capacity(requested.len());
    let mut jobs = Vec::new();
    for (i, ((t, resolved), states)) in requested.iter().zip(topics).zip(heads).enumerate() {
        let mut resp = FetchableTopicResponse::default().with_topic_id(t.topic_id);
        if version < 13 {
            resp = resp.with_topic(t.topic.clone());
        }
        out.push(resp);
        for p in &t.partitions {
            let base = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_aborted_transactions(Some(Vec::new()))
                .with_preferred_read_replica((-1).into())
                // Empty, never null: librdkafka rejects a null record set.
                .with_records(Some(Default::default()));
            let topic = match resolved {
                Ok(Some(topic)) => topic,
                Ok(None) => {
                    let code = if version >= 13 {
                        codes::UNKNOWN_TOPIC_ID
                    } else {
                        codes::UNKNOWN_TOPIC_OR_PARTITION
                    };
                    jobs.push(Job {
                        topic: i,
                        base: base.with_error_code(code),
                        read: None,
                    });
                    continue;
                }
                Err(code) => {
                    jobs.push(Job {
                        topic: i,
                        base: base.with_error_code(*code),
                        read: None,
                    });
                    continue;
                }
            };
            let limit = if p.partition_max_bytes <= 0 {
                usize::MAX
            } else {
                p.partition_max_bytes as usize
            };
            let state = match states {
                Ok(states) => Ok(states.get(&p.partition).copied()),
                Err(code) => Err(*code),
            };
            let read = Read {
                topic,
                committed,
                state,
                partition: p.partition,
                offset: p.fetch_offset,
                limit,
            };
            jobs.push(Job {
                topic: i,
                base,
                read: Some(read),
            });
        }
    }
    // When the partitions' own limits together fit the response's, they cannot take from
    // each other: read them at once (a consumer waits for the slowest partition, not their
    // sum). Each keeps to its own limit there; if that leaves the response empty because
    // a batch is bigger than its partition's limit, the reads run again in order, where the
    // response's first batch may be bigger than the limits (Kafka's rule).
    let readers = jobs
        .iter()
        .filter(|j| j.read.as_ref().is_some_and(Read::has_records))
        .count();
    let fits = jobs
        .iter()
        .filter_map(|j| j.read.as_ref())
        .try_fold(0usize, |sum, r| sum.checked_add(r.limit))
        .is_some_and(|sum| sum <= max_bytes);
    let mut total = 0usize;
    let mut results = Vec::new();
    let mut splices = Splices::default();
    if readers > 1 && fits {
        // Collected first: a stream over a closure's futures trips a compiler limit (the
        // closure's lifetimes are not general enough for the boxed, sendable handler).
        let reads: Vec<_> = jobs
            .iter()
            .map(|j| read_alone(broker, j, max_bytes))
            .collect();
        results = futures::stream::iter(reads)
            .buffered(PARALLEL_PARTITIONS)
            .collect()
            .await;
        total = results.iter().map(|(_, n)| n).sum();
        if total == 0 {
            results.clear();
        }
    }
    if results.is_empty() {
        for j in &jobs {
            let read = match &j.read {
                Some(r) => Some(r.run(broker, max_bytes, true, &mut total).await),
                None => None,
            };
            results.push((read, 0));
        }
    }
    // Shared pieces keep their whole chunks alive until written: if those chunks add up to
    // more than the gate granted (twice what may be read), the records are copied instead.
    let mut held = HashMap::new();
    for (read, _) in &results {
        if let Some(Ok(PartitionOk {
            records: Some(pieces),
            ..
        })) = read
        {
            held.extend(pieces.held().iter().copied());
        }
    }
    let copy = held.values().sum::<usize>() > max_bytes.saturating_mul(2);
    for (job, (read, _)) in jobs.into_iter().zip(results) {
        let base = job.base;
        // Registered in the order the encoder writes the partitions.
        out[job.topic].partitions.push(match read {
            None => base,
            Some(Ok(PartitionOk {
                hw,
                log_start,
                stable,
                aborted,
                records,
            })) => base
                .with_high_watermark(hw)
                .with_last_stable_offset(stable)
                .with_log_start_offset(log_start)
                .with_aborted_transactions(Some(aborted))
                .with_records(Some(
                    records
                        .map(|r| {
                            if copy {
                                r.concat()
                            } else {
                                splices.register(r)
                            }
                        })
                        .unwrap_or_default(),
                )),
            Some(Err((code, hw, lso))) => base
                .with_error_code(code)
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(lso),
        });
    }
    (out, splices, total)
}

/// What a partition read answers.
struct PartitionOk {
    hw: i64,
    log_start: i64,
    stable: i64,
    /// For read_committed: the aborted transactions the records may hold.
    aborted: Vec<AbortedTransaction>,
    records: Option<Pieces>,
}

type PartitionRead = Result<PartitionOk, (i16, i64, i64)>;

/// Reads one partition from `offset`: below the high watermark, or below the last stable
/// offset for `committed` reads (with the aborted transactions among those records).
// The partition's place in the request and its limits are distinct inputs.
#[allow(clippy::too_many_arguments)]
async fn read_partition(
    broker: &Broker,
    topic: &TopicMeta,
    committed: bool,
    state: Result<Option<PartitionState>, i16>,
    partition: i32,
    offset: i64,
    partition_limit: usize,
    max_bytes: usize,
    min_one: bool,
    total: &mut usize,
) -> PartitionRead {
    let state = match state {
        Ok(Some(s)) => s,
        Ok(None) => return Err((codes::UNKNOWN_TOPIC_OR_PARTITION, -1, -1)),
        Err(code) => return Err((code, -1, -1)),
    };
    let (hw, lso) = (state.next_offset, state.log_start_offset);
    if offset < lso || offset > hw {
        return Err((codes::OFFSET_OUT_OF_RANGE, hw, lso));
    }
    // Where this read must stop.
    let end = if committed {
        state.last_stable_offset
    } else {
        hw
    };
    let done = |records: Option<Pieces>, aborted| PartitionOk {
        hw,
        log_start: lso,
        stable: state.last_stable_offset,
        aborted,
        records,
    };
    if offset >= end {
        return Ok(done(None, Vec::new()));
    }
    if crate::offsets_topic::is_internal(&topic.name) {
        let records = read_inline(
            broker,
            topic,
            partition,
            (offset, end),
            partition_limit,
            max_bytes,
            min_one,
            total,
        )
        .await
        .map_err(|code| (code, hw, lso))?;
        return Ok(done(records, Vec::new()));
    }
    let mut buf = Pieces::default();
    let mut copied_rows = 0usize;
    // Rows are read a page at a time: a consumer asking for 1 MiB of 16 KiB batches needs
    // 64 rows, not the thousand a partition may hold. The first page guesses the Java
    // client's batch size; the next is sized by the batches the first one had.
    let room = partition_limit.min(max_bytes.saturating_sub(*total));
    let (mut from, mut page) = (offset, rows_for(room, GUESSED_BATCH_BYTES));
    loop {
        let mut rows = match broker
            .meta
            .batches_from(topic.id, partition, from, page)
            .await
        {
            Ok(r) => r,
            Err(e) if buf.is_empty() => return Err((store_error_code(&e), hw, lso)),
            Err(_) => break,
        };
        // The first row may be dropped as ending before `from`: a page one short is full.
        let full_page = rows.len() as i64 + 1 >= page;
        // The heads were read before the gate wait: what committed since stays for the next
        // fetch, so no record lies past the high watermark this response reports.
        rows.retain(|r| r.base_offset < end);
        let Some(last) = rows.last().map(|r| r.last_offset) else {
            break;
        };
        copied_rows += rows.len();
        match copy_rows(
            broker,
            topic,
            partition,
            rows,
            partition_limit,
            max_bytes,
            min_one,
            total,
            &mut buf,
        )
        .await
        {
            Copied::All if full_page && last + 1 < end => {
                // As many rows as the room left takes at the batch size seen so far.
                let room = partition_limit
                    .saturating_sub(buf.len())
                    .min(max_bytes.saturating_sub(*total));
                let average = (buf.len() / copied_rows.max(1)).max(1);
                (from, page) = (last + 1, rows_for(room, average));
            }
            Copied::All | Copied::Full => break,
            Copied::Failed if buf.is_empty() => return Err((codes::KAFKA_STORAGE_ERROR, hw, lso)),
            Copied::Failed => break,
        }
    }
    if buf.is_empty() {
        return Ok(done(None, Vec::new()));
    }
    // Only when an aborted transaction ends at or after the fetch offset: one probe of
    // the partition state told.
    let mut aborted = Vec::new();
    if committed && state.last_aborted >= offset {
        match broker
            .meta
            .aborted_txns(topic.id, partition, offset, end - 1)
            .await
        {
            Ok(list) => {
                aborted = list
                    .into_iter()
                    .map(|(pid, first)| {
                        AbortedTransaction::default()
                            .with_producer_id(pid.into())
                            .with_first_offset(first)
                    })
                    .collect()
            }
            // Without the list a read_committed client would keep aborted records.
            Err(e) => return Err((store_error_code(&e), hw, lso)),
        }
    }
    Ok(done(Some(buf), aborted))
}

/// Reads the offsets topic's batches (stored in the database) of `[from, end)`.
#[allow(clippy::too_many_arguments)]
async fn read_inline(
    broker: &Broker,
    topic: &TopicMeta,
    partition: i32,
    (from, end): (i64, i64),
    partition_limit: usize,
    max_bytes: usize,
    min_one: bool,
    total: &mut usize,
) -> Result<Option<Pieces>, i16> {
    let rows = broker
        .meta
        .inline_batches_from(topic.id, partition, from, end, MAX_BATCH_ROWS)
        .await
        .map_err(|e| store_error_code(&e))?;
    let mut buf = Pieces::default();
    for (base, data) in rows {
        let first = min_one && *total == 0;
        if !first && (buf.len() + data.len() > partition_limit || *total + data.len() > max_bytes) {
            break;
        }
        if data.len() < crate::batch::HEADER_LEN {
            tracing::error!(topic = %topic.name, partition, base, "stored inline batch is truncated");
            return Err(codes::KAFKA_STORAGE_ERROR);
        }
        let mut data = data;
        crate::batch::patch_base_offset(&mut data, base);
        *total += data.len();
        buf.push(data.into());
    }
    Ok((!buf.is_empty()).then_some(buf))
}

/// Rows to read for `room` bytes of batches of `average` bytes (two more, as the first
/// may end before the fetch offset and the last may not fit).
fn rows_for(room: usize, average: usize) -> i64 {
    let rows = (room / average.max(1)).saturating_add(2);
    (rows.min(MAX_BATCH_ROWS as usize) as i64).max(MIN_PAGE_ROWS)
}

/// How a page of rows was copied.
enum Copied {
    /// Every row: the next page may add more.
    All,
    /// The limits were reached.
    Full,
    /// A read failed (logged); what was copied before it stands.
    Failed,
}

/// Copies the batches of `rows` into `buf` within the limits; with `min_one`, at least one
/// batch per response (Kafka's rule, so a client gets past a batch bigger than its fetch
/// size).
// The partition's limits and the response's running total are distinct inputs.
#[allow(clippy::too_many_arguments)]
async fn copy_rows(
    broker: &Broker,
    topic: &TopicMeta,
    partition: i32,
    rows: Vec<BatchLocation>,
    partition_limit: usize,
    max_bytes: usize,
    min_one: bool,
    total: &mut usize,
    buf: &mut Pieces,
) -> Copied {
    let room = partition_limit
        .min(max_bytes.saturating_sub(*total))
        .saturating_sub(buf.len());
    // How many rows this read will take: their objects are fetched from the bucket a
    // window at a time, in parallel, ahead of the copy below.
    let mut planned = 0usize;
    let taking = rows
        .iter()
        .take_while(|r| {
            let fits = planned == 0 || planned + r.byte_len as usize <= room;
            planned += r.byte_len as usize;
            fits
        })
        .count();
    let (mut rows, mut i, mut re_resolved) = (rows, 0, false);
    while let Some(row) = rows.get(i) {
        if i % PREFETCH_WINDOW == 0 && i < taking && !re_resolved {
            let spans: Vec<_> = rows[i..taking.min(i + PREFETCH_WINDOW)]
                .iter()
                .map(|r| {
                    (
                        &r.object_key,
                        r.object_size,
                        r.byte_offset,
                        r.byte_len as u64,
                    )
                })
                .collect();
            broker.cache.prefetch(&spans).await;
        }
        i += 1;
        let len = row.byte_len as usize;
        let first = min_one && *total == 0;
        if !first && (buf.len() + len > partition_limit || *total + len > max_bytes) {
            return Copied::Full;
        }
        if let Err(e) = read_batch_pieces(broker, row, buf).await {
            // Compaction moved the rows and the old object is gone: look them up once more.
            if e.is_not_found() && !re_resolved {
                re_resolved = true;
                let from = row.base_offset;
                if let Ok(fresh) = broker
                    .meta
                    .batches_from(topic.id, partition, from, MAX_BATCH_ROWS)
                    .await
                {
                    (rows, i) = (fresh, 0);
                    continue;
                }
            }
            tracing::error!(error = %e, key = %row.object_key, "reading batch from bucket failed");
            return Copied::Failed;
        }
        *total += len;
    }
    Copied::All
}
