//! Kafka ACLs and client quotas of the virtual clusters (migrations 0011 and 0012).
//!
//! # Consistency
//! A binding is its whole row (the primary key): creating one that exists changes nothing,
//! as in Kafka. Deleting by filter reads the cluster's bindings, matches them here and
//! deletes the matches in one transaction, returning what it deleted. Both tables are
//! emptied with their cluster (`store/clusters.rs`). The broker caches what it reads
//! ([`crate::acl::AclCache`], [`crate::quota::Quotas`]).

use super::sql::{Db, Metadata, StoreError};
use crate::acl::{
    AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType, MAX_ACLS_PER_CLUSTER,
};
use crate::clock::now_ms;

type AclRow = (i64, String, i64, String, String, i64, i64);

fn binding(r: AclRow) -> Option<AclBinding> {
    Some(AclBinding {
        resource_type: ResourceType::from_code(i8::try_from(r.0).ok()?)?,
        resource_name: r.1,
        pattern_type: PatternType::from_code(i8::try_from(r.2).ok()?)?,
        principal: r.3,
        host: r.4,
        operation: Operation::from_code(i8::try_from(r.5).ok()?)?,
        permission: Permission::from_code(i8::try_from(r.6).ok()?)?,
    })
}

/// One quota of one key: `producer_byte_rate` or `consumer_byte_rate`, bytes per second.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClientQuota {
    pub user: String,
    pub key: String,
    pub value: f64,
}

impl Metadata {
    /// Whether ACLs are enforced in a cluster (false for clusters without a row, such as
    /// the built-in `default`).
    pub async fn acls_enabled(&self, cluster: &str) -> Result<bool, StoreError> {
        let v: Option<i64> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_scalar("SELECT acls_enabled FROM virtual_clusters WHERE id = $1")
                .bind(cluster)
                .fetch_optional(pool)
                .await?
        });
        Ok(v.is_some_and(|v| v != 0))
    }

    pub async fn set_acls_enabled(&self, cluster: &str, enabled: bool) -> Result<bool, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(
                sqlx::query("UPDATE virtual_clusters SET acls_enabled = $2 WHERE id = $1")
                    .bind(cluster)
                    .bind(enabled as i64)
                    .execute(pool)
                    .await?
                    .rows_affected()
                    > 0,
            )
        })
    }

    /// A cluster's bindings, in a stable order.
    pub async fn acls(&self, cluster: &str) -> Result<Vec<AclBinding>, StoreError> {
        let rows: Vec<AclRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT resource_type, resource_name, pattern_type, principal, host, operation, \
                 permission FROM acls WHERE cluster = $1 \
                 ORDER BY resource_type, resource_name, pattern_type, principal, host, operation, permission",
            )
            .bind(cluster)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().filter_map(binding).collect())
    }

    /// Stores bindings (one that exists already is left as it is). False, with nothing
    /// stored, when the cluster would hold more than [`MAX_ACLS_PER_CLUSTER`].
    pub async fn create_acls(
        &self,
        cluster: &str,
        bindings: &[AclBinding],
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        with_pool!(self, |pool, _lock, _db| {
            let mut tx = pool.begin().await?;
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM acls WHERE cluster = $1")
                .bind(cluster)
                .fetch_one(&mut *tx)
                .await?;
            if count as usize + bindings.len() > MAX_ACLS_PER_CLUSTER {
                return Ok(false);
            }
            for b in bindings {
                sqlx::query(
                    "INSERT INTO acls (cluster, resource_type, resource_name, pattern_type, \
                     principal, host, operation, permission, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                )
                .bind(cluster)
                .bind(b.resource_type as i64)
                .bind(&b.resource_name)
                .bind(b.pattern_type as i64)
                .bind(&b.principal)
                .bind(&b.host)
                .bind(b.operation as i64)
                .bind(b.permission as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Deletes the bindings matching a filter; returns them.
    pub async fn delete_acls(
        &self,
        cluster: &str,
        filter: &AclFilter,
    ) -> Result<Vec<AclBinding>, StoreError> {
        let matched: Vec<AclBinding> = self
            .acls(cluster)
            .await?
            .into_iter()
            .filter(|b| filter.matches(b))
            .collect();
        if matched.is_empty() {
            return Ok(matched);
        }
        with_pool!(self, |pool, _lock, _db| {
            let mut tx = pool.begin().await?;
            for b in &matched {
                sqlx::query(
                    "DELETE FROM acls WHERE cluster = $1 AND resource_type = $2 AND \
                     resource_name = $3 AND pattern_type = $4 AND principal = $5 AND host = $6 \
                     AND operation = $7 AND permission = $8",
                )
                .bind(cluster)
                .bind(b.resource_type as i64)
                .bind(&b.resource_name)
                .bind(b.pattern_type as i64)
                .bind(&b.principal)
                .bind(&b.host)
                .bind(b.operation as i64)
                .bind(b.permission as i64)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        Ok(matched)
    }

    /// A cluster's client quotas, by key id then quota name.
    pub async fn client_quotas(&self, cluster: &str) -> Result<Vec<ClientQuota>, StoreError> {
        let rows: Vec<(String, String, f64)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT entity_user, quota_key, value FROM client_quotas WHERE cluster = $1 \
                 ORDER BY entity_user, quota_key",
            )
            .bind(cluster)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(user, key, value)| ClientQuota { user, key, value })
            .collect())
    }

    /// Sets (`Some`) or removes (`None`) quotas of keys, in one transaction.
    pub async fn alter_client_quotas(
        &self,
        cluster: &str,
        changes: &[(String, String, Option<f64>)],
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            let mut tx = pool.begin().await?;
            for (user, key, value) in changes {
                match value {
                    Some(v) => {
                        sqlx::query(
                            "INSERT INTO client_quotas (cluster, entity_user, quota_key, value) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (cluster, entity_user, quota_key) \
                             DO UPDATE SET value = excluded.value",
                        )
                        .bind(cluster)
                        .bind(user)
                        .bind(key)
                        .bind(*v)
                        .execute(&mut *tx)
                        .await?;
                    }
                    None => {
                        sqlx::query(
                            "DELETE FROM client_quotas WHERE cluster = $1 AND entity_user = $2 \
                             AND quota_key = $3",
                        )
                        .bind(cluster)
                        .bind(user)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
