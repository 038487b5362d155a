//! Produce and InitProducerId.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::store_error_code;
use crate::acl::{Operation, ResourceType};
use crate::batch::{self, BatchError};
use crate::clock::now_ms;
use crate::codes;
use crate::quota::Direction;
use crate::session::Session;
use crate::state::Broker;
use crate::store::plan::GroupOutcome;
use crate::topic_config;
use crate::topics::TopicLookup;
use crate::writer::PartitionAppend;

/// Where one partition's answer comes from.
enum Slot {
    Done(PartitionProduceResponse),
    Waiting {
        index: i32,
        log_append_time: i64,
        rx: oneshot::Receiver<GroupOutcome>,
    },
}

fn failed(index: i32, code: i16, message: Option<String>) -> Slot {
    Slot::Done(
        PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(code)
            .with_base_offset(-1)
            .with_error_message(message.map(StrBytes::from_string)),
    )
}

/// Validates and appends in arrival order; the returned future waits for the commit.
pub async fn produce(
    broker: &Arc<Broker>,
    session: &Session,
    version: i16,
    req: ProduceRequest,
) -> BoxFuture<'static, Option<ResponseKind>> {
    let acks = req.acks;
    let mut topics: Vec<(TopicProduceResponse, Vec<Slot>)> =
        Vec::with_capacity(req.topic_data.len());
    let mut appends = Vec::new();
    // (topic index, slot index) of each append, to route its receiver back.
    let mut routes = Vec::new();
    let authz = broker.acls.authz(session).await;
    // The key's producer_byte_rate counts every record byte it sends.
    let bytes: usize = req
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| p.records.as_ref().map(|r| r.len()))
        .sum();
    let throttle = broker
        .quotas
        .record(session, Direction::Produce, bytes as u64)
        .await;
    // A transactional producer writes under its transactional id's WRITE right.
    let txn_refused = req.transactional_id.as_deref().and_then(|id| {
        authz
            .check(Operation::Write, ResourceType::TransactionalId, id)
            .err()
    });
    for td in req.topic_data {
        let mut slots = Vec::with_capacity(td.partition_data.len());
        // By name the check comes first, so a refused key learns nothing of the topic and
        // creates none; by id (v13+) it needs the name looked up.
        if version < 13 {
            if let Err(code) = authz.check(Operation::Write, ResourceType::Topic, &td.name) {
                for pd in &td.partition_data {
                    slots.push(failed(pd.index, code, None));
                }
                topics.push((TopicProduceResponse::default().with_name(td.name), slots));
                continue;
            }
        }
        let lookup = if version >= 13 {
            match broker.topics.get_by_id(&session.cluster, td.topic_id).await {
                Ok(Some(t)) => Ok(TopicLookup::Found(t)),
                Ok(None) => Ok(TopicLookup::Missing),
                Err(e) => Err(e),
            }
        } else {
            broker
                .topics
                .get_or_create(&session.cluster, &td.name, authz.may_create_topic(&td.name))
                .await
        };
        let missing_code = if version >= 13 {
            codes::UNKNOWN_TOPIC_ID
        } else {
            codes::UNKNOWN_TOPIC_OR_PARTITION
        };
        let topic = match lookup {
            Ok(TopicLookup::Found(t)) if version >= 13 => {
                match authz.check(Operation::Write, ResourceType::Topic, &t.name) {
                    Ok(()) => Some(t),
                    Err(code) => {
                        for pd in &td.partition_data {
                            slots.push(failed(pd.index, code, None));
                        }
                        topics.push((
                            TopicProduceResponse::default().with_topic_id(td.topic_id),
                            slots,
                        ));
                        continue;
                    }
                }
            }
            Ok(TopicLookup::Found(t)) => Some(t),
            Ok(TopicLookup::Missing) => None,
            Err(e) => {
                let code = store_error_code(&e);
                for pd in &td.partition_data {
                    slots.push(failed(pd.index, code, None));
                }
                topics.push((
                    TopicProduceResponse::default()
                        .with_name(td.name)
                        .with_topic_id(td.topic_id),
                    slots,
                ));
                continue;
            }
        };
        for pd in td.partition_data {
            let Some(topic) = topic.as_ref() else {
                slots.push(failed(pd.index, missing_code, None));
                continue;
            };
            if !(acks == 0 || acks == 1 || acks == -1) {
                slots.push(failed(pd.index, codes::INVALID_REQUIRED_ACKS, None));
                continue;
            }
            if crate::offsets_topic::is_internal(&topic.name) {
                slots.push(failed(
                    pd.index,
                    codes::INVALID_TOPIC_EXCEPTION,
                    Some(format!("{} is written by the broker only", topic.name)),
                ));
                continue;
            }
            if let Some(code) = txn_refused {
                slots.push(failed(pd.index, code, None));
                continue;
            }
            if pd.index < 0 || pd.index >= topic.partitions {
                slots.push(failed(pd.index, codes::UNKNOWN_TOPIC_OR_PARTITION, None));
                continue;
            }
            let Some(records) = pd.records else {
                slots.push(failed(
                    pd.index,
                    BatchError::Empty.code(),
                    Some(BatchError::Empty.to_string()),
                ));
                continue;
            };
            let max = topic_config::max_message_bytes(&topic.configs);
            let mut batches = match batch::split_batches(&records, max) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(topic = %topic.name, partition = pd.index, error = %e, "refused record set");
                    slots.push(failed(pd.index, e.code(), Some(e.to_string())));
                    continue;
                }
            };
            if batches.iter().any(|b| b.header.is_control()) {
                slots.push(failed(
                    pd.index,
                    codes::INVALID_RECORD,
                    Some("control batches (transaction markers) are written by the transaction coordinator, not by clients".into()),
                ));
                continue;
            }
            let mut log_append_time = -1;
            if topic_config::log_append_time(&topic.configs) {
                log_append_time = now_ms();
                batches = batches
                    .iter()
                    .map(|b| batch::stamp_log_append_time(b, log_append_time))
                    .collect();
            }
            routes.push((topics.len(), slots.len()));
            slots.push(Slot::Waiting {
                index: pd.index,
                log_append_time,
                rx: oneshot::channel().1,
            });
            appends.push(PartitionAppend {
                topic_id: topic.id,
                topic_uuid: topic.uuid,
                partition: pd.index,
                batches,
            });
        }
        // Answer in the client's own terms: by name before v13, by topic id from v13.
        let mut resp = TopicProduceResponse::default().with_topic_id(td.topic_id);
        if version < 13 {
            resp = resp.with_name(td.name);
        }
        topics.push((resp, slots));
    }
    if !appends.is_empty() {
        let receivers = broker.writer.append(appends).await;
        for ((t, s), rx) in routes.into_iter().zip(receivers) {
            if let Slot::Waiting { rx: slot_rx, .. } = &mut topics[t].1[s] {
                *slot_rx = rx;
            }
        }
    }
    async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (mut resp, slots) in topics {
            let mut parts = Vec::with_capacity(slots.len());
            for slot in slots {
                parts.push(match slot {
                    Slot::Done(p) => p,
                    Slot::Waiting {
                        index,
                        log_append_time,
                        rx,
                    } => {
                        let outcome = rx
                            .await
                            .unwrap_or(GroupOutcome::Failed(codes::KAFKA_STORAGE_ERROR));
                        match outcome {
                            GroupOutcome::Appended {
                                base_offset,
                                log_start_offset,
                            }
                            | GroupOutcome::Duplicate {
                                base_offset,
                                log_start_offset,
                            } => PartitionProduceResponse::default()
                                .with_index(index)
                                .with_base_offset(base_offset)
                                .with_log_append_time_ms(log_append_time)
                                .with_log_start_offset(log_start_offset),
                            GroupOutcome::Failed(code) => PartitionProduceResponse::default()
                                .with_index(index)
                                .with_error_code(code)
                                .with_base_offset(-1),
                        }
                    }
                });
            }
            resp.partition_responses = parts;
            responses.push(resp);
        }
        // acks=0: the client expects no response at all.
        (acks != 0).then(|| {
            ResponseKind::Produce(
                ProduceResponse::default()
                    .with_responses(responses)
                    .with_throttle_time_ms(throttle.as_millis() as i32),
            )
        })
    }
    .boxed()
}

