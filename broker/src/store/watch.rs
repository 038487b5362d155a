//! How an agent learns that another agent committed: a mark that grows with every
//! committed segment file, and on Postgres a notification sent by the committing
//! transaction itself.

use sqlx::postgres::PgListener;

use super::sql::{Db, Metadata, StoreError};

/// The Postgres channel a segment commit notifies; the payload is the committing agent's id.
pub const COMMIT_CHANNEL: &str = "sluice_commits";

/// Notifications of other agents' commits (Postgres only).
pub struct CommitListener {
    inner: PgListener,
}

impl CommitListener {
    /// Waits for the next commit notification and returns the committing agent's id. An
    /// error means the connection was lost; notifications sent meanwhile are gone, so the
    /// caller re-reads [`Metadata::commit_mark`] before trusting the listener again.
    pub async fn next(&mut self) -> Result<String, StoreError> {
        Ok(self.inner.recv().await?.payload().to_string())
    }
}

impl Metadata {
    /// A number that grows whenever any agent commits a segment file: the newest file id.
    /// One index look-up on either backend.
    pub async fn commit_mark(&self) -> Result<i64, StoreError> {
        let (mark,): (Option<i64>,) = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as("SELECT MAX(id) FROM segment_files")
                .fetch_one(pool)
                .await?
        });
        Ok(mark.unwrap_or(0))
    }

    /// Listens for commit notifications: `None` on SQLite, which has none (agents sharing a
    /// SQLite file poll [`Metadata::commit_mark`] instead).
    pub async fn listen_commits(&self) -> Result<Option<CommitListener>, StoreError> {
        match &self.db {
            Db::Sqlite(_) => Ok(None),
            Db::Postgres(pool) => {
                let mut inner = PgListener::connect_with(pool).await?;
                inner.listen(COMMIT_CHANNEL).await?;
                Ok(Some(CommitListener { inner }))
            }
        }
    }
}
