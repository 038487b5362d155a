//! Consumer groups: live membership from the coordinator merged with committed offsets
//! from the store, lag from the lag job; offset resets (to a time, an offset or by a shift,
//! on chosen partitions, planned with a dry run first if wished), and deleting a group or
//! its offsets of one topic with the Kafka DeleteGroups / OffsetDelete rules.

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

/// Where a reset moves a group (kafka-consumer-groups' `--to-earliest`, `--to-latest`,
/// `--to-datetime`, `--to-offset` and `--shift-by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetTo {
    /// The log start of each partition.
    Earliest,
    /// The log end of each partition (skip everything produced so far).
    Latest,
    /// The first offset with a timestamp at or after this time (ms), else the log end.
    Timestamp(i64),
    /// This offset on each partition, clamped to [log start, log end] as Kafka does: an
    /// offset past the log end lands on the log end, one before the log start on the start.
    Offset(i64),
    /// The committed offset moved by this many (negative: back, to read again), clamped to
    /// [log start, log end]. A partition the group has committed nothing on is refused with
    /// a plain message, as kafka-consumer-groups refuses it: there is no position to shift
    /// from, and taking one (the log end, say) would silently skip or re-read records.
    Shift(i64),
}

/// Which partitions a reset moves, where to, and whether it only plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetSpec {
    pub to: ResetTo,
    /// Only this topic: its committed partitions, or all its partitions if the group never
    /// committed on it. None (or empty): every partition the group has committed offsets for.
    pub topic: Option<String>,
    /// Only these partitions of `topic`, committed on or not (refused without a topic).
    pub partitions: Option<Vec<i32>>,
    /// Plan only: answer the offsets a reset would commit, commit nothing and take no hold,
    /// so a plan can be seen while the group still has members.
    pub dry_run: bool,
}

impl ResetSpec {
    /// A reset of every committed partition (or of `topic`'s), committed for real.
    pub fn new(to: ResetTo, topic: Option<&str>) -> Self {
        ResetSpec {
            to,
            topic: topic.map(str::to_string),
            partitions: None,
            dry_run: false,
        }
    }
}

/// One partition whose committed offset was reset (or would be, in a dry run).
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
/// committed on it). Commits every new offset in one transaction. See [`reset_offsets`]
/// for the other targets, a partition selection and dry runs.
pub async fn reset_group_offsets(
    broker: &Broker,
    cluster: &str,
    group: &str,
    topic: Option<&str>,
    to: ResetTo,
) -> Result<Vec<OffsetReset>, InspectError> {
    reset_offsets(broker, cluster, group, &ResetSpec::new(to, topic)).await
}

/// Plans a reset of a group's committed offsets as [`ResetSpec`] says and, unless it is a
/// dry run, commits the plan in one transaction while holding the group empty (Conflict
/// while it has live members). Answers the plan: previous and new offset per partition.
///
/// A dry run reads the offsets and log bounds of the moment; applying it later plans again
/// under the hold, so what is committed reflects the log as it then is.
pub async fn reset_offsets(
    broker: &Broker,
    cluster: &str,
    group: &str,
    spec: &ResetSpec,
) -> Result<Vec<OffsetReset>, InspectError> {
    if group.is_empty() {
        return Err(InspectError::Invalid("a group id is required".to_string()));
    }
    let target = target_of(spec.to)?;
    let topic = spec.topic.as_deref().filter(|t| !t.is_empty());
    let partitions = selected_partitions(topic, spec.partitions.as_deref())?;
    if spec.dry_run {
        return plan(broker, cluster, group, topic, partitions.as_ref(), target).await;
    }
    // Held until the new offsets are committed: a consumer joining meanwhile waits, so it
    // starts from the reset offsets rather than racing them. The coordinating agent holds
    // it, whichever agent this is.
    let hold = crate::group_holds::hold(broker, cluster, group)
        .await
        .map_err(|e| match e {
            crate::group_holds::HoldError::Store(e) => InspectError::from(e),
            e => InspectError::Conflict(e.to_string()),
        })?;
    let resets = plan(broker, cluster, group, topic, partitions.as_ref(), target).await?;
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
        to = ?spec.to,
        "reset group offsets from the console"
    );
    Ok(resets)
}

/// A [`ResetTo`] checked and made ready to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A ListOffsets time: [`crate::log::EARLIEST`], [`crate::log::LATEST`] or ms since 1970.
    Time(i64),
    Offset(i64),
    Shift(i64),
}

