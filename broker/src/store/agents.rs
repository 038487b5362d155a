//! The agent registry (who serves which Kafka node id) and job leases (who runs a singleton
//! job), both kept in the metadata database so that stateless agents can share them.
//!
//! # Node ids
//! An agent *leases* a node id by owning its `agents` row and keeps it by heartbeating
//! ([`Metadata::heartbeat_agent`]). A row not seen for the session timeout is expired: a
//! registering agent may take it over. The old holder finds out on its next heartbeat
//! (`false`) and must stop answering as that node id before it re-registers. Registering
//! gives up any other id the same agent id (random per process) held.
//!
//! # Job leases
//! [`Metadata::acquire_lease`] hands back a fencing token. A token names one unbroken tenure:
//! renewing a live lease keeps it; any new tenure (a different holder, or the same holder
//! after its lease expired or was released) gets the previous token plus one. Rows are never
//! deleted, so a job's tokens only grow and a stale holder can be fenced off by comparing
//! tokens wherever the job writes.
//!
//! # Consistency
//! Every claim is one conditional upsert (`INSERT … ON CONFLICT … DO UPDATE … WHERE`) whose
//! `WHERE` says when the row may change hands (free, expired or already ours). It is atomic on
//! both backends: SQLite runs one writer at a time, and Postgres locks the conflicting row and
//! re-checks the condition on its latest committed version, so of two racers exactly one
//! wins and the other sees no row changed. Registration without a requested id reads the
//! held ids, picks the smallest free one and claims it; a lost race (Postgres only: SQLite
//! holds its write lock from the start, `BEGIN IMMEDIATE`) is retried with a fresh read.
//! Giving up the agent's other ids happens after that transaction commits (see
//! [`Metadata::register_agent`]); a crash in between leaves a row nobody heartbeats, which
//! simply expires.
//!
//! # Clocks
//! Liveness is judged with the caller's `now_ms` against timestamps other agents wrote, so
//! agents' clocks must agree to well within the session timeout (and a lease's TTL). A
//! heartbeat on an expired row that nobody has taken over revives it.

use serde::Serialize;

use super::sql::{Db, Metadata, StoreError};

/// What an agent reports about its load at each heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AgentLoad {
    /// Record bytes produced to this agent per second, over its last few seconds.
    pub produce_bytes_per_s: i64,
    /// Record bytes fetched from this agent per second, over its last few seconds.
    pub fetch_bytes_per_s: i64,
    /// Bytes its produce and fetch gates hold now (requests in flight).
    pub inflight_bytes: i64,
}

/// One registered agent, as the registry lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentInfo {
    pub node_id: i32,
    /// Random per process: a restarted agent is a new holder.
    pub agent_id: String,
    /// The advertised Kafka listener (plaintext; the TLS one when plaintext is off).
    pub host: String,
    pub port: i32,
    /// The advertised TLS listener, when the agent has one.
    pub tls_host: Option<String>,
    pub tls_port: Option<i32>,
    pub rack: Option<String>,
    pub agent_group: String,
    pub roles: Vec<String>,
    pub version: String,
    pub started_at_ms: i64,
    pub last_seen_ms: i64,
    /// As of its last heartbeat.
    #[serde(flatten)]
    pub load: AgentLoad,
}

/// What an agent tells the registry about itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgent {
    pub agent_id: String,
    pub host: String,
    pub port: i32,
    /// The advertised TLS listener (host, port), if any.
    pub tls: Option<(String, i32)>,
    pub rack: Option<String>,
    pub agent_group: String,
    /// Stored comma-separated: a role name must not contain a comma.
    pub roles: Vec<String>,
    pub version: String,
    pub started_at_ms: i64,
}

/// How many times registration retries after other agents took the id it picked. Each
/// lost race means another agent registered (or revived its row) meanwhile, so this only
/// runs out under a storm of registrations.
const CLAIM_ATTEMPTS: u32 = 64;

type AgentRow = (
    i64,
    String,
    String,
    i64,
    Option<String>,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<i64>,
);

const AGENT_COLUMNS: &str = "node_id, agent_id, host, port, rack, agent_group, roles, version, \
     started_at_ms, last_seen_ms, produce_bytes_per_s, fetch_bytes_per_s, inflight_bytes, \
     tls_host, tls_port";

