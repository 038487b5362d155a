//! Topic operations shared by the Kafka handlers and the console ([`crate::inspect`]):
//! look-up through a short-lived cache, auto-creation, creation with the cluster's
//! defaults, and deletion. Every way of creating or deleting a topic goes through here, so
//! the cache is always told.
//!
//! # Consistency
//! The cache holds a topic for at most [`TOPIC_CACHE_TTL`]; a change made on this agent
//! drops its entry at once, a change made by another agent is seen within the TTL.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::session::DEFAULT_CLUSTER;
use crate::store::{Metadata, StoreError, TopicMeta};
use crate::topic_config;

pub const TOPIC_CACHE_TTL: Duration = Duration::from_secs(1);

/// A cached topic and when it was read.
type Entry = (Arc<TopicMeta>, Instant);

/// Topics by (cluster, name) and by (cluster, topic id).
#[derive(Default)]
struct Cache {
    by_name: HashMap<(String, String), Entry>,
    by_id: HashMap<(String, uuid::Uuid), Entry>,
}

/// Whether a topic could be resolved for a request.
#[derive(Debug)]
pub enum TopicLookup {
    Found(Arc<TopicMeta>),
    Missing,
}

/// The built-in cluster's topic defaults (a virtual cluster keeps its own in the store).
#[derive(Debug, Clone, Copy)]
pub struct BuiltinDefaults {
    pub auto_create_topics: bool,
    pub default_partitions: i32,
}

pub struct Topics {
    meta: Metadata,
    builtin: BuiltinDefaults,
    cache: Mutex<Cache>,
}

impl Topics {
    pub fn new(meta: Metadata, builtin: BuiltinDefaults) -> Self {
        Topics {
            meta,
            builtin,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Looks a topic up by name, through the cache.
    pub async fn get(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<Option<Arc<TopicMeta>>, StoreError> {
        let key = (cluster.to_string(), name.to_string());
        self.through(key, |c| &mut c.by_name, self.meta.topic(cluster, name))
            .await
    }

    /// Looks a topic up by its id (requests of KIP-516 versions), through the cache.
    pub async fn get_by_id(
        &self,
        cluster: &str,
        id: uuid::Uuid,
    ) -> Result<Option<Arc<TopicMeta>>, StoreError> {
        let key = (cluster.to_string(), id);
        self.through(key, |c| &mut c.by_id, self.meta.topic_by_uuid(cluster, id))
            .await
    }

    /// A fresh cached entry of `map`, or what `load` reads (then cached, or dropped when
    /// the topic is gone).
    async fn through<K: std::hash::Hash + Eq>(
        &self,
        key: K,
        map: fn(&mut Cache) -> &mut HashMap<K, Entry>,
        load: impl std::future::Future<Output = Result<Option<TopicMeta>, StoreError>>,
    ) -> Result<Option<Arc<TopicMeta>>, StoreError> {
        if let Some((t, at)) = map(&mut self.lock()).get(&key) {
            if at.elapsed() < TOPIC_CACHE_TTL {
                return Ok(Some(t.clone()));
            }
        }
        let found = load.await?.map(Arc::new);
        let mut cache = self.lock();
        let entries = map(&mut cache);
        match &found {
            Some(t) => {
                entries.insert(key, (t.clone(), Instant::now()));
            }
            None => {
                entries.remove(&key);
            }
        }
        Ok(found)
    }

    /// Looks a topic up by name and creates it when auto-creation is on.
    pub async fn get_or_create(
        &self,
        cluster: &str,
        name: &str,
        allow_create: bool,
    ) -> Result<TopicLookup, StoreError> {
        if let Some(t) = self.get(cluster, name).await? {
            return Ok(TopicLookup::Found(t));
        }
        // The built-in cluster follows the agent's flags; a virtual cluster its own settings.
        let (auto_create, partitions) = if cluster == DEFAULT_CLUSTER {
            (
                self.builtin.auto_create_topics,
                self.builtin.default_partitions,
            )
        } else {
            match self.meta.virtual_cluster(cluster).await? {
                Some(vc) => (vc.auto_create_topics, vc.default_partitions.max(1)),
                None => (false, 1),
            }
        };
        if !(allow_create && auto_create) || topic_config::validate_new_topic_name(name).is_err() {
            return Ok(TopicLookup::Missing);
        }
        match self
            .create(cluster, name, partitions, &BTreeMap::new())
            .await
        {
            Ok(t) => {
                tracing::info!(
                    topic = name,
                    partitions = t.partitions,
                    "auto-created topic"
                );
                Ok(TopicLookup::Found(Arc::new(t)))
            }
            // Created concurrently by another request or agent: use that one.
            Err(StoreError::TopicExists(_)) => Ok(match self.get(cluster, name).await? {
                Some(t) => TopicLookup::Found(t),
                None => TopicLookup::Missing,
            }),
            Err(e) => Err(e),
        }
    }

    /// Creates a topic with the defaults of its cluster filled in: a virtual cluster's
    /// default retention applies unless `retention.ms` is given. Every way of creating a
    /// topic (CreateTopics, auto-creation, the console) goes through here.
    pub async fn create(
        &self,
        cluster: &str,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<TopicMeta, StoreError> {
        let mut configs = configs.clone();
        if cluster != DEFAULT_CLUSTER && !configs.contains_key("retention.ms") {
            if let Some(vc) = self.meta.virtual_cluster(cluster).await? {
                configs.insert(
                    "retention.ms".to_string(),
                    vc.default_retention_ms.to_string(),
                );
            }
        }
        let created = self
            .meta
            .create_topic(cluster, name, partitions, &configs)
            .await;
        self.forget(cluster, name);
        created
    }

    /// Deletes a topic with everything stored for it (batch rows, configs, committed
    /// offsets); false when it did not exist. Shared by DeleteTopics and the console.
    pub async fn delete(&self, cluster: &str, name: &str) -> Result<bool, StoreError> {
        let deleted = self.meta.delete_topic(cluster, name).await?;
        self.forget(cluster, name);
        if deleted {
            tracing::info!(topic = %name, "deleted topic");
        }
        Ok(deleted)
    }

    /// Drops a cached topic after a change made on this agent.
    pub fn forget(&self, cluster: &str, name: &str) {
        let mut cache = self.lock();
        cache
            .by_name
            .remove(&(cluster.to_string(), name.to_string()));
        cache
            .by_id
            .retain(|(c, _), (t, _)| !(c == cluster && t.name == name));
    }

    /// Drops every cached topic of a cluster (after the cluster was deleted).
    pub fn forget_cluster(&self, cluster: &str) {
        let mut cache = self.lock();
        cache.by_name.retain(|(c, _), _| c != cluster);
        cache.by_id.retain(|(c, _), _| c != cluster);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A poisoned lock only means a panic elsewhere mid-insert; the map is still usable.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