fn target_of(to: ResetTo) -> Result<Target, InspectError> {
    Ok(match to {
        ResetTo::Earliest => Target::Time(crate::log::EARLIEST),
        ResetTo::Latest => Target::Time(crate::log::LATEST),
        ResetTo::Timestamp(t) if t >= 0 => Target::Time(t),
        ResetTo::Timestamp(t) => {
            return Err(InspectError::Invalid(format!(
                "{t} is not a time: give milliseconds since 1970"
            )))
        }
        ResetTo::Offset(o) if o >= 0 => Target::Offset(o),
        ResetTo::Offset(o) => {
            return Err(InspectError::Invalid(format!(
                "{o} is not an offset: give 0 or more (to move back from the committed \
                 offset, shift by a negative number)"
            )))
        }
        ResetTo::Shift(n) => Target::Shift(n),
    })
}

/// The partitions asked for, sorted and without repeats; None for all of them.
fn selected_partitions(
    topic: Option<&str>,
    partitions: Option<&[i32]>,
) -> Result<Option<BTreeSet<i32>>, InspectError> {
    let Some(list) = partitions else {
        return Ok(None);
    };
    if topic.is_none() {
        return Err(InspectError::Invalid(
            "partitions belong to a topic: name the topic whose partitions to reset".to_string(),
        ));
    }
    if list.is_empty() {
        return Err(InspectError::Invalid(
            "give at least one partition, or leave partitions out to reset them all".to_string(),
        ));
    }
    if let Some(p) = list.iter().find(|p| **p < 0) {
        return Err(InspectError::Invalid(format!(
            "{p} is not a partition: partitions are numbered from 0"
        )));
    }
    Ok(Some(list.iter().copied().collect()))
}

/// Kafka's range check of a reset: an offset before the log start moves to the log start,
/// one past the log end to the log end.
fn clamp_to_log(wanted: i64, log_start: i64, log_end: i64) -> i64 {
    // Not `clamp`: it panics on start > end, which a store row should never hold.
    wanted.min(log_end).max(log_start)
}

fn partition_not_found(topic: &TopicMeta, partition: i32) -> InspectError {
    let has = match topic.partitions {
        1 => "it has one partition, 0".to_string(),
        n => format!("it has partitions 0 to {}", n - 1),
    };
    InspectError::NotFound(format!(
        "partition {partition} of topic '{}' does not exist: {has}",
        topic.name
    ))
}

/// The offsets a reset would commit, from the committed offsets and log bounds of now.
async fn plan(
    broker: &Broker,
    cluster: &str,
    group: &str,
    topic: Option<&str>,
    partitions: Option<&BTreeSet<i32>>,
    target: Target,
) -> Result<Vec<OffsetReset>, InspectError> {
    let stored = broker.meta.group_offsets(cluster, group).await?;
    let previous: HashMap<(&str, i32), i64> = stored
        .iter()
        .map(|o| ((o.topic.as_str(), o.partition), o.offset))
        .collect();
    // topic -> partitions to reset.
    let mut targets: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    match (topic, partitions) {
        (Some(name), Some(wanted)) => {
            targets.insert(name.to_string(), wanted.iter().copied().collect());
        }
        _ => {
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
        }
    }

    let mut resets = Vec::new();
    for (name, parts) in targets {
        let meta = broker
            .meta
            .topic(cluster, &name)
            .await?
            .ok_or_else(|| topic_not_found(&name))?;
        if let Some(p) = parts.iter().find(|p| **p >= meta.partitions) {
            return Err(partition_not_found(&meta, *p));
        }
        // Log bounds, for targets given as offsets: one query for the whole topic.
        let bounds = match target {
            Target::Time(_) => HashMap::new(),
            Target::Offset(_) | Target::Shift(_) => broker.meta.partition_states(meta.id).await?,
        };
        let clamped = |partition: i32, wanted: i64| -> Result<i64, InspectError> {
            let state = bounds
                .get(&partition)
                .ok_or_else(|| partition_not_found(&meta, partition))?;
            Ok(clamp_to_log(
                wanted,
                state.log_start_offset,
                state.next_offset,
            ))
        };
        for partition in parts {
            let previous_offset = previous.get(&(name.as_str(), partition)).copied();
            let new_offset = match target {
                Target::Time(t) => offset_for(broker, &meta, partition, t).await?,
                Target::Offset(o) => clamped(partition, o)?,
                Target::Shift(n) => {
                    let from = previous_offset.ok_or_else(|| {
                        InspectError::Invalid(format!(
                            "consumer group '{group}' has no committed offset on partition \
                             {partition} of topic '{name}' to shift from; move it to an \
                             offset, the earliest, the latest or a time instead"
                        ))
                    })?;
                    clamped(partition, from.saturating_add(n))?
                }
            };
            resets.push(OffsetReset {
                previous_offset,
                topic: name.clone(),
                partition,
                new_offset,
            });
        }
    }
    Ok(resets)
}