/// Takes `node_id` for the agent if the row is free, expired (seen before the cutoff) or
/// already its own; otherwise changes nothing. `$1` node id, `$2..$9` the agent, `$10` now,
/// `$11` the expiry cutoff, `$12..$13` the agent's TLS listener.
const CLAIM_NODE_ID: &str =
    "INSERT INTO agents (node_id, agent_id, host, port, rack, agent_group, \
     roles, version, started_at_ms, last_seen_ms, tls_host, tls_port) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, $13) \
     ON CONFLICT (node_id) DO UPDATE SET agent_id = excluded.agent_id, host = excluded.host, \
     port = excluded.port, tls_host = excluded.tls_host, tls_port = excluded.tls_port, \
     rack = excluded.rack, agent_group = excluded.agent_group, \
     roles = excluded.roles, version = excluded.version, started_at_ms = excluded.started_at_ms, \
     last_seen_ms = excluded.last_seen_ms, produce_bytes_per_s = 0, fetch_bytes_per_s = 0, \
     inflight_bytes = 0 \
     WHERE agents.agent_id = excluded.agent_id OR agents.last_seen_ms < $11";

/// Takes or renews a job lease: a new row starts at token 1; an existing row changes only
/// if the caller holds it live (renewal, same token) or it has expired (new tenure, token
/// plus one). Returns the token when the caller holds the lease afterwards. `$1` job,
/// `$2` holder, `$3` new expiry, `$4` now.
const ACQUIRE_LEASE: &str = "INSERT INTO job_leases (job, holder, token, expires_at_ms) \
     VALUES ($1, $2, 1, $3) \
     ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, \
     token = CASE WHEN job_leases.holder = excluded.holder AND job_leases.expires_at_ms > $4 \
     THEN job_leases.token ELSE job_leases.token + 1 END, \
     expires_at_ms = excluded.expires_at_ms \
     WHERE job_leases.expires_at_ms <= $4 OR job_leases.holder = excluded.holder \
     RETURNING token";

