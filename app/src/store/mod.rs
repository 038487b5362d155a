//! The console's own store: the platform data (users, organisations, memberships, invites
//! in [`accounts`]) and the pool the session store keeps its table in.
//!
//! One API over two SQL backends, like the broker's metadata store: each query is written
//! once in portable SQL and compiled for both pools through the `with_pool!` dispatch.
//!
//! By default this is the cluster metadata database (`--database-url`); with
//! `--platform-database-url` it is a database of its own. Nothing here reads or writes a
//! table of the broker, and the broker reads none of these.
//!
//! # Migrations
//! `migrations/platform/sqlite` and `migrations/platform/postgres`, versions from 1001 so
//! they cannot collide with the cluster metadata's in the one `_sqlx_migrations` table
//! sqlx keeps per database. Each migrator ignores the other's rows (`ignore_missing`).
//! A database created before the split already has these tables (from the broker's old
//! `0005_console_accounts`): 1001 creates them only if they do not exist.

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

/// Runs `$body` once per backend with `$pool` bound to the concrete pool and `$lock` to
/// the row-lock suffix of that dialect.
macro_rules! with_pool {
    ($self:expr, |$pool:ident, $lock:ident| $body:expr) => {
        match &$self.db {
            Db::Sqlite($pool) => {
                #[allow(unused)]
                let $lock = "";
                $body
            }
            Db::Postgres($pool) => {
                #[allow(unused)]
                let $lock = " FOR UPDATE";
                $body
            }
        }
    };
}

mod accounts;

pub use accounts::{Invite, InviteProblem, Member, MemberChange, Org, User};

/// Errors with meaning for callers; anything else is an opaque database failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("unsupported platform database url '{0}': use sqlite://PATH or postgres://…")]
    BadUrl(String),
    #[error("platform database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("platform migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The pool of the platform database, one per backend.
#[derive(Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The platform store handle; cheap to clone.
#[derive(Clone)]
pub struct Platform {
    db: Db,
}

impl Platform {
    /// Connects and migrates. `sqlite://PATH` (created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let db = if url.starts_with("sqlite:") {
            // The same settings as the broker's store: both may live in one file.
            let pool = broker::store::open_sqlite(url, 4).await?;
            let mut migrator = sqlx::migrate!("../migrations/platform/sqlite");
            migrator.set_ignore_missing(true);
            migrator.run(&pool).await?;
            Db::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = broker::store::open_postgres(url, 8).await?;
            let mut migrator = sqlx::migrate!("../migrations/platform/postgres");
            migrator.set_ignore_missing(true);
            migrator.run(&pool).await?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        Ok(Platform { db })
    }

    /// The pool, for the session store, which keeps its own table next to these.
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }
}
