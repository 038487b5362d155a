//! Lag alert rules and where each stands (migration 0015; the rules themselves are
//! [`crate::lag::alerts`]).
//!
//! # Consistency
//! A rule is one row: its definition (written once, by [`Metadata::create_lag_alert`]) and
//! its state (written only by the lag job, [`Metadata::save_lag_alert_states`], all rules of
//! a pass in one transaction). A state saved for a rule deleted meanwhile changes nothing.
//! Creating a rule in a virtual cluster locks the cluster's row (Postgres), so it waits for
//! a concurrent deletion of the cluster and then finds it gone; the rows of a deleted cluster
//! are removed with it (`store/clusters.rs`). The count bound is checked in the same
//! transaction as the insert.

use super::sql::{Db, Metadata, StoreError};
use crate::clock::now_ms;
use crate::lag::alerts::{
    AlertRule, AlertState, AlertStatus, LagAlert, NewAlertRule, MAX_ALERTS_PER_CLUSTER,
};

/// id, cluster, group, threshold, for, url, created, state, above since, since, last lag,
/// evaluated at.
type AlertRow = (
    String,
    String,
    String,
    f64,
    i64,
    String,
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<f64>,
    Option<i64>,
);

const ALERT_COLUMNS: &str =
    "id, cluster, group_id, max_time_lag_seconds, for_seconds, webhook_url, \
     created_at_ms, state, above_since_ms, firing_since_ms, last_time_lag_seconds, evaluated_at_ms";

fn alert(r: AlertRow) -> LagAlert {
    LagAlert {
        rule: AlertRule {
            id: r.0,
            cluster: r.1,
            group: r.2,
            max_time_lag_seconds: r.3,
            for_seconds: r.4,
            webhook_url: r.5,
            created_at_ms: r.6,
        },
        status: AlertState {
            state: AlertStatus::parse(&r.7),
            above_since_ms: r.8,
            since_ms: r.9,
            last_time_lag_seconds: r.10,
            evaluated_at_ms: r.11,
        },
    }
}

impl Metadata {
    /// Stores a new rule (checked by the caller with [`crate::lag::alerts::check_rule`]) in
    /// state ok. None, with nothing stored, when the cluster holds
    /// [`MAX_ALERTS_PER_CLUSTER`] rules already; UnknownCluster when the virtual cluster
    /// does not exist (the built-in `default` always does).
    pub async fn create_lag_alert(
        &self,
        cluster: &str,
        rule: &NewAlertRule<'_>,
    ) -> Result<Option<LagAlert>, StoreError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        let stored = with_pool!(self, |pool, lock, _db| {
            let mut tx = pool.begin().await?;
            if cluster != crate::session::DEFAULT_CLUSTER {
                let exists: Option<(String,)> = sqlx::query_as(&format!(
                    "SELECT id FROM virtual_clusters WHERE id = $1{lock}"
                ))
                .bind(cluster)
                .fetch_optional(&mut *tx)
                .await?;
                if exists.is_none() {
                    return Err(StoreError::UnknownCluster(cluster.to_string()));
                }
            }
            let count: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM lag_alerts WHERE cluster = $1")
                    .bind(cluster)
                    .fetch_one(&mut *tx)
                    .await?;
            if count as usize >= MAX_ALERTS_PER_CLUSTER {
                false
            } else {
                sqlx::query(
                    "INSERT INTO lag_alerts (id, cluster, group_id, max_time_lag_seconds, \
                     for_seconds, webhook_url, created_at_ms, state) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'ok')",
                )
                .bind(&id)
                .bind(cluster)
                .bind(rule.group)
                .bind(rule.max_time_lag_seconds)
                .bind(rule.for_seconds)
                .bind(rule.webhook_url)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                true
            }
        });
        if !stored {
            return Ok(None);
        }
        Ok(Some(LagAlert {
            rule: AlertRule {
                id,
                cluster: cluster.to_string(),
                group: rule.group.to_string(),
                max_time_lag_seconds: rule.max_time_lag_seconds,
                for_seconds: rule.for_seconds,
                webhook_url: rule.webhook_url.to_string(),
                created_at_ms: now,
            },
            status: AlertState::default(),
        }))
    }

    /// A cluster's rules, by group then age.
    pub async fn lag_alerts(&self, cluster: &str) -> Result<Vec<LagAlert>, StoreError> {
        let rows: Vec<AlertRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(&format!(
                "SELECT {ALERT_COLUMNS} FROM lag_alerts WHERE cluster = $1 \
                 ORDER BY group_id, created_at_ms, id"
            ))
            .bind(cluster)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(alert).collect())
    }

    /// Every rule of every cluster (what the lag job evaluates).
    pub async fn all_lag_alerts(&self) -> Result<Vec<LagAlert>, StoreError> {
        let rows: Vec<AlertRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(&format!(
                "SELECT {ALERT_COLUMNS} FROM lag_alerts ORDER BY cluster, group_id, created_at_ms, id"
            ))
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(alert).collect())
    }

    /// Deletes one rule of a cluster; returns whether it existed.
    pub async fn delete_lag_alert(&self, cluster: &str, id: &str) -> Result<bool, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(
                sqlx::query("DELETE FROM lag_alerts WHERE cluster = $1 AND id = $2")
                    .bind(cluster)
                    .bind(id)
                    .execute(pool)
                    .await?
                    .rows_affected()
                    > 0,
            )
        })
    }

    /// Writes the state of rules (by id) in one transaction; ids no longer stored are
    /// skipped.
    pub async fn save_lag_alert_states(
        &self,
        states: &[(String, AlertState)],
    ) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        with_pool!(self, |pool, _lock, _db| {
            let mut tx = pool.begin().await?;
            for (id, s) in states {
                sqlx::query(
                    "UPDATE lag_alerts SET state = $2, above_since_ms = $3, firing_since_ms = $4, \
                     last_time_lag_seconds = $5, evaluated_at_ms = $6 WHERE id = $1",
                )
                .bind(id)
                .bind(s.state.as_str())
                .bind(s.above_since_ms)
                .bind(s.since_ms)
                .bind(s.last_time_lag_seconds)
                .bind(s.evaluated_at_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