/// Runs `$body` in one write transaction bound to `$tx`, committing when it completes (an
/// early `return` or `?` rolls back). SQLite takes its write lock up front; on Postgres the
/// body's conditional upserts lock the rows they claim.
macro_rules! write_tx {
    ($self:expr, |$tx:ident| $body:expr) => {
        match &$self.db {
            Db::Sqlite(pool) => {
                let mut $tx = begin_write!(sqlite pool).await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            Db::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

impl Metadata {
    /// Leases a node id for an agent and returns it.
    ///
    /// With `requested_node_id` the agent gets exactly that id if it is free, expired (not
    /// seen for `session_timeout_ms`) or already its own, and
    /// [`StoreError::NodeIdTaken`] if a live agent holds it. Without, it gets its current id
    /// if it still has one, else the smallest id from 1 up that is free or expired (an
    /// expired row is replaced). Any other id the agent held is given up.
    pub async fn register_agent(
        &self,
        a: &NewAgent,
        requested_node_id: Option<i32>,
        now_ms: i64,
        session_timeout_ms: i64,
    ) -> Result<i32, StoreError> {
        if let Some(id) = requested_node_id.filter(|id| *id < 0) {
            return Err(StoreError::InvalidNodeId(id));
        }
        let cutoff = now_ms.saturating_sub(session_timeout_ms);
        let roles = encode_roles(&a.roles);
        let id = write_tx!(self, |tx| {
            let mut won = None;
            for _ in 0..CLAIM_ATTEMPTS {
                let candidate = match requested_node_id {
                    Some(id) => id,
                    None => {
                        let mine: Option<(i64,)> = sqlx::query_as(
                            "SELECT node_id FROM agents WHERE agent_id = $1 \
                             ORDER BY node_id LIMIT 1",
                        )
                        .bind(&a.agent_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                        match mine {
                            Some((id,)) => narrow(id)?,
                            None => {
                                let held: Vec<(i64,)> = sqlx::query_as(
                                    "SELECT node_id FROM agents \
                                     WHERE last_seen_ms >= $1 AND agent_id <> $2 \
                                     ORDER BY node_id",
                                )
                                .bind(cutoff)
                                .bind(&a.agent_id)
                                .fetch_all(&mut *tx)
                                .await?;
                                first_free_id(held.into_iter().map(|(id,)| id))
                                    .ok_or(StoreError::NoFreeNodeId)?
                            }
                        }
                    }
                };
                let claimed = sqlx::query(CLAIM_NODE_ID)
                    .bind(candidate as i64)
                    .bind(&a.agent_id)
                    .bind(&a.host)
                    .bind(a.port as i64)
                    .bind(&a.rack)
                    .bind(&a.agent_group)
                    .bind(&roles)
                    .bind(&a.version)
                    .bind(a.started_at_ms)
                    .bind(now_ms)
                    .bind(cutoff)
                    .bind(a.tls.as_ref().map(|(h, _)| h.as_str()))
                    .bind(a.tls.as_ref().map(|(_, p)| *p as i64))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0;
                if claimed {
                    won = Some(candidate);
                    break;
                }
                if requested_node_id.is_some() {
                    let holder: Option<(String, i64, i64)> = sqlx::query_as(
                        "SELECT host, port, last_seen_ms FROM agents WHERE node_id = $1",
                    )
                    .bind(candidate as i64)
                    .fetch_optional(&mut *tx)
                    .await?;
                    // Gone already (deregistered since): try again.
                    if let Some((host, port, last_seen_ms)) = holder {
                        return Err(StoreError::NodeIdTaken {
                            node_id: candidate,
                            holder: format!("{host}:{port}"),
                            seen_ms_ago: now_ms.saturating_sub(last_seen_ms).max(0),
                        });
                    }
                }
            }
            won.ok_or(StoreError::NodeIdContended(CLAIM_ATTEMPTS))?
        });
        // Give up any other id this agent held, outside the claim's transaction: on Postgres
        // a transaction holding its claimed row while it waits for another could deadlock
        // with a second registration doing the same the other way round. A row left behind
        // by a failure here is harmless: nobody heartbeats it, so it expires.
        with_pool!(self, |pool, _lock, _db| {
            sqlx::query("DELETE FROM agents WHERE agent_id = $1 AND node_id <> $2")
                .bind(&a.agent_id)
                .bind(id as i64)
                .execute(pool)
                .await?;
        });
        Ok(id)
    }

    /// Records that the agent is alive. `false` means the row no longer belongs to
    /// `agent_id`: another agent took the node id after this one was presumed dead (or it
    /// was deregistered), so the caller must stop serving as `node_id` or re-register.
    pub async fn heartbeat_agent(
        &self,
        node_id: i32,
        agent_id: &str,
        now_ms: i64,
        load: AgentLoad,
    ) -> Result<bool, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(sqlx::query(
                "UPDATE agents SET last_seen_ms = $3, produce_bytes_per_s = $4, \
                 fetch_bytes_per_s = $5, inflight_bytes = $6 WHERE node_id = $1 AND agent_id = $2",
            )
            .bind(node_id as i64)
            .bind(agent_id)
            .bind(now_ms)
            .bind(load.produce_bytes_per_s)
            .bind(load.fetch_bytes_per_s)
            .bind(load.inflight_bytes)
            .execute(pool)
            .await?
            .rows_affected()
                > 0)
        })
    }

    /// Gives the node id up at shutdown; returns whether the row was ours.
    pub async fn deregister_agent(&self, node_id: i32, agent_id: &str) -> Result<bool, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(
                sqlx::query("DELETE FROM agents WHERE node_id = $1 AND agent_id = $2")
                    .bind(node_id as i64)
                    .bind(agent_id)
                    .execute(pool)
                    .await?
                    .rows_affected()
                    > 0,
            )
        })
    }

    /// The agents seen within the session timeout, by node id.
    pub async fn live_agents(
        &self,
        now_ms: i64,
        session_timeout_ms: i64,
    ) -> Result<Vec<AgentInfo>, StoreError> {
        let cutoff = now_ms.saturating_sub(session_timeout_ms);
        let rows: Vec<AgentRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(&format!(
                "SELECT {AGENT_COLUMNS} FROM agents WHERE last_seen_ms >= $1 ORDER BY node_id"
            ))
            .bind(cutoff)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(agent_from_row).collect()
    }

    /// Takes, renews or is refused the lease of `job` for `ttl_ms`. Returns the fencing
    /// token when `holder` holds the lease afterwards, `None` when another holder's lease is
    /// still live.
    pub async fn acquire_lease(
        &self,
        job: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(ACQUIRE_LEASE)
                .bind(job)
                .bind(holder)
                .bind(now_ms.saturating_add(ttl_ms))
                .bind(now_ms)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(token,)| token))
    }

    /// Lets the lease of `job` expire at once if `holder` holds it. The row stays, so the
    /// next tenure's token is still larger. Returns whether the lease was the holder's.
    pub async fn release_lease(&self, job: &str, holder: &str) -> Result<bool, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(sqlx::query(
                "UPDATE job_leases SET expires_at_ms = $3 WHERE job = $1 AND holder = $2 \
                 AND expires_at_ms > $3",
            )
            .bind(job)
            .bind(holder)
            .bind(RELEASED_AT_MS)
            .execute(pool)
            .await?
            .rows_affected()
                > 0)
        })
    }

    /// Who holds the lease of `job` at `now_ms`, with their fencing token.
    pub async fn lease_holder(
        &self,
        job: &str,
        now_ms: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            Ok(sqlx::query_as(
                "SELECT holder, token FROM job_leases WHERE job = $1 AND expires_at_ms > $2",
            )
            .bind(job)
            .bind(now_ms)
            .fetch_optional(pool)
            .await?)
        })
    }
}

