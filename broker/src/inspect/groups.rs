//! Consumer groups: live membership from the coordinator merged with committed offsets
//! from the store, lag from the lag job, and offset resets.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{topic_not_found, InspectError};
use crate::groups::GroupView;
use crate::state::Broker;
use crate::store::{CommittedOffset, TopicMeta};

/// A consumer group as the group list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub group_id: String,
    /// "Stable", "PreparingRebalance", "CompletingRebalance" or "Empty" (also for groups
    /// known only by their committed offsets).
    pub state: String,
    pub members: usize,
    /// Topics with committed offsets or subscribed to by a live member, sorted.
    pub topics: Vec<String>,
    /// None when the group has committed no offset.
    pub total_offset_lag: Option<i64>,
    /// From the lag job's last pass; None before it has seen the group.
    pub max_time_lag_seconds: Option<f64>,
}

/// A live member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// (topic, partitions) when the group speaks the consumer protocol; else empty.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group's position on one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupPartition {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub log_end_offset: i64,
    pub offset_lag: i64,
    /// 0 when caught up; otherwise the lag job's last value, None before it has run.
    pub time_lag_seconds: Option<f64>,
}

/// One group in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupDetail {
    pub group_id: String,
    pub state: String,
    /// "consumer" for groups known only by their offsets.
    pub protocol_type: String,
    /// The assignor chosen in the current generation ("" when none).
    pub protocol: String,
    /// None when the group has no live membership on this agent.
    pub generation: Option<i32>,
    pub members: Vec<MemberInfo>,
    pub partitions: Vec<GroupPartition>,
    pub total_offset_lag: i64,
    pub max_time_lag_seconds: Option<f64>,
}

/// Every group of the cluster, live or known by its committed offsets, sorted by id.
pub async fn list_groups(
    broker: &Broker,
    cluster: &str,
) -> Result<Vec<GroupSummary>, InspectError> {
    let empty = |group_id: &str| GroupSummary {
        group_id: group_id.to_string(),
        state: "Empty".to_string(),
        members: 0,
        topics: Vec::new(),
        total_offset_lag: None,
        max_time_lag_seconds: None,
    };
    let mut groups: BTreeMap<String, GroupSummary> = BTreeMap::new();
    for lag in broker.meta.group_topic_lags(cluster).await? {
        let g = groups
            .entry(lag.group_id.clone())
            .or_insert_with(|| empty(&lag.group_id));
        g.topics.push(lag.topic);
        *g.total_offset_lag.get_or_insert(0) += lag.offset_lag;
    }
    // Groups held here, then those other agents coordinate (as they published them).
    let mut views: Vec<(String, GroupView)> = broker
        .groups
        .list(cluster)
        .into_iter()
        .filter_map(|(id, _, _)| broker.groups.describe(cluster, &id).map(|v| (id, v)))
        .collect();
    let here: BTreeSet<String> = views.iter().map(|(id, _)| id.clone()).collect();
    views.extend(
        crate::group_snapshots::remote_views(broker, cluster)
            .await?
            .into_iter()
            .filter(|(id, _)| !here.contains(id)),
    );
    for (group_id, view) in views {
        let g = groups
            .entry(group_id.clone())
            .or_insert_with(|| empty(&group_id));
        g.state = view.phase.name().to_string();
        g.members = view.members.len();
        let topics: BTreeSet<String> = g.topics.drain(..).chain(view.subscribed_topics()).collect();
        g.topics = topics.into_iter().collect();
    }
    for g in groups.values_mut() {
        g.max_time_lag_seconds = if g.total_offset_lag == Some(0) {
            Some(0.0)
        } else {
            broker
                .lag
                .get(cluster, &g.group_id)
                .map(|l| l.max_time_lag_seconds)
        };
    }
    Ok(groups.into_values().collect())
}

/// One group's membership and per-partition lag; NotFound when the group is neither live
/// nor has committed offsets.
pub async fn group_detail(
    broker: &Broker,
    cluster: &str,
    group: &str,
) -> Result<GroupDetail, InspectError> {
    let view = match broker.groups.describe(cluster, group) {
        Some(v) => Some(v),
        None => crate::group_snapshots::remote_view(broker, cluster, group).await?,
    };
    let positions = broker.meta.group_positions_of(cluster, group).await?;
    if view.is_none() && positions.is_empty() {
        return Err(InspectError::NotFound(format!(
            "consumer group '{group}' does not exist"
        )));
    }
    let time_lags: HashMap<(String, i32), f64> = broker
        .lag
        .get(cluster, group)
        .map(|l| {
            l.partitions
                .into_iter()
                .map(|p| ((p.topic, p.partition), p.time_lag_seconds))
                .collect()
        })
        .unwrap_or_default();
    let partitions: Vec<GroupPartition> = positions
        .into_iter()
        .map(|p| {
            let offset_lag = (p.log_end_offset - p.committed_offset).max(0);
            let time_lag_seconds = if offset_lag == 0 {
                Some(0.0)
            } else {
                time_lags.get(&(p.topic.clone(), p.partition)).copied()
            };
            GroupPartition {
                topic: p.topic,
                partition: p.partition,
                committed_offset: p.committed_offset,
                log_end_offset: p.log_end_offset,
                offset_lag,
                time_lag_seconds,
            }
        })
        .collect();
    let max_time_lag_seconds = partitions
        .iter()
        .filter_map(|p| p.time_lag_seconds)
        .reduce(f64::max);
    let total_offset_lag = partitions.iter().map(|p| p.offset_lag).sum();
    let (state, protocol_type, protocol, generation, members) = match view {
        Some(view) => {
            let members = view
                .members
                .iter()
                .map(|m| MemberInfo {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    assignment: view.assignment_of(m),
                })
                .collect();
            (
                view.phase.name().to_string(),
                view.protocol_type,
                view.protocol,
                Some(view.generation),
                members,
            )
        }
        None => (
            "Empty".to_string(),
            "consumer".to_string(),
            String::new(),
            None,
            Vec::new(),
        ),
    };
    Ok(GroupDetail {
        group_id: group.to_string(),
        state,
        protocol_type,
        protocol,
        generation,
        members,
        partitions,
        total_offset_lag,
        max_time_lag_seconds,
    })
}