/// Deletes a group as DeleteGroups does: its committed offsets and its (empty) membership.
/// Conflict while it has live members (Kafka's NON_EMPTY_GROUP); NotFound when it is
/// neither live nor has committed offsets.
///
/// # Consistency
/// The group is held empty meanwhile, at whichever agent coordinates it
/// ([`crate::group_holds`]): a consumer joining during the deletion waits, then finds no
/// committed offsets (and starts from its `auto.offset.reset`), instead of committing
/// between the check and the deletion.
pub async fn delete_group(broker: &Broker, cluster: &str, group: &str) -> Result<(), InspectError> {
    if group.is_empty() {
        return Err(InspectError::Invalid("a group id is required".to_string()));
    }
    let hold = crate::group_holds::hold(broker, cluster, group)
        .await
        .map_err(|e| match e {
            crate::group_holds::HoldError::Store(e) => InspectError::from(e),
            crate::group_holds::HoldError::Members { members, .. } => {
                InspectError::Conflict(format!(
                    "consumer group '{group}' has {members} active member{}: a group can be \
                     deleted only while empty, so stop its consumers first",
                    if members == 1 { "" } else { "s" }
                ))
            }
            e => InspectError::Conflict(e.to_string()),
        })?;
    // Coordinated by another agent: its published view says the group exists.
    let known_there = crate::group_snapshots::remote_view(broker, cluster, group)
        .await?
        .is_some();
    // The Kafka handler's calls: forget the empty membership, then delete the offsets. (When
    // another agent coordinates the group, its ticker drops the empty membership there.)
    let known_here = broker.groups.forget_if_empty(cluster, group).map_err(|_| {
        InspectError::Conflict(format!(
            "consumer group '{group}' has active members; stop its consumers first"
        ))
    })?;
    let deleted = broker
        .meta
        .delete_group_offsets(cluster, group, None)
        .await?;
    hold.release().await;
    if deleted == 0 && !known_here && !known_there {
        return Err(InspectError::NotFound(format!(
            "consumer group '{group}' does not exist"
        )));
    }
    tracing::info!(
        cluster,
        group,
        offsets = deleted,
        "deleted consumer group from the console"
    );
    Ok(())
}

/// Deletes a group's committed offsets on one topic, as OffsetDelete does. Refused
/// (Conflict) while a live member subscribes to the topic (Kafka's
/// GROUP_SUBSCRIBED_TO_TOPIC), or while the group has live members of another protocol
/// than the consumer one (their subscriptions cannot be read). NotFound when the group has
/// no committed offset on the topic. Returns how many partitions' offsets were deleted.
///
/// # Consistency
/// As with the Kafka request, a member that subscribes to the topic just after the check
/// may commit again; its offsets then simply come back.
pub async fn delete_topic_offsets(
    broker: &Broker,
    cluster: &str,
    group: &str,
    topic: &str,
) -> Result<u64, InspectError> {
    if group.is_empty() {
        return Err(InspectError::Invalid("a group id is required".to_string()));
    }
    if topic.is_empty() {
        return Err(InspectError::Invalid(
            "name the topic whose committed offsets to delete".to_string(),
        ));
    }
    let view = match broker.groups.describe(cluster, group) {
        Some(v) => Some(v),
        None => crate::group_snapshots::remote_view(broker, cluster, group).await?,
    };
    if let Some(view) = view.filter(|v| !v.members.is_empty()) {
        if view.protocol_type != "consumer" {
            return Err(InspectError::Conflict(format!(
                "consumer group '{group}' has {} active members of protocol '{}', whose \
                 subscriptions Sluice cannot read; stop them first",
                view.members.len(),
                view.protocol_type
            )));
        }
        if view.subscribed_topics().iter().any(|t| t == topic) {
            return Err(InspectError::Conflict(format!(
                "active members of consumer group '{group}' subscribe to topic '{topic}': \
                 stop them, or take the topic out of their subscription, first"
            )));
        }
    }
    let partitions: Vec<i32> = broker
        .meta
        .group_offsets(cluster, group)
        .await?
        .into_iter()
        .filter(|o| o.topic == topic)
        .map(|o| o.partition)
        .collect();
    if partitions.is_empty() {
        return Err(InspectError::NotFound(format!(
            "consumer group '{group}' has no committed offsets on topic '{topic}'"
        )));
    }
    let deleted = broker
        .meta
        .delete_group_offsets(cluster, group, Some((topic, partitions.as_slice())))
        .await?;
    tracing::info!(
        cluster,
        group,
        topic,
        partitions = deleted,
        "deleted group offsets of a topic from the console"
    );
    Ok(deleted)
}

