//! The transaction coordinator (KIP-98): every agent can serve any transactional id,
//! because its whole state lives in the metadata database (see [`crate::store`]'s
//! `txn` module); FindCoordinator still names one agent per id, as for groups.
//!
//! Ending a transaction writes its markers first (one small segment object with a
//! control batch per partition), then commits everything else in one SQL transaction: a
//! crash between the two leaves an orphan object for cleanup and the transaction open,
//! to be ended by a retry or aborted on timeout; never half of it.

pub mod marker;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clock::now_ms;
use crate::codes;
use crate::segment::SegmentBuilder;
use crate::state::Broker;
use crate::store::{EndOutcome, EndTxn, InitTxn, MarkerFile, StoreError, TxnInfo};

/// Attempts at ending a transaction whose partitions change meanwhile.
const END_ATTEMPTS: usize = 5;
/// How often aborted transactions below the log start are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Timed-out transactions aborted per pass.
const ABORTS_PER_PASS: i64 = 100;

/// A store failure as a transaction API answers it: retriable for every client.
fn unavailable(e: &StoreError) -> i16 {
    tracing::warn!(error = %e, "transaction state unavailable");
    codes::COORDINATOR_NOT_AVAILABLE
}

/// The epoch after `epoch` when a coordinator fences a producer; an exhausted epoch stays
/// (the next InitProducerId then hands out a new producer id).
fn bumped(epoch: i16) -> i16 {
    if epoch < i16::MAX - 1 {
        epoch + 1
    } else {
        epoch
    }
}

/// InitProducerId for a transactional id: aborts a transaction left open by an older
/// instance (fencing it), then bumps the epoch. Returns (producer id, epoch).
pub async fn init(
    broker: &Broker,
    cluster: &str,
    transactional_id: &str,
    timeout_ms: i32,
    current: Option<(i64, i16)>,
) -> Result<(i64, i16), i16> {
    let max = broker.config.transaction_max_timeout.as_millis() as i64;
    if timeout_ms <= 0 || timeout_ms as i64 > max {
        return Err(codes::INVALID_TRANSACTION_TIMEOUT);
    }
    for _ in 0..END_ATTEMPTS {
        match broker
            .meta
            .init_txn_producer(
                cluster,
                transactional_id,
                timeout_ms as i64,
                current,
                now_ms(),
            )
            .await
            .map_err(|e| unavailable(&e))?
        {
            InitTxn::Ready(id, epoch) => return Ok((id, epoch)),
            InitTxn::Refused(code) => return Err(code),
            InitTxn::Ongoing(open) => {
                let new_epoch = bumped(open.producer_epoch);
                match end(broker, &open, false, new_epoch).await {
                    Ok(()) | Err(codes::INVALID_TXN_STATE) | Err(codes::PRODUCER_FENCED) => {}
                    Err(code) => return Err(code),
                }
            }
        }
    }
    Err(codes::CONCURRENT_TRANSACTIONS)
}

