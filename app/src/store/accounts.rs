//! Accounts: users, organisations, memberships and invites.
//!
//! Rules that protect the data live here, inside one transaction each, so that the console
//! and the JSON API cannot get around them: an invite is used at most once and never after
//! it expires; an organisation always keeps at least one owner.

use broker::clock::now_ms;
use serde::Serialize;

use super::{Db, Platform, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub joined_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invite {
    pub id: String,
    pub org_id: String,
    pub role: String,
    pub note: String,
    pub created_by: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl Invite {
    /// Why this invite cannot be used at `now_ms`, if it cannot.
    pub fn problem(&self, now_ms: i64) -> Option<InviteProblem> {
        if self.revoked_at_ms.is_some() {
            Some(InviteProblem::Revoked)
        } else if self.used_at_ms.is_some() {
            Some(InviteProblem::Used)
        } else if self.expires_at_ms <= now_ms {
            Some(InviteProblem::Expired)
        } else {
            None
        }
    }
}

/// Why an invite cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteProblem {
    Unknown,
    Expired,
    Used,
    Revoked,
    AlreadyMember,
}

impl InviteProblem {
    pub fn message(self) -> &'static str {
        match self {
            InviteProblem::Unknown => "This invite link is not valid. Ask for a new one.",
            InviteProblem::Expired => "This invite link has expired. Ask for a new one.",
            InviteProblem::Used => "This invite link has already been used. Ask for a new one.",
            InviteProblem::Revoked => "This invite link was revoked. Ask for a new one.",
            InviteProblem::AlreadyMember => "You are already a member of this organisation.",
        }
    }
}

/// The outcome of a change to a membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    Done,
    NotMember,
    /// Refused: the organisation would be left without an owner.
    LastOwner,
}

type InviteRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

const INVITE_COLUMNS: &str =
    "id, org_id, role, note, created_by, created_at_ms, expires_at_ms, used_at_ms, revoked_at_ms";

fn invite(r: InviteRow) -> Invite {
    Invite {
        id: r.0,
        org_id: r.1,
        role: r.2,
        note: r.3,
        created_by: r.4,
        created_at_ms: r.5,
        expires_at_ms: r.6,
        used_at_ms: r.7,
        revoked_at_ms: r.8,
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Inserts `$user` inside transaction `$tx`; an e-mail address already taken ends the
/// calling function with `AlreadyExists` (the transaction rolls back when dropped).
macro_rules! insert_user {
    ($tx:ident, $user:ident, $password_hash:expr) => {
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(&$user.id)
        .bind(&$user.email)
        .bind($password_hash)
        .bind($user.created_at_ms)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "an account for {}",
                $user.email
            )));
        }
    };
}

/// Uses up an invite inside transaction `$tx`, giving its (org id, role). The one rule of
/// invites lives here: unused, not revoked, not expired, and used exactly once (the
/// conditional UPDATE is atomic). When it cannot be used, the calling function returns
/// `Ok(Err(reason))` and the transaction rolls back.
macro_rules! use_invite {
    ($self:ident, $tx:ident, $token_hash:expr, $now:expr, $user_id:expr) => {{
        let used: Option<(String, String)> = sqlx::query_as(
            "UPDATE invites SET used_at_ms = $2, used_by = $3 WHERE token_hash = $1 \
             AND used_at_ms IS NULL AND revoked_at_ms IS NULL AND expires_at_ms > $2 \
             RETURNING org_id, role",
        )
        .bind($token_hash)
        .bind($now)
        .bind($user_id)
        .fetch_optional(&mut *$tx)
        .await?;
        match used {
            Some(found) => found,
            None => {
                drop($tx);
                return Ok(Err($self.invite_problem($token_hash, $now).await?));
            }
        }
    }};
}

