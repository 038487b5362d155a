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
use crate::acl::{Authz, Operation, ResourceType};
use crate::codes;
use crate::membership::Membership;
use crate::protocol::SUPPORTED;
use crate::session::{Listener, Session};
use crate::state::Broker;
use crate::store::{AgentInfo, TopicMeta};
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

/// The zone a client asks to stay in: `sluice_az=NAME` anywhere in its `client.id`.
pub fn client_zone(client_id: &str) -> Option<&str> {
    let at = client_id.find("sluice_az=")? + "sluice_az=".len();
    let zone = &client_id[at..];
    let end = zone
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(zone.len());
    (end > 0).then(|| &zone[..end])
}

fn topic_entry(broker: &Broker, leaders: &[AgentInfo], t: &TopicMeta) -> MetadataResponseTopic {
    let uuid = t.uuid.to_string();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.uuid)
        .with_is_internal(crate::offsets_topic::is_internal(&t.name))
        .with_topic_authorized_operations(NO_OPERATIONS)
        .with_partitions(
            (0..t.partitions)
                .map(|p| {
                    let node = broker.membership.leader(leaders, &uuid, p);
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

/// Where a client that came in through `listener` reaches agent `a`: its TLS address for
/// TLS clients (Kafka's per-listener metadata), its plaintext one otherwise. An agent
/// without a TLS listener is named by its plaintext address: give every agent of a group
/// the same listeners.
fn address(a: &AgentInfo, listener: Listener) -> (StrBytes, i32) {
    match (listener, &a.tls_host, a.tls_port) {
        (Listener::Tls, Some(host), Some(port)) => (StrBytes::from_string(host.clone()), port),
        _ => (StrBytes::from_string(a.host.clone()), a.port),
    }
}

/// The controller clients send admin requests to: the live agent with the lowest id.
fn controller(broker: &Broker, brokers: &[AgentInfo]) -> i32 {
    brokers
        .iter()
        .map(|a| a.node_id)
        .min()
        .unwrap_or_else(|| broker.membership.node_id())
}

pub async fn metadata(
    broker: &Arc<Broker>,
    session: &Session,
    client_id: &str,
    version: i16,
    req: MetadataRequest,
) -> MetadataResponse {
    let brokers = broker.membership.brokers_for(client_zone(client_id));
    let leaders = Membership::leader_pool(&brokers);
    let mut resp = MetadataResponse::default()
        .with_brokers(
            brokers
                .iter()
                .map(|a| {
                    let (host, port) = address(a, session.listener);
                    MetadataResponseBroker::default()
                        .with_node_id(a.node_id.into())
                        .with_host(host)
                        .with_port(port)
                        .with_rack(a.rack.clone().map(StrBytes::from_string))
                })
                .collect(),
        )
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(controller(broker, &brokers).into())
        .with_cluster_authorized_operations(NO_OPERATIONS);
    let authz = broker.acls.authz(session).await;
    let may_describe = |name: &str| authz.allows(Operation::Describe, ResourceType::Topic, name);
    // v0 asks for all topics with an empty list; v1+ with a null one.
    let requested = match req.topics {
        Some(list) if !(version == 0 && list.is_empty()) => list,
        _ => {
            match broker.meta.list_topics(&session.cluster).await {
                Ok(all) => {
                    // Only the topics this key may describe are listed.
                    resp.topics = all
                        .iter()
                        .filter(|t| may_describe(&t.name))
                        .map(|t| topic_entry(broker, &leaders, t))
                        .collect()
                }
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
                    Ok(Some(found)) if may_describe(&found.name) => {
                        topic_entry(broker, &leaders, &found)
                    }
                    Ok(Some(_)) => MetadataResponseTopic::default()
                        .with_topic_id(t.topic_id)
                        .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED),
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
        let entry = if !may_describe(&by_name) {
            MetadataResponseTopic::default()
                .with_name(Some(by_name))
                .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
        } else if crate::topic_config::validate_topic_name(&by_name).is_err() {
            MetadataResponseTopic::default()
                .with_name(Some(by_name))
                .with_error_code(codes::INVALID_TOPIC_EXCEPTION)
        } else {
            match broker
                .topics
                .get_or_create(
                    &session.cluster,
                    &by_name,
                    allow_create && authz.may_create_topic(&by_name),
                )
                .await
            {
                Ok(TopicLookup::Found(found)) => topic_entry(broker, &leaders, &found),
                // Kafka's answer when auto-creation was refused for want of CREATE.
                Ok(TopicLookup::Missing) if allow_create && !authz.may_create_topic(&by_name) => {
                    MetadataResponseTopic::default()
                        .with_name(Some(by_name))
                        .with_error_code(codes::TOPIC_AUTHORIZATION_FAILED)
                }
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

pub fn describe_cluster(broker: &Broker, session: &Session) -> DescribeClusterResponse {
    let brokers = broker.membership.brokers_for(None);
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(controller(broker, &brokers).into())
        .with_cluster_authorized_operations(NO_OPERATIONS)
        .with_brokers(
            brokers
                .iter()
                .map(|a| {
                    let (host, port) = address(a, session.listener);
                    DescribeClusterBroker::default()
                        .with_broker_id(a.node_id.into())
                        .with_host(host)
                        .with_port(port)
                        .with_rack(a.rack.clone().map(StrBytes::from_string))
                })
                .collect(),
        )
}

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Names the coordinator of consumer groups: the live agent chosen by rendezvous hashing
/// of the group over the agents of this agent group, the same from every agent.
/// A transactional id's coordinator is chosen the same way (any agent could serve it:
/// its state is in the database).
pub fn find_coordinator(
    broker: &Broker,
    session: &Session,
    authz: &Authz,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    // What a key may not learn, by key type: groups and transactional ids are described
    // under their own ACL resources.
    let refusal = |key: &str| -> Option<(i16, &'static str)> {
        match req.key_type {
            KEY_TYPE_GROUP if !authz.allows(Operation::Describe, ResourceType::Group, key) => {
                Some((
                    codes::GROUP_AUTHORIZATION_FAILED,
                    "this key may not describe the group",
                ))
            }
            KEY_TYPE_TRANSACTION
                if !authz.allows(Operation::Describe, ResourceType::TransactionalId, key) =>
            {
                Some((
                    codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    "this key may not describe the transactional id",
                ))
            }
            KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => None,
            _ => Some((
                codes::INVALID_REQUEST,
                "unknown coordinator key type: 0 is a group, 1 a transactional id",
            )),
        }
    };
    if version < 4 {
        let resp = FindCoordinatorResponse::default();
        return match refusal(&req.key) {
            Some((code, message)) => resp
                .with_error_code(code)
                .with_error_message((version >= 1).then_some(StrBytes::from_static_str(message)))
                .with_node_id((-1).into())
                .with_port(-1),
            None => {
                let c = broker.membership.coordinator(&session.cluster, &req.key);
                let (host, port) = address(&c, session.listener);
                resp.with_node_id(c.node_id.into())
                    .with_host(host)
                    .with_port(port)
            }
        };
    }
    let coordinators = req
        .coordinator_keys
        .iter()
        .map(|key| {
            let c = Coordinator::default().with_key(key.clone());
            match refusal(key) {
                Some((code, message)) => c
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_static_str(message)))
                    .with_node_id((-1).into())
                    .with_port(-1),
                None => {
                    let chosen = broker.membership.coordinator(&session.cluster, key);
                    let (host, port) = address(&chosen, session.listener);
                    c.with_node_id(chosen.node_id.into())
                        .with_host(host)
                        .with_port(port)
                }
            }
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
