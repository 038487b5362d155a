//! The transaction APIs: AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn,
//! and the operators' ListTransactions, DescribeTransactions and DescribeProducers.
//! InitProducerId lives with Produce; the coordinator's logic in [`crate::txn`].

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedTxn,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTxn;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    ListTransactionsRequest, ListTransactionsResponse, TopicName, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::store_error_code;
use crate::acl::{Authz, Operation, ResourceType};
use crate::clock::now_ms;
use crate::codes;
use crate::session::Session;
use crate::state::Broker;
use crate::store::{TxnInfo, TxnOffset, TxnState};

/// Clients from before KIP-588 know no PRODUCER_FENCED: they get INVALID_PRODUCER_EPOCH.
/// `first_fenced_version` is the API's first version that knows it.
pub fn fenced_code(code: i16, version: i16, first_fenced_version: i16) -> i16 {
    if code == codes::PRODUCER_FENCED && version < first_fenced_version {
        codes::INVALID_PRODUCER_EPOCH
    } else {
        code
    }
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// One transaction of an AddPartitionsToTxn request.
struct Adding<'a> {
    transactional_id: &'a str,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topics: &'a [AddPartitionsToTxnTopic],
}

/// Each partition of a topic with its own refusal (authorization, unknown), or None.
type TopicAnswers = (TopicName, Vec<(i32, Option<i16>)>);

/// The per-partition answers of one AddPartitionsToTxn transaction.
async fn add_partitions(
    broker: &Broker,
    session: &Session,
    authz: &Authz,
    adding: Adding<'_>,
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let Adding {
        transactional_id,
        producer_id,
        epoch,
        verify_only,
        topics,
    } = adding;
    let mut answers: Vec<TopicAnswers> = Vec::new();
    let mut wanted = Vec::new();
    let txn_refused = authz
        .check(
            Operation::Write,
            ResourceType::TransactionalId,
            transactional_id,
        )
        .err();
    for t in topics {
        let refused = match txn_refused {
            Some(code) => Some(code),
            None => authz
                .check(Operation::Write, ResourceType::Topic, &t.name)
                .err(),
        };
        let meta = match refused {
            Some(_) => None,
            None => broker
                .topics
                .get(&session.cluster, &t.name)
                .await
                .unwrap_or(None),
        };
        let mut parts = Vec::with_capacity(t.partitions.len());
        for &p in &t.partitions {
            let own = match (refused, &meta) {
                (Some(code), _) => Some(code),
                (None, Some(m)) if p >= 0 && p < m.partitions => {
                    wanted.push((m.id, p));
                    None
                }
                (None, _) => Some(codes::UNKNOWN_TOPIC_OR_PARTITION),
            };
            parts.push((p, own));
        }
        answers.push((t.name.clone(), parts));
    }
    let any_refused = answers
        .iter()
        .any(|(_, parts)| parts.iter().any(|(_, c)| c.is_some()));
    // One refused partition fails the request: the others are not attempted (Kafka's rule).
    let outcome: i16 = if any_refused {
        codes::OPERATION_NOT_ATTEMPTED
    } else if verify_only {
        verify(
            broker,
            session,
            transactional_id,
            producer_id,
            epoch,
            &wanted,
        )
        .await
    } else {
        match broker
            .meta
            .add_txn_partitions(
                &session.cluster,
                transactional_id,
                producer_id,
                epoch,
                &wanted,
                now_ms(),
            )
            .await
        {
            Ok(Ok(())) => codes::NONE,
            Ok(Err(code)) => fenced_code(code, version, 2),
            Err(e) => store_error_code(&e),
        }
    };
    answers
        .into_iter()
        .map(|(name, parts)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(name)
                .with_results_by_partition(
                    parts
                        .into_iter()
                        .map(|(p, own)| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(own.unwrap_or(outcome))
                        })
                        .collect(),
                )
        })
        .collect()
}

