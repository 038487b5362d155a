//! Request handlers, one module per family of APIs.
//!
//! [`dispatch`] runs a handler's first stage in arrival order and returns the rest as a
//! future; only produce uses the first stage (to append in order), every other API runs
//! entirely in the returned future.

pub mod acls;
pub mod admin;
pub mod fetch;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod quotas;
pub mod txn;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use crate::codes;
use crate::gate::Permit;
use crate::protocol::Splices;
use crate::quota::Throttle;
use crate::session::Session;
use crate::state::Broker;
use crate::store::StoreError;

/// Maps a store failure to the code a client sees, logging the cause once.
pub fn store_error_code(e: &StoreError) -> i16 {
    match e {
        StoreError::TopicExists(_) => codes::TOPIC_ALREADY_EXISTS,
        StoreError::AlreadyExists(_) => codes::INVALID_REQUEST,
        StoreError::UnknownTopic(_) => codes::UNKNOWN_TOPIC_OR_PARTITION,
        StoreError::InvalidPartitions(_) => codes::INVALID_PARTITIONS,
        // The connection's cluster was deleted (the connection is closed within seconds).
        StoreError::UnknownCluster(_) => codes::CLUSTER_AUTHORIZATION_FAILED,
        other => {
            tracing::error!(error = %other, "metadata store failed");
            codes::KAFKA_STORAGE_ERROR
        }
    }
}

fn ready(r: ResponseKind) -> BoxFuture<'static, Option<ResponseKind>> {
    futures::future::ready(Some(r)).boxed()
}

/// A response with the gate bytes it holds until it is written.
pub struct Reply {
    pub response: ResponseKind,
    pub permit: Option<Permit>,
    /// Set when a client quota throttles the connection (see [`crate::quota`]).
    pub throttle: Option<Throttle>,
    /// Record sets that go into the frame without a copy (a fetch's).
    pub splices: Splices,
}

/// The throttle a quota put on a Produce or Fetch answer. Clients from Produce v6 and
/// Fetch v8 back off by themselves (KIP-219): their answer goes at once and the
/// connection is muted; older ones get the answer after the throttle time.
fn throttle_of(response: &ResponseKind, version: i16) -> Option<Throttle> {
    let (ms, delay) = match response {
        ResponseKind::Produce(r) => (r.throttle_time_ms, version < 6),
        ResponseKind::Fetch(r) => (r.throttle_time_ms, version < 8),
        _ => return None,
    };
    (ms > 0).then(|| Throttle {
        time: std::time::Duration::from_millis(ms as u64),
        delay,
    })
}

/// Starts handling a request: the first stage runs now, the rest in the returned future.
pub async fn dispatch(
    broker: &Arc<Broker>,
    session: &Session,
    header: &RequestHeader,
    body: RequestKind,
) -> BoxFuture<'static, Option<Reply>> {
    if let RequestKind::Fetch(req) = body {
        let (b, s, version) = (broker.clone(), session.clone(), header.request_api_version);
        return async move {
            let (response, splices, permit) = fetch::fetch(&b, &s, version, req).await;
            let response = ResponseKind::Fetch(response);
            Some(Reply {
                throttle: throttle_of(&response, version),
                response,
                permit: Some(permit),
                splices,
            })
        }
        .boxed();
    }
    let version = header.request_api_version;
    dispatch_plain(broker, session, header, body)
        .await
        .map(move |r| {
            r.map(|response| Reply {
                throttle: throttle_of(&response, version),
                response,
                permit: None,
                splices: Splices::default(),
            })
        })
        .boxed()
}

