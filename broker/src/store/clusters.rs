//! Virtual clusters: the namespaces of topics, consumer groups, offsets and API keys, with
//! the settings their topics are created with. The console creates, renames, configures and
//! deletes them; the Kafka port only reads them (auto-creation, default retention).
//!
//! # Consistency
//! Deleting a cluster removes its metadata rows in one transaction: topics with their
//! batch rows, committed offsets, lag history, API keys and the cluster itself. The
//! segment objects stay in the bucket until the cleanup job finds them unreferenced.
//! Callers holding cached topics drop them afterwards (the console's
//! [`crate::inspect::ClusterView::delete_virtual_cluster`] does).

use serde::Serialize;

use super::sql::{Db, Metadata, StoreError, TOPIC_ROW_TABLES};
use crate::clock::now_ms;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualCluster {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created_at_ms: i64,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub default_retention_ms: i64,
    /// Whether Kafka ACLs are enforced (see [`crate::acl`]).
    pub acls_enabled: bool,
}

type ClusterRow = (String, String, String, i64, i64, i64, i64, i64);

fn cluster(r: ClusterRow) -> VirtualCluster {
    VirtualCluster {
        id: r.0,
        org_id: r.1,
        name: r.2,
        created_at_ms: r.3,
        auto_create_topics: r.4 != 0,
        default_partitions: r.5 as i32,
        default_retention_ms: r.6,
        acls_enabled: r.7 != 0,
    }
}

const CLUSTER_COLUMNS: &str =
    "id, org_id, name, created_at_ms, auto_create_topics, default_partitions, default_retention_ms, \
     acls_enabled";

impl Metadata {
    pub async fn create_virtual_cluster(
        &self,
        org_id: &str,
        name: &str,
    ) -> Result<VirtualCluster, StoreError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        let inserted = with_pool!(self, |pool, _lock, _db| {
            sqlx::query(
                "INSERT INTO virtual_clusters (id, org_id, name, created_at_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (org_id, name) DO NOTHING",
            )
            .bind(&id)
            .bind(org_id)
            .bind(name)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "a cluster named '{name}'"
            )));
        }
        Ok(VirtualCluster {
            id,
            org_id: org_id.to_string(),
            name: name.to_string(),
            created_at_ms: now,
            auto_create_topics: true,
            default_partitions: 1,
            default_retention_ms: 604_800_000,
            acls_enabled: false,
        })
    }

    pub async fn virtual_clusters(&self, org_id: &str) -> Result<Vec<VirtualCluster>, StoreError> {
        let rows: Vec<ClusterRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(&format!(
                "SELECT {CLUSTER_COLUMNS} FROM virtual_clusters WHERE org_id = $1 ORDER BY name"
            ))
            .bind(org_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(cluster).collect())
    }

    /// Every virtual cluster of every organisation (for the admin command line).
    pub async fn all_virtual_clusters(&self) -> Result<Vec<VirtualCluster>, StoreError> {
        let rows: Vec<ClusterRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(&format!(
                "SELECT {CLUSTER_COLUMNS} FROM virtual_clusters ORDER BY name, id"
            ))
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(cluster).collect())
    }

    pub async fn virtual_cluster(&self, id: &str) -> Result<Option<VirtualCluster>, StoreError> {
        let row: Option<ClusterRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(&format!(
                "SELECT {CLUSTER_COLUMNS} FROM virtual_clusters WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(cluster))
    }

    pub async fn rename_virtual_cluster(&self, id: &str, name: &str) -> Result<bool, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            let r = sqlx::query("UPDATE virtual_clusters SET name = $2 WHERE id = $1")
                .bind(id)
                .bind(name)
                .execute(pool)
                .await;
            match r {
                Ok(r) => Ok(r.rows_affected() > 0),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(
                    StoreError::AlreadyExists(format!("a cluster named '{name}'")),
                ),
                Err(e) => Err(e.into()),
            }
        })
    }

    pub async fn update_cluster_settings(
        &self,
        id: &str,
        auto_create_topics: bool,
        default_partitions: i32,
        default_retention_ms: i64,
    ) -> Result<bool, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(sqlx::query(
                "UPDATE virtual_clusters SET auto_create_topics = $2, default_partitions = $3, \
                 default_retention_ms = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(auto_create_topics as i64)
            .bind(default_partitions as i64)
            .bind(default_retention_ms)
            .execute(pool)
            .await?
            .rows_affected()
                > 0)
        })
    }

    /// Deletes a virtual cluster with everything in it: topics (their batch rows; the
    /// segment objects go when the cleanup job finds them unreferenced), committed
    /// offsets, lag history, lag alert rules and API keys. Returns the names of the
    /// topics deleted.
    pub async fn delete_virtual_cluster(&self, id: &str) -> Result<Vec<String>, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            let mut tx = pool.begin().await?;
            // The cluster row goes first: a topic being created in it holds that row
            // (see `create_topic`), so this waits for it and then deletes it too; a topic
            // created after this finds no cluster.
            sqlx::query("DELETE FROM virtual_clusters WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let topics: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, name FROM topics WHERE cluster = $1")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            for (topic_id, _) in &topics {
                for table in TOPIC_ROW_TABLES {
                    sqlx::query(&format!("DELETE FROM {table} WHERE topic_id = $1"))
                        .bind(topic_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for sql in [
                "DELETE FROM topics WHERE cluster = $1",
                "DELETE FROM group_offsets WHERE cluster = $1",
                "DELETE FROM lag_history WHERE cluster = $1",
                "DELETE FROM group_holds WHERE cluster = $1",
                "DELETE FROM group_snapshots WHERE cluster = $1",
                "DELETE FROM group_snapshot_members WHERE cluster = $1",
                "DELETE FROM api_keys WHERE cluster_id = $1",
                "DELETE FROM acls WHERE cluster = $1",
                "DELETE FROM client_quotas WHERE cluster = $1",
                "DELETE FROM producer_ids WHERE cluster = $1",
                "DELETE FROM lag_alerts WHERE cluster = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(topics.into_iter().map(|t| t.1).collect())
        })
    }
}