pub async fn init_producer_id(
    broker: &Broker,
    session: &Session,
    version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let refused = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(super::txn::fenced_code(code, version, 4))
            .with_producer_id((-1).into())
            .with_producer_epoch(-1)
    };
    // A transactional producer needs WRITE on its transactional id; an idempotent one
    // IDEMPOTENT_WRITE on the cluster or WRITE on some topic (as Kafka 3.0+).
    let authz = broker.acls.authz(session).await;
    let allowed = match req.transactional_id.as_deref() {
        Some(id) => authz.check(Operation::Write, ResourceType::TransactionalId, id),
        None if authz.allows_any(Operation::Write, ResourceType::Topic) => Ok(()),
        None => authz.check_cluster(Operation::IdempotentWrite),
    };
    if let Err(code) = allowed {
        return refused(code);
    }
    let current = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    let result = match req.transactional_id.as_deref().map(|s| s.as_str()) {
        Some("") => Err(codes::INVALID_REQUEST),
        Some(tid) => {
            crate::txn::init(
                broker,
                &session.cluster,
                tid,
                req.transaction_timeout_ms,
                current,
            )
            .await
        }
        None => broker
            .meta
            .init_producer_id(&session.cluster, None, current)
            .await
            .map_err(|e| store_error_code(&e)),
    };
    match result {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(id.into())
            .with_producer_epoch(epoch),
        Err(code) => refused(code),
    }
}
