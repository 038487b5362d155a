//! [`ClusterView`]: the one door from the console into the broker.
//!
//! The console holds a `ClusterView` and nothing else of the broker: no store handle, no
//! field of [`Broker`]. Each method is one thing a console page or API call needs: the
//! virtual clusters of an organisation and their settings, API keys, topic and group
//! listings and counts, the lag board and lag alert rules, the built-in cluster's defaults
//! and the bootstrap address. Changes that touch the broker's caches keep them right here,
//! so a caller cannot forget to: deleting a cluster drops its cached topics, topic changes
//! go through the same functions as the Kafka handlers.
//!
//! Access control is not checked here: the console decides who may see which cluster and
//! passes its id.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{
    groups, records, GroupDetail, GroupSummary, InspectError, OffsetReset, ReadFrom, RecordView,
    ResetTo, TopicDetail, TopicSummary,
};
use crate::acl::{AclBinding, AclFilter};
use crate::lag::alerts::{LagAlert, NewAlertRule, MAX_ALERTS_PER_CLUSTER};
use crate::state::Broker;
use crate::store::{ApiKeyInfo, ClientQuota, Credential, StoreError, TopicMeta, VirtualCluster};

pub use crate::lag::GroupLag;
pub use crate::session::DEFAULT_CLUSTER;

/// How long a verified API key may be trusted before its credential is read again: a
/// revoked key stops working within this time on the Kafka port.
pub const CREDENTIAL_TTL: Duration = crate::auth::CACHE_TTL;

/// The settings topics of a cluster are created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterDefaults {
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub default_retention_ms: i64,
}

/// The console's handle on one running broker; cheap to clone.
#[derive(Clone)]
pub struct ClusterView {
    broker: Arc<Broker>,
}

impl ClusterView {
    pub fn new(broker: Arc<Broker>) -> Self {
        ClusterView { broker }
    }

    // ---- the broker itself ----

    /// `host:port` clients bootstrap from (the advertised Kafka address).
    pub fn bootstrap(&self) -> String {
        let (host, port) = &self.broker.advertised;
        format!("{host}:{port}")
    }

    /// The settings of the built-in [`DEFAULT_CLUSTER`]: the agent's flags, and the topic
    /// default of `retention.ms`.
    pub fn builtin_defaults(&self) -> ClusterDefaults {
        let retention = crate::topic_config::get(&BTreeMap::new(), "retention.ms")
            .parse()
            .unwrap_or(604_800_000);
        ClusterDefaults {
            auto_create_topics: self.broker.config.auto_create_topics,
            default_partitions: self.broker.config.default_partitions,
            default_retention_ms: retention,
        }
    }

    // ---- virtual clusters ----

    pub async fn virtual_clusters(&self, org_id: &str) -> Result<Vec<VirtualCluster>, StoreError> {
        self.broker.meta.virtual_clusters(org_id).await
    }

    pub async fn virtual_cluster(&self, id: &str) -> Result<Option<VirtualCluster>, StoreError> {
        self.broker.meta.virtual_cluster(id).await
    }

    /// AlreadyExists when the organisation has a cluster of that name.
    pub async fn create_virtual_cluster(
        &self,
        org_id: &str,
        name: &str,
    ) -> Result<VirtualCluster, StoreError> {
        self.broker.meta.create_virtual_cluster(org_id, name).await
    }

    /// Returns whether the cluster exists; AlreadyExists when the name is taken.
    pub async fn rename_virtual_cluster(&self, id: &str, name: &str) -> Result<bool, StoreError> {
        self.broker.meta.rename_virtual_cluster(id, name).await
    }

    /// Settings for topics created from now on; returns whether the cluster exists.
    pub async fn update_cluster_settings(
        &self,
        id: &str,
        settings: ClusterDefaults,
    ) -> Result<bool, StoreError> {
        self.broker
            .meta
            .update_cluster_settings(
                id,
                settings.auto_create_topics,
                settings.default_partitions,
                settings.default_retention_ms,
            )
            .await
    }

    // ---- ACLs and client quotas (crate::acl, crate::quota) ----

    /// Turns ACL enforcement on or off; returns whether the cluster exists.
    pub async fn set_acls_enabled(&self, id: &str, enabled: bool) -> Result<bool, StoreError> {
        let found = self.broker.meta.set_acls_enabled(id, enabled).await?;
        self.broker.acls.forget(id);
        Ok(found)
    }

