//! The console's view of the broker: a typed, read-mostly API over the topics, records and
//! consumer groups of one virtual cluster, and [`ClusterView`], the one handle the console
//! holds (these functions plus virtual clusters, API keys, lag and addresses).
//!
//! Every function takes the [`Broker`] and a `cluster` id (the virtual-cluster id of
//! `topics.cluster` and `group_offsets.cluster`) and returns plain serialisable structs or
//! an [`InspectError`] whose message a person can act on. Nothing here is new behaviour:
//! writes go through the same validation and store calls as the Kafka handlers
//! ([`topic_config::validate_new_topic`], [`crate::topics`], CreatePartitions' checks and
//! store call in [`add_partitions`], [`crate::log::offset_at`]) and records are read the
//! way Fetch reads them ([`crate::log::read_batch`]), so the console and Kafka clients
//! always agree. Aggregates that would otherwise cost a query per topic live in
//! `store/inspect.rs`.
//!
//! Topics are here; records in `records` and consumer groups in `groups`, all re-exported
//! so callers write `inspect::read_records`, `inspect::list_groups`, ….
//!
//! # Bounds
//! A record read returns at most [`MAX_RECORDS`] records and reads at most
//! [`MAX_READ_BYTES`] of batches (always at least one batch, as Fetch does), holding
//! fetch-gate bytes while it reads and decodes, so console reads share the fetch memory
//! budget with consumers. A read across partitions splits that byte budget between them
//! and reads [`PARTITION_READS`] partitions at a time.
//!
//! # Consistency
//! Reads are not one snapshot: a summary's record count and size come from one query, but
//! a partition read may see commits made after its bounds were read. Resetting offsets
//! holds the group empty in the coordinator (checked and taken under its lock) until the
//! new offsets are committed: a consumer joining meanwhile waits for the hold, then reads
//! the reset offsets. With several agents the hold is taken at whichever agent coordinates
//! the group ([`crate::group_holds`]).

mod decode;
mod groups;
mod produce;
mod records;
mod scan;
mod view;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::lag::index::{minute_of, MINUTE_MS};
use crate::state::Broker;
use crate::topic_config;

pub use groups::{
    delete_group, delete_topic_offsets, group_detail, list_groups, reset_group_offsets,
    reset_offsets, GroupDetail, GroupPartition, GroupSummary, MemberInfo, OffsetReset, ResetSpec,
    ResetTo,
};
pub use produce::{partition_for_key, produce_record, NewRecord, Produced};
pub use records::{
    read_records, read_records_all_partitions, ReadFrom, RecordView, MAX_DECOMPRESSED_BATCH,
};
pub use scan::{scan, Cursor, RecordFilter, ScanPage, ScanStart, PAGE_BYTES, SCAN_BYTES};
pub use view::{
    AgentView, ClusterDefaults, ClusterView, GroupLag, CREDENTIAL_TTL, DEFAULT_CLUSTER,
};
// The store's types that cross the door, so the console names one module.
pub use crate::acl::{
    AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
    CLUSTER_RESOURCE, MAX_ACLS_PER_CLUSTER, WILDCARD,
};
pub use crate::lag::alerts::{
    check_rule as check_alert_rule, webhook_origin, AlertRule, AlertState, AlertStatus, LagAlert,
    NewAlertRule, MAX_ALERTS_PER_CLUSTER, MAX_FOR_SECONDS, MAX_THRESHOLD_SECONDS,
};
pub use crate::quota::{validate as validate_quota, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};
pub use crate::store::{
    ApiKeyInfo, ClientQuota, Credential, StoreError, TopicMeta, VirtualCluster,
};
// The topic rules CreateTopics applies, so the console can word its own refusals.
pub use crate::topic_config::{validate_new_topic_name, MAX_PARTITIONS};