/// Ends the open transaction of `txn` (whose producer id and epoch must still be the
/// stored ones), committing or aborting it; afterwards the producer has `new_epoch`.
pub async fn end(broker: &Broker, txn: &TxnInfo, commit: bool, new_epoch: i16) -> Result<(), i16> {
    for _ in 0..END_ATTEMPTS {
        let partitions = broker
            .meta
            .txn_partitions(txn.producer_id)
            .await
            .map_err(|e| unavailable(&e))?;
        let now = now_ms();
        let mut builder = SegmentBuilder::with_capacity(partitions.len() * 80);
        let marker = marker::encode(txn.producer_id, new_epoch, commit, now);
        let mut layout = Vec::with_capacity(partitions.len());
        for p in &partitions {
            let topic = Uuid::parse_str(&p.topic_uuid).unwrap_or_default();
            let at = builder.push(topic, p.partition, &marker, 1, now);
            layout.push((p.topic_id, p.partition, at, marker.len() as u32));
        }
        let key = format!(
            "segments/{}/txn-{}.seg",
            broker.agent_id,
            Uuid::new_v4().simple()
        );
        let object: Option<Bytes> = (!partitions.is_empty()).then(|| builder.finish());
        if let Some(object) = &object {
            put(broker, &key, object.clone()).await?;
        }
        let outcome = broker
            .meta
            .end_txn(&EndTxn {
                cluster: &txn.cluster,
                transactional_id: &txn.transactional_id,
                producer_id: txn.producer_id,
                producer_epoch: txn.producer_epoch,
                commit,
                new_epoch,
                markers: object.as_ref().map(|o| MarkerFile {
                    object_key: &key,
                    size_bytes: o.len() as u64,
                    agent_id: &broker.agent_id,
                    batches: &layout,
                }),
                now,
            })
            .await;
        match outcome {
            Ok(EndOutcome::Ended(_)) => {
                if let Some(object) = object {
                    broker.cache.insert_object(&key, object);
                }
                broker
                    .commits()
                    .local_commit(partitions.iter().map(|p| p.topic_id));
                broker.metrics.transactions_ended(commit);
                tracing::debug!(
                    transactional_id = %txn.transactional_id,
                    producer_id = txn.producer_id,
                    commit,
                    partitions = partitions.len(),
                    "transaction ended"
                );
                return Ok(());
            }
            other => {
                // The markers were not used: their object goes now (cleanup would too).
                if object.is_some() {
                    let _ = broker.bucket.delete(&key).await;
                }
                match other {
                    Ok(EndOutcome::AlreadyEnded) => return Ok(()),
                    Ok(EndOutcome::Refused(code)) => return Err(code),
                    Ok(EndOutcome::Changed) | Ok(EndOutcome::Ended(_)) => continue,
                    Err(e) => return Err(unavailable(&e)),
                }
            }
        }
    }
    Err(codes::CONCURRENT_TRANSACTIONS)
}

/// Stores a marker object, retrying a few times.
async fn put(broker: &Broker, key: &str, object: Bytes) -> Result<(), i16> {
    let mut backoff = Duration::from_millis(50);
    for attempt in 1..=3 {
        match broker.bucket.put_new(key, object.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt > 1 && e.is_already_exists() => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, %key, attempt, "storing transaction markers failed");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    }
    Err(codes::COORDINATOR_NOT_AVAILABLE)
}

/// Aborts open transactions past their timeout (fencing their producers, as Kafka does),
/// once per cluster (lease `transactions`), until `cancel` fires.
pub async fn run_timeouts(broker: Arc<Broker>, cancel: CancellationToken) {
    let interval = broker.config.transaction_abort_interval;
    let mut pruned_at = std::time::Instant::now();
    while broker
        .membership
        .next_pass("transactions", interval, &cancel)
        .await
    {
        if pruned_at.elapsed() >= PRUNE_EVERY {
            pruned_at = std::time::Instant::now();
            match broker.meta.prune_aborted_txns().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(
                    removed = n,
                    "forgot aborted transactions past the log start"
                ),
                Err(e) => tracing::warn!(error = %e, "pruning aborted transactions failed"),
            }
        }
        let expired = match broker.meta.timed_out_txns(now_ms(), ABORTS_PER_PASS).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "looking for timed-out transactions failed");
                continue;
            }
        };
        for txn in expired {
            match end(&broker, &txn, false, bumped(txn.producer_epoch)).await {
                Ok(()) => tracing::info!(
                    cluster = %txn.cluster,
                    transactional_id = %txn.transactional_id,
                    timeout_ms = txn.timeout_ms,
                    "aborted a transaction past its timeout"
                ),
                // Ended or taken over by its producer meanwhile.
                Err(codes::INVALID_TXN_STATE) | Err(codes::PRODUCER_FENCED) => {}
                Err(code) => tracing::warn!(
                    transactional_id = %txn.transactional_id,
                    code,
                    "aborting a timed-out transaction failed; retrying next pass"
                ),
            }
        }
    }
}