impl Platform {
    pub async fn user_count(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = with_pool!(self, |pool, _lock| {
            sqlx::query_as("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }

    /// Creates a user who starts a new organisation as its owner.
    pub async fn create_user_with_org(
        &self,
        email: &str,
        password_hash: &str,
        org_name: &str,
    ) -> Result<(User, Org), StoreError> {
        let now = now_ms();
        let user = User {
            id: new_id(),
            email: email.to_string(),
            created_at_ms: now,
        };
        let org = Org {
            id: new_id(),
            name: org_name.to_string(),
            created_at_ms: now,
        };
        with_pool!(self, |pool, _lock| {
            let mut tx = pool.begin().await?;
            insert_user!(tx, user, password_hash);
            sqlx::query("INSERT INTO orgs (id, name, created_at_ms) VALUES ($1, $2, $3)")
                .bind(&org.id)
                .bind(org_name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO memberships (org_id, user_id, role, created_at_ms) VALUES ($1, $2, 'owner', $3)",
            )
            .bind(&org.id)
            .bind(&user.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok((user, org))
    }

    /// Creates a user and joins them to the organisation of an invite, using it up, in one
    /// transaction: nothing is created when the invite cannot be used.
    pub async fn create_user_with_invite(
        &self,
        email: &str,
        password_hash: &str,
        token_hash: &str,
    ) -> Result<Result<(User, String), InviteProblem>, StoreError> {
        let now = now_ms();
        let user = User {
            id: new_id(),
            email: email.to_string(),
            created_at_ms: now,
        };
        with_pool!(self, |pool, _lock| {
            let mut tx = pool.begin().await?;
            insert_user!(tx, user, password_hash);
            let (org_id, role) = use_invite!(self, tx, token_hash, now, &user.id);
            sqlx::query(
                "INSERT INTO memberships (org_id, user_id, role, created_at_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(&org_id)
            .bind(&user.id)
            .bind(&role)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Ok((user, org_id)))
        })
    }

    /// An existing user accepts an invite. Returns the organisation joined.
    pub async fn accept_invite(
        &self,
        token_hash: &str,
        user_id: &str,
    ) -> Result<Result<String, InviteProblem>, StoreError> {
        let now = now_ms();
        with_pool!(self, |pool, _lock| {
            let mut tx = pool.begin().await?;
            let (org_id, role) = use_invite!(self, tx, token_hash, now, user_id);
            let joined = sqlx::query(
                "INSERT INTO memberships (org_id, user_id, role, created_at_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (org_id, user_id) DO NOTHING",
            )
            .bind(&org_id)
            .bind(user_id)
            .bind(&role)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if joined == 0 {
                // Leave the invite unused for whoever it was meant for.
                drop(tx);
                return Ok(Err(InviteProblem::AlreadyMember));
            }
            tx.commit().await?;
            Ok(Ok(org_id))
        })
    }

    async fn invite_problem(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<InviteProblem, StoreError> {
        Ok(match self.invite_by_token(token_hash).await? {
            None => InviteProblem::Unknown,
            Some((i, _)) => i.problem(now).unwrap_or(InviteProblem::Unknown),
        })
    }

    /// A user and their password hash, by e-mail address (compared as stored: callers
    /// normalise it).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>, StoreError> {
        let row: Option<(String, String, String, i64)> = with_pool!(self, |pool, _lock| {
            sqlx::query_as(
                "SELECT id, email, password_hash, created_at_ms FROM users WHERE email = $1",
            )
            .bind(email)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|r| {
            (
                User {
                    id: r.0,
                    email: r.1,
                    created_at_ms: r.3,
                },
                r.2,
            )
        }))
    }

    /// The first organisation created (oldest, ties broken by id): the server's owner
    /// organisation, to which the built-in `default` cluster belongs. Organisations are
    /// never deleted, so once there is one the answer never changes.
    pub async fn first_org_id(&self) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = with_pool!(self, |pool, _lock| {
            sqlx::query_as("SELECT id FROM orgs ORDER BY created_at_ms, id LIMIT 1")
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|r| r.0))
    }

    /// Every organisation, by name (for the admin command line).
    pub async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        let rows: Vec<(String, String, i64)> = with_pool!(self, |pool, _lock| {
            sqlx::query_as("SELECT id, name, created_at_ms FROM orgs ORDER BY name, id")
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| Org {
                id: r.0,
                name: r.1,
                created_at_ms: r.2,
            })
            .collect())
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row: Option<(String, String, i64)> = with_pool!(self, |pool, _lock| {
            sqlx::query_as("SELECT id, email, created_at_ms FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|r| User {
            id: r.0,
            email: r.1,
            created_at_ms: r.2,
        }))
    }

    /// The organisations a user belongs to, with their role, oldest membership first.
    pub async fn memberships_of(&self, user_id: &str) -> Result<Vec<(Org, String)>, StoreError> {
        let rows: Vec<(String, String, i64, String)> = with_pool!(self, |pool, _lock| {
            sqlx::query_as(
                "SELECT o.id, o.name, o.created_at_ms, m.role FROM memberships m \
                 JOIN orgs o ON o.id = m.org_id WHERE m.user_id = $1 \
                 ORDER BY m.created_at_ms, o.id",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    Org {
                        id: r.0,
                        name: r.1,
                        created_at_ms: r.2,
                    },
                    r.3,
                )
            })
            .collect())
    }

    pub async fn org_members(&self, org_id: &str) -> Result<Vec<Member>, StoreError> {
        let rows: Vec<(String, String, String, i64)> = with_pool!(self, |pool, _lock| {
            sqlx::query_as(
                "SELECT u.id, u.email, m.role, m.created_at_ms FROM memberships m \
                 JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 \
                 ORDER BY m.created_at_ms, u.email",
            )
            .bind(org_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| Member {
                user_id: r.0,
                email: r.1,
                role: r.2,
                joined_at_ms: r.3,
            })
            .collect())
    }

    /// Changes a member's role (`None` removes them). Refused when it would leave the
    /// organisation without an owner.
    pub async fn change_member(
        &self,
        org_id: &str,
        user_id: &str,
        role: Option<&str>,
    ) -> Result<MemberChange, StoreError> {
        with_pool!(self, |pool, lock| {
            let mut tx = pool.begin().await?;
            // Lock the organisation's membership rows so two concurrent demotions cannot
            // both see a second owner.
            let members: Vec<(String, String)> = sqlx::query_as(&format!(
                "SELECT user_id, role FROM memberships WHERE org_id = $1{lock}"
            ))
            .bind(org_id)
            .fetch_all(&mut *tx)
            .await?;
            let Some(current) = members.iter().find(|m| m.0 == user_id).map(|m| m.1.clone()) else {
                return Ok(MemberChange::NotMember);
            };
            let owners = members.iter().filter(|m| m.1 == "owner").count();
            if current == "owner" && role != Some("owner") && owners <= 1 {
                return Ok(MemberChange::LastOwner);
            }
            match role {
                Some(role) => {
                    sqlx::query(
                        "UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2",
                    )
                    .bind(org_id)
                    .bind(user_id)
                    .bind(role)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
                        .bind(org_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(MemberChange::Done)
        })
    }

    pub async fn create_invite(
        &self,
        org_id: &str,
        role: &str,
        note: &str,
        created_by: &str,
        token_hash: &str,
        expires_at_ms: i64,
    ) -> Result<Invite, StoreError> {
        let inv = Invite {
            id: new_id(),
            org_id: org_id.to_string(),
            role: role.to_string(),
            note: note.to_string(),
            created_by: created_by.to_string(),
            created_at_ms: now_ms(),
            expires_at_ms,
            used_at_ms: None,
            revoked_at_ms: None,
        };
        with_pool!(self, |pool, _lock| {
            sqlx::query(
                "INSERT INTO invites (id, org_id, token_hash, role, note, created_by, created_at_ms, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&inv.id)
            .bind(org_id)
            .bind(token_hash)
            .bind(role)
            .bind(note)
            .bind(created_by)
            .bind(inv.created_at_ms)
            .bind(expires_at_ms)
            .execute(pool)
            .await?;
        });
        Ok(inv)
    }

    /// Invites of an organisation that can still be accepted.
    pub async fn open_invites(&self, org_id: &str) -> Result<Vec<Invite>, StoreError> {
        let now = now_ms();
        let rows: Vec<InviteRow> = with_pool!(self, |pool, _lock| {
            sqlx::query_as(&format!(
                "SELECT {INVITE_COLUMNS} FROM invites WHERE org_id = $1 AND used_at_ms IS NULL \
                 AND revoked_at_ms IS NULL AND expires_at_ms > $2 ORDER BY created_at_ms"
            ))
            .bind(org_id)
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(invite).collect())
    }

    /// An invite and the name of its organisation.
    pub async fn invite_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(Invite, String)>, StoreError> {
        let row: Option<InviteRow> = with_pool!(self, |pool, _lock| {
            sqlx::query_as(&format!(
                "SELECT {INVITE_COLUMNS} FROM invites WHERE token_hash = $1"
            ))
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        });
        let Some(row) = row else { return Ok(None) };
        let inv = invite(row);
        let org: Option<(String,)> = with_pool!(self, |pool, _lock| {
            sqlx::query_as("SELECT name FROM orgs WHERE id = $1")
                .bind(&inv.org_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(org.map(|(name,)| (inv, name)))
    }

    /// Revokes an open invite of an organisation; returns whether one was revoked.
    pub async fn revoke_invite(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        with_pool!(self, |pool, _lock| {
            Ok(sqlx::query(
                "UPDATE invites SET revoked_at_ms = $3 WHERE org_id = $1 AND id = $2 \
                 AND used_at_ms IS NULL AND revoked_at_ms IS NULL",
            )
            .bind(org_id)
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
                > 0)
        })
    }
}