/// Where [`reset_group_offsets`] moves a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetTo {
    /// The log start of each partition.
    Earliest,
    /// The log end of each partition (skip everything produced so far).
    Latest,
    /// The first offset with a timestamp at or after this time (ms), else the log end.
    Timestamp(i64),
}

/// One partition whose committed offset was reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetReset {
    pub topic: String,
    pub partition: i32,
    /// None when the group had committed nothing there.
    pub previous_offset: Option<i64>,
    pub new_offset: i64,
}

/// Moves a group's committed offsets, only while it has no live member (Conflict
/// otherwise). Applies to every partition the group has committed offsets for, or only to
/// `topic` (to its committed partitions, or to all its partitions if the group never
/// committed on it). Commits every new offset in one transaction.
pub async fn reset_group_offsets(
    broker: &Broker,
    cluster: &str,
    group: &str,
    topic: Option<&str>,
    to: ResetTo,
) -> Result<Vec<OffsetReset>, InspectError> {
    if group.is_empty() {
        return Err(InspectError::Invalid("a group id is required".to_string()));
    }
    let target_time = match to {
        ResetTo::Earliest => crate::log::EARLIEST,
        ResetTo::Latest => crate::log::LATEST,
        ResetTo::Timestamp(t) if t >= 0 => t,
        ResetTo::Timestamp(t) => {
            return Err(InspectError::Invalid(format!(
                "{t} is not a time: give milliseconds since 1970"
            )))
        }
    };
    // Held until the new offsets are committed: a consumer joining meanwhile waits, so it
    // starts from the reset offsets rather than racing them. The coordinating agent holds
    // it, whichever agent this is.
    let hold = crate::group_holds::hold(broker, cluster, group)
        .await
        .map_err(|e| match e {
            crate::group_holds::HoldError::Store(e) => InspectError::from(e),
            e => InspectError::Conflict(e.to_string()),
        })?;
    let stored = broker.meta.group_offsets(cluster, group).await?;
    let previous: HashMap<(&str, i32), i64> = stored
        .iter()
        .map(|o| ((o.topic.as_str(), o.partition), o.offset))
        .collect();
    // topic -> partitions to reset.
    let mut targets: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for o in &stored {
        if topic.is_none_or(|t| t == o.topic) {
            targets
                .entry(o.topic.clone())
                .or_default()
                .push(o.partition);
        }
    }
    if let Some(name) = topic {
        if !targets.contains_key(name) {
            let meta = broker
                .meta
                .topic(cluster, name)
                .await?
                .ok_or_else(|| topic_not_found(name))?;
            targets.insert(name.to_string(), (0..meta.partitions).collect());
        }
    } else if targets.is_empty() {
        return Err(InspectError::NotFound(format!(
            "consumer group '{group}' has no committed offsets; name a topic to reset"
        )));
    }

    let mut resets = Vec::new();
    for (name, partitions) in targets {
        let meta = broker
            .meta
            .topic(cluster, &name)
            .await?
            .ok_or_else(|| topic_not_found(&name))?;
        for partition in partitions {
            let new_offset = offset_for(broker, &meta, partition, target_time).await?;
            resets.push(OffsetReset {
                previous_offset: previous.get(&(name.as_str(), partition)).copied(),
                topic: name.clone(),
                partition,
                new_offset,
            });
        }
    }
    let commits: Vec<CommittedOffset> = resets
        .iter()
        .map(|r| CommittedOffset {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.new_offset,
            leader_epoch: -1,
            // What a Java client commits without metadata.
            metadata: Some(String::new()),
            commit_time_ms: 0,
        })
        .collect();
    broker.meta.commit_offsets(cluster, group, &commits).await?;
    hold.release().await;
    tracing::info!(
        cluster,
        group,
        partitions = resets.len(),
        to = ?to,
        "reset group offsets from the console"
    );
    Ok(resets)
}

/// The offset ListOffsets answers for `time` (or EARLIEST / LATEST); a time after every
/// record answers the log end, as a consumer's `auto.offset.reset` by time would land.
async fn offset_for(
    broker: &Broker,
    topic: &TopicMeta,
    partition: i32,
    time: i64,
) -> Result<i64, InspectError> {
    let missing = || {
        InspectError::NotFound(format!(
            "partition {partition} of topic '{}' does not exist",
            topic.name
        ))
    };
    match crate::log::offset_at(broker, topic, partition, time).await? {
        Ok((offset, _)) if offset >= 0 => Ok(offset),
        Ok(_) => match crate::log::offset_at(broker, topic, partition, crate::log::LATEST).await? {
            Ok((end, _)) => Ok(end),
            Err(_) => Err(missing()),
        },
        Err(_) => Err(missing()),
    }
}
