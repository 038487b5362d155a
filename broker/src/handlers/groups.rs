//! Consumer-group APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::store_error_code;
use crate::acl::{Authz, Operation, ResourceType};
use crate::codes;
use crate::groups::state::Join;
use crate::session::Session;
use crate::state::Broker;
use crate::store::{CommittedOffset, StoreError, TopicMeta};

/// The connection's right to `op` on a group, as the group APIs answer a refusal.
fn check_group(authz: &Authz, op: Operation, group: &str) -> Result<(), i16> {
    authz.check(op, ResourceType::Group, group)
}

/// Longest metadata string stored with a committed offset (Kafka's default).
const MAX_OFFSET_METADATA: usize = 4096;
/// "Authorized operations not requested".
const NO_OPERATIONS: i32 = i32::MIN;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// Whether this agent coordinates `group`. Group requests that reach another agent get
/// NOT_COORDINATOR, so the client looks the coordinator up again (FindCoordinator gives
/// the same agent from every agent).
fn coordinated_here(broker: &Broker, session: &Session, group: &str) -> bool {
    broker.membership.is_coordinator(&session.cluster, group)
}

pub async fn join_group(
    broker: &Arc<Broker>,
    session: &Session,
    client_id: &str,
    version: i16,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let authz = broker.acls.authz(session).await;
    if let Err(code) = check_group(&authz, Operation::Read, &req.group_id) {
        return JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1);
    }
    if req.group_id.is_empty() {
        return JoinGroupResponse::default()
            .with_error_code(codes::INVALID_GROUP_ID)
            .with_generation_id(-1);
    }
    if !coordinated_here(broker, session, &req.group_id) {
        return JoinGroupResponse::default()
            .with_error_code(codes::NOT_COORDINATOR)
            .with_generation_id(-1);
    }
    let join = Join {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client_id.to_string(),
        client_host: format!(
            "/{}",
            session
                .peer
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or(&session.peer)
        ),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        member_id_required: version >= 4,
    };
    let a = broker
        .groups
        .join(&session.cluster, &req.group_id, join)
        .await;
    let mut resp = JoinGroupResponse::default()
        .with_error_code(a.error)
        .with_generation_id(a.generation)
        .with_leader(s(a.leader))
        .with_member_id(s(a.member_id))
        .with_members(
            a.members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(id))
                        .with_group_instance_id(if version >= 5 { instance.map(s) } else { None })
                        .with_metadata(metadata)
                })
                .collect(),
        );
    // protocol_name is nullable only from v7; older versions need a string.
    resp.protocol_name = if version >= 7 {
        a.protocol.map(s)
    } else {
        Some(s(a.protocol.unwrap_or_default()))
    };
    if version >= 7 {
        resp.protocol_type = a.protocol_type.map(s);
    }
    resp
}

pub async fn sync_group(
    broker: &Arc<Broker>,
    session: &Session,
    version: i16,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    let authz = broker.acls.authz(session).await;
    if let Err(code) = check_group(&authz, Operation::Read, &req.group_id) {
        return SyncGroupResponse::default().with_error_code(code);
    }
    if !coordinated_here(broker, session, &req.group_id) {
        return SyncGroupResponse::default().with_error_code(codes::NOT_COORDINATOR);
    }
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let a = broker
        .groups
        .sync(
            &session.cluster,
            &req.group_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
            assignments,
        )
        .await;
    let mut resp = SyncGroupResponse::default()
        .with_error_code(a.error)
        .with_assignment(a.assignment);
    if version >= 5 {
        resp.protocol_type = a.protocol_type.map(s);
        resp.protocol_name = a.protocol.map(s);
    }
    resp
}

pub fn heartbeat(
    broker: &Broker,
    session: &Session,
    authz: &Authz,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    if let Err(code) = check_group(authz, Operation::Read, &req.group_id) {
        return HeartbeatResponse::default().with_error_code(code);
    }
    if !coordinated_here(broker, session, &req.group_id) {
        return HeartbeatResponse::default().with_error_code(codes::NOT_COORDINATOR);
    }
    let code = broker.groups.heartbeat(
        &session.cluster,
        &req.group_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(code)
}

pub fn leave_group(
    broker: &Broker,
    session: &Session,
    authz: &Authz,
    version: i16,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    if let Err(code) = check_group(authz, Operation::Read, &req.group_id) {
        return LeaveGroupResponse::default().with_error_code(code);
    }
    if !coordinated_here(broker, session, &req.group_id) {
        return LeaveGroupResponse::default().with_error_code(codes::NOT_COORDINATOR);
    }
    if version < 3 {
        let code = broker.groups.leave(
            &session.cluster,
            &req.group_id,
            &[(req.member_id.to_string(), None)],
        )[0];
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members: Vec<(String, Option<String>)> = req
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|s| s.to_string()),
            )
        })
        .collect();
    let results = broker
        .groups
        .leave(&session.cluster, &req.group_id, &members);
    LeaveGroupResponse::default().with_members(
        req.members
            .into_iter()
            .zip(results)
            .map(|(m, code)| {
                MemberResponse::default()
                    .with_member_id(m.member_id)
                    .with_group_instance_id(m.group_instance_id)
                    .with_error_code(code)
            })
            .collect(),
    )
}