/// The expiry a released lease gets: before any clock reading, so it is expired for everyone.
const RELEASED_AT_MS: i64 = i64::MIN;

fn encode_roles(roles: &[String]) -> String {
    roles
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_roles(roles: &str) -> Vec<String> {
    roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

/// An `i32` read back from a BIGINT column (node ids and ports are written from `i32`).
fn narrow(v: i64) -> Result<i32, StoreError> {
    i32::try_from(v).map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
}

fn agent_from_row(r: AgentRow) -> Result<AgentInfo, StoreError> {
    Ok(AgentInfo {
        node_id: narrow(r.0)?,
        agent_id: r.1,
        host: r.2,
        port: narrow(r.3)?,
        tls_host: r.13,
        tls_port: r.14.map(narrow).transpose()?,
        rack: r.4,
        agent_group: r.5,
        roles: decode_roles(&r.6),
        version: r.7,
        started_at_ms: r.8,
        last_seen_ms: r.9,
        load: AgentLoad {
            produce_bytes_per_s: r.10,
            fetch_bytes_per_s: r.11,
            inflight_bytes: r.12,
        },
    })
}

/// The smallest id from 1 up that is not in `held` (ascending, as the query orders them).
/// `None` only if every id up to `i32::MAX` is held.
fn first_free_id(held: impl IntoIterator<Item = i64>) -> Option<i32> {
    let mut next: i64 = 1;
    for id in held {
        if id > next {
            break;
        }
        if id == next {
            next += 1;
        }
    }
    i32::try_from(next).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_first_free_id_fills_the_lowest_gap() {
        assert_eq!(first_free_id([]), Some(1));
        assert_eq!(first_free_id([1, 2, 3]), Some(4));
        assert_eq!(first_free_id([1, 3, 4]), Some(2));
        assert_eq!(first_free_id([2, 3]), Some(1));
        // Requested ids may sit at 0 or far above the range handed out.
        assert_eq!(first_free_id([0, 1, 2, 1000]), Some(3));
        assert_eq!(first_free_id([i32::MAX as i64 - 1]), Some(1));
    }

    #[test]
    fn agents_roles_round_trip_through_one_column() {
        let roles = vec!["produce".to_string(), " fetch ".to_string(), String::new()];
        let stored = encode_roles(&roles);
        assert_eq!(stored, "produce,fetch");
        assert_eq!(decode_roles(&stored), vec!["produce", "fetch"]);
        assert!(decode_roles("").is_empty());
    }
}
