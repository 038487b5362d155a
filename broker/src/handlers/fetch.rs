//! Fetch (DESIGN.md section 4): batch rows from metadata, bytes from the chunk cache,
//! base offsets patched in, size limits respected, long-poll woken by commits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::store_error_code;
use crate::acl::{Authz, Operation, ResourceType};
use crate::codes;
use crate::gate::Permit;
use crate::log::read_batch;
use crate::quota::Direction;
use crate::session::Session;
use crate::state::Broker;
use crate::store::TopicMeta;

/// Batch rows read per partition and round; a client wanting more fetches again.
const MAX_BATCH_ROWS: i64 = 1000;
/// Rows whose objects are fetched together ahead of the copy (see `ChunkCache::prefetch`).
const PREFETCH_WINDOW: usize = 64;
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
) -> (FetchResponse, Permit) {
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
    let mut commits = broker.subscribe_commits();
    loop {
        commits.borrow_and_update();
        if Instant::now() >= deadline || anything_to_read(broker, &req.topics, &topics).await {
            // Records exist twice while the response is encoded (partition buffers, then
            // the frame): reserve for both, read at most half.
            let reserve = (max_bytes as u64).saturating_mul(2).min(cap);
            let mut permit = broker.fetch_gate.acquire(reserve).await;
            let _reader = broker
                .fetch_readers
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let (responses, bytes) = read_all(
                broker,
                version,
                &req.topics,
                &topics,
                (permit.bytes() / 2) as usize,
            )
            .await;
            let has_error = responses
                .iter()
                .any(|t| t.partitions.iter().any(|p| p.error_code != codes::NONE));
            if bytes >= min_bytes || has_error || Instant::now() >= deadline {
                broker.metrics.fetch_bytes.inc_by(bytes as u64);
                // Keep what encoding it will hold; the writer shrinks it to the frame.
                permit.shrink_to(2 * bytes as u64 + 4096);
                let throttle = broker
                    .quotas
                    .record(session, Direction::Fetch, bytes as u64)
                    .await;
                let response = FetchResponse::default()
                    .with_responses(responses)
                    .with_throttle_time_ms(throttle.as_millis() as i32);
                return (response, permit);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            continue;
        }
        // Other agents' commits wake it too (crate::commit_watch).
        let _ = tokio::time::timeout(deadline - now, commits.changed()).await;
    }
}

type Resolved = Result<Option<Arc<TopicMeta>>, i16>;

/// Whether any requested partition has records past its fetch offset or an error to report
/// (cheap: partition heads only).
async fn anything_to_read(broker: &Broker, requested: &[FetchTopic], topics: &[Resolved]) -> bool {
    for (t, resolved) in requested.iter().zip(topics) {
        let Ok(Some(topic)) = resolved else {
            return true;
        };
        for p in &t.partitions {
            match broker.meta.partition_state(topic.id, p.partition).await {
                Ok(Some(state)) if state.next_offset == p.fetch_offset => {}
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
        broker
            .meta
            .topic_by_uuid(&session.cluster, t.topic_id)
            .await
            .map(|o| o.map(Arc::new))
    } else {
        broker.topics.get(&session.cluster, &t.topic).await
    };
    let found = found.map_err(|e| store_error_code(&e))?;
    if let Some(topic) = &found {
        authz.check(Operation::Read, ResourceType::Topic, &topic.name)?;
    }
    Ok(found)
}

async fn read_all(
    broker: &Broker,
    version: i16,
    requested: &[FetchTopic],
    topics: &[Resolved],
    max_bytes: usize,
) -> (Vec<FetchableTopicResponse>, usize) {
    let mut total = 0usize;
    let mut out = Vec::with_capacity(requested.len());
    for (t, resolved) in requested.iter().zip(topics) {
        let mut resp = FetchableTopicResponse::default().with_topic_id(t.topic_id);
        if version < 13 {
            resp = resp.with_topic(t.topic.clone());
        }
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
                    resp.partitions.push(base.with_error_code(code));
                    continue;
                }
                Err(code) => {
                    resp.partitions.push(base.with_error_code(*code));
                    continue;
                }
            };
            let limit = if p.partition_max_bytes <= 0 {
                usize::MAX
            } else {
                p.partition_max_bytes as usize
            };
            let data = read_partition(
                broker,
                topic,
                p.partition,
                p.fetch_offset,
                limit,
                max_bytes,
                &mut total,
            )
            .await;
            resp.partitions.push(match data {
                Ok((hw, lso, records)) => base
                    .with_high_watermark(hw)
                    .with_last_stable_offset(hw)
                    .with_log_start_offset(lso)
                    .with_records(Some(records.map(|r| r.freeze()).unwrap_or_default())),
                Err((code, hw, lso)) => base
                    .with_error_code(code)
                    .with_high_watermark(hw)
                    .with_last_stable_offset(hw)
                    .with_log_start_offset(lso),
            });
        }
        out.push(resp);
    }
    (out, total)
}

type PartitionRead = Result<(i64, i64, Option<BytesMut>), (i16, i64, i64)>;

/// Reads one partition from `offset`: (high watermark, log start, records).
async fn read_partition(
    broker: &Broker,
    topic: &TopicMeta,
    partition: i32,
    offset: i64,
    partition_limit: usize,
    max_bytes: usize,
    total: &mut usize,
) -> PartitionRead {
    let state = match broker.meta.partition_state(topic.id, partition).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err((codes::UNKNOWN_TOPIC_OR_PARTITION, -1, -1)),
        Err(e) => return Err((store_error_code(&e), -1, -1)),
    };
    let (hw, lso) = (state.next_offset, state.log_start_offset);
    if offset < lso || offset > hw {
        return Err((codes::OFFSET_OUT_OF_RANGE, hw, lso));
    }
    if offset == hw {
        return Ok((hw, lso, None));
    }
    let rows = match broker
        .meta
        .batches_from(topic.id, partition, offset, MAX_BATCH_ROWS)
        .await
    {
        Ok(r) => r,
        Err(e) => return Err((store_error_code(&e), hw, lso)),
    };
    // Size the buffer for what the limits let through, so it is allocated once.
    let wanted: usize = rows.iter().map(|r| r.byte_len as usize).sum();
    let first = rows.first().map(|r| r.byte_len as usize).unwrap_or(0);
    let room = partition_limit
        .min(max_bytes.saturating_sub(*total))
        .max(first);
    let mut buf = BytesMut::with_capacity(wanted.min(room));
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
        // Always return at least one batch per response, even over the limits, so a client
        // can make progress past a batch larger than its fetch size (as Kafka does).
        let first = *total == 0;
        if !first && (buf.len() + len > partition_limit || *total + len > max_bytes) {
            break;
        }
        let start = buf.len();
        if let Err(e) = read_batch(broker, row, &mut buf).await {
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
            if start == 0 {
                return Err((codes::KAFKA_STORAGE_ERROR, hw, lso));
            }
            break;
        }
        *total += len;
    }
    Ok((hw, lso, (!buf.is_empty()).then_some(buf)))
}
