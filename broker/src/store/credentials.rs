//! API keys: the SASL credentials of the Kafka port, one virtual cluster each.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;

use super::sql::{Db, Metadata, StoreError};
use crate::auth::scram::{Hash, ScramCredential, ITERATIONS};
use crate::clock::now_ms;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub cluster_id: String,
    pub name: String,
    pub created_by: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// What SASL needs to check a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub key_id: String,
    pub cluster_id: String,
    pub revoked: bool,
    pub sha256: ScramCredential,
    pub sha512: ScramCredential,
}

impl Credential {
    pub fn scram(&self, hash: Hash) -> &ScramCredential {
        match hash {
            Hash::Sha256 => &self.sha256,
            Hash::Sha512 => &self.sha512,
        }
    }

    /// Whether `secret` is this key's secret (checked against the SCRAM-SHA-256 keys, as
    /// PLAIN does). Costs one PBKDF2 derivation: call it off the async threads.
    pub fn matches_secret(&self, secret: &[u8]) -> bool {
        self.sha256.matches_password(Hash::Sha256, secret)
    }
}

type KeyRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);
type CredRow = (
    String,
    String,
    Option<i64>,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
);

fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2);
    while out.len() < bytes * 2 {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(bytes * 2);
    out
}

fn b64d(s: &str) -> Vec<u8> {
    B64.decode(s).unwrap_or_default()
}

impl Metadata {
    /// Mints a key for a cluster. The secret is returned here and nowhere else: only its
    /// SCRAM keys are stored.
    pub async fn create_api_key(
        &self,
        cluster_id: &str,
        name: &str,
        created_by: &str,
    ) -> Result<(ApiKeyInfo, String), StoreError> {
        let id = format!("K{}", random_hex(10).to_uppercase());
        let secret = random_hex(32);
        let (s256, s512) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let c256 =
            ScramCredential::derive(Hash::Sha256, secret.as_bytes(), s256.as_bytes(), ITERATIONS);
        let c512 =
            ScramCredential::derive(Hash::Sha512, secret.as_bytes(), s512.as_bytes(), ITERATIONS);
        let now = now_ms();
        with_pool!(self, |pool, _lock, _db| {
            sqlx::query(
                "INSERT INTO api_keys (id, cluster_id, name, created_by, created_at_ms, iterations, \
                 salt_256, stored_key_256, server_key_256, salt_512, stored_key_512, server_key_512) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&id)
            .bind(cluster_id)
            .bind(name)
            .bind(created_by)
            .bind(now)
            .bind(ITERATIONS as i64)
            .bind(B64.encode(&c256.salt))
            .bind(B64.encode(&c256.stored_key))
            .bind(B64.encode(&c256.server_key))
            .bind(B64.encode(&c512.salt))
            .bind(B64.encode(&c512.stored_key))
            .bind(B64.encode(&c512.server_key))
            .execute(pool)
            .await?;
        });
        Ok((
            ApiKeyInfo {
                id,
                cluster_id: cluster_id.to_string(),
                name: name.to_string(),
                created_by: created_by.to_string(),
                created_at_ms: now,
                last_used_at_ms: None,
                revoked_at_ms: None,
            },
            secret,
        ))
    }

    pub async fn api_keys(&self, cluster_id: &str) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let rows: Vec<KeyRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT id, cluster_id, name, created_by, created_at_ms, last_used_at_ms, revoked_at_ms \
                 FROM api_keys WHERE cluster_id = $1 ORDER BY created_at_ms",
            )
            .bind(cluster_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| ApiKeyInfo {
                id: r.0,
                cluster_id: r.1,
                name: r.2,
                created_by: r.3,
                created_at_ms: r.4,
                last_used_at_ms: r.5,
                revoked_at_ms: r.6,
            })
            .collect())
    }

    /// The SASL credential of a key (revoked keys included, flagged).
    pub async fn api_key_credential(&self, id: &str) -> Result<Option<Credential>, StoreError> {
        let row: Option<CredRow> = with_pool!(self, |pool, _lock, _db| {
            sqlx::query_as(
                "SELECT id, cluster_id, revoked_at_ms, iterations, salt_256, stored_key_256, server_key_256, \
                 salt_512, stored_key_512, server_key_512 FROM api_keys WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|r| {
            let iterations = r.3 as u32;
            Credential {
                key_id: r.0,
                cluster_id: r.1,
                revoked: r.2.is_some(),
                sha256: ScramCredential {
                    salt: b64d(&r.4),
                    iterations,
                    stored_key: b64d(&r.5),
                    server_key: b64d(&r.6),
                },
                sha512: ScramCredential {
                    salt: b64d(&r.7),
                    iterations,
                    stored_key: b64d(&r.8),
                    server_key: b64d(&r.9),
                },
            }
        }))
    }

    /// Revokes a key; returns whether it existed and was live.
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        with_pool!(self, |pool, _lock, _db| {
            Ok(sqlx::query(
                "UPDATE api_keys SET revoked_at_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL",
            )
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
                > 0)
        })
    }

    /// Records that a key was used.
    pub async fn touch_api_key(&self, id: &str, at_ms: i64) -> Result<(), StoreError> {
        with_pool!(self, |pool, _lock, _db| {
            sqlx::query("UPDATE api_keys SET last_used_at_ms = $2 WHERE id = $1")
                .bind(id)
                .bind(at_ms)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}
