//! ApiVersions, Metadata and DescribeCluster.

use std::sync::Arc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, DescribeClusterResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::store_error_code;
use crate::codes;
use crate::protocol::SUPPORTED;
use crate::session::Session;
use crate::state::Broker;
use crate::store::TopicMeta;
use crate::topics::TopicLookup;

/// "Authorized operations not requested" in Kafka's encoding.
const NO_OPERATIONS: i32 = i32::MIN;

pub fn api_versions() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        SUPPORTED
            .iter()
            .map(|(key, min, max)| {
                ApiVersion::default()
                    .with_api_key(*key as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    )
}

fn topic_entry(broker: &Broker, t: &TopicMeta) -> MetadataResponseTopic {
    let node = broker.config.node_id;
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.uuid)
        .with_topic_authorized_operations(NO_OPERATIONS)
        .with_partitions(
            (0..t.partitions)
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(node.into())
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![node.into()])
                        .with_isr_nodes(vec![node.into()])
                })
                .collect(),
        )
}

pub async fn metadata(
    broker: &Arc<Broker>,
    session: &Session,
    version: i16,
    req: MetadataRequest,
) -> MetadataResponse {
    let node = broker.config.node_id;
    let (host, port) = &broker.advertised;
    let mut resp = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node.into())
            .with_host(StrBytes::from_string(host.clone()))
            .with_port(*port)])
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(node.into())
        .with_cluster_authorized_operations(NO_OPERATIONS);
    // v0 asks for all topics with an empty list; v1+ with a null one.
    let requested = match req.topics {
        Some(list) if !(version == 0 && list.is_empty()) => list,
        _ => {
            match broker.meta.list_topics(&session.cluster).await {
                Ok(all) => resp.topics = all.iter().map(|t| topic_entry(broker, t)).collect(),
                Err(e) => resp.error_code = store_error_code(&e),
            }
            return resp;
        }
    };
    // Kafka auto-creates from Metadata unless a v4+ client says not to.
    let allow_create = version < 4 || req.allow_auto_topic_creation;
    for t in requested {
        let by_name = match t.name {
            Some(name) => name,
            None => {
                // Asked by topic id (v10+).
                let entry = match broker
                    .meta
                    .topic_by_uuid(&session.cluster, t.topic_id)
                    .await
                {
                    Ok(Some(found)) => topic_entry(broker, &found),
                    Ok(None) => MetadataResponseTopic::default()
                        .with_topic_id(t.topic_id)
                        .with_error_code(codes::UNKNOWN_TOPIC_ID),
                    Err(e) => MetadataResponseTopic::default()
                        .with_topic_id(t.topic_id)
                        .with_error_code(store_error_code(&e)),
                };
                resp.topics.push(entry);
                continue;
            }
        };
        let entry = if crate::topic_config::validate_topic_name(&by_name).is_err() {
            MetadataResponseTopic::default()
                .with_name(Some(by_name))
                .with_error_code(codes::INVALID_TOPIC_EXCEPTION)
        } else {
            match broker
                .topic_or_create(&session.cluster, &by_name, allow_create)
                .await
            {
                Ok(TopicLookup::Found(found)) => topic_entry(broker, &found),
                Ok(TopicLookup::Missing) => MetadataResponseTopic::default()
                    .with_name(Some(by_name))
                    .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION),
                Err(e) => MetadataResponseTopic::default()
                    .with_name(Some(by_name))
                    .with_error_code(store_error_code(&e)),
            }
        };
        resp.topics.push(entry);
    }
    resp
}

pub fn describe_cluster(broker: &Broker) -> DescribeClusterResponse {
    let node = broker.config.node_id;
    let (host, port) = &broker.advertised;
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(node.into())
        .with_cluster_authorized_operations(NO_OPERATIONS)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(node.into())
            .with_host(StrBytes::from_string(host.clone()))
            .with_port(*port)])
}

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;

/// Names the coordinator of consumer groups: with one agent, that agent. (Several agents will
/// pick one by rendezvous hashing of the key over the live agents.) Transactions are not
/// served yet, so their coordinator is reported unavailable.
pub fn find_coordinator(
    broker: &Broker,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let node = broker.config.node_id;
    let (host, port) = &broker.advertised;
    let refusal = (req.key_type != KEY_TYPE_GROUP).then(|| {
        (
            codes::COORDINATOR_NOT_AVAILABLE,
            StrBytes::from_static_str(
                "only consumer-group coordinators are served; transactions are not supported yet",
            ),
        )
    });
    if version < 4 {
        let resp = FindCoordinatorResponse::default();
        return match refusal {
            Some((code, message)) => resp
                .with_error_code(code)
                .with_error_message((version >= 1).then_some(message))
                .with_node_id((-1).into())
                .with_port(-1),
            None => resp
                .with_node_id(node.into())
                .with_host(StrBytes::from_string(host.clone()))
                .with_port(*port),
        };
    }
    let coordinators = req
        .coordinator_keys
        .into_iter()
        .map(|key| {
            let c = Coordinator::default().with_key(key);
            match &refusal {
                Some((code, message)) => c
                    .with_error_code(*code)
                    .with_error_message(Some(message.clone()))
                    .with_node_id((-1).into())
                    .with_port(-1),
                None => c
                    .with_node_id(node.into())
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(*port),
            }
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