/// The most records one read returns.
pub const MAX_RECORDS: usize = 500;
/// The most batch bytes one read fetches from the bucket (at least one batch is read).
pub const MAX_READ_BYTES: usize = 4 << 20;
/// Reads of different partitions running at once for [`read_records_all_partitions`].
pub const PARTITION_READS: usize = 8;
/// Whole minutes of the timestamp index that a topic's rate is averaged over.
const RATE_WINDOW_MINUTES: i64 = 5;

/// Why a console request failed; the message is meant for the person who asked.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The topic, partition or group does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong (a bad name, count or config).
    #[error("{0}")]
    Invalid(String),
    /// The request clashes with the current state (topic exists, group is active).
    #[error("{0}")]
    Conflict(String),
    /// Record bytes could not be read from the bucket or do not decode.
    #[error("{0}")]
    Storage(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for InspectError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TopicExists(_) | StoreError::AlreadyExists(_) => {
                InspectError::Conflict(e.to_string())
            }
            StoreError::UnknownTopic(_) => InspectError::NotFound(e.to_string()),
            StoreError::InvalidPartitions(_) => InspectError::Invalid(e.to_string()),
            other => InspectError::Store(other),
        }
    }
}

fn topic_not_found(name: &str) -> InspectError {
    InspectError::NotFound(format!("topic '{name}' does not exist"))
}

/// A topic as the topic list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicSummary {
    pub name: String,
    pub partitions: i32,
    /// Bytes of the record batches still in the log.
    pub size_bytes: i64,
    /// Offsets in the log: sum over partitions of `end - start` (control records included).
    pub records: i64,
    /// Average over the last whole minutes of the timestamp index (approximate).
    pub records_per_sec: f64,
    pub created_at_ms: i64,
}

/// One partition's bounds and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub partition: i32,
    /// The log start offset (first offset still readable).
    pub start_offset: i64,
    /// The log end offset (the next offset to be written).
    pub end_offset: i64,
    pub size_bytes: i64,
}

/// A config key with the value in effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValue {
    pub name: String,
    pub value: String,
    /// True when the topic does not set the key and the default applies.
    pub is_default: bool,
}

/// One topic in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicDetail {
    pub name: String,
    pub topic_uuid: String,
    pub created_at_ms: i64,
    pub partitions: Vec<PartitionInfo>,
    /// Configs set on the topic, sorted by key.
    pub configs: Vec<(String, String)>,
    /// Every known config key with its effective value, sorted by key.
    pub effective_configs: Vec<ConfigValue>,
    pub size_bytes: i64,
    pub records: i64,
}

/// Every topic of the cluster with its totals, sorted by name (one store query).
pub async fn topic_summaries(
    broker: &Broker,
    cluster: &str,
) -> Result<Vec<TopicSummary>, InspectError> {
    let until = minute_of(now_ms());
    let since = until - RATE_WINDOW_MINUTES * MINUTE_MS;
    let stats = broker.meta.topic_stats(cluster, since, until).await?;
    Ok(stats
        .into_iter()
        .map(|t| TopicSummary {
            records_per_sec: rate(t.recent_offsets, t.created_at_ms, since, until),
            name: t.name,
            partitions: t.partitions,
            size_bytes: t.size_bytes,
            records: t.records,
            created_at_ms: t.created_at_ms,
        })
        .collect())
}

/// Offsets per second over the whole minutes `[since, until)`, or over the minutes since
/// the topic was created when that is shorter (its minute of creation counts whole).
fn rate(offsets: i64, created_at_ms: i64, since: i64, until: i64) -> f64 {
    let covered_ms = until - since.max(minute_of(created_at_ms));
    if covered_ms > 0 {
        offsets as f64 * 1000.0 / covered_ms as f64
    } else {
        0.0
    }
}