    pub async fn acls(&self, cluster: &str) -> Result<Vec<AclBinding>, StoreError> {
        self.broker.meta.acls(cluster).await
    }

    /// Stores one binding (validated first); false when the cluster holds the most ACLs
    /// it may.
    pub async fn create_acl(&self, cluster: &str, binding: AclBinding) -> Result<bool, StoreError> {
        let stored = self.broker.meta.create_acls(cluster, &[binding]).await?;
        self.broker.acls.forget(cluster);
        Ok(stored)
    }

    /// Deletes the bindings matching `filter`; returns them.
    pub async fn delete_acls(
        &self,
        cluster: &str,
        filter: &AclFilter,
    ) -> Result<Vec<AclBinding>, StoreError> {
        let deleted = self.broker.meta.delete_acls(cluster, filter).await?;
        self.broker.acls.forget(cluster);
        Ok(deleted)
    }

    pub async fn client_quotas(&self, cluster: &str) -> Result<Vec<ClientQuota>, StoreError> {
        self.broker.meta.client_quotas(cluster).await
    }

    /// Sets (`Some`) or removes (`None`) one quota of one key (checked by the caller with
    /// [`crate::quota::validate`]).
    pub async fn set_client_quota(
        &self,
        cluster: &str,
        key_id: &str,
        quota: &str,
        value: Option<f64>,
    ) -> Result<(), StoreError> {
        self.broker
            .meta
            .alter_client_quotas(cluster, &[(key_id.to_string(), quota.to_string(), value)])
            .await?;
        self.broker.quotas.forget(cluster);
        Ok(())
    }

    /// Deletes a cluster with its topics, offsets, lag history and API keys, and drops its
    /// topics from the broker's cache. Returns the names of the topics deleted.
    pub async fn delete_virtual_cluster(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let topics = self.broker.meta.delete_virtual_cluster(id).await?;
        for t in &topics {
            self.broker.topics.forget(id, t);
        }
        self.broker.credentials.forget_cluster(id);
        self.broker.acls.forget(id);
        self.broker.quotas.forget(id);
        Ok(topics)
    }

    // ---- agents ----

    /// The live agents of the cluster (every agent group), this one included.
    pub fn agents(&self) -> Vec<AgentView> {
        self.broker
            .membership
            .live()
            .iter()
            .map(|a| AgentView {
                advertised: format!("{}:{}", a.host, a.port),
                this_agent: a.node_id == self.broker.membership.node_id(),
                agent: a.clone(),
            })
            .collect()
    }

    // ---- API keys ----

    pub async fn api_keys(&self, cluster_id: &str) -> Result<Vec<ApiKeyInfo>, StoreError> {
        self.broker.meta.api_keys(cluster_id).await
    }

    /// A new key and its secret (returned here and nowhere else).
    pub async fn create_api_key(
        &self,
        cluster_id: &str,
        name: &str,
        created_by: &str,
    ) -> Result<(ApiKeyInfo, String), StoreError> {
        self.broker
            .meta
            .create_api_key(cluster_id, name, created_by)
            .await
    }