/// The broker form's `verify_only`: whether every partition is in the open transaction.
async fn verify(
    broker: &Broker,
    session: &Session,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    wanted: &[(i64, i32)],
) -> i16 {
    let txn = match broker.meta.txn(&session.cluster, transactional_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return codes::INVALID_PRODUCER_ID_MAPPING,
        Err(e) => return store_error_code(&e),
    };
    if txn.producer_id != producer_id {
        return codes::INVALID_PRODUCER_ID_MAPPING;
    }
    if txn.producer_epoch != epoch {
        return codes::PRODUCER_FENCED;
    }
    let enrolled = match broker.meta.txn_partitions(producer_id).await {
        Ok(p) => p,
        Err(e) => return store_error_code(&e),
    };
    let all = wanted.iter().all(|(t, p)| {
        enrolled
            .iter()
            .any(|e| e.topic_id == *t && e.partition == *p)
    });
    if txn.state == TxnState::Ongoing && all {
        codes::NONE
    } else {
        codes::INVALID_TXN_STATE
    }
}

pub async fn add_partitions_to_txn(
    broker: &Arc<Broker>,
    session: &Session,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let authz = broker.acls.authz(session).await;
    if version <= 3 {
        let results = add_partitions(
            broker,
            session,
            &authz,
            Adding {
                transactional_id: &req.v3_and_below_transactional_id,
                producer_id: req.v3_and_below_producer_id.0,
                epoch: req.v3_and_below_producer_epoch,
                verify_only: false,
                topics: &req.v3_and_below_topics,
            },
            version,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    // The batched form (v4+, KIP-890) that brokers send on behalf of producers.
    let mut out = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let results = add_partitions(
            broker,
            session,
            &authz,
            Adding {
                transactional_id: &t.transactional_id,
                producer_id: t.producer_id.0,
                epoch: t.producer_epoch,
                verify_only: t.verify_only,
                topics: &t.topics,
            },
            version,
        )
        .await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

pub async fn add_offsets_to_txn(
    broker: &Arc<Broker>,
    session: &Session,
    version: i16,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let authz = broker.acls.authz(session).await;
    let code = if let Err(code) = authz.check(
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        code
    } else if let Err(code) = authz.check(Operation::Read, ResourceType::Group, &req.group_id) {
        code
    } else {
        match broker
            .meta
            .add_txn_partitions(
                &session.cluster,
                &req.transactional_id,
                req.producer_id.0,
                req.producer_epoch,
                &[],
                now_ms(),
            )
            .await
        {
            Ok(Ok(())) => codes::NONE,
            Ok(Err(code)) => fenced_code(code, version, 2),
            Err(e) => store_error_code(&e),
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

pub async fn txn_offset_commit(
    broker: &Arc<Broker>,
    session: &Session,
    version: i16,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let authz = broker.acls.authz(session).await;
    let group = req.group_id.as_str();
    let refused = if let Err(code) = authz.check(
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        Some(code)
    } else if let Err(code) = authz.check(Operation::Read, ResourceType::Group, group) {
        Some(code)
    } else if !broker.membership.is_coordinator(&session.cluster, group) {
        Some(codes::NOT_COORDINATOR)
    } else if version >= 3 {
        // A zombie member of an older generation is fenced here (KIP-447).
        match broker.groups.commit_allowed(
            &session.cluster,
            group,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
        ) {
            codes::NONE => None,
            code => Some(code),
        }
    } else {
        None
    };
    let mut offsets = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let topic_refused = authz
            .check(Operation::Read, ResourceType::Topic, &t.name)
            .err();
        let meta = if refused.is_none() && topic_refused.is_none() {
            broker.topics.get(&session.cluster, &t.name).await
        } else {
            Ok(None)
        };
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let code = if let Some(code) = refused.or(topic_refused) {
                code
            } else if let Some(code) = super::groups::commit_refusal(
                p.committed_metadata.as_deref(),
                p.committed_offset,
                &meta,
                p.partition_index,
            ) {
                code
            } else {
                offsets.push((
                    topics.len(),
                    parts.len(),
                    TxnOffset {
                        topic: t.name.to_string(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    },
                ));
                codes::NONE
            };
            parts.push(
                TxnOffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        topics.push(
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(parts),
        );
    }
    if !offsets.is_empty() {
        let list: Vec<TxnOffset> = offsets.iter().map(|(_, _, o)| o.clone()).collect();
        let code = match broker
            .meta
            .txn_offset_commit(
                &session.cluster,
                &req.transactional_id,
                req.producer_id.0,
                req.producer_epoch,
                group,
                &list,
            )
            .await
        {
            Ok(Ok(())) => codes::NONE,
            Ok(Err(code)) => fenced_code(code, version, 3),
            Err(e) => store_error_code(&e),
        };
        if code != codes::NONE {
            for (t, p, _) in &offsets {
                topics[*t].partitions[*p].error_code = code;
            }
        }
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}

pub async fn end_txn(
    broker: &Arc<Broker>,
    session: &Session,
    version: i16,
    req: EndTxnRequest,
) -> EndTxnResponse {
    let authz = broker.acls.authz(session).await;
    if let Err(code) = authz.check(
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        return EndTxnResponse::default().with_error_code(code);
    }
    let txn = TxnInfo {
        cluster: session.cluster.clone(),
        transactional_id: req.transactional_id.to_string(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        state: TxnState::Ongoing,
        timeout_ms: 0,
        started_at_ms: 0,
    };
    let code = match crate::txn::end(broker, &txn, req.committed, req.producer_epoch).await {
        Ok(()) => codes::NONE,
        Err(code) => fenced_code(code, version, 2),
    };
    EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id(req.producer_id)
        .with_producer_epoch(req.producer_epoch)
}

pub async fn list_transactions(
    broker: &Arc<Broker>,
    session: &Session,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let authz = broker.acls.authz(session).await;
    let known = ["Empty", "Ongoing", "CompleteCommit", "CompleteAbort"];
    let unknown: Vec<StrBytes> = req
        .state_filters
        .iter()
        .filter(|f| !known.contains(&f.as_str()))
        .cloned()
        .collect();
    let all = match broker.meta.txns(&session.cluster).await {
        Ok(t) => t,
        Err(e) => return ListTransactionsResponse::default().with_error_code(store_error_code(&e)),
    };
    let now = now_ms();
    let pattern = req
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(|p| regex::RegexBuilder::new(p).size_limit(1 << 20).build());
    let pattern = match pattern {
        Some(Ok(re)) => Some(re),
        Some(Err(_)) => {
            return ListTransactionsResponse::default().with_error_code(codes::INVALID_REQUEST)
        }
        None => None,
    };
    let states = all
        .into_iter()
        .filter(|t| {
            authz.allows(
                Operation::Describe,
                ResourceType::TransactionalId,
                &t.transactional_id,
            )
        })
        .filter(|t| {
            req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == t.state.as_str())
        })
        .filter(|t| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.iter().any(|p| p.0 == t.producer_id)
        })
        // Only open transactions have a duration (KIP-994).
        .filter(|t| {
            req.duration_filter < 0
                || (t.state == TxnState::Ongoing && now - t.started_at_ms >= req.duration_filter)
        })
        .filter(|t| {
            pattern
                .as_ref()
                .is_none_or(|re| re.is_match(&t.transactional_id))
        })
        .map(|t| {
            ListedTxn::default()
                .with_transactional_id(TransactionalId(s(t.transactional_id)))
                .with_producer_id(t.producer_id.into())
                .with_transaction_state(s(t.state.as_str()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}

pub async fn describe_transactions(
    broker: &Arc<Broker>,
    session: &Session,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let authz = broker.acls.authz(session).await;
    let mut out = Vec::with_capacity(req.transactional_ids.len());
    for id in req.transactional_ids {
        let base = DescribedTxn::default()
            .with_transactional_id(id.clone())
            .with_producer_id((-1).into())
            .with_producer_epoch(-1)
            .with_transaction_start_time_ms(-1);
        if let Err(code) = authz.check(Operation::Describe, ResourceType::TransactionalId, &id) {
            out.push(base.with_error_code(code));
            continue;
        }
        let txn = match broker.meta.txn(&session.cluster, &id).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                out.push(base.with_error_code(codes::TRANSACTIONAL_ID_NOT_FOUND));
                continue;
            }
            Err(e) => {
                out.push(base.with_error_code(store_error_code(&e)));
                continue;
            }
        };
        let mut topics: Vec<TopicData> = Vec::new();
        if txn.state == TxnState::Ongoing {
            match broker.meta.txn_partitions(txn.producer_id).await {
                Ok(parts) => {
                    for p in parts {
                        match topics.last_mut() {
                            Some(t) if t.topic.as_str() == p.topic_name => {
                                t.partitions.push(p.partition)
                            }
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(s(p.topic_name)))
                                    .with_partitions(vec![p.partition]),
                            ),
                        }
                    }
                }
                Err(e) => {
                    out.push(base.with_error_code(store_error_code(&e)));
                    continue;
                }
            }
        }
        out.push(
            base.with_transaction_state(s(txn.state.as_str()))
                .with_transaction_timeout_ms(txn.timeout_ms.min(i32::MAX as i64) as i32)
                .with_transaction_start_time_ms(if txn.state == TxnState::Ongoing {
                    txn.started_at_ms
                } else {
                    -1
                })
                .with_producer_id(txn.producer_id.into())
                .with_producer_epoch(txn.producer_epoch)
                .with_topics(topics),
        );
    }
    DescribeTransactionsResponse::default().with_transaction_states(out)
}

pub async fn describe_producers(
    broker: &Arc<Broker>,
    session: &Session,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let authz = broker.acls.authz(session).await;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let refused = authz
            .check(Operation::Read, ResourceType::Topic, &t.name)
            .err();
        let meta = match refused {
            Some(_) => Ok(None),
            None => broker.topics.get(&session.cluster, &t.name).await,
        };
        let mut parts = Vec::with_capacity(t.partition_indexes.len());
        for p in t.partition_indexes {
            let base = PartitionResponse::default().with_partition_index(p);
            let topic = match (&refused, &meta) {
                (Some(code), _) => {
                    parts.push(base.with_error_code(*code));
                    continue;
                }
                (None, Ok(Some(m))) if p >= 0 && p < m.partitions => m.id,
                (None, Err(e)) => {
                    parts.push(base.with_error_code(store_error_code(e)));
                    continue;
                }
                (None, _) => {
                    parts.push(base.with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION));
                    continue;
                }
            };
            match broker.meta.partition_producers(topic, p).await {
                Ok(list) => parts.push(
                    base.with_active_producers(
                        list.into_iter()
                            .map(|(pid, epoch, seq, at, first)| {
                                ProducerState::default()
                                    .with_producer_id(pid.into())
                                    .with_producer_epoch(epoch as i32)
                                    .with_last_sequence(seq)
                                    .with_last_timestamp(at)
                                    .with_coordinator_epoch(0)
                                    .with_current_txn_start_offset(first)
                            })
                            .collect(),
                    ),
                ),
                Err(e) => parts.push(base.with_error_code(store_error_code(&e))),
            }
        }
        topics.push(
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(parts),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_clients_are_told_of_fencing_in_their_terms() {
        assert_eq!(
            fenced_code(codes::PRODUCER_FENCED, 1, 2),
            codes::INVALID_PRODUCER_EPOCH
        );
        assert_eq!(
            fenced_code(codes::PRODUCER_FENCED, 2, 2),
            codes::PRODUCER_FENCED
        );
        assert_eq!(
            fenced_code(codes::INVALID_TXN_STATE, 0, 2),
            codes::INVALID_TXN_STATE
        );
    }
}