/// One topic with its partitions and configs; NotFound when it does not exist.
pub async fn topic_detail(
    broker: &Broker,
    cluster: &str,
    name: &str,
) -> Result<TopicDetail, InspectError> {
    let topic = broker
        .meta
        .topic(cluster, name)
        .await?
        .ok_or_else(|| topic_not_found(name))?;
    let partitions: Vec<PartitionInfo> = broker
        .meta
        .partition_stats(topic.id)
        .await?
        .into_iter()
        .map(|p| PartitionInfo {
            partition: p.partition,
            start_offset: p.log_start_offset,
            end_offset: p.next_offset,
            size_bytes: p.size_bytes,
        })
        .collect();
    let mut effective_configs: Vec<ConfigValue> = topic_config::effective(&topic.configs)
        .into_iter()
        .map(|(name, value, is_default)| ConfigValue {
            name: name.to_string(),
            value,
            is_default,
        })
        .collect();
    effective_configs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(TopicDetail {
        size_bytes: partitions.iter().map(|p| p.size_bytes).sum(),
        records: partitions
            .iter()
            .map(|p| p.end_offset - p.start_offset)
            .sum(),
        name: topic.name,
        topic_uuid: topic.uuid.to_string(),
        created_at_ms: topic.created_at_ms,
        partitions,
        // A BTreeMap: already sorted by key.
        configs: topic.configs.into_iter().collect(),
        effective_configs,
    })
}

/// A consumer group that reads one topic, as the topic page lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicGroup {
    pub group_id: String,
    /// As in [`GroupSummary::state`].
    pub state: String,
    pub members: usize,
    /// Sum over the topic's partitions of `max(0, log end - committed)`; None when the
    /// group has committed no offset on this topic (a live member only subscribes to it).
    pub offset_lag: Option<i64>,
}

/// The groups with committed offsets on `topic` or a live member subscribed to it, sorted
/// by id, with their offset lag on this topic alone.
pub async fn topic_groups(
    broker: &Broker,
    cluster: &str,
    topic: &str,
) -> Result<Vec<TopicGroup>, InspectError> {
    // The per-topic lag is one aggregate query over the cluster's committed offsets (the
    // same one the group list sums per group); the list brings the live state.
    let lags: BTreeMap<String, i64> = broker
        .meta
        .group_topic_lags(cluster)
        .await?
        .into_iter()
        .filter(|l| l.topic == topic)
        .map(|l| (l.group_id, l.offset_lag))
        .collect();
    Ok(list_groups(broker, cluster)
        .await?
        .into_iter()
        .filter(|g| g.topics.iter().any(|t| t == topic))
        .map(|g| TopicGroup {
            offset_lag: lags.get(&g.group_id).copied(),
            group_id: g.group_id,
            state: g.state,
            members: g.members,
        })
        .collect())
}

/// Grows a topic to `count` partitions (the new total) as CreatePartitions does: the same
/// checks, the same store call, and the topic dropped from the broker's cache so Metadata
/// and produce see the new partitions at once. Kafka cannot remove partitions, so a count
/// that is not larger than the current one is refused, as is one above
/// [`topic_config::MAX_PARTITIONS`].
pub async fn add_partitions(
    broker: &Broker,
    cluster: &str,
    name: &str,
    count: i32,
) -> Result<(), InspectError> {
    let topic = broker
        .meta
        .topic(cluster, name)
        .await?
        .ok_or_else(|| topic_not_found(name))?;
    if count > topic_config::MAX_PARTITIONS {
        return Err(InspectError::Invalid(format!(
            "A topic can have at most {} partitions (you asked for {count}).",
            topic_config::MAX_PARTITIONS
        )));
    }
    if count <= topic.partitions {
        let has = if topic.partitions == 1 {
            "1 partition".to_string()
        } else {
            format!("{} partitions", topic.partitions)
        };
        return Err(InspectError::Invalid(format!(
            "Topic '{name}' already has {has}; the count can only grow (Kafka cannot remove \
             partitions). Give a new total larger than {}.",
            topic.partitions
        )));
    }
    // The store checks the count again under its lock: of two concurrent requests, the
    // second sees the first's count (InvalidPartitions).
    broker.meta.create_partitions(topic.id, count).await?;
    broker.topics.forget(cluster, name);
    tracing::info!(
        cluster,
        topic = name,
        from = topic.partitions,
        to = count,
        "added partitions from the console"
    );
    Ok(())
}