    /// Returns whether the key existed and was live.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<bool, StoreError> {
        let revoked = self.broker.meta.revoke_api_key(key_id).await?;
        self.broker.credentials.forget(key_id);
        Ok(revoked)
    }

    /// A live key's credential, through the cache the Kafka port uses ([`CREDENTIAL_TTL`]).
    pub async fn api_key_credential(
        &self,
        key_id: &str,
    ) -> Result<Option<Arc<Credential>>, StoreError> {
        self.broker.credentials.get(key_id).await
    }

    /// Records that a key was used (written at most once a minute per key).
    pub async fn mark_api_key_used(&self, key_id: &str) {
        self.broker.credentials.used(key_id).await
    }

    // ---- topics ----

    /// A topic as the Kafka port sees it (through the broker's topic cache).
    pub async fn topic(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<Option<Arc<TopicMeta>>, StoreError> {
        self.broker.topics.get(cluster, name).await
    }

    pub async fn topic_count(&self, cluster: &str) -> Result<usize, StoreError> {
        Ok(self.broker.meta.list_topics(cluster).await?.len())
    }

    /// See [`super::topic_summaries`].
    pub async fn topic_summaries(&self, cluster: &str) -> Result<Vec<TopicSummary>, InspectError> {
        super::topic_summaries(&self.broker, cluster).await
    }

    /// See [`super::topic_detail`].
    pub async fn topic_detail(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<TopicDetail, InspectError> {
        super::topic_detail(&self.broker, cluster, name).await
    }

    /// See [`super::create_topic`].
    pub async fn create_topic(
        &self,
        cluster: &str,
        name: &str,
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<(), InspectError> {
        super::create_topic(&self.broker, cluster, name, partitions, configs).await
    }

    /// See [`super::delete_topic`].
    pub async fn delete_topic(&self, cluster: &str, name: &str) -> Result<(), InspectError> {
        super::delete_topic(&self.broker, cluster, name).await
    }

    /// See [`super::alter_topic_configs`].
    pub async fn alter_topic_configs(
        &self,
        cluster: &str,
        name: &str,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<(), InspectError> {
        super::alter_topic_configs(&self.broker, cluster, name, set, delete).await
    }

    /// See [`super::add_partitions`]: grows a topic to `count` partitions in all, as
    /// CreatePartitions does (and drops it from the topic cache).
    pub async fn add_partitions(
        &self,
        cluster: &str,
        name: &str,
        count: i32,
    ) -> Result<(), InspectError> {
        super::add_partitions(&self.broker, cluster, name, count).await
    }

    /// See [`super::topic_groups`]: the consumer groups reading one topic.
    pub async fn topic_groups(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<Vec<super::TopicGroup>, InspectError> {
        super::topic_groups(&self.broker, cluster, name).await
    }

    // ---- records ----

    /// See [`super::read_records`].
    pub async fn read_records(
        &self,
        cluster: &str,
        topic: &str,
        partition: i32,
        from: ReadFrom,
        limit: usize,
    ) -> Result<Vec<RecordView>, InspectError> {
        records::read_records(&self.broker, cluster, topic, partition, from, limit).await
    }

    /// See [`super::read_records_all_partitions`].
    pub async fn read_records_all_partitions(
        &self,
        cluster: &str,
        topic: &str,
        from: ReadFrom,
        limit: usize,
    ) -> Result<Vec<RecordView>, InspectError> {
        records::read_records_all_partitions(&self.broker, cluster, topic, from, limit).await
    }

    /// See [`super::produce_record`].
    pub async fn produce_record(
        &self,
        cluster: &str,
        topic: &str,
        record: super::NewRecord,
    ) -> Result<super::Produced, InspectError> {
        super::produce_record(&self.broker, cluster, topic, record).await
    }

    /// See [`super::scan`]: one page of the message browser.
    #[allow(clippy::too_many_arguments)]
    pub async fn scan_records(
        &self,
        cluster: &str,
        topic: &str,
        partition: Option<i32>,
        start: super::ScanStart,
        limit: usize,
        filter: Option<Arc<super::RecordFilter>>,
    ) -> Result<super::ScanPage, InspectError> {
        super::scan(
            &self.broker,
            cluster,
            topic,
            partition,
            start,
            limit,
            filter,
        )
        .await
    }

    // ---- consumer groups and lag ----

    /// Groups with committed offsets in the cluster.
    pub async fn group_count(&self, cluster: &str) -> Result<usize, StoreError> {
        Ok(self.broker.meta.groups_with_offsets(cluster).await?.len())
    }

    /// See [`super::list_groups`].
    pub async fn list_groups(&self, cluster: &str) -> Result<Vec<GroupSummary>, InspectError> {
        groups::list_groups(&self.broker, cluster).await
    }

    /// See [`super::group_detail`].
    pub async fn group_detail(
        &self,
        cluster: &str,
        group: &str,
    ) -> Result<GroupDetail, InspectError> {
        groups::group_detail(&self.broker, cluster, group).await
    }

    /// See [`super::reset_group_offsets`].
    pub async fn reset_group_offsets(
        &self,
        cluster: &str,
        group: &str,
        topic: Option<&str>,
        to: ResetTo,
    ) -> Result<Vec<OffsetReset>, InspectError> {
        groups::reset_group_offsets(&self.broker, cluster, group, topic, to).await
    }

    /// See [`super::reset_offsets`]: a reset to any target, on chosen partitions, or only
    /// its plan (a dry run).
    pub async fn reset_offsets(
        &self,
        cluster: &str,
        group: &str,
        spec: &super::ResetSpec,
    ) -> Result<Vec<OffsetReset>, InspectError> {
        groups::reset_offsets(&self.broker, cluster, group, spec).await
    }

    /// See [`super::delete_group`].
    pub async fn delete_group(&self, cluster: &str, group: &str) -> Result<(), InspectError> {
        groups::delete_group(&self.broker, cluster, group).await
    }

    /// See [`super::delete_topic_offsets`]; returns how many partitions' offsets went.
    pub async fn delete_topic_offsets(
        &self,
        cluster: &str,
        group: &str,
        topic: &str,
    ) -> Result<u64, InspectError> {
        groups::delete_topic_offsets(&self.broker, cluster, group, topic).await
    }

    /// The lag the lag job computed last for a group; on an agent that does not run the
    /// job (another agent holds its lease, or this one lacks the jobs role), computed now.
    /// None when the group has no committed offsets.
    pub async fn current_lag(
        &self,
        cluster: &str,
        group: &str,
    ) -> Result<Option<GroupLag>, InspectError> {
        let now = crate::clock::now_ms();
        // A board older than two passes is a former holder's: the lease moved on.
        let fresh_after = now - 2 * self.broker.config.lag_interval.as_millis() as i64 - 5_000;
        match self.broker.lag.get(cluster, group) {
            Some(lag) if lag.computed_at_ms >= fresh_after => Ok(Some(lag)),
            _ => Ok(crate::lag::job::group_lag_now(&self.broker, cluster, group, now).await?),
        }
    }

    /// A group's lag history since `since_ms`: (minute, max time lag ms, offset lag).
    pub async fn lag_history(
        &self,
        cluster: &str,
        group: &str,
        since_ms: i64,
    ) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        self.broker.meta.lag_history(cluster, group, since_ms).await
    }

    // ---- lag alerts (crate::lag::alerts) ----

    /// A cluster's lag alert rules with the state the lag job last stored, by group.
    pub async fn lag_alerts(&self, cluster: &str) -> Result<Vec<LagAlert>, StoreError> {
        self.broker.meta.lag_alerts(cluster).await
    }

    /// Creates a rule after [`crate::lag::alerts::check_rule`]; Invalid with a message for
    /// the person who asked when it is wrong or the cluster holds
    /// [`MAX_ALERTS_PER_CLUSTER`] rules, NotFound when the cluster is gone.
    pub async fn create_lag_alert(
        &self,
        cluster: &str,
        rule: NewAlertRule<'_>,
    ) -> Result<LagAlert, InspectError> {
        let url = crate::lag::alerts::check_rule(&rule).map_err(InspectError::Invalid)?;
        let rule = NewAlertRule {
            group: rule.group,
            max_time_lag_seconds: rule.max_time_lag_seconds,
            for_seconds: rule.for_seconds,
            webhook_url: &url,
        };
        match self.broker.meta.create_lag_alert(cluster, &rule).await {
            Ok(Some(alert)) => Ok(alert),
            Ok(None) => Err(InspectError::Invalid(format!(
                "A cluster holds at most {MAX_ALERTS_PER_CLUSTER} lag alert rules; delete some first."
            ))),
            Err(StoreError::UnknownCluster(c)) => Err(InspectError::NotFound(format!(
                "virtual cluster '{c}' does not exist (deleted?)"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes one rule of a cluster; returns whether it existed.
    pub async fn delete_lag_alert(&self, cluster: &str, id: &str) -> Result<bool, StoreError> {
        self.broker.meta.delete_lag_alert(cluster, id).await
    }
}

/// One live agent, as `GET /api/v1/agents` and the console list it: the registry's row
/// (node id, rack, agent group, roles, version, start and last heartbeat in epoch ms) with
/// its Kafka listener as `host:port`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentView {
    #[serde(flatten)]
    pub agent: crate::store::AgentInfo,
    pub advertised: String,
    /// Whether this is the agent that answered.
    pub this_agent: bool,
}
