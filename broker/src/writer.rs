//! The produce path: segment buffer, sealing, upload and commit (DESIGN.md section 3).
//!
//! Produce handlers [`SegmentWriter::append`] the batches of a request into the current
//! segment buffer, which mixes every topic and partition, and wait. A sealed segment is
//! uploaded as one object (several uploads may run at once), then committed by one metadata
//! transaction, strictly in sealing order, which assigns the offsets. Only then are the
//! waiting requests answered.
//!
//! # When the buffer is sealed (group commit)
//! As a database commits a log: the buffer is sealed as soon as fewer than
//! [`EAGER_IN_FLIGHT`] segments are on their way (uploading or committing) and at least
//! `min_interval` has passed since the previous seal. A lone request therefore waits only
//! for its own upload and commit, and under load the buffer fills while the previous flush
//! runs, so segments grow with the load. Two bounds hold whatever the load: a buffer is
//! sealed once it is `batch_timeout` old (the latency bound), and never sooner than
//! `min_interval` after the previous seal (the object-request bound, the batch timeout on
//! `s3://`, where every PUT costs money). Reaching `max_file_bytes` seals it as soon as the
//! interval allows.
//!
//! # Crash consistency
//! * Crash before the upload finishes: nothing was acked, nothing references the object.
//! * Crash after the upload, before the commit: nothing was acked; the object is an orphan
//!   that no batch row references (the cleanup job deletes such objects).
//! * Crash after the commit, before the ack: the data is stored; an idempotent producer's
//!   retry is answered from its producer state with the original offsets.
//!
//! # Retries
//! Uploads are retried with backoff; when they keep failing, or the commit fails, every
//! request in the segment gets KAFKA_STORAGE_ERROR, which clients retry.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch, Mutex, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::batch::Batch;
use crate::bucket::Bucket;
use crate::cache::ChunkCache;
use crate::metrics::Metrics;
use crate::segment::SegmentBuilder;
use crate::store::plan::{AppendGroup, GroupOutcome, PendingBatch};
use crate::store::{Metadata, SegmentCommit};
use crate::wakeups::Wakeups;

use crate::codes::KAFKA_STORAGE_ERROR;

const MAX_CONCURRENT_UPLOADS: usize = 4;
/// Segments on their way (sealed, not yet committed) below which the buffer is sealed
/// without waiting for its timeout: one uploads while the one before it commits.
pub const EAGER_IN_FLIGHT: usize = 2;
const UPLOAD_ATTEMPTS: u32 = 5;

/// The answer to one append group.
pub type AppendResult = GroupOutcome;

/// Batches for one partition, as a request sent them.
pub struct PartitionAppend {
    pub topic_id: i64,
    pub topic_uuid: Uuid,
    pub partition: i32,
    pub batches: Vec<Batch>,
}

#[derive(Clone)]
pub struct WriterConfig {
    pub batch_timeout: Duration,
    /// Shortest time between two seals (see the module docs).
    pub min_interval: Duration,
    pub max_file_bytes: usize,
    pub agent_id: String,
}

struct Open {
    builder: SegmentBuilder,
    groups: Vec<AppendGroup>,
    waiters: Vec<oneshot::Sender<AppendResult>>,
    opened_at: Option<Instant>,
    /// When the previous buffer was sealed (start-up for the first).
    last_seal: Instant,
}

impl Open {
    /// A segment sized for a full flush, so appends never copy it to grow.
    fn sized(max_file_bytes: usize) -> Self {
        Open {
            builder: SegmentBuilder::with_capacity(max_file_bytes + (1 << 20)),
            groups: Vec::new(),
            waiters: Vec::new(),
            opened_at: None,
            last_seal: Instant::now(),
        }
    }
}

struct Sealed {
    builder: SegmentBuilder,
    groups: Vec<AppendGroup>,
    waiters: Vec<oneshot::Sender<AppendResult>>,
    sealed_at: Instant,
}

/// Handle to the produce pipeline; cheap to clone.
#[derive(Clone)]
pub struct SegmentWriter {
    open: Arc<Mutex<Open>>,
    opened: Arc<Notify>,
    sealed_tx: mpsc::Sender<Sealed>,
    /// Segments sealed and not yet committed (or failed).
    in_flight: watch::Sender<usize>,
    config: WriterConfig,
    metrics: Metrics,
}