/// The offset ListOffsets answers for `time` (or EARLIEST / LATEST); a time after every
/// record answers the log end, as a consumer's `auto.offset.reset` by time would land.
async fn offset_for(
    broker: &Broker,
    topic: &TopicMeta,
    partition: i32,
    time: i64,
) -> Result<i64, InspectError> {
    let missing = || partition_not_found(topic, partition);
    match crate::log::offset_at(broker, topic, partition, time).await? {
        Ok((offset, _)) if offset >= 0 => Ok(offset),
        Ok(_) => match crate::log::offset_at(broker, topic, partition, crate::log::LATEST).await? {
            Ok((end, _)) => Ok(end),
            Err(_) => Err(missing()),
        },
        Err(_) => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_clamped_to_the_log_as_kafka_does() {
        // Log from 100 (older records deleted) to 250 (the next offset to be written).
        assert_eq!(clamp_to_log(180, 100, 250), 180, "inside: unchanged");
        assert_eq!(clamp_to_log(100, 100, 250), 100);
        assert_eq!(
            clamp_to_log(250, 100, 250),
            250,
            "the log end is a valid position"
        );
        assert_eq!(
            clamp_to_log(0, 100, 250),
            100,
            "before the start: the start"
        );
        assert_eq!(clamp_to_log(9_000, 100, 250), 250, "past the end: the end");
        // Shifts: committed 120, back 50 lands on the start; forward 1000 on the end.
        assert_eq!(clamp_to_log(120_i64.saturating_add(-50), 100, 250), 100);
        assert_eq!(clamp_to_log(120_i64.saturating_add(1_000), 100, 250), 250);
        assert_eq!(
            clamp_to_log(i64::MAX.saturating_add(1), 0, 7),
            7,
            "no overflow"
        );
        // An empty log: everything lands on its one position.
        assert_eq!(clamp_to_log(5, 0, 0), 0);
        // A row with start past end (should not exist) answers the start, without panic.
        assert_eq!(clamp_to_log(5, 10, 3), 10);
    }

    #[test]
    fn targets_are_checked() {
        assert_eq!(
            target_of(ResetTo::Earliest).unwrap(),
            Target::Time(crate::log::EARLIEST)
        );
        assert_eq!(
            target_of(ResetTo::Latest).unwrap(),
            Target::Time(crate::log::LATEST)
        );
        assert_eq!(target_of(ResetTo::Timestamp(5)).unwrap(), Target::Time(5));
        assert_eq!(target_of(ResetTo::Offset(0)).unwrap(), Target::Offset(0));
        assert_eq!(target_of(ResetTo::Shift(-3)).unwrap(), Target::Shift(-3));
        assert!(matches!(
            target_of(ResetTo::Offset(-1)),
            Err(InspectError::Invalid(m)) if m.contains("not an offset")
        ));
        assert!(matches!(
            target_of(ResetTo::Timestamp(-7)),
            Err(InspectError::Invalid(m)) if m.contains("not a time")
        ));
    }

    #[test]
    fn partitions_need_a_topic_and_are_sorted_once() {
        assert_eq!(selected_partitions(None, None).unwrap(), None);
        assert_eq!(selected_partitions(Some("t"), None).unwrap(), None);
        assert_eq!(
            selected_partitions(Some("t"), Some(&[2, 0, 2][..])).unwrap(),
            Some(BTreeSet::from([0, 2]))
        );
        assert!(matches!(
            selected_partitions(None, Some(&[0][..])),
            Err(InspectError::Invalid(m)) if m.contains("name the topic")
        ));
        assert!(matches!(
            selected_partitions(Some("t"), Some(&[][..])),
            Err(InspectError::Invalid(m)) if m.contains("at least one partition")
        ));
        assert!(matches!(
            selected_partitions(Some("t"), Some(&[1, -1][..])),
            Err(InspectError::Invalid(m)) if m.contains("-1 is not a partition")
        ));
    }
}