/// Why one partition's offset is not stored (OffsetCommit and TxnOffsetCommit share the
/// rules), or None to store it. `topic` is the partition's topic as looked up.
pub(super) fn commit_refusal(
    metadata: Option<&str>,
    offset: i64,
    topic: &Result<Option<Arc<TopicMeta>>, StoreError>,
    partition: i32,
) -> Option<i16> {
    if metadata.is_some_and(|m| m.len() > MAX_OFFSET_METADATA) {
        return Some(codes::OFFSET_METADATA_TOO_LARGE);
    }
    if offset < 0 {
        // No client commits a negative position (the Java client refuses to build one);
        // stored, it would turn lag into nonsense (i64::MIN: -9.2e18).
        return Some(codes::OFFSET_OUT_OF_RANGE);
    }
    match topic {
        Ok(Some(meta)) if (0..meta.partitions).contains(&partition) => None,
        Ok(_) => Some(codes::UNKNOWN_TOPIC_OR_PARTITION),
        Err(e) => Some(store_error_code(e)),
    }
}

pub async fn offset_commit(
    broker: &Arc<Broker>,
    session: &Session,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let authz = broker.acls.authz(session).await;
    let allowed = if let Err(code) = check_group(&authz, Operation::Read, &req.group_id) {
        code
    } else if coordinated_here(broker, session, &req.group_id) {
        broker.groups.commit_allowed(
            &session.cluster,
            &req.group_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id_or_member_epoch,
        )
    } else {
        codes::NOT_COORDINATOR
    };
    let mut to_store = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let topic_refused = authz
            .check(Operation::Read, ResourceType::Topic, &t.name)
            .err();
        let topic = if allowed == codes::NONE && topic_refused.is_none() {
            broker.topics.get(&session.cluster, &t.name).await
        } else {
            Ok(None)
        };
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let code = if req.group_id.is_empty() {
                codes::INVALID_GROUP_ID
            } else if allowed != codes::NONE {
                allowed
            } else if let Some(code) = topic_refused {
                code
            } else if let Some(code) = commit_refusal(
                p.committed_metadata.as_deref(),
                p.committed_offset,
                &topic,
                p.partition_index,
            ) {
                code
            } else {
                to_store.push((
                    topics.len(),
                    parts.len(),
                    CommittedOffset {
                        topic: t.name.to_string(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_time_ms: 0,
                    },
                ));
                codes::NONE
            };
            parts.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(parts),
        );
    }
    if !to_store.is_empty() {
        let offsets: Vec<CommittedOffset> = to_store.iter().map(|(_, _, o)| o.clone()).collect();
        if let Err(e) = broker
            .meta
            .commit_offsets(&session.cluster, &req.group_id, &offsets)
            .await
        {
            let code = store_error_code(&e);
            for (t, p, _) in &to_store {
                topics[*t].partitions[*p].error_code = code;
            }
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// One partition's answer: partition, offset, leader epoch, metadata, error code.
type FetchedOffset = (i32, i64, i32, Option<String>, i16);

/// Committed offsets of one group, for the requested partitions (None = all).
async fn fetch_group(
    broker: &Broker,
    session: &Session,
    group: &str,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Vec<(TopicName, Vec<FetchedOffset>)>, i16> {
    let authz = broker.acls.authz(session).await;
    check_group(&authz, Operation::Describe, group)?;
    if !coordinated_here(broker, session, group) {
        return Err(codes::NOT_COORDINATOR);
    }
    let stored = broker
        .meta
        .group_offsets(&session.cluster, group)
        .await
        .map_err(|e| store_error_code(&e))?;
    // With require_stable (read_committed consumers, KIP-447), offsets an open
    // transaction holds are answered UNSTABLE_OFFSET_COMMIT: the client retries.
    let pending: std::collections::HashSet<(String, i32)> = if require_stable {
        broker
            .meta
            .pending_txn_offsets(&session.cluster, group)
            .await
            .map_err(|e| store_error_code(&e))?
            .into_iter()
            .collect()
    } else {
        Default::default()
    };
    let code_of = |topic: &str, p: i32| {
        if pending.contains(&(topic.to_string(), p)) {
            codes::UNSTABLE_OFFSET_COMMIT
        } else {
            codes::NONE
        }
    };
    let mut by_topic: BTreeMap<String, HashMap<i32, CommittedOffset>> = BTreeMap::new();
    // Offsets of topics the key may not describe are left out: asked for, they read as
    // not committed (-1).
    for o in stored {
        if !authz.allows(Operation::Describe, ResourceType::Topic, &o.topic) {
            continue;
        }
        by_topic
            .entry(o.topic.clone())
            .or_default()
            .insert(o.partition, o);
    }
    let result = match wanted {
        Some(list) => list
            .into_iter()
            .map(|(name, parts)| {
                let known = by_topic.get(name.as_str());
                let rows = parts
                    .into_iter()
                    .map(
                        |p| match (code_of(name.as_str(), p), known.and_then(|k| k.get(&p))) {
                            (codes::NONE, Some(o)) => {
                                (p, o.offset, o.leader_epoch, o.metadata.clone(), codes::NONE)
                            }
                            (code, _) => (p, -1, -1, Some(String::new()), code),
                        },
                    )
                    .collect();
                (name, rows)
            })
            .collect(),
        None => by_topic
            .into_iter()
            .map(|(topic, parts)| {
                let mut rows: Vec<_> = parts
                    .into_values()
                    .map(|o| match code_of(&topic, o.partition) {
                        codes::NONE => (
                            o.partition,
                            o.offset,
                            o.leader_epoch,
                            o.metadata,
                            codes::NONE,
                        ),
                        code => (o.partition, -1, -1, Some(String::new()), code),
                    })
                    .collect();
                rows.sort_by_key(|r| r.0);
                (TopicName(s(topic)), rows)
            })
            .collect(),
    };
    Ok(result)
}

pub async fn offset_fetch(
    broker: &Arc<Broker>,
    session: &Session,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name, t.partition_indexes))
                    .collect()
            });
            let mut out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            match fetch_group(broker, session, &g.group_id, wanted, req.require_stable).await {
                Ok(topics) => {
                    out.topics = topics
                        .into_iter()
                        .map(|(name, rows)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(
                                    rows.into_iter()
                                        .map(|(p, offset, epoch, md, code)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_error_code(code)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(md.map(s))
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                }
                Err(code) => out.error_code = code,
            }
            groups.push(out);
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    match fetch_group(broker, session, &req.group_id, wanted, req.require_stable).await {
        Ok(topics) => OffsetFetchResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(name, rows)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            rows.into_iter()
                                .map(|(p, offset, epoch, md, code)| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(code)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(if version >= 5 {
                                            epoch
                                        } else {
                                            -1
                                        })
                                        .with_metadata(md.map(s))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
        Err(code) if version >= 2 => OffsetFetchResponse::default().with_error_code(code),
        Err(_) => OffsetFetchResponse::default(),
    }
}

pub async fn list_groups(
    broker: &Arc<Broker>,
    session: &Session,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    // DESCRIBE on the cluster lists every group; otherwise only describable ones.
    let authz = broker.acls.authz(session).await;
    let all = authz.check_cluster(Operation::Describe).is_ok();
    let may_list = |g: &str| all || authz.allows(Operation::Describe, ResourceType::Group, g);
    let mut listed: BTreeMap<String, (String, String)> = BTreeMap::new();
    match broker.meta.groups_with_offsets(&session.cluster).await {
        Ok(groups) => {
            for g in groups {
                // Known only by its offsets: an empty consumer group, as Kafka lists it.
                listed.insert(g, ("Empty".to_string(), "consumer".to_string()));
            }
        }
        Err(e) => return ListGroupsResponse::default().with_error_code(store_error_code(&e)),
    }
    for (g, phase, protocol_type) in broker.groups.list(&session.cluster) {
        let protocol_type = if protocol_type.is_empty() {
            "consumer".to_string()
        } else {
            protocol_type
        };
        listed.insert(g, (phase.name().to_string(), protocol_type));
    }
    let wanted_state = |st: &str| {
        req.states_filter.is_empty() || req.states_filter.iter().any(|f| f.eq_ignore_ascii_case(st))
    };
    let wanted_type = |_t: &str| {
        req.types_filter.is_empty()
            || req
                .types_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case("classic"))
    };
    ListGroupsResponse::default().with_groups(
        listed
            .into_iter()
            .filter(|(g, (st, t))| may_list(g) && wanted_state(st) && wanted_type(t))
            .map(|(g, (st, t))| {
                ListedGroup::default()
                    .with_group_id(GroupId(s(g)))
                    .with_protocol_type(s(t))
                    .with_group_state(s(st))
                    .with_group_type(StrBytes::from_static_str("classic"))
            })
            .collect(),
    )
}

pub async fn describe_groups(
    broker: &Arc<Broker>,
    session: &Session,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let authz = broker.acls.authz(session).await;
    let mut groups = Vec::with_capacity(req.groups.len());
    for g in req.groups {
        let mut d = DescribedGroup::default()
            .with_group_id(g.clone())
            .with_authorized_operations(NO_OPERATIONS);
        if let Err(code) = check_group(&authz, Operation::Describe, &g) {
            groups.push(d.with_error_code(code));
            continue;
        }
        match broker.groups.describe(&session.cluster, &g) {
            Some(view) => {
                d = d
                    .with_group_state(s(view.phase.name()))
                    .with_protocol_type(s(view.protocol_type))
                    .with_protocol_data(s(view.protocol))
                    .with_members(
                        view.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(s(m.member_id))
                                    .with_group_instance_id(m.instance_id.map(s))
                                    .with_client_id(s(m.client_id))
                                    .with_client_host(s(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    );
            }
            None => {
                // Kafka describes an unknown group as Dead, and one with only offsets as Empty.
                let has_offsets = broker
                    .meta
                    .group_offsets(&session.cluster, &g)
                    .await
                    .map(|o| !o.is_empty())
                    .unwrap_or(false);
                d = if has_offsets {
                    d.with_group_state(s("Empty"))
                        .with_protocol_type(s("consumer"))
                } else {
                    d.with_group_state(s("Dead"))
                };
            }
        }
        groups.push(d);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(
    broker: &Arc<Broker>,
    session: &Session,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let authz = broker.acls.authz(session).await;
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in req.groups_names {
        let code = match check_group(&authz, Operation::Delete, &g)
            .and_then(|()| broker.groups.forget_if_empty(&session.cluster, &g))
        {
            Err(code) => code,
            Ok(known) => match broker
                .meta
                .delete_group_offsets(&session.cluster, &g, None)
                .await
            {
                Ok(0) if !known => codes::GROUP_ID_NOT_FOUND,
                Ok(_) => codes::NONE,
                Err(e) => store_error_code(&e),
            },
        };
        results.push(
            kafka_protocol::messages::delete_groups_response::DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// Topics the live members of a group subscribe to (consumer protocol only).
fn subscribed_topics(broker: &Broker, session: &Session, group: &str) -> Vec<String> {
    broker
        .groups
        .describe(&session.cluster, group)
        .map(|view| view.subscribed_topics())
        .unwrap_or_default()
}

pub async fn offset_delete(
    broker: &Arc<Broker>,
    session: &Session,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let authz = broker.acls.authz(session).await;
    if let Err(code) = check_group(&authz, Operation::Delete, &req.group_id) {
        return OffsetDeleteResponse::default().with_error_code(code);
    }
    let offsets = match broker
        .meta
        .group_offsets(&session.cluster, &req.group_id)
        .await
    {
        Ok(o) => o,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(store_error_code(&e)),
    };
    let live = broker
        .groups
        .describe(&session.cluster, &req.group_id)
        .is_some_and(|v| !v.members.is_empty());
    if offsets.is_empty() && !live {
        return OffsetDeleteResponse::default().with_error_code(codes::GROUP_ID_NOT_FOUND);
    }
    let subscribed = subscribed_topics(broker, session, &req.group_id);
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let in_use = subscribed.iter().any(|x| x == t.name.as_str());
        let partitions: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        let code = if let Err(code) = authz.check(Operation::Read, ResourceType::Topic, &t.name) {
            code
        } else if in_use {
            codes::GROUP_SUBSCRIBED_TO_TOPIC
        } else {
            match broker
                .meta
                .delete_group_offsets(
                    &session.cluster,
                    &req.group_id,
                    Some((&t.name, &partitions)),
                )
                .await
            {
                Ok(_) => codes::NONE,
                Err(e) => store_error_code(&e),
            }
        };
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect(),
                ),
        );
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