impl SegmentWriter {
    /// Starts the sealing timer and the upload/commit pipeline. `commits` is told of every
    /// commit so long-polling fetches wake up.
    // Each argument is a distinct dependency, wired once in agent::start.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        config: WriterConfig,
        meta: Metadata,
        bucket: Bucket,
        cache: ChunkCache,
        metrics: Metrics,
        commits: Arc<Wakeups>,
        cancel: CancellationToken,
        stop: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (sealed_tx, sealed_rx) = mpsc::channel(MAX_CONCURRENT_UPLOADS);
        let writer = SegmentWriter {
            open: Arc::new(Mutex::new(Open::sized(config.max_file_bytes))),
            opened: Arc::new(Notify::new()),
            sealed_tx,
            in_flight: watch::channel(0).0,
            config: config.clone(),
            metrics: metrics.clone(),
        };
        let timer = tokio::spawn(writer.clone().seal_on_timeout(cancel.clone()));
        let pipeline = Pipeline {
            in_flight: writer.in_flight.clone(),
            config,
            meta,
            bucket,
            cache,
            metrics,
            commits,
        };
        let handle = tokio::spawn(async move {
            pipeline.run(sealed_rx, stop).await;
            timer.abort();
        });
        (writer, handle)
    }

    /// Appends the batches of one request; each partition's receiver yields its outcome once
    /// the segment holding it is committed.
    pub async fn append(
        &self,
        parts: Vec<PartitionAppend>,
    ) -> Vec<oneshot::Receiver<AppendResult>> {
        let mut receivers = Vec::with_capacity(parts.len());
        let mut sealed = None;
        {
            let mut open = self.open.lock().await;
            let was_empty = open.builder.is_empty();
            for part in parts {
                let mut pending = Vec::with_capacity(part.batches.len());
                for b in &part.batches {
                    let h = &b.header;
                    let byte_offset = open.builder.push(
                        part.topic_uuid,
                        part.partition,
                        &b.bytes,
                        h.record_count,
                        h.max_timestamp,
                    );
                    self.metrics.produce_pending_bytes.add(b.bytes.len() as i64);
                    self.metrics.produce_bytes.inc_by(b.bytes.len() as u64);
                    self.metrics.produce_records.inc_by(h.record_count as u64);
                    pending.push(PendingBatch {
                        byte_offset,
                        byte_len: b.bytes.len() as u32,
                        offset_count: b.offset_count(),
                        record_count: h.record_count as i64,
                        max_timestamp: h.max_timestamp,
                        producer_id: h.producer_id,
                        producer_epoch: h.producer_epoch,
                        base_sequence: h.base_sequence,
                        last_sequence: h.last_sequence(),
                        transactional: h.is_transactional(),
                    });
                }
                let (tx, rx) = oneshot::channel();
                open.groups.push(AppendGroup {
                    topic_id: part.topic_id,
                    partition: part.partition,
                    batches: pending,
                });
                open.waiters.push(tx);
                receivers.push(rx);
            }
            if was_empty && !open.builder.is_empty() {
                open.opened_at = Some(Instant::now());
            }
            if open.builder.len() >= self.config.max_file_bytes
                && open.last_seal.elapsed() >= self.config.min_interval
            {
                sealed = Some(seal(&mut open, self.config.max_file_bytes));
            } else if was_empty && !open.builder.is_empty() {
                self.opened.notify_one();
            }
        }
        if let Some(s) = sealed {
            self.send_sealed(s).await;
        }
        receivers
    }

    async fn send_sealed(&self, sealed: Sealed) {
        self.metrics.segments_pending.inc();
        self.in_flight.send_modify(|n| *n += 1);
        if let Err(mpsc::error::SendError(s)) = self.sealed_tx.send(sealed).await {
            // The pipeline is gone (shutting down): fail the requests instead of hanging them.
            self.metrics.segments_pending.dec();
            self.in_flight.send_modify(|n| *n = n.saturating_sub(1));
            fail_all(s.waiters, &self.metrics, s.builder.len());
        }
    }

    /// Seals whatever is buffered now (used at shutdown and by tests).
    pub async fn flush(&self) {
        let sealed = {
            let mut open = self.open.lock().await;
            (!open.builder.is_empty()).then(|| seal(&mut open, self.config.max_file_bytes))
        };
        if let Some(s) = sealed {
            self.send_sealed(s).await;
        }
    }

    /// Seals the buffer when the pipeline has room for it (group commit), when it is
    /// `batch_timeout` old, or when it is full; never sooner than `min_interval` after the
    /// previous seal.
    async fn seal_on_timeout(self, cancel: CancellationToken) {
        let mut in_flight = self.in_flight.subscribe();
        loop {
            let (opened_at, last_seal, full) = {
                let open = self.open.lock().await;
                (
                    open.opened_at,
                    open.last_seal,
                    open.builder.len() >= self.config.max_file_bytes,
                )
            };
            let Some(at) = opened_at else {
                tokio::select! {
                    _ = self.opened.notified() => {}
                    _ = cancel.cancelled() => break,
                }
                continue;
            };
            let now = Instant::now();
            let earliest = last_seal + self.config.min_interval;
            let deadline = (at + self.config.batch_timeout).max(earliest);
            let room = *in_flight.borrow_and_update() < EAGER_IN_FLIGHT;
            if now >= deadline || (now >= earliest && (room || full)) {
                let sealed = {
                    let mut open = self.open.lock().await;
                    // Sealed by size meanwhile, and maybe reopened: only seal the same one.
                    (open.opened_at == Some(at))
                        .then(|| seal(&mut open, self.config.max_file_bytes))
                };
                if let Some(s) = sealed {
                    self.send_sealed(s).await;
                }
                continue;
            }
            // Wait for the deadline, for the interval to pass, or for room in the pipeline.
            let wake = if now < earliest { earliest } else { deadline };
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = in_flight.changed(), if now >= earliest => {}
                _ = cancel.cancelled() => break,
            }
        }
        self.flush().await;
    }
}

