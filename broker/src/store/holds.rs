//! Group holds asked for across agents (see `migrations/*/0008_group_holds.sql` and
//! [`crate::group_holds`]).

use super::sql::{Db, Metadata, StoreError};

/// Where a hold request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// Waiting for the coordinating agent.
    Requested,
    /// The coordinator holds the group empty.
    Granted,
    /// The group has this many live members.
    Refused(i64),
}

impl HoldState {
    fn encode(self) -> (&'static str, i64) {
        match self {
            HoldState::Requested => ("requested", 0),
            HoldState::Granted => ("granted", 0),
            HoldState::Refused(n) => ("refused", n),
        }
    }

    fn decode(state: &str, detail: i64) -> HoldState {
        match state {
            "granted" => HoldState::Granted,
            "refused" => HoldState::Refused(detail),
            _ => HoldState::Requested,
        }
    }
}

/// One live hold row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupHold {
    pub cluster: String,
    pub group: String,
    /// The agent id that asked.
    pub holder: String,
    pub state: HoldState,
}

impl Metadata {
    /// Asks for a hold on a group until `expires_at_ms`. False when a live hold (another
    /// reset's) is in the way.
    pub async fn request_hold(
        &self,
        cluster: &str,
        group: &str,
        holder: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<bool, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(sqlx::query(
                "INSERT INTO group_holds (cluster, group_id, holder, state, detail, expires_at_ms) \
                 VALUES ($1, $2, $3, 'requested', 0, $4) \
                 ON CONFLICT (cluster, group_id) DO UPDATE SET holder = excluded.holder, \
                 state = excluded.state, detail = 0, expires_at_ms = excluded.expires_at_ms \
                 WHERE group_holds.expires_at_ms <= $5",
            )
            .bind(cluster)
            .bind(group)
            .bind(holder)
            .bind(expires_at_ms)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
                > 0)
        })
    }

    /// The state of `holder`'s hold on a group (None: gone or another's).
    pub async fn hold_state(
        &self,
        cluster: &str,
        group: &str,
        holder: &str,
    ) -> Result<Option<HoldState>, StoreError> {
        let row: Option<(String, i64)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT state, detail FROM group_holds \
                 WHERE cluster = $1 AND group_id = $2 AND holder = $3",
            )
            .bind(cluster)
            .bind(group)
            .bind(holder)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(s, d)| HoldState::decode(&s, d)))
    }

    /// Answers a requested hold (only while it is still requested by `holder`).
    pub async fn answer_hold(
        &self,
        cluster: &str,
        group: &str,
        holder: &str,
        answer: HoldState,
    ) -> Result<bool, StoreError> {
        let (state, detail) = answer.encode();
        with_pool!(self, |pool, _lock, _db| {
            Ok(sqlx::query(
                "UPDATE group_holds SET state = $4, detail = $5 WHERE cluster = $1 \
                 AND group_id = $2 AND holder = $3 AND state = 'requested'",
            )
            .bind(cluster)
            .bind(group)
            .bind(holder)
            .bind(state)
            .bind(detail)
            .execute(pool)
            .await?
            .rows_affected()
                > 0)
        })
    }

    /// Ends `holder`'s hold on a group.
    pub async fn end_hold(
        &self,
        cluster: &str,
        group: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            sqlx::query(
                "DELETE FROM group_holds WHERE cluster = $1 AND group_id = $2 AND holder = $3",
            )
            .bind(cluster)
            .bind(group)
            .bind(holder)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Every hold that has not expired at `now_ms` (a read only: expired rows are simply
    /// overwritten by the next request for their group).
    pub async fn live_holds(&self, now_ms: i64) -> Result<Vec<GroupHold>, StoreError> {
        let rows: Vec<(String, String, String, String, i64)> =
            with_pool!(self, |pool, _lock, _db| {
                sqlx::query_as(
                    "SELECT cluster, group_id, holder, state, detail FROM group_holds \
                     WHERE expires_at_ms > $1 ORDER BY cluster, group_id",
                )
                .bind(now_ms)
                .fetch_all(pool)
                .await?
            });
        Ok(rows
            .into_iter()
            .map(|(cluster, group, holder, s, d)| GroupHold {
                cluster,
                group,
                holder,
                state: HoldState::decode(&s, d),
            })
            .collect())
    }
}