async fn dispatch_plain(
    broker: &Arc<Broker>,
    session: &Session,
    header: &RequestHeader,
    body: RequestKind,
) -> BoxFuture<'static, Option<ResponseKind>> {
    let version = header.request_api_version;
    let b = broker.clone();
    let s = session.clone();
    match body {
        RequestKind::Produce(req) => produce::produce(broker, session, version, req).await,
        RequestKind::ApiVersions(_) => ready(ResponseKind::ApiVersions(metadata::api_versions())),
        RequestKind::Metadata(req) => {
            let client_id = header.client_id.as_deref().unwrap_or("").to_string();
            async move {
                Some(ResponseKind::Metadata(
                    metadata::metadata(&b, &s, &client_id, version, req).await,
                ))
            }
            .boxed()
        }
        RequestKind::FindCoordinator(req) => {
            let authz = broker.acls.authz(session).await;
            ready(ResponseKind::FindCoordinator(metadata::find_coordinator(
                broker, session, &authz, version, req,
            )))
        }
        RequestKind::JoinGroup(req) => {
            let client_id = header
                .client_id
                .as_deref()
                .map(|c| c.to_string())
                .unwrap_or_default();
            async move {
                Some(ResponseKind::JoinGroup(
                    groups::join_group(&b, &s, &client_id, version, req).await,
                ))
            }
            .boxed()
        }
        RequestKind::SyncGroup(req) => async move {
            Some(ResponseKind::SyncGroup(
                groups::sync_group(&b, &s, version, req).await,
            ))
        }
        .boxed(),
        RequestKind::Heartbeat(req) => {
            let authz = broker.acls.authz(session).await;
            ready(ResponseKind::Heartbeat(groups::heartbeat(
                broker, session, &authz, req,
            )))
        }
        RequestKind::LeaveGroup(req) => {
            let authz = broker.acls.authz(session).await;
            ready(ResponseKind::LeaveGroup(groups::leave_group(
                broker, session, &authz, version, req,
            )))
        }
        // Committed here, in the connection's arrival order, not detached: two commits in
        // flight on one connection must land in the order they were sent, or an older
        // offset could overwrite a newer one (as Kafka, which serves a connection's
        // requests one at a time).
        RequestKind::OffsetCommit(req) => ready(ResponseKind::OffsetCommit(
            groups::offset_commit(&b, &s, req).await,
        )),
        RequestKind::OffsetFetch(req) => async move {
            Some(ResponseKind::OffsetFetch(
                groups::offset_fetch(&b, &s, version, req).await,
            ))
        }
        .boxed(),
        RequestKind::ListGroups(req) => async move {
            Some(ResponseKind::ListGroups(
                groups::list_groups(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::DescribeGroups(req) => async move {
            Some(ResponseKind::DescribeGroups(
                groups::describe_groups(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::DeleteGroups(req) => async move {
            Some(ResponseKind::DeleteGroups(
                groups::delete_groups(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::OffsetDelete(req) => async move {
            Some(ResponseKind::OffsetDelete(
                groups::offset_delete(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::DescribeCluster(_) => ready(ResponseKind::DescribeCluster(
            metadata::describe_cluster(broker, session),
        )),
        RequestKind::ListOffsets(req) => async move {
            Some(ResponseKind::ListOffsets(
                offsets::list_offsets(&b, &s, version, req).await,
            ))
        }
        .boxed(),
        RequestKind::InitProducerId(req) => async move {
            Some(ResponseKind::InitProducerId(
                produce::init_producer_id(&b, &s, version, req).await,
            ))
        }
        .boxed(),
        RequestKind::CreateTopics(req) => async move {
            Some(ResponseKind::CreateTopics(
                admin::create_topics(&b, &s, version, req).await,
            ))
        }
        .boxed(),
        RequestKind::DeleteTopics(req) => async move {
            Some(ResponseKind::DeleteTopics(
                admin::delete_topics(&b, &s, version, req).await,
            ))
        }
        .boxed(),
        RequestKind::CreatePartitions(req) => async move {
            Some(ResponseKind::CreatePartitions(
                admin::create_partitions(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::DescribeConfigs(req) => async move {
            Some(ResponseKind::DescribeConfigs(
                admin::describe_configs(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::AlterConfigs(req) => async move {
            Some(ResponseKind::AlterConfigs(
                admin::alter_configs(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::IncrementalAlterConfigs(req) => async move {
            Some(ResponseKind::IncrementalAlterConfigs(
                admin::incremental_alter_configs(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::CreateAcls(req) => async move {
            Some(ResponseKind::CreateAcls(
                acls::create_acls(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::DescribeAcls(req) => async move {
            Some(ResponseKind::DescribeAcls(
                acls::describe_acls(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::DeleteAcls(req) => async move {
            Some(ResponseKind::DeleteAcls(
                acls::delete_acls(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::DescribeClientQuotas(req) => async move {
            Some(ResponseKind::DescribeClientQuotas(
                quotas::describe_client_quotas(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::AlterClientQuotas(req) => async move {
            Some(ResponseKind::AlterClientQuotas(
                quotas::alter_client_quotas(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::AddPartitionsToTxn(req) => async move {
            Some(ResponseKind::AddPartitionsToTxn(
                txn::add_partitions_to_txn(&b, &s, version, req).await,
            ))
        }
        .boxed(),
        RequestKind::AddOffsetsToTxn(req) => async move {
            Some(ResponseKind::AddOffsetsToTxn(
                txn::add_offsets_to_txn(&b, &s, version, req).await,
            ))
        }
        .boxed(),
        RequestKind::TxnOffsetCommit(req) => async move {
            Some(ResponseKind::TxnOffsetCommit(
                txn::txn_offset_commit(&b, &s, version, req).await,
            ))
        }
        .boxed(),
        RequestKind::EndTxn(req) => async move {
            Some(ResponseKind::EndTxn(
                txn::end_txn(&b, &s, version, req).await,
            ))
        }
        .boxed(),
        RequestKind::ListTransactions(req) => async move {
            Some(ResponseKind::ListTransactions(
                txn::list_transactions(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::DescribeTransactions(req) => async move {
            Some(ResponseKind::DescribeTransactions(
                txn::describe_transactions(&b, &s, req).await,
            ))
        }
        .boxed(),
        RequestKind::DescribeProducers(req) => async move {
            Some(ResponseKind::DescribeProducers(
                txn::describe_producers(&b, &s, req).await,
            ))
        }
        .boxed(),
        other => {
            // decode_request only lets advertised APIs through, so this is a bug, not input.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for an advertised api");
            futures::future::ready(None).boxed()
        }
    }
}