fn seal(open: &mut Open, max_file_bytes: usize) -> Sealed {
    let taken = std::mem::replace(open, Open::sized(max_file_bytes));
    Sealed {
        builder: taken.builder,
        groups: taken.groups,
        waiters: taken.waiters,
        sealed_at: Instant::now(),
    }
}

fn fail_all(waiters: Vec<oneshot::Sender<AppendResult>>, metrics: &Metrics, bytes: usize) {
    metrics.produce_pending_bytes.sub(bytes as i64);
    for w in waiters {
        let _ = w.send(GroupOutcome::Failed(KAFKA_STORAGE_ERROR));
    }
}

struct Pipeline {
    in_flight: watch::Sender<usize>,
    config: WriterConfig,
    meta: Metadata,
    bucket: Bucket,
    cache: ChunkCache,
    metrics: Metrics,
    commits: Arc<Wakeups>,
}

struct Uploaded {
    key: String,
    object: bytes::Bytes,
    data_len: usize,
    groups: Vec<AppendGroup>,
    waiters: Vec<oneshot::Sender<AppendResult>>,
    sealed_at: Instant,
    ok: bool,
}

impl Pipeline {
    /// Runs until `stop` fires and every segment sealed before it is committed.
    async fn run(self, mut rx: mpsc::Receiver<Sealed>, stop: CancellationToken) {
        let mut uploads: VecDeque<JoinHandle<Uploaded>> = VecDeque::new();
        let mut seq: u64 = 0;
        let mut closing = false;
        loop {
            let can_take = uploads.len() < MAX_CONCURRENT_UPLOADS;
            tokio::select! {
                biased;
                _ = stop.cancelled(), if !closing => {
                    // Refuse new segments; the ones already queued are still drained below.
                    rx.close();
                    closing = true;
                }
                done = async { uploads.front_mut().expect("guarded by is_empty").await }, if !uploads.is_empty() => {
                    uploads.pop_front();
                    let mut batch = Vec::new();
                    let mut next = Some(done);
                    let mut taken = 0;
                    while let Some(done) = next.take() {
                        taken += 1;
                        match done {
                            Ok(u) => batch.push(u),
                            Err(e) => tracing::error!(error = %e, "segment upload task failed"),
                        }
                        if uploads.front().is_some_and(|h| h.is_finished()) {
                            let h = uploads.pop_front().expect("front exists");
                            next = Some(h.await);
                        }
                    }
                    self.commit(batch).await;
                    self.committed(taken);
                }
                sealed = rx.recv(), if can_take => {
                    let Some(sealed) = sealed else { break };
                    seq += 1;
                    let key = format!(
                        "segments/{}/{:012}-{}.seg",
                        self.config.agent_id,
                        seq,
                        Uuid::new_v4().simple()
                    );
                    uploads.push_back(tokio::spawn(upload(
                        self.bucket.clone(),
                        self.metrics.clone(),
                        key,
                        sealed,
                    )));
                }
            }
        }
        // Channel closed: finish what was sealed.
        while let Some(h) = uploads.pop_front() {
            if let Ok(u) = h.await {
                self.commit(vec![u]).await;
            }
            self.committed(1);
        }
    }

