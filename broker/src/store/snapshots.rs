//! Consumer-group snapshots written by coordinating agents for the console on the others
//! (see `migrations/*/0009_group_snapshots.sql` and [`crate::group_snapshots`]).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::sql::{Db, Metadata, StoreError};

/// One member as its coordinator last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// A group as its coordinator last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    /// Kafka's state name (`Stable`, `Empty`, …).
    pub phase: String,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<SnapshotMember>,
}

/// A snapshot with the group it describes and the agent that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedGroup {
    pub group: String,
    pub agent_id: String,
    pub snapshot: GroupSnapshot,
}

type MemberRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
);
type GroupRow = (String, String, String, i64, String, String);

impl Metadata {
    /// Writes `agent_id`'s snapshot of a group, replacing whatever was there.
    pub async fn publish_group(
        &self,
        cluster: &str,
        group: &str,
        agent_id: &str,
        snapshot: &GroupSnapshot,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        macro_rules! body {
            ($tx:ident) => {{
                sqlx::query(
                    "INSERT INTO group_snapshots (cluster, group_id, agent_id, phase, generation, \
                     protocol_type, protocol, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (cluster, group_id) DO UPDATE SET agent_id = excluded.agent_id, \
                     phase = excluded.phase, generation = excluded.generation, \
                     protocol_type = excluded.protocol_type, protocol = excluded.protocol, \
                     updated_at_ms = excluded.updated_at_ms",
                )
                .bind(cluster)
                .bind(group)
                .bind(agent_id)
                .bind(&snapshot.phase)
                .bind(snapshot.generation as i64)
                .bind(&snapshot.protocol_type)
                .bind(&snapshot.protocol)
                .bind(now_ms)
                .execute(&mut *$tx)
                .await?;
                sqlx::query(
                    "DELETE FROM group_snapshot_members WHERE cluster = $1 AND group_id = $2",
                )
                .bind(cluster)
                .bind(group)
                .execute(&mut *$tx)
                .await?;
                for m in &snapshot.members {
                    sqlx::query(
                        "INSERT INTO group_snapshot_members (cluster, group_id, member_id, \
                         instance_id, client_id, client_host, metadata, assignment) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(cluster)
                    .bind(group)
                    .bind(&m.member_id)
                    .bind(&m.instance_id)
                    .bind(&m.client_id)
                    .bind(&m.client_host)
                    .bind(B64.encode(&m.metadata))
                    .bind(B64.encode(&m.assignment))
                    .execute(&mut *$tx)
                    .await?;
                }
            }};
        }
        match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = begin_write!(sqlite pool).await?;
                body!(tx);
                tx.commit().await?;
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                body!(tx);
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Removes `agent_id`'s snapshot of a group (the group left it); another agent's
    /// snapshot of the same group stays.
    pub async fn withdraw_group(
        &self,
        cluster: &str,
        group: &str,
        agent_id: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            let mut tx = pool.begin().await?;
            let gone = sqlx::query(
                "DELETE FROM group_snapshots WHERE cluster = $1 AND group_id = $2 AND agent_id = $3",
            )
            .bind(cluster)
            .bind(group)
            .bind(agent_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if gone > 0 {
                sqlx::query(
                    "DELETE FROM group_snapshot_members WHERE cluster = $1 AND group_id = $2",
                )
                .bind(cluster)
                .bind(group)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every snapshot of a cluster's groups (all agents'; the caller drops stale ones), or
    /// of one group when `group` is given.
    pub async fn group_snapshots(
        &self,
        cluster: &str,
        group: Option<&str>,
    ) -> Result<Vec<PublishedGroup>, StoreError> {
        let filter = if group.is_some() {
            " AND group_id = $2"
        } else {
            ""
        };
        let groups_sql = format!(
            "SELECT group_id, agent_id, phase, generation, protocol_type, protocol \
             FROM group_snapshots WHERE cluster = $1{filter} ORDER BY group_id"
        );
        let members_sql = format!(
            "SELECT group_id, member_id, instance_id, client_id, client_host, metadata, assignment \
             FROM group_snapshot_members WHERE cluster = $1{filter} ORDER BY group_id, member_id"
        );
        let one = group.unwrap_or("");
        let (groups, members): (Vec<GroupRow>, Vec<MemberRow>) =
            with_pool!(self, |pool, _lock, _db| {
                let mut q = sqlx::query_as(&groups_sql).bind(cluster);
                let mut m = sqlx::query_as(&members_sql).bind(cluster);
                if group.is_some() {
                    q = q.bind(one);
                    m = m.bind(one);
                }
                (q.fetch_all(pool).await?, m.fetch_all(pool).await?)
            });
        let decode = |s: &str| B64.decode(s).unwrap_or_default();
        Ok(groups
            .into_iter()
            .map(
                |(group, agent_id, phase, generation, protocol_type, protocol)| {
                    let members = members
                        .iter()
                        .filter(|m| m.0 == group)
                        .map(|m| SnapshotMember {
                            member_id: m.1.clone(),
                            instance_id: m.2.clone(),
                            client_id: m.3.clone(),
                            client_host: m.4.clone(),
                            metadata: decode(&m.5),
                            assignment: decode(&m.6),
                        })
                        .collect();
                    PublishedGroup {
                        group,
                        agent_id,
                        snapshot: GroupSnapshot {
                            phase,
                            generation: generation as i32,
                            protocol_type,
                            protocol,
                            members,
                        },
                    }
                },
            )
            .collect())
    }
}