/// Collects `(key, value)` pairs, refusing a key given twice.
fn config_map(pairs: &[(String, String)]) -> Result<BTreeMap<String, String>, InspectError> {
    let mut map = BTreeMap::new();
    for (k, v) in pairs {
        if map.insert(k.clone(), v.clone()).is_some() {
            return Err(InspectError::Invalid(format!(
                "config '{k}' is given twice"
            )));
        }
    }
    Ok(map)
}

/// Creates a topic with CreateTopics' rules: a valid name, 1 to
/// [`topic_config::MAX_PARTITIONS`] partitions, known configs with valid values;
/// Conflict when it already exists.
pub async fn create_topic(
    broker: &Broker,
    cluster: &str,
    name: &str,
    partitions: i32,
    configs: &[(String, String)],
) -> Result<(), InspectError> {
    let configs = config_map(configs)?;
    crate::topic_config::validate_new_topic(name, partitions, &configs)
        .map_err(|(_code, message)| InspectError::Invalid(message))?;
    broker
        .topics
        .create(cluster, name, partitions, &configs)
        .await?;
    tracing::info!(
        cluster,
        topic = name,
        partitions,
        "created topic from the console"
    );
    Ok(())
}

/// Deletes a topic as DeleteTopics does (its records, configs and committed offsets);
/// NotFound when it does not exist.
pub async fn delete_topic(broker: &Broker, cluster: &str, name: &str) -> Result<(), InspectError> {
    if broker.topics.delete(cluster, name).await? {
        Ok(())
    } else {
        Err(topic_not_found(name))
    }
}

/// Sets configs (`set`, validated like AlterConfigs) and removes others (`delete`, back to
/// their defaults) on a topic, in one transaction.
pub async fn alter_topic_configs(
    broker: &Broker,
    cluster: &str,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> Result<(), InspectError> {
    let set_keys = config_map(set)?;
    topic_config::validate_all(set.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| InspectError::Invalid(e.0))?;
    for key in delete {
        if !topic_config::is_known(key) {
            return Err(InspectError::Invalid(format!(
                "unknown topic config '{key}'"
            )));
        }
        if set_keys.contains_key(key) {
            return Err(InspectError::Invalid(format!(
                "config '{key}' is both set and deleted"
            )));
        }
    }
    let topic = broker
        .meta
        .topic(cluster, name)
        .await?
        .ok_or_else(|| topic_not_found(name))?;
    broker
        .meta
        .alter_topic_configs(topic.id, false, set, delete)
        .await?;
    broker.topics.forget(cluster, name);
    tracing::info!(
        cluster,
        topic = name,
        "altered topic configs from the console"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_040_000; // a whole minute

    #[test]
    fn rate_covers_whole_minutes_of_the_topics_life() {
        let (since, until) = (T0, T0 + 5 * MINUTE_MS);
        // Old topic: the whole five-minute window.
        assert_eq!(rate(600, T0 - 3_600_000, since, until), 2.0);
        // Created half-way through the window's third minute: three minutes count.
        assert_eq!(rate(360, T0 + 2 * MINUTE_MS + 30_000, since, until), 2.0);
        // Created in the current minute: no whole minute yet.
        assert_eq!(rate(100, until + 1_000, since, until), 0.0);
        assert_eq!(rate(0, T0 - 1, since, until), 0.0);
    }

    #[test]
    fn store_errors_keep_their_meaning() {
        let e: InspectError = StoreError::TopicExists("t".into()).into();
        assert!(matches!(e, InspectError::Conflict(ref m) if m == "topic 't' already exists"));
        let e: InspectError = StoreError::UnknownTopic("t".into()).into();
        assert!(matches!(e, InspectError::NotFound(_)));
        let e: InspectError = StoreError::BadUrl("x".into()).into();
        assert!(matches!(e, InspectError::Store(_)));
    }
}