    /// `count` segments left the pipeline (committed or failed): only now is there room
    /// for the next seal, so the next flush starts after this one.
    fn committed(&self, count: usize) {
        self.in_flight.send_modify(|n| *n = n.saturating_sub(count));
    }

    /// Commits uploaded segments, in sealing order, in one transaction: when uploads finish
    /// faster than commits, the ones waiting are committed together (group commit), so a
    /// durable metadata write is paid once for all of them.
    async fn commit(&self, uploaded: Vec<Uploaded>) {
        let mut ready = Vec::with_capacity(uploaded.len());
        for u in uploaded {
            self.metrics.segments_pending.dec();
            if u.ok {
                ready.push(u);
            } else {
                fail_all(u.waiters, &self.metrics, u.data_len);
            }
        }
        if ready.is_empty() {
            return;
        }
        let segments: Vec<SegmentCommit<'_>> = ready
            .iter()
            .map(|u| SegmentCommit {
                object_key: &u.key,
                size_bytes: u.object.len() as u64,
                groups: &u.groups,
            })
            .collect();
        let started = Instant::now();
        let result = self
            .meta
            .commit_segments(&self.config.agent_id, &segments)
            .await;
        self.metrics
            .segment_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        drop(segments);
        for u in &ready {
            self.metrics.produce_pending_bytes.sub(u.data_len as i64);
        }
        match result {
            Ok(all) => {
                self.metrics.commit_transactions.inc();
                self.commits.local_commit(
                    ready
                        .iter()
                        .flat_map(|u| u.groups.iter().map(|g| g.topic_id)),
                );
                for (u, outcomes) in ready.into_iter().zip(all) {
                    self.cache.insert_object(&u.key, u.object);
                    self.metrics.segments_committed.inc();
                    self.metrics
                        .segment_flush_seconds
                        .observe(u.sealed_at.elapsed().as_secs_f64());
                    for (w, o) in u.waiters.into_iter().zip(outcomes) {
                        let _ = w.send(o);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, segments = ready.len(), "committing segments failed; their requests get a retriable error");
                for u in ready {
                    for w in u.waiters {
                        let _ = w.send(GroupOutcome::Failed(KAFKA_STORAGE_ERROR));
                    }
                }
            }
        }
    }
}

async fn upload(bucket: Bucket, metrics: Metrics, key: String, sealed: Sealed) -> Uploaded {
    let data_len = sealed.builder.len();
    let object = sealed.builder.finish();
    let mut ok = false;
    let mut backoff = Duration::from_millis(50);
    let started = Instant::now();
    for attempt in 1..=UPLOAD_ATTEMPTS {
        match bucket.put_new(&key, object.clone()).await {
            Ok(()) => {
                ok = true;
                break;
            }
            // A retry finding the object means an earlier attempt stored it after all.
            Err(e) if attempt > 1 && e.is_already_exists() => {
                ok = true;
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, %key, attempt, "uploading segment failed");
                if attempt < UPLOAD_ATTEMPTS {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
    metrics
        .segment_upload_seconds
        .observe(started.elapsed().as_secs_f64());
    Uploaded {
        key,
        object,
        data_len,
        groups: sealed.groups,
        waiters: sealed.waiters,
        sealed_at: sealed.sealed_at,
        ok,
    }
}
